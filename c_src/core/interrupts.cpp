#include "interrupts.hpp"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <unordered_map>

#include "errors.hpp"
#include "interpreter.hpp"
#include "operations.hpp"

namespace sb {
namespace {

PyThreadState* PyThreadState_GetUnchecked_compat() { return _PyThreadState_UncheckedGet(); }

struct Sleeper {
  std::mutex mu;
  std::condition_variable cv;
  bool interrupted = false;
  bool interruptible = false;  // guarded by the GIL
};

std::mutex g_registry_mu;
std::unordered_map<PyThreadState*, Sleeper*> g_sleepers;  // entries live for the thread's life

Sleeper* sleeper_for(PyThreadState* tstate, bool create) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  auto it = g_sleepers.find(tstate);
  if (it != g_sleepers.end()) return it->second;
  if (!create) return nullptr;
  auto* s = new Sleeper();  // threads and their states are never destroyed
  g_sleepers.emplace(tstate, s);
  return s;
}

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
  Sleeper* s = sleeper_for(PyThreadState_Get(), true);
  bool interrupted;
  {
    GilRelease release;
    std::unique_lock<std::mutex> lock(s->mu);
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(std::min(seconds, 1e9)));
    s->cv.wait_until(lock, deadline, [&] { return s->interrupted; });
    interrupted = s->interrupted;
    s->interrupted = false;
  }
  if (interrupted) {
    // The asynchronous exception set alongside would fire again later: clear it.
    PyThreadState* ts = PyThreadState_Get();
    PyThreadState_SetAsyncExc(static_cast<unsigned long>(ts->thread_id), nullptr);
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

void install_interruptible_sleep() {
  PyRef time = import_module("time");
  PyRef name = check(PyUnicode_FromString("time"));
  PyRef fn = check(PyCFunction_NewEx(&g_sleep_def, nullptr, name.get()));
  check_status(PyObject_SetAttrString(time.get(), "sleep", fn.get()));
}

void interrupt_thread(PyThreadState* tstate) {
  // Created here if need be: a thread interrupted before its first sleep must
  // find the flag set when it gets there (no bytecode may run in between).
  Sleeper* s = sleeper_for(tstate, true);
  if (!s->interruptible) return;
  PyThreadState_SetAsyncExc(static_cast<unsigned long>(tstate->thread_id), cancelled_exception());
  std::lock_guard<std::mutex> lock(s->mu);
  s->interrupted = true;
  s->cv.notify_all();
}

InterruptibleScope::InterruptibleScope() { sleeper_for(PyThreadState_Get(), true)->interruptible = true; }

InterruptibleScope::~InterruptibleScope() { end_interruptible(); }

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
  PyThreadState_SetAsyncExc(static_cast<unsigned long>(ts->thread_id), nullptr);
  if (Sleeper* s = sleeper_for(ts, false)) {
    std::lock_guard<std::mutex> lock(s->mu);
    s->interrupted = false;
  }
}

}  // namespace sb
