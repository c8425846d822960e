#include "python_to_terms.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "../core/errors.hpp"
#include "../core/values.hpp"
#include "atoms.hpp"
#include "object_resource.hpp"

namespace sb::nif {
namespace {

constexpr int kMaxDepth = 1000;
// Below this size a copy is cheaper than a resource; above it the binary points
// into the Python object's own buffer.
constexpr size_t kBorrowAtLeast = 4096;

// A container that cannot be fully represented (auto mode): the caller falls back
// to a reference for the whole container item.
struct Unrepresentable {};

ERL_NIF_TERM copy_binary(ErlNifEnv* env, const char* data, size_t size) {
  ERL_NIF_TERM t;
  unsigned char* buf = enif_make_new_binary(env, size, &t);
  if (size) memcpy(buf, data, size);
  return t;
}

ERL_NIF_TERM make_struct(ErlNifEnv* env, ERL_NIF_TERM name, std::vector<ERL_NIF_TERM>& keys,
                         std::vector<ERL_NIF_TERM>& values) {
  keys.push_back(atoms.__struct__);
  values.push_back(name);
  ERL_NIF_TERM map;
  enif_make_map_from_arrays(env, keys.data(), values.data(), keys.size(), &map);
  return map;
}

}  // namespace

ERL_NIF_TERM TermWriter::write_result(PyObject* o) {
  if (mode_ == ReturnMode::Ref) return make_object(env_, o);
  return write(o);
}

ERL_NIF_TERM TermWriter::write(PyObject* o) {
  if (depth_ > kMaxDepth) return unconvertible(o);
  Kind k = mode_ == ReturnMode::Value ? classify_loose(o) : classify(o);
  switch (k) {
    case Kind::None:
      return atoms.nil;
    case Kind::Bool: {
      int truth = PyObject_IsTrue(o);
      if (truth < 0) throw_python_error();
      return truth ? atoms.true_ : atoms.false_;
    }
    case Kind::Int:
      return write_int(o);
    case Kind::Float: {
      double d = PyFloat_AsDouble(o);
      if (d == -1.0 && PyErr_Occurred()) throw_python_error();
      return write_float(d);
    }
    case Kind::Str:
      return write_str(o);
    case Kind::Bytes:
    case Kind::ByteArray:
    case Kind::MemoryView:
      return write_bytes_like(o);
    case Kind::List:
      return write_sequence(o, false);
    case Kind::Tuple:
      return write_sequence(o, true);
    case Kind::Dict:
      return write_dict(o);
    case Kind::Set:
    case Kind::FrozenSet:
      return write_set(o);
    case Kind::Date:
    case Kind::Time:
    case Kind::DateTime:
      return write_calendar(o, static_cast<int>(k));
    case Kind::Other:
      return write_other(o);
  }
  return unconvertible(o);
}

ERL_NIF_TERM TermWriter::unconvertible(PyObject* o) {
  if (mode_ != ReturnMode::Value) return make_object(env_, o);
  ValueError e;
  e.type_name = type_name(o);
  e.repr = short_repr(o, 80);
  throw e;
}

ERL_NIF_TERM TermWriter::write_other(PyObject* o) {
  if (mode_ != ReturnMode::Value) return make_object(env_, o);
  // Deep conversion: numpy arrays and scalars know their Python equivalent.
  if (PyObject_HasAttrString(o, "tolist") && type_name(o).rfind("numpy.", 0) == 0) {
    PyRef list = check(PyObject_CallMethod(o, "tolist", nullptr));
    if (list.get() != o) {
      ++depth_;
      ERL_NIF_TERM t = write(list.get());
      --depth_;
      return t;
    }
  }
  return unconvertible(o);
}

ERL_NIF_TERM TermWriter::write_int(PyObject* o) {
  PyRef as_int;
  if (!PyLong_Check(o)) {  // numpy integers and other __index__ types
    as_int = check(PyNumber_Index(o));
    o = as_int.get();
  }
  int64_t v;
  if (int_as_i64(o, &v)) return enif_make_int64(env_, v);
  // Beyond 64 bits: build the bignum through the external term format.
  BigInt b = int_as_big(o);
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
  if (!enif_binary_to_term(env_, etf.data(), etf.size(), &t, 0)) return unconvertible(o);
  return t;
}

ERL_NIF_TERM TermWriter::write_float(double d) {
  if (std::isnan(d)) return atoms.nan;
  if (std::isinf(d)) return d > 0 ? atoms.infinity : atoms.neg_infinity;
  return enif_make_double(env_, d);
}

ERL_NIF_TERM TermWriter::write_str(PyObject* o) {
  Py_ssize_t n;
  const char* s = PyUnicode_AsUTF8AndSize(o, &n);
  if (!s) {  // lone surrogates: no UTF-8 form
    PyErr_Clear();
    return unconvertible(o);
  }
  // The UTF-8 form is cached in the str object for its lifetime.
  if (static_cast<size_t>(n) >= kBorrowAtLeast) return make_borrowed_binary(env_, o, s, n);
  return copy_binary(env_, s, n);
}

ERL_NIF_TERM TermWriter::write_bytes_like(PyObject* o) {
  if (PyBytes_Check(o)) {
    char* data = PyBytes_AS_STRING(o);
    size_t n = static_cast<size_t>(PyBytes_GET_SIZE(o));
    // bytes are immutable, so the binary can share their buffer.
    if (n >= kBorrowAtLeast) return make_borrowed_binary(env_, o, data, n);
    return copy_binary(env_, data, n);
  }
  // bytearray and memoryview can change after we return: copy.
  Py_buffer view;
  if (PyObject_GetBuffer(o, &view, PyBUF_C_CONTIGUOUS) < 0) {
    // A strided memoryview: bytes(view) gathers its items in order.
    PyErr_Clear();
    PyRef copy = PyRef::steal(PyObject_Bytes(o));
    if (!copy) {
      PyErr_Clear();
      return unconvertible(o);
    }
    return copy_binary(env_, PyBytes_AS_STRING(copy.get()), static_cast<size_t>(PyBytes_GET_SIZE(copy.get())));
  }
  ERL_NIF_TERM t = copy_binary(env_, static_cast<const char*>(view.buf), static_cast<size_t>(view.len));
  PyBuffer_Release(&view);
  return t;
}

ERL_NIF_TERM TermWriter::write_sequence(PyObject* o, bool tuple) {
  // A tuple snapshot holds strong references: Python code run while converting
  // (a tzinfo, __instancecheck__) may change or empty the list.
  PyRef fast = check(PySequence_Tuple(o));
  Py_ssize_t n = PyTuple_GET_SIZE(fast.get());
  PyObject** items = &PyTuple_GET_ITEM(fast.get(), 0);
  std::vector<ERL_NIF_TERM> terms(static_cast<size_t>(n));
  ++depth_;
  for (Py_ssize_t i = 0; i < n; ++i) terms[i] = write(items[i]);
  --depth_;
  if (tuple) return enif_make_tuple_from_array(env_, terms.data(), static_cast<unsigned>(n));
  return enif_make_list_from_array(env_, terms.data(), static_cast<unsigned>(n));
}

ERL_NIF_TERM TermWriter::write_dict(PyObject* o) {
  PyRef items;
  if (!PyDict_Check(o)) {  // other Mappings (value mode)
    items = check(PyMapping_Items(o));
  }
  std::vector<ERL_NIF_TERM> keys, values;
  ++depth_;
  if (items) {
    Py_ssize_t n = PyList_GET_SIZE(items.get());
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* pair = PyList_GET_ITEM(items.get(), i);
      if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "a mapping's items() must be (key, value) pairs");
        throw_python_error();
      }
      keys.push_back(write(PyTuple_GET_ITEM(pair, 0)));
      values.push_back(write(PyTuple_GET_ITEM(pair, 1)));
    }
  } else {
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    keys.reserve(PyDict_GET_SIZE(o));
    values.reserve(PyDict_GET_SIZE(o));
    while (PyDict_Next(o, &pos, &k, &v)) {
      // Held while converting: that may run Python code that changes the dict.
      PyRef key = PyRef::borrow(k), value = PyRef::borrow(v);
      keys.push_back(write(key.get()));
      values.push_back(write(value.get()));
    }
  }
  --depth_;
  ERL_NIF_TERM map;
  // Keys distinct in Python may be equal in Elixir ('a' and b'a'): keep the dict whole.
  if (!enif_make_map_from_arrays(env_, keys.data(), values.data(), keys.size(), &map)) return unconvertible(o);
  return map;
}

