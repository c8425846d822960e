// sys.stdout / sys.stderr of the embedded interpreter: text written by Python is
// sent to the Elixir process whose call wrote it, which writes it to its own group
// leader (stdout) or :standard_error before the call returns. Output with no
// caller (threads Python started itself, calls already cancelled) goes to the
// SnakeBridge.Output process. Nothing is written to the BEAM's raw fd 1/2.
#pragma once
#include <erl_nif.h>

#include <atomic>

#include "../core/pyref.hpp"

namespace sb::nif {

// Who is running Python on this thread, for attributing output, set around each
// request (on the caller's Python thread, never a scheduler). `tag`: the job's
// reply ref (0: output tagged nil). `state`: the job's state, output is
// orphaned once it is no longer `running_state`.
struct CallerScope {
  CallerScope(const ErlNifPid* pid, ERL_NIF_TERM tag = 0, const std::atomic<int>* state = nullptr,
              int running_state = 0);
  ~CallerScope();
  // Whether Python wrote any output during this scope.
  bool wrote() const;

 private:
  // The scope it is nested in (a request made from a callback while its
  // caller's request waits on the same thread), restored at the end.
  const ErlNifPid* outer_pid_;
  ERL_NIF_TERM outer_tag_;
  const std::atomic<int>* outer_state_;
  int outer_running_;
  bool outer_wrote_;
};

// GIL held. Replaces sys.stdout and sys.stderr.
// The emit function of sys.stdout/sys.stderr (core/stdio.hpp) for the NIF.
PyCFunction python_output_function();

}  // namespace sb::nif
