// Elixir -> Python: the one builder that decides how every Elixir term maps
// (docs/type_mapping.md, first table) for both backends: depth limit, paths of
// refused terms, hashable forms for dict keys and set elements, key
// collisions, calendar types, keyword arguments. It reads the wire through a
// reader; the NIF's reads terms (c_src/nif/term_reader.hpp), the port's reads
// MessagePack (c_src/port/msgpack_reader.hpp). GIL held throughout.
//
// A reader has a cheap `Value` type and these members:
//   WireKind kind(Value);
//   bool int64(Value, int64_t*); bool uint64(Value, uint64_t*); BigInt big_int(Value);
//   double float64(Value);
//   std::string_view text(Value);           // Atom: its name (UTF-8); Binary, Bytes: the bytes
//   bool length(Value, size_t*);            // List, Tuple, Set, Map; false: an improper list
//   template <class F> void each_item(Value, F&& f);   // List, Tuple, Set: f(Value)
//   template <class F> void each_entry(Value, F&& f);  // Map: f(Value key, Value value)
//   std::string_view struct_name(Value);    // Struct: "Elixir.Date"
//   bool field(Value, const char* name, Value*);      // Struct: a field by name
//   PyObject* object(Value);                // Object: borrowed, or null when unusable
//   PyRef term(Value);                      // Term: its snakebridge.Pid/.../Function
//   KeptBytes keep(Value);                  // Binary: its bytes, kept alive for Python
//                                           // (an array's data: arrays.hpp)
//   uintptr_t token(Value);                 // names the value in a Refusal
#pragma once
#include <climits>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "arrays.hpp"
#include "errors.hpp"
#include "prebuilt_bytes.hpp"
#include "limits.hpp"
#include "values.hpp"

namespace sb {

// How a wire presents an Elixir term. Object, Bytes and Set are the structs
// SnakeBridge.Object, SnakeBridge.Bytes and MapSet; Struct any other struct;
// Opaque a term with no Python form at all (improper list, bitstring, an
// object Python cannot reach).
enum class WireKind {
  Nil, True, False, Integer, Float, Atom, Binary, Bytes, List, Tuple, Map, Set, Struct, Object,
  Term,  // a pid, reference, port or function: held by Python as it is (elixir_terms.hpp)
  Opaque
};

enum class RefusalReason { Unconvertible, Unhashable, Collision, TooDeep };
const char* refusal_reason_name(RefusalReason r);

// One step from the top of an argument down to a refused term. A front end
// names it in its own terms: the NIF by the key term itself, the port by
// position (docs/protocol.md, "Replies").
struct PathStep {
  enum Kind { Index, Key, Value, Element, Field } kind;
  size_t index = 0;       // list/tuple position, map entry, keyword pair, set element
  uintptr_t token = 0;    // Key, Value, Element: the key / element itself
  const char* field = nullptr;  // Field: a struct field ("year")
};

// An Elixir term that cannot become a Python object, and where it sits.
struct Refusal : std::exception {
  RefusalReason reason = RefusalReason::Unconvertible;
  uintptr_t term = 0;
  std::vector<PathStep> path;
  const char* what() const noexcept override { return "term cannot be converted to Python"; }
};

// A request whose shape is wrong (not a user's value: a client bug).
struct BadRequest : std::exception {
  std::string message;
  explicit BadRequest(std::string m) : message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

template <class Reader>
class FromElixir {
 public:
  using V = typename Reader::Value;
  explicit FromElixir(Reader& r) : r_(r) {}

  // Any argument value (setattr's value).
  PyRef value(V v) { return build(v, false); }

  // The positional arguments: a list (nil: none) -> tuple; paths start with the index.
  PyRef args(V v) {
    WireKind k = r_.kind(v);
    if (k == WireKind::Nil) return check(PyTuple_New(0));
    size_t n;
    if (k != WireKind::List || !r_.length(v, &n)) refuse(RefusalReason::Unconvertible, v);
    PyRef tuple = check(PyTuple_New(static_cast<Py_ssize_t>(n)));
    size_t i = 0;
    r_.each_item(v, [&](V item) {
      Step s(*this, {PathStep::Index, i});
      PyTuple_SET_ITEM(tuple.get(), static_cast<Py_ssize_t>(i), build(item, false).release());
      ++i;
    });
    return tuple;
  }

