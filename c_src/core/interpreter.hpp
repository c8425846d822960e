// The one embedded CPython interpreter: start-up, per-thread GIL handling, and the
// deferred release of references dropped by threads that must not take the GIL.
#pragma once
#include "pyref.hpp"

#include <atomic>
#include <functional>
#include <cstddef>
#include <string>
#include <vector>

namespace sb {

struct InterpreterConfig {
  std::string python_executable;   // e.g. /usr/bin/python3 or a venv's bin/python
  std::string libpython_soname;    // re-opened RTLD_GLOBAL so extension modules link
  std::vector<std::string> extra_paths;  // prepended to sys.path
  std::string pythonpath;          // PYTHONPATH to honour (the environment is otherwise ignored)
  // Where sys.stdout/sys.stderr go: emit(stream, text), stream 1 or 2 (stdio.hpp).
  // Each front end has its own (messages to Elixir processes, output frames).
  PyCFunction emit_output = nullptr;
  // Python owns the OS process (the port program, whose main thread runs
  // Python): its signal handlers are installed as in a script (SIGINT raising
  // KeyboardInterrupt). Otherwise (in the BEAM, which owns the process) what
  // would act on the whole process is refused with a clear error
  // (in_process_limits.hpp).
  bool owns_process = false;
};

// Starts CPython once (later calls are no-ops), the same way for both front
// ends: libpython re-opened RTLD_GLOBAL, no signal handlers, SIGCHLD restored,
// extra paths, then what every request relies on (the datetime C API, the
// Cancelled exception, traceback imported, the interruptible time.sleep, the
// output streams). Throws std::runtime_error with a readable message if the
// interpreter cannot start. Never finalises: extension modules such as numpy
// cannot be initialised twice in one process.
void initialize_interpreter(const InterpreterConfig& config);
bool interpreter_ready();

// Holds the GIL for a scope. Each OS thread gets one PyThreadState the first time it
// enters Python and keeps it for life: creating and destroying thread states per call
// is slow, and mixing PyGILState_* with ad-hoc states has crashed other embedders.
// Re-entrant on the same thread.
class Gil {
 public:
  Gil();
  ~Gil();
  Gil(const Gil&) = delete;
  Gil& operator=(const Gil&) = delete;

 private:
  bool acquired_;
};

// For a thread that runs requests back to back (python_threads.cpp): while on,
// an outermost Gil scope that ends keeps the GIL (gil_kept()), and the next
// Gil scope on this thread starts without taking it again;
// release_kept_gil() lets it go. Saves a release and a take of the GIL per
// request when the next one is already there.
bool keep_gil_between_scopes(bool on);  // returns the previous setting
bool gil_kept();
void release_kept_gil();

// Releases the GIL for a scope inside a Gil scope (blocking waits, sleeps). A Gil
// taken inside it acquires the GIL again.
class GilRelease {
 public:
  GilRelease();
  ~GilRelease();
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  PyThreadState* saved_;
  int depth_;
};

// A request's turn to wait for the GIL. A thread waiting in CPython's own
// GIL wait wakes every switch interval (5 ms; 0.5 ms while interrupts are
// pending) to ask the holder to let go: with C code holding the GIL past its
// timeout and a hundred threads waiting, those wake-ups burned both cores. So
// at most a couple of threads wait there at once, for the start of a request;
// the others wait here without waking until one of those has the GIL (or
// until `abandoned()` says the request is no longer wanted: then ok() is false
// and the GIL is not taken). Python code that releases the GIL and takes it
// back (sleeps, I/O) does not pass through here.
class GilTurn {
 public:
  explicit GilTurn(const std::function<bool()>& abandoned);
  ~GilTurn() { done(); }
  GilTurn(const GilTurn&) = delete;
  GilTurn& operator=(const GilTurn&) = delete;
  bool ok() const { return held_ || bypass_; }
  // The GIL is ours (or no longer wanted): the next may wait for it.
  void done();

 private:
  bool held_ = false;
  bool bypass_ = false;  // this thread holds the GIL already (gil_kept())
};

// This thread's persistent thread state (created on first use); used to aim an
// asynchronous exception at the thread running a call.
PyThreadState* this_thread_state();

// Drops a reference without the GIL: queued and released by the next thread that
// holds the GIL (see drain_released). Safe from any thread, including BEAM
// resource destructors.
void release_later(PyObject* obj);
// GIL held. Releases up to `max` queued references; returns how many remain.
size_t drain_released(size_t max = SIZE_MAX);
size_t pending_releases();

// GIL held. Forgets this thread's thread-local state (its thread-state dict:
// threading.local and what C modules keep per thread; and its contextvars
// context: decimal's context among them), as a new thread would start.
void clear_thread_locals();

}  // namespace sb
