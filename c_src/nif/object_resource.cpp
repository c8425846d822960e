#include "object_resource.hpp"

#include <cstring>

#include "../core/interpreter.hpp"
#include "../core/values.hpp"
#include "atoms.hpp"

namespace sb::nif {
namespace {

ErlNifResourceType* g_object_type = nullptr;
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

void open_object_type(ErlNifEnv* env) {
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

ERL_NIF_TERM make_borrowed_binary(ErlNifEnv* env, PyObject* owner, const char* data, size_t size) {
  ObjectResource* res;
  new_resource_term(env, owner, &res);
  ERL_NIF_TERM bin = enif_make_resource_binary(env, res, data, size);
  enif_release_resource(res);
  return bin;
}

}  // namespace sb::nif
