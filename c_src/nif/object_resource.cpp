#include "object_resource.hpp"

#include <cstring>

#include "../core/interpreter.hpp"
#include "../core/values.hpp"
#include "atoms.hpp"

namespace sb::nif {
namespace {

ErlNifResourceType* g_object_type = nullptr;
ErlNifResourceType* g_port_handle_type = nullptr;

struct PortHandle {
  ErlNifPid owner;  // a local process: the worker, or the relay for a remote worker
  ErlNifUInt64 id;
  ErlNifEnv* env;       // holds `remote` (nullptr for a local worker)
  ERL_NIF_TERM remote;  // the remote worker's pid
};

// {:snakebridge_release, id} to a local worker, or
// {:snakebridge_release, id, remote_pid} to the relay that forwards it.
void port_handle_dtor(ErlNifEnv*, void* p) {
  auto* h = static_cast<PortHandle*>(p);
  ErlNifEnv* msg_env = enif_alloc_env();
  ERL_NIF_TERM tag = enif_make_atom(msg_env, "snakebridge_release");
  ERL_NIF_TERM id = enif_make_uint64(msg_env, h->id);
  ERL_NIF_TERM msg = h->env ? enif_make_tuple3(msg_env, tag, id, enif_make_copy(msg_env, h->remote))
                            : enif_make_tuple2(msg_env, tag, id);
  enif_send(nullptr, &h->owner, msg_env, msg);
  enif_free_env(msg_env);
  if (h->env) enif_free_env(h->env);
}

void object_dtor(ErlNifEnv*, void* p) { release_later(static_cast<ObjectResource*>(p)->obj); }

ERL_NIF_TERM new_resource_term(ErlNifEnv* env, PyObject* obj, ObjectResource** out) {
  auto* res = static_cast<ObjectResource*>(enif_alloc_resource(g_object_type, sizeof(ObjectResource)));
  Py_INCREF(obj);
  res->obj = obj;
  *out = res;
  return enif_make_resource(env, res);
}

ERL_NIF_TERM make_string(ErlNifEnv* env, const std::string& s) {
  ERL_NIF_TERM t;
  unsigned char* buf = enif_make_new_binary(env, s.size(), &t);
  memcpy(buf, s.data(), s.size());
  return t;
}

}  // namespace

void open_resource_types(ErlNifEnv* env) {
  g_port_handle_type = enif_open_resource_type(env, nullptr, "snakebridge_port_handle", port_handle_dtor,
                                               static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER),
                                               nullptr);
  g_object_type = enif_open_resource_type(env, nullptr, "snakebridge_pyobject", object_dtor,
                                          static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER),
                                          nullptr);
}

ERL_NIF_TERM make_object(ErlNifEnv* env, PyObject* obj) {
  ObjectResource* res;
  ERL_NIF_TERM ref = new_resource_term(env, obj, &res);
  enif_release_resource(res);
  ERL_NIF_TERM keys[] = {atoms.__struct__, atoms.owner, atoms.ref, atoms.type};
  ERL_NIF_TERM values[] = {atoms.elixir_object, atoms.nil, ref, make_string(env, type_name(obj))};
  ERL_NIF_TERM map;
  enif_make_map_from_arrays(env, keys, values, 4, &map);
  return map;
}

bool get_object(ErlNifEnv* env, ERL_NIF_TERM term, PyObject** out) {
  ERL_NIF_TERM ref = term;
  if (enif_is_map(env, term) && !enif_get_map_value(env, term, atoms.ref, &ref)) return false;
  void* res;
  if (!enif_get_resource(env, ref, g_object_type, &res)) return false;
  *out = static_cast<ObjectResource*>(res)->obj;
  return true;
}

ERL_NIF_TERM make_port_handle(ErlNifEnv* env, ERL_NIF_TERM owner, ERL_NIF_TERM id, ERL_NIF_TERM remote) {
  ErlNifPid pid;
  ErlNifUInt64 n;
  if (!enif_get_local_pid(env, owner, &pid) || !enif_get_uint64(env, id, &n)) return enif_make_badarg(env);
  bool has_remote = remote != 0 && enif_is_pid(env, remote);
  auto* h = static_cast<PortHandle*>(enif_alloc_resource(g_port_handle_type, sizeof(PortHandle)));
  h->owner = pid;
  h->id = n;
  h->env = has_remote ? enif_alloc_env() : nullptr;
  h->remote = has_remote ? enif_make_copy(h->env, remote) : 0;
  ERL_NIF_TERM t = enif_make_resource(env, h);
  enif_release_resource(h);
  return t;
}

bool get_port_handle(ErlNifEnv* env, ERL_NIF_TERM term, ErlNifPid* owner, ErlNifUInt64* id) {
  void* p;
  if (!enif_get_resource(env, term, g_port_handle_type, &p)) return false;
  *owner = static_cast<PortHandle*>(p)->owner;
  *id = static_cast<PortHandle*>(p)->id;
  return true;
}

ERL_NIF_TERM make_borrowed_binary(ErlNifEnv* env, PyObject* owner, const char* data, size_t size) {
  ObjectResource* res;
  new_resource_term(env, owner, &res);
  ERL_NIF_TERM bin = enif_make_resource_binary(env, res, data, size);
  enif_release_resource(res);
  return bin;
}

}  // namespace sb::nif
