// Large bytes between the BEAM and a port worker on the same machine, through
// POSIX shared-memory objects (docs/protocol.md, "Shared bytes"). Plain POSIX,
// for both ends: the NIF (c_src/nif/shared_bytes.cpp) and the port program
// (its reader and its reply sink).
#pragma once
#include <cstddef>
#include <string>

namespace sb {

// Writes all `size` bytes at the start of `fd`; 0, or the errno that stopped it.
int write_all(int fd, const char* data, size_t size);

// Maps the object `name` read-only and unlinks it, whatever comes of it (an
// object is read once). 0 with *data set (null for an empty object), or an
// errno: EBADMSG when the object does not hold exactly `size` bytes. Unmap
// with munmap(*data, size).
int take_shared(const std::string& name, size_t size, void** data);

}  // namespace sb
