// Arrays (docs/arrays.md), once for both backends: which Python buffers are
// arrays, their Nx-style element type, shape and C-contiguous bytes
// (Python -> Elixir), and the read-only array an Elixir
// %SnakeBridge.Array{} becomes (Elixir -> Python). A front end only spells
// the bytes (a resource binary, a MessagePack ext) or keeps them alive
// (KeptBytes). GIL held throughout, except where said.
#pragma once
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "pyref.hpp"

namespace sb {

// An element type as Nx spells it: kind 's', 'u', 'f' or 'c', and bits.
struct ElementType {
  char kind = 0;
  int bits = 0;
  size_t bytes() const { return static_cast<size_t>(bits / 8); }
  bool operator==(const ElementType& o) const { return kind == o.kind && bits == o.bits; }
};

// {:s | :u, 8 | 16 | 32 | 64}, {:f, 16 | 32 | 64}, {:c, 64 | 128}.
bool valid_element_type(ElementType t);

// The element type of a buffer whose items have the PEP 3118 `format` (null:
// "B") and `itemsize`. *swap: the items are not in this machine's byte order.
// False for anything that is not one number per item (objects, text, records,
// pointers, long double).
bool element_type_of_format(const char* format, size_t itemsize, ElementType* out, bool* swap);

// The PEP 3118 format of such elements, in native order ("d", "Zf", "e"); the
// numpy dtype string ("f8", "c8", "f2").
const char* format_of(ElementType t);
const char* dtype_of(ElementType t);

// Elements in a shape, or false when a dimension is negative or the product
// (times the element size) overflows.
bool shape_bytes(const std::vector<int64_t>& shape, ElementType t, size_t* bytes);

// A Python object that has no array form, and why ("... of dtype object ...").
struct NotAnArray : std::exception {
  std::string type_name;
  std::string message;
  const char* what() const noexcept override { return message.c_str(); }
};

// An array ready to cross to Elixir: C-contiguous bytes in native order.
struct ArrayExport {
  ElementType type;
  std::vector<int64_t> shape;  // row-major; empty for a 0-d array
  PyRef owner;                 // holds `data` alive: a memoryview over the object, or a copy
  const char* data = nullptr;
  size_t size = 0;
};

// Anything with the buffer protocol or __array__ (through numpy.asarray). No
// copy when the buffer is C-contiguous in native order and `copy` is false;
// else one copy. Throws NotAnArray, or PythonException from __array__.
ArrayExport export_array(PyObject* o, bool copy);

// Bytes a front end keeps alive for Python: `release(ctx)` runs when Python
// no longer uses them (GIL held; it must not need the GIL itself).
struct KeptBytes {
  const char* data = nullptr;
  size_t size = 0;
  void* ctx = nullptr;
  void (*release)(void*) = nullptr;
};

// A copy of `size` bytes at `data`, for a front end that cannot keep its own
// memory alive (the port's frame goes when the request ends). Aligned for any
// element type.
KeptBytes copy_bytes(const char* data, size_t size);

// The read-only array over `kept` (numpy.ndarray, or a memoryview with the
// element format and shape when numpy cannot be imported). `kept.size` must
// match the type and shape (the caller checked). Takes `kept`: released with
// the array, or at once on failure.
PyRef make_array(ElementType t, const std::vector<int64_t>& shape, KeptBytes kept);

// One column of a pandas DataFrame (to_columns): numeric columns are arrays,
// the others a Python list of values ready for the walker.
struct Column {
  PyRef name;
  bool is_array = false;
  ArrayExport array;
  PyRef values;
};

// The columns of `frame` (a pandas.DataFrame), its index first as a column
// when `index` is true. Throws PythonException (not a DataFrame, duplicate
// names) and NotAnArray.
std::vector<Column> dataframe_columns(PyObject* frame, bool index);

// %SnakeBridge.Array{data: binary, type: {kind, bits}, shape: tuple}.
template <class Sink>
void emit_array(Sink& sink, const ArrayExport& a) {
  sink.array(a.owner.get(), a.data, a.size, a.type, a.shape);
}

}  // namespace sb
