// Calls that cannot tell which thread runs them (docs/backends.md, "Calls that
// run where they arrive"). One decision for both front ends: the NIF runs such
// a call on the calling BEAM scheduler (c_src/nif/thread_free.cpp) instead of
// handing it to the caller's Python thread.
//
// Every other call runs on its caller's own Python thread (python_threads.hpp):
// Python code may read or change thread state, and its time is unbounded. A C
// function of `math` or `cmath` given numbers, or short flat lists of numbers,
// can do neither: it calls no Python code, sees no thread state, and finishes
// in microseconds (except math.factorial, comb and perm, whose time grows with
// an argument's value), so a hand-off to another thread would only add its own
// cost, larger than the call's.
#pragma once
#include <Python.h>

#include <cstddef>
#include <string_view>

namespace sb {

// How many arguments (and items of a list argument) such a call may have,
// and how many keyword arguments (math.isclose's tolerances, math.prod's start).
constexpr unsigned kThreadFreeMaxItems = 64;
constexpr unsigned kThreadFreeMaxKwargs = 4;

// Whether module.name may be such a call, from the names alone (no GIL): the
// arguments must still be numbers (floats, integers within 64 bits) or lists
// of at most kThreadFreeMaxItems numbers, and thread_free_function must find a
// C function.
bool thread_free_name(std::string_view module, std::string_view name);

// GIL held. The C function `name` of the extension module `module`, already
// imported (borrowed), or null. Nothing is imported (an import runs Python
// code); a module of the user's named math, or a Python function put in place
// of a C one, gives null. A thread_free_name pair only.
PyObject* thread_free_function(std::string_view module, std::string_view name);

}  // namespace sb
