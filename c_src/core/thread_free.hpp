// Calls that cannot tell which thread runs them (docs/backends.md, "Calls that
// run where they arrive"). One decision for both front ends: the NIF runs such
// a call on the calling BEAM scheduler (c_src/nif/thread_free.cpp) instead of
// handing it to the caller's Python thread.
//
// Every other call runs on its caller's own Python thread (python_threads.hpp):
// Python code may read or change thread state, and its time is unbounded. A C
// function of `math` or `cmath` given numbers, or short flat lists of numbers,
// can do neither: it calls no Python code, sees no thread state, and finishes
// in microseconds (except math.factorial, comb and perm, whose time grows with
// an argument's value), so a hand-off to another thread would only add its own
// cost, larger than the call's.
#pragma once
#include <Python.h>

#include <cstddef>
#include <string_view>

#include "from_elixir.hpp"
#include "request.hpp"

namespace sb {

// How many arguments (and items of a list argument) such a call may have,
// and how many keyword arguments (math.isclose's tolerances, math.prod's start).
constexpr unsigned kThreadFreeMaxItems = 64;
constexpr unsigned kThreadFreeMaxKwargs = 4;

// Whether module.name may be such a call, from the names alone (no GIL): the
// arguments must still be numbers (floats, integers within 64 bits) or lists
// of at most kThreadFreeMaxItems numbers, and thread_free_function must find a
// C function.
bool thread_free_name(std::string_view module, std::string_view name);

// Whether a call request may be such a call, from its terms alone (no GIL):
// the module and function names (thread_free_name), and arguments that are
// numbers (floats, integers within 64 bits) or lists of at most
// kThreadFreeMaxItems numbers, keyword arguments (a keyword list or a map) at
// most kThreadFreeMaxKwargs names given numbers. Either front end's reader.
template <class Reader>
bool thread_free_call(Reader& r, const WireRequest<typename Reader::Value>& w) {
  using V = typename Reader::Value;
  auto text = [&](V v, std::string_view* out) {
    WireKind k = r.kind(v);
    if (k != WireKind::Atom && k != WireKind::Binary) return false;
    *out = r.text(v);
    return true;
  };
  auto number = [&](V v) {
    int64_t i;
    WireKind k = r.kind(v);
    return k == WireKind::Float || (k == WireKind::Integer && r.int64(v, &i));
  };
  auto short_list = [&](V v, size_t most) {
    size_t n;
    return r.kind(v) == WireKind::List && r.length(v, &n) && n <= most;
  };
  auto numbers = [&](V v) {
    bool ok = short_list(v, kThreadFreeMaxItems);
    if (ok) r.each_item(v, [&](V item) { ok = ok && number(item); });
    return ok;
  };
  std::string_view module, name;
  if (w.op != Op::Call || !text(w.target, &module) || !text(w.name, &name) || !thread_free_name(module, name)) {
    return false;
  }
  bool ok = short_list(w.args, kThreadFreeMaxItems);
  if (ok) r.each_item(w.args, [&](V item) { ok = ok && (number(item) || numbers(item)); });
  if (!ok) return false;
  auto named_number = [&](V key, V value) {
    WireKind k = r.kind(key);
    ok = ok && (k == WireKind::Atom || k == WireKind::Binary) && number(value);
  };
  size_t n;
  switch (r.kind(w.kwargs)) {
    case WireKind::Nil:
      return true;
    case WireKind::Map:
      if (!r.length(w.kwargs, &n) || n > kThreadFreeMaxKwargs) return false;
      r.each_entry(w.kwargs, named_number);
      return ok;
    case WireKind::List:
      if (!short_list(w.kwargs, kThreadFreeMaxKwargs)) return false;
      r.each_item(w.kwargs, [&](V pair) {
        size_t two;
        if (!ok || r.kind(pair) != WireKind::Tuple || !r.length(pair, &two) || two != 2) {
          ok = false;
          return;
        }
        V kv[2];
        size_t i = 0;
        r.each_item(pair, [&](V item) { kv[i++] = item; });
        named_number(kv[0], kv[1]);
      });
      return ok;
    default:
      return false;
  }
}

// GIL held. The C function `name` of the extension module `module`, already
// imported (borrowed), or null. Nothing is imported (an import runs Python
// code); a module of the user's named math, or a Python function put in place
// of a C one, gives null. A thread_free_name pair only.
PyObject* thread_free_function(std::string_view module, std::string_view name);

// GIL held, around such a call where it arrives: no automatic garbage
// collection meanwhile. The call's own allocations (the argument tuple) could
// start one, which runs finalizers (Python code) for an unbounded time; the
// collection is left to the next allocation on a Python thread instead.
class NoCollection {
 public:
  NoCollection();
  ~NoCollection();
  NoCollection(const NoCollection&) = delete;
  NoCollection& operator=(const NoCollection&) = delete;

 private:
  bool was_enabled_ = false;
};

}  // namespace sb
