// Limits of the type mapping, one number each, for both backends
// (docs/type_mapping.md, "Limits").
#pragma once

namespace sb {

// Python values are converted to Elixir terms this many levels deep; deeper
// containers stay objects (:auto) or are refused (:value). Python code is not
// recursed into any further than this on any thread.
constexpr int kMaxResultDepth = 1000;

// Elixir terms nested deeper than this are refused (:too_deep). Above
// kMaxResultDepth, so whatever SnakeBridge returned can be passed back.
constexpr int kMaxArgumentDepth = 1024;

// Dimensions of a SnakeBridge.Array: what Python's buffer protocol allows
// (PyBUF_MAX_NDIM).
constexpr size_t kMaxArrayDims = 64;

}  // namespace sb
