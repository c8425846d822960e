#include "values.hpp"

#include "elixir_terms.hpp"

#include <datetime.h>

#include <cstring>
#include <mutex>
#include <unordered_map>

#include "errors.hpp"

namespace sb {
namespace {

// numpy is optional: its scalar types are looked up once numpy has been imported by
// someone, never imported by us.
struct NumpyTypes {
  PyObject* integer = nullptr;
  PyObject* floating = nullptr;
  PyObject* bool_ = nullptr;
};
NumpyTypes g_numpy;
bool g_numpy_loaded = false;

const NumpyTypes* numpy_types() {
  if (g_numpy_loaded) return &g_numpy;
  PyObject* modules = PyImport_GetModuleDict();
  PyObject* np = PyDict_GetItemString(modules, "numpy");
  if (!np) return nullptr;
  g_numpy.integer = PyObject_GetAttrString(np, "integer");
  g_numpy.floating = PyObject_GetAttrString(np, "floating");
  g_numpy.bool_ = PyObject_GetAttrString(np, "bool_");
  if (!g_numpy.integer || !g_numpy.floating || !g_numpy.bool_) {
    PyErr_Clear();
    return nullptr;
  }
  g_numpy_loaded = true;
  return &g_numpy;
}

Kind numpy_kind(PyObject* o) {
  const NumpyTypes* np = numpy_types();
  if (!np) return Kind::Other;
  auto is = [&](PyObject* t) {
    int r = PyObject_IsInstance(o, t);
    if (r < 0) PyErr_Clear();
    return r == 1;
  };
  if (is(np->integer)) return Kind::Int;
  if (is(np->floating)) return Kind::Float;
  if (is(np->bool_)) return Kind::Bool;
  return Kind::Other;
}

PyObject* g_abc_mapping = nullptr;
PyObject* g_abc_set = nullptr;

}  // namespace

void ensure_datetime_api() {
  if (!PyDateTimeAPI) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) throw_python_error();
  }
}

Kind classify(PyObject* o) {
  PyTypeObject* t = Py_TYPE(o);
  if (o == Py_None) return Kind::None;
  if (t == &PyBool_Type) return Kind::Bool;
  if (t == &PyLong_Type) return Kind::Int;
  if (t == &PyFloat_Type) return Kind::Float;
  if (t == &PyUnicode_Type) return Kind::Str;
  if (t == &PyBytes_Type) return Kind::Bytes;
  if (t == &PyList_Type) return Kind::List;
  if (t == &PyTuple_Type) return Kind::Tuple;
  if (t == &PyDict_Type) return Kind::Dict;
  if (t == &PySet_Type) return Kind::Set;
  if (t == &PyFrozenSet_Type) return Kind::FrozenSet;
  if (t == &PyByteArray_Type) return Kind::ByteArray;
  if (t == &PyMemoryView_Type) return Kind::MemoryView;
  ensure_datetime_api();
  if (t == PyDateTimeAPI->DateTimeType) return Kind::DateTime;
  if (t == PyDateTimeAPI->DateType) return Kind::Date;
  if (t == PyDateTimeAPI->TimeType) return Kind::Time;
  if (elixir_term_payload(o)) return Kind::ElixirTerm;
  return numpy_kind(o);
}

Kind classify_loose(PyObject* o) {
  Kind k = classify(o);
  if (k != Kind::Other) return k;
  if (PyBool_Check(o)) return Kind::Bool;
  if (PyLong_Check(o)) return Kind::Int;
  if (PyFloat_Check(o)) return Kind::Float;
  if (PyUnicode_Check(o)) return Kind::Str;
  if (PyBytes_Check(o)) return Kind::Bytes;
  if (PyByteArray_Check(o)) return Kind::ByteArray;
  if (PyTuple_Check(o)) return Kind::Tuple;  // namedtuples
  if (PyList_Check(o)) return Kind::List;
  if (PyDict_Check(o)) return Kind::Dict;
  if (PyFrozenSet_Check(o)) return Kind::FrozenSet;
  if (PyAnySet_Check(o)) return Kind::Set;
  if (PyDateTime_Check(o)) return Kind::DateTime;
  if (PyDate_Check(o)) return Kind::Date;
  if (PyTime_Check(o)) return Kind::Time;
  if (!g_abc_mapping) {
    PyRef abc = PyRef::steal(PyImport_ImportModule("collections.abc"));
    if (!abc) {
      PyErr_Clear();
      return Kind::Other;
    }
    g_abc_mapping = PyObject_GetAttrString(abc.get(), "Mapping");
    g_abc_set = PyObject_GetAttrString(abc.get(), "Set");
    if (!g_abc_mapping || !g_abc_set) {
      PyErr_Clear();
      return Kind::Other;
    }
  }
  if (PyObject_IsInstance(o, g_abc_mapping) == 1) return Kind::Dict;
  if (PyObject_IsInstance(o, g_abc_set) == 1) return Kind::FrozenSet;
  PyErr_Clear();
  return Kind::Other;
}

