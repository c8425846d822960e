#include "jobs.hpp"

#include <sched.h>

#include <memory>
#include <utility>

#include "../core/elixir_terms.hpp"
#include "../core/interpreter.hpp"
#include "../core/interrupter.hpp"
#include "../core/interrupts.hpp"
#include "../core/prebuilt_bytes.hpp"
#include "../core/python_threads.hpp"
#include "../core/spin.hpp"
#include "atoms.hpp"
#include "decoders.hpp"
#include "execution.hpp"
#include "python_output.hpp"
#include "term_reader.hpp"
#include "thread_free.hpp"

namespace sb::nif {

std::atomic<bool> g_wait_for_quick{true};

namespace {

// How long a scheduler waits for a reply it expects to be quick before it lets
// the process wait in its mailbox instead: far below the ~1 ms a NIF may take.
constexpr uint64_t kWaitNs = 50'000;
// Requests of a process that took longer than this are not waited for on the
// scheduler (until one is quick again).
constexpr uint64_t kQuickNs = 20'000;

// ---------------------------------------------------------------- bindings

struct Job;

struct Binding {
  PythonThread* thread;
  // How long the process's last request ran on its thread (0: none yet).
  std::atomic<uint64_t> last_ns{0};
  // A job whose reply was waited for, kept for the process's next request
  // (allocating a job and its environment is a good part of a quick call).
  std::atomic<Job*> spare{nullptr};
};

ErlNifResourceType* g_binding_type = nullptr;

void binding_dtor(ErlNifEnv*, void* p) {
  auto* b = static_cast<Binding*>(p);
  if (b->thread) PythonThreads::instance().unbind(b->thread);
  if (Job* spare = b->spare.exchange(nullptr)) enif_release_resource(spare);
  b->~Binding();
}

// ---------------------------------------------------------------- jobs

enum JobState : int { kQueued, kRunning, kSent, kCancelled };
// Who takes the reply: a message (kByMessage), the scheduler waiting for it
// (kWaiting until the thread leaves it, kLeft once it has).
enum Waiter : int { kByMessage, kWaiting, kLeft };

struct Job {
  ErlNifEnv* env;  // owns the copied request, then the reply
  ERL_NIF_TERM request;
  ERL_NIF_TERM ref;
  ERL_NIF_TERM reply;
  ErlNifPid caller;
  ReturnMode mode;
  Binding* binding;  // kept (enif_keep_resource) for the job's life
  std::atomic<int> state;
  std::atomic<int> waiter;
  bool wrote = false;  // Python wrote output (sent as messages tagged ref)
  // Who runs the job, for interrupting it (timeout, cancel, dead caller).
  std::shared_ptr<InterruptTarget> target;
  // Where callbacks go once the caller has started the call's runner
  // (route_callbacks); before that, to the caller.
  ErlNifPid route;
  std::atomic<bool> routed{false};
  // Large bytes arguments made on the scheduler (core/prebuilt_bytes.hpp).
  PrebuiltBytes prebuilt;
};

ErlNifResourceType* g_job_type = nullptr;

void job_dtor(ErlNifEnv*, void* p) {
  auto* job = static_cast<Job*>(p);
  job->prebuilt.release_rest();
  if (job->env) enif_free_env(job->env);
  if (job->binding) enif_release_resource(job->binding);
  job->~Job();
}

// The job this thread is running (nested: a request made from a callback
// while the thread waits for the callback's answer).
thread_local Job* t_job = nullptr;

// On the binding's Python thread.
void run_job(Job* job) {
  int expected = kQueued;
  if (!job->state.compare_exchange_strong(expected, kRunning)) {
    job->prebuilt.release_rest();
    enif_release_resource(job);  // cancelled before it started
    return;
  }
  ERL_NIF_TERM reply;
  job->target->tstate.store(this_thread_state());
  uint64_t t0 = monotonic_ns();
  {
    GilTurn turn([job] { return job->state.load() == kCancelled; });
    if (!turn.ok()) {
      // Cancelled while waiting for its turn: nothing started, no reply wanted.
      job->prebuilt.release_rest();
      job->target->finished = true;
      enif_release_resource(job);
      return;
    }
    Gil gil;
    turn.done();
    clear_interrupt();
    if (job->state.load() == kCancelled) {
      // Cancelled while this thread waited for the GIL: the interrupt it aimed
      // at us was just cleared, so do not start the work at all.
      job->prebuilt.release_rest();
      job->target->finished = true;
      enif_release_resource(job);
      return;
    }
    {
      // Output goes to the caller live, tagged with the reply's ref, while the
      // job is still wanted.
      CallerScope scope(&job->caller, job->ref, &job->state, kRunning);
      Job* outer = std::exchange(t_job, job);
      CurrentRequest current(job->target.get());
      InterruptibleScope interruptible;
      WireRequest<ERL_NIF_TERM> wire;
      bool decoded = decode_request(job->env, job->request, job->mode, &wire);
      {
        UsePrebuiltBytes prebuilt(&job->prebuilt);
        reply = run_request(job->env, decoded ? &wire : nullptr);
      }
      job->prebuilt.release_rest();
      job->wrote = scope.wrote();
      t_job = outer;
    }
    job->target->finished = true;
    expected = kRunning;
    if (job->state.compare_exchange_strong(expected, kSent)) {
      // Handed over before the GIL is let go: the caller goes on meanwhile.
      job->binding->last_ns.store(monotonic_ns() - t0 + 1, std::memory_order_relaxed);
      job->reply = reply;
      int waiting = kWaiting;
      if (!job->waiter.compare_exchange_strong(waiting, kLeft, std::memory_order_acq_rel)) {
        ERL_NIF_TERM msg = enif_make_tuple2(job->env, job->ref, reply);
        enif_send(nullptr, &job->caller, job->env, msg);
      }
    } else {
      // A cancel may have aimed an exception at this thread after the work ended.
      clear_interrupt();
      PyErr_Clear();
    }
    drain_released(256);
  }
  enif_release_resource(job);
}

// Large SnakeBridge.Bytes arguments of a call (the job's copy of them, which
// the thread will read), made here where their data is (core/prebuilt_bytes.hpp).
// Returns how many bytes were copied.
size_t prebuild_bytes(Job* job) {
  int arity;
  const ERL_NIF_TERM* a;
  if (!enif_get_tuple(job->env, job->request, &arity, &a) || arity != 5 || a[0] != atoms.call) return 0;
  TermReader reader(job->env);
  size_t total = 0;
  unsigned seen = 0;
  ERL_NIF_TERM list = a[3], head;
  while (seen++ < 16 && enif_get_list_cell(job->env, list, &head, &list)) {
    if (!enif_is_map(job->env, head) || reader.kind(head) != WireKind::Bytes) continue;
    std::string_view b = reader.text(head);
    if (b.size() < kPrebuildLeast || total + b.size() > kPrebuildMost) continue;
    if (PyObject* made = bytes_without_gil(b.data(), b.size())) {
      job->prebuilt.add(b.data(), b.size(), made);
      total += b.size();
    }
  }
  return total;
}

// Waits on this scheduler for the thread to leave the reply; false when it
// takes too long (the reply then comes by message).
bool wait_for_reply(Job* job) {
  // Polling the core for a few microseconds (a quick call on an awake thread
  // takes about one), then yielding it: on a busy machine the thread we wait
  // for may need this very core. If that thread last ran on this core, it
  // needs it now: yield from the start.
  Poll poll(monotonic_ns() + kWaitNs, job->binding->thread->cpu() == sched_getcpu() ? 0 : 3'000);
  while (job->waiter.load(std::memory_order_acquire) == kWaiting) {
    if (poll.expired()) {
      int waiting = kWaiting;
      if (job->waiter.compare_exchange_strong(waiting, kByMessage, std::memory_order_acq_rel)) return false;
    }
  }
  // The thread left the reply, or it called back to Elixir (callback_target):
  // the process must read its mailbox.
  return job->waiter.load(std::memory_order_acquire) == kLeft;
}

}  // namespace

bool callback_target(ErlNifEnv* env, ErlNifPid* pid, ERL_NIF_TERM* ref) {
  Job* job = t_job;
  if (!job) return false;
  // A scheduler waiting for the reply lets the process go to its mailbox.
  int waiting = kWaiting;
  job->waiter.compare_exchange_strong(waiting, kByMessage, std::memory_order_acq_rel);
  *pid = job->routed.load(std::memory_order_acquire) ? job->route : job->caller;
  *ref = enif_make_copy(env, job->ref);
  return true;
}

Term route_callbacks(ErlNifEnv* env, Term job_term, Term pid) {
  Job* job;
  ErlNifPid to;
  if (!enif_get_resource(env, job_term, g_job_type, reinterpret_cast<void**>(&job)) ||
      !enif_get_local_pid(env, pid, &to)) {
    throw ArgumentError("expected a job and a local pid");
  }
  job->route = to;
  job->routed.store(true, std::memory_order_release);
  return atoms.ok;
}

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

void open_job_types(ErlNifEnv* env) {
  auto flags = static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER);
  ErlNifResourceTypeInit init = {};
  init.dtor = job_dtor;
  init.down = job_down;
  g_job_type = enif_open_resource_type_x(env, "snakebridge_job", &init, flags, nullptr);
  ErlNifResourceTypeInit binding = {};
  binding.dtor = binding_dtor;
  g_binding_type = enif_open_resource_type_x(env, "snakebridge_thread_binding", &binding, flags, nullptr);
}

Term bind_thread(ErlNifEnv* env) {
  if (!interpreter_ready()) return enif_make_tuple2(env, atoms.error, atoms.not_started);
  auto* b = static_cast<Binding*>(enif_alloc_resource(g_binding_type, sizeof(Binding)));
  new (b) Binding();
  b->thread = nullptr;
  ERL_NIF_TERM term = enif_make_resource(env, b);
  enif_release_resource(b);  // the term's reference is released by the GC
  b->thread = PythonThreads::instance().bind();
  return term;
}

Term execute(ErlNifEnv* env, Term request, ReturnMode mode, Term binding_term) {
  Binding* binding;
  if (!enif_get_resource(env, binding_term, g_binding_type, reinterpret_cast<void**>(&binding))) {
    throw ArgumentError("expected a thread binding");
  }
  if (!interpreter_ready()) return enif_make_tuple2(env, atoms.error, atoms.not_started);
  PythonThread* thread = binding->thread;

  // A call that cannot tell which thread runs it (a math function given
  // numbers) runs right here when nothing else is in Python or about to be:
  // no thread in a call, none with a call queued (thread_free.hpp).
  ERL_NIF_TERM reply;
  PythonThreads& threads = PythonThreads::instance();
  if (g_wait_for_quick.load(std::memory_order_relaxed) && threads.queued() == 0 && threads.busy() == 0 &&
      run_thread_free(env, request, mode, &reply)) {
    return reply;
  }

  Job* job = binding->spare.exchange(nullptr, std::memory_order_acq_rel);
  if (job == nullptr) {
    job = static_cast<Job*>(enif_alloc_resource(g_job_type, sizeof(Job)));
    new (job) Job();
    job->env = enif_alloc_env();
    job->target = std::make_shared<InterruptTarget>();
  } else {
    // Its last request was waited for here: nobody else refers to it.
    job->wrote = false;
    job->routed.store(false, std::memory_order_relaxed);
    job->target->tstate.store(nullptr);
    job->target->finished = false;
  }
  job->request = enif_make_copy(job->env, request);
  if (size_t copied = prebuild_bytes(job)) {
    // About 0.5 ms for 2 MiB: counted against this process's timeslice.
    int percent = static_cast<int>(copied / 20'000);
    if (percent > 0) enif_consume_timeslice(env, percent > 100 ? 100 : percent);
  }
  job->ref = enif_make_ref(job->env);
  enif_self(env, &job->caller);
  job->mode = mode;
  enif_keep_resource(binding);
  job->binding = binding;
  job->state = kQueued;

  // Wait here when the reply should come within a few microseconds: the
  // process's last request was quick (its time includes waiting for the GIL),
  // its thread has nothing queued, and at most one thread is inside a task
  // (maybe this thread itself, finishing the process's last request). A thread
  // asleep takes tens of microseconds to wake, within the wait: the next
  // request, coming at once, then finds it awake and polling.
  uint64_t last = binding->last_ns.load(std::memory_order_relaxed);
  bool wait = g_wait_for_quick.load(std::memory_order_relaxed) && last < kQuickNs && thread->queued() == 0 &&
              PythonThreads::instance().busy() <= 1;
  job->waiter.store(wait ? kWaiting : kByMessage, std::memory_order_relaxed);

  enif_keep_resource(job);  // the thread's reference
  uint64_t t0 = monotonic_ns();
  thread->submit([job] { run_job(job); });

  if (wait && wait_for_reply(job)) {
    reply = enif_make_copy(env, job->reply);
    if (job->wrote) {
      int arity;
      const ERL_NIF_TERM* items;
      enif_get_tuple(env, reply, &arity, &items);
      reply = enif_make_tuple3(env, items[0], items[1], enif_make_copy(env, job->ref));
    }
    // Kept for the next request (the thread may not have dropped its own
    // reference yet; it touches nothing else once it has handed the reply).
    enif_clear_env(job->env);
    enif_release_resource(job->binding);
    job->binding = nullptr;
    if (Job* old = binding->spare.exchange(job, std::memory_order_acq_rel)) enif_release_resource(old);
    consume_timeslice_since(env, t0);
    return reply;
  }

  ERL_NIF_TERM job_term = enif_make_resource(env, job);
  enif_release_resource(job);  // the term's reference is released by the GC
  ErlNifMonitor monitor;
  enif_monitor_process(env, job, &job->caller, &monitor);
  return enif_make_tuple3(env, atoms.pending, job_term, enif_make_copy(env, job->ref));
}

Term cancel(ErlNifEnv* env, Term job_term) {
  Job* job;
  if (!enif_get_resource(env, job_term, g_job_type, reinterpret_cast<void**>(&job))) {
    throw ArgumentError("expected a job");
  }
  int s = job->state.load();
  while (true) {
    if (s == kSent) return atoms.sent;
    if (s == kCancelled) return atoms.cancelled;
    if (job->state.compare_exchange_weak(s, kCancelled)) break;
  }
  if (s == kRunning) interrupt_until_finished(job->target);
  return atoms.cancelled;
}

SB_NIF("bind_thread", bind_thread, 0);
SB_NIF("execute", execute, 0);
SB_NIF("cancel", cancel, 0);
SB_NIF("route_callbacks", route_callbacks, 0);

}  // namespace sb::nif
