#include "arrays.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "errors.hpp"
#include "operations.hpp"
#include "values.hpp"

namespace sb {
namespace {

constexpr bool kLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

// numpy, if some code imported it already (borrowed), or null.
PyObject* numpy_if_loaded() { return PyDict_GetItemString(PyImport_GetModuleDict(), "numpy"); }

// numpy, imported once if it can be; null (no error set) when it cannot.
PyObject* numpy_module() {
  static PyObject* np = nullptr;
  static bool tried = false;
  if (!tried) {
    tried = true;
    np = PyImport_ImportModule("numpy");
    if (!np) PyErr_Clear();
  }
  return np;
}

bool is_ndarray(PyObject* o) {
  PyObject* np = numpy_if_loaded();
  if (!np) return false;
  PyRef ndarray = PyRef::steal(PyObject_GetAttrString(np, "ndarray"));
  if (!ndarray) {
    PyErr_Clear();
    return false;
  }
  int r = PyObject_IsInstance(o, ndarray.get());
  if (r < 0) PyErr_Clear();
  return r == 1;
}

// What the elements of `o` are, for an error: its numpy dtype, else the
// buffer's format.
std::string element_name(PyObject* o, const char* format) {
  if (PyRef dtype = PyRef::steal(PyObject_GetAttrString(o, "dtype"))) {
    if (PyRef s = PyRef::steal(PyObject_Str(dtype.get()))) {
      if (const char* text = PyUnicode_AsUTF8(s.get())) return std::string("dtype ") + text;
    }
  }
  PyErr_Clear();
  return std::string("format '") + (format ? format : "?") + "'";
}

[[noreturn]] void not_an_array(PyObject* o, std::string why) {
  NotAnArray e;
  e.type_name = type_name(o);
  e.message = std::move(why);
  throw e;
}

[[noreturn]] void not_numeric(PyObject* o, const char* format) {
  not_an_array(o, "a " + type_name(o) + " of " + element_name(o, format) +
                      " has no SnakeBridge.Array type: only bool, integer, float and complex elements do");
}

void swap_items(char* data, size_t size, size_t width) {
  for (size_t at = 0; at + width <= size; at += width) {
    for (size_t i = 0, j = width - 1; i < j; ++i, --j) std::swap(data[at + i], data[at + j]);
  }
}

// A read-only buffer over bytes a front end keeps alive, with the element
// format and shape of the array (what numpy.frombuffer and memoryview read).
struct ArrayBuffer {
  PyObject_HEAD
  KeptBytes kept;
  const char* format;
  Py_ssize_t itemsize;
  int ndim;
  Py_ssize_t* dims;  // ndim shape entries, then ndim strides (C order)
};

char g_empty = 0;  // the address of an empty buffer

int array_buffer_get(PyObject* self, Py_buffer* view, int flags) {
  auto* b = reinterpret_cast<ArrayBuffer*>(self);
  if (flags & PyBUF_WRITABLE) {
    PyErr_SetString(PyExc_BufferError, "an array from a SnakeBridge.Array is read-only");
    view->obj = nullptr;
    return -1;
  }
  bool nd = (flags & PyBUF_ND) == PyBUF_ND;
  view->buf = const_cast<char*>(b->kept.data ? b->kept.data : &g_empty);
  view->len = static_cast<Py_ssize_t>(b->kept.size);
  view->readonly = 1;
  // Without PyBUF_ND the consumer asks for plain bytes (numpy.frombuffer).
  view->itemsize = nd ? b->itemsize : 1;
  view->format = nd && (flags & PyBUF_FORMAT) ? const_cast<char*>(b->format) : nullptr;
  view->ndim = nd ? b->ndim : 1;
  view->shape = nd ? b->dims : nullptr;
  view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? b->dims + b->ndim : nullptr;
  view->suboffsets = nullptr;
  view->internal = nullptr;
  view->obj = Py_NewRef(self);
  return 0;
}

void array_buffer_dealloc(PyObject* self) {
  auto* b = reinterpret_cast<ArrayBuffer*>(self);
  if (b->kept.release) b->kept.release(b->kept.ctx);
  PyMem_Free(b->dims);
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyTypeObject* array_buffer_type() {
  static PyTypeObject* type = nullptr;
  if (type) return type;
  static PyType_Slot slots[] = {{Py_bf_getbuffer, reinterpret_cast<void*>(array_buffer_get)},
                                {Py_tp_dealloc, reinterpret_cast<void*>(array_buffer_dealloc)},
                                {Py_tp_doc, const_cast<char*>("The bytes of a SnakeBridge.Array (read-only).")},
                                {0, nullptr}};
  static PyType_Spec spec = {"snakebridge.ArrayBuffer", sizeof(ArrayBuffer), 0, Py_TPFLAGS_DEFAULT, slots};
  type = reinterpret_cast<PyTypeObject*>(check(PyType_FromSpec(&spec)).release());
  return type;
}

// numpy's dtype object for each element type, made once.
PyObject* numpy_dtype(PyObject* np, ElementType t) {
  static std::vector<std::pair<ElementType, PyObject*>> cache;
  for (auto& [type, dtype] : cache) {
    if (type == t) return dtype;
  }
  PyObject* dtype = check(PyObject_CallMethod(np, "dtype", "s", dtype_of(t))).release();
  cache.emplace_back(t, dtype);
  return dtype;
}

// obj.name(arg): PyObject_CallMethod(obj, name, "O", arg) would spread a tuple
// `arg` into several arguments.
PyRef call_method(PyObject* obj, const char* name, PyObject* arg) {
  PyRef method = check(PyUnicode_FromString(name));
  return check(PyObject_CallMethodOneArg(obj, method.get(), arg));
}

PyRef shape_tuple(const std::vector<int64_t>& shape) {
  PyRef t = check(PyTuple_New(static_cast<Py_ssize_t>(shape.size())));
  for (size_t i = 0; i < shape.size(); ++i) {
    PyTuple_SET_ITEM(t.get(), static_cast<Py_ssize_t>(i), check(PyLong_FromLongLong(shape[i])).release());
  }
  return t;
}

}  // namespace

bool valid_element_type(ElementType t) {
  switch (t.kind) {
    case 's':
    case 'u':
      return t.bits == 8 || t.bits == 16 || t.bits == 32 || t.bits == 64;
    case 'f':
      return t.bits == 16 || t.bits == 32 || t.bits == 64;
    case 'c':
      return t.bits == 64 || t.bits == 128;
    default:
      return false;
  }
}

bool element_type_of_format(const char* format, size_t itemsize, ElementType* out, bool* swap) {
  std::string_view f = format ? format : "B";
  char order = '@';
  if (!f.empty() && std::strchr("@=<>!", f[0])) {
    order = f[0];
    f.remove_prefix(1);
  }
  int bits = static_cast<int>(itemsize * 8);
  ElementType t;
  if (f == "?") {
    if (itemsize != 1) return false;
    t = {'u', 8};
  } else if (f.size() == 1 && std::strchr("bhilqn", f[0])) {
    t = {'s', bits};
  } else if (f.size() == 1 && std::strchr("BHILQN", f[0])) {
    t = {'u', bits};
  } else if (f == "e" || f == "f" || f == "d") {
    t = {'f', f == "e" ? 16 : f == "f" ? 32 : 64};
  } else if (f == "Zf" || f == "Zd") {
    t = {'c', f == "Zf" ? 64 : 128};
  } else {
    return false;
  }
  if (!valid_element_type(t) || t.bits != bits) return false;
  *out = t;
  *swap = t.bits > 8 && ((order == '<' && !kLittleEndian) || ((order == '>' || order == '!') && kLittleEndian));
  return true;
}

namespace {

// Every element type with its buffer format and numpy dtype string.
struct TypeNames {
  ElementType type;
  const char* format;
  const char* dtype;
};
constexpr TypeNames kTypeNames[] = {
    {{'s', 8}, "b", "i1"},   {{'s', 16}, "h", "i2"}, {{'s', 32}, "i", "i4"},   {{'s', 64}, "q", "i8"},
    {{'u', 8}, "B", "u1"},   {{'u', 16}, "H", "u2"}, {{'u', 32}, "I", "u4"},   {{'u', 64}, "Q", "u8"},
    {{'f', 16}, "e", "f2"},  {{'f', 32}, "f", "f4"}, {{'f', 64}, "d", "f8"},   {{'c', 64}, "Zf", "c8"},
    {{'c', 128}, "Zd", "c16"},
};

const TypeNames& names_of(ElementType t) {
  for (const TypeNames& n : kTypeNames) {
    if (n.type == t) return n;
  }
  return kTypeNames[0];  // never: callers pass valid types
}

}  // namespace

const char* format_of(ElementType t) { return names_of(t).format; }
const char* dtype_of(ElementType t) { return names_of(t).dtype; }

bool shape_bytes(const std::vector<int64_t>& shape, ElementType t, size_t* bytes) {
  // Within Py_ssize_t, which is what Python can index.
  constexpr uint64_t kMax = static_cast<uint64_t>(PY_SSIZE_T_MAX);
  uint64_t n = t.bytes();
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d == 0) empty = true;
    else if (!empty && n > kMax / static_cast<uint64_t>(d)) return false;
    else if (!empty) n *= static_cast<uint64_t>(d);
  }
  *bytes = empty ? 0 : static_cast<size_t>(n);
  return true;
}

