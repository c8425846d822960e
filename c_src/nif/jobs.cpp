#include "jobs.hpp"

#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>

#include "../core/call_site_key.hpp"
#include "../core/call_sites.hpp"
#include "../core/interpreter.hpp"
#include "../core/interrupter.hpp"
#include "../core/interrupts.hpp"
#include "../core/recursion_bound.hpp"
#include "../core/worker_pool.hpp"
#include "atoms.hpp"
#include "decoders.hpp"
#include "execution.hpp"
#include "fast_path.hpp"
#include "python_output.hpp"
#include "term_reader.hpp"

namespace sb::nif {
namespace {

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

// ---------------------------------------------------------------- jobs

// Below this many levels of Python recursion left to it, a call does not run on
// the scheduler at all (ordinary code nests a few dozen frames).
constexpr int kMinFastPathLevels = 64;

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
      WireRequest<ERL_NIF_TERM> wire;
      bool decoded = decode_request(job->env, job->request, job->mode, &wire);
      reply = run_request(job->env, decoded ? &wire : nullptr);
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

Term execute(ErlNifEnv* env, Term request, ReturnMode mode, int64_t timeout_ms) {
  if (!interpreter_ready()) return enif_make_tuple2(env, atoms.error, atoms.not_started);
  WireRequest<ERL_NIF_TERM> wire;
  bool decoded = decode_request(env, request, mode, &wire);
  std::string key;
  if (decoded) {
    TermReader reader(env);
    key = call_site_key(reader, wire);
  }
  CallSite* site = call_site(key);

  // Fast path: the site is known to be quick and no pool thread is inside Python,
  // so the GIL is free (or about to be) and this scheduler is not held up.
  if (site->fast.load(std::memory_order_acquire) && g_fast_path_enabled.load(std::memory_order_relaxed) &&
      g_busy_workers.load(std::memory_order_acquire) == 0) {
    uint64_t t0 = monotonic_ns();
    ERL_NIF_TERM result;
    bool ran = false;
    bool rerun = false;
    {
      Gil gil;
      // A scheduler's C stack is much smaller than a pool thread's: Python may
      // recurse here only as deep as the stack left can hold (recursion_bound.hpp).
      RecursionBound bound(this_thread_state());
      if (bound.levels() >= kMinFastPathLevels) {
        ran = true;
        ErlNifPid self;
        enif_self(env, &self);
        CallerScope scope(env, &self);
        FastCall guard(site, timeout_ms);
        bool recursion_error = false;
        {
          InterruptibleScope interruptible;
          result = run_request(env, decoded ? &wire : nullptr, &recursion_error);
        }
        bool timed_out = guard.finish();
        if (timed_out) result = enif_make_tuple2(env, atoms.error, atoms.timeout);
        if (bound.active() && recursion_error) {
          // Maybe our bound, not Python's limit: the pool's 8 MiB stack may get
          // further. The site goes back to the pool, and so does this call,
          // from the start, unless that would show the caller something twice
          // (output already sent) or it is past its deadline.
          demote(site);
          rerun = !timed_out && !scope.wrote();
        }
        result = with_output_mark(env, result, scope);
        drain_released(64);
      }
    }
    if (ran && !rerun) {
      uint64_t elapsed = monotonic_ns() - t0;
      // CPU-heavy runs are caught by the watchdog while they run; here only a run
      // blocked for long (wall time past kDemoteBlockedNs) demotes.
      record_fast_run(site, elapsed, 0);
      int percent = static_cast<int>(elapsed / 10'000);  // of a 1 ms timeslice
      if (percent > 0) enif_consume_timeslice(env, percent > 100 ? 100 : percent);
      return result;
    }
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

SB_NIF("execute", execute, 0);
SB_NIF("cancel", cancel, 0);

}  // namespace sb::nif
