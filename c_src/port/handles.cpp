#include "handles.hpp"

#include "../core/interpreter.hpp"

namespace sb::port {

HandleTable& handles() {
  static HandleTable* table = new HandleTable();
  return *table;
}

uint64_t HandleTable::add(PyObject* obj) {
  Py_INCREF(obj);
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_++;
  objects_.emplace(id, obj);
  return id;
}

PyObject* HandleTable::get(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(id);
  return it == objects_.end() ? nullptr : it->second;
}

const void* HandleTable::type_of(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(id);
  return it == objects_.end() ? nullptr : static_cast<const void*>(Py_TYPE(it->second));
}

void HandleTable::release(uint64_t id) {
  PyObject* obj = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(id);
    if (it == objects_.end()) return;
    obj = it->second;
    objects_.erase(it);
  }
  release_later(obj);
}

size_t HandleTable::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

}  // namespace sb::port
