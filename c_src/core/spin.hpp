// Busy-wait helpers. Waking a blocked thread costs ~45 µs on the machines we
// run on (virtual CPUs), several times a whole request; threads that expect
// more work soon poll for a short while first.
#pragma once

namespace sb {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace sb
