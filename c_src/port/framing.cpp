#include "framing.hpp"

#include <algorithm>
#include <cstring>

namespace sb::port {
namespace {

constexpr size_t kMinRead = 64 * 1024;
// A buffer grown for a large frame is given back once it is empty.
constexpr size_t kKeepCapacity = 4 * 1024 * 1024;

uint64_t frame_length(const char* header) {
  const auto* p = reinterpret_cast<const unsigned char*>(header);
  return (uint64_t(p[0]) << 24) | (uint64_t(p[1]) << 16) | (uint64_t(p[2]) << 8) | p[3];
}

}  // namespace

void FrameReader::reserve(size_t n) {
  if (cap_ - end_ >= n) return;
  size_t live = end_ - pos_;
  if (cap_ - live >= n && pos_ > 0) {  // room enough once the consumed bytes go
    std::memmove(buf_.get(), buf_.get() + pos_, live);
  } else {
    size_t cap = std::max(live + n, cap_ * 2);
    std::unique_ptr<char[]> bigger(new char[cap]);
    if (live > 0) std::memcpy(bigger.get(), buf_.get() + pos_, live);
    buf_ = std::move(bigger);
    cap_ = cap;
  }
  pos_ = 0;
  end_ = live;
}

char* FrameReader::space(size_t* size) {
  size_t want = kMinRead;
  size_t live = end_ - pos_;
  if (skip_ == 0 && live >= 4) {
    uint64_t len = frame_length(buf_.get() + pos_);
    if (len <= max_ && 4 + len > live) want = std::max<uint64_t>(want, 4 + len - live);
  }
  reserve(want);
  *size = cap_ - end_;
  return buf_.get() + end_;
}

void FrameReader::commit(size_t n) {
  end_ += n;
  if (skip_ > 0) {
    size_t dropped = std::min<uint64_t>(skip_, end_ - pos_);
    skip_ -= dropped;
    pos_ += dropped;
  }
}

void FrameReader::feed(const char* data, size_t n) {
  reserve(n);
  if (n > 0) std::memcpy(buf_.get() + end_, data, n);
  commit(n);
}

FrameReader::Next FrameReader::next(std::string* out, uint64_t* size) {
  Next result = Next::NeedMore;
  size_t live = end_ - pos_;
  if (live >= 4) {
    uint64_t len = frame_length(buf_.get() + pos_);
    if (len > max_) {
      pos_ += 4;
      uint64_t dropped = std::min<uint64_t>(live - 4, len);
      pos_ += dropped;
      skip_ = len - dropped;
      *size = len;
      result = Next::Oversized;
    } else if (live - 4 >= len) {
      out->assign(buf_.get() + pos_ + 4, len);
      pos_ += 4 + len;
      result = Next::Frame;
    }
  }
  if (pos_ == end_) {
    pos_ = end_ = 0;
    if (cap_ > kKeepCapacity) {
      buf_.reset();
      cap_ = 0;
    }
  }
  return result;
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
