// The port program's decoder: a request frame's array ([id, op, thread, args...],
// docs/protocol.md, "Requests") as the core's WireRequest. The values stay
// MessagePack objects; the core builds them (core/request.hpp).
#pragma once
#include <string>

#include "../core/request.hpp"
#include "msgpack_reader.hpp"

namespace sb::port {

// Elements past the end of the array are nil. False for an unknown operation
// or an element of the wrong type (a number where one is due, the mode).
bool decode_request(const msgpack::object_array& a, const std::string& op, WireRequest<const msgpack::object*>* w);

}  // namespace sb::port
