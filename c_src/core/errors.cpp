#include "errors.hpp"

#include "elixir_terms.hpp"
#include "interrupts.hpp"

#include <cstring>

namespace sb {
namespace {

std::string to_utf8(PyObject* o) {
  if (!o) return {};
  PyRef s = PyRef::steal(PyUnicode_Check(o) ? (Py_INCREF(o), o) : PyObject_Str(o));
  if (!s) {
    PyErr_Clear();
    return "<unprintable>";
  }
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s.get(), &n);
  if (p) return std::string(p, static_cast<size_t>(n));
  // Lone surrogates have no UTF-8 form: show them escaped, as Python's repr would.
  PyErr_Clear();
  PyRef escaped = PyRef::steal(PyUnicode_AsEncodedString(s.get(), "utf-8", "backslashreplace"));
  if (!escaped) {
    PyErr_Clear();
    return "<unprintable>";
  }
  return std::string(PyBytes_AS_STRING(escaped.get()), static_cast<size_t>(PyBytes_GET_SIZE(escaped.get())));
}

std::string format_traceback(PyObject* exc) {
  PyRef mod = PyRef::steal(PyImport_ImportModule("traceback"));
  if (!mod) {
    PyErr_Clear();
    return {};
  }
  PyRef lines = PyRef::steal(PyObject_CallMethod(mod.get(), "format_exception", "O", exc));
  if (!lines) {
    PyErr_Clear();
    return {};
  }
  PyRef empty = PyRef::steal(PyUnicode_FromString(""));
  PyRef joined = PyRef::steal(PyUnicode_Join(empty.get(), lines.get()));
  if (!joined) {
    PyErr_Clear();
    return {};
  }
  return to_utf8(joined.get());
}

}  // namespace

PythonErrorInfo fetch_python_error() {
  // The user's work is over; what follows (formatting, maybe importing traceback)
  // must not be interrupted.
  end_interruptible();
  PythonErrorInfo info;
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  if (!type) {
    info.type = "SystemError";
    info.qualified_type = "builtins.SystemError";
    info.message = "a Python C API call failed without setting an exception";
    return info;
  }
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  PyRef t = PyRef::steal(type), v = PyRef::steal(value), trace = PyRef::steal(tb);

  auto* tp = reinterpret_cast<PyTypeObject*>(t.get());
  const char* full = tp->tp_name;  // "json.decoder.JSONDecodeError" or "ValueError"
  const char* dot = strrchr(full, '.');
  info.type = dot ? dot + 1 : full;
  PyRef module = PyRef::steal(PyObject_GetAttrString(t.get(), "__module__"));
  PyRef qualname = PyRef::steal(PyType_GetQualName(tp));  // "Outer.Error" for a nested class
  if (PyErr_Occurred()) PyErr_Clear();
  std::string mod = module ? to_utf8(module.get()) : "builtins";
  info.qualified_type = mod + "." + (qualname ? to_utf8(qualname.get()) : info.type);
  info.message = v ? to_utf8(v.get()) : std::string();
  if (v) info.traceback = format_traceback(v.get());
  if (v) info.elixir = elixir_error_original(v.get());
  if (PyErr_Occurred()) PyErr_Clear();
  return info;
}

void throw_python_error() { throw PythonException(fetch_python_error()); }

}  // namespace sb
