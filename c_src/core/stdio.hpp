// sys.stdout / sys.stderr for an embedding: text streams whose writes call
// `emit(stream, text)` (stream 1 stdout, 2 stderr), a C function each front end
// provides (the NIF sends it to Elixir processes, the port program as frames).
#pragma once
#include "pyref.hpp"

namespace sb {

// GIL held. Replaces sys.stdout and sys.stderr.
void install_stdio(PyCFunction emit);

}  // namespace sb
