#include "thread_free.hpp"

#include <atomic>
#include <string_view>

#include "../core/gil_probe.h"
#include "../core/interpreter.hpp"
#include "../core/thread_free.hpp"
#include "atoms.hpp"
#include "execution.hpp"

namespace sb::nif {
namespace {

std::atomic<uint64_t> g_calls{0};

// A number the conversion makes a float or an int without running Python
// code: a float, or an integer within 64 bits (a bignum is left to the thread,
// where a slow operation on it cannot hold a scheduler).
bool plain_number(ErlNifEnv* env, ERL_NIF_TERM t) {
  double d;
  ErlNifSInt64 i;
  return enif_get_double(env, t, &d) || enif_get_int64(env, t, &i);
}

// A proper list of at most kThreadFreeMaxItems numbers, or (nested > 0) of
// numbers and such lists.
bool plain_list(ErlNifEnv* env, ERL_NIF_TERM list, int nested) {
  unsigned n;
  if (!enif_get_list_length(env, list, &n) || n > kThreadFreeMaxItems) return false;
  ERL_NIF_TERM head;
  while (enif_get_list_cell(env, list, &head, &list)) {
    if (plain_number(env, head)) continue;
    if (nested > 0 && enif_is_list(env, head) && plain_list(env, head, nested - 1)) continue;
    return false;
  }
  return true;
}

// At most kThreadFreeMaxKwargs {name, number} pairs.
bool plain_kwargs(ErlNifEnv* env, ERL_NIF_TERM list) {
  unsigned n;
  if (!enif_get_list_length(env, list, &n) || n > kThreadFreeMaxKwargs) return false;
  ERL_NIF_TERM head;
  while (enif_get_list_cell(env, list, &head, &list)) {
    int arity;
    const ERL_NIF_TERM* kv;
    if (!enif_get_tuple(env, head, &arity, &kv) || arity != 2 || !plain_number(env, kv[1]) ||
        !(enif_is_atom(env, kv[0]) || enif_is_binary(env, kv[0]))) {
      return false;
    }
  }
  return true;
}

std::string_view view(const ErlNifBinary& b) { return {reinterpret_cast<const char*>(b.data), b.size}; }

}  // namespace

bool run_thread_free(ErlNifEnv* env, ERL_NIF_TERM request, ReturnMode mode, ERL_NIF_TERM* reply) {
  int arity;
  const ERL_NIF_TERM* a;
  if (!enif_get_tuple(env, request, &arity, &a) || arity != 5 || a[0] != atoms.call) return false;
  ErlNifBinary module, name;
  if (!enif_inspect_binary(env, a[1], &module) || !enif_inspect_binary(env, a[2], &name) ||
      !thread_free_name(view(module), view(name)) || !plain_list(env, a[3], 1) || !plain_kwargs(env, a[4])) {
    return false;
  }
  if (sb_gil_probe() != SB_GIL_FREE) return false;
  Gil gil;
  PyObject* f = thread_free_function(view(module), view(name));
  if (f == nullptr) return false;
  *reply = run_call(env, f, a[3], a[4], mode);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  return true;
}

uint64_t thread_free_calls() { return g_calls.load(std::memory_order_relaxed); }

}  // namespace sb::nif
