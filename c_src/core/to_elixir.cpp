#include "to_elixir.hpp"

namespace sb {
namespace {

// A stand-in for every nan: Elixir has one :nan, Python many distinct nans. A
// str, which elixir_key never returns for a real key (it turns text into bytes).
PyObject* nan_key() {
  static PyObject* key = PyUnicode_InternFromString("snakebridge:nan");
  return key;
}

bool is_nan(PyObject* k) { return PyFloat_Check(k) && std::isnan(PyFloat_AS_DOUBLE(k)); }

// The key as Elixir will see it: a str and a bytes of equal content are one
// Elixir binary (also inside tuples and frozensets), every nan is :nan.
PyRef elixir_key(PyObject* k) {
  if (PyUnicode_Check(k)) {
    if (PyObject* b = PyUnicode_AsUTF8String(k)) return PyRef::steal(b);
    PyErr_Clear();  // lone surrogates: kept as an object, which collides with nothing
    return PyRef::borrow(k);
  }
  if (is_nan(k)) return PyRef::borrow(nan_key());
  if (PyMemoryView_Check(k)) {
    if (PyObject* b = PyObject_Bytes(k)) return PyRef::steal(b);
    PyErr_Clear();
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

}  // namespace

bool keys_collide(const std::vector<PyRef>& keys) {
  if (keys.size() < 2) return false;
  // The common case (text, numbers, no nan) cannot collide: skip the work.
  bool possible = false;
  for (const PyRef& k : keys) {
    PyObject* o = k.get();
    if (PyBytes_Check(o) || PyTuple_Check(o) || PyFrozenSet_Check(o) || PyMemoryView_Check(o) || is_nan(o)) {
      possible = true;
      break;
    }
  }
  if (!possible) return false;
  PyRef seen = check(PySet_New(nullptr));
  size_t added = 0;
  for (const PyRef& k : keys) {
    PyRef e = elixir_key(k.get());
    if (PySet_Add(seen.get(), e.get()) < 0) {
      PyErr_Clear();  // unhashable after all: such a key is an object, colliding with nothing
      continue;
    }
    ++added;
  }
  return static_cast<size_t>(PySet_GET_SIZE(seen.get())) < added;
}

PyRef deep_equivalent(PyObject* o) {
  // numpy arrays and scalars know their Python equivalent.
  if (type_name(o).rfind("numpy.", 0) != 0 || !PyObject_HasAttrString(o, "tolist")) return {};
  PyRef plain = check(PyObject_CallMethod(o, "tolist", nullptr));
  if (plain.get() == o) return {};
  return plain;
}

void throw_no_value(PyObject* o) {
  NoElixirValue e;
  e.type_name = type_name(o);
  e.repr = short_repr(o, 80);
  throw e;
}

}  // namespace sb
