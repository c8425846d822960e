#include "interrupts.hpp"

#include <pthread.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "errors.hpp"
#include "interpreter.hpp"
#include "operations.hpp"

namespace sb {
namespace {

PyThreadState* PyThreadState_GetUnchecked_compat() { return _PyThreadState_UncheckedGet(); }

// The thread that runs Python's signal handlers, if any (interruptible_sleep).
pthread_t g_signal_thread;
bool g_has_signal_thread = false;
constexpr auto kSignalSlice = std::chrono::milliseconds(5);

struct Sleeper {
  std::mutex mu;
  std::condition_variable cv;
  bool interrupted = false;
  bool interruptible = false;  // guarded by the GIL
  // Guarded by the GIL: how many guarded import entry points (see
  // install_import_guard) the thread is inside.
  int import_depth = 0;
};

std::mutex g_registry_mu;
std::unordered_map<PyThreadState*, Sleeper*> g_sleepers;  // entries live for the thread's life

// The last lookup made on this thread (requests ask for their own thread's
// several times each: no lock then).
thread_local PyThreadState* t_looked_up = nullptr;
thread_local Sleeper* t_found = nullptr;

Sleeper* sleeper_for(PyThreadState* tstate, bool create) {
  if (tstate == t_looked_up) return t_found;
  std::lock_guard<std::mutex> lock(g_registry_mu);
  auto it = g_sleepers.find(tstate);
  Sleeper* s = it != g_sleepers.end() ? it->second : nullptr;
  if (!s && create) {
    s = new Sleeper();  // threads and their states are never destroyed
    g_sleepers.emplace(tstate, s);
  }
  if (s) {
    t_looked_up = tstate;
    t_found = s;
  }
  return s;
}

// ---------------------------------------------------------------- imports
//
// An exception landing inside the import machinery, or inside the module-level
// code of a module being imported, leaves damage behind: a module half
// executed (other threads already hold it, and `from m import x` done by
// modules imported meanwhile stays), a package whose submodules stay in
// sys.modules without it, or a module lock of importlib._bootstrap left
// half-updated (every later import of that module hangs). So an interrupt is
// never delivered while the target thread imports: it is deferred, and since
// every interrupt is repeated until the work is over (interrupter.cpp), it
// lands at the first attempt after the import.
//
// "Imports" is decided two ways:
// - The import system's entry points (below) are wrapped: while a thread is in
//   one, its import_depth is positive, and on entry a Cancelled still pending
//   on the thread is dropped. That matters on CPython 3.11, where one thread
//   consuming its own asynchronous exception clears the interpreter-wide
//   signal for all: another thread's exception may then stay pending unseen,
//   to fire at some later check deep inside an import it has started since.
// - The target's Python frames: any frame of importlib._bootstrap(_external)
//   means import work (exec_module or importlib.reload called by the code
//   itself, which do not pass through the entry points).

// importlib._bootstrap's functions through which imports start: the C import
// code (import statements, __import__, PyImport_*) and importlib.import_module
// look them up on the module at each call.
constexpr const char* kImportEntryPoints[] = {"_find_and_load", "_lock_unlock_module", "_handle_fromlist", "_exec",
                                              "_load"};

bool is_import_machinery(PyCodeObject* code) {
  PyObject* filename = code->co_filename;
  if (!filename || !PyUnicode_Check(filename)) return false;
  const char* f = PyUnicode_AsUTF8(filename);
  if (!f) {
    PyErr_Clear();
    return false;
  }
  std::string_view name(f);
  // Frozen (the default), or from source (-X frozen_modules=off, debug builds).
  return name.rfind("<frozen importlib._bootstrap", 0) == 0 ||
         (name.size() >= 23 && (name.ends_with("/importlib/_bootstrap.py") ||
                                name.ends_with("/importlib/_bootstrap_external.py")));
}

// GIL held. Whether the thread running `tstate` is inside an import.
bool importing(PyThreadState* tstate, Sleeper* s) {
  if (s && s->import_depth > 0) return true;
  PyFrameObject* frame = PyThreadState_GetFrame(tstate);  // new reference, or null
  while (frame) {
    PyCodeObject* code = PyFrame_GetCode(frame);
    bool machinery = is_import_machinery(code);
    Py_DECREF(code);
    if (machinery) {
      Py_DECREF(frame);
      return true;
    }
    PyFrameObject* back = PyFrame_GetBack(frame);
    Py_DECREF(frame);
    frame = back;
  }
  return false;
}

// ---------------------------------------------------------------- withdrawing
//
// CPython 3.11 keeps one "asynchronous exception pending" flag per interpreter
// (interp->ceval.pending.async_exc); while it is up, so is every thread's
// eval_breaker. PyThreadState_SetAsyncExc raises it whenever it finds the
// thread, also when it *clears* one (exc == NULL), and only a thread taking its
// exception at a bytecode boundary lowers it again. A flag left up is not a mere
// slow-down: 3.11's tracing dispatch re-runs the RESUME of a traced function
// until handling the eval breaker leaves the breaker down, so the first call
// made by a thread under sys.settrace, sys.setprofile or threading.settrace
// spins there for ever (plain python3.11 does the same after
// ctypes.pythonapi.PyThreadState_SetAsyncExc(id, None); 3.10 and 3.12 do not).
// Clearing with PyThreadState_SetAsyncExc(id, NULL) before every request left
// the flag up for the life of the VM. So an exception is withdrawn by hand, and
// the flag lowered the one way CPython has: a thread taking an exception.

// A private exception type and a code object that, run with an exception
// pending, takes it (the RESUME at its start checks the eval breaker).
PyObject* g_flag_marker = nullptr;
PyObject* g_flag_code = nullptr;
PyObject* g_flag_globals = nullptr;

bool prepare_flag_lowering() {
  if (g_flag_code) return true;
  g_flag_marker = PyErr_NewException("snakebridge._AsyncExcFlag", PyExc_BaseException, nullptr);
  g_flag_globals = PyDict_New();
  g_flag_code = Py_CompileString("None", "<snakebridge: lower the asynchronous-exception flag>", Py_eval_input);
  if (!g_flag_marker || !g_flag_globals || !g_flag_code ||
      PyDict_SetItemString(g_flag_globals, "__builtins__", PyEval_GetBuiltins()) < 0) {
    Py_CLEAR(g_flag_code);
    return false;
  }
  return true;
}

// GIL held. Lowers the interpreter's asynchronous-exception flag, unless a
// thread still has an exception pending (that thread lowers it when it takes it).
void lower_async_exc_flag() {
  PyThreadState* self = PyThreadState_Get();
  for (PyThreadState* t = PyInterpreterState_ThreadHead(PyThreadState_GetInterpreter(self)); t;
       t = PyThreadState_Next(t)) {
    if (t->async_exc) return;
  }
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);  // the caller may be reporting an error
  if (prepare_flag_lowering()) {
    PyThreadState_SetAsyncExc(static_cast<unsigned long>(self->thread_id), g_flag_marker);
    PyObject* result = PyEval_EvalCode(g_flag_code, g_flag_globals, g_flag_globals);
    Py_XDECREF(result);
    // Not taken after all (the code ran to its end): at least do not leave it behind.
    Py_CLEAR(self->async_exc);
  }
  PyErr_Clear();
  PyErr_Restore(type, value, tb);
}

// GIL held. Withdraws the asynchronous exception pending on the thread, if any,
// leaving the interpreter-wide flag down when no thread has one pending.
void withdraw_async_exc(PyThreadState* tstate) {
  if (!tstate->async_exc) return;  // nothing to withdraw: the flag is not touched
  Py_CLEAR(tstate->async_exc);
  lower_async_exc_flag();
}

// GIL held. Drops a Cancelled pending on the thread (and only ours: an
// asynchronous exception the user's code aimed at the thread is left alone).
void drop_pending_cancel(PyThreadState* tstate) {
  if (tstate->async_exc && tstate->async_exc == cancelled_exception()) withdraw_async_exc(tstate);
}

PyObject* guarded_import(PyObject* original, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyThreadState* ts = PyThreadState_Get();
  Sleeper* s = sleeper_for(ts, true);
  if (s->import_depth++ == 0) drop_pending_cancel(ts);
  PyObject* result = PyObject_Vectorcall(original, args, static_cast<size_t>(nargs), kwnames);
  s->import_depth--;
  return result;
}

PyMethodDef g_guarded_import_def = {
    "guarded_import", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(guarded_import)),
    METH_FASTCALL | METH_KEYWORDS,
    "An entry point of the import system, wrapped by SnakeBridge: timeouts and cancels wait until the import is "
    "over."};

