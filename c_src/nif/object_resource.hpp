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

void open_object_type(ErlNifEnv* env);

// GIL held. %SnakeBridge.Object{ref: <resource>, type: "collections.Counter", owner: nil}
ERL_NIF_TERM make_object(ErlNifEnv* env, PyObject* obj);
// Reads the object out of a %SnakeBridge.Object{} (or its bare ref); borrowed.
bool get_object(ErlNifEnv* env, ERL_NIF_TERM term, PyObject** out);
// GIL held. A binary whose bytes live inside `owner` (bytes, str): no copy is made
// and `owner` stays alive as long as the binary does.
ERL_NIF_TERM make_borrowed_binary(ErlNifEnv* env, PyObject* owner, const char* data, size_t size);

}  // namespace sb::nif
