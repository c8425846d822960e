#include "term_sink.hpp"

#include "callbacks.hpp"

#include <cstring>
#include <stdexcept>

#include "atoms.hpp"
#include "object_resource.hpp"

namespace sb::nif {
namespace {

// Below this size a copy is cheaper than a resource; above it the binary points
// into the Python object's own buffer.
constexpr size_t kBorrowAtLeast = 4096;

// The stack of the last sink on this thread, kept for the next one: a sink
// per request would otherwise allocate it every time.
thread_local std::vector<ERL_NIF_TERM> t_spare_stack;
constexpr size_t kKeepAtMost = 1 << 16;

}  // namespace

TermSink::TermSink(ErlNifEnv* env) : env_(env), stack_(std::move(t_spare_stack)) { stack_.clear(); }

TermSink::~TermSink() {
  if (stack_.capacity() <= kKeepAtMost && t_spare_stack.capacity() < stack_.capacity()) {
    t_spare_stack = std::move(stack_);
  }
}

void TermSink::nil() { push(atoms.nil); }
void TermSink::boolean(bool b) { push(b ? atoms.true_ : atoms.false_); }

void TermSink::binary(PyObject* owner, const char* data, size_t n) {
  if (owner && n >= kBorrowAtLeast) return push(make_borrowed_binary(env_, owner, data, n));
  ERL_NIF_TERM t;
  unsigned char* buf = enif_make_new_binary(env_, n, &t);
  if (n) memcpy(buf, data, n);
  push(t);
}

void TermSink::big_int(const BigInt& b) {
  // Beyond 64 bits: the bignum is built through the external term format.
  std::vector<unsigned char> etf;
  size_t n = b.magnitude.size();
  etf.reserve(n + 8);
  etf.push_back(131);
  if (n < 256) {
    etf.push_back(110);
    etf.push_back(static_cast<unsigned char>(n));
  } else {
    etf.push_back(111);
    for (int shift = 24; shift >= 0; shift -= 8) etf.push_back(static_cast<unsigned char>(n >> shift));
  }
  etf.push_back(b.negative ? 1 : 0);
  etf.insert(etf.end(), b.magnitude.begin(), b.magnitude.end());
  ERL_NIF_TERM t;
  if (!enif_binary_to_term(env_, etf.data(), etf.size(), &t, 0)) throw std::runtime_error("cannot build a bignum");
  push(t);
}

void TermSink::end_list() {
  size_t m = pop_mark();
  ERL_NIF_TERM t = enif_make_list_from_array(env_, stack_.data() + m, static_cast<unsigned>(stack_.size() - m));
  stack_.resize(m);
  push(t);
}

void TermSink::end_tuple() {
  size_t m = pop_mark();
  ERL_NIF_TERM t = enif_make_tuple_from_array(env_, stack_.data() + m, static_cast<unsigned>(stack_.size() - m));
  stack_.resize(m);
  push(t);
}

void TermSink::end_map() {
  size_t m = pop_mark();
  keys_.clear();
  values_.clear();
  for (size_t i = m; i + 1 < stack_.size(); i += 2) {
    keys_.push_back(stack_[i]);
    values_.push_back(stack_[i + 1]);
  }
  stack_.resize(m);
  ERL_NIF_TERM map;
  // The walker checked that no two keys become one term (keys_collide).
  if (!enif_make_map_from_arrays(env_, keys_.data(), values_.data(), keys_.size(), &map)) {
    throw std::runtime_error("two keys of a dict became the same Elixir term");
  }
  push(map);
}

void TermSink::end_set() {
  size_t m = pop_mark();
  std::vector<ERL_NIF_TERM> keys(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
  stack_.resize(m);
  std::vector<ERL_NIF_TERM> empties(keys.size(), enif_make_list(env_, 0));
  ERL_NIF_TERM inner;
  if (!enif_make_map_from_arrays(env_, keys.data(), empties.data(), keys.size(), &inner)) {
    throw std::runtime_error("two elements of a set became the same Elixir term");
  }
  std::vector<ERL_NIF_TERM> k{atoms.map, atoms.version}, v{inner, enif_make_int(env_, 2)};
  push(make_struct(atoms.elixir_mapset, k, v));
}

ERL_NIF_TERM TermSink::make_struct(ERL_NIF_TERM name, std::vector<ERL_NIF_TERM>& keys, std::vector<ERL_NIF_TERM>& values) {
  keys.push_back(atoms.__struct__);
  values.push_back(name);
  ERL_NIF_TERM map;
  enif_make_map_from_arrays(env_, keys.data(), values.data(), keys.size(), &map);
  return map;
}

void TermSink::calendar(const DateFields* d, const TimeFields* t, const ZoneFields* z) {
  std::vector<ERL_NIF_TERM> keys{atoms.calendar}, values{atoms.elixir_calendar_iso};
  if (d) {
    keys.insert(keys.end(), {atoms.year, atoms.month, atoms.day});
    values.insert(values.end(), {enif_make_int(env_, d->year), enif_make_int(env_, d->month), enif_make_int(env_, d->day)});
  }
  if (!t) return push(make_struct(atoms.elixir_date, keys, values));
  ERL_NIF_TERM micro = enif_make_tuple2(env_, enif_make_int(env_, t->microsecond),
                                        enif_make_int(env_, microsecond_precision(*t)));
  keys.insert(keys.end(), {atoms.hour, atoms.minute, atoms.second, atoms.microsecond});
  values.insert(values.end(), {enif_make_int(env_, t->hour), enif_make_int(env_, t->minute),
                               enif_make_int(env_, t->second), micro});
  if (!d) return push(make_struct(atoms.elixir_time, keys, values));
  if (!z) return push(make_struct(atoms.elixir_naive, keys, values));
  auto str = [&](const std::string& s) {
    ERL_NIF_TERM out;
    unsigned char* buf = enif_make_new_binary(env_, s.size(), &out);
    if (!s.empty()) memcpy(buf, s.data(), s.size());
    return out;
  };
  keys.insert(keys.end(), {atoms.time_zone, atoms.zone_abbr, atoms.utc_offset, atoms.std_offset});
  values.insert(values.end(), {str(z->name), str(z->abbr), enif_make_int(env_, z->utc_offset),
                               enif_make_int(env_, z->dst_offset)});
  push(make_struct(atoms.elixir_datetime, keys, values));
}

void TermSink::date(const DateFields& d) { calendar(&d, nullptr, nullptr); }
void TermSink::time(const TimeFields& t) { calendar(nullptr, &t, nullptr); }
void TermSink::datetime(const DateFields& d, const TimeFields& t, const ZoneFields* zone) { calendar(&d, &t, zone); }
void TermSink::object(PyObject* o) { push(make_object(env_, o)); }

// A term Python held: the same term (a payload of the port program cannot
// reach this interpreter).
void TermSink::elixir_term(const TermPayload& t) {
  auto* held = dynamic_cast<const NifTerm*>(&t);
  push(held ? enif_make_copy(env_, held->term) : atoms.nil);
}

void TermSink::array(PyObject* owner, const char* data, size_t n, ElementType type, const std::vector<int64_t>& shape) {
  binary(owner, data, n);  // the resource binary of a large array: no copy
  ERL_NIF_TERM bin = stack_.back();
  stack_.pop_back();
  std::vector<ERL_NIF_TERM> dims;
  dims.reserve(shape.size());
  for (int64_t d : shape) dims.push_back(enif_make_int64(env_, d));
  char kind[2] = {type.kind, 0};
  std::vector<ERL_NIF_TERM> keys{atoms.data, atoms.type, atoms.shape},
      values{bin, enif_make_tuple2(env_, enif_make_atom(env_, kind), enif_make_int(env_, type.bits)),
             enif_make_tuple_from_array(env_, dims.data(), static_cast<unsigned>(dims.size()))};
  push(make_struct(atoms.elixir_array, keys, values));
}

}  // namespace sb::nif
