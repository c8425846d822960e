#include "thread_free.hpp"

#include <string>

namespace sb {

bool thread_free_name(std::string_view module, std::string_view name) {
  if (module != "math" && module != "cmath") return false;
  if (name.empty() || name.size() > 32 || name.find('\0') != std::string_view::npos) return false;
  return name != "factorial" && name != "comb" && name != "perm";
}

namespace {

// GIL held. The name as a str, kept from this thread's last call (a caller in
// a loop names one function over and over).
PyObject* name_object(std::string_view name) {
  thread_local std::string last;
  thread_local PyObject* object = nullptr;
  if (object == nullptr || name != last) {
    PyObject* fresh = PyUnicode_FromStringAndSize(name.data(), static_cast<Py_ssize_t>(name.size()));
    if (fresh == nullptr) return nullptr;
    Py_XSETREF(object, fresh);
    last.assign(name);
  }
  return object;
}

}  // namespace

#if PY_VERSION_HEX >= 0x030A0000
NoCollection::NoCollection() : was_enabled_(PyGC_Disable() == 1) {}
NoCollection::~NoCollection() {
  if (was_enabled_) PyGC_Enable();
}
#else
NoCollection::NoCollection() {}
NoCollection::~NoCollection() {}
#endif

PyObject* thread_free_function(std::string_view module, std::string_view name) {
#if PY_VERSION_HEX < 0x030A0000
  // No PyGC_Disable before 3.10 (NoCollection): such calls go to their thread.
  return nullptr;
#endif
  static PyObject* math = PyUnicode_InternFromString("math");
  static PyObject* cmath = PyUnicode_InternFromString("cmath");
  PyObject* m = PyDict_GetItemWithError(PyImport_GetModuleDict(), module == "math" ? math : cmath);
  PyObject* key = m != nullptr && PyModule_Check(m) && PyModule_GetDef(m) != nullptr ? name_object(name) : nullptr;
  PyObject* f = key != nullptr ? PyDict_GetItemWithError(PyModule_GetDict(m), key) : nullptr;
  if (PyErr_Occurred()) PyErr_Clear();
  return f != nullptr && PyCFunction_Check(f) ? f : nullptr;
}

}  // namespace sb
