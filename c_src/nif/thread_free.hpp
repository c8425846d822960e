// Calls that cannot tell which thread runs them (core/thread_free.hpp) run on
// the calling BEAM scheduler, when nothing else is in Python: no call running
// or queued on any SnakeBridge thread, and the GIL free at this instant, so
// that the scheduler does not wait behind a holder.
#pragma once
#include <erl_nif.h>

#include "../core/to_elixir.hpp"

namespace sb::nif {

// Runs `request` on this scheduler and sets *reply ({:ok, term} | {:error, reason})
// when it is such a call and the GIL is free; false (nothing done) otherwise.
// The caller has checked that no SnakeBridge thread has a call running or queued.
bool run_thread_free(ErlNifEnv* env, ERL_NIF_TERM request, ReturnMode mode, ERL_NIF_TERM* reply);

// How many calls ran on a scheduler (stats).
uint64_t thread_free_calls();

}  // namespace sb::nif
