// Length-prefixed frames: a 4-byte big-endian length, then that many bytes.
// Untrusted input: a frame larger than the limit is skipped (and reported), so
// a bad header cannot make the program allocate or stall.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace sb::port {

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
  // skipped (reported once). NeedMore: nothing complete yet.
  Next next(std::string* out, uint64_t* size);

 private:
  void reserve(size_t n);  // room for n more bytes after end_

  std::unique_ptr<char[]> buf_;  // bytes [pos_, end_) are unread
  size_t cap_ = 0;
  size_t pos_ = 0;
  size_t end_ = 0;
  uint64_t skip_ = 0;
  size_t max_;
};

// The frame header for a body of n bytes.
std::string frame_header(size_t n);

}  // namespace sb::port
