// Python -> Elixir: the one walker that decides how every Python value maps
// (docs/type_mapping.md, second table) for both backends. It emits into a sink;
// the NIF's sink builds terms (c_src/nif/term_sink.hpp), the port's packs
// MessagePack (c_src/port/msgpack_sink.hpp). GIL held throughout.
//
// A sink has these members (S is the sink type):
//   void nil(); void boolean(bool); void int64(int64_t); void uint64(uint64_t);
//   void big_int(const BigInt&); void float64(double);
//   void atom(const char* name);                      // :infinity, :cont, :python...
//   void str(PyObject* owner, const char* utf8, size_t n);   // text of a str
//   void bytes(PyObject* owner, const char* data, size_t n); // owner null: copy now
//   void begin_list(size_t n);  void end_list();
//   void begin_tuple(size_t n); void end_tuple();
//   void begin_map(size_t n);   void end_map();      // n keys, each followed by its value
//   void begin_set(size_t n);   void end_set();
//   void date(const DateFields&); void time(const TimeFields&);
//   void datetime(const DateFields&, const TimeFields&, const ZoneFields* zone_or_null);
//   void object(PyObject*);                          // a reference to keep
//   void elixir_term(const TermPayload&);            // a term Python held (elixir_terms.hpp)
//   void array(PyObject* owner, const char* data, size_t n, ElementType,
//              const std::vector<int64_t>& shape);   // %SnakeBridge.Array{} (arrays.hpp);
//                                                    // `owner` holds the bytes
// `owner`, when not null, is an immutable object that holds the bytes: a sink
// may keep it alive instead of copying.
#pragma once
#include <cmath>
#include <exception>
#include <string>
#include <vector>

#include "elixir_terms.hpp"
#include "arrays.hpp"
#include "errors.hpp"
#include "limits.hpp"
#include "values.hpp"

namespace sb {

enum class ReturnMode { Auto, Ref, Value };

// return: :value met a Python object with no Elixir equivalent.
struct NoElixirValue : std::exception {
  std::string type_name;
  std::string repr;
  const char* what() const noexcept override { return "no Elixir value for a Python object"; }
};

// Would these distinct Python keys (or set elements) become equal Elixir terms
// ('a' and b'a', two nans)? Then the container stays a Python object.
bool keys_collide(const std::vector<PyRef>& keys);

// Deep conversion of an object with no plain equivalent (numpy arrays and
// scalars: tolist()); null when there is none.
PyRef deep_equivalent(PyObject* o);

[[noreturn]] void throw_no_value(PyObject* o);

// Elixir keeps a microsecond precision that Python has not: whole seconds read
// back as precision 0, anything else as microseconds (6).
inline int microsecond_precision(const TimeFields& t) { return t.microsecond == 0 ? 0 : 6; }

template <class Sink>
class ToElixir {
 public:
  ToElixir(Sink& sink, ReturnMode mode) : sink_(sink), mode_(mode) {}

  // A result of its own: :ref makes a reference whatever the object is.
  void result(PyObject* o) {
    if (mode_ == ReturnMode::Ref) return sink_.object(o);
    value(o, 0);
  }

  void value(PyObject* o, int depth) {
    if (depth > kMaxResultDepth) return other(o);
    Kind k = mode_ == ReturnMode::Value ? classify_loose(o) : classify(o);
    switch (k) {
      case Kind::None:
        return sink_.nil();
      case Kind::Bool: {
        int truth = PyObject_IsTrue(o);
        if (truth < 0) throw_python_error();
        return sink_.boolean(truth != 0);
      }
      case Kind::Int:
        return integer(o);
      case Kind::Float: {
        double d = PyFloat_AsDouble(o);
        if (d == -1.0 && PyErr_Occurred()) throw_python_error();
        if (std::isnan(d)) return sink_.atom("nan");
        if (std::isinf(d)) return sink_.atom(d > 0 ? "infinity" : "neg_infinity");
        return sink_.float64(d);
      }
      case Kind::Str: {
        Py_ssize_t n;
        const char* s = PyUnicode_AsUTF8AndSize(o, &n);
        if (!s) {  // lone surrogates: no UTF-8 form
          PyErr_Clear();
          return other(o);
        }
        // The UTF-8 form is cached in the str object for its lifetime.
        return sink_.str(o, s, static_cast<size_t>(n));
      }
      case Kind::Bytes:
      case Kind::ByteArray:
      case Kind::MemoryView:
        return bytes_like(o);
      case Kind::List:
      case Kind::Tuple:
        return sequence(o, k == Kind::Tuple, depth);
      case Kind::Dict:
        return mapping(o, depth);
      case Kind::Set:
      case Kind::FrozenSet:
        return set(o, depth);
      case Kind::Date:
        return sink_.date(date_fields(o));
      case Kind::Time:
        // Elixir's Time has no zone: an aware time stays a Python object.
        if (time_has_zone(o)) return other(o);
        return sink_.time(time_fields(o));
      case Kind::DateTime: {
        ZoneFields z;
        bool aware = zone_fields(o, &z);
        return sink_.datetime(date_fields(o), time_fields(o), aware ? &z : nullptr);
      }
      case Kind::ElixirTerm:
        return sink_.elixir_term(*elixir_term_payload(o));
      case Kind::Other:
        break;
    }
    if (mode_ == ReturnMode::Value) {
      if (PyRef plain = deep_equivalent(o)) return value(plain.get(), depth + 1);
    }
    other(o);
  }

