// Python objects the port program hands out as handles (msgpack ext type 1).
// The table owns one reference per handle until the client releases it.
#pragma once
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "../core/pyref.hpp"

namespace sb::port {

class HandleTable {
 public:
  // GIL held. Registers `obj` (a new handle each time) and returns its id.
  uint64_t add(PyObject* obj);
  // GIL held. The object for `id` (borrowed), or null.
  PyObject* get(uint64_t id);
  // No GIL needed: the type of the object for `id` (null if none), for call-site
  // keys. The table's reference keeps the object, and so its type, alive.
  const void* type_of(uint64_t id);
  // No GIL needed: the references are released by the next thread holding it.
  void release(uint64_t id);
  size_t size();

 private:
  std::mutex mu_;
  std::unordered_map<uint64_t, PyObject*> objects_;
  uint64_t next_ = 1;
};

HandleTable& handles();

}  // namespace sb::port
