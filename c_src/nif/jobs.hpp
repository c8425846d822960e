// Where a request runs: right here on the calling scheduler (fast path) or as a
// job on the worker pool, which replies with a message; and cancelling jobs.
// See docs/backends.md, "Threading model". What a request does: execution.hpp.
#pragma once
#include <erl_nif.h>

namespace sb::nif {

void open_job_type(ErlNifEnv* env);

// execute(request, return_mode, timeout_ms (-1: none)) ->
//   {:ok, term} | {:error, reason}        ran on this scheduler
//   {:pending, job, ref}                   reply {ref, {:ok, term} | {:error, reason}} follows
ERL_NIF_TERM execute(ErlNifEnv* env, ERL_NIF_TERM request, ERL_NIF_TERM mode, ERL_NIF_TERM timeout_ms);

// cancel(job) -> :cancelled (no reply will be sent) | :sent (the reply is in the mailbox)
ERL_NIF_TERM cancel(ErlNifEnv* env, ERL_NIF_TERM job);

}  // namespace sb::nif
