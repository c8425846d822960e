// Interrupting a call that runs on another thread (timeouts, cancels).
//
// An asynchronous exception reaches Python code at its next bytecode boundary,
// which a thread blocked in time.sleep() never reaches. So the interpreter's
// time.sleep is replaced by one that waits on a per-thread condition variable,
// which an interrupt wakes.
#pragma once
#include "pyref.hpp"

namespace sb {

// GIL held, once at start-up: installs the interruptible time.sleep.
// `signal_thread`: the calling thread runs Python's signal handlers (the port
// program's main thread): a sleep there also ends early for a signal whose
// handler raises, as Python's own does.
void install_interruptible_sleep(bool signal_thread);

// GIL held, once at start-up: wraps the entry points of importlib._bootstrap
// through which imports start, so that interrupt_thread knows a thread is
// importing (see interrupt_thread).
void install_import_guard();

// GIL held. Makes the thread running `tstate` raise cancelled_exception(): at its
// next bytecode boundary, or at once if it is in time.sleep(). Only a thread
// inside an InterruptibleScope is interrupted: an exception landing in
// SnakeBridge's own Python work (formatting a traceback, which may import) could
// leave an import lock held and hang every later import.
//
// Nor is a thread interrupted while it imports (inside an entry point of the
// import system, or with a frame of importlib._bootstrap on its stack, which
// includes the module-level code of the module being imported, and a
// time.sleep there): an exception there leaves a half-initialised module or a
// broken module lock behind. Then nothing is done, and a Cancelled still
// pending on the thread is dropped; callers repeat the interrupt until the
// work is over, so it lands once the import has finished.
void interrupt_thread(PyThreadState* tstate);

// GIL held. Marks this thread's user work as interruptible for the scope. The
// first Python error captured (fetch_python_error) ends that early.
class InterruptibleScope {
 public:
  InterruptibleScope();
  ~InterruptibleScope();
  InterruptibleScope(const InterruptibleScope&) = delete;
  InterruptibleScope& operator=(const InterruptibleScope&) = delete;

 private:
  bool outer_;  // inside another one (a request nested in a callback): restored at the end
};

// GIL held. Ends this thread's interruptible window and drops a pending interrupt.
void end_interruptible();

// GIL held, by the thread itself before it starts new work: forgets an interrupt
// aimed at work that has already finished.
void clear_interrupt();

}  // namespace sb
