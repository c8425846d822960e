// Bounding Python's recursion by the C stack a thread has left.
//
// Python's recursion limit is one number for the interpreter, sized for a
// process's main thread (8 MiB of stack by default); sys.setrecursionlimit may
// raise it far beyond. C-level recursion in Python (json.dumps or repr of deeply
// nested data, recursion through map or sorted) uses real stack for each level
// it counts, so on a thread with a smaller stack (a BEAM scheduler) a deep call
// that plain Python survives overflows the stack and kills the process.
//
// A RecursionBound lowers, for the current thread only and for its own scope,
// how many more levels Python lets the running code go, to what the stack left
// below the current frame can hold at kStackBytesPerLevel each. Hitting it
// raises the usual RecursionError, on this thread only; other threads and the
// interpreter's limit are untouched.
#pragma once
#include <Python.h>

#include <cstddef>

namespace sb {

// Measured with CPython 3.11 on x86-64 (stack used per counted level): json.dumps
// of nested lists ~110 B, repr ~150 B, recursion through map ~630 B, through
// __getattr__ ~740 B, through sorted(key=...) ~2.5 KiB. A 4 KiB budget per level
// covers the worst measured case with room to spare.
constexpr size_t kStackBytesPerLevel = 4096;
// Kept free below the bound for what runs outside Python's count: SnakeBridge's
// own conversions (bounded at kMaxResultDepth levels), error reporting, signal
// handlers.
constexpr size_t kStackReserve = 256 * 1024;

// Bytes of C stack left below the caller's frame on this thread (computed from
// the thread's stack bounds, pthread_getattr_np, cached per thread).
size_t stack_left();

class RecursionBound {
 public:
  // GIL held, on the thread whose state is `tstate`. Bounds Python's recursion
  // from here to what stack_left() can hold, if that is below what Python's own
  // limit still allows.
  explicit RecursionBound(PyThreadState* tstate);
  ~RecursionBound();  // GIL held: restores the thread's own count
  RecursionBound(const RecursionBound&) = delete;
  RecursionBound& operator=(const RecursionBound&) = delete;

  // The bound is lower than Python's limit: a RecursionError in its scope may be
  // ours rather than one plain Python would raise.
  bool active() const { return active_; }
  // Levels the scope may go (Python's own remaining count when not active).
  int levels() const { return levels_; }

 private:
  PyThreadState* tstate_;
  bool active_ = false;
  int levels_ = 0;
  int inflation_ = 0;  // levels added to the thread's apparent depth
};

}  // namespace sb
