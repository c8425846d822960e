#include "request_decoder.hpp"

namespace sb::port {

bool decode_request(const msgpack::object_array& a, const std::string& op, WireRequest<const msgpack::object*>* w) {
  static const msgpack::object nil;  // a default object is nil
  if (!parse_op(op, &w->op)) return false;
  auto at = [&](uint32_t i) { return i < a.size ? &a.ptr[i] : &nil; };
  auto uint_at = [&](uint32_t i, uint64_t* out) {
    if (at(i)->type != msgpack::type::POSITIVE_INTEGER) return false;
    *out = at(i)->via.u64;
    return true;
  };
  auto mode_at = [&](uint32_t i) {
    std::string m;
    if (at(i)->type == msgpack::type::NIL) return true;
    return as_text(*at(i), &m) && parse_mode(m, &w->mode);
  };
  w->target = w->name = w->args = w->kwargs = w->value = w->code = w->globals = &nil;
  uint64_t n = 0;
  switch (w->op) {
    case Op::Call:
      w->target = at(3), w->name = at(4), w->args = at(5), w->kwargs = at(6);
      return mode_at(7);
    case Op::GetAttr:
      w->target = at(3), w->name = at(4);
      return mode_at(5);
    case Op::SetAttr:
      w->target = at(3), w->name = at(4), w->value = at(5);
      return true;
    case Op::Eval:
    case Op::Exec:
      w->code = at(3), w->globals = at(4);
      return mode_at(5);
    case Op::Describe:
      if (!uint_at(4, &n)) return false;
      w->target = at(3), w->depth = static_cast<int64_t>(n);
      w->include_private = at(5)->type == msgpack::type::BOOLEAN && at(5)->via.boolean;
      return true;
    case Op::Next:
      if (!uint_at(4, &w->max)) return false;
      w->target = at(3);
      return mode_at(5);
    case Op::Repr:
      if (!uint_at(4, &w->max)) return false;
      w->target = at(3);
      return true;
    case Op::Close:
    case Op::ToElixir:
      w->target = at(3);
      return true;
    case Op::ToArray:
    case Op::ToColumns:
      w->target = at(3);
      w->flag = at(4)->type == msgpack::type::BOOLEAN && at(4)->via.boolean;
      return mode_at(5);
  }
  return false;
}

}  // namespace sb::port
