// Large bytes arguments copied where their data already is.
//
// In process, a request runs on its caller's Python thread, usually on the
// other core. Converting a large SnakeBridge.Bytes there reads the whole binary
// across cores, and whatever the caller does next with the result (a bytes
// object the identity function returns, say) reads it back across them:
// 1 MiB round trips cost about twice what they cost when Python ran on the
// scheduler. So the scheduler makes such a bytes object itself, before it
// hands the request over, without the GIL: a bytes object is plain memory
// (a header, the data, a NUL), allocated here with the C allocator that
// CPython's own object allocator falls back to for blocks this large and
// frees them with. The conversion on the Python thread takes the object made
// for that very binary (by its data's address and size) instead of copying.
#pragma once
#include <Python.h>

#include <cstddef>
#include <vector>

namespace sb {

// Bytes from this size up (and at most kPrebuildMost per request in all: the
// copy runs on a BEAM scheduler, well under a millisecond for 2 MiB) are made
// before the hand-over.
constexpr size_t kPrebuildLeast = 256 * 1024;
constexpr size_t kPrebuildMost = 2 * 1024 * 1024;

// Called once at interpreter start, with the GIL: whether bytes_without_gil
// may be used (CPython's allocators are its default ones, and no debug hooks).
void note_allocators_at_start();

// A new reference to a bytes object holding a copy of data, made without the
// GIL; null when it cannot be done this way (a debug build, or allocators
// changed since the start: tracemalloc tracing), or out of memory.
PyObject* bytes_without_gil(const char* data, size_t size);

// The objects made for one request, by the data they copy.
class PrebuiltBytes {
 public:
  void add(const char* data, size_t size, PyObject* object) { items_.push_back({data, size, object}); }
  bool empty() const { return items_.empty(); }
  // The object made for (data, size), the reference handed over; null if none.
  PyObject* take(const char* data, size_t size);
  // Drops what was not taken (no GIL needed: release_later).
  void release_rest();

 private:
  struct Item {
    const char* data;
    size_t size;
    PyObject* object;
  };
  std::vector<Item> items_;
};

// While alive, conversions on this thread take from `prebuilt`.
class UsePrebuiltBytes {
 public:
  explicit UsePrebuiltBytes(PrebuiltBytes* prebuilt);
  ~UsePrebuiltBytes();
  UsePrebuiltBytes(const UsePrebuiltBytes&) = delete;
  UsePrebuiltBytes& operator=(const UsePrebuiltBytes&) = delete;

 private:
  PrebuiltBytes* outer_;
};

// From the conversion (GIL held): the object made for (data, size) for the
// request this thread runs, or null.
PyObject* take_prebuilt_bytes(const char* data, size_t size);

}  // namespace sb
