// port/framing.hpp: FrameReader (4-byte big-endian length + body) and frame_header.
// No Python involved.
#include "../port/framing.hpp"

#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using sb::port::frame_header;
using sb::port::FrameReader;

namespace {

// What a reader produced: a frame's body, or an oversized frame's announced size.
struct Event {
  bool oversized = false;
  std::string body;
  uint64_t size = 0;
  bool operator==(const Event& o) const { return oversized == o.oversized && body == o.body && size == o.size; }
};

Event frame(const std::string& body) { return {false, body, 0}; }
Event over(uint64_t size) { return {true, "", size}; }

std::string framed(const std::string& body) { return frame_header(body.size()) + body; }

// A header announcing `n` bytes, whatever follows.
std::string header_of(uint32_t n) {
  std::string h(4, '\0');
  h[0] = static_cast<char>(n >> 24);
  h[1] = static_cast<char>(n >> 16);
  h[2] = static_cast<char>(n >> 8);
  h[3] = static_cast<char>(n);
  return h;
}

// Takes every complete event out of the reader.
void drain(FrameReader& r, std::vector<Event>* out) {
  while (true) {
    std::string body = "stale";
    uint64_t size = 12345;
    auto next = r.next(&body, &size);
    if (next == FrameReader::Next::NeedMore) return;
    if (next == FrameReader::Next::Frame) out->push_back(frame(body));
    else out->push_back(over(size));
  }
}

// Feeds `stream` in pieces cut at `cuts` (increasing offsets), draining after each feed.
std::vector<Event> read_cut(const std::string& stream, const std::vector<size_t>& cuts, size_t max_frame) {
  FrameReader r(max_frame);
  std::vector<Event> out;
  size_t from = 0;
  for (size_t c : cuts) {
    r.feed(stream.data() + from, c - from);
    drain(r, &out);
    from = c;
  }
  r.feed(stream.data() + from, stream.size() - from);
  drain(r, &out);
  return out;
}

std::vector<Event> read_all(const std::string& stream, size_t max_frame = size_t(1) << 30) {
  return read_cut(stream, {}, max_frame);
}

std::vector<Event> read_bytewise(const std::string& stream, size_t max_frame = size_t(1) << 30) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  return read_cut(stream, cuts, max_frame);
}

std::string binary_body(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 17 + (i >> 3)) & 0xFF);
  return s;
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<Event> {
  static std::string convert(const Event& e) {
    if (e.oversized) return "Oversized(" + std::to_string(e.size) + ")";
    return "Frame(" + std::to_string(e.body.size()) + " bytes)";
  }
};
}  // namespace Catch

TEST_CASE("frame_header is the body length as 4 big-endian bytes", "[port][framing]") {
  CHECK(frame_header(0) == std::string("\0\0\0\0", 4));
  CHECK(frame_header(1) == std::string("\0\0\0\x01", 4));
  CHECK(frame_header(255) == std::string("\0\0\0\xff", 4));
  CHECK(frame_header(256) == std::string("\0\0\x01\0", 4));
  CHECK(frame_header(0x01020304) == std::string("\x01\x02\x03\x04", 4));
  CHECK(frame_header(size_t(1) << 30) == std::string("\x40\0\0\0", 4));
  CHECK(frame_header(0xFFFFFFFFu) == std::string("\xff\xff\xff\xff", 4));
}

TEST_CASE("a single frame fed at once comes out whole, once", "[port][framing]") {
  FrameReader r;
  std::string body = "\x92\x01\xa4ping";
  std::string stream = framed(body);
  r.feed(stream.data(), stream.size());
  std::string out;
  uint64_t size = 0;
  REQUIRE(r.next(&out, &size) == FrameReader::Next::Frame);
  CHECK(out == body);
  CHECK(r.next(&out, &size) == FrameReader::Next::NeedMore);
  CHECK(r.next(&out, &size) == FrameReader::Next::NeedMore);
}

TEST_CASE("nothing, or less than a header, is NeedMore", "[port][framing]") {
  FrameReader r;
  std::string out;
  uint64_t size = 0;
  CHECK(r.next(&out, &size) == FrameReader::Next::NeedMore);
  r.feed("\0\0", 2);
  CHECK(r.next(&out, &size) == FrameReader::Next::NeedMore);
  r.feed("\0", 1);
  CHECK(r.next(&out, &size) == FrameReader::Next::NeedMore);
  r.feed("\x02", 1);  // header complete: 2 bytes announced, none there yet
  CHECK(r.next(&out, &size) == FrameReader::Next::NeedMore);
  r.feed("a", 1);
  CHECK(r.next(&out, &size) == FrameReader::Next::NeedMore);
  r.feed("b", 1);
  REQUIRE(r.next(&out, &size) == FrameReader::Next::Frame);
  CHECK(out == "ab");
}

