// Python objects -> Elixir terms (DESIGN.md §3, second table). GIL held.
#pragma once
#include <erl_nif.h>

#include <stdexcept>
#include <string>

#include "../core/pyref.hpp"

namespace sb::nif {

enum class ReturnMode { Auto, Ref, Value };

// return: :value met something with no Elixir equivalent.
struct ValueError : std::exception {
  std::string type_name;
  std::string repr;
  const char* what() const noexcept override { return "no Elixir value for a Python object"; }
};

class TermWriter {
 public:
  TermWriter(ErlNifEnv* env, ReturnMode mode) : env_(env), mode_(mode) {}
  // The top-level result: :ref mode makes a reference whatever the object is.
  ERL_NIF_TERM write_result(PyObject* o);
  ERL_NIF_TERM write(PyObject* o);

 private:
  ERL_NIF_TERM write_other(PyObject* o);
  ERL_NIF_TERM write_int(PyObject* o);
  ERL_NIF_TERM write_float(double d);
  ERL_NIF_TERM write_str(PyObject* o);
  ERL_NIF_TERM write_bytes_like(PyObject* o);
  ERL_NIF_TERM write_sequence(PyObject* o, bool tuple);
  ERL_NIF_TERM write_dict(PyObject* o);
  ERL_NIF_TERM write_set(PyObject* o);
  ERL_NIF_TERM write_calendar(PyObject* o, int kind);
  ERL_NIF_TERM unconvertible(PyObject* o);

  ErlNifEnv* env_;
  ReturnMode mode_;
  int depth_ = 0;
};

}  // namespace sb::nif
