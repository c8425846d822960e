// describe_library: the C++ side drives Python's own introspection (inspect,
// ast), kept in priv/python/snakebridge_introspect.py. GIL held.
#pragma once
#include <string_view>

#include "pyref.hpp"

namespace sb {

// A dict describing the module (see docs/generated_modules.md, "Schema"). Throws
// PythonException if the module cannot be imported or the helper fails; members
// that fail are listed in the result's "errors" instead.
PyRef describe_module(std::string_view module, int depth, bool include_private);

}  // namespace sb
