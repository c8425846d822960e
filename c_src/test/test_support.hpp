// Helpers shared by the core's unit tests. Header-only: nothing here needs a CMake entry.
//
// Catch2 v2 assertions are not thread-safe: code running on std::threads or pool
// threads records what it saw in plain data, and the test thread asserts on it.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "../core/errors.hpp"
#include "../core/interpreter.hpp"
#include "../core/pyref.hpp"
#include "../core/values.hpp"

extern char** environ;

namespace sbtest {

using namespace std::chrono_literals;

// True when the calling thread holds the GIL through its current thread state.
inline bool holds_gil() { return PyGILState_Check() == 1; }

// The calling thread's current thread state, or null when it has none (no GIL).
inline PyThreadState* current_tstate() {
#if PY_VERSION_HEX >= 0x030D0000
  return PyThreadState_GetUnchecked();
#else
  return _PyThreadState_UncheckedGet();
#endif
}

// A fresh globals dict with __builtins__ and a few modules (GIL held).
inline sb::PyRef new_globals(const char* module_name = "sbtest") {
  sb::PyRef g = sb::check(PyDict_New());
  sb::check_status(PyDict_SetItemString(g.get(), "__builtins__", PyEval_GetBuiltins()));
  sb::PyRef name = sb::check(PyUnicode_FromString(module_name));
  sb::check_status(PyDict_SetItemString(g.get(), "__name__", name.get()));
  sb::check(PyRun_String("import collections, datetime, decimal, enum, sys, time, types, weakref\n", Py_file_input,
                         g.get(), g.get()));
  return g;
}

// Runs statements in `globals` (GIL held); throws PythonException on error.
inline void py_exec(const std::string& code, PyObject* globals) {
  sb::check(PyRun_String(code.c_str(), Py_file_input, globals, globals));
}

// Evaluates an expression (GIL held) in `globals`, or in a fresh namespace.
inline sb::PyRef py_eval(const std::string& expr, PyObject* globals = nullptr) {
  sb::PyRef own;
  if (!globals) {
    own = new_globals();
    globals = own.get();
  }
  return sb::check(PyRun_String(expr.c_str(), Py_eval_input, globals, globals));
}

// str(o) as UTF-8 (GIL held).
inline std::string py_str(PyObject* o) {
  sb::PyRef s = sb::check(PyObject_Str(o));
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s.get(), &n);
  if (!p) sb::throw_python_error();
  return std::string(p, static_cast<size_t>(n));
}

inline std::string py_repr(PyObject* o) {
  sb::PyRef s = sb::check(PyObject_Repr(o));
  return PyUnicode_AsUTF8(s.get());
}

// a == b in Python (GIL held).
inline bool py_equal(PyObject* a, PyObject* b) {
  int r = PyObject_RichCompareBool(a, b, Py_EQ);
  if (r < 0) sb::throw_python_error();
  return r == 1;
}

inline long long py_int(PyObject* o) {
  long long v = PyLong_AsLongLong(o);
  if (v == -1 && PyErr_Occurred()) sb::throw_python_error();
  return v;
}

// A reference that may outlive every Gil scope of a test: dropped under the GIL.
class GilRef {
 public:
  GilRef() = default;
  explicit GilRef(sb::PyRef r) : r_(std::move(r)) {}
  GilRef(const GilRef&) = delete;
  GilRef& operator=(const GilRef&) = delete;
  GilRef& operator=(sb::PyRef r) {
    sb::Gil gil;
    r_ = std::move(r);
    return *this;
  }
  ~GilRef() {
    sb::Gil gil;
    r_ = sb::PyRef();
  }
  PyObject* get() const { return r_.get(); }

 private:
  sb::PyRef r_;
};

// Polls `pred` (called without any lock held) until it is true or `timeout` passes.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Runs one (usually hidden, "[.]") test case of this binary in a fresh process and
// returns its exit status (0: passed), or -1 if it could not be run or was killed.
// For tests that need process-wide state nobody else has touched.
inline int run_self(const std::string& test_name) {
  std::string exe = "/proc/self/exe";
  std::string quiet = "--reporter";
  std::string compact = "compact";
  char* argv[] = {exe.data(), const_cast<char*>(test_name.c_str()), quiet.data(), compact.data(), nullptr};
  pid_t pid;
  if (posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, environ) != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace sbtest

namespace Catch {
template <>
struct StringMaker<sb::Kind> {
  static std::string convert(sb::Kind k) {
    static const char* names[] = {"None", "Bool", "Int", "Float", "Str", "Bytes", "ByteArray", "MemoryView", "List",
                                  "Tuple", "Dict", "Set", "FrozenSet", "Date", "Time", "DateTime", "Other"};
    auto i = static_cast<size_t>(k);
    return i < sizeof(names) / sizeof(names[0]) ? std::string("Kind::") + names[i] : "Kind::?";
  }
};
}  // namespace Catch
