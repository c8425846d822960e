#include "server.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "../core/call_sites.hpp"
#include "../core/errors.hpp"
#include "../core/interpreter.hpp"
#include "../core/interrupts.hpp"
#include "../core/introspection.hpp"
#include "../core/iteration.hpp"
#include "../core/operations.hpp"
#include "../core/stdio.hpp"
#include "../core/values.hpp"
#include "../core/worker_pool.hpp"
#include "framing.hpp"
#include "handles.hpp"

namespace sb::port {
namespace {

const msgpack::unpack_limit kLimits(1 << 24, 1 << 24, 1 << 30, 1 << 30, 1 << 30, 1024);

struct BadRequest : std::exception {
  std::string message;
  explicit BadRequest(std::string m) : message(std::move(m)) {}
};

Server* g_server = nullptr;
thread_local uint64_t t_request = 0;  // the request this thread runs, for output

const msgpack::object& arg(const msgpack::object_array& a, uint32_t i) {
  if (i >= a.size) throw BadRequest("request has too few elements");
  return a.ptr[i];
}

std::string text_arg(const msgpack::object_array& a, uint32_t i) {
  std::string s;
  if (!as_text(arg(a, i), &s)) throw BadRequest("element " + std::to_string(i) + " must be a string");
  return s;
}

uint64_t uint_arg(const msgpack::object_array& a, uint32_t i) {
  const msgpack::object& o = arg(a, i);
  if (o.type != msgpack::type::POSITIVE_INTEGER) throw BadRequest("element " + std::to_string(i) + " must be a non-negative integer");
  return o.via.u64;
}

Mode mode_arg(const msgpack::object_array& a, uint32_t i) {
  if (i >= a.size) return Mode::Auto;
  std::string m = text_arg(a, i);
  if (m == "auto") return Mode::Auto;
  if (m == "ref") return Mode::Ref;
  if (m == "value") return Mode::Value;
  throw BadRequest("mode must be auto, ref or value");
}

// A module (by name) or a handle.
PyRef target_arg(const msgpack::object_array& a, uint32_t i) {
  const msgpack::object& o = arg(a, i);
  if (o.type == msgpack::type::STR) return import_module(std::string(o.via.str.ptr, o.via.str.size));
  if (o.type == msgpack::type::EXT) return to_python(o);
  throw BadRequest("target must be a module name or a handle");
}

PyObject* handle_arg(const msgpack::object_array& a, uint32_t i, PyRef* keep) {
  const msgpack::object& o = arg(a, i);
  if (o.type != msgpack::type::EXT || o.via.ext.type() != kHandle) throw BadRequest("element " + std::to_string(i) + " must be a handle");
  *keep = to_python(o);
  return keep->get();
}

void reply_ok_header(Packer& pk, uint64_t id) {
  pk.pack_array(3);
  pk.pack_uint64(id);
  pk.pack(std::string("ok"));
}

// {"kind": kind, "message": message}: the error map of bad requests.
void pack_kind_message(Packer& pk, const char* kind, const std::string& message) {
  pk.pack_map(2);
  pk.pack(std::string("kind"));
  pk.pack(std::string(kind));
  pk.pack(std::string("message"));
  pk.pack(message);
}

void pack_error_map(Packer& pk, const PythonErrorInfo& e) {
  pk.pack_map(5);
  pk.pack(std::string("kind"));
  pk.pack(std::string("python"));
  pk.pack(std::string("type"));
  pk.pack(e.type);
  pk.pack(std::string("python_type"));
  pk.pack(e.qualified_type);
  pk.pack(std::string("message"));
  pk.pack(e.message);
  pk.pack(std::string("traceback"));
  pk.pack(e.traceback);
}

// Runs one request with the GIL held; returns the complete reply body.
msgpack::sbuffer execute(uint64_t id, const msgpack::object_array& a) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  std::string op = text_arg(a, 1);
  if (op == "call") {
    PyRef target = target_arg(a, 2);
    const msgpack::object& name = arg(a, 3);
    PyRef fn = target;
    std::string n;
    if (as_text(name, &n) && !n.empty()) fn = get_path(target.get(), n);
    PyRef args = to_args(arg(a, 4));
    PyRef kwargs = to_kwargs(arg(a, 5));
    PyRef out = call_object(fn.get(), args.get(), kwargs.get());
    reply_ok_header(pk, id);
    pack_python(pk, out.get(), mode_arg(a, 6));
  } else if (op == "getattr") {
    PyRef target = target_arg(a, 2);
    PyRef out = get_path(target.get(), text_arg(a, 3));
    reply_ok_header(pk, id);
    pack_python(pk, out.get(), mode_arg(a, 4));
  } else if (op == "setattr") {
    PyRef target = target_arg(a, 2);
    std::string name = text_arg(a, 3);
    PyRef value = to_python(arg(a, 4));
    check_status(PyObject_SetAttrString(target.get(), name.c_str(), value.get()));
    reply_ok_header(pk, id);
    pk.pack_nil();
  } else if (op == "eval" || op == "exec") {
    std::string code = text_arg(a, 2);
    PyRef globals = a.size > 3 && arg(a, 3).type != msgpack::type::NIL ? to_python(arg(a, 3)) : check(PyDict_New());
    if (!PyDict_CheckExact(globals.get())) throw BadRequest("globals must be a map");
    if (op == "eval") {
      PyRef out = eval_expression(code, globals.get());
      reply_ok_header(pk, id);
      pack_python(pk, out.get(), mode_arg(a, 4));
    } else {
      exec_statements(code, globals.get());
      if (PyDict_DelItemString(globals.get(), "__builtins__") < 0) PyErr_Clear();
      reply_ok_header(pk, id);
      pack_python(pk, globals.get(), Mode::Auto, false);
    }
  } else if (op == "describe") {
    PyRef schema = describe_module(text_arg(a, 2), static_cast<int>(uint_arg(a, 3)),
                                   a.size > 4 && arg(a, 4).type == msgpack::type::BOOLEAN && arg(a, 4).via.boolean);
    reply_ok_header(pk, id);
    pack_python(pk, schema.get(), Mode::Value);
  } else if (op == "next") {
    PyRef keep;
    PyObject* it = handle_arg(a, 2, &keep);
    uint64_t max = uint_arg(a, 3);
    if (max == 0) throw BadRequest("max must be positive");
    Mode mode = mode_arg(a, 4);
    Batch batch = next_batch(it, max);
    reply_ok_header(pk, id);
    pk.pack_array(2);
    pk.pack_array(static_cast<uint32_t>(batch.items.size()));
    for (const PyRef& item : batch.items) pack_python(pk, item.get(), mode);
    if (batch.end == BatchEnd::More) pk.pack(std::string("cont"));
    else if (batch.end == BatchEnd::Done) pk.pack(std::string("done"));
    else pack_error_map(pk, batch.error);
  } else if (op == "close") {
    PyRef keep;
    PyObject* it = handle_arg(a, 2, &keep);
    PythonErrorInfo error;
    if (!close_iterator(it, &error)) throw PythonException(error);
    reply_ok_header(pk, id);
    pk.pack_nil();
  } else if (op == "to_elixir") {
    PyRef keep;
    PyObject* o = handle_arg(a, 2, &keep);
    reply_ok_header(pk, id);
    pack_python(pk, o, Mode::Value, false);
  } else if (op == "repr") {
    PyRef keep;
    PyObject* o = handle_arg(a, 2, &keep);
    reply_ok_header(pk, id);
    pk.pack(short_repr(o, uint_arg(a, 3)));
  } else {
    throw BadRequest("unknown operation: " + op);
  }
  return buf;
}

PyObject* emit(PyObject*, PyObject* args) {
  int stream;
  const char* text;
  Py_ssize_t size;
  if (!PyArg_ParseTuple(args, "is#", &stream, &text, &size)) return nullptr;
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(5);
  pk.pack_uint64(0);
  pk.pack(std::string("output"));
  pk.pack(std::string(stream == 2 ? "stderr" : "stdout"));
  pk.pack_str(static_cast<uint32_t>(size));
  pk.pack_str_body(text, static_cast<uint32_t>(size));
  if (t_request) pk.pack_uint64(t_request);
  else pk.pack_nil();
  {
    GilRelease release;  // writing may block on a full pipe
    g_server->send(buf.data(), buf.size());
  }
  Py_RETURN_NONE;
}

}  // namespace

