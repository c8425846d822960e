// A callback's request and Elixir's answer to it (elixir_terms.hpp), the
// same on both wires. The request: what to run, then its arguments (see
// emit_callback). The answer, read the same way from both wires: {:ok, value} | {:type_error, message} |
// {:error, message, stacktrace, original}. The reader's `held(Value)` gives
// the original error as the front end keeps terms (or null).
#pragma once
#include <string>
#include <vector>

#include "elixir_terms.hpp"
#include "from_elixir.hpp"
#include "to_elixir.hpp"

namespace sb {

// GIL held. Emits three values: what to run (the function, or the tuple
// {module, function} of snakebridge.call), the positional arguments as a
// list, the keyword arguments as a map (empty without any), converted as any
// result (:auto). `fun` null: the named function.
template <class Sink>
void emit_callback(Sink& sink, const TermPayload* fun, PyObject* module, PyObject* function, PyObject* args,
                   PyObject* kwargs) {
  ToElixir<Sink> walk(sink, ReturnMode::Auto);
  if (fun) {
    sink.elixir_term(*fun);
  } else {
    sink.begin_tuple(2);
    walk.value(module, 0);
    walk.value(function, 0);
    sink.end_tuple();
  }
  Py_ssize_t n = PyTuple_GET_SIZE(args);
  sink.begin_list(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) walk.value(PyTuple_GET_ITEM(args, i), 0);
  sink.end_list();
  if (kwargs && PyDict_GET_SIZE(kwargs) > 0) {
    walk.value(kwargs, 0);
  } else {
    sink.begin_map(0);
    sink.end_map();
  }
}

// GIL held. The Python value of the answer (new reference), or null with the
// Python error set: the Elixir function's error, or a TypeError.
template <class Reader>
PyObject* callback_answer(Reader& r, typename Reader::Value answer) {
  using V = typename Reader::Value;
  std::vector<V> items;
  size_t n = 0;
  if (r.kind(answer) == WireKind::Tuple && r.length(answer, &n) && n >= 2 && n <= 4) {
    r.each_item(answer, [&](V item) { items.push_back(item); });
  }
  auto text = [&](V v) {
    WireKind k = r.kind(v);
    return k == WireKind::Atom || k == WireKind::Binary ? std::string(r.text(v)) : std::string();
  };
  std::string tag = items.empty() ? std::string() : text(items[0]);
  if (tag == "ok" && items.size() == 2) {
    try {
      return FromElixir<Reader>(r).value(items[1]).release();
    } catch (const Refusal&) {
      PyErr_SetString(PyExc_TypeError, "the Elixir function's result has no Python form");
    } catch (const PythonException& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
    return nullptr;
  }
  if (tag == "type_error" && items.size() == 2) {
    PyErr_SetString(PyExc_TypeError, text(items[1]).c_str());
    return nullptr;
  }
  if (tag == "error" && items.size() == 4) {
    set_elixir_error(text(items[1]), text(items[2]), r.held(items[3]));
    return nullptr;
  }
  PyErr_SetString(PyExc_RuntimeError, "SnakeBridge: malformed answer from Elixir to a callback");
  return nullptr;
}

}  // namespace sb
