// Where the program's threads run. On the machines we measure on, waking a
// thread on another core costs ~50 µs (an idle virtual CPU halts, and waking
// it is an exit to the host), against ~1.5 µs on the waker's own core
// (docs/benchmarks.md, "Where a worker's time goes"). Under many concurrent
// callers every request is handed from the I/O thread to its caller's thread:
// spread over the cores, most of those hand-overs cross. So while the program
// stays busy its threads are kept on one core (the BEAM keeps the others),
// and given back every core as soon as it is quiet again, so that a lone
// caller's round trip, Python's own threads and BLAS's are not confined.
//
// Busy means many short requests: more requests in Python than polling
// serves, and at least 10,000 read a second. A few long requests (Python
// that releases the GIL to compute in parallel) leave the threads where the
// kernel puts them. SNAKEBRIDGE_GATHER=0 turns it off.
#pragma once
#include <sched.h>

#include <cstdint>

namespace sb::port {

class Placement {
 public:
  // Disabled (never moves a thread) when `enabled` is false or the process
  // may use a single core.
  explicit Placement(bool enabled);
  // SNAKEBRIDGE_GATHER is not "0".
  static bool enabled_by_env();
  // The frames-per-window and window length update() decides by.
  static constexpr uint64_t kWindowNs = 10'000'000;
  static constexpr uint64_t kBusyFrames = 100;
  static constexpr unsigned kReleaseWindows = 5;
  // Called by the I/O thread as it goes: `crowded` whether more requests are
  // in Python than polling serves (PythonThreads::quiet() false), `frames`
  // how many it has read so far, `now` its clock.
  void update(bool crowded, uint64_t frames, uint64_t now);
  bool gathered() const { return gathered_; }

 private:
  void gather();
  void release();

  bool enabled_;
  cpu_set_t all_;  // the cores the process may use, at start
  bool gathered_ = false;
  uint64_t window_start_ = 0;
  uint64_t window_frames_ = 0;  // `frames` at window_start_
  unsigned idle_windows_ = 0;  // consecutive windows that were not busy
};

}  // namespace sb::port
