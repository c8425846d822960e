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

// Where a Python thread's callbacks at one nesting depth meet their answers:
// made once per thread and depth, and reused by each callback there (a sort
// key calls back 10,000 times: no environment or resource is made per
// callback). A resource, since the Elixir side holds it in the callback's
// slot term {link, generation} and may answer late; the generation tells a
// late answer from the current one.
enum SlotState : uint64_t { kWaiting, kStoring, kAnswered, kAbandoned };

struct Link {
  ErlNifEnv* msg_env;     // the request; the Python thread's, cleared before each callback
  ErlNifEnv* answer_env;  // the answer, stored by callback_reply
  ERL_NIF_TERM answer;
  std::atomic<uint64_t> state{0};  // generation << 2 | SlotState
  // The request is in a runner's hands (hand_over) and not yet copied out of
  // msg_env: the runner is inside callback_poll, and clears this at once.
  std::atomic<bool> in_hand{false};
  uint64_t generation = 0;  // the Python thread's
  CallbackWait wait;        // made on the Python thread that uses this link
};

constexpr uint64_t state_of(uint64_t generation, SlotState s) { return generation << 2 | s; }

ErlNifResourceType* g_link_type = nullptr;

// A callback runner that just answered polls a while for the same call's next
// callback (callback_poll): the Python thread then hands the message over
// here instead of sending it, so the runner is not woken through its
// scheduler (enif_send from a thread the BEAM does not manage: a wake-up and
// thread-progress work each). A few runners at once; more simply get messages.
enum PollerState : int { kFree, kReserving, kPolling, kClaimed, kHanded };

struct alignas(64) Poller {
  std::atomic<int> state{kFree};
  ErlNifPid pid;  // written while kReserving, read once kPolling is seen
  Link* link;     // the handed message's (in link->msg_env: the runner copies it)
  ERL_NIF_TERM msg;
};

constexpr int kPollers = 8;
Poller g_pollers[kPollers];
std::atomic<uint64_t> g_handed{0};

// Hands `msg` (in link->msg_env) to `to` if it is polling.
bool hand_over(const ErlNifPid& to, Link* link, ERL_NIF_TERM msg) {
  for (Poller& p : g_pollers) {
    if (p.state.load(std::memory_order_acquire) != kPolling || enif_compare_pids(&p.pid, &to) != 0) continue;
    int polling = kPolling;
    if (!p.state.compare_exchange_strong(polling, kClaimed, std::memory_order_acq_rel)) continue;
    link->in_hand.store(true, std::memory_order_relaxed);
    p.link = link;
    p.msg = msg;
    p.state.store(kHanded, std::memory_order_release);
    g_handed.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

void link_dtor(ErlNifEnv*, void* p) {
  auto* link = static_cast<Link*>(p);
  enif_free_env(link->msg_env);
  enif_free_env(link->answer_env);
  link->~Link();
}

// This thread's links, by nesting depth (a callback that calls Python that
// calls back is one deeper), released when the thread ends.
struct ThreadLinks {
  std::vector<Link*> by_depth;
  size_t depth = 0;
  ~ThreadLinks() {
    for (Link* l : by_depth) enif_release_resource(l);
  }
  Link* enter() {
    if (depth == by_depth.size()) {
      auto* l = static_cast<Link*>(enif_alloc_resource(g_link_type, sizeof(Link)));
      new (l) Link();
      l->msg_env = enif_alloc_env();
      l->answer_env = enif_alloc_env();
      by_depth.push_back(l);
    }
    return by_depth[depth++];
  }
};
thread_local ThreadLinks t_links;

class NifHost : public ElixirHost {
 public:
  PyObject* call(const TermPayload* fun, PyObject* module, PyObject* function, PyObject* args,
                 PyObject* kwargs) override {
    Link* link = t_links.enter();
    struct Leave {
      ~Leave() { --t_links.depth; }
    } leave;
    // The last request was copied out by its runner before it answered, or,
    // given up, is being copied now.
    while (link->in_hand.load(std::memory_order_acquire)) cpu_relax();
    enif_clear_env(link->msg_env);
    enif_clear_env(link->answer_env);
    uint64_t gen = ++link->generation;
    link->state.store(state_of(gen, kWaiting), std::memory_order_release);

    ErlNifEnv* msg_env = link->msg_env;
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
      sink.term(enif_make_tuple2(msg_env, enif_make_resource(msg_env, link), enif_make_uint64(msg_env, gen)));
      emit_callback(sink, fun, module, function, args, kwargs);
      sink.end_tuple();
      ERL_NIF_TERM msg = sink.take();
      // enif_send clears msg_env; a runner handed the message copies it out.
      if (!hand_over(to, link, msg) && !enif_send(nullptr, &to, msg_env, msg)) {
        PyErr_SetString(PyExc_RuntimeError, "the Elixir process that would run the callback is gone");
        return nullptr;
      }
    } catch (const PythonException& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
      return nullptr;
    }

    uint64_t answered = state_of(gen, kAnswered);
    if (!link->wait.wait([link, answered] { return link->state.load(std::memory_order_acquire) == answered; })) {
      uint64_t waiting = state_of(gen, kWaiting);
      if (link->state.compare_exchange_strong(waiting, state_of(gen, kAbandoned))) return nullptr;  // Cancelled is set
      // Answered just now: take it (the interrupt will come again if still wanted).
      PyErr_Clear();
      while (link->state.load(std::memory_order_acquire) != answered) cpu_relax();
    }
    TermReader reader(link->answer_env);
    return callback_answer(reader, link->answer);
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
  g_link_type = enif_open_resource_type(env, nullptr, "snakebridge_callback_link", link_dtor, flags, nullptr);
  set_elixir_host(&g_host);
}

Term callback_reply(ErlNifEnv* env, Term slot_term, Term answer) {
  Link* link;
  const ERL_NIF_TERM* slot;
  int n;
  ErlNifUInt64 gen;
  if (!enif_get_tuple(env, slot_term, &n, &slot) || n != 2 ||
      !enif_get_resource(env, slot[0], g_link_type, reinterpret_cast<void**>(&link)) ||
      !enif_get_uint64(env, slot[1], &gen)) {
    throw ArgumentError("expected a callback slot");
  }
  uint64_t waiting = state_of(gen, kWaiting);
  if (!link->state.compare_exchange_strong(waiting, state_of(gen, kStoring))) return atoms.abandoned;
  link->answer = enif_make_copy(link->answer_env, answer);
  link->state.store(state_of(gen, kAnswered), std::memory_order_release);
  link->wait.notify();
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
  bool stop = false;
  for (;;) {
    int s = mine->state.load(std::memory_order_acquire);
    if (s == kHanded) break;
    uint64_t now = monotonic_ns();
    if (s == kPolling && (stop || now >= until)) {
      int polling = kPolling;
      if (mine->state.compare_exchange_strong(polling, kFree, std::memory_order_acq_rel)) {
        consume_timeslice_since(env, t0);
        return atoms.none;
      }
      continue;  // claimed just now: it is being handed over
    }
    // Past the first microseconds the core goes to whoever else is ready: on
    // two cores, often the very Python thread whose callback is awaited.
    if (!poll_pause(t0, now)) stop = true;
  }
  ERL_NIF_TERM msg = enif_make_copy(env, mine->msg);
  mine->link->in_hand.store(false, std::memory_order_release);
  mine->state.store(kFree, std::memory_order_release);
  consume_timeslice_since(env, t0);
  return msg;
}
SB_NIF("callback_poll", callback_poll, 0);

}  // namespace sb::nif
