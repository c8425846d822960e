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
  std::atomic<bool> finished{false};  // the call's Python work is over (set with the GIL held, or before it began)
  std::atomic<bool> interrupted{false};  // interrupt_until_finished was called for it
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

// Calls still running more than a second after their interrupt began: C code
// holding the GIL (or never returning to Python), which nothing can
// interrupt in-process. Reported by the NIF's stats (and logged by the
// application, docs/backends.md).
size_t wedged_calls();

}  // namespace sb
