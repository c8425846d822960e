// Threads that run Python calls off the BEAM's schedulers. Each keeps one Python
// thread state for life. The pool grows on demand up to a limit, so calls that
// release the GIL (sleeps, I/O, numpy) overlap instead of queueing, and the BEAM's
// dirty schedulers are never occupied by Python.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace sb {

class WorkerPool {
 public:
  static WorkerPool& instance();

  void set_max_threads(size_t n);
  // After a job, a thread polls for new work for this long before it sleeps
  // (0, the default: sleep at once).
  void set_spin_ns(uint64_t ns) { spin_ns_ = ns; }
  size_t max_threads() const;
  size_t thread_count() const;
  size_t queued() const;

  // Runs `job` on a pool thread. The job takes the GIL itself.
  void submit(std::function<void()> job);
  // Ensures at least one thread exists (it also releases dropped references when idle).
  void start();

 private:
  WorkerPool() = default;
  void spawn_locked();
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  size_t max_threads_ = 128;
  size_t threads_ = 0;
  size_t idle_ = 0;
  std::atomic<size_t> pending_{0};  // jobs_.size(), readable without the lock
  std::atomic<uint64_t> spin_ns_{0};
  std::atomic<int> spinners_{0};
};

}  // namespace sb