TEST_CASE("an empty frame is a frame with an empty body", "[port][framing]") {
  CHECK(read_all(framed("")) == std::vector<Event>{frame("")});
  CHECK(read_all(framed("") + framed("") + framed("x")) == std::vector<Event>{frame(""), frame(""), frame("x")});
  CHECK(read_bytewise(framed("") + framed("x") + framed("")) == std::vector<Event>{frame(""), frame("x"), frame("")});
}

TEST_CASE("several frames in one feed come out in order", "[port][framing]") {
  std::vector<std::string> bodies = {"one", "", std::string("\0\0\0\0", 4), binary_body(1000, 1), "last"};
  std::string stream;
  std::vector<Event> expected;
  for (const auto& b : bodies) {
    stream += framed(b);
    expected.push_back(frame(b));
  }
  CHECK(read_all(stream) == expected);

  // Followed by half a frame: the complete ones still come out, the rest waits.
  std::string tail = framed("incomplete");
  FrameReader r;
  std::string with_tail = stream + tail.substr(0, 7);
  r.feed(with_tail.data(), with_tail.size());
  std::vector<Event> got;
  drain(r, &got);
  CHECK(got == expected);
  r.feed(tail.data() + 7, tail.size() - 7);
  got.clear();
  drain(r, &got);
  CHECK(got == std::vector<Event>{frame("incomplete")});
}

TEST_CASE("frames split across two feeds at every byte boundary", "[port][framing]") {
  std::vector<std::string> bodies = {"a", "", binary_body(300, 2), "\xc1\xc1", binary_body(70000, 3)};
  std::string stream;
  std::vector<Event> expected;
  for (const auto& b : bodies) {
    stream += framed(b);
    expected.push_back(frame(b));
  }
  // The 70000-byte frame makes every cut test too slow; cut the small part at
  // every boundary, the big frame at a sample of them.
  size_t small = stream.size() - framed(bodies.back()).size();
  for (size_t cut = 0; cut <= stream.size(); cut += (cut < small + 8 ? 1 : 997)) {
    INFO("cut at " << cut);
    REQUIRE(read_cut(stream, {cut}, size_t(1) << 30) == expected);
  }
}

TEST_CASE("frames fed one byte at a time, and in every pair of cuts", "[port][framing]") {
  std::string stream = framed("hello") + framed("") + framed(binary_body(40, 4)) + framed("z");
  std::vector<Event> expected = {frame("hello"), frame(""), frame(binary_body(40, 4)), frame("z")};
  CHECK(read_bytewise(stream) == expected);
  for (size_t a = 0; a <= stream.size(); ++a) {
    for (size_t b = a; b <= stream.size(); ++b) {
      INFO("cuts at " << a << " and " << b);
      REQUIRE(read_cut(stream, {a, b}, size_t(1) << 30) == expected);
    }
  }
}

TEST_CASE("a frame exactly at the limit is accepted, one byte more is skipped", "[port][framing]") {
  const size_t limit = 16;
  std::string at = binary_body(limit, 5);
  std::string over_by_one = binary_body(limit + 1, 6);

  CHECK(read_all(framed(at), limit) == std::vector<Event>{frame(at)});
  CHECK(read_bytewise(framed(at), limit) == std::vector<Event>{frame(at)});

  std::string stream = framed("before") + framed(over_by_one) + framed("after");
  std::vector<Event> expected = {frame("before"), over(limit + 1), frame("after")};
  CHECK(read_all(stream, limit) == expected);
  CHECK(read_bytewise(stream, limit) == expected);
}

TEST_CASE("an oversized frame is reported once and the stream resynchronises", "[port][framing]") {
  const size_t limit = 8;
  std::string big = binary_body(100, 7);
  // The big body holds bytes that would look like headers if misread.
  big.replace(10, 4, header_of(2));
  std::string stream = framed("ok1") + framed(big) + framed("ok2") + framed(binary_body(9, 8)) + framed("") +
                       framed("ok3");
  std::vector<Event> expected = {frame("ok1"), over(100), frame("ok2"), over(9), frame(""), frame("ok3")};

  SECTION("all at once") { CHECK(read_all(stream, limit) == expected); }
  SECTION("one byte at a time") { CHECK(read_bytewise(stream, limit) == expected); }
  SECTION("at every single cut") {
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
      INFO("cut at " << cut);
      REQUIRE(read_cut(stream, {cut}, limit) == expected);
    }
  }
  SECTION("in chunks of every size") {
    for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
      std::vector<size_t> cuts;
      for (size_t c = chunk; c < stream.size(); c += chunk) cuts.push_back(c);
      INFO("chunks of " << chunk);
      REQUIRE(read_cut(stream, cuts, limit) == expected);
    }
  }
}