void install_port_output(Server* server) {
  g_server = server;
  install_stdio(emit);
}

void Server::send(const char* data, size_t size) {
  // One write for header and body: a reader woken by the header alone would
  // have to wait again for the rest.
  std::string header = frame_header(size);
  iovec parts[2] = {{const_cast<char*>(header.data()), header.size()}, {const_cast<char*>(data), size}};
  std::lock_guard<std::mutex> lock(write_mu_);
  int first = 0;
  while (first < 2) {
    ssize_t n = ::writev(out_fd_, parts + first, 2 - first);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0);  // the client is gone
    size_t done = static_cast<size_t>(n);
    while (first < 2 && done >= parts[first].iov_len) done -= parts[first++].iov_len;
    if (first < 2) {
      parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + done;
      parts[first].iov_len -= done;
    }
  }
}

void Server::send_error(uint64_t id, const char* kind, const std::string& message) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_array(3);
  pk.pack_uint64(id);
  pk.pack(std::string("error"));
  pack_kind_message(pk, kind, message);
  send(buf.data(), buf.size());
}

size_t Server::in_flight() {
  std::lock_guard<std::mutex> lock(running_mu_);
  return running_.size();
}

void Server::on_frame(std::string frame) {
  auto request = std::make_shared<Request>();
  request->frame = std::move(frame);
  const std::string& bytes = request->frame;
  try {
    size_t offset = 0;
    // Strings, binaries and extensions point into the frame (kept alongside)
    // rather than being copied into the handle's zone.
    auto reference = [](msgpack::type::object_type, size_t, void*) { return true; };
    request->handle = msgpack::unpack(bytes.data(), bytes.size(), offset, reference, nullptr, kLimits);
    if (offset != bytes.size()) return send_error(0, "bad_request", "a frame must hold exactly one msgpack value");
  } catch (const std::exception& e) {
    return send_error(0, "bad_request", std::string("malformed msgpack: ") + e.what());
  }
  const msgpack::object& o = request->handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size < 2 || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER ||
      o.via.array.ptr[1].type != msgpack::type::STR) {
    return send_error(0, "bad_request", "a request is [id, op, args...]");
  }
  const auto& a = o.via.array;
  uint64_t id = a.ptr[0].via.u64;
  std::string op(a.ptr[1].via.str.ptr, a.ptr[1].via.str.size);

  // Answered here, without the GIL: liveness must not wait behind Python.
  if (op == "ping") {
    msgpack::sbuffer buf;
    Packer pk(buf);
    reply_ok_header(pk, id);
    pk.pack(std::string("pong"));
    return send(buf.data(), buf.size());
  }
  if (op == "release") {
    if (a.size > 2 && a.ptr[2].type == msgpack::type::ARRAY) {
      for (uint32_t i = 0; i < a.ptr[2].via.array.size; ++i) {
        const msgpack::object& h = a.ptr[2].via.array.ptr[i];
        if (h.type == msgpack::type::POSITIVE_INTEGER) handles().release(h.via.u64);
      }
    }
    return;
  }
  if (op == "cancel") {
    if (a.size > 2 && a.ptr[2].type == msgpack::type::POSITIVE_INTEGER) cancel(a.ptr[2].via.u64);
    return;
  }
  if (op == "stats") {
    msgpack::sbuffer buf;
    Packer pk(buf);
    reply_ok_header(pk, id);
    long rss_kb = 0;
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("VmRSS:", 0) == 0) rss_kb = std::stol(line.substr(6));
    }
    pk.pack_map(4);
    pk.pack(std::string("handles"));
    pk.pack_uint64(handles().size());
    pk.pack(std::string("requests"));
    pk.pack_uint64(in_flight());
    pk.pack(std::string("threads"));
    pk.pack_uint64(WorkerPool::instance().thread_count());
    pk.pack(std::string("rss_kb"));
    pk.pack_int64(rss_kb);
    return send(buf.data(), buf.size());
  }

  // The client is about to stop this program: requests already read finish,
  // later ones are refused (so a client can retry them elsewhere knowing they
  // never ran), and the reply comes once nothing is in flight.
  if (op == "drain") {
    bool now;
    {
      std::lock_guard<std::mutex> lock(running_mu_);
      draining_ = true;
      now = running_.empty();
      if (!now) drain_reply_id_ = id;
    }
    if (now) reply_drained(id);
    return;
  }

  // Call sites that proved quick run right here when nothing else is in flight:
  // no thread hand-off (as the NIF's fast path). Others go to the pool.
  std::string key = op;
  for (uint32_t i = 2; i < a.size && i < 4; ++i) {
    key.push_back('|');
    if (a.ptr[i].type == msgpack::type::STR) key.append(a.ptr[i].via.str.ptr, a.ptr[i].via.str.size);
  }
  CallSite* site = call_site(key);
  auto running = std::make_shared<Running>();
  bool inline_run;
  {
    std::lock_guard<std::mutex> lock(running_mu_);
    if (draining_) {
      inline_run = false;
      running = nullptr;
    } else {
      inline_run = inline_runs_ && site->fast.load(std::memory_order_acquire) && running_.empty() &&
                   g_busy_workers.load() == 0;
      running_[id] = running;
    }
  }
  if (!running) return send_error(id, "stopping", "the worker is stopping; the request did not run");
  if (inline_run) {
    uint64_t t0 = monotonic_ns();
    inline_site_.store(site, std::memory_order_relaxed);
    inline_since_.store(t0, std::memory_order_release);
    run(id, request, running);
    inline_since_.store(0, std::memory_order_release);
    // Wall time stands for CPU time here (reading the thread's CPU clock is a
    // system call on these machines): a preempted run may demote its site,
    // which costs speed, never correctness.
    uint64_t wall = monotonic_ns() - t0;
    record_fast_run(site, wall, wall);
    return;
  }
  WorkerPool::instance().submit([this, id, request, running, site] {
    g_busy_workers.fetch_add(1);
    uint64_t t0 = monotonic_ns();
    run(id, request, running);
    record_pool_run(site, monotonic_ns() - t0);
    g_busy_workers.fetch_sub(1);
  });
}

