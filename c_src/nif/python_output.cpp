#include "python_output.hpp"

#include <cstring>

#include "../core/errors.hpp"
#include "../core/stdio.hpp"
#include "atoms.hpp"

namespace sb::nif {
namespace {

thread_local const ErlNifPid* t_pid = nullptr;
thread_local ERL_NIF_TERM t_tag = 0;
thread_local const std::atomic<int>* t_state = nullptr;
thread_local int t_running = 0;
thread_local bool t_wrote = false;

ERL_NIF_TERM text_binary(ErlNifEnv* env, const char* text, Py_ssize_t size) {
  ERL_NIF_TERM bin;
  unsigned char* buf = enif_make_new_binary(env, static_cast<size_t>(size), &bin);
  memcpy(buf, text, static_cast<size_t>(size));
  return bin;
}

// emit(stream, text): stream 1 is stdout, 2 stderr.
PyObject* emit(PyObject*, PyObject* args) {
  int stream;
  const char* text;
  Py_ssize_t size;
  if (!PyArg_ParseTuple(args, "is#", &stream, &text, &size)) return nullptr;
  ERL_NIF_TERM which = stream == 2 ? atoms.stderr_ : atoms.stdout_;
  ErlNifEnv* msg_env = enif_alloc_env();
  bool wanted = t_pid && (!t_state || t_state->load() == t_running);
  if (wanted) {
    // {:snakebridge_output, job_ref | nil, :stdout | :stderr, text} to the caller
    ERL_NIF_TERM tag = t_tag ? enif_make_copy(msg_env, t_tag) : atoms.nil;
    ERL_NIF_TERM msg = enif_make_tuple4(msg_env, atoms.snakebridge_output, tag, which, text_binary(msg_env, text, size));
    enif_send(nullptr, t_pid, msg_env, msg);
    t_wrote = true;
  } else {
    ErlNifPid server;
    if (enif_whereis_pid(nullptr, atoms.output_server, &server)) {
      ERL_NIF_TERM msg = enif_make_tuple4(msg_env, atoms.snakebridge_output, which, atoms.nil,
                                          text_binary(msg_env, text, size));
      enif_send(nullptr, &server, msg_env, msg);
    }
  }
  enif_free_env(msg_env);
  Py_RETURN_NONE;
}

}  // namespace

CallerScope::CallerScope(const ErlNifPid* pid, ERL_NIF_TERM tag, const std::atomic<int>* state, int running_state)
    : outer_pid_(t_pid), outer_tag_(t_tag), outer_state_(t_state), outer_running_(t_running), outer_wrote_(t_wrote) {
  t_pid = pid;
  t_tag = tag;
  t_state = state;
  t_running = running_state;
  t_wrote = false;
}

bool CallerScope::wrote() const { return t_wrote; }

CallerScope::~CallerScope() {
  t_pid = outer_pid_;
  t_tag = outer_tag_;
  t_state = outer_state_;
  t_running = outer_running_;
  t_wrote = outer_wrote_;
}

PyCFunction python_output_function() { return emit; }

}  // namespace sb::nif
