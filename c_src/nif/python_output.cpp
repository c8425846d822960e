#include "python_output.hpp"

#include <cstring>

#include "../core/errors.hpp"
#include "atoms.hpp"

namespace sb::nif {
namespace {

thread_local ErlNifEnv* t_env = nullptr;
thread_local const ErlNifPid* t_pid = nullptr;

// emit(stream, text): stream 1 is stdout, 2 stderr.
PyObject* emit(PyObject*, PyObject* args) {
  int stream;
  const char* text;
  Py_ssize_t size;
  if (!PyArg_ParseTuple(args, "is#", &stream, &text, &size)) return nullptr;
  ErlNifPid server;
  if (enif_whereis_pid(t_env, atoms.output_server, &server)) {
    ErlNifEnv* msg_env = enif_alloc_env();
    ERL_NIF_TERM bin;
    unsigned char* buf = enif_make_new_binary(msg_env, static_cast<size_t>(size), &bin);
    memcpy(buf, text, static_cast<size_t>(size));
    ERL_NIF_TERM who = t_pid ? enif_make_pid(msg_env, t_pid) : atoms.nil;
    ERL_NIF_TERM msg = enif_make_tuple4(msg_env, atoms.snakebridge_output,
                                        stream == 2 ? atoms.stderr_ : atoms.stdout_, who, bin);
    enif_send(t_env, &server, msg_env, msg);
    enif_free_env(msg_env);
  }
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

CallerScope::CallerScope(ErlNifEnv* env, const ErlNifPid* pid) {
  t_env = env;
  t_pid = pid;
}

CallerScope::~CallerScope() {
  t_env = nullptr;
  t_pid = nullptr;
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
