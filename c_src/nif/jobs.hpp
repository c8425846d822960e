// Where an in-process request runs: on the calling Elixir process's own Python
// thread (core/python_threads.hpp), not on a BEAM scheduler (the one exception,
// calls that cannot tell which thread runs them: thread_free.hpp). The scheduler
// hands the request over and, when the thread is awake and the process's recent
// requests were quick, waits a few microseconds for the reply and returns it
// itself; otherwise the thread replies with a message. See docs/backends.md,
// "Threading model". What a request does: execution.hpp.
#pragma once
#include <erl_nif.h>

#include <atomic>
#include <cstdint>

#include "../core/to_elixir.hpp"
#include "boundary.hpp"

namespace sb::nif {

void open_job_types(ErlNifEnv* env);

// Whether a scheduler may wait for quick replies (config :snakebridge, fast_path:).
extern std::atomic<bool> g_wait_for_quick;

// bind_thread() -> a binding: the Python thread that runs the requests made
// with it. The Elixir process keeps it (process dictionary) for its life; when
// the last term holding it is garbage, the thread may serve another process.
Term bind_thread(ErlNifEnv* env);

// execute(request, return_mode, binding) ->
//   {:ok, term} | {:error, reason}        the reply, waited for on this scheduler
//   {:ok | :error, value, ref}             the same, and Python wrote output
//                                          (messages tagged with ref, already sent)
//   {:pending, job, ref}                   reply {ref, {:ok, term} | {:error, reason}} follows
Term execute(ErlNifEnv* env, Term request, ReturnMode mode, Term binding);

// On a Python thread running a request: the process waiting for it and the
// request's ref (copied into env), where a callback goes; a scheduler waiting
// for the reply stops. False on any other thread.
bool callback_target(ErlNifEnv* env, ErlNifPid* pid, ERL_NIF_TERM* ref);

// route_callbacks(job, pid) -> :ok: the job's next callbacks go to pid (the
// call's runner, SnakeBridge.Callbacks) instead of the caller.
Term route_callbacks(ErlNifEnv* env, Term job, Term pid);

// cancel(job) -> :cancelled (no reply will be sent) | :sent (the reply is in the mailbox)
Term cancel(ErlNifEnv* env, Term job);

}  // namespace sb::nif
