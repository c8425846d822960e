#include "executor.hpp"

#include "introspection.hpp"
#include "operations.hpp"

namespace sb {
namespace {

Outcome with(Outcome::Kind kind, PyRef value = {}) {
  Outcome out;
  out.kind = kind;
  out.value = std::move(value);
  return out;
}

std::vector<PyRef> column_names(const std::vector<Column>& columns) {
  std::vector<PyRef> names;
  for (const Column& c : columns) names.push_back(c.name);
  return names;
}

}  // namespace

bool parse_op(std::string_view n, Op* out) {
  static const std::pair<std::string_view, Op> names[] = {
      {"call", Op::Call},         {"getattr", Op::GetAttr},     {"setattr", Op::SetAttr}, {"eval", Op::Eval},
      {"exec", Op::Exec},         {"describe", Op::Describe},   {"next", Op::Next},       {"close", Op::Close},
      {"to_elixir", Op::ToElixir}, {"repr", Op::Repr},       {"to_array", Op::ToArray}, {"to_columns", Op::ToColumns}};
  for (const auto& [name, op] : names) {
    if (name == n) {
      *out = op;
      return true;
    }
  }
  return false;
}

const char* op_name(Op op) {
  switch (op) {
    case Op::Call: return "call";
    case Op::GetAttr: return "getattr";
    case Op::SetAttr: return "setattr";
    case Op::Eval: return "eval";
    case Op::Exec: return "exec";
    case Op::Describe: return "describe";
    case Op::Next: return "next";
    case Op::Close: return "close";
    case Op::ToElixir: return "to_elixir";
    case Op::Repr: return "repr";
    case Op::ToArray: return "to_array";
    case Op::ToColumns: return "to_columns";
  }
  return "?";
}

bool parse_mode(std::string_view n, ReturnMode* out) {
  if (n == "auto") *out = ReturnMode::Auto;
  else if (n == "ref") *out = ReturnMode::Ref;
  else if (n == "value") *out = ReturnMode::Value;
  else return false;
  return true;
}

const char* refusal_reason_name(RefusalReason r) {
  switch (r) {
    case RefusalReason::Unconvertible: return "unconvertible";
    case RefusalReason::Unhashable: return "unhashable";
    case RefusalReason::Collision: return "collision";
    case RefusalReason::TooDeep: return "too_deep";
  }
  return "unconvertible";
}

Outcome execute(Request& q) {
  switch (q.op) {
    case Op::Call:
      return with(Outcome::Result, call_object(q.target.get(), q.args.get(), q.kwargs.get()));
    case Op::GetAttr:
      return with(Outcome::Result, get_path(q.target.get(), q.name));
    case Op::SetAttr: {
      PyRef name = check(PyUnicode_FromStringAndSize(q.name.data(), static_cast<Py_ssize_t>(q.name.size())));
      check_status(PyObject_SetAttr(q.target.get(), name.get(), q.value.get()));
      return with(Outcome::Nil);
    }
    case Op::Eval:
      return with(Outcome::Result, eval_expression(q.code, q.globals.get()));
    case Op::Exec:
      exec_statements(q.code, q.globals.get());
      if (PyDict_DelItemString(q.globals.get(), "__builtins__") < 0) PyErr_Clear();
      return with(Outcome::Namespace, q.globals);
    case Op::Describe:
      return with(Outcome::Deep, describe_module(q.name, q.depth, q.include_private));
    case Op::Next: {
      Outcome out = with(Outcome::Items);
      out.batch = next_batch(q.target.get(), q.max);
      return out;
    }
    case Op::Close: {
      PythonErrorInfo error;
      if (!close_iterator(q.target.get(), &error)) throw PythonException(error);
      return with(Outcome::Nil);
    }
    case Op::ToElixir:
      return with(Outcome::Deep, q.target);
    case Op::Repr: {
      Outcome out = with(Outcome::Text);
      out.text = short_repr(q.target.get(), q.max);
      return out;
    }
    case Op::ToArray: {
      Outcome out = with(Outcome::Array);
      out.array = export_array(q.target.get(), q.flag);
      return out;
    }
    case Op::ToColumns: {
      Outcome out = with(Outcome::Columns);
      out.columns = dataframe_columns(q.target.get(), q.flag);
      if (keys_collide(column_names(out.columns))) {
        PyErr_SetString(PyExc_ValueError, "to_columns: two column names become the same Elixir term");
        throw_python_error();
      }
      return out;
    }
  }
  throw BadRequest("unknown operation");
}

}  // namespace sb
