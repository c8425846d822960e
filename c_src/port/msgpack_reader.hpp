// The port program's reader for the core's builder (core/from_elixir.hpp): how
// the Elixir terms of a request are spelled in MessagePack (docs/protocol.md,
// "Values"). No mapping rule here, only what each value is.
#pragma once
#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <msgpack.hpp>

#include <cstring>
#include <memory>
#include <unordered_map>
#include <string_view>

#include "../core/elixir_terms.hpp"
#include "../core/from_elixir.hpp"

namespace sb::port {

// Extension types of the protocol.
enum Ext : int8_t {
  kHandle = 1, kBigInt = 2, kTupleMarker = 3, kSetMarker = 4, kDate = 6, kTime = 7, kNaiveDateTime = 8,
  kDateTime = 9, kBytes = 10, kAtom = 11, kStructMarker = 12, kOpaque = 13, kTerm = 14, kArray = 15, kShared = 16, kSharedArray = 17,
};

// The largest array payload a reply carries: a frame's length is 32 bits.
constexpr size_t kMaxArrayPayload = (size_t(1) << 32) - 4096;

// A marker: fixext 1 of `type`. Never a value of its own.
inline bool is_marker(const msgpack::object& o, int8_t type) {
  return o.type == msgpack::type::EXT && o.via.ext.size == 1 && o.via.ext.type() == type;
}

// Text of a str or bin (request names); false for anything else.
bool as_text(const msgpack::object& o, std::string* out);

// The 8-byte handle id of an ext 1; false if `o` is not one.
bool handle_id(const msgpack::object& o, uint64_t* id);

// False when the arrays and maps of a frame claim more elements than it has
// bytes (every element takes at least one byte, so a valid frame never does).
// msgpack::unpack allocates a container's elements when it reads the header:
// headers nested in one another, each claiming 2^24 elements, would cost
// 384 MiB of address space apiece (a 1 MiB frame of them: ~100 TB, 1.7 GB
// resident, seconds on the I/O thread). Checked first, allocating nothing;
// true also when the frame is malformed otherwise (unpack then says how).
bool claims_fit(const char* data, size_t size);

// A BEAM term Python holds for the client: its external term format (ext 14).
struct EtfTerm : TermPayload {
  std::string etf;
  explicit EtfTerm(std::string e) : etf(std::move(e)) {}
  bool same(const TermPayload& other) const override;
  uint64_t hash() const override;
  std::string describe() const override;
};

class MsgpackReader {
 public:
  using Value = const msgpack::object*;

  WireKind kind(Value o);
  bool int64(Value o, int64_t* out) {
    if (o->type == msgpack::type::NEGATIVE_INTEGER) return *out = o->via.i64, true;
    if (o->type == msgpack::type::POSITIVE_INTEGER && o->via.u64 <= static_cast<uint64_t>(INT64_MAX)) {
      return *out = static_cast<int64_t>(o->via.u64), true;
    }
    return false;
  }
  bool uint64(Value o, uint64_t* out) {
    if (o->type != msgpack::type::POSITIVE_INTEGER) return false;
    *out = o->via.u64;
    return true;
  }
  BigInt big_int(Value o);
  double float64(Value o) { return o->via.f64; }
  std::string_view text(Value o);
  bool length(Value o, size_t* n);
  template <class F>
  void each_item(Value o, F&& f) {
    const auto& a = o->via.array;
    for (uint32_t i = marked(*o) ? 1 : 0; i < a.size; ++i) f(&a.ptr[i]);
  }
  template <class F>
  void each_entry(Value o, F&& f) {
    const auto& m = o->via.map;
    for (uint32_t i = 0; i < m.size; ++i) f(&m.ptr[i].key, &m.ptr[i].val);
  }
  std::string_view struct_name(Value o) { return text(&o->via.array.ptr[1]); }
  bool field(Value o, const char* name, Value* out);
  // The object of a handle; throws UnknownObject when this program holds none.
  PyObject* object(Value o);
  PyRef term(Value o);
  // ext 14 kept as it is for the client (a callback's original error), or null.
  std::shared_ptr<const TermPayload> held(Value o);
  uintptr_t token(Value o) { return reinterpret_cast<uintptr_t>(o); }
  // The frame goes when the request ends: an array's bytes are copied; bytes
  // in shared memory (ext 16) are kept mapped instead, no copy.
  KeptBytes keep(Value o);
  // For call-site keys, without the GIL.
  const void* object_type(Value o);

 private:
  // ext 16, shared bytes: "/snakebridge-<this program's pid>-<n>", written by
  // the client, mapped here once per value and unlinked (docs/protocol.md).
  // GIL held: a name that is not ours, or an object that is gone or of another
  // size, raises OSError.
  struct Mapping {
    void* data = nullptr;
    size_t size = 0;
    Mapping() = default;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping();
  };
  std::shared_ptr<Mapping> shared(Value o);
  std::unordered_map<Value, std::shared_ptr<Mapping>> shared_;

  // An array that spells a tuple, a set or a struct (its first item one of
  // those markers). Other fixext 1 values lead plain lists: a one-byte
  // SnakeBridge.Bytes (ext 10), the opaque marker of a pid.
  static bool marked(const msgpack::object& o) {
    if (o.via.array.size == 0) return false;
    const msgpack::object& first = o.via.array.ptr[0];
    return is_marker(first, kTupleMarker) || is_marker(first, kSetMarker) || is_marker(first, kStructMarker);
  }
};

}  // namespace sb::port
