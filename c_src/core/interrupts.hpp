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
void install_interruptible_sleep();

// GIL held. Makes the thread running `tstate` raise cancelled_exception(): at its
// next bytecode boundary, or at once if it is in time.sleep().
void interrupt_thread(PyThreadState* tstate);

// GIL held, by the thread itself before it starts new work: forgets an interrupt
// aimed at work that has already finished.
void clear_interrupt();

}  // namespace sb