void Server::run(uint64_t id, std::shared_ptr<Request> request, std::shared_ptr<Running> running) {
  running->tstate.store(this_thread_state());
  msgpack::sbuffer reply;
  {
    Gil gil;
    clear_interrupt();
    t_request = id;
    const auto& a = request->handle.get().via.array;
    auto fail_with = [&](auto&& pack_error) {
      reply.clear();
      Packer pk(reply);
      pk.pack_array(3);
      pk.pack_uint64(id);
      pk.pack(std::string("error"));
      pack_error(pk);
    };
    try {
      InterruptibleScope interruptible;
      reply = execute(id, a);
    } catch (const PythonException& e) {
      fail_with([&](Packer& pk) { pack_error_map(pk, e.info()); });
    } catch (const DecodeError& e) {
      fail_with([&](Packer& pk) {
        if (e.kind == "unknown_handle") {
          pk.pack_map(3);
          pk.pack(std::string("kind"));
          pk.pack(std::string("unknown_handle"));
          pk.pack(std::string("id"));
          pk.pack_uint64(e.handle);
        } else {
          pk.pack_map(3);
          pk.pack(std::string("kind"));
          pk.pack(std::string("unconvertible"));
          pk.pack(std::string("reason"));
          pk.pack(e.kind);
        }
        pk.pack(std::string("message"));
        pk.pack(e.message);
      });
    } catch (const EncodeError& e) {
      fail_with([&](Packer& pk) {
        pk.pack_map(3);
        pk.pack(std::string("kind"));
        pk.pack(std::string("conversion"));
        pk.pack(std::string("python_type"));
        pk.pack(e.python_type);
        pk.pack(std::string("repr"));
        pk.pack(e.repr);
      });
    } catch (const BadRequest& e) {
      fail_with([&](Packer& pk) { pack_kind_message(pk, "bad_request", e.message); });
    } catch (const std::exception& e) {
      fail_with([&](Packer& pk) { pack_kind_message(pk, "bad_request", std::string("internal error: ") + e.what()); });
    }
    if (PyErr_Occurred()) PyErr_Clear();
    t_request = 0;
    running->finished = true;
    drain_released(256);
  }
  // The reply goes out before the request leaves running_: a "drained" reply
  // sent by whichever request finishes last then always follows every reply.
  send(reply.data(), reply.size());
  uint64_t drained = 0;
  {
    std::lock_guard<std::mutex> lock(running_mu_);
    running_.erase(id);
    if (running_.empty() && drain_reply_id_ != 0) std::swap(drained, drain_reply_id_);
  }
  if (drained != 0) reply_drained(drained);
}

void Server::reply_drained(uint64_t id) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  reply_ok_header(pk, id);
  pk.pack(std::string("drained"));
  send(buf.data(), buf.size());
}

uint64_t Server::inline_for_ns() const {
  uint64_t since = inline_since_.load(std::memory_order_acquire);
  return since == 0 ? 0 : monotonic_ns() - since;
}

void Server::demote_inline_site() {
  if (CallSite* site = inline_site_.load(std::memory_order_relaxed)) demote(site);
}

void Server::cancel(uint64_t id) {
  std::shared_ptr<Running> running;
  {
    std::lock_guard<std::mutex> lock(running_mu_);
    auto it = running_.find(id);
    if (it == running_.end()) return;  // already answered
    running = it->second;
  }
  interrupt_until_finished(std::move(running));
}

}  // namespace sb::port
