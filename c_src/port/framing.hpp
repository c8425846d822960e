// Length-prefixed frames: a 4-byte big-endian length, then that many bytes.
// Untrusted input: a frame larger than the limit is skipped (and reported), so
// a bad header cannot make the program allocate or stall.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sb::port {

class FrameReader {
 public:
  explicit FrameReader(size_t max_frame = size_t(1) << 30) : max_(max_frame) {}

  void feed(const char* data, size_t n);

  enum class Next { Frame, NeedMore, Oversized };
  // Frame: *out holds the next frame. Oversized: a frame of *size bytes is being
  // skipped (reported once). NeedMore: nothing complete yet.
  Next next(std::string* out, uint64_t* size);

 private:
  std::string buf_;
  size_t pos_ = 0;
  uint64_t skip_ = 0;
  size_t max_;
};

// The frame header for a body of n bytes.
std::string frame_header(size_t n);

}  // namespace sb::port
