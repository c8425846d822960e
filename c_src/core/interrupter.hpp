// Interrupting a running call from outside (timeouts, cancels, a dead caller),
// shared by the NIF and the port program.
#pragma once
#include <atomic>
#include <memory>

#include "pyref.hpp"

namespace sb {

// A call that may be interrupted: which thread runs it, and whether it is over.
struct InterruptTarget {
  // Known before the running thread takes the GIL, so that an interrupt arriving
  // while it waits for the GIL is not lost.
  std::atomic<PyThreadState*> tstate{nullptr};
  bool finished = false;  // guarded by the GIL: the call's Python work is over
};

// Interrupts `target` (a snakebridge.Cancelled exception in its thread, see
// interrupts.hpp) from a dedicated thread, and repeats it every 5 ms until the
// call is over: CPython 3.11 keeps one interpreter-wide "asynchronous exception
// pending" signal, which a thread consuming its own exception clears for all,
// so once is not enough when several calls are interrupted together. While
// interrupts are pending, Python's switch interval is 0.5 ms instead of 5, so
// that threads competing for the GIL notice sooner. Safe from any thread; never
// takes the GIL on the caller's thread.
void interrupt_until_finished(std::shared_ptr<InterruptTarget> target);

}  // namespace sb
