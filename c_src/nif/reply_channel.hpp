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

namespace sb::nif {

void open_reply_channel_type(ErlNifEnv* env);

}  // namespace sb::nif
