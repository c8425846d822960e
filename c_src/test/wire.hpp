// Test helpers for the port program's wire (docs/protocol.md, "Values"), both
// spellings, written independently of c_src/port so the tests check the
// program against the page rather than against itself. Header-only.
//
//   Mp              builds request-spelled MessagePack by hand (Elixir terms)
//   encode_request  a Python literal's value spelled as the Elixir client would
//                   send the equivalent term (str -> bin, Atom -> str, ...)
//   reply_value     a reply-spelled value read back as Python (the oracle)
//   wire_env        a namespace with `same`, `Atom`, `Bytes`, `Handle`, zoneinfo
#pragma once
#include "../port/handles.hpp"
#include "../port/msgpack_reader.hpp"

#include <datetime.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "test_support.hpp"

namespace sbtest {

// Request-spelled MessagePack, built value by value: Mp().map(1).atom("k").i(1).
class Mp {
 public:
  // msgpack::packer's stream interface.
  void write(const char* p, size_t n) { bytes_.append(p, n); }

  Mp& nil() { return pk().pack_nil(), *this; }
  Mp& boolean(bool b) { return b ? pk().pack_true() : pk().pack_false(), *this; }
  Mp& i(int64_t v) { return pk().pack_int64(v), *this; }  // the smallest format
  Mp& u(uint64_t v) { return pk().pack_uint64(v), *this; }
  // Written byte by byte: msgpack-c's pack_double turns integral doubles
  // (4.0, -0.0) into integers.
  Mp& f64(double d) {
    uint64_t bits;
    memcpy(&bits, &d, 8);
    bytes_.push_back('\xcb');
    for (int k = 0; k < 8; ++k) bytes_.push_back(static_cast<char>(bits >> (56 - 8 * k)));
    return *this;
  }
  Mp& f32(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bytes_.push_back('\xca');
    for (int k = 0; k < 4; ++k) bytes_.push_back(static_cast<char>(bits >> (24 - 8 * k)));
    return *this;
  }
  // An atom (or any name): str.
  Mp& atom(const std::string& s) {
    pk().pack_str(static_cast<uint32_t>(s.size()));
    pk().pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
    return *this;
  }
  // An Elixir binary: bin.
  Mp& bin(const std::string& s) {
    pk().pack_bin(static_cast<uint32_t>(s.size()));
    pk().pack_bin_body(s.data(), static_cast<uint32_t>(s.size()));
    return *this;
  }
  Mp& ext(int8_t type, const std::string& payload) {
    pk().pack_ext(payload.size(), type);
    pk().pack_ext_body(payload.data(), static_cast<uint32_t>(payload.size()));
    return *this;
  }
  // %SnakeBridge.Bytes{}: ext 10.
  Mp& bytes(const std::string& s) { return ext(sb::port::kBytes, s); }
  Mp& marker(int8_t type) { return ext(type, std::string(1, '\0')); }
  Mp& arr(uint32_t n) { return pk().pack_array(n), *this; }
  Mp& map(uint32_t n) { return pk().pack_map(n), *this; }
  Mp& tuple(uint32_t n) { return arr(n + 1).marker(sb::port::kTupleMarker); }
  Mp& set(uint32_t n) { return arr(n + 1).marker(sb::port::kSetMarker); }
  // A struct: the fields (n key/value pairs, keys as atoms) follow.
  Mp& strct(const std::string& module, uint32_t n) {
    return arr(3).marker(sb::port::kStructMarker).atom(module).map(n);
  }
  Mp& opaque() { return marker(sb::port::kOpaque); }
  Mp& handle(uint64_t id, const std::string& type_name = "") {
    std::string p(8, '\0');
    for (int k = 0; k < 8; ++k) p[k] = static_cast<char>(id >> (56 - 8 * k));
    return ext(sb::port::kHandle, p + type_name);
  }
  // ext 2: sign byte, then the magnitude little-endian.
  Mp& big(bool negative, const std::string& magnitude_le) {
    return ext(sb::port::kBigInt, std::string(1, negative ? '\1' : '\0') + magnitude_le);
  }
  Mp& raw(const std::string& s) { return bytes_ += s, *this; }
  Mp& then(const Mp& m) { return raw(m.bytes_); }