ArrayExport export_array(PyObject* o, bool copy) {
  PyRef source = PyRef::borrow(o);
  if (!PyObject_CheckBuffer(o)) {
    if (!PyObject_HasAttrString(o, "__array__")) {
      not_an_array(o, "a " + type_name(o) + " is not an array: it has neither the buffer protocol nor __array__");
    }
    PyObject* np = numpy_module();
    if (!np) not_an_array(o, "a " + type_name(o) + " has __array__, but numpy cannot be imported");
    source = call_method(np, "asarray", o);
  }
  PyRef view = PyRef::steal(PyMemoryView_FromObject(source.get()));
  if (!view) {  // numpy refuses a buffer of datetime64, str...: named by its dtype
    PyErr_Clear();
    not_numeric(source.get(), nullptr);
  }
  const Py_buffer* b = PyMemoryView_GET_BUFFER(view.get());
  ElementType t;
  bool swap = false;
  if (!element_type_of_format(b->format, static_cast<size_t>(b->itemsize), &t, &swap)) {
    not_numeric(source.get(), b->format);
  }
  ArrayExport a;
  a.type = t;
  for (int i = 0; i < b->ndim; ++i) a.shape.push_back(b->shape ? b->shape[i] : b->len / b->itemsize);
  bool contiguous = PyBuffer_IsContiguous(b, 'C');
  if (contiguous && !swap && !copy) {
    a.owner = view;
    a.data = static_cast<const char*>(b->buf);
    a.size = static_cast<size_t>(b->len);
    return a;
  }
  if ((!contiguous || swap) && is_ndarray(source.get())) {
    // numpy gathers strides and swaps bytes in one pass, much faster than an
    // item at a time; its result is a fresh contiguous native array.
    PyRef native = check(PyObject_CallMethod(numpy_if_loaded(), "ascontiguousarray", "Os", source.get(), dtype_of(t)));
    return export_array(native.get(), false);
  }
  PyRef bytes = check(PyBytes_FromStringAndSize(nullptr, b->len));
  char* out = PyBytes_AS_STRING(bytes.get());
  check_status(PyBuffer_ToContiguous(out, b, b->len, 'C'));
  if (swap) swap_items(out, static_cast<size_t>(b->len), t.kind == 'c' ? t.bytes() / 2 : t.bytes());
  a.owner = bytes;
  a.data = out;
  a.size = static_cast<size_t>(b->len);
  return a;
}

