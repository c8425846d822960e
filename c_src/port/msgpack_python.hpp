// MessagePack <-> Python objects for the port protocol (docs/protocol.md,
// "Values"). GIL held for all of it.
#pragma once
#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <msgpack.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "../core/pyref.hpp"

namespace sb::port {

enum class Mode { Auto, Ref, Value };

// A value from the client that cannot become a Python object.
struct DecodeError : std::exception {
  std::string kind;     // "unconvertible", "unhashable", "collision", "too_deep", "unknown_handle"
  std::string message;
  uint64_t handle = 0;  // for unknown_handle
  const char* what() const noexcept override { return message.c_str(); }
};

// A Python object with no msgpack form in value mode.
struct EncodeError : std::exception {
  std::string python_type, repr;
  const char* what() const noexcept override { return "no msgpack value for a Python object"; }
};

enum Ext : int8_t {
  kHandle = 1, kBigInt = 2, kTuple = 3, kSet = 4, kFrozenSet = 5,
  kDate = 6, kTime = 7, kNaiveDateTime = 8, kDateTime = 9,
};

// msgpack -> Python.
PyRef to_python(const msgpack::object& o, bool hashable = false, int depth = 0);
// An args array -> tuple; a kwargs map (string keys) or nil -> dict or null.
PyRef to_args(const msgpack::object& o);
PyRef to_kwargs(const msgpack::object& o);

using Packer = msgpack::packer<msgpack::sbuffer>;

// Python -> msgpack. `top` applies Ref mode (a handle whatever the object).
void pack_python(Packer& pk, PyObject* o, Mode mode, bool top = true, int depth = 0);

// Text of a msgpack str (or nothing if `o` is not a str).
bool as_text(const msgpack::object& o, std::string* out);

}  // namespace sb::port