bool int_as_i64(PyObject* o, int64_t* out) {
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow) return false;
  if (v == -1 && PyErr_Occurred()) throw_python_error();
  *out = v;
  return true;
}

BigInt int_as_big(PyObject* o) {
  PyRef as_int = check(PyNumber_Index(o));
  BigInt b;
  int sign = _PyLong_Sign(as_int.get());
  b.negative = sign < 0;
  PyRef mag = b.negative ? check(PyNumber_Absolute(as_int.get())) : as_int;
  size_t bits = _PyLong_NumBits(mag.get());
  if (bits == static_cast<size_t>(-1) && PyErr_Occurred()) throw_python_error();
  b.magnitude.resize(bits / 8 + 1);
  if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(mag.get()), b.magnitude.data(),
                          b.magnitude.size(), /*little_endian=*/1, /*is_signed=*/0) < 0) {
    throw_python_error();
  }
  while (!b.magnitude.empty() && b.magnitude.back() == 0) b.magnitude.pop_back();
  return b;
}

PyRef int_from_big(const BigInt& b) {
  PyRef mag = check(_PyLong_FromByteArray(b.magnitude.data(), b.magnitude.size(),
                                          /*little_endian=*/1, /*is_signed=*/0));
  return b.negative ? check(PyNumber_Negative(mag.get())) : mag;
}

PyRef make_date(const DateFields& d) {
  ensure_datetime_api();
  return check(PyDate_FromDate(d.year, d.month, d.day));
}

PyRef make_time(const TimeFields& t) {
  ensure_datetime_api();
  return check(PyTime_FromTime(t.hour, t.minute, t.second, t.microsecond));
}

namespace {

PyRef utc() {
  ensure_datetime_api();
  return PyRef::borrow(PyDateTime_TimeZone_UTC);
}

// ZoneInfo(key), or nothing when zoneinfo or the key is unavailable.
PyRef zoneinfo(const std::string& key) {
  static PyObject* cls = nullptr;
  if (!cls) {
    PyRef mod = PyRef::steal(PyImport_ImportModule("zoneinfo"));
    if (!mod) {
      PyErr_Clear();
      return {};
    }
    cls = PyObject_GetAttrString(mod.get(), "ZoneInfo");
    if (!cls) {
      PyErr_Clear();
      return {};
    }
  }
  PyRef z = PyRef::steal(PyObject_CallFunction(cls, "s", key.c_str()));
  if (!z) PyErr_Clear();
  return z;
}

int offset_seconds(PyObject* delta) {
  if (!delta || delta == Py_None) return 0;
  return PyDateTime_DELTA_GET_DAYS(delta) * 86400 + PyDateTime_DELTA_GET_SECONDS(delta);
}

}  // namespace

PyRef make_datetime(const DateFields& d, const TimeFields& t, const ZoneFields* zone) {
  ensure_datetime_api();
  auto build = [&](PyObject* tz, int fold) {
    return check(PyDateTimeAPI->DateTime_FromDateAndTimeAndFold(
        d.year, d.month, d.day, t.hour, t.minute, t.second, t.microsecond,
        tz ? tz : Py_None, fold, PyDateTimeAPI->DateTimeType));
  };
  if (!zone) return build(nullptr, 0);

  int64_t total64 = int64_t(zone->utc_offset) + zone->dst_offset;
  if (total64 <= -86400 || total64 >= 86400) {
    PyErr_SetString(PyExc_ValueError, "UTC offset must be strictly between -24 and 24 hours");
    throw_python_error();
  }
  int total = static_cast<int>(total64);
  if (zone->name == "Etc/UTC" && total == 0) return build(utc().get(), 0);
  if (PyRef z = zoneinfo(zone->name)) {
    // An ambiguous wall time (DST fall-back) exists twice; fold picks the one whose
    // offset the Elixir value states.
    for (int fold = 0; fold < 2; ++fold) {
      PyRef dt = build(z.get(), fold);
      PyRef off = check(PyObject_CallMethod(dt.get(), "utcoffset", nullptr));
      if (offset_seconds(off.get()) == total) return dt;
    }
  }
  PyRef delta = check(PyDelta_FromDSU(0, total, 0));
  PyRef name = check(PyUnicode_FromString(zone->abbr.c_str()));
  PyRef tz = check(PyTimeZone_FromOffsetAndName(delta.get(), name.get()));
  return build(tz.get(), 0);
}

