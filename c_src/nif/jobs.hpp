// Where a request runs: right here on the calling scheduler (fast path) or as a
// job on the worker pool, which replies with a message; and cancelling jobs.
// See docs/backends.md, "Threading model". What a request does: execution.hpp.
#pragma once
#include <erl_nif.h>

#include <cstdint>

#include "../core/to_elixir.hpp"
#include "boundary.hpp"

namespace sb::nif {

void open_job_type(ErlNifEnv* env);

// execute(request, return_mode, timeout_ms (-1: none)) ->
//   {:ok, term} | {:error, reason}        ran on this scheduler
//   {:ok | :error, value, :output}         the same, and Python wrote output
//   {:pending, job, ref}                   reply {ref, {:ok, term} | {:error, reason}} follows
Term execute(ErlNifEnv* env, Term request, ReturnMode mode, int64_t timeout_ms);

// cancel(job) -> :cancelled (no reply will be sent) | :sent (the reply is in the mailbox)
Term cancel(ErlNifEnv* env, Term job);

}  // namespace sb::nif
