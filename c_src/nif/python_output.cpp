#include "python_output.hpp"

#include <cstring>

#include "../core/errors.hpp"
#include "atoms.hpp"

namespace sb::nif {
namespace {

thread_local ErlNifEnv* t_env = nullptr;
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
    enif_send(t_env, t_pid, msg_env, msg);
    t_wrote = true;
  } else {
    ErlNifPid server;
    if (enif_whereis_pid(t_env, atoms.output_server, &server)) {
      ERL_NIF_TERM msg = enif_make_tuple4(msg_env, atoms.snakebridge_output, which, atoms.nil,
                                          text_binary(msg_env, text, size));
      enif_send(t_env, &server, msg_env, msg);
    }
  }
  enif_free_env(msg_env);
  Py_RETURN_NONE;
}

PyMethodDef g_emit_def = {"emit", emit, METH_VARARGS, "Send text to the BEAM."};

// A TextIOBase so that print(), logging and `file=` users get what they expect.
const char* kWriterSource = R"PY(
import io

class SnakeBridgeWriter(io.TextIOBase):
    """Text stream whose writes are delivered to Elixir (see docs/getting_started.md)."""

    def __init__(self, emit, stream, name):
        self._emit = emit
        self._stream = stream
        self._name = name

    @property
    def name(self):
        return self._name

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "strict"

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not " + type(s).__name__)
        if s:
            self._emit(self._stream, s)
        return len(s)

    def flush(self):
        pass
)PY";

}  // namespace

CallerScope::CallerScope(ErlNifEnv* env, const ErlNifPid* pid, ERL_NIF_TERM tag, const std::atomic<int>* state,
                         int running_state) {
  t_env = env;
  t_pid = pid;
  t_tag = tag;
  t_state = state;
  t_running = running_state;
  t_wrote = false;
}

bool CallerScope::wrote() const { return t_wrote; }

CallerScope::~CallerScope() {
  t_env = nullptr;
  t_pid = nullptr;
  t_tag = 0;
  t_state = nullptr;
}

void install_python_output() {
  PyRef globals = check(PyDict_New());
  check_status(PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()));
  check_status(PyDict_SetItemString(globals.get(), "__name__", PyRef::steal(PyUnicode_FromString("snakebridge_io")).get()));
  check(PyRun_String(kWriterSource, Py_file_input, globals.get(), globals.get()));
  PyObject* cls = PyDict_GetItemString(globals.get(), "SnakeBridgeWriter");
  PyRef fn = check(PyCFunction_New(&g_emit_def, nullptr));
  PyRef out = check(PyObject_CallFunction(cls, "Ois", fn.get(), 1, "<stdout>"));
  PyRef err = check(PyObject_CallFunction(cls, "Ois", fn.get(), 2, "<stderr>"));
  check_status(PySys_SetObject("stdout", out.get()));
  check_status(PySys_SetObject("stderr", err.get()));
}

}  // namespace sb::nif
