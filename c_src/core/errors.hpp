// Python exceptions captured as plain C++ data, so that a front end can report them
// after the GIL is released and no Python exception is ever left pending.
#pragma once
#include "pyref.hpp"

#include <memory>
#include <stdexcept>
#include <string>

namespace sb {

struct PythonErrorInfo {
  std::string type;            // "ValueError"
  std::string qualified_type;  // "builtins.ValueError", "json.decoder.JSONDecodeError"
  std::string message;         // str(exc)
  std::string traceback;       // traceback.format_exception(exc), joined
  // snakebridge.ElixirError from a callback: the original {kind, reason, stacktrace}.
  std::shared_ptr<const struct TermPayload> elixir;
};

class PythonException : public std::runtime_error {
 public:
  explicit PythonException(PythonErrorInfo info)
      : std::runtime_error(info.type + ": " + info.message), info_(std::move(info)) {}
  const PythonErrorInfo& info() const { return info_; }

 private:
  PythonErrorInfo info_;
};

// Takes the pending Python exception (GIL held) and clears it. If none is pending,
// describes that instead of crashing: a C API function returned an error without
// setting one, which is a bug worth reporting rather than hiding.
PythonErrorInfo fetch_python_error();

[[noreturn]] void throw_python_error();

// For the common "NULL means an exception is set" convention of the C API.
inline PyRef check(PyObject* p) {
  if (!p) throw_python_error();
  return PyRef::steal(p);
}
inline void check_status(int status) {
  if (status < 0) throw_python_error();
}

}  // namespace sb
