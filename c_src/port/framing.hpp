// Length-prefixed frames: a 4-byte big-endian length, then that many bytes.
// Untrusted input: a frame larger than the limit is skipped (and reported), so
// a bad header cannot make the program allocate or stall.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

namespace sb::port {

// Memory from allocate_buffer: `size` is set for a large buffer, which goes
// back to the spares when it is freed.
struct FreeDeleter {
  size_t size = 0;
  void operator()(char* p) const;
};
using Buffer = std::unique_ptr<char, FreeDeleter>;

// At least `size` bytes. From 4 MiB up, on huge pages, and a spare is reused
// when one fits: a 64 MiB frame read into fresh memory spends most of its
// time having the kernel zero it (page faults, clear_page), and the copy of an
// array argument once more (msgpack_reader.hpp). Thread-safe.
Buffer allocate_buffer(size_t size);
// Frees the spares unused for `idle_ns`; whether any is left.
bool drop_spare_buffers(uint64_t idle_ns);

// A frame's body: in a buffer of its own (a large frame is the reader's read
// buffer itself, handed over without a copy).
struct Frame {
  Buffer owner;
  const char* data = nullptr;
  size_t size = 0;
};

class FrameReader {
 public:
  explicit FrameReader(size_t max_frame = size_t(1) << 30) : max_(max_frame) {}

  // Room to read the next bytes into, directly: at least 64 KiB, or the rest
  // of the frame under way if that is larger (a large frame then arrives in a
  // read or two, with no copy in between). Then commit() what was read.
  char* space(size_t* size);
  void commit(size_t n);
  // space() + copy + commit(), for bytes that are already in memory.
  void feed(const char* data, size_t n);

  enum class Next { Frame, NeedMore, Oversized };
  // Frame: *out holds the next frame. Oversized: a frame of *size bytes is being
  // skipped (reported once). NeedMore: nothing complete yet. A frame of
  // kHandOverAtLeast bytes or more is not copied: the read buffer goes with it.
  Next next(Frame* out, uint64_t* size);
  // The same, copied into a string.
  Next next(std::string* out, uint64_t* size);

  static constexpr size_t kHandOverAtLeast = 1 << 20;

 private:
  void reserve(size_t n);  // room for n more bytes after end_

  Buffer buf_;  // bytes [pos_, end_) are unread
  size_t cap_ = 0;
  size_t pos_ = 0;
  size_t end_ = 0;
  uint64_t skip_ = 0;
  size_t max_;
};

// The frame header for a body of n bytes.
std::string frame_header(size_t n);

}  // namespace sb::port
