#include "python_threads.hpp"

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <stdexcept>

#include "interpreter.hpp"
#include "spin.hpp"

namespace sb {

namespace {
// Python code recurses in C (json, repr, pickle); give it the stack of a normal
// process main thread rather than whatever the embedding process set as default.
constexpr size_t kStackSize = 8 * 1024 * 1024;
constexpr auto kIdleTick = std::chrono::milliseconds(50);
// A couple of polling threads catch a caller's next request; more would only
// burn cores (200 calls ending together must not mean 200 polling threads).
constexpr int kMaxSpinners = 2;
// How long a thread keeps the GIL after a task for its caller's next one.
constexpr uint64_t kKeepGilNs = 10'000;
// One more in `n` while it lives (PythonThreads::pollers_).
struct Counted {
  std::atomic<int>& n;
  explicit Counted(std::atomic<int>& c) : n(c) { n.fetch_add(1, std::memory_order_acq_rel); }
  ~Counted() { n.fetch_sub(1, std::memory_order_acq_rel); }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
};
// How long a thread waiting for a callback's answer polls before it sleeps.
constexpr uint64_t kCallbackPollNs = 30'000;
}  // namespace

PythonThreads& PythonThreads::instance() {
  static PythonThreads* threads = new PythonThreads();  // never destroyed: threads outlive statics
  return *threads;
}

void PythonThreads::set_max(size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  max_ = n < 1 ? 1 : n;
}

size_t PythonThreads::max() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_;
}

size_t PythonThreads::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_.size();
}

size_t PythonThreads::callers() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (PythonThread* t : threads_) n += t->callers_;
  return n;
}

void PythonThreads::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (threads_.empty()) spawn_locked();
}

void PythonThreads::adopt_this_thread() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!threads_.empty()) throw std::logic_error("adopt_this_thread: threads already started");
  auto* t = new PythonThread();
  t->ticks_ = true;
  threads_.push_back(t);
}

void PythonThreads::serve_adopted() {
  PythonThread* t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    t = threads_.front();
  }
  t->serve();
  __builtin_unreachable();
}

PythonThread* PythonThreads::spawn_locked() {
  auto* t = new PythonThread();
  t->ticks_ = threads_.empty();
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackSize);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  auto trampoline = [](void* self) -> void* {
    pthread_setname_np(pthread_self(), "snakebridge-py");
    static_cast<PythonThread*>(self)->serve();
    return nullptr;
  };
  int rc = pthread_create(&tid, &attr, trampoline, t);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    delete t;
    return nullptr;
  }
  threads_.push_back(t);
  return t;
}

PythonThread* PythonThreads::bind() {
  std::lock_guard<std::mutex> lock(mu_);
  PythonThread* chosen = nullptr;
  for (PythonThread* t : threads_) {
    if (t->callers_ == 0) {
      chosen = t;
      break;
    }
  }
  if (!chosen && threads_.size() < max_) chosen = spawn_locked();
  if (!chosen) {
    // Past the bound (or out of OS threads): share the least shared thread.
    for (PythonThread* t : threads_) {
      if (!chosen || t->callers_ < chosen->callers_) chosen = t;
    }
    if (!chosen) throw std::runtime_error("cannot start a thread to run Python");
  }
  if (chosen->callers_ == 0 && chosen->used_) {
    // Queued before the new caller's first request: nothing an earlier caller
    // left in thread-local state shows through.
    chosen->submit([] {
      Gil gil;
      clear_thread_locals();
    });
  }
  chosen->used_ = true;
  ++chosen->callers_;
  return chosen;
}

void PythonThreads::unbind(PythonThread* thread) {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread->callers_ > 0) --thread->callers_;
}

void PythonThread::submit(std::function<void()> task) {
  caller_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
    queued_.store(tasks_.size(), std::memory_order_release);
    PythonThreads::instance().queued_.fetch_add(1, std::memory_order_acq_rel);
    wake = sleeping_;
  }
  if (wake) cv_.notify_one();
}

