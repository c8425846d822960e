// The NIF table and nothing else: each entry decodes its arguments and hands off
// to the module that does the work.
#include <erl_nif.h>

#include <cstring>
#include <string>

#include "../core/call_sites.hpp"
#include "../core/interpreter.hpp"
#include "../core/interrupts.hpp"
#include "../core/operations.hpp"
#include "../core/values.hpp"
#include "../core/worker_pool.hpp"
#include "atoms.hpp"
#include "jobs.hpp"
#include "fast_path.hpp"
#include "object_resource.hpp"
#include "python_output.hpp"

#ifndef SNAKEBRIDGE_LIBPYTHON
#define SNAKEBRIDGE_LIBPYTHON ""
#endif

namespace sb::nif {
namespace {

bool map_text(ErlNifEnv* env, ERL_NIF_TERM map, const char* key, std::string* out) {
  ERL_NIF_TERM v;
  ErlNifBinary bin;
  if (!enif_get_map_value(env, map, enif_make_atom(env, key), &v) || !enif_inspect_binary(env, v, &bin)) return false;
  out->assign(reinterpret_cast<const char*>(bin.data), bin.size);
  return true;
}

ERL_NIF_TERM error_text(ErlNifEnv* env, const std::string& msg) {
  ERL_NIF_TERM t;
  unsigned char* buf = enif_make_new_binary(env, msg.size(), &t);
  memcpy(buf, msg.data(), msg.size());
  return enif_make_tuple2(env, atoms.error, t);
}

// init(%{python: path, paths: [path], pythonpath: text, max_threads: n}) -> :ok | {:error, text}
// Dirty I/O: starting the interpreter reads the disk and imports site.
ERL_NIF_TERM init_nif(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  if (!enif_is_map(env, argv[0])) return enif_make_badarg(env);
  InterpreterConfig cfg;
  cfg.libpython_soname = SNAKEBRIDGE_LIBPYTHON;
  map_text(env, argv[0], "python", &cfg.python_executable);
  map_text(env, argv[0], "pythonpath", &cfg.pythonpath);
  ERL_NIF_TERM paths, head;
  if (enif_get_map_value(env, argv[0], enif_make_atom(env, "paths"), &paths)) {
    while (enif_get_list_cell(env, paths, &head, &paths)) {
      ErlNifBinary bin;
      if (enif_inspect_binary(env, head, &bin)) cfg.extra_paths.emplace_back(reinterpret_cast<const char*>(bin.data), bin.size);
    }
  }
  ERL_NIF_TERM v;
  unsigned max_threads;
  if (enif_get_map_value(env, argv[0], enif_make_atom(env, "max_threads"), &v) && enif_get_uint(env, v, &max_threads)) {
    WorkerPool::instance().set_max_threads(max_threads);
  }
  unsigned spin_us;
  if (enif_get_map_value(env, argv[0], enif_make_atom(env, "spin_us"), &v) && enif_get_uint(env, v, &spin_us)) {
    WorkerPool::instance().set_spin_ns(static_cast<uint64_t>(spin_us) * 1000);
  }
  if (enif_get_map_value(env, argv[0], enif_make_atom(env, "fast_path"), &v)) {
    g_fast_path_enabled = (v == atoms.true_);
  }
  bool first = !interpreter_ready();
  try {
    // (init's own handler turns start-up failures into {:error, text})
    initialize_interpreter(cfg);
    if (first) {
      Gil gil;
      ensure_datetime_api();
      cancelled_exception();
      // Imported now, so that reporting an error never has to import it.
      PyRef traceback = PyRef::steal(PyImport_ImportModule("traceback"));
      if (!traceback) PyErr_Clear();
      install_interruptible_sleep();
      install_python_output();
    }
  } catch (const std::exception& e) {
    return error_text(env, e.what());
  }
  WorkerPool::instance().start();
  start_fast_path_watchdog();
  return atoms.ok;
}

// The last line of defence: whatever C++ throws becomes an Elixir exception.
template <typename F>
ERL_NIF_TERM guarded(ErlNifEnv* env, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return enif_raise_exception(env, error_text(env, std::string("snakebridge NIF: ") + e.what()));
  } catch (...) {
    return enif_raise_exception(env, error_text(env, "snakebridge NIF: unknown C++ exception"));
  }
}

ERL_NIF_TERM execute_nif(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  return guarded(env, [&] { return execute(env, argv[0], argv[1], argv[2]); });
}

ERL_NIF_TERM cancel_nif(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  return guarded(env, [&] { return cancel(env, argv[0]); });
}

// port_handle(owner_pid, id) -> a resource that sends {:snakebridge_release, id}
// to owner_pid when garbage-collected; port_handle(relay_pid, id, remote_pid)
// sends {:snakebridge_release, id, remote_pid} to the (local) relay instead.
ERL_NIF_TERM port_handle_nif(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
  return make_port_handle(env, argv[0], argv[1], argc > 2 ? argv[2] : 0);
}

// port_handle_id(resource) -> id | :error
ERL_NIF_TERM port_handle_id_nif(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
  ErlNifPid owner;
  ErlNifUInt64 id;
  if (!get_port_handle(env, argv[0], &owner, &id)) return atoms.error;
  return enif_make_uint64(env, id);
}

ERL_NIF_TERM stats_nif(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
  WorkerPool& pool = WorkerPool::instance();
  ERL_NIF_TERM keys[] = {enif_make_atom(env, "pending_releases"), enif_make_atom(env, "pool_threads"),
                         enif_make_atom(env, "pool_queued"), enif_make_atom(env, "busy_workers"),
                         enif_make_atom(env, "max_threads")};
  ERL_NIF_TERM values[] = {enif_make_uint64(env, pending_releases()), enif_make_uint64(env, pool.thread_count()),
                           enif_make_uint64(env, pool.queued()), enif_make_int(env, g_busy_workers.load()),
                           enif_make_uint64(env, pool.max_threads())};
  ERL_NIF_TERM map;
  enif_make_map_from_arrays(env, keys, values, 5, &map);
  return map;
}

int load(ErlNifEnv* env, void**, ERL_NIF_TERM) {
  make_atoms(env);
  open_resource_types(env);
  open_job_type(env);
  return 0;
}

// Hot code upgrade keeps the one interpreter (it can never be restarted).
int upgrade(ErlNifEnv* env, void**, void**, ERL_NIF_TERM) { return load(env, nullptr, 0); }

ErlNifFunc nif_funcs[] = {
    {"init", 1, init_nif, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"execute", 3, execute_nif, 0},
    {"cancel", 1, cancel_nif, 0},
    {"stats", 0, stats_nif, 0},
    {"port_handle", 2, port_handle_nif, 0},
    {"port_handle", 3, port_handle_nif, 0},
    {"port_handle_id", 1, port_handle_id_nif, 0},
};

}  // namespace
}  // namespace sb::nif

ERL_NIF_INIT(Elixir.SnakeBridge.Native, sb::nif::nif_funcs, sb::nif::load, nullptr, sb::nif::upgrade, nullptr)
