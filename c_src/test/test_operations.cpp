// operations.hpp: imports, attribute paths, calls, eval/exec with the code cache,
// and the cancelled exception.
#include "../core/operations.hpp"

#include <string>

#include "test_support.hpp"

using namespace sb;
using namespace sbtest;
using Catch::Matchers::Contains;

TEST_CASE("import_module returns the module and caches it", "[operations][import]") {
  Gil gil;
  PyRef a = import_module("json");
  PyRef b = import_module("json");
  CHECK(a.get() == b.get());
  CHECK(PyModule_CheckExact(a.get()));
  CHECK(a.get() == PyDict_GetItemString(PyImport_GetModuleDict(), "json"));
  PyRef name = check(PyObject_GetAttrString(a.get(), "__name__"));
  CHECK(py_str(name.get()) == "json");

  // A dotted name gives the submodule itself, not the package.
  PyRef decoder = import_module("json.decoder");
  CHECK(decoder.get() == PyDict_GetItemString(PyImport_GetModuleDict(), "json.decoder"));
  CHECK(decoder.get() != a.get());
  CHECK(import_module("json.decoder").get() == decoder.get());
}

TEST_CASE("import_module reports a missing module every time", "[operations][import]") {
  Gil gil;
  for (int attempt = 0; attempt < 2; ++attempt) {
    INFO("attempt " << attempt);
    try {
      import_module("snakebridge_no_such_module_xyz");
      FAIL("no exception");
    } catch (const PythonException& e) {
      CHECK(e.info().type == "ModuleNotFoundError");
      CHECK(e.info().qualified_type == "builtins.ModuleNotFoundError");
      CHECK_THAT(e.info().message, Contains("snakebridge_no_such_module_xyz"));
    }
    CHECK(PyErr_Occurred() == nullptr);
  }
}

// operations.hpp: "sys.modules is the source of truth; the cache only saves the
// dictionary walk and the import lock". The cache is never checked against
// sys.modules again, so a module re-imported under the same name (sys.modules
// entry replaced, e.g. after `del sys.modules[name]` and a fresh import) is
// shadowed by the stale object for good.
TEST_CASE("import_module follows sys.modules when a module is replaced", "[operations][import][!mayfail]") {
  Gil gil;
  PyRef g = new_globals();
  py_exec(
      "m1 = types.ModuleType('sb_replaced_mod'); m1.version = 1\n"
      "sys.modules['sb_replaced_mod'] = m1\n",
      g.get());
  PyRef first = import_module("sb_replaced_mod");
  CHECK(first.get() == PyDict_GetItemString(g.get(), "m1"));
  py_exec(
      "m2 = types.ModuleType('sb_replaced_mod'); m2.version = 2\n"
      "sys.modules['sb_replaced_mod'] = m2\n"
      "import sb_replaced_mod\n"
      "assert sb_replaced_mod is m2\n",
      g.get());
  PyRef second = import_module("sb_replaced_mod");
  PyRef version = check(PyObject_GetAttrString(second.get(), "version"));
  CHECK(py_int(version.get()) == 2);
  CHECK(second.get() == PyDict_GetItemString(g.get(), "m2"));
}

TEST_CASE("get_path follows dotted attribute paths", "[operations]") {
  Gil gil;
  PyRef os = import_module("os");
  PyRef join = get_path(os.get(), "path.join");
  PyRef posixpath = import_module("posixpath");
  PyRef expected = check(PyObject_GetAttrString(posixpath.get(), "join"));
  CHECK(join.get() == expected.get());

  PyRef sep = get_path(os.get(), "sep");
  CHECK(py_str(sep.get()) == "/");
  PyRef name = get_path(os.get(), "path.join.__name__");
  CHECK(py_str(name.get()) == "join");

  try {
    get_path(os.get(), "path.no_such_attribute");
    FAIL("no exception");
  } catch (const PythonException& e) {
    CHECK(e.info().type == "AttributeError");
    CHECK_THAT(e.info().message, Contains("no_such_attribute"));
  }
  CHECK_THROWS_AS(get_path(os.get(), "path..join"), PythonException);
  CHECK(PyErr_Occurred() == nullptr);
}

