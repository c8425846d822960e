// In-process, Python calling Elixir (core/elixir_terms.hpp): the BEAM terms
// Python holds, and the NIF's ElixirHost. A callback made while a request runs
// goes to the process waiting for that request, as
//   {:snakebridge_callback, request_ref, slot, fun | {module, function}, args, kwargs}
// (SnakeBridge.Runtime runs it and answers with callback_reply(slot, answer);
// slot is {link, generation}: the calling thread's reused link, callbacks.cpp);
// one made on a thread no request runs on goes to SnakeBridge.Callbacks.
// Answers: {:ok, value} | {:error, message, stacktrace, {kind, reason, stacktrace}}
// | {:type_error, message}. docs/callbacks.md.
#pragma once
#include <erl_nif.h>

#include <memory>

#include "../core/elixir_terms.hpp"
#include "boundary.hpp"

namespace sb::nif {

void open_callback_types(ErlNifEnv* env);

// A pid, reference, port or function, kept for Python in an environment of its own.
struct NifTerm : TermPayload {
  ErlNifEnv* env;
  ERL_NIF_TERM term;
  NifTerm(ErlNifEnv* source, ERL_NIF_TERM t);
  ~NifTerm() override;
  bool same(const TermPayload& other) const override;
  uint64_t hash() const override;
  std::string describe() const override;
};

// GIL held. The Python object for a pid, reference, port or function.
PyRef python_term(ErlNifEnv* env, ERL_NIF_TERM t);

// Callbacks handed straight to a runner polling for them (callback_poll), so far.
uint64_t handed_callbacks();

// callback_reply(slot, answer) -> :ok | :abandoned (the Python side gave up: interrupted)
Term callback_reply(ErlNifEnv* env, Term slot, Term answer);

}  // namespace sb::nif