  // Calendar structs of Calendar.ISO, as the Elixir encoder spells them.
  Mp& date(int64_t y, int64_t m, int64_t d, const std::string& calendar = "Elixir.Calendar.ISO") {
    strct("Elixir.Date", 4).atom("calendar").atom(calendar);
    return atom("year").i(y).atom("month").i(m).atom("day").i(d);
  }
  Mp& time(int64_t h, int64_t mi, int64_t s, int64_t us = 0, int precision = 0) {
    strct("Elixir.Time", 5).atom("calendar").atom("Elixir.Calendar.ISO");
    atom("hour").i(h).atom("minute").i(mi).atom("second").i(s);
    return atom("microsecond").tuple(2).i(us).i(precision);
  }
  Mp& naive(int64_t y, int64_t m, int64_t d, int64_t h, int64_t mi, int64_t s, int64_t us = 0) {
    strct("Elixir.NaiveDateTime", 8).atom("calendar").atom("Elixir.Calendar.ISO");
    atom("year").i(y).atom("month").i(m).atom("day").i(d);
    atom("hour").i(h).atom("minute").i(mi).atom("second").i(s);
    return atom("microsecond").tuple(2).i(us).i(us ? 6 : 0);
  }
  Mp& datetime(int64_t y, int64_t m, int64_t d, int64_t h, int64_t mi, int64_t s, int64_t us, const std::string& zone,
               const std::string& abbr, int64_t utc_offset, int64_t std_offset) {
    strct("Elixir.DateTime", 12).atom("calendar").atom("Elixir.Calendar.ISO");
    atom("year").i(y).atom("month").i(m).atom("day").i(d);
    atom("hour").i(h).atom("minute").i(mi).atom("second").i(s);
    atom("microsecond").tuple(2).i(us).i(us ? 6 : 0);
    atom("time_zone").bin(zone).atom("zone_abbr").bin(abbr);
    return atom("utc_offset").i(utc_offset).atom("std_offset").i(std_offset);
  }

  const std::string& str() const { return bytes_; }
  size_t size() const { return bytes_.size(); }
  msgpack::object_handle unpack() const { return msgpack::unpack(bytes_.data(), bytes_.size()); }

 private:
  msgpack::packer<Mp> pk() { return msgpack::packer<Mp>(*this); }
  std::string bytes_;
};

// The test namespace: the usual modules, zoneinfo, and
//   same(a, b)  a stricter equality: same types all the way down (tuple vs list,
//               set vs frozenset, bytes vs str, int vs bool), nan equal to nan,
//               -0.0 distinct from 0.0, aware datetimes equal only with the same
//               wall time, offset, zone name and fold
//   Atom(name)  an Elixir atom: reply_value's ext 11; encode_request's str
//   Bytes(b)    %SnakeBridge.Bytes{}: encode_request's ext 10
//   Handle(id)  %SnakeBridge.Object{}: encode_request's ext 1
inline sb::PyRef wire_env(const char* module_name = "sbtest.wire") {
  sb::PyRef g = new_globals(module_name);
  py_exec(
      "import math, zoneinfo\n"
      "from datetime import date, time, datetime, timedelta, timezone\n"
      "Paris = zoneinfo.ZoneInfo('Europe/Paris')\n"
      "class Atom:\n"
      "    def __init__(self, name): self.name = name\n"
      "    def __eq__(self, o): return type(o) is Atom and o.name == self.name\n"
      "    def __hash__(self): return hash(('atom', self.name))\n"
      "    def __repr__(self): return ':' + self.name\n"
      "class Bytes:\n"
      "    def __init__(self, data): self.data = data\n"
      "class Handle:\n"
      "    def __init__(self, id): self.id = id\n"
      "def _zone(t):\n"
      "    return getattr(t, 'key', None) or (t.tzname(None) if isinstance(t, timezone) else repr(t))\n"
      "def same(a, b):\n"
      "    if type(a) is not type(b):\n"
      "        return False\n"
      "    if isinstance(a, float):\n"
      "        if math.isnan(a) or math.isnan(b):\n"
      "            return math.isnan(a) and math.isnan(b)\n"
      "        return a == b and math.copysign(1, a) == math.copysign(1, b)\n"
      "    if isinstance(a, (list, tuple)):\n"
      "        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))\n"
      "    if isinstance(a, dict):\n"
      "        if len(a) != len(b):\n"
      "            return False\n"
      "        for k, v in a.items():\n"
      "            ks = [k2 for k2 in b if same(k, k2)]\n"
      "            if len(ks) != 1 or not same(v, b[ks[0]]):\n"
      "                return False\n"
      "        return True\n"
      "    if isinstance(a, (set, frozenset)):\n"
      "        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)\n"
      "    if isinstance(a, datetime) and (a.tzinfo or b.tzinfo):\n"
      "        return (a.replace(tzinfo=None) == b.replace(tzinfo=None) and a.fold == b.fold\n"
      "                and a.utcoffset() == b.utcoffset() and a.tzname() == b.tzname()\n"
      "                and _zone(a.tzinfo) == _zone(b.tzinfo))\n"
      "    return a == b\n",
      g.get());
  return g;
}

inline bool same(PyObject* env, PyObject* a, PyObject* b) {
  PyObject* fn = PyDict_GetItemString(env, "same");
  REQUIRE(fn != nullptr);
  sb::PyRef r = sb::check(PyObject_CallFunctionObjArgs(fn, a, b, nullptr));
  return r.get() == Py_True;
}

inline bool same(PyObject* env, PyObject* a, const std::string& python_literal) {
  return same(env, a, py_eval(python_literal, env).get());
}

inline bool is_instance_of(PyObject* env, PyObject* o, const char* class_name) {
  PyObject* cls = PyDict_GetItemString(env, class_name);
  REQUIRE(cls != nullptr);
  int r = PyObject_IsInstance(o, cls);
  if (r < 0) sb::throw_python_error();
  return r == 1;
}

inline std::string utf8_of(PyObject* s) {
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s, &n);
  if (!p) sb::throw_python_error();
  return std::string(p, static_cast<size_t>(n));
}

