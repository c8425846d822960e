#include "recursion_bound.hpp"

#include <pthread.h>

#include <climits>
#include <cstdint>

namespace sb {
namespace {

thread_local bool t_stack_known = false;
thread_local uintptr_t t_stack_low = 0;  // lowest usable address; 0 if unknown

uintptr_t stack_low() {
  if (!t_stack_known) {
    t_stack_known = true;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* addr = nullptr;
      size_t size = 0;
      if (pthread_attr_getstack(&attr, &addr, &size) == 0) t_stack_low = reinterpret_cast<uintptr_t>(addr);
      pthread_attr_destroy(&attr);
    }
  }
  return t_stack_low;
}

}  // namespace

size_t stack_left() {
  uintptr_t low = stack_low();
  auto sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  // Unknown bounds count as no stack at all: the caller then stays off this thread.
  return low != 0 && sp > low ? sp - low : 0;
}

RecursionBound::RecursionBound(PyThreadState* tstate) : tstate_(tstate) {
  size_t left = stack_left();
  size_t usable = left > kStackReserve ? left - kStackReserve : 0;
  size_t fit = usable / kStackBytesPerLevel;
  int budget = fit > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(fit);
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
  // CPython 3.11 counts Python frames and C-level recursion (Py_EnterRecursiveCall,
  // used by json, repr, pickle...) in one per-thread counter. When it runs out,
  // _Py_CheckRecursiveCall first compares the thread's depth with the
  // interpreter's limit and, if the depth is below it, resets the thread to that
  // limit and carries on: a lower per-thread limit does not hold. So the bound
  // is expressed the other way round: the thread's apparent depth is raised so
  // that it reaches the interpreter's limit after `budget` more levels.
  int limit = Py_GetRecursionLimit();
  int depth = tstate->recursion_limit - tstate->recursion_remaining;
  int remaining = limit - depth;
  if (budget >= remaining) {
    levels_ = remaining;
    return;
  }
  active_ = true;
  levels_ = budget;
  inflation_ = remaining - budget;
  tstate->recursion_limit = limit;
  tstate->recursion_remaining = budget;
#elif PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030E0000
  // 3.12 and 3.13 count C-level recursion separately, against a fixed limit
  // sized for a main thread; Python-to-Python calls use no C stack.
  // (Not exercised by the test suite, which runs 3.11.)
  int remaining = tstate->c_recursion_remaining;
  if (budget >= remaining) {
    levels_ = remaining;
    return;
  }
  active_ = true;
  levels_ = budget;
  inflation_ = remaining - budget;
  tstate->c_recursion_remaining = budget;
#else
  // 3.14 and later check the C stack of the running thread themselves.
  (void)budget;
  levels_ = INT_MAX;
#endif
}

RecursionBound::~RecursionBound() {
  if (!active_) return;
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
  // Calls nest, so the apparent depth is back where the bound put it, unless
  // sys.setrecursionlimit ran meanwhile: it keeps each thread's depth and moves
  // its limit, so undo the inflation relative to the limit now in force.
  int apparent = tstate_->recursion_limit - tstate_->recursion_remaining;
  tstate_->recursion_remaining = tstate_->recursion_limit - (apparent - inflation_);
#elif PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030E0000
  tstate_->c_recursion_remaining += inflation_;
#endif
}

}  // namespace sb