TEST_CASE("an oversized body arriving over many feeds is skipped without being buffered", "[port][framing]") {
  const size_t limit = 64;
  FrameReader r(limit);
  std::vector<Event> got;

  std::string header = header_of(1 << 20);  // 1 MiB announced
  r.feed(header.data(), 2);
  drain(r, &got);
  CHECK(got.empty());
  r.feed(header.data() + 2, 2);
  drain(r, &got);
  REQUIRE(got == std::vector<Event>{over(1 << 20)});  // reported as soon as the header is complete

  // The body in 4 KiB pieces, each made of bytes that look like small frame headers.
  std::string piece(4096, '\0');
  for (size_t i = 0; i < piece.size(); i += 4) piece.replace(i, 4, header_of(1));
  for (size_t sent = 0; sent < (1u << 20); sent += piece.size()) {
    r.feed(piece.data(), piece.size());
    drain(r, &got);
  }
  CHECK(got.size() == 1);  // nothing new while skipping

  // The last skipped byte and the next frame arrive in the same feed.
  std::string next = framed("resync");
  r.feed(next.data(), next.size());
  drain(r, &got);
  CHECK(got == std::vector<Event>{over(1 << 20), frame("resync")});
}

TEST_CASE("the oversized body's end and the next frame's header can share a feed at any offset", "[port][framing]") {
  const size_t limit = 4;
  std::string stream = framed("ab") + framed(binary_body(50, 9)) + framed("cd") + framed(binary_body(5, 10)) +
                       framed("ef");
  std::vector<Event> expected = {frame("ab"), over(50), frame("cd"), over(5), frame("ef")};
  // Three-way cuts across the whole stream.
  for (size_t a = 0; a <= stream.size(); a += 3) {
    for (size_t b = a; b <= stream.size(); ++b) {
      INFO("cuts at " << a << " and " << b);
      REQUIRE(read_cut(stream, {a, b}, limit) == expected);
    }
  }
}

TEST_CASE("a limit of zero accepts only empty frames", "[port][framing]") {
  std::string stream = framed("") + framed("x") + framed("") + framed("yz");
  std::vector<Event> expected = {frame(""), over(1), frame(""), over(2)};
  CHECK(read_all(stream, 0) == expected);
  CHECK(read_bytewise(stream, 0) == expected);
}

TEST_CASE("the default limit is 1 GiB: a header just above it is refused at once", "[port][framing]") {
  FrameReader r;
  std::vector<Event> got;
  std::string h = header_of((1u << 30) + 1);
  r.feed(h.data(), h.size());
  drain(r, &got);
  CHECK(got == std::vector<Event>{over((1u << 30) + 1)});
  std::string biggest = header_of(0xFFFFFFFFu);
  FrameReader r2;
  got.clear();
  r2.feed(biggest.data(), biggest.size());
  drain(r2, &got);
  CHECK(got == std::vector<Event>{over(0xFFFFFFFFu)});

  // Exactly 1 GiB announced is within the limit: the reader waits for the body.
  FrameReader r3;
  std::string at = header_of(1u << 30);
  r3.feed(at.data(), at.size());
  std::string out;
  uint64_t size = 0;
  CHECK(r3.next(&out, &size) == FrameReader::Next::NeedMore);
}

TEST_CASE("a long stream of small frames fed in odd chunks keeps its order", "[port][framing]") {
  std::string stream;
  std::vector<Event> expected;
  for (unsigned i = 0; i < 2000; ++i) {
    std::string b = binary_body(i % 37, i);
    stream += framed(b);
    expected.push_back(frame(b));
  }
  std::vector<size_t> cuts;
  for (size_t c = 13, step = 1; c < stream.size(); step = step * 7 % 101 + 1, c += step) cuts.push_back(c);
  CHECK(read_cut(stream, cuts, 64) == expected);
}

TEST_CASE("a large frame read in pipe-sized pieces lands in one buffer, never copied to a bigger one",
          "[port][framing]") {
  // As Input reads: into space(), then commit(). The last piece is smaller than
  // the reader's usual minimum room (64 KiB): asking for that much then would
  // move the whole frame into a bigger buffer.
  const std::string body = binary_body((3 << 20) + 111, 7);
  const std::string stream = framed(body);
  for (size_t piece : {size_t(65536), size_t(1) << 20, size_t(4096) * 3 + 5}) {
    FrameReader r;
    size_t from = 0;
    const char* start = nullptr;  // where the frame's bytes began, once the buffer fits it
    while (from < stream.size()) {
      size_t room = 0;
      char* into = r.space(&room);
      REQUIRE(room > 0);
      size_t n = std::min({piece, room, stream.size() - from});
      if (from >= 4 && start == nullptr) start = into - from;
      // The same buffer, where the frame left off.
      if (start) CHECK(static_cast<const void*>(into) == static_cast<const void*>(start + from));
      std::memcpy(into, stream.data() + from, n);
      r.commit(n);
      from += n;
    }
    sb::port::Frame f;
    uint64_t size = 0;
    REQUIRE(r.next(&f, &size) == FrameReader::Next::Frame);
    CHECK((std::string(f.data, f.size) == body));
    // Handed over, not copied.
    CHECK(static_cast<const void*>(f.data) == static_cast<const void*>(start + 4));
  }
}
