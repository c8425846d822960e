// arrays.hpp: element types of buffer formats, shapes, exports of Python
// buffers (what is shared, what is copied) and the arrays Elixir data becomes.
// Expectations come from numpy itself (tobytes, shape, dtype).
#include "../core/arrays.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "test_support.hpp"

using namespace sb;
using namespace sbtest;
using Catch::Matchers::Contains;

namespace {

PyRef arrays_env() {
  PyRef g = new_globals("sbtest.arrays");
  py_exec("import numpy as np, array\n", g.get());
  return g;
}

std::string bytes_of(PyObject* o) {
  REQUIRE(PyBytes_Check(o));
  return std::string(PyBytes_AS_STRING(o), static_cast<size_t>(PyBytes_GET_SIZE(o)));
}

std::vector<int64_t> shape_of(PyObject* tuple) {
  std::vector<int64_t> shape;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); ++i) shape.push_back(PyLong_AsLongLong(PyTuple_GET_ITEM(tuple, i)));
  return shape;
}

// KeptBytes that record their release.
KeptBytes counted(const std::string& bytes, int* released) {
  KeptBytes k;
  k.data = bytes.data();
  k.size = bytes.size();
  k.ctx = released;
  k.release = [](void* c) { ++*static_cast<int*>(c); };
  return k;
}

}  // namespace

TEST_CASE("element_type_of_format: every numeric PEP 3118 code, by item size; byte order", "[arrays]") {
  struct Case {
    const char* format;
    size_t itemsize;
    ElementType type;
  };
  const Case cases[] = {
      {"b", 1, {'s', 8}},   {"h", 2, {'s', 16}},   {"i", 4, {'s', 32}},  {"l", 8, {'s', 64}},  {"q", 8, {'s', 64}},
      {"n", 8, {'s', 64}},  {"B", 1, {'u', 8}},    {"H", 2, {'u', 16}},  {"I", 4, {'u', 32}},  {"L", 8, {'u', 64}},
      {"Q", 8, {'u', 64}},  {"?", 1, {'u', 8}},    {"e", 2, {'f', 16}},  {"f", 4, {'f', 32}},  {"d", 8, {'f', 64}},
      {"Zf", 8, {'c', 64}}, {"Zd", 16, {'c', 128}}, {"<l", 4, {'s', 32}}, {"=d", 8, {'f', 64}}, {"@B", 1, {'u', 8}},
      {nullptr, 1, {'u', 8}},
  };
  for (const Case& c : cases) {
    INFO((c.format ? c.format : "(null)") << " " << c.itemsize);
    ElementType t;
    bool swap = true;
    REQUIRE(element_type_of_format(c.format, c.itemsize, &t, &swap));
    CHECK(t == c.type);
    CHECK_FALSE(swap);
  }
  ElementType t;
  bool swap = false;
  REQUIRE(element_type_of_format(">d", 8, &t, &swap));
  CHECK(swap);
  REQUIRE(element_type_of_format("!h", 2, &t, &swap));
  CHECK(swap);
  REQUIRE(element_type_of_format(">b", 1, &t, &swap));
  CHECK_FALSE(swap);  // one byte has no order

  // Objects, text, pointers, records, long double, sizes that do not match.
  for (const char* bad : {"O", "w", "u", "c", "s", "P", "g", "T{i:a:}", "2d", "dd", "x", "", "Z", "Zg", "<"}) {
    INFO(bad);
    CHECK_FALSE(element_type_of_format(bad, 8, &t, &swap));
  }
  CHECK_FALSE(element_type_of_format("d", 4, &t, &swap));
  CHECK_FALSE(element_type_of_format("i", 3, &t, &swap));
  CHECK_FALSE(element_type_of_format("?", 2, &t, &swap));
}

TEST_CASE("valid_element_type, format_of and dtype_of agree for every Nx type", "[arrays]") {
  Gil gil;
  PyRef g = arrays_env();
  int valid = 0;
  for (char kind : {'s', 'u', 'f', 'c', 'b', 'x'}) {
    for (int bits : {0, 8, 16, 32, 64, 128, 256}) {
      ElementType t{kind, bits};
      if (!valid_element_type(t)) continue;
      ++valid;
      INFO(kind << bits);
      // The buffer format reads back as the type; numpy's dtype has its size and kind.
      ElementType back;
      bool swap;
      REQUIRE(element_type_of_format(format_of(t), t.bytes(), &back, &swap));
      CHECK(back == t);
      PyRef dtype = py_eval(std::string("np.dtype('") + dtype_of(t) + "')", g.get());
      CHECK(py_int(PyRef::steal(PyObject_GetAttrString(dtype.get(), "itemsize")).get()) == static_cast<long long>(t.bytes()));
      std::string numpy_kind = py_str(PyRef::steal(PyObject_GetAttrString(dtype.get(), "kind")).get());
      CHECK(numpy_kind == std::string(1, kind == 's' ? 'i' : kind));
    }
  }
  CHECK(valid == 13);
}

