// Large binaries through POSIX shared memory between callers and their local
// port workers (docs/protocol.md, "Shared bytes"): shm_write/2, shm_take/2,
// shm_unlink/1, shm_clean/1.
#pragma once
#include <erl_nif.h>

namespace sb::nif {

// At load: the resource type of a mapping an Elixir binary points into.
void open_shared_bytes_types(ErlNifEnv* env);

}  // namespace sb::nif
