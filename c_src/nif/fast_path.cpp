#include "fast_path.hpp"

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "../core/idle_sleep.hpp"
#include "../core/interpreter.hpp"
#include "../core/interrupts.hpp"

namespace sb::nif {

struct Slot {
  std::atomic<uint64_t> start{0};     // 0: idle
  std::atomic<uint64_t> last_start{0};
  std::atomic<uint64_t> deadline{0};
  std::atomic<CallSite*> site{nullptr};
  std::atomic<bool> timed_out{false};
  // Watchdog-only: the call it first saw running, and the thread's CPU clock
  // then. (The thread's own CPU clock is a system call here, too slow per call.)
  uint64_t seen_start = 0;
  uint64_t seen_cpu = 0;
  clockid_t cpu_clock;
  PyThreadState* tstate = nullptr;
};

namespace {

constexpr auto kTick = std::chrono::milliseconds(2);
constexpr uint64_t kNoDeadline = std::numeric_limits<uint64_t>::max();

// After a second without fast-path calls the watchdog sleeps until the next one
// wakes it, instead of ticking every 2 ms for the life of the VM.
constexpr uint64_t kIdleBeforeSleep = 1'000'000'000;
// Never destroyed: at VM exit the watchdog may still be waiting in it, and
// destroying a condition variable with a waiter blocks (glibc), hanging the exit.
IdleSleep& g_idle = *new IdleSleep;

std::mutex g_slots_mu;
std::vector<Slot*> g_slots;  // one per scheduler thread, never freed
thread_local Slot* t_slot = nullptr;

Slot* my_slot() {
  if (!t_slot) {
    t_slot = new Slot();
    t_slot->tstate = this_thread_state();
    pthread_getcpuclockid(pthread_self(), &t_slot->cpu_clock);
    std::lock_guard<std::mutex> lock(g_slots_mu);
    g_slots.push_back(t_slot);
  }
  return t_slot;
}

// No call running on any scheduler, and none started within the last second.
bool idle(const std::vector<Slot*>& slots, uint64_t now) {
  for (Slot* s : slots) {
    if (s->start.load() != 0 || now - s->last_start.load(std::memory_order_relaxed) < kIdleBeforeSleep) return false;
  }
  return true;
}

void watch() {
  while (true) {
    std::this_thread::sleep_for(kTick);
    std::vector<Slot*> slots;
    {
      std::lock_guard<std::mutex> lock(g_slots_mu);
      slots = g_slots;
    }
    if (g_idle.sleep_while([&] { return idle(slots, monotonic_ns()); })) continue;
    uint64_t now = monotonic_ns();
    bool overdue = false;
    for (Slot* s : slots) {
      uint64_t start = s->start.load(std::memory_order_acquire);
      if (start == 0) continue;
      timespec ts;
      clock_gettime(s->cpu_clock, &ts);
      uint64_t cpu_now = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
      if (s->seen_start != start) {  // a call not seen before: start counting its CPU
        s->seen_start = start;
        s->seen_cpu = cpu_now;
      } else if (CallSite* site = s->site.load(); site && fast_run_too_long(now - start, cpu_now - s->seen_cpu)) {
        demote(site);
      }
      if (now > s->deadline.load(std::memory_order_acquire)) overdue = true;
    }
    if (!overdue) continue;
    // Taking the GIL makes a thread looping in Python let go of it; the slot is
    // rechecked under the GIL, which its thread holds until it has cleared it.
    Gil gil;
    now = monotonic_ns();
    for (Slot* s : slots) {
      if (s->start.load() != 0 && now > s->deadline.load()) {
        s->timed_out = true;
        interrupt_thread(s->tstate);
      }
    }
  }
}

}  // namespace

FastCall::FastCall(CallSite* site, int64_t timeout_ms) : slot_(my_slot()) {
  uint64_t now = monotonic_ns();
  slot_->timed_out = false;
  slot_->site = site;
  slot_->deadline = timeout_ms < 0 ? kNoDeadline : now + static_cast<uint64_t>(timeout_ms) * 1'000'000u;
  slot_->last_start.store(now, std::memory_order_relaxed);
  slot_->start.store(now);  // sequentially consistent, as IdleSleep requires
  g_idle.wake();
}

bool FastCall::finish() {
  finished_ = true;
  slot_->start.store(0, std::memory_order_release);
  if (!slot_->timed_out) return false;
  clear_interrupt();  // an interrupt may have been aimed at us after the work ended
  return true;
}

FastCall::~FastCall() {
  if (!finished_) slot_->start.store(0, std::memory_order_release);
}

void start_fast_path_watchdog() {
  static std::once_flag once;
  std::call_once(once, [] { std::thread(watch).detach(); });
}

}  // namespace sb::nif
