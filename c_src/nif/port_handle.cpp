#include "port_handle.hpp"

#include "atoms.hpp"
#include "boundary.hpp"
#include "reply_channel.hpp"

namespace sb::nif {
namespace {

ErlNifResourceType* g_port_handle_type = nullptr;

struct PortHandle {
  ErlNifPid owner;  // a local process: the worker, or the relay for a remote worker
  uint64_t id;
  ErlNifEnv* env;       // holds `remote` (nullptr for a local worker)
  ERL_NIF_TERM remote;  // the remote worker's pid
  void* channel;        // the local worker's reply channel (channel_handle), or nullptr
};

// The id into the worker's channel (channel_handle); else
// {:snakebridge_release, id} to a local worker, or
// {:snakebridge_release, id, remote_pid} to the relay that forwards it.
void port_handle_dtor(ErlNifEnv*, void* p) {
  auto* h = static_cast<PortHandle*>(p);
  if (h->channel) {
    release_into(h->channel, h->id);
    return;
  }
  ErlNifEnv* msg_env = enif_alloc_env();
  ERL_NIF_TERM id = enif_make_uint64(msg_env, h->id);
  ERL_NIF_TERM msg = h->env ? enif_make_tuple3(msg_env, atoms.snakebridge_release, id, enif_make_copy(msg_env, h->remote))
                            : enif_make_tuple2(msg_env, atoms.snakebridge_release, id);
  enif_send(nullptr, &h->owner, msg_env, msg);
  enif_free_env(msg_env);
  if (h->env) enif_free_env(h->env);
}

}  // namespace

void open_port_handle_type(ErlNifEnv* env) {
  g_port_handle_type = enif_open_resource_type(env, nullptr, "snakebridge_port_handle", port_handle_dtor,
                                               static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER),
                                               nullptr);
}

Term port_handle(ErlNifEnv* env, ErlNifPid owner, uint64_t id, std::optional<Term> remote) {
  if (remote && !enif_is_pid(env, *remote)) throw ArgumentError("the remote worker must be a pid");
  auto* h = static_cast<PortHandle*>(enif_alloc_resource(g_port_handle_type, sizeof(PortHandle)));
  h->owner = owner;
  h->id = id;
  h->env = remote ? enif_alloc_env() : nullptr;
  h->remote = remote ? enif_make_copy(h->env, *remote) : 0;
  h->channel = nullptr;
  ERL_NIF_TERM t = enif_make_resource(env, h);
  enif_release_resource(h);
  return t;
}

Term channel_handle(ErlNifEnv* env, Term channel, uint64_t id) {
  ErlNifPid worker;
  void* c = keep_channel(env, channel, &worker);
  auto* h = static_cast<PortHandle*>(enif_alloc_resource(g_port_handle_type, sizeof(PortHandle)));
  h->owner = worker;
  h->id = id;
  h->env = nullptr;
  h->remote = 0;
  h->channel = c;
  ERL_NIF_TERM t = enif_make_resource(env, h);
  enif_release_resource(h);
  return t;
}

Term port_handle_id(ErlNifEnv* env, Term handle) {
  void* p;
  if (!enif_get_resource(env, handle, g_port_handle_type, &p)) return atoms.error;
  return enif_make_uint64(env, static_cast<PortHandle*>(p)->id);
}

SB_NIF("port_handle", port_handle, 0);
SB_NIF_ARITY("port_handle", port_handle, 2, 0);
SB_NIF("channel_handle", channel_handle, 0);
SB_NIF("port_handle_id", port_handle_id, 0);

}  // namespace sb::nif
