#include "thread_free.hpp"

#include <atomic>

#include "../core/gil_probe.h"
#include "../core/interpreter.hpp"
#include "../core/thread_free.hpp"
#include "atoms.hpp"
#include "execution.hpp"
#include "term_reader.hpp"

namespace sb::nif {
namespace {

std::atomic<uint64_t> g_calls{0};

}  // namespace

bool run_thread_free(ErlNifEnv* env, ERL_NIF_TERM request, ReturnMode mode, ERL_NIF_TERM* reply) {
  WireRequest<ERL_NIF_TERM> wire;
  TermReader reader(env);
  if (!decode_request(env, request, mode, &wire) || !thread_free_call(reader, wire)) return false;
  if (sb_gil_probe() != SB_GIL_FREE) return false;
  Gil gil;
  PyObject* f = thread_free_function(reader.text(wire.target), reader.text(wire.name));
  if (f == nullptr) return false;
  *reply = run_call(env, f, wire.args, wire.kwargs, mode);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  return true;
}

uint64_t thread_free_calls() { return g_calls.load(std::memory_order_relaxed); }

}  // namespace sb::nif
