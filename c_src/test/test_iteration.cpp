// iteration.hpp: pulling bounded batches from Python iterators and closing them.
#include "../core/iteration.hpp"

#include <string>
#include <vector>

#include "test_support.hpp"

using namespace sb;
using namespace sbtest;
using Catch::Matchers::Contains;

namespace {

std::vector<long long> values(const Batch& b) {
  std::vector<long long> out;
  for (const PyRef& r : b.items) out.push_back(py_int(r.get()));
  return out;
}

PyRef iteration_env() {
  PyRef g = new_globals("sbtest.iteration");
  py_exec(
      "produced = 0\n"
      "def counting(n):\n"
      "    global produced\n"
      "    for i in range(n):\n"
      "        produced += 1\n"
      "        yield i\n"
      "def failing():\n"
      "    yield 1\n"
      "    yield 2\n"
      "    raise ValueError('broke after two')\n"
      "def leaks_stop():\n"
      "    yield 1\n"
      "    raise StopIteration\n"
      "class Countdown:\n"
      "    def __init__(self, n): self.n = n\n"
      "    def __iter__(self): return self\n"
      "    def __next__(self):\n"
      "        if self.n == 0: raise StopIteration\n"
      "        self.n -= 1\n"
      "        return self.n\n"
      "cleaned = []\n"
      "def with_cleanup():\n"
      "    try:\n"
      "        yield 1\n"
      "        yield 2\n"
      "    finally:\n"
      "        cleaned.append('done')\n"
      "def bad_cleanup():\n"
      "    try:\n"
      "        yield 1\n"
      "    finally:\n"
      "        raise KeyError('cleanup failed')\n"
      "def stubborn():\n"
      "    try:\n"
      "        yield 1\n"
      "    finally:\n"
      "        yield 2\n",
      g.get());
  return g;
}

}  // namespace

TEST_CASE("next_batch pulls at most `max` items at a time", "[iteration]") {
  Gil gil;
  PyRef g = iteration_env();
  PyRef it = py_eval("iter(range(10))", g.get());

  Batch b1 = next_batch(it.get(), 4);
  CHECK(b1.end == BatchEnd::More);
  CHECK(values(b1) == std::vector<long long>{0, 1, 2, 3});
  Batch b2 = next_batch(it.get(), 4);
  CHECK(b2.end == BatchEnd::More);
  CHECK(values(b2) == std::vector<long long>{4, 5, 6, 7});
  Batch b3 = next_batch(it.get(), 4);
  CHECK(b3.end == BatchEnd::Done);
  CHECK(values(b3) == std::vector<long long>{8, 9});
  Batch b4 = next_batch(it.get(), 4);
  CHECK(b4.end == BatchEnd::Done);
  CHECK(b4.items.empty());
  CHECK(PyErr_Occurred() == nullptr);
}

TEST_CASE("next_batch ending exactly on a batch boundary reports Done on the next call", "[iteration]") {
  Gil gil;
  PyRef it = py_eval("iter([1, 2])");
  Batch b1 = next_batch(it.get(), 2);
  CHECK(b1.end == BatchEnd::More);
  CHECK(values(b1) == std::vector<long long>{1, 2});
  Batch b2 = next_batch(it.get(), 2);
  CHECK(b2.end == BatchEnd::Done);
  CHECK(b2.items.empty());
}

TEST_CASE("next_batch never runs the producer ahead of the batch", "[iteration]") {
  Gil gil;
  PyRef g = iteration_env();
  PyRef gen = py_eval("counting(100)", g.get());
  CHECK(py_int(PyDict_GetItemString(g.get(), "produced")) == 0);
  Batch b = next_batch(gen.get(), 3);
  CHECK(values(b) == std::vector<long long>{0, 1, 2});
  CHECK(py_int(PyDict_GetItemString(g.get(), "produced")) == 3);

  Batch none = next_batch(gen.get(), 0);  // asks for nothing: runs nothing
  CHECK(none.end == BatchEnd::More);
  CHECK(none.items.empty());
  CHECK(py_int(PyDict_GetItemString(g.get(), "produced")) == 3);
}

TEST_CASE("next_batch works with iterators written as classes", "[iteration]") {
  Gil gil;
  PyRef g = iteration_env();
  PyRef it = py_eval("Countdown(3)", g.get());
  Batch b = next_batch(it.get(), 10);
  CHECK(b.end == BatchEnd::Done);
  CHECK(values(b) == std::vector<long long>{2, 1, 0});
  CHECK(PyErr_Occurred() == nullptr);
}

