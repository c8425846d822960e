#include "thread_free.hpp"

#include <atomic>

#include "../core/gil_probe.h"
#include "../core/interpreter.hpp"
#include "../core/python_threads.hpp"
#include "../core/spin.hpp"
#include "../core/thread_free.hpp"
#include "atoms.hpp"
#include "execution.hpp"
#include "term_reader.hpp"

namespace sb::nif {
namespace {

std::atomic<uint64_t> g_calls{0};

// One scheduler at a time runs such a call. Two schedulers taking the GIL at
// once would make one wait in CPython's own GIL wait, which wakes through the
// kernel (tens of microseconds here, tens of calls); waiting for the other
// scheduler's call to end, a microsecond or so, is much cheaper. Given up
// (the call then goes to the process's thread) after kTurnWaitNs: the other
// scheduler's thread may have been preempted.
std::atomic<bool> g_turn{false};
constexpr uint64_t kTurnWaitNs = 20'000;

class SchedulerTurn {
 public:
  SchedulerTurn() {
    uint64_t until = 0;
    unsigned steps = 0;
    while (g_turn.load(std::memory_order_relaxed) || g_turn.exchange(true, std::memory_order_acquire)) {
      cpu_relax();
      if ((++steps & 63) != 0) continue;
      uint64_t now = monotonic_ns();
      if (until == 0) until = now + kTurnWaitNs;
      else if (now > until) return;
    }
    held_ = true;
  }
  ~SchedulerTurn() {
    if (held_) g_turn.store(false, std::memory_order_release);
  }
  SchedulerTurn(const SchedulerTurn&) = delete;
  SchedulerTurn& operator=(const SchedulerTurn&) = delete;
  bool held() const { return held_; }

 private:
  bool held_ = false;
};

}  // namespace

bool run_thread_free(ErlNifEnv* env, ERL_NIF_TERM request, ReturnMode mode, ERL_NIF_TERM* reply) {
  WireRequest<ERL_NIF_TERM> wire;
  TermReader reader(env);
  if (!decode_request(env, request, mode, &wire) || !thread_free_call(reader, wire)) return false;
  SchedulerTurn turn;
  // Nothing in Python: no SnakeBridge thread in a call or with one queued
  // (checked by the caller, again now after waiting for the turn), and the GIL
  // free at this instant.
  PythonThreads& threads = PythonThreads::instance();
  if (!turn.held() || threads.busy() != 0 || threads.queued() != 0 || sb_gil_probe() != SB_GIL_FREE) return false;
  Gil gil;
  PyObject* f = thread_free_function(reader.text(wire.target), reader.text(wire.name));
  if (f == nullptr) return false;
  NoCollection no_collection;
  *reply = run_call(env, f, wire.args, wire.kwargs, mode);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  return true;
}

uint64_t thread_free_calls() { return g_calls.load(std::memory_order_relaxed); }

}  // namespace sb::nif
