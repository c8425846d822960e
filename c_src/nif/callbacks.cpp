#include "callbacks.hpp"

#include <sched.h>

#include <atomic>
#include <new>

#include "../core/callback_answer.hpp"
#include "../core/errors.hpp"
#include "../core/from_elixir.hpp"
#include "../core/spin.hpp"
#include "../core/to_elixir.hpp"
#include "atoms.hpp"
#include "jobs.hpp"
#include "term_reader.hpp"
#include "term_sink.hpp"

namespace sb::nif {
namespace {

// One callback's answer, shared by the waiting Python thread and the Elixir
// process that answers (a resource: either may be gone first).
enum SlotState : int { kWaiting, kStoring, kAnswered, kAbandoned };

struct Slot {
  ErlNifEnv* env;  // the answer
  ERL_NIF_TERM answer;
  std::atomic<int> state{kWaiting};
  CallbackWait wait;
};

ErlNifResourceType* g_slot_type = nullptr;

// A callback runner that just answered polls a while for the same call's next
// callback (callback_poll): the Python thread then hands the message over
// here instead of sending it, so the runner is not woken through its
// scheduler (enif_send from a thread the BEAM does not manage: a wake-up and
// thread-progress work each). A few runners at once; more simply get messages.
enum PollerState : int { kFree, kReserving, kPolling, kClaimed, kHanded };

struct Poller {
  std::atomic<int> state{kFree};
  ErlNifPid pid;     // written while kReserving, read once kPolling is seen
  ErlNifEnv* env;    // the handed message's (the runner frees it)
  ERL_NIF_TERM msg;
};

constexpr int kPollers = 8;
Poller g_pollers[kPollers];
std::atomic<uint64_t> g_handed{0};

// Hands `msg` (in `msg_env`) to `to` if it is polling; then the runner owns msg_env.
bool hand_over(const ErlNifPid& to, ErlNifEnv* msg_env, ERL_NIF_TERM msg) {
  for (Poller& p : g_pollers) {
    if (p.state.load(std::memory_order_acquire) != kPolling || enif_compare_pids(&p.pid, &to) != 0) continue;
    int polling = kPolling;
    if (!p.state.compare_exchange_strong(polling, kClaimed, std::memory_order_acq_rel)) continue;
    p.env = msg_env;
    p.msg = msg;
    p.state.store(kHanded, std::memory_order_release);
    g_handed.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

void slot_dtor(ErlNifEnv*, void* p) {
  auto* slot = static_cast<Slot*>(p);
  enif_free_env(slot->env);
  slot->~Slot();
}

class NifHost : public ElixirHost {
 public:
  PyObject* call(const TermPayload* fun, PyObject* module, PyObject* function, PyObject* args,
                 PyObject* kwargs) override {
    auto* slot = static_cast<Slot*>(enif_alloc_resource(g_slot_type, sizeof(Slot)));
    new (slot) Slot();
    slot->env = enif_alloc_env();
    struct Keep {
      Slot* s;
      ~Keep() { enif_release_resource(s); }
    } keep{slot};

    ErlNifEnv* msg_env = enif_alloc_env();
    struct FreeEnv {
      ErlNifEnv* e;
      ~FreeEnv() {
        if (e) enif_free_env(e);
      }
    } free_env{msg_env};
    try {
      ErlNifPid to;
      ERL_NIF_TERM ref;
      if (!callback_target(msg_env, &to, &ref)) {
        // No request runs on this thread (a thread Python started, a timer):
        // a process under SnakeBridge's supervisor runs it.
        ref = atoms.nil;
        if (!enif_whereis_pid(nullptr, atoms.callbacks_server, &to)) {
          PyErr_SetString(PyExc_RuntimeError, "SnakeBridge.Callbacks is not running: the :snakebridge application is stopped");
          return nullptr;
        }
      }
      TermSink sink(msg_env);
      sink.begin_tuple(6);
      sink.term(atoms.snakebridge_callback);
      sink.term(ref);
      sink.term(enif_make_resource(msg_env, slot));
      emit_callback(sink, fun, module, function, args, kwargs);
      sink.end_tuple();
      ERL_NIF_TERM msg = sink.take();
      if (hand_over(to, msg_env, msg)) {
        free_env.e = nullptr;
      } else if (!enif_send(nullptr, &to, msg_env, msg)) {
        PyErr_SetString(PyExc_RuntimeError, "the Elixir process that would run the callback is gone");
        return nullptr;
      }
    } catch (const PythonException& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
      return nullptr;
    }

    if (!slot->wait.wait([slot] { return slot->state.load(std::memory_order_acquire) == kAnswered; })) {
      int waiting = kWaiting;
      if (slot->state.compare_exchange_strong(waiting, kAbandoned)) return nullptr;  // Cancelled is set
      // Answered just now: take it (the interrupt will come again if still wanted).
      PyErr_Clear();
      while (slot->state.load(std::memory_order_acquire) != kAnswered) {
      }
    }
    TermReader reader(slot->env);
    return callback_answer(reader, slot->answer);
  }

  bool send(const TermPayload& pid, PyObject* message) override {
    ErlNifPid to;
    auto& p = static_cast<const NifTerm&>(pid);
    if (!enif_get_local_pid(p.env, p.term, &to)) {
      PyErr_SetString(PyExc_ValueError, "send: not a local pid");
      return false;
    }
    ErlNifEnv* msg_env = enif_alloc_env();
    try {
      TermSink sink(msg_env);
      ToElixir<TermSink> walk(sink, ReturnMode::Auto);
      walk.value(message, 0);
      enif_send(nullptr, &to, msg_env, sink.take());
    } catch (const PythonException& e) {
      enif_free_env(msg_env);
      PyErr_SetString(PyExc_TypeError, e.what());
      return false;
    }
    enif_free_env(msg_env);
    return true;
  }
};

NifHost g_host;

}  // namespace

uint64_t handed_callbacks() { return g_handed.load(std::memory_order_relaxed); }

NifTerm::NifTerm(ErlNifEnv* source, ERL_NIF_TERM t) : env(enif_alloc_env()), term(enif_make_copy(env, t)) {
  (void)source;
}
NifTerm::~NifTerm() { enif_free_env(env); }
bool NifTerm::same(const TermPayload& other) const {
  auto* o = dynamic_cast<const NifTerm*>(&other);
  return o && enif_compare(term, o->term) == 0;
}
uint64_t NifTerm::hash() const { return enif_hash(ERL_NIF_PHASH2, term, 0); }
std::string NifTerm::describe() const {
  char buf[160];
  enif_snprintf(buf, sizeof buf, "%T", term);
  return buf;
}

PyRef python_term(ErlNifEnv* env, ERL_NIF_TERM t) {
  TermKind kind = enif_is_pid(env, t)    ? TermKind::Pid
                  : enif_is_ref(env, t)  ? TermKind::Reference
                  : enif_is_port(env, t) ? TermKind::Port
                  : enif_is_fun(env, t)  ? TermKind::Function
                                         : TermKind::Other;
  return make_elixir_term(kind, std::make_shared<NifTerm>(env, t));
}

void open_callback_types(ErlNifEnv* env) {
  auto flags = static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER);
  g_slot_type = enif_open_resource_type(env, nullptr, "snakebridge_callback_slot", slot_dtor, flags, nullptr);
  set_elixir_host(&g_host);
}

Term callback_reply(ErlNifEnv* env, Term slot_term, Term answer) {
  Slot* slot;
  if (!enif_get_resource(env, slot_term, g_slot_type, reinterpret_cast<void**>(&slot))) {
    throw ArgumentError("expected a callback slot");
  }
  int waiting = kWaiting;
  if (!slot->state.compare_exchange_strong(waiting, kStoring)) return atoms.abandoned;
  slot->answer = enif_make_copy(slot->env, answer);
  slot->state.store(kAnswered, std::memory_order_release);
  slot->wait.notify();
  return atoms.ok;
}

SB_NIF("callback_reply", callback_reply, 0);

// callback_poll(max_us) -> the next callback message for the calling process
// ({:snakebridge_callback, ...}, as it would have been received), or :none
// after max_us. For a callback runner that just answered.
Term callback_poll(ErlNifEnv* env, uint64_t max_us) {
  ErlNifPid self;
  enif_self(env, &self);
  Poller* mine = nullptr;
  for (Poller& p : g_pollers) {
    int free_ = kFree;
    if (p.state.load(std::memory_order_relaxed) == kFree &&
        p.state.compare_exchange_strong(free_, kReserving, std::memory_order_acq_rel)) {
      p.pid = self;
      p.state.store(kPolling, std::memory_order_release);
      mine = &p;
      break;
    }
  }
  if (mine == nullptr) return atoms.none;
  uint64_t t0 = monotonic_ns();
  uint64_t until = t0 + max_us * 1000;
  for (;;) {
    int s = mine->state.load(std::memory_order_acquire);
    if (s == kHanded) break;
    if (s == kPolling && monotonic_ns() >= until) {
      int polling = kPolling;
      if (mine->state.compare_exchange_strong(polling, kFree, std::memory_order_acq_rel)) {
        consume_timeslice_since(env, t0);
        return atoms.none;
      }
      continue;  // claimed just now: it is being handed over
    }
    // Past the first microseconds the core goes to whoever else is ready: on
    // two cores, often the very Python thread whose callback is awaited.
    if (monotonic_ns() - t0 < 3'000) cpu_relax();
    else sched_yield();
  }
  ERL_NIF_TERM msg = enif_make_copy(env, mine->msg);
  enif_free_env(mine->env);
  mine->state.store(kFree, std::memory_order_release);
  consume_timeslice_since(env, t0);
  return msg;
}
SB_NIF("callback_poll", callback_poll, 0);

}  // namespace sb::nif
