// Guarding calls that run on the calling scheduler (the fast path).
//
// Each scheduler thread has a slot saying what it runs and until when. A
// watchdog thread reads the slots without the GIL every few milliseconds: a call
// past 1 ms gets its call site demoted at once (later calls go to the pool while
// this one still runs), and a call past its deadline is interrupted like a pool
// call, its caller getting a TimeoutError.
#pragma once
#include <cstdint>

#include "../core/call_sites.hpp"

namespace sb::nif {

class FastCall {
 public:
  // GIL held. timeout_ms < 0 means no deadline.
  FastCall(CallSite* site, int64_t timeout_ms);
  // GIL held. Clears the slot; returns true if the deadline passed (the caller
  // then reports a timeout, and any interrupt aimed at this thread is cleared).
  bool finish();
  ~FastCall();

 private:
  struct Slot* slot_;
  bool finished_ = false;
};

void start_fast_path_watchdog();

}  // namespace sb::nif
