#include "framing.hpp"

#include <algorithm>

namespace sb::port {

void FrameReader::feed(const char* data, size_t n) {
  if (skip_ > 0) {
    size_t dropped = std::min<uint64_t>(skip_, n);
    skip_ -= dropped;
    data += dropped;
    n -= dropped;
  }
  // Compact now and then, so the buffer does not grow with consumed bytes.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(data, n);
}

FrameReader::Next FrameReader::next(std::string* out, uint64_t* size) {
  if (buf_.size() - pos_ < 4) return Next::NeedMore;
  const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
  uint64_t len = (uint64_t(p[0]) << 24) | (uint64_t(p[1]) << 16) | (uint64_t(p[2]) << 8) | p[3];
  if (len > max_) {
    pos_ += 4;
    uint64_t available = buf_.size() - pos_;
    uint64_t dropped = std::min(available, len);
    pos_ += dropped;
    skip_ = len - dropped;
    *size = len;
    return Next::Oversized;
  }
  if (buf_.size() - pos_ - 4 < len) return Next::NeedMore;
  out->assign(buf_, pos_ + 4, len);
  pos_ += 4 + len;
  return Next::Frame;
}

std::string frame_header(size_t n) {
  std::string h(4, '\0');
  h[0] = static_cast<char>(n >> 24);
  h[1] = static_cast<char>(n >> 16);
  h[2] = static_cast<char>(n >> 8);
  h[3] = static_cast<char>(n);
  return h;
}

}  // namespace sb::port
