// One request, start to finish, with the GIL held: the BEAM's request tuple
// decoded into a core request, built and run by the core (core/request.hpp,
// core/executor.hpp), the outcome written as a term, every failure turned into
// {:error, reason} in one place.
#pragma once
#include <erl_nif.h>

#include "../core/request.hpp"

namespace sb::nif {

// {:call, target, name, args, kwargs} | {:getattr, target, name} | ... (see
// SnakeBridge.Backend.Native) as a WireRequest. No GIL needed; false when the
// tuple has no known shape.
bool decode_request(ErlNifEnv* env, ERL_NIF_TERM request, ReturnMode mode, WireRequest<ERL_NIF_TERM>* out);

// GIL held. {:ok, term} | {:error, reason}; a null request (one decode_request
// refused) is a bad request.
ERL_NIF_TERM run_request(ErlNifEnv* env, const WireRequest<ERL_NIF_TERM>* request);

// GIL held. callable(*args, **kwargs), args and kwargs as in a call request.
ERL_NIF_TERM run_call(ErlNifEnv* env, PyObject* callable, ERL_NIF_TERM args, ERL_NIF_TERM kwargs, ReturnMode mode);

}  // namespace sb::nif