// `o` spelled as the Elixir client sends the equivalent term (docs/protocol.md,
// "Requests"): None/bool as nil/true/false, int as the smallest int or ext 2,
// float as float64, str as bin (an Elixir binary), bytes as bin, Bytes(b) as
// ext 10, Atom(name) as str, list as array, tuple and set/frozenset as marked
// arrays, dict as map, Handle(id) as ext 1, dates and times as Calendar.ISO
// structs.
inline void encode_request(Mp& m, PyObject* o, PyObject* env) {
  if (!PyDateTimeAPI) PyDateTime_IMPORT;  // datetime.h's pointer is per translation unit
  REQUIRE(PyDateTimeAPI != nullptr);
  if (o == Py_None) {
    m.nil();
  } else if (PyBool_Check(o)) {
    m.boolean(o == Py_True);
  } else if (PyLong_Check(o)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow) {
      m.i(v);
    } else if (overflow > 0 && !(PyLong_AsUnsignedLongLong(o) == static_cast<unsigned long long>(-1) && PyErr_Occurred())) {
      m.u(PyLong_AsUnsignedLongLong(o));
    } else {
      PyErr_Clear();
      sb::BigInt b = sb::int_as_big(o);
      m.big(b.negative, std::string(b.magnitude.begin(), b.magnitude.end()));
    }
  } else if (PyFloat_Check(o)) {
    m.f64(PyFloat_AS_DOUBLE(o));
  } else if (PyUnicode_Check(o)) {
    m.bin(utf8_of(o));
  } else if (PyBytes_Check(o)) {
    m.bin(std::string(PyBytes_AS_STRING(o), static_cast<size_t>(PyBytes_GET_SIZE(o))));
  } else if (PyList_Check(o) || PyTuple_Check(o) || PyAnySet_Check(o)) {
    sb::PyRef items = sb::check(PySequence_List(o));
    uint32_t n = static_cast<uint32_t>(PyList_GET_SIZE(items.get()));
    if (PyList_Check(o)) m.arr(n);
    else if (PyTuple_Check(o)) m.tuple(n);
    else m.set(n);
    for (uint32_t k = 0; k < n; ++k) encode_request(m, PyList_GET_ITEM(items.get(), k), env);
  } else if (PyDict_Check(o)) {
    m.map(static_cast<uint32_t>(PyDict_GET_SIZE(o)));
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(o, &pos, &k, &v)) {
      encode_request(m, k, env);
      encode_request(m, v, env);
    }
  } else if (PyDateTime_Check(o)) {
    sb::DateFields d = sb::date_fields(o);
    sb::TimeFields t = sb::time_fields(o);
    sb::ZoneFields z;
    if (sb::zone_fields(o, &z)) {
      m.datetime(d.year, d.month, d.day, t.hour, t.minute, t.second, t.microsecond, z.name, z.abbr, z.utc_offset,
                 z.dst_offset);
    } else {
      m.naive(d.year, d.month, d.day, t.hour, t.minute, t.second, t.microsecond);
    }
  } else if (PyDate_Check(o)) {
    sb::DateFields d = sb::date_fields(o);
    m.date(d.year, d.month, d.day);
  } else if (PyTime_Check(o)) {
    sb::TimeFields t = sb::time_fields(o);
    m.time(t.hour, t.minute, t.second, t.microsecond, t.microsecond ? 6 : 0);
  } else if (is_instance_of(env, o, "Atom")) {
    sb::PyRef name = sb::check(PyObject_GetAttrString(o, "name"));
    m.atom(utf8_of(name.get()));
  } else if (is_instance_of(env, o, "Bytes")) {
    sb::PyRef data = sb::check(PyObject_GetAttrString(o, "data"));
    m.bytes(std::string(PyBytes_AS_STRING(data.get()), static_cast<size_t>(PyBytes_GET_SIZE(data.get()))));
  } else if (is_instance_of(env, o, "Handle")) {
    sb::PyRef id = sb::check(PyObject_GetAttrString(o, "id"));
    m.handle(PyLong_AsUnsignedLongLong(id.get()));
  } else {
    FAIL("encode_request: no request spelling for " << py_repr(o));
  }
}