ERL_NIF_TERM TermWriter::write_set(PyObject* o) {
  PyRef iter = check(PyObject_GetIter(o));
  std::vector<ERL_NIF_TERM> keys;
  ++depth_;
  while (PyObject* item = PyIter_Next(iter.get())) {
    PyRef owned = PyRef::steal(item);
    keys.push_back(write(item));
  }
  --depth_;
  if (PyErr_Occurred()) throw_python_error();
  std::vector<ERL_NIF_TERM> empties(keys.size(), enif_make_list(env_, 0));
  ERL_NIF_TERM inner;
  if (!enif_make_map_from_arrays(env_, keys.data(), empties.data(), keys.size(), &inner)) return unconvertible(o);
  std::vector<ERL_NIF_TERM> k{atoms.map, atoms.version}, v{inner, enif_make_int(env_, 2)};
  return make_struct(env_, atoms.elixir_mapset, k, v);
}

ERL_NIF_TERM TermWriter::write_calendar(PyObject* o, int kind_int) {
  Kind kind = static_cast<Kind>(kind_int);
  std::vector<ERL_NIF_TERM> keys{atoms.calendar}, values{atoms.elixir_calendar_iso};
  if (kind != Kind::Time) {
    DateFields d = date_fields(o);
    keys.insert(keys.end(), {atoms.year, atoms.month, atoms.day});
    values.insert(values.end(), {enif_make_int(env_, d.year), enif_make_int(env_, d.month), enif_make_int(env_, d.day)});
  }
  if (kind == Kind::Date) return make_struct(env_, atoms.elixir_date, keys, values);
  if (kind == Kind::Time) {
    // Elixir's Time has no zone; an aware time stays a Python object.
    if (time_has_zone(o)) return unconvertible(o);
  }
  TimeFields t = time_fields(o);
  // Python has no precision field: whole seconds read back as precision 0,
  // anything else as microseconds (precision 6).
  ERL_NIF_TERM micro = enif_make_tuple2(env_, enif_make_int(env_, t.microsecond),
                                        enif_make_int(env_, t.microsecond == 0 ? 0 : 6));
  keys.insert(keys.end(), {atoms.hour, atoms.minute, atoms.second, atoms.microsecond});
  values.insert(values.end(), {enif_make_int(env_, t.hour), enif_make_int(env_, t.minute),
                               enif_make_int(env_, t.second), micro});
  if (kind == Kind::Time) return make_struct(env_, atoms.elixir_time, keys, values);
  ZoneFields z;
  if (!zone_fields(o, &z)) return make_struct(env_, atoms.elixir_naive, keys, values);
  auto str = [&](const std::string& s) { return copy_binary(env_, s.data(), s.size()); };
  keys.insert(keys.end(), {atoms.time_zone, atoms.zone_abbr, atoms.utc_offset, atoms.std_offset});
  values.insert(values.end(), {str(z.name), str(z.abbr), enif_make_int(env_, z.utc_offset),
                               enif_make_int(env_, z.dst_offset)});
  return make_struct(env_, atoms.elixir_datetime, keys, values);
}

}  // namespace sb::nif
