// The core's side of Python calling Elixir (core/elixir_terms.hpp): the
// Python objects for Elixir terms, a Function calling its front end's host,
// snakebridge.ElixirError and its original, and the wait for an answer. The
// host here is a test double of the Elixir side (the real ones are the NIF's
// and the port program's, tested end to end from Elixir); Python is real.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../core/elixir_terms.hpp"
#include "../core/interrupter.hpp"
#include "../core/operations.hpp"
#include "test_support.hpp"

using namespace sb;
using namespace sbtest;

namespace {

struct TextTerm : TermPayload {
  std::string text;
  explicit TextTerm(std::string t) : text(std::move(t)) {}
  bool same(const TermPayload& o) const override {
    auto* t = dynamic_cast<const TextTerm*>(&o);
    return t && t->text == text;
  }
  uint64_t hash() const override { return std::hash<std::string>()(text); }
  std::string describe() const override { return text; }
};

// Records what Python asked for; answers with `result` (a Python expression
// evaluated over args/kwargs), or an ElixirError.
struct TestHost : ElixirHost {
  std::vector<std::string> calls;
  std::string result = "args";
  bool fail = false;

  PyObject* call(const TermPayload* fun, PyObject* module, PyObject* function, PyObject* args,
                 PyObject* kwargs) override {
    PyRef g = new_globals();
    PyDict_SetItemString(g.get(), "args", args);
    PyDict_SetItemString(g.get(), "kwargs", kwargs ? kwargs : Py_None);
    std::string what = fun ? fun->describe() : short_repr(module, 40) + "." + short_repr(function, 40);
    calls.push_back(what + " " + short_repr(args, 80) + " " + (kwargs ? short_repr(kwargs, 80) : "-"));
    if (fail) {
      set_elixir_error("** (RuntimeError) boom", "    (elixir) test.exs:1", std::make_shared<TextTerm>("original"));
      return nullptr;
    }
    return py_eval(result, g.get()).release();
  }
  bool send(const TermPayload& pid, PyObject* message) override {
    calls.push_back("send " + pid.describe() + " " + short_repr(message, 80));
    return true;
  }
};

struct HostScope {
  explicit HostScope(ElixirHost* h) { set_elixir_host(h); }
  ~HostScope() { set_elixir_host(nullptr); }
};

// repr() of an expression's value.
std::string ev(const std::string& expr, PyObject* g) { return py_repr(py_eval(expr, g).get()); }

PyRef term(TermKind kind, const std::string& text) { return make_elixir_term(kind, std::make_shared<TextTerm>(text)); }

}  // namespace

TEST_CASE("Elixir terms in Python: types, equality and hash by term, copies are themselves", "[elixir_terms]") {
  Gil gil;
  PyRef g = new_globals();
  PyDict_SetItemString(g.get(), "a", term(TermKind::Pid, "#PID<0.1.0>").get());
  PyDict_SetItemString(g.get(), "b", term(TermKind::Pid, "#PID<0.1.0>").get());
  PyDict_SetItemString(g.get(), "c", term(TermKind::Reference, "#Reference<1>").get());
  CHECK(ev("type(a).__name__", g.get()) == "'Pid'");
  CHECK(ev("type(c).__module__ + '.' + type(c).__name__", g.get()) == "'snakebridge.Reference'");
  CHECK(ev("a == b and hash(a) == hash(b) and a != c", g.get()) == "True");
  CHECK(ev("len({a, b, c})", g.get()) == "2");
  CHECK(ev("__import__('copy').copy(a) is a and __import__('copy').deepcopy([a])[0] is a", g.get()) == "True");
  CHECK(ev("repr(a)", g.get()) == "'<snakebridge.Pid #PID<0.1.0>>'");
  CHECK(ev("a == 1", g.get()) == "False");
  PyRef pid = py_eval("a", g.get());
  auto payload = elixir_term_payload(pid.get());
  REQUIRE(payload);
  CHECK(payload->describe() == "#PID<0.1.0>");
  CHECK(classify(pid.get()) == Kind::ElixirTerm);
  PyRef plain = py_eval("object()", g.get());
  CHECK(elixir_term_payload(plain.get()) == nullptr);
}

