// Elixir's answer to a callback (elixir_terms.hpp), read the same way from
// both wires: {:ok, value} | {:type_error, message} |
// {:error, message, stacktrace, original}. The reader's `held(Value)` gives
// the original error as the front end keeps terms (or null).
#pragma once
#include <string>
#include <vector>

#include "elixir_terms.hpp"
#include "from_elixir.hpp"

namespace sb {

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