TEST_CASE("call_object passes positional and keyword arguments", "[operations]") {
  Gil gil;
  PyRef os = import_module("os");
  PyRef join = get_path(os.get(), "path.join");
  PyRef args = check(Py_BuildValue("(sss)", "usr", "lib", "python3"));
  PyRef joined = call_object(join.get(), args.get(), nullptr);
  CHECK(py_str(joined.get()) == "usr/lib/python3");

  PyRef builtins = import_module("builtins");
  PyRef int_type = get_path(builtins.get(), "int");
  PyRef int_args = check(Py_BuildValue("(s)", "ff"));
  PyRef kwargs = check(Py_BuildValue("{s:i}", "base", 16));
  CHECK(py_int(call_object(int_type.get(), int_args.get(), kwargs.get()).get()) == 255);

  PyRef sorted_fn = get_path(builtins.get(), "sorted");
  PyRef list_args = check(Py_BuildValue("([iii])", 3, 1, 2));
  PyRef reverse = check(Py_BuildValue("{s:O}", "reverse", Py_True));
  PyRef sorted_list = call_object(sorted_fn.get(), list_args.get(), reverse.get());
  CHECK(py_repr(sorted_list.get()) == "[3, 2, 1]");

  // An empty kwargs dict is the same as none, even for functions without keywords.
  PyRef len_fn = get_path(builtins.get(), "len");
  PyRef empty = check(PyDict_New());
  PyRef len_args = check(Py_BuildValue("([ii])", 1, 2));
  CHECK(py_int(call_object(len_fn.get(), len_args.get(), empty.get()).get()) == 2);

  // Exceptions raised by the callee surface with their type.
  PyRef bad = check(Py_BuildValue("(s)", "not a number"));
  try {
    call_object(int_type.get(), bad.get(), nullptr);
    FAIL("no exception");
  } catch (const PythonException& e) {
    CHECK(e.info().type == "ValueError");
    CHECK_THAT(e.info().message, Contains("invalid literal for int()"));
  }
  PyRef unexpected = check(Py_BuildValue("{s:i}", "bogus", 1));
  CHECK_THROWS_AS(call_object(int_type.get(), int_args.get(), unexpected.get()), PythonException);
  CHECK(PyErr_Occurred() == nullptr);
}

TEST_CASE("eval_expression evaluates in the given globals", "[operations][eval]") {
  Gil gil;
  PyRef g1 = check(PyDict_New());  // no __builtins__: eval adds them
  PyRef g2 = check(PyDict_New());
  PyRef two = check(PyLong_FromLong(2));
  PyRef five = check(PyLong_FromLong(5));
  check_status(PyDict_SetItemString(g1.get(), "x", two.get()));
  check_status(PyDict_SetItemString(g2.get(), "x", five.get()));

  // The same source twice: one compiled code object, two different results.
  CHECK(py_int(eval_expression("x * 21 + len('ab')", g1.get()).get()) == 44);
  CHECK(py_int(eval_expression("x * 21 + len('ab')", g2.get()).get()) == 107);
  CHECK(PyDict_GetItemString(g1.get(), "__builtins__") != nullptr);
  CHECK(PyDict_GetItemString(g2.get(), "__builtins__") != nullptr);
}

TEST_CASE("eval_expression caches compiled code by source and mode", "[operations][eval]") {
  Gil gil;
  PyRef g1 = new_globals();
  PyRef g2 = new_globals();
  // The running code object, as seen from inside the evaluated expression.
  const char* src = "sys._getframe(0).f_code";
  PyRef code1 = eval_expression(src, g1.get());
  PyRef code2 = eval_expression(src, g2.get());
  REQUIRE(PyCode_Check(code1.get()));
  CHECK(code1.get() == code2.get());  // compiled once
  CHECK(py_str(get_path(code1.get(), "co_filename").get()) == "<eval>");

  PyRef other = eval_expression("(sys._getframe(0).f_code)", g1.get());
  CHECK(other.get() != code1.get());

  // The mode is part of the key: the same text exec'd and then eval'd.
  exec_statements("40 + 2", g1.get());
  CHECK(py_int(eval_expression("40 + 2", g1.get()).get()) == 42);

  // The cache is bounded: after many other sources the first is compiled anew.
  for (int i = 0; i < 300; ++i) {
    std::string s = "x_" + std::to_string(i) + " if False else " + std::to_string(i);
    CHECK(py_int(eval_expression(s, g1.get()).get()) == i);
  }
  PyRef code3 = eval_expression(src, g1.get());
  CHECK(code3.get() != code1.get());
  CHECK(PyCode_Check(code3.get()));
}

