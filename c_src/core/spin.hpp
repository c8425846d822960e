// Busy-wait helpers. Waking a blocked thread costs ~45 µs on the machines we
// run on (virtual CPUs), several times a whole request; threads that expect
// more work soon poll for a short while first.
#pragma once
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

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace sb