 private:
  // No plain Elixir equivalent: a reference, or an error in :value mode.
  void other(PyObject* o) {
    if (mode_ == ReturnMode::Value) throw_no_value(o);
    sink_.object(o);
  }

  void integer(PyObject* o) {
    PyRef as_int;
    if (!PyLong_Check(o)) {  // numpy integers and other __index__ types
      as_int = check(PyNumber_Index(o));
      o = as_int.get();
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow) {
      if (v == -1 && PyErr_Occurred()) throw_python_error();
      return sink_.int64(v);
    }
    if (overflow > 0) {
      unsigned long long u = PyLong_AsUnsignedLongLong(o);
      if (!(u == static_cast<unsigned long long>(-1) && PyErr_Occurred())) return sink_.uint64(u);
      PyErr_Clear();
    }
    sink_.big_int(int_as_big(o));
  }

  void bytes_like(PyObject* o) {
    if (PyBytes_Check(o)) {  // immutable: a sink may share the buffer
      return sink_.bytes(o, PyBytes_AS_STRING(o), static_cast<size_t>(PyBytes_GET_SIZE(o)));
    }
    // bytearray and memoryview can change after we return: copied.
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_C_CONTIGUOUS) == 0) {
      struct Release {
        Py_buffer* v;
        ~Release() { PyBuffer_Release(v); }
      } release{&view};
      return sink_.bytes(nullptr, static_cast<const char*>(view.buf), static_cast<size_t>(view.len));
    }
    // A strided memoryview: bytes(view) gathers its items in order.
    PyErr_Clear();
    PyRef copy = PyRef::steal(PyObject_Bytes(o));
    if (!copy) {
      PyErr_Clear();
      return other(o);
    }
    sink_.bytes(nullptr, PyBytes_AS_STRING(copy.get()), static_cast<size_t>(PyBytes_GET_SIZE(copy.get())));
  }

  void sequence(PyObject* o, bool tuple, int depth) {
    // A tuple snapshot holds strong references: Python code run while converting
    // (a tzinfo, __instancecheck__) may change or empty the list.
    PyRef fast = check(PySequence_Tuple(o));
    Py_ssize_t n = PyTuple_GET_SIZE(fast.get());
    tuple ? sink_.begin_tuple(static_cast<size_t>(n)) : sink_.begin_list(static_cast<size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) value(PyTuple_GET_ITEM(fast.get(), i), depth + 1);
    tuple ? sink_.end_tuple() : sink_.end_list();
  }

  void mapping(PyObject* o, int depth) {
    // Keys and values are held while converting, which may run Python code that
    // changes the dict.
    std::vector<PyRef> keys, values;
    if (PyDict_Check(o)) {
      keys.reserve(static_cast<size_t>(PyDict_GET_SIZE(o)));
      values.reserve(keys.capacity());
      Py_ssize_t pos = 0;
      PyObject *k, *v;
      while (PyDict_Next(o, &pos, &k, &v)) {
        keys.push_back(PyRef::borrow(k));
        values.push_back(PyRef::borrow(v));
      }
    } else {  // other Mappings (:value mode)
      PyRef items = check(PyMapping_Items(o));
      Py_ssize_t n = PyList_GET_SIZE(items.get());
      for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* pair = PyList_GET_ITEM(items.get(), i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
          PyErr_SetString(PyExc_TypeError, "a mapping's items() must be (key, value) pairs");
          throw_python_error();
        }
        keys.push_back(PyRef::borrow(PyTuple_GET_ITEM(pair, 0)));
        values.push_back(PyRef::borrow(PyTuple_GET_ITEM(pair, 1)));
      }
    }
    if (keys_collide(keys)) return other(o);  // the dict would lose keys
    sink_.begin_map(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      value(keys[i].get(), depth + 1);
      value(values[i].get(), depth + 1);
    }
    sink_.end_map();
  }

  void set(PyObject* o, int depth) {
    std::vector<PyRef> items;
    PyRef iter = check(PyObject_GetIter(o));
    while (PyObject* item = PyIter_Next(iter.get())) items.push_back(PyRef::steal(item));
    if (PyErr_Occurred()) throw_python_error();
    if (keys_collide(items)) return other(o);
    sink_.begin_set(items.size());
    for (const PyRef& item : items) value(item.get(), depth + 1);
    sink_.end_set();
  }

  Sink& sink_;
  ReturnMode mode_;
};

// The Elixir form of a Python exception: {:python, type, python_type, message,
// traceback}, and a sixth element, the original {kind, reason, stacktrace},
// for a snakebridge.ElixirError a callback raised.
template <class Sink>
void emit_python_error(Sink& sink, const PythonErrorInfo& e) {
  sink.begin_tuple(e.elixir ? 6 : 5);
  sink.atom("python");
  for (const std::string* s : {&e.type, &e.qualified_type, &e.message, &e.traceback}) {
    sink.str(nullptr, s->data(), s->size());
  }
  if (e.elixir) sink.elixir_term(*e.elixir);
  sink.end_tuple();
}

}  // namespace sb
