// The operations of the runtime API, on Python objects: what both front ends run
// once they have turned their wire format into PyObjects. GIL held throughout.
#pragma once
#include "pyref.hpp"

#include <string>
#include <string_view>

namespace sb {

// A module by name: from sys.modules when imported (cheap), else imported.
PyRef import_module(std::string_view name);

// A helper module of priv/python (which the front end puts on sys.path):
// snakebridge_introspect, snakebridge_columns. Imported without writing
// bytecode: a __pycache__ beside it would ship inside releases (and priv/ may
// be read-only there).
PyRef import_helper(const char* name);

// Attribute lookup that follows dots: resolve(module, "datetime.now").
PyRef get_path(PyObject* base, std::string_view dotted);

// target.name(*args, **kwargs); `target` is a module (by name) or an object.
// kwargs may be null.
PyRef call_object(PyObject* callable, PyObject* args, PyObject* kwargs);

// eval(expression, globals) and exec(code, globals). `globals` is a dict the caller
// owns; __builtins__ is added when missing. Compiled code is cached by source text.
PyRef eval_expression(std::string_view source, PyObject* globals);
void exec_statements(std::string_view source, PyObject* globals);

// The exception class used to interrupt a call from outside (timeouts, cancels).
// A BaseException, so `except Exception:` in user code does not swallow it.
PyObject* cancelled_exception();

}  // namespace sb
