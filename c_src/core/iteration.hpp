// Pulling items from a Python iterator in bounded batches: the consumer decides
// when to ask for more, so the producer never runs more than one batch ahead.
#pragma once
#include <cstddef>
#include <vector>

#include "errors.hpp"
#include "pyref.hpp"

namespace sb {

enum class BatchEnd { More, Done, Failed };

struct Batch {
  std::vector<PyRef> items;
  BatchEnd end = BatchEnd::More;
  PythonErrorInfo error;  // when end == Failed: raised after `items` were produced
};

// GIL held. Calls next() up to `max` times.
Batch next_batch(PyObject* iterator, size_t max);

// GIL held. Closes a generator (runs its `finally`) or anything with close();
// errors raised while closing are returned, not thrown.
bool close_iterator(PyObject* iterator, PythonErrorInfo* error);

}  // namespace sb
