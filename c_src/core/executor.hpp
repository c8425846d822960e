// Runs a built request (request.hpp) and writes its outcome into a sink, the
// same way for both backends. GIL held.
#pragma once
#include <initializer_list>
#include <string>

#include "arrays.hpp"
#include "iteration.hpp"
#include "request.hpp"
#include "to_elixir.hpp"

namespace sb {

struct Outcome {
  enum Kind { Result, Deep, Nil, Text, Namespace, Items, Array, Columns } kind = Nil;
  PyRef value;        // Result, Deep, Namespace (a dict)
  std::string text;   // Text
  Batch batch;        // Items
  ArrayExport array;  // Array
  std::vector<Column> columns;  // Columns
};

// Throws PythonException (and BadRequest).
Outcome execute(Request& q);

// The Elixir form of an outcome:
//   Result     the value, as the return mode says
//   Deep       the value, deep-converted (to_elixir, describe)
//   Nil        nil
//   Text       a binary
//   Namespace  exec's globals: a map, each value as the return mode says
//   Items      {[item, ...], :cont | :done | {:error, python_error}}, each item a result
//   Array      %SnakeBridge.Array{}
//   Columns    %{name => %SnakeBridge.Array{} | [value, ...]}, values as the return mode says
template <class Sink>
void emit_outcome(Sink& sink, const Outcome& out, ReturnMode mode) {
  switch (out.kind) {
    case Outcome::Result:
      return ToElixir<Sink>(sink, mode).result(out.value.get());
    case Outcome::Deep:
      return ToElixir<Sink>(sink, ReturnMode::Value).value(out.value.get(), 0);
    case Outcome::Nil:
      return sink.nil();
    case Outcome::Text:
      return sink.str(nullptr, out.text.data(), out.text.size());
    case Outcome::Namespace: {
      if (mode != ReturnMode::Ref) return ToElixir<Sink>(sink, mode).value(out.value.get(), 0);
      // :ref: each global a reference (names are str keys, never colliding).
      ToElixir<Sink> names(sink, ReturnMode::Auto);
      std::vector<std::pair<PyRef, PyRef>> items;
      Py_ssize_t pos = 0;
      PyObject *k, *v;
      while (PyDict_Next(out.value.get(), &pos, &k, &v)) items.emplace_back(PyRef::borrow(k), PyRef::borrow(v));
      sink.begin_map(items.size());
      for (auto& [key, value] : items) {
        names.value(key.get(), 1);
        sink.object(value.get());
      }
      return sink.end_map();
    }
    case Outcome::Items: {
      ToElixir<Sink> items(sink, mode);
      sink.begin_tuple(2);
      sink.begin_list(out.batch.items.size());
      for (const PyRef& item : out.batch.items) items.result(item.get());
      sink.end_list();
      if (out.batch.end == BatchEnd::More) {
        sink.atom("cont");
      } else if (out.batch.end == BatchEnd::Done) {
        sink.atom("done");
      } else {
        sink.begin_tuple(2);
        sink.atom("error");
        emit_python_error(sink, out.batch.error);
        sink.end_tuple();
      }
      return sink.end_tuple();
    }
    case Outcome::Array:
      return emit_array(sink, out.array);
    case Outcome::Columns: {
      ToElixir<Sink> values(sink, mode == ReturnMode::Ref ? ReturnMode::Auto : mode);
      sink.begin_map(out.columns.size());
      for (const Column& c : out.columns) {
        values.value(c.name.get(), 1);
        c.is_array ? emit_array(sink, c.array) : values.value(c.values.get(), 1);
      }
      return sink.end_map();
    }
  }
}

// Inside a catch block: writes the Elixir reason term of the failure being
// handled, the same for both backends (docs/protocol.md, "Replies"):
//   {:python, type, python_type, message, traceback}   PythonException
//   {:unconvertible, why, term, path}                  Refusal, written by `refusal(e)`:
//                                                      only the wire can name its terms
//   {:conversion, python_type, repr}                    NoElixirValue
//   {:not_array, python_type, message}                  NotAnArray
//   {:unknown_object, id}                               UnknownObject
//   {:badrequest, message}                              BadRequest
//   {:internal, message}                                anything else (a bug)
template <class Sink, class WriteRefusal>
void emit_current_failure(Sink& sink, WriteRefusal&& refusal) {
  if (PyErr_Occurred()) PyErr_Clear();
  // {tag, text...}
  auto texts = [&](const char* tag, std::initializer_list<const std::string*> parts) {
    sink.begin_tuple(parts.size() + 1);
    sink.atom(tag);
    for (const std::string* s : parts) sink.str(nullptr, s->data(), s->size());
    sink.end_tuple();
  };
  try {
    throw;
  } catch (const PythonException& e) {
    emit_python_error(sink, e.info());
  } catch (const Refusal& e) {
    refusal(e);
  } catch (const NoElixirValue& e) {
    texts("conversion", {&e.type_name, &e.repr});
  } catch (const NotAnArray& e) {
    texts("not_array", {&e.type_name, &e.message});
  } catch (const UnknownObject& e) {
    sink.begin_tuple(2);
    sink.atom("unknown_object");
    sink.uint64(e.id);
    sink.end_tuple();
  } catch (const BadRequest& e) {
    texts("badrequest", {&e.message});
  } catch (const std::exception& e) {
    std::string what = e.what();
    texts("internal", {&what});
  } catch (...) {
    std::string what = "unknown C++ exception";
    texts("internal", {&what});
  }
}

}  // namespace sb