TEST_CASE("shape_bytes: the product of the dimensions, refused when negative or past Py_ssize_t", "[arrays]") {
  size_t n = 0;
  CHECK(shape_bytes({}, {'f', 64}, &n));
  CHECK(n == 8);
  CHECK(shape_bytes({2, 3, 4}, {'s', 16}, &n));
  CHECK(n == 48);
  CHECK(shape_bytes({0, 1LL << 62}, {'f', 64}, &n));  // empty: any other dimension
  CHECK(n == 0);
  CHECK_FALSE(shape_bytes({-1}, {'u', 8}, &n));
  CHECK_FALSE(shape_bytes({1LL << 40, 1LL << 40}, {'u', 8}, &n));
  CHECK_FALSE(shape_bytes({1LL << 61}, {'f', 64}, &n));
}

TEST_CASE("export_array: C-contiguous buffers are shared, others copied once in C order and native bytes",
          "[arrays]") {
  Gil gil;
  PyRef g = arrays_env();
  struct Case {
    const char* expr;
    bool shared;
  };
  const Case cases[] = {
      {"np.arange(12.0).reshape(3, 4)", true},
      {"np.arange(24, dtype='int16').reshape(2, 3, 4)", true},
      {"np.float32(2.5)", true},
      {"np.zeros((0, 4))", true},
      {"np.arange(12.0).reshape(3, 4).T", false},
      {"np.arange(30, dtype='uint8')[::-3]", false},
      {"np.arange(6, dtype='>f8')", false},
      {"memoryview(array.array('i', range(10)))[::2]", false},
      {"memoryview(array.array('h', range(10)))", true},
      {"b'abc'", true},
  };
  for (const Case& c : cases) {
    INFO(c.expr);
    PyRef x = py_eval(c.expr, g.get());
    PyDict_SetItemString(g.get(), "x", x.get());
    PyRef native = py_eval(
        "(lambda a: a.astype(a.dtype.newbyteorder('=')))"
        "(np.asarray(memoryview(x)) if isinstance(x, bytes) else np.asarray(x))",
        g.get());
    ArrayExport a = export_array(x.get(), false);
    PyDict_SetItemString(g.get(), "n", native.get());
    CHECK(std::string(a.data, a.size) == bytes_of(py_eval("n.tobytes()", g.get()).get()));
    CHECK(a.shape == shape_of(py_eval("n.shape", g.get()).get()));
    CHECK(std::string(1, a.type.kind) + std::to_string(a.type.bits) ==
          py_str(py_eval("{'b': 'u', 'i': 's'}.get(n.dtype.kind, n.dtype.kind) + str(n.dtype.itemsize * 8)", g.get()).get()));
    // Shared: the data is the object's own memory.
    bool shared = a.data == static_cast<const char*>(PyMemoryView_GET_BUFFER(PyRef::steal(PyMemoryView_FromObject(x.get())).get())->buf);
    CHECK(shared == c.shared);
    // copy: never the object's memory.
    ArrayExport copied = export_array(x.get(), true);
    CHECK(std::string(copied.data, copied.size) == std::string(a.data, a.size));
    if (a.size > 0) CHECK(copied.data != a.data);
  }
}

