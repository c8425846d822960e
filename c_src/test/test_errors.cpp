// errors.hpp: Python exceptions captured as C++ data, never left pending.
#include "../core/errors.hpp"

#include "../core/operations.hpp"
#include "test_support.hpp"

using namespace sb;
using namespace sbtest;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// Runs `code` expecting it to raise; returns with the exception pending (GIL held).
void raise_from(const std::string& code, PyObject* globals) {
  PyObject* r = PyRun_String(code.c_str(), Py_file_input, globals, globals);
  Py_XDECREF(r);
  REQUIRE(r == nullptr);
  REQUIRE(PyErr_Occurred() != nullptr);
}

}  // namespace

TEST_CASE("fetch_python_error describes a ValueError raised in Python code", "[errors]") {
  Gil gil;
  PyRef g = new_globals();
  raise_from(
      "def boom(x):\n"
      "    raise ValueError('bad value ' + str(x))\n"
      "boom(42)\n",
      g.get());

  PythonErrorInfo info = fetch_python_error();
  CHECK(PyErr_Occurred() == nullptr);
  CHECK(info.type == "ValueError");
  CHECK(info.qualified_type == "builtins.ValueError");
  CHECK(info.message == "bad value 42");
  CHECK_THAT(info.traceback, StartsWith("Traceback (most recent call last):"));
  CHECK_THAT(info.traceback, Contains("in boom"));
  CHECK_THAT(info.traceback, Contains("File \"<string>\", line 2, in boom"));
  CHECK_THAT(info.traceback, Contains("ValueError: bad value 42"));
}

TEST_CASE("fetch_python_error normalises an exception set from C", "[errors]") {
  Gil gil;
  // PyErr_SetObject stores an unnormalised (type, value) pair; KeyError's str() is the key's repr.
  PyRef key = check(PyUnicode_FromString("missing"));
  PyErr_SetObject(PyExc_KeyError, key.get());
  PythonErrorInfo info = fetch_python_error();
  CHECK(PyErr_Occurred() == nullptr);
  CHECK(info.type == "KeyError");
  CHECK(info.qualified_type == "builtins.KeyError");
  CHECK(info.message == "'missing'");
  CHECK_THAT(info.traceback, Contains("KeyError: 'missing'"));
}

TEST_CASE("fetch_python_error qualifies exception classes defined in modules", "[errors]") {
  Gil gil;

  SECTION("json.decoder.JSONDecodeError from json.loads of bad input") {
    PyRef json = check(PyImport_ImportModule("json"));
    PyObject* r = PyObject_CallMethod(json.get(), "loads", "s", "{bad json");
    REQUIRE(r == nullptr);
    PythonErrorInfo info = fetch_python_error();
    CHECK(PyErr_Occurred() == nullptr);
    CHECK(info.type == "JSONDecodeError");
    CHECK(info.qualified_type == "json.decoder.JSONDecodeError");
    CHECK_THAT(info.message, StartsWith("Expecting property name enclosed in double quotes"));
    CHECK_THAT(info.message, Contains("line 1 column 2 (char 1)"));
    CHECK_THAT(info.traceback, Contains("json/decoder.py"));
    CHECK_THAT(info.traceback, Contains("json.decoder.JSONDecodeError: Expecting property name"));
  }

  SECTION("an exception type created in C (zlib.error)") {
    PyRef zlib = check(PyImport_ImportModule("zlib"));
    PyObject* r = PyObject_CallMethod(zlib.get(), "decompress", "y", "definitely not zlib");
    REQUIRE(r == nullptr);
    PythonErrorInfo info = fetch_python_error();
    CHECK(PyErr_Occurred() == nullptr);
    CHECK(info.type == "error");
    CHECK(info.qualified_type == "zlib.error");
    CHECK_THAT(info.message, Contains("Error -3"));
  }

  SECTION("a class defined by user code in a named module") {
    PyRef g = new_globals("my_app.errors");
    raise_from(
        "class QuotaExceeded(RuntimeError):\n"
        "    pass\n"
        "raise QuotaExceeded('limit 10 reached')\n",
        g.get());
    PythonErrorInfo info = fetch_python_error();
    CHECK(PyErr_Occurred() == nullptr);
    CHECK(info.type == "QuotaExceeded");
    CHECK(info.qualified_type == "my_app.errors.QuotaExceeded");
    CHECK(info.message == "limit 10 reached");
  }
}

TEST_CASE("fetch_python_error without a pending exception reports a SystemError", "[errors]") {
  Gil gil;
  REQUIRE(PyErr_Occurred() == nullptr);
  PythonErrorInfo info = fetch_python_error();
  CHECK(PyErr_Occurred() == nullptr);
  CHECK(info.type == "SystemError");
  CHECK(info.qualified_type == "builtins.SystemError");
  CHECK_THAT(info.message, Contains("without setting an exception"));
  CHECK(info.traceback.empty());
}