// The next task, polling for it first if this thread just ran one.
bool PythonThread::next(std::function<void()>* task, uint64_t spin_ns) {
  PythonThreads& all = PythonThreads::instance();
  // In the port program, polling pays while this thread's caller is the only
  // one about: with other threads' tasks queued or running, the cores are
  // needed for those (a blocked thread is then woken while others run, and
  // the wait costs no throughput).
  if (spin_ns > 0 && queued_.load(std::memory_order_acquire) == 0 &&
      (!all.poll_only_when_quiet_.load(std::memory_order_relaxed) || all.quiet())) {
    if (all.spinners_.fetch_add(1, std::memory_order_acq_rel) < kMaxSpinners) {
      // Yielding the core after a few microseconds (at once if the last caller
      // ran on this core): a caller (a BEAM scheduler, the port's I/O thread)
      // may need it to send the next task.
      int cpu = sched_getcpu();
      cpu_.store(cpu, std::memory_order_relaxed);
      Poll poll(monotonic_ns() + spin_ns, cpu == caller_cpu_.load(std::memory_order_relaxed) ? 0 : 3'000);
      void (*hook)() = all.poll_hook_.load(std::memory_order_acquire);
      Counted polling(all.pollers_);
      while (queued_.load(std::memory_order_acquire) == 0 && !poll.expired()) {
        if (hook) hook();
      }
    }
    all.spinners_.fetch_sub(1, std::memory_order_acq_rel);
  }
  std::unique_lock<std::mutex> lock(mu_);
  while (tasks_.empty()) {
    sleeping_ = true;
    bool got = ticks_ ? cv_.wait_for(lock, kIdleTick, [&] { return !tasks_.empty(); })
                      : (cv_.wait(lock, [&] { return !tasks_.empty(); }), true);
    sleeping_ = false;
    if (!got && pending_releases() > 0 && interpreter_ready()) {
      // Idle: release the references dropped by threads that could not take
      // the GIL (BEAM garbage collection of objects).
      lock.unlock();
      {
        Gil gil;
        drain_released();
      }
      lock.lock();
    }
  }
  pop_locked(task);
  return true;
}

// Under mu_, tasks_ not empty.
void PythonThread::pop_locked(std::function<void()>* task) {
  *task = std::move(tasks_.front());
  tasks_.pop_front();
  queued_.store(tasks_.size(), std::memory_order_release);
  PythonThreads::instance().queued_.fetch_sub(1, std::memory_order_acq_rel);
}

// The next task if it is queued within kKeepGilNs (polling, GIL held).
bool PythonThread::next_soon(std::function<void()>* task) {
  uint64_t until = monotonic_ns() + kKeepGilNs;
  unsigned steps = 0;
  PythonThreads& all = PythonThreads::instance();
  // The port's pipe is read here only for a lone caller: with others about,
  // their requests would wait behind the GIL this thread keeps meanwhile.
  void (*hook)() = all.quiet() ? all.poll_hook_.load(std::memory_order_acquire) : nullptr;
  Counted polling(all.pollers_);
  while (queued_.load(std::memory_order_acquire) == 0) {
    if (hook) hook();
    else cpu_relax();
    if ((++steps & 15) == 0 && monotonic_ns() > until) return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (tasks_.empty()) return false;
  pop_locked(task);
  return true;
}

namespace {
thread_local PythonThread* t_current = nullptr;
}

PythonThread* PythonThread::current() { return t_current; }

bool PythonThread::serve_until(const std::function<bool()>& done, const std::function<bool()>& abandoned) {
  {
    // An answer usually comes within microseconds (a callback's process is
    // quick): poll for it a little before sleeping, yielding the core early
    // (the answering process may need it).
    Poll poll(monotonic_ns() + kCallbackPollNs, 2'000);
    while (!poll.expired() && queued_.load(std::memory_order_acquire) == 0) {
      if (done()) return true;
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (done()) return true;
    if (abandoned()) return false;
    if (!tasks_.empty()) {
      std::function<void()> task;
      pop_locked(&task);
      lock.unlock();
      task();
      task = nullptr;
      lock.lock();
      continue;
    }
    sleeping_ = true;
    // wake() skips the lock unless this is seen: set it, then look again.
    awaiting_wake_.store(true, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!done()) cv_.wait_for(lock, std::chrono::milliseconds(5));
    awaiting_wake_.store(false, std::memory_order_relaxed);
    sleeping_ = false;
  }
}

void PythonThread::wake() {
  // The answer was stored before this call; serve_until sets awaiting_wake_
  // before it looks at its conditions a last time and sleeps.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!awaiting_wake_.load(std::memory_order_seq_cst)) return;
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
}

void PythonThread::serve() {
  t_current = this;
  PythonThreads& all = PythonThreads::instance();
  uint64_t spin = 0;  // no polling before the first task
  std::function<void()> task;
  while (next(&task, spin)) {
    all.busy_.fetch_add(1, std::memory_order_acq_rel);
    // While quiet (a lone caller, or two), a task's GIL is kept when it ends,
    // and the next one starts holding it if it comes within kKeepGilNs (a
    // caller calling in a loop); otherwise it is let go. Well inside the
    // switch interval (5 ms) after which CPython itself would ask a holder to
    // let go for a waiting thread. With more callers about, the GIL goes at
    // once: their threads wait for it, and this caller's next request is not
    // coming within microseconds (100 callers through one worker, calls that
    // are not thread_free: 55-69k calls/s against 32-38k when every task kept
    // it: docs/benchmarks.md).
    keep_gil_between_scopes(all.quiet());
    while (true) {
      task();
      // Destroyed here, not when the next task replaces it: its captures may
      // hold what the caller waits to see released.
      task = nullptr;
      if (!gil_kept() || !all.quiet() || !next_soon(&task)) break;
    }
    keep_gil_between_scopes(false);
    release_kept_gil();
    all.busy_.fetch_sub(1, std::memory_order_acq_rel);
    spin = all.spin_ns_.load(std::memory_order_relaxed);
  }
  __builtin_unreachable();
}

}  // namespace sb
