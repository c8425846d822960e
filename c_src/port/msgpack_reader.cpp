#include "msgpack_reader.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "../core/request.hpp"
#include "../core/shared_memory.hpp"
#include "framing.hpp"
#include "handles.hpp"

namespace sb::port {

bool as_text(const msgpack::object& o, std::string* out) {
  if (o.type == msgpack::type::STR) return out->assign(o.via.str.ptr, o.via.str.size), true;
  if (o.type == msgpack::type::BIN) return out->assign(o.via.bin.ptr, o.via.bin.size), true;
  return false;
}

bool handle_id(const msgpack::object& o, uint64_t* id) {
  if (o.type != msgpack::type::EXT || o.via.ext.type() != kHandle || o.via.ext.size < 8) return false;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(o.via.ext.data()[i]);
  *id = v;
  return true;
}

namespace {

struct ClaimCheck : msgpack::null_visitor {
  uint64_t budget;
  bool exceeded = false;
  explicit ClaimCheck(uint64_t b) : budget(b) {}
  bool claim(uint64_t n) {
    if (n > budget) return !(exceeded = true);
    budget -= n;
    return true;
  }
  bool start_array(uint32_t n) { return claim(n); }
  bool start_map(uint32_t n) { return claim(uint64_t(n) * 2); }
};

}  // namespace

bool claims_fit(const char* data, size_t size) {
  ClaimCheck check(size);
  size_t offset = 0;
  msgpack::parse(data, size, offset, check);
  return !check.exceeded;
}

WireKind MsgpackReader::kind(Value o) {
  switch (o->type) {
    case msgpack::type::NIL:
      return WireKind::Nil;
    case msgpack::type::BOOLEAN:
      return o->via.boolean ? WireKind::True : WireKind::False;
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
      return WireKind::Integer;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return WireKind::Float;
    case msgpack::type::STR:
      return WireKind::Atom;
    case msgpack::type::BIN:
      return WireKind::Binary;
    case msgpack::type::MAP:
      return WireKind::Map;
    case msgpack::type::ARRAY: {
      if (!marked(*o)) return WireKind::List;
      const msgpack::object& m = o->via.array.ptr[0];
      if (is_marker(m, kTupleMarker)) return WireKind::Tuple;
      if (is_marker(m, kSetMarker)) return WireKind::Set;
      if (o->via.array.size == 3 &&
          (o->via.array.ptr[1].type == msgpack::type::STR || o->via.array.ptr[1].type == msgpack::type::BIN) &&
          o->via.array.ptr[2].type == msgpack::type::MAP) {
        return WireKind::Struct;
      }
      return WireKind::Opaque;  // a malformed struct
    }
    case msgpack::type::EXT:
      switch (o->via.ext.type()) {
        case kHandle:
          return o->via.ext.size >= 8 ? WireKind::Object : WireKind::Opaque;
        case kBigInt:
          return o->via.ext.size >= 1 ? WireKind::Integer : WireKind::Opaque;
        case kBytes:
          return WireKind::Bytes;
        case kTerm:
          return o->via.ext.size >= 2 ? WireKind::Term : WireKind::Opaque;
        case kShared:
          return o->via.ext.size > 8 ? WireKind::Binary : WireKind::Opaque;
        default:
          return WireKind::Opaque;
      }
  }
  return WireKind::Opaque;
}

BigInt MsgpackReader::big_int(Value o) {
  BigInt b;
  const auto* data = reinterpret_cast<const uint8_t*>(o->via.ext.data());
  b.negative = data[0] != 0;
  b.magnitude.assign(data + 1, data + o->via.ext.size);
  while (!b.magnitude.empty() && b.magnitude.back() == 0) b.magnitude.pop_back();
  return b;
}

std::string_view MsgpackReader::text(Value o) {
  switch (o->type) {
    case msgpack::type::STR:
      return {o->via.str.ptr, o->via.str.size};
    case msgpack::type::BIN:
      return {o->via.bin.ptr, o->via.bin.size};
    case msgpack::type::EXT:
      if (o->via.ext.type() == kShared && o->via.ext.size > 8) {
        auto m = shared(o);
        return {static_cast<const char*>(m->data), m->size};
      }
      return {o->via.ext.data(), o->via.ext.size};
    default:
      return {};
  }
}

MsgpackReader::Mapping::~Mapping() {
  if (data) munmap(data, size);
}

std::shared_ptr<MsgpackReader::Mapping> MsgpackReader::shared(Value o) {
  if (auto it = shared_.find(o); it != shared_.end()) return it->second;
  const char* p = o->via.ext.data();
  uint64_t size = 0;
  for (int i = 0; i < 8; ++i) size = (size << 8) | static_cast<unsigned char>(p[i]);
  std::string name(p + 8, o->via.ext.size - 8);
  // Only objects named for this program: a frame cannot make it open, or
  // unlink, anything else.
  std::string prefix = "/snakebridge-";
  prefix += std::to_string(getpid());
  prefix += '-';
  bool ours = name.size() > prefix.size() && name.size() < 64 && name.compare(0, prefix.size(), prefix) == 0 &&
              name.find_first_not_of("0123456789", prefix.size()) == std::string::npos;
  if (!ours) {
    PyErr_Format(PyExc_OSError, "shared bytes %s: not a name this worker reads", name.c_str());
    throw_python_error();
  }
  auto m = std::make_shared<Mapping>();
  if (int err = take_shared(name, size, &m->data)) {
    errno = err;
    PyErr_SetFromErrnoWithFilename(PyExc_OSError, name.c_str());
    throw_python_error();
  }
  m->size = size;
  shared_.emplace(o, m);
  return m;
}

bool MsgpackReader::length(Value o, size_t* n) {
  if (o->type == msgpack::type::MAP) return *n = o->via.map.size, true;
  if (o->type != msgpack::type::ARRAY) return false;
  *n = o->via.array.size - (marked(*o) ? 1 : 0);
  return true;
}

bool MsgpackReader::field(Value o, const char* name, Value* out) {
  const auto& m = o->via.array.ptr[2].via.map;
  size_t len = strlen(name);
  for (uint32_t i = 0; i < m.size; ++i) {
    const msgpack::object& k = m.ptr[i].key;
    if (k.type == msgpack::type::STR && k.via.str.size == len && memcmp(k.via.str.ptr, name, len) == 0) {
      *out = &m.ptr[i].val;
      return true;
    }
  }
  return false;
}

PyObject* MsgpackReader::object(Value o) {
  uint64_t id;
  if (!handle_id(*o, &id)) return nullptr;
  if (PyObject* obj = handles().get(id)) return obj;
  UnknownObject e;
  e.id = id;
  throw e;
}

KeptBytes MsgpackReader::keep(Value o) {
  if (o->type == msgpack::type::EXT && o->via.ext.type() == kShared) {
    KeptBytes k;
    auto held = new std::shared_ptr<Mapping>(shared(o));
    k.data = static_cast<const char*>((*held)->data);
    k.size = (*held)->size;
    k.ctx = held;
    k.release = [](void* ctx) { delete static_cast<std::shared_ptr<Mapping>*>(ctx); };
    return k;
  }
  // Into a buffer of the frames' kind (framing.hpp): a large one comes from
  // the spares and goes back to them when Python drops the array.
  std::string_view b = text(o);
  auto* buffer = new Buffer(allocate_buffer(b.size()));
  if (!b.empty()) std::memcpy(buffer->get(), b.data(), b.size());
  KeptBytes k;
  k.data = buffer->get();
  k.size = b.size();
  k.ctx = buffer;
  k.release = [](void* ctx) { delete static_cast<Buffer*>(ctx); };
  return k;
}

const void* MsgpackReader::object_type(Value o) {
  uint64_t id;
  return handle_id(*o, &id) ? handles().type_of(id) : nullptr;
}

// A pid, reference, port or function: ext 14, its external term format,
// kept as it is and sent back the same.
PyRef MsgpackReader::term(Value o) {
  std::string etf(o->via.ext.data(), o->via.ext.size);
  auto tag = static_cast<unsigned char>(etf[1]);  // after the version byte 131
  TermKind kind = (tag == 88 || tag == 103)               ? TermKind::Pid
                  : (tag == 90 || tag == 101 || tag == 114) ? TermKind::Reference
                  : (tag == 89 || tag == 102 || tag == 120) ? TermKind::Port
                  : (tag == 112 || tag == 113)              ? TermKind::Function
                                                            : TermKind::Other;
  return make_elixir_term(kind, std::make_shared<EtfTerm>(std::move(etf)));
}

std::shared_ptr<const TermPayload> MsgpackReader::held(Value o) {
  if (kind(o) != WireKind::Term) return nullptr;
  return std::make_shared<EtfTerm>(std::string(o->via.ext.data(), o->via.ext.size));
}

bool EtfTerm::same(const TermPayload& other) const {
  auto* o = dynamic_cast<const EtfTerm*>(&other);
  return o && o->etf == etf;
}
uint64_t EtfTerm::hash() const { return std::hash<std::string>()(etf); }
std::string EtfTerm::describe() const { return "(" + std::to_string(etf.size()) + " bytes of external term format)"; }

}  // namespace sb::port
