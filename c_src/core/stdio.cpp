#include "stdio.hpp"

#include "errors.hpp"

namespace sb {
namespace {

PyMethodDef g_emit_def = {"emit", nullptr, METH_VARARGS, "Deliver text written by Python."};

// A TextIOBase so that print(), logging and `file=` users get what they expect.
const char* kWriterSource = R"PY(
import io

class SnakeBridgeWriter(io.TextIOBase):
    """Text stream whose writes are delivered to Elixir (docs/getting_started.md, Output)."""

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

void install_stdio(PyCFunction emit) {
  g_emit_def.ml_meth = emit;
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

}  // namespace sb