  // Keyword arguments: a keyword list or a map with atom or text keys (nil:
  // none) -> a dict of str keys, or null when empty. Paths start with the key.
  PyRef kwargs(V v) {
    WireKind k = r_.kind(v);
    if (k == WireKind::Nil) return {};
    PyRef dict = check(PyDict_New());
    size_t i = 0;
    auto put = [&](V key, V value) {
      {
        Step s(*this, {PathStep::Key, i, r_.token(key)});
        WireKind kk = r_.kind(key);
        if (kk == WireKind::Atom) {
          // A keyword is a name, even :nan or :infinity (numpy's nan_to_num(x, nan: 0.0)).
          std::string_view name = r_.text(key);
          PyObject* s = PyUnicode_DecodeUTF8(name.data(), static_cast<Py_ssize_t>(name.size()), nullptr);
          if (!s) {
            PyErr_Clear();
            refuse(RefusalReason::Unconvertible, key);
          }
          key_obj_ = PyRef::steal(s);
        } else if (kk == WireKind::Binary) {
          key_obj_ = build(key, true);
          if (!PyUnicode_Check(key_obj_.get())) refuse(RefusalReason::Unconvertible, key);
        } else {
          refuse(RefusalReason::Unconvertible, key);
        }
      }
      Step s(*this, {PathStep::Value, i, r_.token(key)});
      PyRef val = build(value, false);
      check_status(PyDict_SetItem(dict.get(), key_obj_.get(), val.get()));
      ++i;
    };
    if (k == WireKind::Map) {
      r_.each_entry(v, put);
    } else {
      size_t n;
      if (k != WireKind::List || !r_.length(v, &n)) refuse(RefusalReason::Unconvertible, v);
      r_.each_item(v, [&](V pair) {
        size_t arity = 0;
        if (r_.kind(pair) != WireKind::Tuple || !r_.length(pair, &arity) || arity != 2) {
          refuse(RefusalReason::Unconvertible, pair);
        }
        V kv[2];
        int j = 0;
        r_.each_item(pair, [&](V x) { kv[j++] = x; });
        put(kv[0], kv[1]);
      });
    }
    if (PyDict_GET_SIZE(dict.get()) == 0) return {};
    return dict;
  }

  // eval/exec globals: a map with text keys (nil: empty) -> a fresh dict.
  PyRef globals(V v) {
    if (r_.kind(v) == WireKind::Nil) return check(PyDict_New());
    PyRef g = build(v, false);
    if (!PyDict_CheckExact(g.get())) throw BadRequest("globals must be a map");
    return g;
  }

  // A name in a request (module, attribute, code, mode): an atom or a binary.
  std::string text(V v, const char* what) {
    WireKind k = r_.kind(v);
    if (k != WireKind::Atom && k != WireKind::Binary) throw BadRequest(std::string(what) + " must be text");
    std::string_view t = r_.text(v);
    return std::string(t);
  }

 private:
  // Pushes a step (and a level) for its scope.
  struct Step {
    FromElixir& b;
    Step(FromElixir& builder, PathStep step) : b(builder) {
      b.path_.push_back(step);
      ++b.depth_;
    }
    ~Step() {
      b.path_.pop_back();
      --b.depth_;
    }
  };

  [[noreturn]] void refuse(RefusalReason reason, V v) {
    Refusal e;
    e.reason = reason;
    e.term = r_.token(v);
    e.path = path_;
    throw e;
  }

  PyRef build(V v, bool hashable) {
    if (depth_ > kMaxArgumentDepth) refuse(RefusalReason::TooDeep, v);
    switch (r_.kind(v)) {
      case WireKind::Nil:
        return PyRef::borrow(Py_None);
      case WireKind::True:
        return PyRef::borrow(Py_True);
      case WireKind::False:
        return PyRef::borrow(Py_False);
      case WireKind::Integer: {
        int64_t i;
        if (r_.int64(v, &i)) return check(PyLong_FromLongLong(i));
        uint64_t u;
        if (r_.uint64(v, &u)) return check(PyLong_FromUnsignedLongLong(u));
        return int_from_big(r_.big_int(v));
      }
      case WireKind::Float:
        return check(PyFloat_FromDouble(r_.float64(v)));
      case WireKind::Atom:
        return atom(v);
      case WireKind::Binary: {
        std::string_view b = r_.text(v);
        return text_or_bytes(b.data(), b.size());
      }
      case WireKind::Bytes: {
        std::string_view b = r_.text(v);
        // Made already where the data was (prebuilt_bytes.hpp), for a large one.
        if (PyObject* made = take_prebuilt_bytes(b.data(), b.size())) return PyRef::steal(made);
        return check(PyBytes_FromStringAndSize(b.data(), static_cast<Py_ssize_t>(b.size())));
      }
      case WireKind::List:
        return sequence(v, hashable, /*tuple=*/false);
      case WireKind::Tuple:
        return sequence(v, hashable, /*tuple=*/true);
      case WireKind::Map:
        return map(v, hashable);
      case WireKind::Set:
        return set(v, hashable);
      case WireKind::Struct:
        return structure(v);
      case WireKind::Object:
        if (PyObject* o = r_.object(v)) return PyRef::borrow(o);
        break;
      case WireKind::Term:
        if (PyRef t = r_.term(v)) return t;
        break;
      case WireKind::Opaque:
        break;
    }
    refuse(RefusalReason::Unconvertible, v);
  }