inline Mp encode_request(const std::string& python_literal, PyObject* env) {
  Mp m;
  sb::PyRef v = py_eval(python_literal, env);
  encode_request(m, v.get(), env);
  return m;
}

// Whether `o` is an array led by the marker of `type` (fixext 1, payload 0).
inline bool led_by_marker(const msgpack::object& o, int8_t type) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size == 0) return false;
  const msgpack::object& m = o.via.array.ptr[0];
  return m.type == msgpack::type::EXT && m.via.ext.type() == type && m.via.ext.size == 1 && m.via.ext.data()[0] == 0;
}

inline std::string ext_payload(const msgpack::object& o) {
  REQUIRE(o.type == msgpack::type::EXT);
  return std::string(o.via.ext.data(), o.via.ext.size);
}

inline uint64_t handle_id_of(const msgpack::object& o) {
  REQUIRE(o.type == msgpack::type::EXT);
  REQUIRE(int(o.via.ext.type()) == sb::port::kHandle);
  REQUIRE(o.via.ext.size >= 8);
  uint64_t id = 0;
  for (int k = 0; k < 8; ++k) id = (id << 8) | static_cast<unsigned char>(o.via.ext.data()[k]);
  return id;
}

inline std::string handle_type_of(const msgpack::object& o) {
  REQUIRE(o.type == msgpack::type::EXT);
  REQUIRE(o.via.ext.size >= 8);
  return std::string(o.via.ext.data() + 8, o.via.ext.size - 8);
}

// The name of an atom (ext 11).
inline std::string atom_of(const msgpack::object& o) {
  REQUIRE(o.type == msgpack::type::EXT);
  REQUIRE(int(o.via.ext.type()) == sb::port::kAtom);
  return ext_payload(o);
}

