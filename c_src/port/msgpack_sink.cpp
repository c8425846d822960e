#include "msgpack_sink.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include <cstring>
#include <initializer_list>
#include <string>

#include "../core/errors.hpp"
#include "../core/interpreter.hpp"
#include "../core/shared_memory.hpp"
#include "handles.hpp"
#include "msgpack_reader.hpp"

namespace sb::port {
namespace {

void ext_ints(Packer& pk, int8_t type, std::initializer_list<int> ints, const ZoneFields* z = nullptr) {
  msgpack::sbuffer buf;
  Packer inner(buf);
  inner.pack_array(static_cast<uint32_t>(ints.size() + (z ? 4 : 0)));
  for (int v : ints) inner.pack_int(v);
  if (z) {
    inner.pack(z->name);
    inner.pack(z->abbr);
    inner.pack_int(z->utc_offset);
    inner.pack_int(z->dst_offset);
  }
  pk.pack_ext(buf.size(), type);
  pk.pack_ext_body(buf.data(), buf.size());
}

}  // namespace

void MsgpackSink::big_int(const BigInt& b) {
  std::string body(1, b.negative ? 1 : 0);
  body.append(reinterpret_cast<const char*>(b.magnitude.data()), b.magnitude.size());
  pk_.pack_ext(body.size(), kBigInt);
  pk_.pack_ext_body(body.data(), body.size());
}

// Always a float64: msgpack-c's pack_double writes whole-number doubles as
// integers (4.0 would arrive as 4, -0.0 as 0).
void MsgpackSink::float64(double d) {
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  char raw[9];
  raw[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) raw[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  pk_.pack_bin_body(raw, sizeof raw);  // appends the bytes as they are
}

void MsgpackSink::atom(const char* name) {
  size_t n = strlen(name);
  pk_.pack_ext(n, kAtom);
  pk_.pack_ext_body(name, n);
}

void MsgpackSink::date(const DateFields& d) { ext_ints(pk_, kDate, {d.year, d.month, d.day}); }

void MsgpackSink::time(const TimeFields& t) {
  ext_ints(pk_, kTime, {t.hour, t.minute, t.second, t.microsecond, microsecond_precision(t)});
}

void MsgpackSink::datetime(const DateFields& d, const TimeFields& t, const ZoneFields* z) {
  ext_ints(pk_, z ? kDateTime : kNaiveDateTime,
           {d.year, d.month, d.day, t.hour, t.minute, t.second, t.microsecond, microsecond_precision(t)}, z);
}

// ext 14: kind, bits, number of dimensions, padding p (one byte each), each
// dimension as 8 bytes big-endian, p zero bytes, then the elements, which
// start at a multiple of 8 from the start of the reply (an aligned binary on
// the Elixir side, so numpy reads it at full speed when it goes back). No work
// per element; large arrays are not even copied here (spliced).
void MsgpackSink::array(PyObject* owner, const char* data, size_t n, ElementType type,
                        const std::vector<int64_t>& shape) {
  constexpr size_t kExtHeader = 6;  // 0xc9, 4-byte length, type
  size_t head_size = 4 + 8 * shape.size();
  size_t at = (buf_ ? buf_->size() : 0) + kExtHeader + head_size;
  if (spliced_) {
    for (const Spliced& s : *spliced_) at += s.size;
  }
  size_t pad = buf_ ? (8 - at % 8) % 8 : 0;
  std::string head(head_size + pad, '\0');
  head[0] = type.kind;
  head[1] = static_cast<char>(type.bits);
  head[2] = static_cast<char>(shape.size());
  head[3] = static_cast<char>(pad);
  for (size_t d = 0; d < shape.size(); ++d) {
    for (int i = 0; i < 8; ++i) head[4 + 8 * d + i] = static_cast<char>(static_cast<uint64_t>(shape[d]) >> (56 - 8 * i));
  }
  std::string name;
  if (shared_ && owner && n >= kShareAtLeast && share(owner, data, n, &name)) {
    // ext 17: the same head without padding, then the size (8 bytes
    // big-endian) and the object's name, in place of the elements.
    head[3] = 0;
    head.resize(head_size);
    for (int i = 0; i < 8; ++i) head.push_back(static_cast<char>(static_cast<uint64_t>(n) >> (56 - 8 * i)));
    head += name;
    pk_.pack_ext(head.size(), kSharedArray);
    pk_.pack_ext_body(head.data(), head.size());
    return;
  }
  if (n > kMaxArrayPayload - head.size()) {
    NotAnArray e;
    e.type_name = "array";
    e.message = "an array of " + std::to_string(n) + " bytes is larger than a port worker's reply can be (" +
                std::to_string(kMaxArrayPayload >> 20) + " MiB)";
    throw e;
  }
  pk_.pack_ext(head.size() + n, kArray);
  pk_.pack_ext_body(head.data(), head.size());
  if (buf_ && spliced_ && owner && n >= kSpliceAtLeast) {
    Py_INCREF(owner);
    spliced_->push_back({buf_->size(), data, n, owner});
    return;
  }
  pk_.pack_ext_body(data, n);
}

bool MsgpackSink::share(PyObject* owner, const char* data, size_t n, std::string* name) {
  static std::atomic<uint64_t> counter{0};
  *name = "/snakebridge-";
  *name += std::to_string(getpid());
  *name += "-r";
  *name += std::to_string(counter.fetch_add(1) + 1);
  int fd = shm_open(name->c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  // The room reserved now, so that filling it later cannot fail for want of
  // it (no /dev/shm room: the array goes in the reply instead).
  if (posix_fallocate(fd, 0, static_cast<off_t>(n)) != 0) {
    close(fd);
    shm_unlink(name->c_str());
    return false;
  }
  Py_INCREF(owner);
  shared_->push_back({fd, *name, data, n, owner});
  return true;
}

void write_shared_arrays(std::vector<SharedOut>& shared) {
  for (SharedOut& s : shared) {
    if (write_all(s.fd, s.data, s.size) != 0) shm_unlink(s.name.c_str());
    close(s.fd);
    release_later(s.owner);
  }
  shared.clear();
}

void discard_shared_arrays(std::vector<SharedOut>& shared) {
  for (SharedOut& s : shared) {
    close(s.fd);
    shm_unlink(s.name.c_str());
    Py_DECREF(s.owner);
  }
  shared.clear();
}

void MsgpackSink::fits(size_t n, const char* what) {
  if (n <= 0xFFFFFFFFu) return;
  PyErr_Format(PyExc_OverflowError,
               "a %s of %zu bytes is longer than a port worker can send (4 GiB - 1): keep the value in the "
               "worker (return: :ref) and take it in parts, or call it in-process",
               what, n);
  throw_python_error();
}

void MsgpackSink::object(PyObject* o) {
  uint64_t id = handles().add(o);
  if (made_) made_->push_back(id);
  std::string type = type_name(o);
  std::string payload(8 + type.size(), '\0');
  for (int i = 0; i < 8; ++i) payload[i] = static_cast<char>(id >> (56 - 8 * i));
  memcpy(payload.data() + 8, type.data(), type.size());
  pk_.pack_ext(payload.size(), kHandle);
  pk_.pack_ext_body(payload.data(), payload.size());
}

void MsgpackSink::elixir_term(const TermPayload& t) {
  auto* held = dynamic_cast<const EtfTerm*>(&t);
  if (!held) {  // (a payload of the NIF cannot reach this program)
    pk_.pack_nil();
    return;
  }
  pk_.pack_ext(held->etf.size(), kTerm);
  pk_.pack_ext_body(held->etf.data(), held->etf.size());
}

}  // namespace sb::port
