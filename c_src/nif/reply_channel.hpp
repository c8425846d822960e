// A port worker's replies, read by the NIF and handed straight to their callers
// (docs/protocol.md, "The reply channel"; docs/architecture.md).
//
// The port program writes its frames into a FIFO the worker process created
// (SNAKEBRIDGE_REPLY_FIFO) instead of the Erlang port's pipe. The NIF reads
// it on a scheduler: in the worker process when the BEAM reports it readable
// (enif_select), or in a caller polling a while for its own reply. A reply
// goes to the process that expected it, as
// {ref, {:frame, frame, worker}}, with no hop through the worker process; an
// output notice or a callback of a request goes to that request's caller (its
// callback runner, once routed), in the order the program wrote them; every
// other frame goes to the worker process. The caller registers a request
// (channel_expect) before it writes it into the port; nothing for a request
// is sent after channel_forget returned true for it.
#pragma once
#include <erl_nif.h>

#include <cstddef>
#include <cstdint>

#include "boundary.hpp"

namespace sb::nif {

void open_reply_channel_type(ErlNifEnv* env);

// The releases of a worker's handles (port_handle.cpp) are gathered in its
// channel, the one object per worker that every decoder of its replies has at
// hand: a collected handle adds its id there (no message of its own), and the
// worker process, told of the first id of a batch and of every
// kReleaseNotice more ({:snakebridge_releases, waiting}), takes them
// (channel_take_releases) and writes them in one frame.
constexpr size_t kReleaseNotice = 1000;

// The channel `chan` (a reference kept for the caller: release_into lets it
// go) and its worker's pid. Throws ArgumentError for anything else.
void* keep_channel(ErlNifEnv* env, Term chan, ErlNifPid* worker);

// A collected handle's id into `channel`'s releases (dropped when the worker
// is gone: its program, and the object, went with it); lets go of the
// reference keep_channel kept. Safe on any thread.
void release_into(void* channel, uint64_t id);

}  // namespace sb::nif
