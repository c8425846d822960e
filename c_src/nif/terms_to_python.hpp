// Elixir terms -> Python objects (DESIGN.md §3, first table). GIL held.
#pragma once
#include <erl_nif.h>

#include <stdexcept>
#include <vector>

#include "../core/pyref.hpp"

namespace sb::nif {

// A term that cannot cross, with where it sits inside the argument.
struct TermError : std::exception {
  ERL_NIF_TERM reason;             // unconvertible | unhashable | collision | too_deep
  ERL_NIF_TERM term;
  std::vector<ERL_NIF_TERM> path;  // list indexes, map keys, struct field names
  const char* what() const noexcept override { return "term cannot be converted to Python"; }
};

class TermReader {
 public:
  explicit TermReader(ErlNifEnv* env) : env_(env) {}

  PyRef read(ERL_NIF_TERM t) { return read_term(t, false); }
  // A list of positional arguments -> tuple.
  PyRef read_args(ERL_NIF_TERM list);
  // A keyword list or a map with string/atom keys -> dict with str keys.
  PyRef read_kwargs(ERL_NIF_TERM kwargs);

 private:
  PyRef read_term(ERL_NIF_TERM t, bool hashable);
  PyRef read_atom(ERL_NIF_TERM t);
  PyRef read_integer(ERL_NIF_TERM t);
  PyRef read_binary(ERL_NIF_TERM t);
  PyRef read_list(ERL_NIF_TERM t, bool hashable);
  PyRef read_tuple(ERL_NIF_TERM t, bool hashable);
  PyRef read_map(ERL_NIF_TERM t, bool hashable);
  PyRef read_struct(ERL_NIF_TERM t, ERL_NIF_TERM name, bool hashable);
  PyRef read_calendar(ERL_NIF_TERM t, ERL_NIF_TERM name);
  int field_int(ERL_NIF_TERM map, ERL_NIF_TERM key);
  [[noreturn]] void fail(ERL_NIF_TERM reason, ERL_NIF_TERM term);

  ErlNifEnv* env_;
  std::vector<ERL_NIF_TERM> path_;
  int depth_ = 0;
};

}  // namespace sb::nif