// A reply-spelled value (docs/protocol.md, "Replies: Python values") as Python:
// the atoms :infinity/:neg_infinity/:nan as floats and any other atom as
// Atom(name); marked arrays as tuple and set (frozenset inside a key); ext 1 as
// the handle's object (it must exist). Checks the precision the page promises.
inline sb::PyRef reply_value(const msgpack::object& o, PyObject* env, bool hashable = false) {
  using T = msgpack::type::object_type;
  switch (o.type) {
    case T::NIL:
      return sb::PyRef::borrow(Py_None);
    case T::BOOLEAN:
      return sb::PyRef::borrow(o.via.boolean ? Py_True : Py_False);
    case T::POSITIVE_INTEGER:
      return sb::check(PyLong_FromUnsignedLongLong(o.via.u64));
    case T::NEGATIVE_INTEGER:
      return sb::check(PyLong_FromLongLong(o.via.i64));
    case T::FLOAT64:
      return sb::check(PyFloat_FromDouble(o.via.f64));
    case T::FLOAT32:
      FAIL("replies carry float64 only");
      break;
    case T::STR: {
      PyObject* s = PyUnicode_DecodeUTF8(o.via.str.ptr, o.via.str.size, "strict");
      if (!s) {
        PyErr_Clear();
        FAIL("a reply str that is not UTF-8");
      }
      return sb::PyRef::steal(s);
    }
    case T::BIN:
      return sb::check(PyBytes_FromStringAndSize(o.via.bin.ptr, o.via.bin.size));
    case T::ARRAY: {
      const auto& a = o.via.array;
      bool tuple = led_by_marker(o, sb::port::kTupleMarker), set = led_by_marker(o, sb::port::kSetMarker);
      uint32_t first = tuple || set ? 1 : 0;
      sb::PyRef items = sb::check(PyList_New(0));
      for (uint32_t k = first; k < a.size; ++k) {
        sb::PyRef item = reply_value(a.ptr[k], env, hashable || set);
        sb::check_status(PyList_Append(items.get(), item.get()));
      }
      if (tuple) return sb::check(PyList_AsTuple(items.get()));
      if (set) return sb::check(hashable ? PyFrozenSet_New(items.get()) : PySet_New(items.get()));
      REQUIRE_FALSE(hashable);  // Python keys are hashable: never a list
      return items;
    }
    case T::MAP: {
      sb::PyRef d = sb::check(PyDict_New());
      for (uint32_t k = 0; k < o.via.map.size; ++k) {
        sb::PyRef key = reply_value(o.via.map.ptr[k].key, env, true);
        sb::PyRef val = reply_value(o.via.map.ptr[k].val, env);
        sb::check_status(PyDict_SetItem(d.get(), key.get(), val.get()));
      }
      REQUIRE(static_cast<uint32_t>(PyDict_GET_SIZE(d.get())) == o.via.map.size);  // no duplicate keys
      return d;
    }
    case T::EXT: {
      int type = o.via.ext.type();
      std::string p = ext_payload(o);
      if (type == sb::port::kHandle) {
        PyObject* obj = sb::port::handles().get(handle_id_of(o));
        REQUIRE(obj != nullptr);
        return sb::PyRef::borrow(obj);
      }
      if (type == sb::port::kBigInt) {
        REQUIRE(!p.empty());
        sb::BigInt b;
        b.negative = p[0] != 0;
        b.magnitude.assign(p.begin() + 1, p.end());
        REQUIRE((b.magnitude.empty() || b.magnitude.back() != 0));  // no trailing zero bytes
        return sb::int_from_big(b);
      }
      if (type == sb::port::kAtom) {
        if (p == "infinity") return sb::check(PyFloat_FromDouble(HUGE_VAL));
        if (p == "neg_infinity") return sb::check(PyFloat_FromDouble(-HUGE_VAL));
        if (p == "nan") return sb::check(PyFloat_FromDouble(std::nan("")));
        PyObject* cls = PyDict_GetItemString(env, "Atom");
        return sb::check(PyObject_CallFunction(cls, "s#", p.data(), static_cast<Py_ssize_t>(p.size())));
      }
      msgpack::object_handle inner = msgpack::unpack(p.data(), p.size());
      const msgpack::object& f = inner.get();
      REQUIRE(f.type == msgpack::type::ARRAY);
      auto field = [&](uint32_t k) {
        REQUIRE(k < f.via.array.size);
        const msgpack::object& x = f.via.array.ptr[k];
        REQUIRE((x.type == msgpack::type::POSITIVE_INTEGER || x.type == msgpack::type::NEGATIVE_INTEGER));
        return static_cast<int>(x.via.i64);
      };
      auto text = [&](uint32_t k) {
        REQUIRE(k < f.via.array.size);
        const msgpack::object& x = f.via.array.ptr[k];
        REQUIRE(x.type == msgpack::type::STR);
        return std::string(x.via.str.ptr, x.via.str.size);
      };
      auto precision_ok = [&](uint32_t us, uint32_t precision) {
        CHECK(field(precision) == (field(us) == 0 ? 0 : 6));
      };
      if (type == sb::port::kDate) {
        REQUIRE(f.via.array.size == 3);
        return sb::make_date({field(0), field(1), field(2)});
      }
      if (type == sb::port::kTime) {
        REQUIRE(f.via.array.size == 5);
        precision_ok(3, 4);
        return sb::make_time({field(0), field(1), field(2), field(3)});
      }
      if (type == sb::port::kNaiveDateTime) {
        REQUIRE(f.via.array.size == 8);
        precision_ok(6, 7);
        return sb::make_datetime({field(0), field(1), field(2)}, {field(3), field(4), field(5), field(6)}, nullptr);
      }
      if (type == sb::port::kDateTime) {
        REQUIRE(f.via.array.size == 12);
        precision_ok(6, 7);
        sb::ZoneFields z;
        z.name = text(8);
        z.abbr = text(9);
        z.utc_offset = field(10);
        z.dst_offset = field(11);
        return sb::make_datetime({field(0), field(1), field(2)}, {field(3), field(4), field(5), field(6)}, &z);
      }
      FAIL("ext " << type << " is not a reply spelling");
      break;
    }
  }
  FAIL("unknown msgpack type");
  return {};
}

}  // namespace sbtest
