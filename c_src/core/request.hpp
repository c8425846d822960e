// What a request means, once for both backends (docs/architecture.md): a front
// end decodes its wire into a WireRequest (values still in wire form), the core
// builds the Python objects (build_request) and runs it (executor.hpp).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "from_elixir.hpp"
#include "operations.hpp"
#include "to_elixir.hpp"

namespace sb {

enum class Op { Call, GetAttr, SetAttr, Eval, Exec, Describe, Next, Close, ToElixir, Repr, ToArray, ToColumns };

bool parse_op(std::string_view name, Op* out);
const char* op_name(Op op);
bool parse_mode(std::string_view name, ReturnMode* out);

// A decoded request whose values are still in the wire's form. Fields an
// operation does not use hold the wire's nil.
//   call      target (module name or object), name (nil: the target itself), args, kwargs, mode
//   getattr   target, name, mode          setattr  target, name, value
//   eval      code, globals, mode          exec     code, globals, mode
//   describe  target (module name), depth, include_private
//   next      target (an iterator object), max, mode
//   close     target                       to_elixir target      repr  target, max
//   to_array  target, flag (copy)          to_columns target, flag (index), mode
template <class V>
struct WireRequest {
  Op op = Op::Call;
  V target{}, name{}, args{}, kwargs{}, value{}, code{}, globals{};
  int64_t depth = 0;
  bool include_private = false;
  bool flag = false;
  uint64_t max = 0;
  ReturnMode mode = ReturnMode::Auto;
};

// A request with its Python objects built.
struct Request {
  Op op = Op::Call;
  PyRef target;      // call: the callable itself; otherwise the object or module
  std::string name;  // getattr/setattr: the attribute; describe: the module
  PyRef args, kwargs, value, globals;
  std::string code;
  int depth = 0;
  bool include_private = false;
  bool flag = false;  // to_array: copy; to_columns: index
  size_t max = 0;
  ReturnMode mode = ReturnMode::Auto;
};

// The port program's handle table lost this object (released, or another
// worker's): a dead reference.
struct UnknownObject : std::exception {
  uint64_t id = 0;
  const char* what() const noexcept override { return "unknown object"; }
};

// GIL held. A call of `callable` found already, with its arguments converted.
template <class Reader>
Request call_request(Reader& r, PyRef callable, typename Reader::Value args, typename Reader::Value kwargs,
                     ReturnMode mode) {
  FromElixir<Reader> b(r);
  Request q;
  q.op = Op::Call;
  q.mode = mode;
  q.target = std::move(callable);
  q.args = b.args(args);
  q.kwargs = b.kwargs(kwargs);
  return q;
}

// GIL held. Resolves targets (importing modules) and converts every argument;
// throws Refusal, BadRequest, UnknownObject or PythonException. The order is
// the user's: the target and the attribute are looked up before arguments are
// converted.
template <class Reader>
Request build_request(Reader& r, const WireRequest<typename Reader::Value>& w) {
  using V = typename Reader::Value;
  FromElixir<Reader> b(r);
  Request q;
  q.op = w.op;
  q.mode = w.mode;
  auto target = [&](V t) -> PyRef {
    if (r.kind(t) == WireKind::Object) {
      if (PyObject* o = r.object(t)) return PyRef::borrow(o);
      throw BadRequest("the target Python object no longer exists (objects live as long as the VM that made them)");
    }
    return import_module(b.text(t, "the target"));
  };
  auto object = [&](V t) -> PyRef {
    if (r.kind(t) != WireKind::Object) throw BadRequest("the target must be a Python object");
    return target(t);
  };
  switch (w.op) {
    case Op::Call: {
      PyRef t = target(w.target);
      std::string name = r.kind(w.name) == WireKind::Nil ? std::string() : b.text(w.name, "the function name");
      return call_request(r, name.empty() ? t : get_path(t.get(), name), w.args, w.kwargs, w.mode);
    }
    case Op::GetAttr:
    case Op::SetAttr:
      q.target = target(w.target);
      q.name = b.text(w.name, "the attribute name");
      if (w.op == Op::SetAttr) q.value = b.value(w.value);
      break;
    case Op::Eval:
    case Op::Exec:
      q.code = b.text(w.code, "the code");
      q.globals = b.globals(w.globals);
      break;
    case Op::Describe:
      q.name = b.text(w.target, "the module name");
      q.depth = static_cast<int>(w.depth);
      q.include_private = w.include_private;
      break;
    case Op::Next:
    case Op::Close:
      q.target = object(w.target);
      q.max = w.max;
      if (w.op == Op::Next && q.max == 0) throw BadRequest("max must be positive");
      break;
    case Op::ToElixir:
    case Op::Repr:
      q.target = target(w.target);
      q.max = w.max;
      break;
    case Op::ToArray:
    case Op::ToColumns:
      q.target = object(w.target);
      q.flag = w.flag;
      break;
  }
  return q;
}

}  // namespace sb