TEST_CASE("a Function calls its host with the positional and keyword arguments", "[elixir_terms]") {
  Gil gil;
  TestHost host;
  HostScope scope(&host);
  PyRef g = new_globals();
  PyDict_SetItemString(g.get(), "f", term(TermKind::Function, "&String.upcase/1").get());
  CHECK(ev("callable(f)", g.get()) == "True");
  CHECK(ev("f(1, 'two')", g.get()) == "(1, 'two')");
  host.result = "kwargs";
  CHECK(ev("f(1, k=2)", g.get()) == "{'k': 2}");
  py_exec("import _snakebridge as snakebridge\nr = snakebridge.call('Enum', 'sum', [1, 2])\n", g.get());
  REQUIRE(host.calls.size() == 3);
  CHECK(host.calls[0] == "&String.upcase/1 (1, 'two') -");
  CHECK(host.calls[1] == "&String.upcase/1 (1,) {'k': 2}");
  CHECK(host.calls[2] == "'Enum'.'sum' ([1, 2],) -");
  // Other non-Pid objects are refused by send.
  CHECK_THROWS(py_exec("import _snakebridge as snakebridge\nsnakebridge.send(f, 1)\n", g.get()));
  PyDict_SetItemString(g.get(), "p", term(TermKind::Pid, "#PID<0.2.0>").get());
  py_exec("import _snakebridge as snakebridge\nsnakebridge.send(p, ('hi', 1))\n", g.get());
  CHECK(host.calls.back() == "send #PID<0.2.0> ('hi', 1)");
}

TEST_CASE("an Elixir error is snakebridge.ElixirError, catchable, and keeps its original when it escapes",
          "[elixir_terms]") {
  Gil gil;
  TestHost host;
  host.fail = true;
  HostScope scope(&host);
  PyRef g = new_globals();
  PyDict_SetItemString(g.get(), "f", term(TermKind::Function, "fun").get());
  py_exec(
      "import _snakebridge as snakebridge\n"
      "try:\n"
      "    f()\n"
      "except snakebridge.ElixirError as e:\n"
      "    caught = (str(e), e.elixir_stacktrace, isinstance(e, Exception))\n",
      g.get());
  CHECK(ev("caught", g.get()) == "('** (RuntimeError) boom', '    (elixir) test.exs:1', True)");
  PyRef r = PyRef::steal(PyRun_String("f()", Py_eval_input, g.get(), g.get()));
  REQUIRE(!r);
  PythonErrorInfo info = fetch_python_error();
  CHECK(info.qualified_type == "snakebridge.ElixirError");
  CHECK(info.message == "** (RuntimeError) boom");
  REQUIRE(info.elixir);
  CHECK(info.elixir->describe() == "original");
  // Any other exception has no original.
  PyRef z = PyRef::steal(PyRun_String("1 / 0", Py_eval_input, g.get(), g.get()));
  CHECK(!fetch_python_error().elixir);
}

TEST_CASE("CallbackWait: an answer from another thread ends the wait; an interrupt abandons it", "[elixir_terms]") {
  Gil gil;
  {
    CallbackWait wait;
    std::atomic<bool> answered{false};
    std::thread answer([&] {
      std::this_thread::sleep_for(20ms);
      answered = true;
      wait.notify();
    });
    bool ok = wait.wait([&] { return answered.load(); });
    answer.join();
    CHECK(ok);
    CHECK(holds_gil());
    CHECK(!PyErr_Occurred());
  }
  {
    InterruptTarget target;
    CurrentRequest current(&target);
    CHECK(CurrentRequest::target() == &target);
    CallbackWait wait;
    std::thread interrupt([&] {
      std::this_thread::sleep_for(20ms);
      target.interrupted = true;
    });
    bool ok = wait.wait([] { return false; });
    interrupt.join();
    CHECK(!ok);
    REQUIRE(PyErr_Occurred());
    CHECK(PyErr_ExceptionMatches(cancelled_exception()));
    PyErr_Clear();
  }
  CHECK(CurrentRequest::target() == nullptr);
}
