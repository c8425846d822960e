#include "worker_pool.hpp"

#include <pthread.h>

#include <chrono>
#include <stdexcept>

#include "call_sites.hpp"
#include "interpreter.hpp"
#include "spin.hpp"

namespace sb {

namespace {
// Python code recurses in C (json, repr, pickle); give it the stack of a normal
// process main thread rather than whatever the embedding process set as default.
constexpr size_t kStackSize = 8 * 1024 * 1024;
constexpr auto kIdleTick = std::chrono::milliseconds(50);
constexpr int kMaxSpinners = 2;

}  // namespace

WorkerPool& WorkerPool::instance() {
  static WorkerPool* pool = new WorkerPool();  // never destroyed: threads outlive statics
  return *pool;
}

void WorkerPool::set_max_threads(size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  max_threads_ = n < 1 ? 1 : n;
}

size_t WorkerPool::max_threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_threads_;
}

size_t WorkerPool::thread_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_;
}

size_t WorkerPool::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

void WorkerPool::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (threads_ == 0) spawn_locked();
}

void WorkerPool::submit(std::function<void()> job) {
  std::lock_guard<std::mutex> lock(mu_);
  jobs_.push_back(std::move(job));
  pending_.store(jobs_.size(), std::memory_order_release);
  if (idle_ < jobs_.size() && threads_ < max_threads_) spawn_locked();
  cv_.notify_one();
}

void WorkerPool::spawn_locked() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackSize);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  auto trampoline = [](void* self) -> void* {
    pthread_setname_np(pthread_self(), "snakebridge-py");
    static_cast<WorkerPool*>(self)->run();
    return nullptr;
  };
  if (pthread_create(&tid, &attr, trampoline, this) == 0) ++threads_;
  pthread_attr_destroy(&attr);
}

void WorkerPool::run() {
  std::unique_lock<std::mutex> lock(mu_);
  bool just_worked = false;
  while (true) {
    ++idle_;
    uint64_t spin = spin_ns_.load(std::memory_order_relaxed);
    // A couple of spinning threads catch the next job; more would only burn
    // cores (200 calls ending together must not mean 200 spinning threads).
    if (just_worked && spin > 0 && jobs_.empty()) {
      if (spinners_.fetch_add(1) < kMaxSpinners) {
        lock.unlock();
        uint64_t t0 = monotonic_ns();
        while (pending_.load(std::memory_order_acquire) == 0 && monotonic_ns() - t0 < spin) cpu_relax();
        lock.lock();
      }
      spinners_.fetch_sub(1);
    }
    just_worked = false;
    bool got = cv_.wait_for(lock, kIdleTick, [&] { return !jobs_.empty(); });
    --idle_;
    if (!got) {
      if (pending_releases() > 0 && interpreter_ready()) {
        lock.unlock();
        {
          Gil gil;
          drain_released();
        }
        lock.lock();
      }
      continue;
    }
    {
      // Run and destroy the job without the lock: its captures may take the GIL.
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      pending_.store(jobs_.size(), std::memory_order_release);
      lock.unlock();
      job();
      just_worked = true;
    }
    lock.lock();
  }
}

}  // namespace sb
