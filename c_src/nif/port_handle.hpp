// A handle to a Python object held by a port worker (docs/protocol.md): when the
// BEAM garbage-collects the last term referring to it, the owning worker process
// learns of it and tells its port program to drop it: through the worker's
// reply channel for a worker on this node (reply_channel.hpp), by a message
// for one on another node.
#pragma once
#include <erl_nif.h>

#include <cstdint>
#include <optional>

#include "boundary.hpp"

namespace sb::nif {

void open_port_handle_type(ErlNifEnv* env);

// port_handle(owner_pid, id) -> a resource that sends {:snakebridge_release, id}
// to owner_pid when garbage-collected; port_handle(relay_pid, id, remote_pid)
// sends {:snakebridge_release, id, remote_pid} to the (local) relay instead.
Term port_handle(ErlNifEnv* env, ErlNifPid owner, uint64_t id, std::optional<Term> remote);

// channel_handle(channel, id) -> a resource that adds id to the channel's
// releases when garbage-collected (a local worker's handle, as its replies'
// decoder makes them).
Term channel_handle(ErlNifEnv* env, Term channel, uint64_t id);

// port_handle_id(resource) -> id | :error
Term port_handle_id(ErlNifEnv* env, Term handle);

}  // namespace sb::nif