PyObject* interruptible_sleep(PyObject*, PyObject* arg) {
  double seconds = PyFloat_AsDouble(arg);
  if (seconds == -1.0 && PyErr_Occurred()) return nullptr;
  if (std::isnan(seconds)) {
    PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a number)");
    return nullptr;
  }
  if (seconds < 0) {
    PyErr_SetString(PyExc_ValueError, "sleep length must be non-negative");
    return nullptr;
  }
  PyThreadState* tstate = PyThreadState_Get();
  Sleeper* s = sleeper_for(tstate, true);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(std::min(seconds, 1e9)));
  bool interrupted;
  // On the thread that runs signal handlers, the wait is cut into slices and
  // the handlers run between them (a signal does not wake a condition variable).
  const bool signals = g_has_signal_thread && pthread_equal(pthread_self(), g_signal_thread);
  while (true) {
    {
      GilRelease release;
      std::unique_lock<std::mutex> lock(s->mu);
      auto until = signals ? std::min(deadline, std::chrono::steady_clock::now() + kSignalSlice) : deadline;
      s->cv.wait_until(lock, until, [&] { return s->interrupted; });
      interrupted = s->interrupted;
      s->interrupted = false;
    }
    if (signals && !interrupted) {
      if (PyErr_CheckSignals() < 0) return nullptr;  // a handler raised (KeyboardInterrupt, ...)
      if (std::chrono::steady_clock::now() < deadline) continue;
    }
    // interrupt_thread does not wake a thread that sleeps inside an import; a
    // flag left from before the import started is ignored there (the
    // interrupter repeats once the import is over).
    if (!interrupted || !importing(tstate, s)) break;
    drop_pending_cancel(tstate);
  }
  if (interrupted) {
    // The asynchronous exception set alongside would fire again later: clear it.
    withdraw_async_exc(PyThreadState_Get());
    PyErr_SetString(cancelled_exception(), "interrupted by SnakeBridge (timeout or cancel)");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyMethodDef g_sleep_def = {
    "sleep", interruptible_sleep, METH_O,
    "sleep(seconds)\n--\n\nDelay execution for a given number of seconds (SnakeBridge: interruptible by "
    "timeouts and cancels)."};

}  // namespace