  PyRef atom(V v) {
    std::string_view name = r_.text(v);
    if (name == "infinity") return check(PyFloat_FromDouble(HUGE_VAL));
    if (name == "neg_infinity") return check(PyFloat_FromDouble(-HUGE_VAL));
    if (name == "nan") return check(PyFloat_FromDouble(std::numeric_limits<double>::quiet_NaN()));
    PyObject* s = PyUnicode_DecodeUTF8(name.data(), static_cast<Py_ssize_t>(name.size()), nullptr);
    if (!s) {
      PyErr_Clear();
      refuse(RefusalReason::Unconvertible, v);
    }
    return PyRef::steal(s);
  }

  PyRef sequence(V v, bool hashable, bool tuple) {
    size_t n;
    if (!r_.length(v, &n)) refuse(RefusalReason::Unconvertible, v);  // an improper list
    // In a dict key or set element a list must be hashable: it becomes a tuple.
    bool as_tuple = tuple || hashable;
    PyRef out = check(as_tuple ? PyTuple_New(static_cast<Py_ssize_t>(n)) : PyList_New(static_cast<Py_ssize_t>(n)));
    size_t i = 0;
    r_.each_item(v, [&](V item) {
      Step s(*this, {PathStep::Index, i});
      PyObject* o = build(item, hashable).release();
      if (as_tuple) PyTuple_SET_ITEM(out.get(), static_cast<Py_ssize_t>(i), o);
      else PyList_SET_ITEM(out.get(), static_cast<Py_ssize_t>(i), o);
      ++i;
    });
    return out;
  }

  PyRef map(V v, bool hashable) {
    if (hashable) refuse(RefusalReason::Unhashable, v);
    size_t n = 0;
    r_.length(v, &n);
    PyRef dict = check(_PyDict_NewPresized(static_cast<Py_ssize_t>(n)));
    size_t i = 0;
    r_.each_entry(v, [&](V key, V value) {
      PyRef k, val;
      {
        Step s(*this, {PathStep::Key, i, r_.token(key)});
        k = build(key, true);
      }
      {
        Step s(*this, {PathStep::Value, i, r_.token(key)});
        val = build(value, false);
      }
      check_status(PyDict_SetItem(dict.get(), k.get(), val.get()));
      ++i;
    });
    // Keys distinct in Elixir can be equal in Python (1 and 1.0, 1 and true, "a"
    // and :a): refuse rather than silently drop an entry.
    if (static_cast<size_t>(PyDict_GET_SIZE(dict.get())) != i) refuse(RefusalReason::Collision, v);
    return dict;
  }

  PyRef set(V v, bool hashable) {
    size_t n = 0;
    r_.length(v, &n);
    PyRef out = check(hashable ? PyFrozenSet_New(nullptr) : PySet_New(nullptr));
    size_t i = 0;
    r_.each_item(v, [&](V item) {
      Step s(*this, {PathStep::Element, i, r_.token(item)});
      PyRef o = build(item, true);
      check_status(PySet_Add(out.get(), o.get()));
      ++i;
    });
    if (static_cast<size_t>(PySet_GET_SIZE(out.get())) != i) refuse(RefusalReason::Collision, v);
    return out;
  }