TEST_CASE("next_batch keeps the items produced before an error", "[iteration]") {
  Gil gil;
  PyRef g = iteration_env();

  SECTION("an exception raised by the generator") {
    PyRef gen = py_eval("failing()", g.get());
    Batch b = next_batch(gen.get(), 10);
    CHECK(b.end == BatchEnd::Failed);
    CHECK(values(b) == std::vector<long long>{1, 2});
    CHECK(b.error.type == "ValueError");
    CHECK(b.error.message == "broke after two");
    CHECK_THAT(b.error.traceback, Contains("in failing"));
  }
  SECTION("a StopIteration leaking out of a generator is a RuntimeError (PEP 479)") {
    PyRef gen = py_eval("leaks_stop()", g.get());
    Batch b = next_batch(gen.get(), 10);
    CHECK(b.end == BatchEnd::Failed);
    CHECK(values(b) == std::vector<long long>{1});
    CHECK(b.error.type == "RuntimeError");
  }
  SECTION("something that is not an iterator") {
    PyRef list = py_eval("[1, 2]", g.get());
    Batch b = next_batch(list.get(), 10);
    CHECK(b.end == BatchEnd::Failed);
    CHECK(b.items.empty());
    CHECK(b.error.type == "TypeError");
    CHECK(b.error.message == "'list' object is not an iterator");
  }
  CHECK(PyErr_Occurred() == nullptr);
}

TEST_CASE("next_batch hands out owned references", "[iteration]") {
  Gil gil;
  PyRef g = new_globals();
  py_exec("obj = object()\nit = iter([obj])\n", g.get());
  PyObject* obj = PyDict_GetItemString(g.get(), "obj");
  Py_ssize_t before = Py_REFCNT(obj);  // globals + the list
  Batch b = next_batch(PyDict_GetItemString(g.get(), "it"), 1);
  REQUIRE(b.items.size() == 1);
  CHECK(b.items[0].get() == obj);
  CHECK(Py_REFCNT(obj) == before + 1);
  b.items.clear();
  CHECK(Py_REFCNT(obj) == before);
}

TEST_CASE("close_iterator runs a generator's cleanup", "[iteration]") {
  Gil gil;
  PyRef g = iteration_env();
  PythonErrorInfo error;

  SECTION("finally blocks run and the generator is finished") {
    PyRef gen = py_eval("with_cleanup()", g.get());
    Batch b = next_batch(gen.get(), 1);
    REQUIRE(values(b) == std::vector<long long>{1});
    CHECK(py_repr(PyDict_GetItemString(g.get(), "cleaned")) == "[]");
    CHECK(close_iterator(gen.get(), &error));
    CHECK(py_repr(PyDict_GetItemString(g.get(), "cleaned")) == "['done']");
    Batch after = next_batch(gen.get(), 5);
    CHECK(after.end == BatchEnd::Done);
    CHECK(after.items.empty());
    CHECK(close_iterator(gen.get(), &error));  // closing twice is fine
  }
  SECTION("an error raised while closing is returned, not thrown") {
    PyRef gen = py_eval("bad_cleanup()", g.get());
    REQUIRE(next_batch(gen.get(), 1).items.size() == 1);
    bool ok = true;
    CHECK_NOTHROW(ok = close_iterator(gen.get(), &error));
    CHECK_FALSE(ok);
    CHECK(error.type == "KeyError");
    CHECK(error.message == "'cleanup failed'");
  }
  SECTION("a generator that yields from its finally") {
    PyRef gen = py_eval("stubborn()", g.get());
    REQUIRE(next_batch(gen.get(), 1).items.size() == 1);
    CHECK_FALSE(close_iterator(gen.get(), &error));
    CHECK(error.type == "RuntimeError");
    CHECK_THAT(error.message, Contains("ignored GeneratorExit"));
  }
  SECTION("iterators without close() need nothing") {
    PyRef it = py_eval("iter([1, 2, 3])", g.get());
    CHECK(close_iterator(it.get(), &error));
    CHECK(values(next_batch(it.get(), 5)) == std::vector<long long>{1, 2, 3});  // untouched
  }
  CHECK(PyErr_Occurred() == nullptr);
}
