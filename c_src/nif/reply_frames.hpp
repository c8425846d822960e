// What a frame from a port program is, read far enough to route it
// (docs/protocol.md): a reply [id, status, value] goes to the caller of request
// `id`; an output notice [0, "output", stream, text, request_id] and a callback
// [0, "callback", request_id, ...] to that request's caller; anything else to
// the worker process. Only the routing fields are read, never the value.
//
// The bytes come from outside the BEAM (the program runs user code): every
// read is bounds-checked, and a frame that does not parse is Other, which the
// worker process decodes and reports. No erl_nif.h here, so Catch2 and the
// fuzzer test it as it is.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sb::nif {

struct RoutedFrame {
  enum class Kind { Reply, Output, Callback, Other };
  Kind kind = Kind::Other;
  // Reply: the request's id (> 0). Output, Callback: the request that caused
  // it, 0 for none (nil).
  uint64_t id = 0;
  // Output only.
  bool stderr_stream = false;
  std::string_view text;
};

namespace frames_detail {

class Cursor {
 public:
  Cursor(const unsigned char* p, size_t n) : p_(p), end_(p + n) {}

  bool array(uint32_t* n) {
    if (p_ >= end_) return false;
    unsigned char b = *p_;
    if (b >= 0x90 && b <= 0x9f) {
      *n = b & 0x0f;
      ++p_;
      return true;
    }
    if (b == 0xdc) return big(2, n);
    if (b == 0xdd) return big(4, n);
    return false;
  }

  // A non-negative integer, or nil (as 0 with *was_nil set).
  bool uint_or_nil(uint64_t* v, bool* was_nil) {
    if (p_ >= end_) return false;
    unsigned char b = *p_;
    *was_nil = false;
    if (b == 0xc0) {
      ++p_;
      *was_nil = true;
      *v = 0;
      return true;
    }
    if (b <= 0x7f) {
      *v = b;
      ++p_;
      return true;
    }
    size_t width = b == 0xcc ? 1 : b == 0xcd ? 2 : b == 0xce ? 4 : b == 0xcf ? 8 : 0;
    if (width == 0) return false;
    ++p_;
    return be(width, v);
  }

  bool str(std::string_view* s) {
    if (p_ >= end_) return false;
    unsigned char b = *p_;
    uint64_t len;
    if (b >= 0xa0 && b <= 0xbf) {
      len = b & 0x1f;
      ++p_;
    } else {
      size_t width = b == 0xd9 ? 1 : b == 0xda ? 2 : b == 0xdb ? 4 : 0;
      if (width == 0) return false;
      ++p_;
      if (!be(width, &len)) return false;
    }
    if (len > static_cast<uint64_t>(end_ - p_)) return false;
    *s = std::string_view(reinterpret_cast<const char*>(p_), len);
    p_ += len;
    return true;
  }

 private:
  bool big(size_t width, uint32_t* n) {
    ++p_;
    uint64_t v;
    if (!be(width, &v)) return false;
    *n = static_cast<uint32_t>(v);
    return true;
  }

  bool be(size_t width, uint64_t* v) {
    if (static_cast<size_t>(end_ - p_) < width) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < width; ++i) x = (x << 8) | p_[i];
    p_ += width;
    *v = x;
    return true;
  }

  const unsigned char* p_;
  const unsigned char* end_;
};

}  // namespace frames_detail

inline RoutedFrame route_frame(const char* data, size_t size) {
  using frames_detail::Cursor;
  RoutedFrame r;
  Cursor c(reinterpret_cast<const unsigned char*>(data), size);
  uint32_t n;
  uint64_t id;
  bool nil;
  if (!c.array(&n) || !c.uint_or_nil(&id, &nil) || nil) return r;
  if (n == 3) {
    if (id > 0) {
      r.kind = RoutedFrame::Kind::Reply;
      r.id = id;
    }
    return r;
  }
  std::string_view op;
  if (id != 0 || !c.str(&op)) return r;
  if (n == 5 && op == "output") {
    std::string_view stream, text;
    uint64_t req;
    if (!c.str(&stream) || !c.str(&text) || !c.uint_or_nil(&req, &nil)) return r;
    r.kind = RoutedFrame::Kind::Output;
    r.id = req;
    r.stderr_stream = stream == "stderr";
    r.text = text;
  } else if (n == 7 && op == "callback") {
    uint64_t req;
    if (!c.uint_or_nil(&req, &nil)) return r;
    r.kind = RoutedFrame::Kind::Callback;
    r.id = req;
  }
  return r;
}

}  // namespace sb::nif
