#include "elixir_terms.hpp"

#include <chrono>
#include <utility>
#include <vector>

#include "errors.hpp"
#include "interpreter.hpp"
#include "interrupter.hpp"
#include "operations.hpp"
#include "python_threads.hpp"

namespace sb {
namespace {

ElixirHost* g_host = nullptr;
thread_local InterruptTarget* t_target = nullptr;

struct TermObject {
  PyObject_HEAD
  std::shared_ptr<const TermPayload>* payload;
};

PyObject* g_types[5] = {};  // by TermKind
PyObject* g_elixir_error = nullptr;
PyObject* g_module = nullptr;

const char* const kNames[5] = {"Pid", "Reference", "Port", "Function", "Term"};

void term_dealloc(PyObject* self) {
  auto* t = reinterpret_cast<TermObject*>(self);
  delete t->payload;
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyObject* term_richcompare(PyObject* a, PyObject* b, int op) {
  if (op != Py_EQ && op != Py_NE) Py_RETURN_NOTIMPLEMENTED;
  auto pa = elixir_term_payload(a);
  auto pb = elixir_term_payload(b);
  if (!pa || !pb) Py_RETURN_NOTIMPLEMENTED;
  bool same = pa->same(*pb);
  return PyBool_FromLong((op == Py_EQ) == same);
}

Py_hash_t term_hash(PyObject* self) {
  Py_hash_t h = static_cast<Py_hash_t>(elixir_term_payload(self)->hash());
  return h == -1 ? -2 : h;
}

PyObject* term_repr(PyObject* self) {
  std::string text = elixir_term_payload(self)->describe();
  return PyUnicode_FromFormat("<%s %s>", Py_TYPE(self)->tp_name, text.c_str());  // "snakebridge.Pid"
}

// Immutable: copies are the object itself.
PyObject* term_copy(PyObject* self, PyObject*) { return Py_NewRef(self); }

PyObject* function_call(PyObject* self, PyObject* args, PyObject* kwargs) {
  if (!g_host) {
    PyErr_SetString(PyExc_RuntimeError, "no Elixir side to call");
    return nullptr;
  }
  auto payload = elixir_term_payload(self);
  return g_host->call(payload.get(), nullptr, nullptr, args, kwargs);
}

PyMethodDef term_methods[] = {
    {"__copy__", term_copy, METH_NOARGS, nullptr},
    {"__deepcopy__", term_copy, METH_O, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyObject* make_type(TermKind kind, const char* doc) {
  static std::string names[5];
  std::string& name = names[static_cast<int>(kind)];
  name = std::string("snakebridge.") + kNames[static_cast<int>(kind)];
  std::vector<PyType_Slot> slots = {
      {Py_tp_dealloc, reinterpret_cast<void*>(term_dealloc)},
      {Py_tp_richcompare, reinterpret_cast<void*>(term_richcompare)},
      {Py_tp_hash, reinterpret_cast<void*>(term_hash)},
      {Py_tp_repr, reinterpret_cast<void*>(term_repr)},
      {Py_tp_methods, term_methods},
      {Py_tp_doc, const_cast<char*>(doc)},
  };
  if (kind == TermKind::Function) slots.push_back({Py_tp_call, reinterpret_cast<void*>(function_call)});
  slots.push_back({0, nullptr});
  PyType_Spec spec = {name.c_str(), sizeof(TermObject), 0, Py_TPFLAGS_DEFAULT, slots.data()};
  return check(PyType_FromSpec(&spec)).release();
}

// snakebridge.call(module, function, *args)
PyObject* module_call(PyObject*, PyObject* args) {
  if (PyTuple_GET_SIZE(args) < 2 || !PyUnicode_Check(PyTuple_GET_ITEM(args, 0)) ||
      !PyUnicode_Check(PyTuple_GET_ITEM(args, 1))) {
    PyErr_SetString(PyExc_TypeError, "call(module: str, function: str, *args)");
    return nullptr;
  }
  if (!g_host) {
    PyErr_SetString(PyExc_RuntimeError, "no Elixir side to call");
    return nullptr;
  }
  PyRef rest = check(PyTuple_GetSlice(args, 2, PyTuple_GET_SIZE(args)));
  return g_host->call(nullptr, PyTuple_GET_ITEM(args, 0), PyTuple_GET_ITEM(args, 1), rest.get(), nullptr);
}

// snakebridge.send(pid, message)
PyObject* module_send(PyObject*, PyObject* args) {
  PyObject *pid, *message;
  if (!PyArg_ParseTuple(args, "OO:send", &pid, &message)) return nullptr;
  auto payload = elixir_term_payload(pid);
  if (!payload || !PyObject_TypeCheck(pid, reinterpret_cast<PyTypeObject*>(g_types[0]))) {
    PyErr_Format(PyExc_TypeError, "send: expected a snakebridge.Pid, got %.100s", Py_TYPE(pid)->tp_name);
    return nullptr;
  }
  if (!g_host) {
    PyErr_SetString(PyExc_RuntimeError, "no Elixir side to send to");
    return nullptr;
  }
  if (!g_host->send(*payload, message)) return nullptr;
  Py_RETURN_NONE;
}

PyMethodDef module_methods[] = {
    {"call", module_call, METH_VARARGS, "call(module, function, *args): runs an Elixir function, returns its result"},
    {"send", module_send, METH_VARARGS, "send(pid, message): sends message to an Elixir process"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_snakebridge", "SnakeBridge's built-in half of `snakebridge`.", -1,
                          module_methods};

}  // namespace

PyRef make_elixir_term(TermKind kind, std::shared_ptr<const TermPayload> payload) {
  auto* type = reinterpret_cast<PyTypeObject*>(g_types[static_cast<int>(kind)]);
  PyObject* o = type->tp_alloc(type, 0);
  if (!o) throw_python_error();
  reinterpret_cast<TermObject*>(o)->payload = new std::shared_ptr<const TermPayload>(std::move(payload));
  return PyRef::steal(o);
}

std::shared_ptr<const TermPayload> elixir_term_payload(PyObject* o) {
  for (PyObject* t : g_types) {
    if (t && Py_TYPE(o) == reinterpret_cast<PyTypeObject*>(t)) return *reinterpret_cast<TermObject*>(o)->payload;
  }
  return nullptr;
}

void set_elixir_host(ElixirHost* host) { g_host = host; }

CurrentRequest::CurrentRequest(InterruptTarget* target) : outer_(std::exchange(t_target, target)) {}
CurrentRequest::~CurrentRequest() { t_target = outer_; }
InterruptTarget* CurrentRequest::target() { return t_target; }

CallbackWait::CallbackWait() : thread_(PythonThread::current()) {}

void CallbackWait::notify() {
  if (thread_) return thread_->wake();
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
}

bool CallbackWait::wait(const std::function<bool()>& done) {
  InterruptTarget* target = t_target;
  auto abandoned = [target] { return target && target->interrupted.load(); };
  bool ok;
  {
    // The requests run meanwhile take and let go of the GIL themselves.
    bool keep = keep_gil_between_scopes(false);
    GilRelease release;
    if (thread_) {
      ok = thread_->serve_until(done, abandoned);
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      while (!(ok = done()) && !abandoned()) cv_.wait_for(lock, std::chrono::milliseconds(5));
    }
    keep_gil_between_scopes(keep);
  }
  if (!ok) PyErr_SetNone(cancelled_exception());
  return ok;
}

void set_elixir_error(const std::string& message, const std::string& stacktrace,
                      std::shared_ptr<const TermPayload> original) {
  PyRef text = check(PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()), "replace"));
  PyRef exc = check(PyObject_CallOneArg(g_elixir_error, text.get()));
  PyRef trace = check(PyUnicode_DecodeUTF8(stacktrace.data(), static_cast<Py_ssize_t>(stacktrace.size()), "replace"));
  check_status(PyObject_SetAttrString(exc.get(), "elixir_stacktrace", trace.get()));
  if (original) {
    PyRef held = make_elixir_term(TermKind::Other, std::move(original));
    check_status(PyObject_SetAttrString(exc.get(), "_elixir", held.get()));
  }
  PyErr_SetObject(g_elixir_error, exc.get());
}

std::shared_ptr<const TermPayload> elixir_error_original(PyObject* exception) {
  if (!g_elixir_error || !PyObject_TypeCheck(exception, reinterpret_cast<PyTypeObject*>(g_elixir_error))) return nullptr;
  PyRef held = PyRef::steal(PyObject_GetAttrString(exception, "_elixir"));
  if (!held) {
    PyErr_Clear();
    return nullptr;
  }
  return elixir_term_payload(held.get());
}

void install_elixir_module() {
  g_types[0] = make_type(TermKind::Pid, "An Elixir pid: comes back to Elixir as the same pid.");
  g_types[1] = make_type(TermKind::Reference, "An Elixir reference: comes back to Elixir as the same reference.");
  g_types[2] = make_type(TermKind::Port, "An Elixir port: comes back to Elixir as the same port.");
  g_types[3] = make_type(TermKind::Function,
                         "An Elixir function: calling it runs the function in Elixir; it comes back to Elixir as the "
                         "same function.");
  g_types[4] = make_type(TermKind::Other, "An Elixir term kept for Elixir.");
  PyRef dict = check(PyDict_New());
  PyRef none = PyRef::borrow(Py_None);
  check_status(PyDict_SetItemString(dict.get(), "elixir_stacktrace", none.get()));
  g_elixir_error = PyErr_NewExceptionWithDoc(
      "snakebridge.ElixirError",
      "An Elixir exception, exit or throw in a function Python called: str() is Elixir's message, "
      "elixir_stacktrace its formatted stacktrace.",
      PyExc_Exception, dict.get());
  if (!g_elixir_error) throw_python_error();
  g_module = check(PyModule_Create(&module_def)).release();
  for (int i = 0; i < 4; ++i) check_status(PyModule_AddObjectRef(g_module, kNames[i], g_types[i]));
  check_status(PyModule_AddObjectRef(g_module, "ElixirError", g_elixir_error));
  check_status(PyModule_AddObjectRef(g_module, "Cancelled", cancelled_exception()));
  PyObject* modules = PyImport_GetModuleDict();
  check_status(PyDict_SetItemString(modules, "_snakebridge", g_module));
}

}  // namespace sb
