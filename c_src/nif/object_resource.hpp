// Python objects held by Elixir terms. The resource owns one reference; its
// destructor never takes the GIL (it may run on any scheduler, mid-GC): it queues
// the reference for release by the next thread that holds the GIL.
#pragma once
#include <erl_nif.h>

#include "../core/pyref.hpp"

namespace sb::nif {

struct ObjectResource {
  PyObject* obj;
};

void open_resource_types(ErlNifEnv* env);

// GIL held. %SnakeBridge.Object{ref: <resource>, type: "collections.Counter", owner: nil}
ERL_NIF_TERM make_object(ErlNifEnv* env, PyObject* obj);
// Reads the object out of a %SnakeBridge.Object{} (or its bare ref); borrowed.
bool get_object(ErlNifEnv* env, ERL_NIF_TERM term, PyObject** out);
// GIL held. A binary whose bytes live inside `owner` (bytes, str): no copy is made
// and `owner` stays alive as long as the binary does.
ERL_NIF_TERM make_borrowed_binary(ErlNifEnv* env, PyObject* owner, const char* data, size_t size);

// A handle to a Python object held by a port worker (docs/protocol.md): when the
// BEAM garbage-collects the last term referring to it, the owning worker process
// gets {:snakebridge_release, id} and tells its port program to drop it.
ERL_NIF_TERM make_port_handle(ErlNifEnv* env, ERL_NIF_TERM owner, ERL_NIF_TERM id, ERL_NIF_TERM remote);
// {owner_pid, id} of a port handle; false if `term` is not one.
bool get_port_handle(ErlNifEnv* env, ERL_NIF_TERM term, ErlNifPid* owner, ErlNifUInt64* id);

}  // namespace sb::nif