KeptBytes copy_bytes(const char* data, size_t size) {
  // Large copies on huge pages, as numpy does for its own arrays: a 64 MiB
  // copy into fresh 4 KiB pages spends most of its time in 16,384 page faults.
  constexpr size_t kHuge = 2 << 20;
  size_t align = size >= 2 * kHuge ? kHuge : 64;
  size_t rounded = (size + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded ? rounded : align);
  if (!p) throw std::bad_alloc();
  if (align == kHuge) madvise(p, rounded, MADV_HUGEPAGE);
  if (size) std::memcpy(p, data, size);
  KeptBytes k;
  k.data = static_cast<const char*>(p);
  k.size = size;
  k.ctx = p;
  k.release = [](void* ctx) { std::free(ctx); };
  return k;
}

PyRef make_array(ElementType t, const std::vector<int64_t>& shape, KeptBytes kept) {
  struct Owned {  // `kept` until the buffer object owns it
    KeptBytes* k;
    ~Owned() {
      if (k && k->release) k->release(k->ctx);
    }
  } owned{&kept};
  PyTypeObject* type = array_buffer_type();
  auto* dims = static_cast<Py_ssize_t*>(PyMem_Malloc(sizeof(Py_ssize_t) * (2 * shape.size() + 1)));
  if (!dims) throw std::bad_alloc();
  Py_ssize_t stride = static_cast<Py_ssize_t>(t.bytes());
  for (size_t i = shape.size(); i-- > 0;) {
    dims[i] = static_cast<Py_ssize_t>(shape[i]);
    dims[shape.size() + i] = stride;
    stride *= dims[i];
  }
  auto* b = PyObject_New(ArrayBuffer, type);
  if (!b) {
    PyMem_Free(dims);
    throw_python_error();
  }
  b->kept = kept;
  owned.k = nullptr;
  b->format = format_of(t);
  b->itemsize = static_cast<Py_ssize_t>(t.bytes());
  b->ndim = static_cast<int>(shape.size());
  b->dims = dims;
  PyRef buffer = PyRef::steal(reinterpret_cast<PyObject*>(b));
  PyObject* np = numpy_module();
  if (!np) return check(PyMemoryView_FromObject(buffer.get()));
  PyRef flat = check(PyObject_CallMethod(np, "frombuffer", "OO", buffer.get(), numpy_dtype(np, t)));
  if (shape.size() == 1) return flat;
  return call_method(flat.get(), "reshape", shape_tuple(shape).get());
}

std::vector<Column> dataframe_columns(PyObject* frame, bool index) {
  PyRef helper = import_helper("snakebridge_columns");
  PyRef items = check(PyObject_CallMethod(helper.get(), "columns", "OO", frame, index ? Py_True : Py_False));
  std::vector<Column> columns;
  PyRef fast = check(PySequence_Tuple(items.get()));
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fast.get()); ++i) {
    PyObject* item = PyTuple_GET_ITEM(fast.get(), i);  // (name, is_array, values)
    Column c;
    c.name = PyRef::borrow(PyTuple_GET_ITEM(item, 0));
    c.is_array = PyObject_IsTrue(PyTuple_GET_ITEM(item, 1)) == 1;
    if (c.is_array) c.array = export_array(PyTuple_GET_ITEM(item, 2), false);
    else c.values = PyRef::borrow(PyTuple_GET_ITEM(item, 2));
    columns.push_back(std::move(c));
  }
  return columns;
}

}  // namespace sb
