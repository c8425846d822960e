#include "msgpack_python.hpp"

#include <cmath>
#include <cstring>

#include "../core/errors.hpp"
#include "../core/values.hpp"
#include "handles.hpp"

namespace sb::port {
namespace {

constexpr int kMaxDepth = 1024;

// Limits for nested ext payloads (the frame itself is unpacked with the same).
const msgpack::unpack_limit kLimits(1 << 24, 1 << 24, 1 << 30, 1 << 30, 1 << 30, kMaxDepth);

[[noreturn]] void fail(const std::string& kind, const std::string& message) {
  DecodeError e;
  e.kind = kind;
  e.message = message;
  throw e;
}

// A calendar field; anything outside ±10^9 is refused (Python's own ranges are
// far smaller, and the value must not be truncated on its way to an int).
int field(const msgpack::object& arr, uint32_t i) {
  if (arr.type != msgpack::type::ARRAY || i >= arr.via.array.size) fail("unconvertible", "calendar value: missing field");
  const msgpack::object& f = arr.via.array.ptr[i];
  constexpr int64_t kLimit = 1'000'000'000;
  if (f.type == msgpack::type::POSITIVE_INTEGER && f.via.u64 <= static_cast<uint64_t>(kLimit)) return static_cast<int>(f.via.u64);
  if (f.type == msgpack::type::NEGATIVE_INTEGER && f.via.i64 >= -kLimit) return static_cast<int>(f.via.i64);
  fail("unconvertible", "calendar value: a field is not an integer in range");
}

PyRef from_ext(const msgpack::object& o, bool hashable, int depth) {
  const char* data = o.via.ext.data();
  uint32_t size = o.via.ext.size;
  int8_t type = o.via.ext.type();
  if (type == kHandle) {
    if (size < 8) fail("unconvertible", "handle: payload shorter than 8 bytes");
    uint64_t id = 0;
    for (int i = 0; i < 8; ++i) id = (id << 8) | static_cast<unsigned char>(data[i]);
    PyObject* obj = handles().get(id);
    if (!obj) {
      DecodeError e;
      e.kind = "unknown_handle";
      e.message = "this worker holds no Python object with handle " + std::to_string(id);
      e.handle = id;
      throw e;
    }
    return PyRef::borrow(obj);
  }
  if (type == kBigInt) {
    if (size < 1) fail("unconvertible", "big integer: empty payload");
    BigInt b;
    b.negative = data[0] != 0;
    b.magnitude.assign(reinterpret_cast<const uint8_t*>(data) + 1, reinterpret_cast<const uint8_t*>(data) + size);
    return int_from_big(b);
  }
  if (type < kTuple || type > kDateTime) fail("unconvertible", "unknown extension type " + std::to_string(type));
  msgpack::object_handle inner;
  try {
    size_t offset = 0;
    inner = msgpack::unpack(data, size, offset, nullptr, nullptr, kLimits);
    if (offset != size) fail("unconvertible", "extension payload has bytes after its value");
  } catch (const DecodeError&) {
    throw;
  } catch (const std::exception& e) {
    fail("unconvertible", std::string("malformed extension payload: ") + e.what());
  }
  const msgpack::object& arr = inner.get();
  if (arr.type != msgpack::type::ARRAY) fail("unconvertible", "extension payload is not an array");
  const auto& a = arr.via.array;
  switch (type) {
    case kTuple: {
      PyRef t = check(PyTuple_New(a.size));
      for (uint32_t i = 0; i < a.size; ++i) PyTuple_SET_ITEM(t.get(), i, to_python(a.ptr[i], hashable, depth + 1).release());
      return t;
    }
    case kSet:
    case kFrozenSet: {
      PyRef s = check(hashable || type == kFrozenSet ? PyFrozenSet_New(nullptr) : PySet_New(nullptr));
      for (uint32_t i = 0; i < a.size; ++i) {
        PyRef item = to_python(a.ptr[i], true, depth + 1);
        check_status(PySet_Add(s.get(), item.get()));
      }
      if (static_cast<uint32_t>(PySet_GET_SIZE(s.get())) != a.size) fail("collision", "two elements of a set are equal in Python");
      return s;
    }
    case kDate:
      return make_date({field(arr, 0), field(arr, 1), field(arr, 2)});
    case kTime:
      return make_time({field(arr, 0), field(arr, 1), field(arr, 2), field(arr, 3)});
    case kNaiveDateTime:
      return make_datetime({field(arr, 0), field(arr, 1), field(arr, 2)},
                           {field(arr, 3), field(arr, 4), field(arr, 5), field(arr, 6)}, nullptr);
    default: {  // kDateTime
      ZoneFields z;
      if (a.size < 11 || !as_text(a.ptr[7], &z.name) || !as_text(a.ptr[8], &z.abbr)) fail("unconvertible", "datetime: bad zone");
      z.utc_offset = field(arr, 9);
      z.dst_offset = field(arr, 10);
      return make_datetime({field(arr, 0), field(arr, 1), field(arr, 2)},
                           {field(arr, 3), field(arr, 4), field(arr, 5), field(arr, 6)}, &z);
    }
  }
}

// -------------------------------------------------------------- Python -> msgpack

void pack_handle(Packer& pk, PyObject* o) {
  uint64_t id = handles().add(o);
  std::string type = type_name(o);
  std::string payload(8 + type.size(), '\0');
  for (int i = 0; i < 8; ++i) payload[i] = static_cast<char>(id >> (56 - 8 * i));
  memcpy(payload.data() + 8, type.data(), type.size());
  pk.pack_ext(payload.size(), kHandle);
  pk.pack_ext_body(payload.data(), payload.size());
}

void pack_ext_array(Packer& pk, int8_t type, const std::vector<PyObject*>& items, Mode mode, int depth);
void pack_ext_ints(Packer& pk, int8_t type, std::initializer_list<int> ints);

// Always a float64: msgpack-c's pack_double writes whole-number doubles as
// integers (4.0 would arrive as 4, -0.0 as 0).
void pack_float64(Packer& pk, double d) {
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  char raw[9];
  raw[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) raw[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  pk.pack_bin_body(raw, sizeof raw);  // appends the bytes as they are
}

[[noreturn]] void cannot(PyObject* o) {
  EncodeError e;
  e.python_type = type_name(o);
  e.repr = short_repr(o, 80);
  throw e;
}

// The key as Elixir will see it, for collision checks: a str and a bytes of
// equal content are one Elixir binary (also inside tuples and frozensets).
PyRef elixir_key(PyObject* k) {
  if (PyUnicode_Check(k)) {
    PyObject* b = PyUnicode_AsUTF8String(k);
    if (b) return PyRef::steal(b);
    PyErr_Clear();  // lone surrogates: sent as a handle, which collides with nothing
    return PyRef::borrow(k);
  }
  if (PyTuple_Check(k) || PyFrozenSet_Check(k)) {
    PyRef items = check(PySequence_List(k));
    Py_ssize_t n = PyList_GET_SIZE(items.get());
    PyRef out = check(PyTuple_New(n));
    for (Py_ssize_t i = 0; i < n; ++i) PyTuple_SET_ITEM(out.get(), i, elixir_key(PyList_GET_ITEM(items.get(), i)).release());
    if (PyTuple_Check(k)) return out;
    return check(PyFrozenSet_New(out.get()));
  }
  return PyRef::borrow(k);
}

// Would these distinct Python keys (or set elements) meet as one Elixir term?
bool keys_collide(const std::vector<PyObject*>& keys) {
  bool mixed = false;
  for (PyObject* k : keys) {
    if (PyBytes_Check(k) || PyTuple_Check(k) || PyFrozenSet_Check(k) || PyMemoryView_Check(k)) mixed = true;
  }
  if (!mixed || keys.size() < 2) return false;  // the common case: no bytes keys
  PyRef seen = check(PySet_New(nullptr));
  for (PyObject* k : keys) {
    PyRef e = elixir_key(k);
    if (PySet_Add(seen.get(), e.get()) < 0) {
      PyErr_Clear();  // unhashable after all: let packing report it
      return false;
    }
  }
  return static_cast<size_t>(PySet_GET_SIZE(seen.get())) < keys.size();
}

void pack_other(Packer& pk, PyObject* o, Mode mode, int depth) {
  if (mode != Mode::Value) return pack_handle(pk, o);
  if (PyObject_HasAttrString(o, "tolist") && type_name(o).rfind("numpy.", 0) == 0) {
    PyRef list = check(PyObject_CallMethod(o, "tolist", nullptr));
    if (list.get() != o) return pack_python(pk, list.get(), mode, false, depth + 1);
  }
  cannot(o);
}

}  // namespace

bool as_text(const msgpack::object& o, std::string* out) {
  if (o.type != msgpack::type::STR) return false;
  out->assign(o.via.str.ptr, o.via.str.size);
  return true;
}

PyRef to_python(const msgpack::object& o, bool hashable, int depth) {
  if (depth > kMaxDepth) fail("too_deep", "nested more than 1024 levels deep");
  switch (o.type) {
    case msgpack::type::NIL:
      return PyRef::borrow(Py_None);
    case msgpack::type::BOOLEAN:
      return PyRef::borrow(o.via.boolean ? Py_True : Py_False);
    case msgpack::type::POSITIVE_INTEGER:
      return check(PyLong_FromUnsignedLongLong(o.via.u64));
    case msgpack::type::NEGATIVE_INTEGER:
      return check(PyLong_FromLongLong(o.via.i64));
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return check(PyFloat_FromDouble(o.via.f64));
    case msgpack::type::STR:
      return text_or_bytes(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN:
      return check(PyBytes_FromStringAndSize(o.via.bin.ptr, o.via.bin.size));
    case msgpack::type::ARRAY: {
      const auto& a = o.via.array;
      PyRef out = check(hashable ? PyTuple_New(a.size) : PyList_New(a.size));
      for (uint32_t i = 0; i < a.size; ++i) {
        PyObject* item = to_python(a.ptr[i], hashable, depth + 1).release();
        if (hashable) PyTuple_SET_ITEM(out.get(), i, item);
        else PyList_SET_ITEM(out.get(), i, item);
      }
      return out;
    }
    case msgpack::type::MAP: {
      if (hashable) fail("unhashable", "a map cannot be a Python dict key or set element");
      const auto& m = o.via.map;
      PyRef dict = check(PyDict_New());
      for (uint32_t i = 0; i < m.size; ++i) {
        PyRef k = to_python(m.ptr[i].key, true, depth + 1);
        PyRef v = to_python(m.ptr[i].val, false, depth + 1);
        check_status(PyDict_SetItem(dict.get(), k.get(), v.get()));
      }
      if (static_cast<uint32_t>(PyDict_GET_SIZE(dict.get())) != m.size) fail("collision", "two keys of a map are equal in Python");
      return dict;
    }
    case msgpack::type::EXT:
      return from_ext(o, hashable, depth);
  }
  fail("unconvertible", "unknown msgpack type");
}

PyRef to_args(const msgpack::object& o) {
  if (o.type == msgpack::type::NIL) return check(PyTuple_New(0));
  if (o.type != msgpack::type::ARRAY) fail("unconvertible", "args must be an array");
  const auto& a = o.via.array;
  PyRef t = check(PyTuple_New(a.size));
  for (uint32_t i = 0; i < a.size; ++i) PyTuple_SET_ITEM(t.get(), i, to_python(a.ptr[i]).release());
  return t;
}

PyRef to_kwargs(const msgpack::object& o) {
  if (o.type == msgpack::type::NIL) return PyRef();
  if (o.type != msgpack::type::MAP) fail("unconvertible", "kwargs must be a map");
  PyRef d = to_python(o);
  PyObject *k, *v;
  Py_ssize_t pos = 0;
  while (PyDict_Next(d.get(), &pos, &k, &v)) {
    if (!PyUnicode_Check(k)) fail("unconvertible", "keyword argument names must be strings");
  }
  return d;
}

void pack_python(Packer& pk, PyObject* o, Mode mode, bool top, int depth) {
  if (mode == Mode::Ref && top) return pack_handle(pk, o);
  if (depth > 1000) {
    if (mode == Mode::Value) cannot(o);
    return pack_handle(pk, o);
  }
  Kind k = mode == Mode::Value ? classify_loose(o) : classify(o);
  switch (k) {
    case Kind::None:
      pk.pack_nil();
      return;
    case Kind::Bool: {
      int truth = PyObject_IsTrue(o);
      if (truth < 0) throw_python_error();
      truth ? pk.pack_true() : pk.pack_false();
      return;
    }
    case Kind::Int: {
      PyRef as_int = PyLong_Check(o) ? PyRef::borrow(o) : check(PyNumber_Index(o));
      int64_t v;
      if (int_as_i64(as_int.get(), &v)) {
        pk.pack_int64(v);
        return;
      }
      unsigned long long u = PyLong_AsUnsignedLongLong(as_int.get());
      if (!(u == static_cast<unsigned long long>(-1) && PyErr_Occurred())) {
        pk.pack_uint64(u);
        return;
      }
      PyErr_Clear();
      BigInt b = int_as_big(as_int.get());
      pk.pack_ext(b.magnitude.size() + 1, kBigInt);
      char sign = b.negative ? 1 : 0;
      std::string body(1, sign);
      body.append(reinterpret_cast<const char*>(b.magnitude.data()), b.magnitude.size());
      pk.pack_ext_body(body.data(), body.size());
      return;
    }
    case Kind::Float: {
      double d = PyFloat_AsDouble(o);
      if (d == -1.0 && PyErr_Occurred()) throw_python_error();
      pack_float64(pk, d);
      return;
    }
    case Kind::Str: {
      Py_ssize_t n;
      const char* s = PyUnicode_AsUTF8AndSize(o, &n);
      if (!s) {  // lone surrogates
        PyErr_Clear();
        if (mode == Mode::Value) cannot(o);
        return pack_handle(pk, o);
      }
      pk.pack_str(static_cast<uint32_t>(n));
      pk.pack_str_body(s, static_cast<uint32_t>(n));
      return;
    }
    case Kind::Bytes:
    case Kind::ByteArray:
    case Kind::MemoryView: {
      PyRef bytes = PyBytes_CheckExact(o) ? PyRef::borrow(o) : check(PyObject_Bytes(o));
      uint32_t n = static_cast<uint32_t>(PyBytes_GET_SIZE(bytes.get()));
      pk.pack_bin(n);
      pk.pack_bin_body(PyBytes_AS_STRING(bytes.get()), n);
      return;
    }
    case Kind::List:
    case Kind::Tuple: {
      // A tuple snapshot holds strong references: Python code run while packing
      // (a tzinfo, __instancecheck__) may change or empty the list.
      PyRef fast = check(PySequence_Tuple(o));
      Py_ssize_t n = PyTuple_GET_SIZE(fast.get());
      PyObject** items = &PyTuple_GET_ITEM(fast.get(), 0);
      if (k == Kind::List) {
        pk.pack_array(static_cast<uint32_t>(n));
        for (Py_ssize_t i = 0; i < n; ++i) pack_python(pk, items[i], mode, false, depth + 1);
        return;
      }
      return pack_ext_array(pk, kTuple, std::vector<PyObject*>(items, items + n), mode, depth);
    }
    case Kind::Dict: {
      PyRef items = check(PyMapping_Items(o));
      Py_ssize_t n = PyList_GET_SIZE(items.get());
      std::vector<PyObject*> keys;
      keys.reserve(n);
      for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* pair = PyList_GET_ITEM(items.get(), i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
          PyErr_SetString(PyExc_TypeError, "a mapping's items() must be (key, value) pairs");
          throw_python_error();
        }
        keys.push_back(PyTuple_GET_ITEM(pair, 0));
      }
      // As in-process: a dict that would lose keys stays a Python object.
      if (keys_collide(keys)) {
        if (mode == Mode::Value) cannot(o);
        return pack_handle(pk, o);
      }
      pk.pack_map(static_cast<uint32_t>(n));
      for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* pair = PyList_GET_ITEM(items.get(), i);
        pack_python(pk, PyTuple_GET_ITEM(pair, 0), mode, false, depth + 1);
        pack_python(pk, PyTuple_GET_ITEM(pair, 1), mode, false, depth + 1);
      }
      return;
    }
    case Kind::Set:
    case Kind::FrozenSet: {
      std::vector<PyObject*> items;
      PyRef keep = check(PySequence_List(o));
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keep.get()); ++i) items.push_back(PyList_GET_ITEM(keep.get(), i));
      if (keys_collide(items)) {
        if (mode == Mode::Value) cannot(o);
        return pack_handle(pk, o);
      }
      return pack_ext_array(pk, k == Kind::Set ? kSet : kFrozenSet, items, mode, depth);
    }
    case Kind::Date: {
      DateFields d = date_fields(o);
      return pack_ext_ints(pk, kDate, {d.year, d.month, d.day});
    }
    case Kind::Time: {
      if (time_has_zone(o)) return pack_other(pk, o, mode, depth);
      TimeFields t = time_fields(o);
      return pack_ext_ints(pk, kTime, {t.hour, t.minute, t.second, t.microsecond});
    }
    case Kind::DateTime: {
      DateFields d = date_fields(o);
      TimeFields t = time_fields(o);
      ZoneFields z;
      if (!zone_fields(o, &z)) {
        return pack_ext_ints(pk, kNaiveDateTime, {d.year, d.month, d.day, t.hour, t.minute, t.second, t.microsecond});
      }
      msgpack::sbuffer buf;
      Packer inner(buf);
      inner.pack_array(11);
      for (int v : {d.year, d.month, d.day, t.hour, t.minute, t.second, t.microsecond}) inner.pack_int(v);
      inner.pack(z.name);
      inner.pack(z.abbr);
      inner.pack_int(z.utc_offset);
      inner.pack_int(z.dst_offset);
      pk.pack_ext(buf.size(), kDateTime);
      pk.pack_ext_body(buf.data(), buf.size());
      return;
    }
    case Kind::Other:
      return pack_other(pk, o, mode, depth);
  }
}

namespace {

void pack_ext_array(Packer& pk, int8_t type, const std::vector<PyObject*>& items, Mode mode, int depth) {
  msgpack::sbuffer buf;
  Packer inner(buf);
  inner.pack_array(static_cast<uint32_t>(items.size()));
  for (PyObject* item : items) pack_python(inner, item, mode, false, depth + 1);
  pk.pack_ext(buf.size(), type);
  pk.pack_ext_body(buf.data(), buf.size());
}

void pack_ext_ints(Packer& pk, int8_t type, std::initializer_list<int> ints) {
  msgpack::sbuffer buf;
  Packer inner(buf);
  inner.pack_array(static_cast<uint32_t>(ints.size()));
  for (int v : ints) inner.pack_int(v);
  pk.pack_ext(buf.size(), type);
  pk.pack_ext_body(buf.data(), buf.size());
}

}  // namespace
}  // namespace sb::port
