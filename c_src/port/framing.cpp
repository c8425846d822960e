#include "framing.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

namespace sb::port {
namespace {

constexpr size_t kMinRead = 64 * 1024;
// A buffer grown for a large frame is given back once it is empty.
constexpr size_t kKeepCapacity = 4 * 1024 * 1024;

uint64_t frame_length(const char* header) {
  const auto* p = reinterpret_cast<const unsigned char*>(header);
  return (uint64_t(p[0]) << 24) | (uint64_t(p[1]) << 16) | (uint64_t(p[2]) << 8) | p[3];
}

constexpr size_t kHuge = 2 << 20;
constexpr size_t kMaxSpares = 2;

struct Spare {
  char* p;
  size_t size;
  uint64_t since;
};
std::mutex g_spares_mu;
std::vector<Spare> g_spares;

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

Buffer allocate(size_t cap) { return allocate_buffer(cap); }

}  // namespace

void FreeDeleter::operator()(char* p) const {
  if (size > 0) {
    std::lock_guard<std::mutex> lock(g_spares_mu);
    if (g_spares.size() < kMaxSpares) {
      g_spares.push_back({p, size, now_ns()});
      return;
    }
  }
  std::free(p);
}

Buffer allocate_buffer(size_t cap) {
  if (cap < 2 * kHuge) {
    char* p = static_cast<char*>(std::malloc(std::max<size_t>(cap, 1)));
    if (!p) throw std::bad_alloc();
    return Buffer(p);
  }
  size_t size = (cap + kHuge - 1) / kHuge * kHuge;
  {
    std::lock_guard<std::mutex> lock(g_spares_mu);
    for (size_t i = 0; i < g_spares.size(); ++i) {
      // Not much larger than asked: a small frame must not hold a huge buffer.
      if (g_spares[i].size >= size && g_spares[i].size <= 2 * size) {
        Spare s = g_spares[i];
        g_spares.erase(g_spares.begin() + static_cast<std::ptrdiff_t>(i));
        return Buffer(s.p, FreeDeleter{s.size});
      }
    }
  }
  char* p = static_cast<char*>(std::aligned_alloc(kHuge, size));
  if (!p) throw std::bad_alloc();
  madvise(p, size, MADV_HUGEPAGE);
  return Buffer(p, FreeDeleter{size});
}

bool drop_spare_buffers(uint64_t idle_ns) {
  std::vector<char*> gone;
  bool left;
  {
    std::lock_guard<std::mutex> lock(g_spares_mu);
    uint64_t now = now_ns();
    for (size_t i = g_spares.size(); i-- > 0;) {
      if (now - g_spares[i].since >= idle_ns) {
        gone.push_back(g_spares[i].p);
        g_spares.erase(g_spares.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    left = !g_spares.empty();
  }
  for (char* p : gone) std::free(p);
  return left;
}

void FrameReader::reserve(size_t n) {
  if (cap_ - end_ >= n) return;
  size_t live = end_ - pos_;
  if (cap_ - live >= n && pos_ > 0) {  // room enough once the consumed bytes go
    std::memmove(buf_.get(), buf_.get() + pos_, live);
  } else {
    size_t cap = std::max(live + n, cap_ * 2);
    Buffer bigger = allocate(cap);
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
    // A frame under way needs room for its rest only: asking for more when
    // its last bytes are still to come would copy the whole frame into a
    // bigger buffer (64 MiB copied for the last 100 bytes of a 64 MiB frame).
    if (len <= max_ && 4 + len > live) {
      want = 4 + len - live;
      if (cap_ - end_ < want) want = std::max(want, kMinRead);
    }
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
  Frame f;
  Next n = next(&f, size);
  if (n == Next::Frame) out->assign(f.data, f.size);
  return n;
}

FrameReader::Next FrameReader::next(Frame* out, uint64_t* size) {
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
    } else if (live - 4 >= len && len >= kHandOverAtLeast) {
      // The buffer goes with the frame; what follows it (the start of the
      // next frames) moves to a new one.
      size_t rest = live - 4 - len;
      Buffer next = allocate(std::max(rest, size_t(1)));
      if (rest > 0) std::memcpy(next.get(), buf_.get() + pos_ + 4 + len, rest);
      out->data = buf_.get() + pos_ + 4;
      out->size = len;
      out->owner = std::move(buf_);
      buf_ = std::move(next);
      cap_ = std::max(rest, size_t(1));
      pos_ = 0;
      end_ = rest;
      result = Next::Frame;
    } else if (live - 4 >= len) {
      out->owner = allocate(std::max<size_t>(len, 1));
      if (len) std::memcpy(out->owner.get(), buf_.get() + pos_ + 4, len);
      out->data = out->owner.get();
      out->size = len;
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
