#include "operations.hpp"

#include <list>
#include <string>
#include <unordered_map>

#include "errors.hpp"

namespace sb {
namespace {

// Small LRU of compiled code keyed by (mode, source).
constexpr size_t kCodeCacheSize = 256;
std::list<std::pair<std::string, PyObject*>> g_code_lru;
std::unordered_map<std::string, std::list<std::pair<std::string, PyObject*>>::iterator> g_code_index;

PyRef compiled(std::string_view source, int mode) {
  std::string key;
  key.reserve(source.size() + 1);
  key.push_back(static_cast<char>(mode));
  key.append(source);
  auto it = g_code_index.find(key);
  if (it != g_code_index.end()) {
    g_code_lru.splice(g_code_lru.begin(), g_code_lru, it->second);
    return PyRef::borrow(it->second->second);
  }
  std::string text(source);
  PyRef code = check(Py_CompileString(text.c_str(), mode == Py_eval_input ? "<eval>" : "<exec>", mode));
  g_code_lru.emplace_front(key, PyRef(code).release());
  g_code_index[key] = g_code_lru.begin();
  if (g_code_lru.size() > kCodeCacheSize) {
    auto& last = g_code_lru.back();
    Py_DECREF(last.second);
    g_code_index.erase(last.first);
    g_code_lru.pop_back();
  }
  return code;
}

void ensure_builtins(PyObject* globals) {
  if (PyDict_GetItemString(globals, "__builtins__")) return;
  check_status(PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()));
}

PyObject* g_cancelled = nullptr;

}  // namespace

PyRef import_module(std::string_view name) {
  // sys.modules is the source of truth (a module replaced there is followed); a
  // dict lookup is much cheaper than the import machinery, which also takes the
  // import lock.
  PyRef key = check(PyUnicode_FromStringAndSize(name.data(), static_cast<Py_ssize_t>(name.size())));
  if (PyObject* mod = PyImport_GetModule(key.get())) return PyRef::steal(mod);
  if (PyErr_Occurred()) throw_python_error();
  return check(PyImport_Import(key.get()));
}

PyRef import_helper(const char* name) {
  // PyImport_GetModule waits for a module another thread is still initialising
  // (two compilers describing at once), where a plain sys.modules lookup would
  // hand out a half-made module.
  PyRef key = check(PyUnicode_FromString(name));
  if (PyObject* loaded = PyImport_GetModule(key.get())) return PyRef::steal(loaded);
  if (PyErr_Occurred()) throw_python_error();
  PyObject* flag = PySys_GetObject("dont_write_bytecode");  // borrowed
  PyRef saved = PyRef::borrow(flag ? flag : Py_False);
  check_status(PySys_SetObject("dont_write_bytecode", Py_True));
  PyRef helper = PyRef::steal(PyImport_Import(key.get()));
  PySys_SetObject("dont_write_bytecode", saved.get());
  if (!helper) throw_python_error();
  return helper;
}

PyRef get_path(PyObject* base, std::string_view dotted) {
  PyRef cur = PyRef::borrow(base);
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    std::string_view part = dotted.substr(start, dot == std::string_view::npos ? dotted.size() - start : dot - start);
    PyRef name = check(PyUnicode_FromStringAndSize(part.data(), static_cast<Py_ssize_t>(part.size())));
    cur = check(PyObject_GetAttr(cur.get(), name.get()));
    if (dot == std::string_view::npos) return cur;
    start = dot + 1;
  }
}

PyRef call_object(PyObject* callable, PyObject* args, PyObject* kwargs) {
  if (kwargs && PyDict_GET_SIZE(kwargs) == 0) kwargs = nullptr;
  return check(PyObject_Call(callable, args, kwargs));
}

PyRef eval_expression(std::string_view source, PyObject* globals) {
  ensure_builtins(globals);
  PyRef code = compiled(source, Py_eval_input);
  return check(PyEval_EvalCode(code.get(), globals, globals));
}

void exec_statements(std::string_view source, PyObject* globals) {
  ensure_builtins(globals);
  PyRef code = compiled(source, Py_file_input);
  check(PyEval_EvalCode(code.get(), globals, globals));
}

PyObject* cancelled_exception() {
  if (!g_cancelled) {
    g_cancelled = PyErr_NewExceptionWithDoc(
        "snakebridge.Cancelled",
        "Raised inside a call that SnakeBridge interrupted (timeout or cancel).",
        PyExc_BaseException, nullptr);
    if (!g_cancelled) throw_python_error();
  }
  return g_cancelled;
}

}  // namespace sb
