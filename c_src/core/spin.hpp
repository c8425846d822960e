// Busy-wait helpers. Waking a blocked thread costs ~45 µs on the machines we
// run on (virtual CPUs), several times a whole request; threads that expect
// more work soon poll for a short while first.
#pragma once
#include <sched.h>
#include <time.h>

#include <cstdint>

namespace sb {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// A polling loop's step: for the first `eager_ns` it only pauses the core;
// after that it gives the core away (sched_yield) to whatever else is ready to
// run on it, which on a busy machine is often the very thread being waited
// for. expired(): whether `until` (monotonic_ns) has passed.
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

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

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
  sched_yield();
  return monotonic_ns() > until_;
}

}  // namespace sb
