#include "dispatch.hpp"

#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>

#include "../core/call_sites.hpp"
#include "../core/errors.hpp"
#include "../core/interpreter.hpp"
#include "../core/interrupter.hpp"
#include "../core/interrupts.hpp"
#include "../core/introspection.hpp"
#include "../core/iteration.hpp"
#include "../core/operations.hpp"
#include "../core/values.hpp"
#include "../core/worker_pool.hpp"
#include "atoms.hpp"
#include "fast_path.hpp"
#include "object_resource.hpp"
#include "python_output.hpp"
#include "python_to_terms.hpp"
#include "terms_to_python.hpp"

namespace sb::nif {
namespace {

// ---------------------------------------------------------------- requests

ERL_NIF_TERM make_binary(ErlNifEnv* env, const std::string& s) {
  ERL_NIF_TERM t;
  unsigned char* buf = enif_make_new_binary(env, s.size(), &t);
  if (!s.empty()) memcpy(buf, s.data(), s.size());
  return t;
}

// An atom or a binary as text; false for anything else.
bool get_text(ErlNifEnv* env, ERL_NIF_TERM t, std::string* out) {
  ErlNifBinary bin;
  if (enif_inspect_binary(env, t, &bin)) {
    out->assign(reinterpret_cast<const char*>(bin.data), bin.size);
    return true;
  }
  // OTP 25 reads atoms as Latin-1 only; re-encode as UTF-8.
  char buf[256];
  int n = enif_get_atom(env, t, buf, sizeof buf, ERL_NIF_LATIN1);
  if (n <= 0) return false;
  out->clear();
  for (int i = 0; i < n - 1; ++i) {
    auto c = static_cast<unsigned char>(buf[i]);
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back(static_cast<char>(0xC0 | (c >> 6)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return true;
}

struct BadRequest : std::exception {};

std::string text(ErlNifEnv* env, ERL_NIF_TERM t) {
  std::string s;
  if (!get_text(env, t, &s)) throw BadRequest();
  return s;
}

int bit_length(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

// A coarse size class of a term: its type and the bit length of its magnitude
// (integers, floats) or size (binaries, lists, maps). Durations usually grow with
// input size, so a call with much larger inputs is a different call site, which
// starts on the pool again instead of inheriting a promotion earned on small ones.
void append_shape(ErlNifEnv* env, ERL_NIF_TERM t, std::string* key) {
  char buf[24];
  switch (enif_term_type(env, t)) {
    case ERL_NIF_TERM_TYPE_INTEGER: {
      ErlNifSInt64 i;
      int bits = enif_get_int64(env, t, &i) ? bit_length(static_cast<uint64_t>(i < 0 ? -(i + 1) : i)) : 99;
      snprintf(buf, sizeof buf, "i%d", bits);
      break;
    }
    case ERL_NIF_TERM_TYPE_FLOAT: {
      double d;
      enif_get_double(env, t, &d);
      int exp = 0;
      frexp(d, &exp);
      snprintf(buf, sizeof buf, "f%d", exp);
      break;
    }
    case ERL_NIF_TERM_TYPE_BITSTRING: {
      ErlNifBinary bin;
      snprintf(buf, sizeof buf, "b%d", enif_inspect_binary(env, t, &bin) ? bit_length(bin.size) : 0);
      break;
    }
    case ERL_NIF_TERM_TYPE_LIST: {
      unsigned len = 0;
      enif_get_list_length(env, t, &len);
      snprintf(buf, sizeof buf, "l%d", bit_length(len));
      break;
    }
    case ERL_NIF_TERM_TYPE_MAP: {
      size_t size = 0;
      ERL_NIF_TERM data;
      enif_get_map_size(env, t, &size);
      if (enif_get_map_value(env, t, atoms.data, &data)) {  // SnakeBridge.bytes(binary)
        append_shape(env, data, key);
        return;
      }
      snprintf(buf, sizeof buf, "m%d", bit_length(size));
      break;
    }
    case ERL_NIF_TERM_TYPE_TUPLE: {
      int arity;
      const ERL_NIF_TERM* items;
      enif_get_tuple(env, t, &arity, &items);
      snprintf(buf, sizeof buf, "t%d", arity);
      break;
    }
    default:
      snprintf(buf, sizeof buf, "o");
  }
  key->append(buf);
}

// The shapes of the top-level items of an argument list or keyword list/map.
void append_shapes(ErlNifEnv* env, ERL_NIF_TERM container, std::string* key) {
  key->push_back('|');
  ERL_NIF_TERM head, tail = container;
  int n = 0;
  if (enif_is_map(env, container)) {
    ErlNifMapIterator it;
    if (!enif_map_iterator_create(env, container, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return;
    ERL_NIF_TERM k, v;
    while (n++ < 16 && enif_map_iterator_get_pair(env, &it, &k, &v)) {
      append_shape(env, v, key);
      enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    return;
  }
  while (n++ < 16 && enif_get_list_cell(env, tail, &head, &tail)) {
    int arity;
    const ERL_NIF_TERM* kv;
    // keyword lists: the value's shape
    if (enif_get_tuple(env, head, &arity, &kv) && arity == 2 && enif_is_atom(env, kv[0])) head = kv[1];
    append_shape(env, head, key);
  }
}

// The call-site key: what identifies "the same call" for fast-path learning.
std::string site_key(ErlNifEnv* env, int arity, const ERL_NIF_TERM* req) {
  std::string key;
  if (arity < 2) return key;
  char op[16];
  if (enif_get_atom(env, req[0], op, sizeof op, ERL_NIF_LATIN1) <= 0) return key;
  key.append(op).push_back('|');
  PyObject* obj;
  if (get_object(env, req[1], &obj)) {
    char ptr[32];
    snprintf(ptr, sizeof ptr, "%p", static_cast<void*>(Py_TYPE(obj)));  // type, no GIL needed
    key.append(ptr);
  } else {
    std::string s;
    if (get_text(env, req[1], &s)) key.append(s);
  }
  if (arity > 2) {
    key.push_back('|');
    std::string s;
    if (get_text(env, req[2], &s)) key.append(s);
  }
  if (req[0] == atoms.call && arity == 5) {
    append_shapes(env, req[3], &key);
    append_shapes(env, req[4], &key);
  } else if ((req[0] == atoms.eval || req[0] == atoms.exec) && arity == 3) {
    append_shapes(env, req[2], &key);
  } else if (req[0] == atoms.setattr && arity == 4) {
    key.push_back('|');
    append_shape(env, req[3], &key);
  }
  return key;
}

PyRef resolve_target(ErlNifEnv* env, ERL_NIF_TERM target) {
  PyObject* obj;
  if (get_object(env, target, &obj)) return PyRef::borrow(obj);
  return import_module(text(env, target));
}

// Looks up `name` on the target; an empty name or nil means the target itself.
PyRef resolve_member(ErlNifEnv* env, PyObject* target, ERL_NIF_TERM name) {
  if (name == atoms.nil) return PyRef::borrow(target);
  std::string n = text(env, name);
  if (n.empty()) return PyRef::borrow(target);
  return get_path(target, n);
}

ERL_NIF_TERM python_error_term(ErlNifEnv* env, const PythonErrorInfo& e) {
  ERL_NIF_TERM info = enif_make_tuple5(env, atoms.python, make_binary(env, e.type), make_binary(env, e.qualified_type),
                                       make_binary(env, e.message), make_binary(env, e.traceback));
  return enif_make_tuple2(env, atoms.error, info);
}

// Runs one request with the GIL held; every failure becomes an {:error, _} term.
ERL_NIF_TERM run_request(ErlNifEnv* env, ERL_NIF_TERM request, ReturnMode mode) {
  try {
    int arity;
    const ERL_NIF_TERM* req;
    if (!enif_get_tuple(env, request, &arity, &req) || arity < 2) throw BadRequest();
    TermReader reader(env);
    TermWriter writer(env, mode);
    ERL_NIF_TERM op = req[0];
    ERL_NIF_TERM result;
    if (op == atoms.call && arity == 5) {
      PyRef target = resolve_target(env, req[1]);
      PyRef fn = resolve_member(env, target.get(), req[2]);
      PyRef args = reader.read_args(req[3]);
      PyRef kwargs = reader.read_kwargs(req[4]);
      PyRef out = call_object(fn.get(), args.get(), kwargs.get());
      result = writer.write_result(out.get());
    } else if (op == atoms.getattr && arity == 3) {
      PyRef target = resolve_target(env, req[1]);
      PyRef out = get_path(target.get(), text(env, req[2]));
      result = writer.write_result(out.get());
    } else if (op == atoms.setattr && arity == 4) {
      PyRef target = resolve_target(env, req[1]);
      std::string name = text(env, req[2]);
      PyRef value = reader.read(req[3]);
      PyRef pyname = check(PyUnicode_FromStringAndSize(name.data(), static_cast<Py_ssize_t>(name.size())));
      check_status(PyObject_SetAttr(target.get(), pyname.get(), value.get()));
      result = atoms.nil;
    } else if ((op == atoms.eval || op == atoms.exec) && arity == 3) {
      std::string code = text(env, req[1]);
      PyRef globals = reader.read(req[2]);
      if (!PyDict_CheckExact(globals.get())) throw BadRequest();
      if (op == atoms.eval) {
        PyRef out = eval_expression(code, globals.get());
        result = writer.write_result(out.get());
      } else {
        exec_statements(code, globals.get());
        if (PyDict_DelItemString(globals.get(), "__builtins__") < 0) PyErr_Clear();
        result = writer.write(globals.get());
      }
    } else if (op == atoms.describe && arity == 4) {
      int depth;
      if (!enif_get_int(env, req[2], &depth)) throw BadRequest();
      PyRef schema = describe_module(text(env, req[1]), depth, req[3] == atoms.true_);
      result = TermWriter(env, ReturnMode::Value).write(schema.get());
    } else if (op == atoms.next && arity == 3) {
      // {:next, iterator, max} -> {items, :cont | :done | {:error, python_error}}
      PyObject* it;
      unsigned max;
      if (!get_object(env, req[1], &it) || !enif_get_uint(env, req[2], &max) || max == 0) throw BadRequest();
      Batch batch = next_batch(it, max);
      std::vector<ERL_NIF_TERM> items;
      items.reserve(batch.items.size());
      // Each item is a result of its own: return: :ref applies to it.
      for (const PyRef& item : batch.items) items.push_back(writer.write_result(item.get()));
      ERL_NIF_TERM end = batch.end == BatchEnd::More   ? atoms.cont
                         : batch.end == BatchEnd::Done ? atoms.done
                                                       : python_error_term(env, batch.error);
      result = enif_make_tuple2(env, enif_make_list_from_array(env, items.data(), static_cast<unsigned>(items.size())), end);
    } else if (op == atoms.close && arity == 2) {
      PyObject* it;
      if (!get_object(env, req[1], &it)) throw BadRequest();
      PythonErrorInfo error;
      if (!close_iterator(it, &error)) return python_error_term(env, error);
      result = atoms.nil;
    } else if (op == atoms.to_elixir && arity == 2) {
      PyRef target = resolve_target(env, req[1]);
      result = TermWriter(env, ReturnMode::Value).write(target.get());
    } else if (op == atoms.repr && arity == 3) {
      PyRef target = resolve_target(env, req[1]);
      unsigned max;
      if (!enif_get_uint(env, req[2], &max)) throw BadRequest();
      result = make_binary(env, short_repr(target.get(), max));
    } else {
      throw BadRequest();
    }
    if (PyErr_Occurred()) PyErr_Clear();  // never return to the BEAM with one pending
    return enif_make_tuple2(env, atoms.ok, result);
  } catch (const PythonException& e) {
    return python_error_term(env, e.info());
  } catch (const TermError& e) {
    if (PyErr_Occurred()) PyErr_Clear();
    ERL_NIF_TERM path = enif_make_list_from_array(env, e.path.data(), static_cast<unsigned>(e.path.size()));
    return enif_make_tuple2(env, atoms.error, enif_make_tuple4(env, atoms.unconvertible, e.reason, e.term, path));
  } catch (const ValueError& e) {
    if (PyErr_Occurred()) PyErr_Clear();
    return enif_make_tuple2(env, atoms.error, enif_make_tuple3(env, atoms.conversion, make_binary(env, e.type_name),
                                                               make_binary(env, e.repr)));
  } catch (const BadRequest&) {
    if (PyErr_Occurred()) PyErr_Clear();
    return enif_make_tuple2(env, atoms.error, enif_make_tuple2(env, enif_make_atom(env, "badrequest"), request));
  } catch (const std::exception& e) {
    if (PyErr_Occurred()) PyErr_Clear();
    return enif_make_tuple2(env, atoms.error, enif_make_tuple2(env, enif_make_atom(env, "internal"), make_binary(env, e.what())));
  }
}

// When Python wrote to stdout/stderr during a fast-path request, the reply says so
// ({:ok, v, :output}): the caller then writes the output messages it was sent
// before it returns, so output lands where its group leader is (capture_io).
ERL_NIF_TERM with_output_mark(ErlNifEnv* env, ERL_NIF_TERM reply, const CallerScope& scope) {
  if (!scope.wrote()) return reply;
  int arity;
  const ERL_NIF_TERM* items;
  enif_get_tuple(env, reply, &arity, &items);
  return enif_make_tuple3(env, items[0], items[1], atoms.output);
}

bool parse_mode(ErlNifEnv*, ERL_NIF_TERM t, ReturnMode* mode) {
  if (t == atoms.auto_) *mode = ReturnMode::Auto;
  else if (t == atoms.ref) *mode = ReturnMode::Ref;
  else if (t == atoms.value) *mode = ReturnMode::Value;
  else return false;
  return true;
}

// ---------------------------------------------------------------- jobs

enum JobState : int { kQueued, kRunning, kSent, kCancelled };

struct Job {
  ErlNifEnv* env;  // owns the copied request, then the reply
  ERL_NIF_TERM request;
  ERL_NIF_TERM ref;
  ErlNifPid caller;
  ReturnMode mode;
  CallSite* site;
  std::atomic<int> state;
  // Who runs the job, for interrupting it (timeout, cancel, dead caller).
  std::shared_ptr<InterruptTarget> target;
};

ErlNifResourceType* g_job_type = nullptr;

void job_dtor(ErlNifEnv*, void* p) {
  auto* job = static_cast<Job*>(p);
  if (job->env) enif_free_env(job->env);
  job->~Job();
}

void run_job(Job* job) {
  int expected = kQueued;
  if (!job->state.compare_exchange_strong(expected, kRunning)) {
    enif_release_resource(job);  // cancelled before it started
    return;
  }
  g_busy_workers.fetch_add(1);
  ERL_NIF_TERM reply;
  bool send;
  job->target->tstate.store(this_thread_state());
  {
    Gil gil;
    clear_interrupt();
    if (job->state.load() == kCancelled) {
      // Cancelled while this thread waited for the GIL: the interrupt it aimed
      // at us was just cleared, so do not start the work at all.
      job->target->finished = true;
      g_busy_workers.fetch_sub(1);
      enif_release_resource(job);
      return;
    }
    uint64_t t0 = monotonic_ns();
    {
      // Output goes to the caller live, tagged with the reply's ref, while the
      // job is still wanted.
      CallerScope scope(nullptr, &job->caller, job->ref, &job->state, kRunning);
      InterruptibleScope interruptible;
      reply = run_request(job->env, job->request, job->mode);
    }
    record_pool_run(job->site, monotonic_ns() - t0);
    job->target->finished = true;
    expected = kRunning;
    send = job->state.compare_exchange_strong(expected, kSent);
    if (!send) {
      // A cancel may have aimed an exception at this thread after the work ended.
      clear_interrupt();
      PyErr_Clear();
    }
    drain_released(256);
  }
  g_busy_workers.fetch_sub(1);
  if (send) {
    ERL_NIF_TERM msg = enif_make_tuple2(job->env, job->ref, reply);
    enif_send(nullptr, &job->caller, job->env, msg);
  }
  enif_release_resource(job);
}

}  // namespace

// The caller died: nobody will read the reply, so stop the Python work.
static void job_down(ErlNifEnv*, void* p, ErlNifPid*, ErlNifMonitor*) {
  auto* job = static_cast<Job*>(p);
  int s = job->state.load();
  while (s == kQueued || s == kRunning) {
    if (job->state.compare_exchange_weak(s, kCancelled)) {
      if (s == kRunning) interrupt_until_finished(job->target);
      return;
    }
  }
}

void open_job_type(ErlNifEnv* env) {
  ErlNifResourceTypeInit init = {};
  init.dtor = job_dtor;
  init.down = job_down;
  g_job_type = enif_open_resource_type_x(env, "snakebridge_job", &init,
                                         static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER), nullptr);
}

ERL_NIF_TERM execute(ErlNifEnv* env, ERL_NIF_TERM request, ERL_NIF_TERM mode_term, ERL_NIF_TERM timeout_term) {
  ReturnMode mode;
  int arity;
  const ERL_NIF_TERM* req;
  ErlNifSInt64 timeout_ms;
  if (!parse_mode(env, mode_term, &mode) || !enif_get_tuple(env, request, &arity, &req) ||
      !enif_get_int64(env, timeout_term, &timeout_ms)) {
    return enif_make_badarg(env);
  }
  if (!interpreter_ready()) {
    return enif_make_tuple2(env, atoms.error, enif_make_atom(env, "not_started"));
  }
  CallSite* site = call_site(site_key(env, arity, req));

  // Fast path: the site is known to be quick and no pool thread is inside Python,
  // so the GIL is free (or about to be) and this scheduler is not held up.
  if (site->fast.load(std::memory_order_acquire) && g_fast_path_enabled.load(std::memory_order_relaxed) &&
      g_busy_workers.load(std::memory_order_acquire) == 0) {
    uint64_t t0 = monotonic_ns();
    ERL_NIF_TERM result;
    {
      Gil gil;
      ErlNifPid self;
      enif_self(env, &self);
      CallerScope scope(env, &self);
      FastCall guard(site, timeout_ms);
      {
        InterruptibleScope interruptible;
        result = run_request(env, request, mode);
      }
      if (guard.finish()) result = enif_make_tuple2(env, atoms.error, enif_make_atom(env, "timeout"));
      result = with_output_mark(env, result, scope);
      drain_released(64);
    }
    uint64_t elapsed = monotonic_ns() - t0;
    // CPU-heavy runs are caught by the watchdog while they run; here only a run
    // blocked for long (wall time past kDemoteBlockedNs) demotes.
    record_fast_run(site, elapsed, 0);
    int percent = static_cast<int>(elapsed / 10'000);  // of a 1 ms timeslice
    if (percent > 0) enif_consume_timeslice(env, percent > 100 ? 100 : percent);
    return result;
  }

  auto* job = static_cast<Job*>(enif_alloc_resource(g_job_type, sizeof(Job)));
  new (job) Job();
  job->env = enif_alloc_env();
  job->request = enif_make_copy(job->env, request);
  job->ref = enif_make_ref(job->env);
  enif_self(env, &job->caller);
  job->mode = mode;
  job->site = site;
  job->state = kQueued;
  job->target = std::make_shared<InterruptTarget>();
  ERL_NIF_TERM job_term = enif_make_resource(env, job);
  ErlNifMonitor monitor;
  enif_monitor_process(env, job, &job->caller, &monitor);
  ERL_NIF_TERM ref = enif_make_copy(env, job->ref);
  // The pool's reference to the job; the term's reference is released by the GC.
  WorkerPool::instance().submit([job] { run_job(job); });
  return enif_make_tuple3(env, atoms.pending, job_term, ref);
}

ERL_NIF_TERM cancel(ErlNifEnv* env, ERL_NIF_TERM job_term) {
  Job* job;
  if (!enif_get_resource(env, job_term, g_job_type, reinterpret_cast<void**>(&job))) return enif_make_badarg(env);
  int s = job->state.load();
  while (true) {
    if (s == kSent) return atoms.sent;
    if (s == kCancelled) return atoms.cancelled;
    if (job->state.compare_exchange_weak(s, kCancelled)) break;
  }
  if (s == kRunning) interrupt_until_finished(job->target);
  return atoms.cancelled;
}

}  // namespace sb::nif