void install_interruptible_sleep(bool signal_thread) {
  if (signal_thread) {
    g_signal_thread = pthread_self();
    g_has_signal_thread = true;
  }
  PyRef time = import_module("time");
  PyRef name = check(PyUnicode_FromString("time"));
  PyRef fn = check(PyCFunction_NewEx(&g_sleep_def, nullptr, name.get()));
  check_status(PyObject_SetAttrString(time.get(), "sleep", fn.get()));
}

void install_import_guard() {
  PyRef bootstrap = import_module("_frozen_importlib");
  for (const char* name : kImportEntryPoints) {
    PyRef original = PyRef::steal(PyObject_GetAttrString(bootstrap.get(), name));
    if (!original) {  // another Python version: nothing to wrap under that name
      PyErr_Clear();
      continue;
    }
    if (PyCFunction_Check(original.get()) &&
        PyCFunction_GET_FUNCTION(original.get()) == g_guarded_import_def.ml_meth) {
      continue;  // installed already
    }
    PyRef wrapper = check(PyCFunction_NewEx(&g_guarded_import_def, original.get(), nullptr));
    check_status(PyObject_SetAttrString(bootstrap.get(), name, wrapper.get()));
  }
}

void interrupt_thread(PyThreadState* tstate) {
  // Created here if need be: a thread interrupted before its first sleep must
  // find the flag set when it gets there (no bytecode may run in between).
  Sleeper* s = sleeper_for(tstate, true);
  if (!s->interruptible) return;
  if (importing(tstate, s)) {
    // Deferred: the caller tries again until the work is over.
    drop_pending_cancel(tstate);
    return;
  }
  PyThreadState_SetAsyncExc(static_cast<unsigned long>(tstate->thread_id), cancelled_exception());
  std::lock_guard<std::mutex> lock(s->mu);
  s->interrupted = true;
  s->cv.notify_all();
}

InterruptibleScope::InterruptibleScope() {
  Sleeper* s = sleeper_for(PyThreadState_Get(), true);
  outer_ = s->interruptible;
  s->interruptible = true;
}

InterruptibleScope::~InterruptibleScope() {
  end_interruptible();
  if (outer_) sleeper_for(PyThreadState_Get(), true)->interruptible = true;
}

void end_interruptible() {
  PyThreadState* ts = PyThreadState_GetUnchecked_compat();
  if (!ts) return;
  Sleeper* s = sleeper_for(ts, false);
  if (!s || !s->interruptible) return;
  s->interruptible = false;
  clear_interrupt();
}

void clear_interrupt() {
  PyThreadState* ts = PyThreadState_Get();
  withdraw_async_exc(ts);
  if (Sleeper* s = sleeper_for(ts, false)) {
    std::lock_guard<std::mutex> lock(s->mu);
    s->interrupted = false;
  }
}

}  // namespace sb