  // Only SnakeBridge.Array and the calendar structs of Calendar.ISO have a
  // Python form; any other struct was given its chance by SnakeBridge.Encoder
  // on the Elixir side.
  PyRef structure(V v) {
    std::string_view name = r_.struct_name(v);
    if (name == "Elixir.SnakeBridge.Array") return array(v);
    bool date = name == "Elixir.Date", time = name == "Elixir.Time", naive = name == "Elixir.NaiveDateTime",
         aware = name == "Elixir.DateTime";
    if (!date && !time && !naive && !aware) refuse(RefusalReason::Unconvertible, v);
    V cal;
    if (!r_.field(v, "calendar", &cal) || r_.kind(cal) != WireKind::Atom || r_.text(cal) != "Elixir.Calendar.ISO") {
      refuse(RefusalReason::Unconvertible, v);
    }
    DateFields d{};
    TimeFields t{};
    if (!time) d = {field_int(v, "year"), field_int(v, "month"), field_int(v, "day")};
    if (!date) {
      int micro = microsecond(v);
      t = {field_int(v, "hour"), field_int(v, "minute"), field_int(v, "second"), micro};
    }
    try {
      if (date) return make_date(d);
      if (time) return make_time(t);
      if (naive) return make_datetime(d, t, nullptr);
      ZoneFields z;
      z.name = field_text(v, "time_zone");
      z.abbr = field_text(v, "zone_abbr");
      z.utc_offset = field_int(v, "utc_offset");
      z.dst_offset = field_int(v, "std_offset");
      return make_datetime(d, t, &z);
    } catch (const PythonException&) {
      refuse(RefusalReason::Unconvertible, v);  // fields out of Python's range
    }
  }

  // %SnakeBridge.Array{data: binary, type: {kind, bits}, shape: tuple}: a
  // read-only array over the binary's bytes (arrays.hpp). A type Nx does not
  // have, a shape that is not a tuple of non-negative integers, or data of
  // another size than the shape says refuses the struct.
  PyRef array(V v) {
    V data, type, shape;
    ElementType t;
    std::vector<int64_t> dims;
    size_t bytes = 0;
    if (!r_.field(v, "data", &data) || r_.kind(data) != WireKind::Binary || !r_.field(v, "type", &type) ||
        !element_type(type, &t) || !r_.field(v, "shape", &shape) || !dimensions(shape, &dims) ||
        !shape_bytes(dims, t, &bytes) || r_.text(data).size() != bytes) {
      refuse(RefusalReason::Unconvertible, v);
    }
    return make_array(t, dims, r_.keep(data));
  }

  // {kind, bits} with kind :s, :u, :f or :c.
  bool element_type(V v, ElementType* out) {
    V items[2];
    if (!pair(v, items) || r_.kind(items[0]) != WireKind::Atom || r_.kind(items[1]) != WireKind::Integer) return false;
    std::string_view kind = r_.text(items[0]);
    int64_t bits;
    if (kind.size() != 1 || !r_.int64(items[1], &bits) || bits < 0 || bits > 128) return false;
    *out = {kind[0], static_cast<int>(bits)};
    return valid_element_type(*out);
  }

  bool dimensions(V v, std::vector<int64_t>* out) {
    size_t n;
    if (r_.kind(v) != WireKind::Tuple || !r_.length(v, &n) || n > kMaxArrayDims) return false;
    bool ok = true;
    r_.each_item(v, [&](V d) {
      int64_t i;
      if (r_.kind(d) != WireKind::Integer || !r_.int64(d, &i) || i < 0) ok = false;
      else out->push_back(i);
    });
    return ok;
  }

  // The two items of a 2-tuple.
  bool pair(V v, V items[2]) {
    size_t n = 0;
    if (r_.kind(v) != WireKind::Tuple || !r_.length(v, &n) || n != 2) return false;
    size_t count = 0;
    r_.each_item(v, [&](V x) {
      if (count < 2) items[count] = x;
      ++count;
    });
    return count == 2;
  }

  // A 32-bit integer field; anything else refuses the struct, at that field.
  int field_int(V v, const char* name) {
    V f;
    int64_t i;
    if (!r_.field(v, name, &f) || r_.kind(f) != WireKind::Integer || !r_.int64(f, &i) || i < INT32_MIN ||
        i > INT32_MAX) {
      Step s(*this, {PathStep::Field, 0, 0, name});
      refuse(RefusalReason::Unconvertible, v);
    }
    return static_cast<int>(i);
  }

  // {microsecond, precision}: the microsecond.
  int microsecond(V v) {
    V f, items[2] = {};
    if (r_.field(v, "microsecond", &f) && pair(f, items)) {
      int64_t us;
      if (r_.kind(items[0]) == WireKind::Integer && r_.int64(items[0], &us) && us >= INT32_MIN && us <= INT32_MAX) {
        return static_cast<int>(us);
      }
    }
    refuse(RefusalReason::Unconvertible, v);
  }

  std::string field_text(V v, const char* name) {
    V f;
    if (!r_.field(v, name, &f) || r_.kind(f) != WireKind::Binary) refuse(RefusalReason::Unconvertible, v);
    return std::string(r_.text(f));
  }

  Reader& r_;
  std::vector<PathStep> path_;
  int depth_ = 0;
  PyRef key_obj_;
};

}  // namespace sb
