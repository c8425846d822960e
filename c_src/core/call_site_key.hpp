// The call-site key: what identifies "the same call" for fast-path learning
// (call_sites.hpp), computed the same way by both front ends from a decoded
// request, without the GIL: the operation, the target (module name, or the
// object's type), the attribute, and a coarse shape of the arguments.
#pragma once
#include <cmath>
#include <cstdio>
#include <string>

#include "request.hpp"

namespace sb {

inline int bit_length(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

// A size class of a term: its kind and the bit length of its magnitude
// (numbers) or size (binaries, lists, maps). Durations usually grow with input
// size, so a call with much larger inputs is another call site, which starts on
// the pool again instead of inheriting a promotion earned on small ones.
template <class Reader>
void append_shape(Reader& r, typename Reader::Value v, std::string* key) {
  char buf[24];
  size_t n = 0;
  switch (r.kind(v)) {
    case WireKind::Integer: {
      int64_t i;
      int bits = r.int64(v, &i) ? bit_length(static_cast<uint64_t>(i < 0 ? -(i + 1) : i)) : 99;
      snprintf(buf, sizeof buf, "i%d", bits);
      break;
    }
    case WireKind::Float: {
      int exp = 0;
      frexp(r.float64(v), &exp);
      snprintf(buf, sizeof buf, "f%d", exp);
      break;
    }
    case WireKind::Binary:
    case WireKind::Bytes:
      snprintf(buf, sizeof buf, "b%d", bit_length(r.text(v).size()));
      break;
    case WireKind::List:
      r.length(v, &n);
      snprintf(buf, sizeof buf, "l%d", bit_length(n));
      break;
    case WireKind::Map:
    case WireKind::Set:
      r.length(v, &n);
      snprintf(buf, sizeof buf, "m%d", bit_length(n));
      break;
    case WireKind::Tuple:
      r.length(v, &n);
      snprintf(buf, sizeof buf, "t%zu", n);
      break;
    default:
      snprintf(buf, sizeof buf, "o");
  }
  key->append(buf);
}

// The shapes of the first 16 items of an argument list, or the values of a
// keyword list or map.
template <class Reader>
void append_shapes(Reader& r, typename Reader::Value container, std::string* key) {
  using V = typename Reader::Value;
  key->push_back('|');
  int n = 0;
  WireKind k = r.kind(container);
  if (k == WireKind::Map) {
    r.each_entry(container, [&](V, V value) {
      if (n++ < 16) append_shape(r, value, key);
    });
    return;
  }
  size_t len;
  if (k != WireKind::List || !r.length(container, &len)) return;
  r.each_item(container, [&](V item) {
    if (n++ >= 16) return;
    size_t arity = 0;
    if (r.kind(item) == WireKind::Tuple && r.length(item, &arity) && arity == 2) {
      // A keyword pair: the value's shape.
      int j = 0;
      r.each_item(item, [&](V x) {
        if (j++ == 1) append_shape(r, x, key);
      });
      return;
    }
    append_shape(r, item, key);
  });
}

template <class Reader>
std::string call_site_key(Reader& r, const WireRequest<typename Reader::Value>& w) {
  std::string key = op_name(w.op);
  key.push_back('|');
  auto text = [&](typename Reader::Value v) {
    WireKind k = r.kind(v);
    if (k == WireKind::Atom || k == WireKind::Binary) key.append(r.text(v));
  };
  if (r.kind(w.target) == WireKind::Object) {
    char ptr[32];
    snprintf(ptr, sizeof ptr, "%p", r.object_type(w.target));
    key.append(ptr);
  } else if (w.op == Op::Eval || w.op == Op::Exec) {
    text(w.code);
  } else {
    text(w.target);
  }
  key.push_back('|');
  text(w.name);
  switch (w.op) {
    case Op::Call:
      append_shapes(r, w.args, &key);
      append_shapes(r, w.kwargs, &key);
      break;
    case Op::Eval:
    case Op::Exec:
      append_shapes(r, w.globals, &key);
      break;
    case Op::SetAttr:
      key.push_back('|');
      append_shape(r, w.value, &key);
      break;
    default:
      break;
  }
  return key;
}

}  // namespace sb
