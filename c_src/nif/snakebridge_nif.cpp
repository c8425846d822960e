// The NIF library: start-up, the statistics NIF, and the library's entry point.
// Every NIF is declared beside its definition with SB_NIF (boundary.hpp):
// bind_thread/execute/cancel in jobs.cpp, port_handle/port_handle_id in port_handle.cpp,
// kill_port_program in port_kill.cpp.
#include <erl_nif.h>

#include "../core/interpreter.hpp"
#include "../core/spin.hpp"
#include "../core/interrupter.hpp"
#include "../core/python_threads.hpp"
#include "atoms.hpp"
#include "boundary.hpp"
#include "decoders.hpp"
#include "callbacks.hpp"
#include "jobs.hpp"
#include "object_resource.hpp"
#include "port_handle.hpp"
#include "reply_channel.hpp"
#include "shared_bytes.hpp"
#include "python_output.hpp"
#include "thread_free.hpp"

#ifndef SNAKEBRIDGE_LIBPYTHON
#define SNAKEBRIDGE_LIBPYTHON ""
#endif

namespace sb::nif {

std::vector<ErlNifFunc>& nif_table() {
  static std::vector<ErlNifFunc> table;
  return table;
}

ERL_NIF_TERM raise(ErlNifEnv* env, const char* module, const std::string& message) {
  ERL_NIF_TERM keys[] = {atoms.__struct__, atoms.__exception__, atoms.message};
  ERL_NIF_TERM values[] = {enif_make_atom(env, module), atoms.true_, Encoder<std::string>::encode(env, message)};
  ERL_NIF_TERM exception;
  enif_make_map_from_arrays(env, keys, values, 3, &exception);
  return enif_raise_exception(env, exception);
}

void consume_timeslice_since(ErlNifEnv* env, uint64_t t0_ns) {
  int percent = static_cast<int>((monotonic_ns() - t0_ns) / 10'000);  // of a 1 ms timeslice
  if (percent > 0) enif_consume_timeslice(env, percent > 100 ? 100 : percent);
}

namespace {

// init(options) -> :ok | {:error, text}. Dirty I/O: starting the interpreter
// reads the disk and imports site.
Term init(ErlNifEnv* env, InitOptions o) {
  o.interpreter.libpython_soname = SNAKEBRIDGE_LIBPYTHON;
  o.interpreter.emit_output = python_output_function();
  if (o.max_threads) PythonThreads::instance().set_max(*o.max_threads);
  if (o.spin_us) PythonThreads::instance().set_spin_ns(*o.spin_us * 1000);
  if (o.fast_path) g_wait_for_quick = *o.fast_path;
  try {
    initialize_interpreter(o.interpreter);
  } catch (const std::exception& e) {
    return enif_make_tuple2(env, atoms.error, Encoder<std::string>::encode(env, e.what()));
  }
  PythonThreads::instance().start();
  return atoms.ok;
}

// stats() -> %{pending_releases, threads, bound_processes, busy_threads, max_threads, wedged_calls,
//              scheduler_calls, handed_callbacks, busy_found, machine_busy}
Term stats(ErlNifEnv* env) {
  PythonThreads& threads = PythonThreads::instance();
  ERL_NIF_TERM keys[] = {atoms.pending_releases, atoms.threads,     atoms.bound_processes, atoms.busy_threads,
                         atoms.max_threads,      atoms.wedged_calls, atoms.scheduler_calls,
                         atoms.handed_callbacks, atoms.busy_found, atoms.machine_busy};
  ERL_NIF_TERM values[] = {enif_make_uint64(env, pending_releases()), enif_make_uint64(env, threads.count()),
                           enif_make_uint64(env, threads.callers()),  enif_make_int(env, threads.busy()),
                           enif_make_uint64(env, threads.max()),      enif_make_uint64(env, wedged_calls()),
                           enif_make_uint64(env, thread_free_calls()), enif_make_uint64(env, handed_callbacks()),
                           enif_make_uint64(env, g_busy_found.load(std::memory_order_relaxed)),
                           machine_busy(monotonic_ns()) ? atoms.true_ : atoms.false_};
  ERL_NIF_TERM map;
  enif_make_map_from_arrays(env, keys, values, 10, &map);
  return map;
}

// python_version() -> the version of the libpython this library is linked
// against, as sys.version reads in it; needs no running interpreter.
std::string python_version(ErlNifEnv*) { return Py_GetVersion(); }

SB_NIF("init", init, ERL_NIF_DIRTY_JOB_IO_BOUND);
SB_NIF("python_version", python_version, 0);
SB_NIF("stats", stats, 0);

int load(ErlNifEnv* env, void**, ERL_NIF_TERM) {
  // Polls in the BEAM stop yielding on a busy machine (core/spin.hpp).
  g_busy_detection.store(true, std::memory_order_relaxed);
  make_atoms(env);
  open_object_type(env);
  open_port_handle_type(env);
  open_reply_channel_type(env);
  open_job_types(env);
  open_callback_types(env);
  open_shared_bytes_types(env);
  return 0;
}

// Hot code upgrade keeps the one interpreter (it can never be restarted).
int upgrade(ErlNifEnv* env, void**, void**, ERL_NIF_TERM) { return load(env, nullptr, 0); }

}  // namespace
}  // namespace sb::nif

// ERL_NIF_INIT with the table SB_NIF filled (its size is known only at run time).
ERL_NIF_INIT_PROLOGUE
ERL_NIF_INIT_GLOB
ERL_NIF_INIT_DECL(Elixir.SnakeBridge.Native);
ERL_NIF_INIT_DECL(Elixir.SnakeBridge.Native) {
  static ErlNifEntry entry = {ERL_NIF_MAJOR_VERSION,
                              ERL_NIF_MINOR_VERSION,
                              "Elixir.SnakeBridge.Native",
                              static_cast<int>(sb::nif::nif_table().size()),
                              sb::nif::nif_table().data(),
                              sb::nif::load,
                              nullptr,
                              sb::nif::upgrade,
                              nullptr,
                              ERL_NIF_VM_VARIANT,
                              1,
                              sizeof(ErlNifResourceTypeInit),
                              ERL_NIF_MIN_ERTS_VERSION};
  ERL_NIF_INIT_BODY;
  return &entry;
}
ERL_NIF_INIT_EPILOGUE
