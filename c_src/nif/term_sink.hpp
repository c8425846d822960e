// The NIF's sink for the core's walker (core/to_elixir.hpp): builds the BEAM
// term of what the walker emits. No mapping rule here, only term building.
#pragma once
#include <erl_nif.h>

#include <vector>

#include "../core/to_elixir.hpp"

namespace sb::nif {

class TermSink {
 public:
  explicit TermSink(ErlNifEnv* env);
  ~TermSink();
  TermSink(const TermSink&) = delete;
  TermSink& operator=(const TermSink&) = delete;
  // The one term emitted.
  ERL_NIF_TERM take() { return stack_.back(); }

  void nil();
  void boolean(bool b);
  void int64(int64_t i) { push(enif_make_int64(env_, i)); }
  void uint64(uint64_t u) { push(enif_make_uint64(env_, u)); }
  void big_int(const BigInt& b);
  void float64(double d) { push(enif_make_double(env_, d)); }
  void atom(const char* name) { push(enif_make_atom(env_, name)); }
  void str(PyObject* owner, const char* data, size_t n) { binary(owner, data, n); }
  void bytes(PyObject* owner, const char* data, size_t n) { binary(owner, data, n); }
  void begin_list(size_t) { marks_.push_back(stack_.size()); }
  void end_list();
  void begin_tuple(size_t) { marks_.push_back(stack_.size()); }
  void end_tuple();
  void begin_map(size_t) { marks_.push_back(stack_.size()); }
  void end_map();
  void begin_set(size_t) { marks_.push_back(stack_.size()); }
  void end_set();
  void date(const DateFields& d);
  void time(const TimeFields& t);
  void datetime(const DateFields& d, const TimeFields& t, const ZoneFields* zone);
  void object(PyObject* o);
  void elixir_term(const TermPayload& t);
  void array(PyObject* owner, const char* data, size_t n, ElementType type, const std::vector<int64_t>& shape);
  // A term made elsewhere (a refused argument and its path).
  void term(ERL_NIF_TERM t) { push(t); }

 private:
  void push(ERL_NIF_TERM t) { stack_.push_back(t); }
  size_t pop_mark() {
    size_t m = marks_.back();
    marks_.pop_back();
    return m;
  }
  void binary(PyObject* owner, const char* data, size_t n);
  ERL_NIF_TERM make_struct(ERL_NIF_TERM name, std::vector<ERL_NIF_TERM>& keys, std::vector<ERL_NIF_TERM>& values);
  void calendar(const DateFields* d, const TimeFields* t, const ZoneFields* zone);

  ErlNifEnv* env_;
  std::vector<ERL_NIF_TERM> stack_;  // finished terms; a container's items above its mark
  std::vector<size_t> marks_;
  std::vector<ERL_NIF_TERM> keys_, values_;  // scratch for maps
};

}  // namespace sb::nif
