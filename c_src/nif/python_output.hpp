// sys.stdout / sys.stderr of the embedded interpreter: text written by Python goes
// to the SnakeBridge.Output process (which forwards stdout to the calling process's
// group leader and stderr to :standard_error), never to the BEAM's raw fd 1/2.
#pragma once
#include <erl_nif.h>

namespace sb::nif {

// Who is running Python on this thread, for attributing output. Set around each
// request; `env` is the caller's process env on a scheduler thread, null elsewhere.
struct CallerScope {
  CallerScope(ErlNifEnv* env, const ErlNifPid* pid);
  ~CallerScope();
};

// GIL held. Replaces sys.stdout and sys.stderr.
void install_python_output();

}  // namespace sb::nif
