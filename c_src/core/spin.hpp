// Busy-wait helpers. Waking a blocked thread costs ~45 µs on the machines we
// run on (virtual CPUs), several times a whole request; threads that expect
// more work soon poll for a short while first.
#pragma once
#include <sched.h>
#include <time.h>

#include <atomic>
#include <cstdint>

namespace sb {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// A busy machine. A poller whose sched_yield kept it off its core for
// kPreemptedNs found another runnable thread there (some other program's busy
// work, or this one's own). From then on, for kBusyHoldNs, polls in this
// process only pause the core for their first microseconds and then give up,
// so that the waiting thread blocks: the kernel runs a thread it wakes from a
// block at once, while a yielding one waits out the other's time slice
// (milliseconds) at each hand-off.
//
// Only where turned on (the NIF turns it on when it loads). In the port
// program a yield is mostly given to the BEAM's schedulers on these 2 cores,
// and stopping to poll there made calls slower (docs/benchmarks.md).
constexpr uint64_t kPreemptedNs = 1'000'000;
constexpr uint64_t kBusyHoldNs = 100'000'000;
inline std::atomic<bool> g_busy_detection{false};
inline std::atomic<uint64_t> g_busy_until{0};
inline std::atomic<uint64_t> g_busy_found{0};  // times a poller found the machine busy

inline bool machine_busy(uint64_t now) { return now < g_busy_until.load(std::memory_order_relaxed); }

// One step of a polling loop that began at `t0`, `now` read just before:
// pauses the core for the first `eager_ns`, then yields it. False: stop
// polling (the machine is busy) and block instead.
inline bool poll_pause(uint64_t t0, uint64_t now, uint64_t eager_ns = 3'000) {
  if (now - t0 < eager_ns) {
    cpu_relax();
    return true;
  }
  if (machine_busy(now)) return false;
  sched_yield();
  if (!g_busy_detection.load(std::memory_order_relaxed)) return true;
  uint64_t after = monotonic_ns();
  if (after < now + kPreemptedNs) return true;
  g_busy_until.store(after + kBusyHoldNs, std::memory_order_relaxed);
  g_busy_found.fetch_add(1, std::memory_order_relaxed);
  return false;
}

// A polling loop's step: for the first `eager_ns` it only pauses the core;
// after that it gives the core away (sched_yield) to whatever else is ready to
// run on it, which on a busy machine is often the very thread being waited
// for (poll_pause: on a busy machine, it stops instead). expired(): whether
// `until` (monotonic_ns) has passed, or polling should stop.
class Poll {
 public:
  Poll(uint64_t until, uint64_t eager_ns = 3'000);
  bool expired();

 private:
  uint64_t until_;
  uint64_t eager_until_;
  bool eager_ = true;
  unsigned steps_ = 0;
};

inline Poll::Poll(uint64_t until, uint64_t eager_ns) : until_(until), eager_until_(monotonic_ns() + eager_ns) {}

inline bool Poll::expired() {
  if (eager_) {
    cpu_relax();
    if ((++steps_ & 15) != 0) return false;
    uint64_t now = monotonic_ns();
    if (now < eager_until_) return false;
    eager_ = false;
    return now > until_;
  }
  uint64_t now = monotonic_ns();
  return now > until_ || !poll_pause(0, now, 0);
}

}  // namespace sb
