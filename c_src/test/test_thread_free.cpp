// thread_free.hpp: which calls may run where they arrive (a BEAM scheduler),
// and gil_probe.h, which tells whether the GIL is held without taking it.
#include "../core/thread_free.hpp"

#include <atomic>
#include <thread>

#include "../core/gil_probe.h"
#include "test_support.hpp"

using namespace sb;
using namespace sbtest;

TEST_CASE("thread_free_name: math and cmath functions, bar those whose time grows with a value",
          "[thread_free]") {
  CHECK(thread_free_name("math", "sqrt"));
  CHECK(thread_free_name("cmath", "exp"));
  CHECK(thread_free_name("math", "fsum"));
  CHECK_FALSE(thread_free_name("math", "factorial"));
  CHECK_FALSE(thread_free_name("math", "comb"));
  CHECK_FALSE(thread_free_name("math", "perm"));
  CHECK_FALSE(thread_free_name("json", "dumps"));
  CHECK_FALSE(thread_free_name("mathx", "sqrt"));
  CHECK_FALSE(thread_free_name("math", ""));
  CHECK_FALSE(thread_free_name("math", std::string_view("sqrt\0x", 6)));
}

TEST_CASE("thread_free_function finds math's C functions and nothing put in their place", "[thread_free]") {
  Gil gil;
  PyRef g = new_globals();
  py_exec("import math, cmath, sys, types", g.get());
  PyObject* sqrt = thread_free_function("math", "sqrt");
  REQUIRE(sqrt != nullptr);
  CHECK(PyCFunction_Check(sqrt));
  CHECK(thread_free_function("cmath", "sqrt") != nullptr);
  CHECK(thread_free_function("cmath", "sqrt") != sqrt);
  CHECK(thread_free_function("math", "pi") == nullptr);  // a float, not a function
  CHECK(thread_free_function("math", "no_such_function") == nullptr);
  CHECK_FALSE(PyErr_Occurred());

  // A Python function set in math's place goes to the caller's thread.
  py_exec("saved = math.sqrt\nmath.sqrt = lambda x: 'python'", g.get());
  CHECK(thread_free_function("math", "sqrt") == nullptr);
  py_exec("math.sqrt = saved", g.get());
  CHECK(thread_free_function("math", "sqrt") == sqrt);

  // So does a module of the user's (a Python module) in sys.modules' place.
  py_exec("real = sys.modules['math']\nfake = types.ModuleType('math')\nfake.sqrt = abs\nsys.modules['math'] = fake",
          g.get());
  CHECK(thread_free_function("math", "sqrt") == nullptr);
  py_exec("sys.modules['math'] = real", g.get());
  CHECK(thread_free_function("math", "sqrt") == sqrt);

  // Not imported: nothing is imported here (an import runs Python code).
  py_exec("real_c = sys.modules.pop('cmath')", g.get());
  CHECK(thread_free_function("cmath", "sqrt") == nullptr);
  py_exec("sys.modules['cmath'] = real_c", g.get());
  CHECK_FALSE(PyErr_Occurred());
}

TEST_CASE("gil_probe tells whether any thread holds the GIL", "[thread_free][gil]") {
  REQUIRE_FALSE(holds_gil());
  CHECK(sb_gil_probe() == SB_GIL_FREE);
  {
    Gil gil;
    CHECK(sb_gil_probe() == SB_GIL_HELD);
  }
  CHECK(sb_gil_probe() == SB_GIL_FREE);

  // Held by another thread.
  std::atomic<int> stage{0};
  std::thread holder([&] {
    Gil gil;
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  CHECK(sb_gil_probe() == SB_GIL_HELD);
  stage = 2;
  holder.join();
  CHECK(sb_gil_probe() == SB_GIL_FREE);
}

TEST_CASE("NoCollection turns automatic collection off for its scope and leaves it as it found it",
          "[thread_free][gc]") {
  Gil gil;
  REQUIRE(PyGC_IsEnabled() == 1);
  {
    NoCollection none;
    CHECK(PyGC_IsEnabled() == 0);
  }
  CHECK(PyGC_IsEnabled() == 1);
  // Turned off by the user: stays off.
  PyGC_Disable();
  {
    NoCollection none;
    CHECK(PyGC_IsEnabled() == 0);
  }
  CHECK(PyGC_IsEnabled() == 0);
  PyGC_Enable();
}
