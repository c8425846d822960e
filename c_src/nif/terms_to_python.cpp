#include "terms_to_python.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "../core/errors.hpp"
#include "../core/values.hpp"
#include "atoms.hpp"
#include "object_resource.hpp"

namespace sb::nif {
namespace {

// Deeper nesting than this is almost certainly a bug, and converting it would
// recurse deep into a scheduler's C stack. Above the 1000 levels that results are
// converted to, so anything SnakeBridge returned can be passed back.
constexpr int kMaxDepth = 1024;

struct Descend {
  std::vector<ERL_NIF_TERM>& path;
  int& depth;
  Descend(std::vector<ERL_NIF_TERM>& p, int& d, ERL_NIF_TERM step) : path(p), depth(d) {
    path.push_back(step);
    ++depth;
  }
  ~Descend() {
    path.pop_back();
    --depth;
  }
};

// Calls f(key, value) for each entry of a map; the iterator is released however
// f leaves (it throws TermError on a bad entry).
template <typename F>
void for_each_pair(ErlNifEnv* env, ERL_NIF_TERM map, F&& f) {
  ErlNifMapIterator it;
  if (!enif_map_iterator_create(env, map, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return;
  struct Destroy {
    ErlNifEnv* env;
    ErlNifMapIterator* it;
    ~Destroy() { enif_map_iterator_destroy(env, it); }
  } destroy{env, &it};
  ERL_NIF_TERM k, v;
  while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
    f(k, v);
    enif_map_iterator_next(env, &it);
  }
}

}  // namespace

void TermReader::fail(ERL_NIF_TERM reason, ERL_NIF_TERM term) {
  TermError e;
  e.reason = reason;
  e.term = term;
  e.path = path_;
  throw e;
}

PyRef TermReader::read_args(ERL_NIF_TERM list) {
  unsigned len;
  if (!enif_get_list_length(env_, list, &len)) fail(atoms.unconvertible, list);
  PyRef tuple = check(PyTuple_New(len));
  ERL_NIF_TERM head, tail = list;
  for (unsigned i = 0; enif_get_list_cell(env_, tail, &head, &tail); ++i) {
    Descend d(path_, depth_, enif_make_uint(env_, i));
    PyTuple_SET_ITEM(tuple.get(), i, read_term(head, false).release());
  }
  return tuple;
}

PyRef TermReader::read_kwargs(ERL_NIF_TERM kwargs) {
  PyRef dict = check(PyDict_New());
  auto put = [&](ERL_NIF_TERM key, ERL_NIF_TERM value) {
    Descend d(path_, depth_, key);
    if (!enif_is_atom(env_, key) && !enif_is_binary(env_, key)) fail(atoms.unconvertible, key);
    PyRef k = read_term(key, true);
    if (!PyUnicode_Check(k.get())) fail(atoms.unconvertible, key);
    PyRef v = read_term(value, false);
    check_status(PyDict_SetItem(dict.get(), k.get(), v.get()));
  };
  if (enif_is_map(env_, kwargs)) {
    for_each_pair(env_, kwargs, put);
    return dict;
  }
  ERL_NIF_TERM head, tail = kwargs;
  while (enif_get_list_cell(env_, tail, &head, &tail)) {
    int arity;
    const ERL_NIF_TERM* pair;
    if (!enif_get_tuple(env_, head, &arity, &pair) || arity != 2) fail(atoms.unconvertible, head);
    put(pair[0], pair[1]);
  }
  if (!enif_is_empty_list(env_, tail)) fail(atoms.unconvertible, kwargs);
  return dict;
}

PyRef TermReader::read_term(ERL_NIF_TERM t, bool hashable) {
  if (depth_ > kMaxDepth) fail(atoms.too_deep, t);
  switch (enif_term_type(env_, t)) {
    case ERL_NIF_TERM_TYPE_ATOM:
      return read_atom(t);
    case ERL_NIF_TERM_TYPE_INTEGER:
      return read_integer(t);
    case ERL_NIF_TERM_TYPE_FLOAT: {
      double d;
      enif_get_double(env_, t, &d);
      return check(PyFloat_FromDouble(d));
    }
    case ERL_NIF_TERM_TYPE_BITSTRING:
      return read_binary(t);
    case ERL_NIF_TERM_TYPE_LIST:
      return read_list(t, hashable);
    case ERL_NIF_TERM_TYPE_TUPLE:
      return read_tuple(t, hashable);
    case ERL_NIF_TERM_TYPE_MAP:
      return read_map(t, hashable);
    default:  // pid, port, reference, fun
      fail(atoms.unconvertible, t);
  }
}

PyRef TermReader::read_atom(ERL_NIF_TERM t) {
  if (t == atoms.nil) return PyRef::borrow(Py_None);
  if (t == atoms.true_) return PyRef::borrow(Py_True);
  if (t == atoms.false_) return PyRef::borrow(Py_False);
  if (t == atoms.infinity) return check(PyFloat_FromDouble(std::numeric_limits<double>::infinity()));
  if (t == atoms.neg_infinity) return check(PyFloat_FromDouble(-std::numeric_limits<double>::infinity()));
  if (t == atoms.nan) return check(PyFloat_FromDouble(std::numeric_limits<double>::quiet_NaN()));
  // OTP 25 hands atom text out as Latin-1 only (atoms beyond it are unconvertible).
  char buf[256];
  int n = enif_get_atom(env_, t, buf, sizeof buf, ERL_NIF_LATIN1);
  if (n <= 0) fail(atoms.unconvertible, t);
  return check(PyUnicode_DecodeLatin1(buf, n - 1, nullptr));
}

PyRef TermReader::read_integer(ERL_NIF_TERM t) {
  ErlNifSInt64 i;
  if (enif_get_int64(env_, t, &i)) return check(PyLong_FromLongLong(i));
  ErlNifUInt64 u;
  if (enif_get_uint64(env_, t, &u)) return check(PyLong_FromUnsignedLongLong(u));
  // A bignum: read its digits from the external term format (the only public
  // view of them), tag 110 SMALL_BIG_EXT or 111 LARGE_BIG_EXT.
  ErlNifBinary etf;
  if (!enif_term_to_binary(env_, t, &etf)) fail(atoms.unconvertible, t);
  struct Free {
    ErlNifBinary* b;
    ~Free() { enif_release_binary(b); }
  } free_etf{&etf};
  const unsigned char* p = etf.data;
  size_t n, off;
  if (etf.size >= 3 && p[1] == 110) {
    n = p[2];
    off = 3;
  } else if (etf.size >= 6 && p[1] == 111) {
    n = (size_t(p[2]) << 24) | (size_t(p[3]) << 16) | (size_t(p[4]) << 8) | p[5];
    off = 6;
  } else {
    fail(atoms.unconvertible, t);
  }
  BigInt b;
  b.negative = p[off] != 0;
  b.magnitude.assign(p + off + 1, p + off + 1 + n);
  return int_from_big(b);
}

PyRef TermReader::read_binary(ERL_NIF_TERM t) {
  ErlNifBinary bin;
  if (!enif_inspect_binary(env_, t, &bin)) fail(atoms.unconvertible, t);  // a bitstring
  return text_or_bytes(reinterpret_cast<const char*>(bin.data), bin.size);
}

PyRef TermReader::read_list(ERL_NIF_TERM t, bool hashable) {
  unsigned len;
  if (!enif_get_list_length(env_, t, &len)) fail(atoms.unconvertible, t);  // improper list
  // In a dict key or set element a list must be hashable: it becomes a tuple.
  PyRef out = check(hashable ? PyTuple_New(len) : PyList_New(len));
  ERL_NIF_TERM head, tail = t;
  for (unsigned i = 0; enif_get_list_cell(env_, tail, &head, &tail); ++i) {
    Descend d(path_, depth_, enif_make_uint(env_, i));
    PyObject* item = read_term(head, hashable).release();
    if (hashable) PyTuple_SET_ITEM(out.get(), i, item);
    else PyList_SET_ITEM(out.get(), i, item);
  }
  return out;
}

PyRef TermReader::read_tuple(ERL_NIF_TERM t, bool hashable) {
  int arity;
  const ERL_NIF_TERM* items;
  enif_get_tuple(env_, t, &arity, &items);
  PyRef out = check(PyTuple_New(arity));
  for (int i = 0; i < arity; ++i) {
    Descend d(path_, depth_, enif_make_int(env_, i));
    PyTuple_SET_ITEM(out.get(), i, read_term(items[i], hashable).release());
  }
  return out;
}

PyRef TermReader::read_map(ERL_NIF_TERM t, bool hashable) {
  ERL_NIF_TERM name;
  if (enif_get_map_value(env_, t, atoms.__struct__, &name) && enif_is_atom(env_, name)) {
    return read_struct(t, name, hashable);
  }
  if (hashable) fail(atoms.unhashable, t);
  size_t size;
  enif_get_map_size(env_, t, &size);
  PyRef dict = check(_PyDict_NewPresized(static_cast<Py_ssize_t>(size)));
  for_each_pair(env_, t, [&](ERL_NIF_TERM k, ERL_NIF_TERM v) {
    Descend d(path_, depth_, k);
    PyRef key = read_term(k, true);
    PyRef value = read_term(v, false);
    check_status(PyDict_SetItem(dict.get(), key.get(), value.get()));
  });
  // Keys distinct in Elixir can be equal in Python (1 and 1.0, 1 and true, "a" and
  // :a): refuse rather than silently drop an entry.
  if (static_cast<size_t>(PyDict_GET_SIZE(dict.get())) != size) fail(atoms.collision, t);
  return dict;
}

PyRef TermReader::read_struct(ERL_NIF_TERM t, ERL_NIF_TERM name, bool hashable) {
  if (name == atoms.elixir_object) {
    PyObject* obj;
    if (!get_object(env_, t, &obj)) fail(atoms.unconvertible, t);
    return PyRef::borrow(obj);
  }
  if (name == atoms.elixir_bytes) {
    ERL_NIF_TERM data;
    ErlNifBinary bin;
    if (!enif_get_map_value(env_, t, atoms.data, &data) || !enif_inspect_binary(env_, data, &bin)) {
      fail(atoms.unconvertible, t);
    }
    return check(PyBytes_FromStringAndSize(reinterpret_cast<const char*>(bin.data), bin.size));
  }
  if (name == atoms.elixir_mapset) {
    ERL_NIF_TERM map;
    if (!enif_get_map_value(env_, t, atoms.map, &map) || !enif_is_map(env_, map)) fail(atoms.unconvertible, t);
    size_t size;
    enif_get_map_size(env_, map, &size);
    PyRef set = check(hashable ? PyFrozenSet_New(nullptr) : PySet_New(nullptr));
    for_each_pair(env_, map, [&](ERL_NIF_TERM k, ERL_NIF_TERM) {
      Descend d(path_, depth_, k);
      PyRef item = read_term(k, true);
      check_status(PySet_Add(set.get(), item.get()));
    });
    if (static_cast<size_t>(PySet_GET_SIZE(set.get())) != size) fail(atoms.collision, t);
    return set;
  }
  if (name == atoms.elixir_date || name == atoms.elixir_time || name == atoms.elixir_naive ||
      name == atoms.elixir_datetime) {
    return read_calendar(t, name);
  }
  // Another struct: the Elixir side applies SnakeBridge.Encoder (if implemented)
  // and retries, so the common case pays nothing for the protocol.
  fail(atoms.unconvertible, t);
}

int TermReader::field_int(ERL_NIF_TERM map, ERL_NIF_TERM key) {
  ERL_NIF_TERM v;
  int i;
  if (!enif_get_map_value(env_, map, key, &v) || !enif_get_int(env_, v, &i)) {
    Descend d(path_, depth_, key);
    fail(atoms.unconvertible, map);
  }
  return i;
}

PyRef TermReader::read_calendar(ERL_NIF_TERM t, ERL_NIF_TERM name) {
  ERL_NIF_TERM cal;
  if (!enif_get_map_value(env_, t, atoms.calendar, &cal) || cal != atoms.elixir_calendar_iso) {
    fail(atoms.unconvertible, t);  // only Calendar.ISO has a Python equivalent
  }
  DateFields d{};
  TimeFields tm{};
  if (name != atoms.elixir_time) d = {field_int(t, atoms.year), field_int(t, atoms.month), field_int(t, atoms.day)};
  if (name != atoms.elixir_date) {
    ERL_NIF_TERM us;
    int arity;
    const ERL_NIF_TERM* usp;
    int micro;
    if (!enif_get_map_value(env_, t, atoms.microsecond, &us) || !enif_get_tuple(env_, us, &arity, &usp) ||
        arity != 2 || !enif_get_int(env_, usp[0], &micro)) {
      fail(atoms.unconvertible, t);
    }
    tm = {field_int(t, atoms.hour), field_int(t, atoms.minute), field_int(t, atoms.second), micro};
  }
  try {
    if (name == atoms.elixir_date) return make_date(d);
    if (name == atoms.elixir_time) return make_time(tm);
    if (name == atoms.elixir_naive) return make_datetime(d, tm, nullptr);
    ZoneFields z;
    ERL_NIF_TERM tz, abbr;
    ErlNifBinary tzb, abbrb;
    if (!enif_get_map_value(env_, t, atoms.time_zone, &tz) || !enif_inspect_binary(env_, tz, &tzb) ||
        !enif_get_map_value(env_, t, atoms.zone_abbr, &abbr) || !enif_inspect_binary(env_, abbr, &abbrb)) {
      fail(atoms.unconvertible, t);
    }
    z.name.assign(reinterpret_cast<const char*>(tzb.data), tzb.size);
    z.abbr.assign(reinterpret_cast<const char*>(abbrb.data), abbrb.size);
    z.utc_offset = field_int(t, atoms.utc_offset);
    z.dst_offset = field_int(t, atoms.std_offset);
    return make_datetime(d, tm, &z);
  } catch (const PythonException&) {
    fail(atoms.unconvertible, t);  // out-of-range fields
  }
}

}  // namespace sb::nif
