/* Whether anyone holds the GIL right now, read without taking it (gil_probe.h).
 *
 * CPython has no public call for this; its runtime state has the flag
 * (_PyRuntime.ceval.gil.locked, an atomic int, in 3.9 to 3.11). This file is C,
 * not C++, because the internal headers that declare it are C only. Other
 * layouts (3.12 moved the GIL into each interpreter) answer "unknown", and the
 * caller then takes no chance. */
#define Py_BUILD_CORE 1
#include <Python.h>

#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030C0000
#include "internal/pycore_runtime.h"
#endif

#include "gil_probe.h"

int sb_gil_probe(void) {
#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030C0000
  return _Py_atomic_load_relaxed(&_PyRuntime.ceval.gil.locked) ? SB_GIL_HELD : SB_GIL_FREE;
#else
  return SB_GIL_UNKNOWN;
#endif
}
