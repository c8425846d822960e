// prebuilt_bytes.hpp: bytes objects made without the GIL, before a request's
// hand-over, and taken by the conversion on the Python thread.
#include "../core/prebuilt_bytes.hpp"

#include <string>
#include <thread>

#include "test_support.hpp"

using namespace sb;
using namespace sbtest;

namespace {
std::string large(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) & 0xFF);
  return s;
}
}  // namespace

TEST_CASE("bytes_without_gil makes, on a thread without the GIL, the bytes Python would make",
          "[prebuilt_bytes]") {
  std::string data = large(kPrebuildLeast + 12345);
  PyObject* made = nullptr;
  std::thread([&] { made = bytes_without_gil(data.data(), data.size()); }).join();
  REQUIRE(made != nullptr);
  Gil gil;
  PyRef reference = check(PyBytes_FromStringAndSize(data.data(), static_cast<Py_ssize_t>(data.size())));
  CHECK(PyBytes_CheckExact(made));
  CHECK(py_equal(made, reference.get()));
  CHECK(PyObject_Hash(made) == PyObject_Hash(reference.get()));
  CHECK(PyBytes_AS_STRING(made)[data.size()] == '\0');
  // Python uses it as any bytes object (slices, dict keys, decode), then frees it.
  PyRef g = new_globals();
  check_status(PyDict_SetItemString(g.get(), "b", made));
  Py_DECREF(made);
  py_exec("d = {b: 1}\nn = len(b[1:])\nkey = bytes(b) in d\nb = None\nd = None", g.get());
  CHECK(py_int(py_eval("n", g.get()).get()) == static_cast<long long>(data.size() - 1));
  CHECK(py_eval("key", g.get()).get() == Py_True);
}

TEST_CASE("bytes_without_gil steps aside while tracemalloc has replaced the allocators", "[prebuilt_bytes]") {
  std::string data = large(kPrebuildLeast);
  {
    Gil gil;
    PyRef g = new_globals();
    py_exec("import tracemalloc\ntracemalloc.start()", g.get());
  }
  CHECK(bytes_without_gil(data.data(), data.size()) == nullptr);
  {
    Gil gil;
    PyRef g = new_globals();
    py_exec("import tracemalloc\ntracemalloc.stop()", g.get());
  }
  PyObject* made = bytes_without_gil(data.data(), data.size());
  CHECK(made != nullptr);
  Gil gil;
  Py_XDECREF(made);
}

TEST_CASE("PrebuiltBytes: the conversion takes each object once, by its data; the rest is released",
          "[prebuilt_bytes]") {
  std::string a = large(kPrebuildLeast), b = large(kPrebuildLeast + 1);
  PrebuiltBytes prebuilt;
  prebuilt.add(a.data(), a.size(), bytes_without_gil(a.data(), a.size()));
  prebuilt.add(a.data(), a.size(), bytes_without_gil(a.data(), a.size()));  // the same binary twice
  prebuilt.add(b.data(), b.size(), bytes_without_gil(b.data(), b.size()));
  Gil gil;
  CHECK(take_prebuilt_bytes(a.data(), a.size()) == nullptr);  // not in use on this thread
  {
    UsePrebuiltBytes use(&prebuilt);
    PyObject* first = take_prebuilt_bytes(a.data(), a.size());
    PyObject* second = take_prebuilt_bytes(a.data(), a.size());
    REQUIRE(first != nullptr);
    REQUIRE(second != nullptr);
    CHECK(first != second);
    CHECK(take_prebuilt_bytes(a.data(), a.size()) == nullptr);
    CHECK(take_prebuilt_bytes(a.data(), a.size() - 1) == nullptr);  // another size: not this one
    Py_DECREF(first);
    Py_DECREF(second);
  }
  CHECK_FALSE(prebuilt.empty());  // b was not taken
  size_t before = pending_releases();
  prebuilt.release_rest();
  CHECK(prebuilt.empty());
  CHECK(pending_releases() == before + 1);
  drain_released();
}
