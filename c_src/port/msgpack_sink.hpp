// The port program's sink for the core's walker (core/to_elixir.hpp): packs the
// Python values of a reply as MessagePack (docs/protocol.md, "Values"). No
// mapping rule here, only spelling.
#pragma once
#include "msgpack_reader.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "../core/to_elixir.hpp"

namespace sb::port {

using Packer = msgpack::packer<msgpack::sbuffer>;

// The bytes of large arrays, left out of a reply's buffer and written from
// the array's own memory (Server::send_reply): `at` is where they go in the
// buffer. `owner` is a reference that keeps them alive until written.
struct Spliced {
  size_t at;
  const char* data;
  size_t size;
  PyObject* owner;
};

// Arrays of at least this many bytes are spliced rather than copied, when the
// sink was given a buffer and a list to splice them into.
constexpr size_t kSpliceAtLeast = 64 * 1024;

// The bytes of a large array sent through shared memory (ext 17,
// docs/protocol.md "Shared bytes"): a POSIX shared-memory object `name`,
// created and sized when the reply is packed (`fd`), filled from the array's
// memory when the reply is written (write_shared_arrays), then left for the
// client, which maps and unlinks it. `owner` keeps the bytes alive until then.
struct SharedOut {
  int fd;
  std::string name;
  const char* data;
  size_t size;
  PyObject* owner;
};
// Arrays of at least this many bytes go through shared memory when the client
// asked for it (a caller on the worker's node).
constexpr size_t kShareAtLeast = size_t(1) << 20;

// Fills and closes each object (no GIL needed); one that cannot be filled is
// unlinked (the client then fails to read it). The owners go to
// release_later. `shared` is emptied.
void write_shared_arrays(std::vector<SharedOut>& shared);
// GIL held. For a reply abandoned half way: closes and unlinks each object and
// drops its owner. `shared` is emptied.
void discard_shared_arrays(std::vector<SharedOut>& shared);

class MsgpackSink {
 public:
  // `made`, if given, collects the ids of the handles registered by object(),
  // so that a reply abandoned half way can release them. With `buf` (the
  // packer's buffer) and `spliced`, large arrays are spliced (GIL held: their
  // owners get a reference, which the writer drops).
  explicit MsgpackSink(Packer& pk, std::vector<uint64_t>* made = nullptr, msgpack::sbuffer* buf = nullptr,
                       std::vector<Spliced>* spliced = nullptr)
      : pk_(pk), made_(made), buf_(buf), spliced_(spliced) {}

  void nil() { pk_.pack_nil(); }
  void boolean(bool b) { b ? pk_.pack_true() : pk_.pack_false(); }
  void int64(int64_t i) { pk_.pack_int64(i); }
  void uint64(uint64_t u) { pk_.pack_uint64(u); }
  void big_int(const BigInt& b);
  void float64(double d);
  void atom(const char* name);
  void str(PyObject*, const char* data, size_t n) {
    fits(n, "string");
    pk_.pack_str(static_cast<uint32_t>(n));
    pk_.pack_str_body(data, static_cast<uint32_t>(n));
  }
  void bytes(PyObject*, const char* data, size_t n) {
    fits(n, "binary");
    pk_.pack_bin(static_cast<uint32_t>(n));
    pk_.pack_bin_body(data, static_cast<uint32_t>(n));
  }
  void begin_list(size_t n) { pk_.pack_array(static_cast<uint32_t>(n)); }
  void end_list() {}
  void begin_tuple(size_t n) { marked_array(kTupleMarker, n); }
  void end_tuple() {}
  void begin_map(size_t n) { pk_.pack_map(static_cast<uint32_t>(n)); }
  void end_map() {}
  void begin_set(size_t n) { marked_array(kSetMarker, n); }
  void end_set() {}
  void date(const DateFields& d);
  void time(const TimeFields& t);
  void datetime(const DateFields& d, const TimeFields& t, const ZoneFields* zone);
  void object(PyObject* o);
  void elixir_term(const TermPayload& t);
  void array(PyObject* owner, const char* data, size_t n, ElementType type, const std::vector<int64_t>& shape);

 private:
  // MessagePack states a string's or binary's length in at most 4 bytes:
  // a longer one is refused (an OverflowError) rather than cut short.
  static void fits(size_t n, const char* what);

  void marked_array(int8_t marker, size_t n) {
    pk_.pack_array(static_cast<uint32_t>(n + 1));
    const char zero = 0;
    pk_.pack_ext(1, marker);
    pk_.pack_ext_body(&zero, 1);
  }

  Packer& pk_;
  std::vector<uint64_t>* made_;
  msgpack::sbuffer* buf_;
  std::vector<Spliced>* spliced_;
  std::vector<SharedOut>* shared_ = nullptr;

 public:
  // Large arrays go through shared memory, collected in `out`.
  void share_large_arrays(std::vector<SharedOut>* out) { shared_ = out; }

 private:
  // Creates and sizes the object for an array of n bytes; false (nothing
  // left behind) when it cannot be made: the array then goes in the reply.
  bool share(PyObject* owner, const char* data, size_t n, std::string* name);
};

}  // namespace sb::port
