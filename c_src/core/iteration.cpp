#include "iteration.hpp"

namespace sb {

Batch next_batch(PyObject* iterator, size_t max) {
  Batch batch;
  batch.items.reserve(max < 64 ? max : 64);
  iternextfunc next = Py_TYPE(iterator)->tp_iternext;
  if (!next || next == &_PyObject_NextNotImplemented) {
    PyErr_Format(PyExc_TypeError, "'%.200s' object is not an iterator", Py_TYPE(iterator)->tp_name);
    batch.end = BatchEnd::Failed;
    batch.error = fetch_python_error();
    return batch;
  }
  while (batch.items.size() < max) {
    PyObject* item = next(iterator);
    if (item) {
      batch.items.push_back(PyRef::steal(item));
      continue;
    }
    if (PyErr_Occurred()) {
      if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        PyErr_Clear();
        batch.end = BatchEnd::Done;
      } else {
        batch.end = BatchEnd::Failed;
        batch.error = fetch_python_error();
      }
    } else {
      batch.end = BatchEnd::Done;
    }
    break;
  }
  return batch;
}

bool close_iterator(PyObject* iterator, PythonErrorInfo* error) {
  PyRef close = PyRef::steal(PyObject_GetAttrString(iterator, "close"));
  if (!close) {
    PyErr_Clear();  // not a generator: nothing to close
    return true;
  }
  PyRef result = PyRef::steal(PyObject_CallNoArgs(close.get()));
  if (!result) {
    *error = fetch_python_error();
    return false;
  }
  return true;
}

}  // namespace sb
