#include "introspection.hpp"

#include <string>

#include "errors.hpp"
#include "operations.hpp"

namespace sb {

PyRef describe_module(std::string_view module, int depth, bool include_private) {
  PyRef helper = import_helper("snakebridge_introspect");
  PyRef name = check(PyUnicode_FromStringAndSize(module.data(), static_cast<Py_ssize_t>(module.size())));
  return check(PyObject_CallMethod(helper.get(), "describe", "Oii", name.get(), depth, include_private ? 1 : 0));
}

}  // namespace sb