TEST_CASE("exec_statements defines a function that can then be called", "[operations][eval]") {
  Gil gil;
  PyRef g = check(PyDict_New());
  exec_statements(
      "def scale(v, factor=2):\n"
      "    return [x * factor for x in v]\n"
      "counter = 0\n",
      g.get());
  PyObject* scale = PyDict_GetItemString(g.get(), "scale");
  REQUIRE(scale != nullptr);
  REQUIRE(PyFunction_Check(scale));

  PyRef args = check(Py_BuildValue("([iii])", 1, 2, 3));
  PyRef kwargs = check(Py_BuildValue("{s:i}", "factor", 10));
  CHECK(py_repr(call_object(scale, args.get(), kwargs.get()).get()) == "[10, 20, 30]");
  CHECK(py_repr(eval_expression("scale([4])", g.get()).get()) == "[8]");

  // Statements mutate the globals they run in.
  exec_statements("counter += 1", g.get());
  exec_statements("counter += 1", g.get());
  CHECK(py_int(PyDict_GetItemString(g.get(), "counter")) == 2);
}

TEST_CASE("errors raised by exec'd code carry a traceback", "[operations][eval]") {
  Gil gil;
  PyRef g = check(PyDict_New());
  try {
    exec_statements("def f():\n    return 1 / 0\nf()\n", g.get());
    FAIL("no exception");
  } catch (const PythonException& e) {
    CHECK(e.info().type == "ZeroDivisionError");
    CHECK_THAT(e.info().traceback, Contains("File \"<exec>\", line 2, in f"));
  }
  CHECK(PyErr_Occurred() == nullptr);
}

TEST_CASE("syntax errors surface as PythonException SyntaxError", "[operations][eval]") {
  Gil gil;
  PyRef g = check(PyDict_New());
  SECTION("eval") {
    try {
      eval_expression("1 +", g.get());
      FAIL("no exception");
    } catch (const PythonException& e) {
      CHECK(e.info().type == "SyntaxError");
      CHECK(e.info().qualified_type == "builtins.SyntaxError");
      CHECK_THAT(e.info().message, Contains("<eval>"));
    }
    // A statement is not an expression.
    CHECK_THROWS_AS(eval_expression("x = 1", g.get()), PythonException);
  }
  SECTION("exec") {
    try {
      exec_statements("def f(:\n    pass\n", g.get());
      FAIL("no exception");
    } catch (const PythonException& e) {
      CHECK(e.info().type == "SyntaxError");
      CHECK_THAT(e.info().message, Contains("<exec>"));
    }
    try {
      exec_statements("if True:\npass\n", g.get());
      FAIL("no exception");
    } catch (const PythonException& e) {
      CHECK(e.info().type == "IndentationError");
    }
  }
  CHECK(PyErr_Occurred() == nullptr);
  // A failed compile is not cached: the next good source works.
  CHECK(py_int(eval_expression("1 + 1", g.get()).get()) == 2);
}

TEST_CASE("cancelled_exception is snakebridge.Cancelled, a BaseException", "[operations]") {
  Gil gil;
  PyObject* cancelled = cancelled_exception();
  REQUIRE(cancelled != nullptr);
  CHECK(cancelled_exception() == cancelled);  // created once
  REQUIRE(PyType_Check(cancelled));
  CHECK(PyObject_IsSubclass(cancelled, PyExc_BaseException) == 1);
  CHECK(PyObject_IsSubclass(cancelled, PyExc_Exception) == 0);
  CHECK(py_str(get_path(cancelled, "__name__").get()) == "Cancelled");
  CHECK(py_str(get_path(cancelled, "__module__").get()) == "snakebridge");
  CHECK_THAT(py_str(get_path(cancelled, "__doc__").get()), Contains("interrupted"));

  // `except Exception` does not catch it; `except BaseException` does.
  PyRef g = new_globals();
  check_status(PyDict_SetItemString(g.get(), "Cancelled", cancelled));
  py_exec(
      "def run():\n"
      "    try:\n"
      "        try:\n"
      "            raise Cancelled()\n"
      "        except Exception:\n"
      "            return 'swallowed'\n"
      "    except BaseException as e:\n"
      "        return type(e).__name__\n"
      "outcome = run()\n",
      g.get());
  CHECK(py_str(PyDict_GetItemString(g.get(), "outcome")) == "Cancelled");
}
