// The OS threads that run Python (docs/backends.md, "Threading model").
//
// An Elixir process is a Python thread: every request of one caller (an Elixir
// process in-process, a client key in the port program) runs on the caller's
// own PythonThread, one after another in arrival order, so Python objects that
// check their creating thread (sqlite3) and thread-local state (threading.local,
// decimal and other contextvars, asyncio's current loop) behave across the
// caller's successive requests as across the statements of one Python thread.
//
// Threads are bounded (set_max). A new caller gets a thread nobody is bound to
// (its thread-local state cleared first, so nothing of an earlier caller shows
// through), else a new thread while under the bound, else the thread with the
// fewest callers: past the bound, callers share threads, and their requests
// then queue behind each other and see each other's thread-local state.
//
// Each thread keeps one PyThreadState for life (interpreter.hpp) and takes the
// GIL per task, so Python releasing the GIL (sleeps, I/O, numpy) overlaps across
// threads. After a task a thread polls its queue for a while before it sleeps
// (set_spin_ns): a caller that calls again at once then finds it awake, and the
// hand-off costs a cache line instead of a wake-up (~45 µs on these machines).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

namespace sb {

class PythonThread {
 public:
  // Runs `task` on this thread after those submitted before it. The task takes
  // the GIL itself.
  void submit(std::function<void()> task);
  // Tasks submitted and not started.
  size_t queued() const { return queued_.load(std::memory_order_acquire); }
  // The core this thread last polled on (-1: unknown). A caller waiting on
  // the same core must give it away at once rather than poll it: the thread
  // cannot run there meanwhile.
  int cpu() const { return cpu_.load(std::memory_order_relaxed); }

  // The PythonThread this code runs on (null on any other thread).
  static PythonThread* current();
  // On this thread, GIL not held, inside a task (a callback to Elixir waiting
  // for its reply): runs the tasks submitted meanwhile (the caller's nested
  // requests, made from the callback) until done() or abandoned(), both
  // checked whenever wake() is called and at least every 5 ms. Returns done().
  bool serve_until(const std::function<bool()>& done, const std::function<bool()>& abandoned);
  // From any thread: have serve_until look at its conditions now.
  void wake();

 private:
  friend class PythonThreads;
  void serve();
  bool next(std::function<void()>* task, uint64_t spin_ns);
  bool next_soon(std::function<void()>* task);
  void pop_locked(std::function<void()>* task);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::atomic<size_t> queued_{0};  // tasks_.size(), readable without the lock
  std::atomic<int> cpu_{-1};
  std::atomic<int> caller_cpu_{-1};  // the core of the last submitter
  bool sleeping_ = false;  // under mu_: waiting on cv_
  std::atomic<bool> awaiting_wake_{false};  // serve_until is about to sleep, or sleeps
  // Under PythonThreads::mu_.
  size_t callers_ = 0;
  bool used_ = false;  // ran a task since its thread-local state was last cleared
  bool ticks_ = false;  // the first thread: releases dropped references when idle
};

class PythonThreads {
 public:
  static PythonThreads& instance();

  void set_max(size_t n);  // at least 1; threads already started stay
  size_t max() const;
  size_t count() const;
  size_t callers() const;
  // How long a thread polls for its next task before it sleeps (0: not at all).
  void set_spin_ns(uint64_t ns) { spin_ns_.store(ns, std::memory_order_relaxed); }

  // A thread for a new caller, counted as bound until unbind.
  PythonThread* bind();
  void unbind(PythonThread* thread);

  // Starts the first thread (it also releases dropped references when idle).
  void start();
  // Makes the calling thread the first PythonThread, before anything binds
  // (the port program's main thread, so that Python runs on the process's main
  // thread: signal handlers, alarms and KeyboardInterrupt work as in a script);
  // serve_adopted() then runs its tasks forever.
  void adopt_this_thread();
  [[noreturn]] void serve_adopted();

  // Called over and over by a thread polling for its next task (the port
  // program reads its request pipe there, port/input.hpp); pollers() is how
  // many threads are doing so.
  void set_poll_hook(void (*hook)()) { poll_hook_.store(hook, std::memory_order_release); }
  int pollers() const { return pollers_.load(std::memory_order_acquire); }
  // Whether threads poll only while quiet() (the port program: its callers'
  // requests come through one pipe, and its cores are better spent running
  // them). Off by default: in-process, a BEAM scheduler waits for a quick
  // request's reply, and a polling thread is what makes that wait short.
  void set_poll_only_when_quiet(bool on) { poll_only_when_quiet_.store(on, std::memory_order_relaxed); }

  // Calls any thread is running or polling for (for the spin heuristics).
  int busy() const { return busy_.load(std::memory_order_acquire); }
  // Tasks submitted to any thread and not started.
  size_t queued() const { return queued_.load(std::memory_order_acquire); }
  // At most two tasks queued or running (a lone caller's request just handed
  // over while its thread keeps the GIL for it, or two callers' requests):
  // polling for a caller's next request pays. With more, the cores are
  // needed by those.
  bool quiet() const { return queued() + static_cast<size_t>(busy()) <= 2; }

 private:
  friend class PythonThread;
  PythonThreads() = default;
  PythonThread* spawn_locked();

  mutable std::mutex mu_;
  std::vector<PythonThread*> threads_;  // never freed: threads live as long as the process
  size_t max_ = 128;
  std::atomic<uint64_t> spin_ns_{0};
  std::atomic<int> spinners_{0};
  std::atomic<int> busy_{0};
  std::atomic<size_t> queued_{0};
  std::atomic<bool> poll_only_when_quiet_{false};
  std::atomic<void (*)()> poll_hook_{nullptr};
  std::atomic<int> pollers_{0};
};

}  // namespace sb