DateFields date_fields(PyObject* o) {
  return {PyDateTime_GET_YEAR(o), PyDateTime_GET_MONTH(o), PyDateTime_GET_DAY(o)};
}

TimeFields time_fields(PyObject* o) {
  ensure_datetime_api();
  if (PyDateTime_Check(o)) {
    return {PyDateTime_DATE_GET_HOUR(o), PyDateTime_DATE_GET_MINUTE(o),
            PyDateTime_DATE_GET_SECOND(o), PyDateTime_DATE_GET_MICROSECOND(o)};
  }
  return {PyDateTime_TIME_GET_HOUR(o), PyDateTime_TIME_GET_MINUTE(o),
          PyDateTime_TIME_GET_SECOND(o), PyDateTime_TIME_GET_MICROSECOND(o)};
}

bool time_has_zone(PyObject* time) {
  PyObject* tz = PyDateTime_TIME_GET_TZINFO(time);
  return tz && tz != Py_None;
}

bool zone_fields(PyObject* dt, ZoneFields* out) {
  PyObject* tz = PyDateTime_DATE_GET_TZINFO(dt);
  if (!tz || tz == Py_None) return false;
  PyRef off = check(PyObject_CallMethod(dt, "utcoffset", nullptr));
  if (off.get() == Py_None) return false;
  PyRef dst = check(PyObject_CallMethod(dt, "dst", nullptr));
  PyRef abbr = check(PyObject_CallMethod(dt, "tzname", nullptr));
  int total = offset_seconds(off.get());
  out->dst_offset = offset_seconds(dst.get());
  out->utc_offset = total - out->dst_offset;
  if (abbr.get() == Py_None || !PyUnicode_Check(abbr.get())) {
    out->abbr.clear();
  } else {
    const char* text = PyUnicode_AsUTF8(abbr.get());
    if (!text) throw_python_error();  // a tzname with lone surrogates
    out->abbr = text;
  }

  PyRef key = PyRef::steal(PyObject_GetAttrString(tz, "key"));  // ZoneInfo
  const char* key_text = key && PyUnicode_Check(key.get()) ? PyUnicode_AsUTF8(key.get()) : nullptr;
  if (key_text) {
    out->name = key_text;
  } else {
    PyErr_Clear();
    if (tz == PyDateTime_TimeZone_UTC || (total == 0 && out->abbr == "UTC")) {
      out->name = "Etc/UTC";
      out->abbr = "UTC";
    } else {
      out->name = out->abbr;
    }
  }
  return true;
}

PyRef text_or_bytes(const char* data, size_t size) {
  PyObject* s = PyUnicode_DecodeUTF8(data, static_cast<Py_ssize_t>(size), nullptr);
  if (s) return PyRef::steal(s);
  PyErr_Clear();
  return check(PyBytes_FromStringAndSize(data, static_cast<Py_ssize_t>(size)));
}

std::string type_name(PyObject* o) {
  // Cached per type: names are asked for on every object handed to Elixir.
  static std::unordered_map<PyTypeObject*, std::string> cache;
  PyTypeObject* t = Py_TYPE(o);
  auto it = cache.find(t);
  if (it != cache.end()) return it->second;
  std::string name;
  PyRef mod = PyRef::steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(t), "__module__"));
  PyRef qual = PyRef::steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(t), "__qualname__"));
  PyErr_Clear();
  const char* m = mod && PyUnicode_Check(mod.get()) ? PyUnicode_AsUTF8(mod.get()) : nullptr;
  const char* q = qual && PyUnicode_Check(qual.get()) ? PyUnicode_AsUTF8(qual.get()) : t->tp_name;
  PyErr_Clear();
  name = (m && strcmp(m, "builtins") != 0) ? std::string(m) + "." + q : std::string(q);
  // The cache keeps the type alive, so its address cannot be reused by another type.
  Py_INCREF(t);
  cache.emplace(t, name);
  return name;
}

std::string short_repr(PyObject* o, size_t max_chars) {
  PyRef r = PyRef::steal(PyObject_Repr(o));
  if (!r) {
    PyErr_Clear();
    return "<repr failed>";
  }
  Py_ssize_t n = 0;
  const char* s = PyUnicode_AsUTF8AndSize(r.get(), &n);
  if (!s) {
    PyErr_Clear();
    return "<repr failed>";
  }
  std::string out(s, static_cast<size_t>(n));
  if (out.size() > max_chars) {
    size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 boundary
    out.resize(cut);
    out += "...";
  }
  return out;
}

}  // namespace sb
