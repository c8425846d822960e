// nif/reply_frames.hpp: how the NIF's reply channel routes a frame from a port
// program (docs/protocol.md, "The reply channel"). No BEAM, no Python.
#include "../nif/reply_frames.hpp"

#include <msgpack.hpp>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

using sb::nif::route_frame;
using sb::nif::RoutedFrame;
using Kind = RoutedFrame::Kind;

namespace {

template <class F>
std::string packed(F&& f) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  f(pk);
  return std::string(buf.data(), buf.size());
}

std::string reply(uint64_t id) {
  return packed([&](auto& pk) {
    pk.pack_array(3);
    pk.pack_uint64(id);
    pk.pack(std::string("ok"));
    pk.pack(std::string("value"));
  });
}

std::string output(const char* stream, const std::string& text, bool with_request, uint64_t req = 0) {
  return packed([&](auto& pk) {
    pk.pack_array(5);
    pk.pack_uint64(0);
    pk.pack(std::string("output"));
    pk.pack(std::string(stream));
    pk.pack(text);
    if (with_request) pk.pack_uint64(req);
    else pk.pack_nil();
  });
}

std::string callback(bool with_request, uint64_t req) {
  return packed([&](auto& pk) {
    pk.pack_array(7);
    pk.pack_uint64(0);
    pk.pack(std::string("callback"));
    if (with_request) pk.pack_uint64(req);
    else pk.pack_nil();
    pk.pack_uint64(3);
    pk.pack(std::string("fun"));
    pk.pack_array(0);
    pk.pack_map(0);
  });
}

RoutedFrame route(const std::string& s) { return route_frame(s.data(), s.size()); }

}  // namespace

TEST_CASE("a reply goes to its request, whatever width its id is written in", "[reply_frames]") {
  for (uint64_t id : {uint64_t(1), uint64_t(127), uint64_t(128), uint64_t(255), uint64_t(256), uint64_t(65535),
                      uint64_t(65536), uint64_t(4294967295u), uint64_t(4294967296u), UINT64_MAX}) {
    RoutedFrame r = route(reply(id));
    CHECK(r.kind == Kind::Reply);
    CHECK(r.id == id);
  }
}

TEST_CASE("an error reply is a reply; a frame of id 0 with 3 elements is not", "[reply_frames]") {
  std::string error = packed([](auto& pk) {
    pk.pack_array(3);
    pk.pack_uint64(42);
    pk.pack(std::string("error"));
    pk.pack_map(1);
    pk.pack(std::string("kind"));
    pk.pack(std::string("python"));
  });
  CHECK(route(error).kind == Kind::Reply);
  CHECK(route(error).id == 42);
  CHECK(route(reply(0)).kind == Kind::Other);
}

TEST_CASE("output goes to the request that printed it, with its stream and text", "[reply_frames]") {
  RoutedFrame out = route(output("stdout", "hello\n", true, 7));
  CHECK(out.kind == Kind::Output);
  CHECK(out.id == 7);
  CHECK_FALSE(out.stderr_stream);
  CHECK(out.text == "hello\n");

  std::string long_text(70000, 'x');  // str 32
  RoutedFrame err = route(output("stderr", long_text, true, 300));
  CHECK(err.kind == Kind::Output);
  CHECK(err.stderr_stream);
  CHECK(err.id == 300);
  CHECK(err.text == long_text);

  RoutedFrame none = route(output("stdout", "x", false));
  CHECK(none.kind == Kind::Output);
  CHECK(none.id == 0);
}

TEST_CASE("a callback goes to its request; one outside any request has id 0", "[reply_frames]") {
  RoutedFrame r = route(callback(true, 9));
  CHECK(r.kind == Kind::Callback);
  CHECK(r.id == 9);
  RoutedFrame kept = route(callback(false, 0));
  CHECK(kept.kind == Kind::Callback);
  CHECK(kept.id == 0);
}

TEST_CASE("other notices, and frames that are not the protocol's, go to the worker", "[reply_frames]") {
  std::string interrupting = packed([](auto& pk) {
    pk.pack_array(3);
    pk.pack_uint64(0);
    pk.pack(std::string("interrupting"));
    pk.pack_uint64(5);
  });
  CHECK(route(interrupting).kind == Kind::Other);
  std::string send = packed([](auto& pk) {
    pk.pack_array(4);
    pk.pack_uint64(0);
    pk.pack(std::string("send"));
    pk.pack_nil();
    pk.pack_nil();
  });
  CHECK(route(send).kind == Kind::Other);
  CHECK(route("").kind == Kind::Other);
  CHECK(route(packed([](auto& pk) { pk.pack_map(0); })).kind == Kind::Other);
  // A negative id, a string id, an array of 3 whose id is nil.
  CHECK(route(packed([](auto& pk) {
          pk.pack_array(3);
          pk.pack_int64(-1);
          pk.pack_nil();
          pk.pack_nil();
        })).kind == Kind::Other);
  CHECK(route(packed([](auto& pk) {
          pk.pack_array(3);
          pk.pack(std::string("1"));
          pk.pack_nil();
          pk.pack_nil();
        })).kind == Kind::Other);
  CHECK(route(packed([](auto& pk) {
          pk.pack_array(3);
          pk.pack_nil();
          pk.pack_nil();
          pk.pack_nil();
        })).kind == Kind::Other);
}

TEST_CASE("a truncated frame never reads past its end, and never routes text it does not hold", "[reply_frames]") {
  for (const std::string& whole : {reply(70000), output("stderr", std::string(300, 'y'), true, 65536),
                                    callback(true, 4294967296u)}) {
    RoutedFrame full = route(whole);
    REQUIRE(full.kind != Kind::Other);
    for (size_t n = 0; n < whole.size(); ++n) {
      // A copy of exactly n bytes: a sanitizer build catches any read past it.
      std::string prefix = whole.substr(0, n);
      RoutedFrame r = route_frame(prefix.data(), prefix.size());
      if (r.kind == Kind::Output) CHECK(r.text.data() + r.text.size() <= prefix.data() + prefix.size());
      if (r.kind != Kind::Other) CHECK(r.id == full.id);
    }
  }
}
