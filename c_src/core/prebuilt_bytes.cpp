#include "prebuilt_bytes.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "interpreter.hpp"

namespace sb {
namespace {

PyMemAllocatorEx g_raw_at_start{};
PyMemAllocatorEx g_obj_at_start{};
std::atomic<bool> g_noted{false};

bool same(const PyMemAllocatorEx& a, const PyMemAllocatorEx& b) {
  return a.ctx == b.ctx && a.malloc == b.malloc && a.calloc == b.calloc && a.realloc == b.realloc &&
         a.free == b.free;
}

thread_local PrebuiltBytes* t_prebuilt = nullptr;

}  // namespace

void note_allocators_at_start() {
  PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &g_raw_at_start);
  PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &g_obj_at_start);
  g_noted.store(true, std::memory_order_release);
}

PyObject* bytes_without_gil(const char* data, size_t size) {
#if defined(Py_DEBUG) || defined(Py_TRACE_REFS)
  (void)data;
  (void)size;
  return nullptr;
#else
  if (!g_noted.load(std::memory_order_acquire)) return nullptr;
  // PyObject_Free (bytes' tp_free) gives a block its object allocator did not
  // make (pymalloc's blocks are at most 512 bytes) to the raw allocator, whose
  // default is the C allocator: only while both are still the start's.
  PyMemAllocatorEx raw, obj;
  PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &raw);
  PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &obj);
  if (!same(raw, g_raw_at_start) || !same(obj, g_obj_at_start) || size < 1024) return nullptr;
  auto* op = static_cast<PyBytesObject*>(malloc(offsetof(PyBytesObject, ob_sval) + size + 1));
  if (op == nullptr) return nullptr;
  Py_SET_TYPE(reinterpret_cast<PyObject*>(op), &PyBytes_Type);  // a static type: no reference to take
  Py_SET_REFCNT(reinterpret_cast<PyObject*>(op), 1);
  Py_SET_SIZE(reinterpret_cast<PyVarObject*>(op), static_cast<Py_ssize_t>(size));
  op->ob_shash = -1;
  memcpy(op->ob_sval, data, size);
  op->ob_sval[size] = '\0';
  return reinterpret_cast<PyObject*>(op);
#endif
}

PyObject* PrebuiltBytes::take(const char* data, size_t size) {
  for (Item& item : items_) {
    if (item.object != nullptr && item.data == data && item.size == size) return std::exchange(item.object, nullptr);
  }
  return nullptr;
}

void PrebuiltBytes::release_rest() {
  for (Item& item : items_) {
    if (item.object != nullptr) release_later(item.object);
  }
  items_.clear();
}

UsePrebuiltBytes::UsePrebuiltBytes(PrebuiltBytes* prebuilt) : outer_(std::exchange(t_prebuilt, prebuilt)) {}
UsePrebuiltBytes::~UsePrebuiltBytes() { t_prebuilt = outer_; }

PyObject* take_prebuilt_bytes(const char* data, size_t size) {
  return t_prebuilt != nullptr && size >= kPrebuildLeast ? t_prebuilt->take(data, size) : nullptr;
}

}  // namespace sb
