#include "introspection.hpp"

#include <string>

#include "errors.hpp"
#include "operations.hpp"

namespace sb {

namespace {

// The helper lives in priv/python, which the front end puts on sys.path. It is
// imported without writing bytecode: a __pycache__ beside it would ship inside
// releases (and priv/ may be read-only there).
PyRef introspection_helper() {
  // PyImport_GetModule waits for a module another thread is still initialising
  // (two compilers describing at once), where a plain sys.modules lookup would
  // hand out a half-made module.
  PyRef name = check(PyUnicode_FromString("snakebridge_introspect"));
  if (PyObject* loaded = PyImport_GetModule(name.get())) return PyRef::steal(loaded);
  if (PyErr_Occurred()) throw_python_error();
  PyObject* flag = PySys_GetObject("dont_write_bytecode");  // borrowed
  PyRef saved = PyRef::borrow(flag ? flag : Py_False);
  check_status(PySys_SetObject("dont_write_bytecode", Py_True));
  PyRef helper = PyRef::steal(PyImport_ImportModule("snakebridge_introspect"));
  PySys_SetObject("dont_write_bytecode", saved.get());
  if (!helper) throw_python_error();
  return helper;
}

}  // namespace

PyRef describe_module(std::string_view module, int depth, bool include_private) {
  PyRef helper = introspection_helper();
  PyRef name = check(PyUnicode_FromStringAndSize(module.data(), static_cast<Py_ssize_t>(module.size())));
  return check(PyObject_CallMethod(helper.get(), "describe", "Oii", name.get(), depth, include_private ? 1 : 0));
}

}  // namespace sb