TEST_CASE("export_array: the export keeps the object alive; arrays of other elements are NotAnArray naming the dtype",
          "[arrays]") {
  Gil gil;
  PyRef g = arrays_env();
  py_exec("import weakref\nx = np.arange(1000.0)\nr = weakref.ref(x)\n", g.get());
  ArrayExport a = export_array(PyDict_GetItemString(g.get(), "x"), false);
  py_exec("del x\n", g.get());
  CHECK(py_eval("r() is not None", g.get()).get() == Py_True);
  CHECK(reinterpret_cast<const double*>(a.data)[999] == 999.0);
  a.owner = PyRef();
  CHECK(py_eval("r() is None", g.get()).get() == Py_True);

  for (const char* expr : {"np.array([1, 'a'], dtype=object)", "np.array(['ab'])", "np.array(['2024-01-01'], dtype='M8[D]')",
                           "np.zeros(2, dtype=[('a', 'i4')])", "np.zeros(2, dtype=np.longdouble)"}) {
    INFO(expr);
    PyRef x = py_eval(expr, g.get());
    PyDict_SetItemString(g.get(), "x", x.get());
    std::string dtype = py_str(py_eval("str(x.dtype)", g.get()).get());
    try {
      export_array(x.get(), false);
      FAIL("no error");
    } catch (const NotAnArray& e) {
      CHECK(e.type_name == "numpy.ndarray");
      CHECK_THAT(e.message, Contains("of dtype " + dtype + " has no SnakeBridge.Array type"));
    }
    CHECK_FALSE(PyErr_Occurred());
  }
  CHECK_THROWS_AS(export_array(py_eval("object()").get(), false), NotAnArray);
  CHECK_THROWS_AS(export_array(py_eval("array.array('u', 'ab')", g.get()).get(), false), NotAnArray);
}

TEST_CASE("make_array: a read-only numpy array over the kept bytes, released with it", "[arrays]") {
  Gil gil;
  PyRef g = arrays_env();
  std::vector<double> values = {1.5, -2.0, 3.25, 4.0, 0.5, 6.0};
  std::string bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(double));
  int released = 0;
  {
    PyRef a = make_array({'f', 64}, {2, 3}, counted(bytes, &released));
    PyDict_SetItemString(g.get(), "a", a.get());
    CHECK(py_str(py_eval("repr((type(a).__name__, a.dtype.str[1:], a.shape, a.flags.writeable, a.sum(axis=1).tolist()))", g.get()).get()) ==
          "('ndarray', 'f8', (2, 3), False, [2.75, 10.5])");
    PyRef b = PyRef::steal(PyBytes_FromStringAndSize(bytes.data(), static_cast<Py_ssize_t>(bytes.size())));
    PyDict_SetItemString(g.get(), "b", b.get());
    CHECK(py_eval("a.tobytes() == b", g.get()).get() == Py_True);
    // Writing through numpy, or asking for a writable buffer, fails.
    CHECK_THROWS_AS(py_exec("a[0, 0] = 1.0", g.get()), PythonException);
    CHECK_THROWS_AS(py_eval("np.frombuffer(a, dtype='u1').__setitem__(0, 1)", g.get()), PythonException);
    // memoryview over the same buffer: the element format and shape.
    py_exec("b = a\nwhile type(b).__name__ != 'ArrayBuffer':\n    b = b.base\nm = memoryview(b)\n", g.get());
    CHECK(py_str(py_eval("repr((m.format, m.shape, m.readonly))", g.get()).get()) == "('d', (2, 3), True)");
    py_exec("m.release()\ndel b, m\n", g.get());
    PyDict_DelItemString(g.get(), "a");
    CHECK(released == 0);  // `a` itself is still held here
  }
  CHECK(released == 1);

  // 0-d and empty shapes; every type's dtype.
  const std::string seven("\x07\0\0\0", 4), none;
  PyRef scalar = make_array({'s', 32}, {}, counted(seven, &released));
  PyDict_SetItemString(g.get(), "s", scalar.get());
  CHECK(py_str(py_eval("repr((s.shape, s.dtype.str[1:], int(s)))", g.get()).get()) == "((), 'i4', 7)");
  PyRef empty = make_array({'c', 128}, {0, 3}, counted(none, &released));
  PyDict_SetItemString(g.get(), "e", empty.get());
  CHECK(py_str(py_eval("repr((e.shape, e.dtype.str[1:]))", g.get()).get()) == "((0, 3), 'c16')");
  PyDict_DelItemString(g.get(), "s");
  PyDict_DelItemString(g.get(), "e");
  scalar = PyRef();
  empty = PyRef();
  CHECK(released == 3);

  // copy_bytes: an aligned copy that outlives its source.
  KeptBytes k = copy_bytes(bytes.data(), bytes.size());
  CHECK(reinterpret_cast<uintptr_t>(k.data) % 64 == 0);
  CHECK(std::memcmp(k.data, bytes.data(), bytes.size()) == 0);
  k.release(k.ctx);
}