TEST_CASE("fetch_python_error keeps non-ASCII messages and chained causes", "[errors]") {
  Gil gil;
  PyRef g = new_globals();
  raise_from(
      "try:\n"
      "    {}['k']\n"
      "except KeyError as e:\n"
      "    raise ValueError('h\\u00e9llo \\u2713') from e\n",
      g.get());
  PythonErrorInfo info = fetch_python_error();
  CHECK(PyErr_Occurred() == nullptr);
  CHECK(info.message == "h\xC3\xA9llo \xE2\x9C\x93");  // UTF-8 of "héllo ✓"
  CHECK_THAT(info.traceback, Contains("KeyError: 'k'"));
  CHECK_THAT(info.traceback, Contains("The above exception was the direct cause of the following exception"));
  CHECK_THAT(info.traceback, Contains("ValueError: h\xC3\xA9llo \xE2\x9C\x93"));
}

TEST_CASE("fetch_python_error survives an exception whose str() raises", "[errors]") {
  Gil gil;
  PyRef g = new_globals();
  raise_from(
      "class Ugly(Exception):\n"
      "    def __str__(self):\n"
      "        raise RuntimeError('no str for you')\n"
      "raise Ugly()\n",
      g.get());
  PythonErrorInfo info = fetch_python_error();
  CHECK(PyErr_Occurred() == nullptr);
  CHECK(info.type == "Ugly");
  CHECK(info.qualified_type == "sbtest.Ugly");
  CHECK(info.message == "<unprintable>");
  CHECK_THAT(info.traceback, Contains("Ugly"));
}

TEST_CASE("check() and check_status() throw PythonException and clear the error", "[errors]") {
  Gil gil;

  SECTION("check(nullptr) with an exception set") {
    PyErr_SetString(PyExc_ValueError, "from check");
    try {
      check(nullptr);
      FAIL("check(nullptr) did not throw");
    } catch (const PythonException& e) {
      CHECK(e.info().type == "ValueError");
      CHECK(e.info().qualified_type == "builtins.ValueError");
      CHECK(e.info().message == "from check");
      CHECK(std::string(e.what()) == "ValueError: from check");
    }
    CHECK(PyErr_Occurred() == nullptr);
  }

  SECTION("check(nullptr) without an exception set still throws, as SystemError") {
    REQUIRE(PyErr_Occurred() == nullptr);
    try {
      check(nullptr);
      FAIL("check(nullptr) did not throw");
    } catch (const PythonException& e) {
      CHECK(e.info().type == "SystemError");
    }
    CHECK(PyErr_Occurred() == nullptr);
  }

  SECTION("check(p) steals the new reference") {
    PyObject* raw = PyList_New(0);
    REQUIRE(Py_REFCNT(raw) == 1);
    {
      PyRef r = check(raw);
      CHECK(r.get() == raw);
      CHECK(Py_REFCNT(raw) == 1);
      PyRef copy = r;
      CHECK(Py_REFCNT(raw) == 2);
    }
    // Both handles gone: the list was freed, nothing to check on `raw` itself.
  }

  SECTION("check_status(<0) throws, check_status(>=0) does not") {
    PyRef d = check(PyDict_New());
    CHECK_NOTHROW(check_status(0));
    CHECK_NOTHROW(check_status(1));
    PyRef unhashable = check(PyList_New(0));
    try {
      check_status(PyDict_SetItem(d.get(), unhashable.get(), Py_None));
      FAIL("check_status did not throw");
    } catch (const PythonException& e) {
      CHECK(e.info().type == "TypeError");
      CHECK_THAT(e.info().message, Contains("unhashable type: 'list'"));
    }
    CHECK(PyErr_Occurred() == nullptr);
  }

  SECTION("throw_python_error from a failed call") {
    PyObject* r = PyObject_CallMethod(Py_None, "no_such_method", nullptr);
    REQUIRE(r == nullptr);
    CHECK_THROWS_AS(throw_python_error(), PythonException);
    CHECK(PyErr_Occurred() == nullptr);
  }

  // The interpreter keeps working normally after each caught exception.
  PyRef two = py_eval("1 + 1");
  CHECK(py_int(two.get()) == 2);
}

TEST_CASE("PythonException is a std::runtime_error usable after the GIL is gone", "[errors]") {
  PythonErrorInfo info;
  {
    Gil gil;
    PyErr_SetString(PyExc_OverflowError, "too big");
    try {
      throw_python_error();
    } catch (const PythonException& e) {
      info = e.info();
    }
  }
  REQUIRE_FALSE(holds_gil());
  // Plain data: copied out, readable and rethrowable without Python.
  try {
    throw PythonException(info);
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "OverflowError: too big");
  }
}

TEST_CASE("the cancelled exception is reported as snakebridge.Cancelled", "[errors]") {
  Gil gil;
  PyErr_SetNone(cancelled_exception());
  PythonErrorInfo info = fetch_python_error();
  CHECK(PyErr_Occurred() == nullptr);
  CHECK(info.type == "Cancelled");
  CHECK(info.qualified_type == "snakebridge.Cancelled");
}
