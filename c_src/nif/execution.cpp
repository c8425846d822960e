#include "execution.hpp"

#include "../core/executor.hpp"
#include "atoms.hpp"
#include "term_reader.hpp"
#include "term_sink.hpp"

namespace sb::nif {
namespace {

// {:unconvertible, reason, term, path}: the term itself and the keys leading to it.
ERL_NIF_TERM refusal_term(ErlNifEnv* env, const Refusal& e) {
  std::vector<ERL_NIF_TERM> path;
  path.reserve(e.path.size());
  for (const PathStep& s : e.path) {
    switch (s.kind) {
      case PathStep::Index:
        path.push_back(enif_make_uint64(env, s.index));
        break;
      case PathStep::Key:
      case PathStep::Value:
      case PathStep::Element:
        path.push_back(static_cast<ERL_NIF_TERM>(s.token));
        break;
      case PathStep::Field:
        path.push_back(enif_make_atom(env, s.field));
        break;
    }
  }
  return enif_make_tuple4(env, atoms.unconvertible, enif_make_atom(env, refusal_reason_name(e.reason)),
                          static_cast<ERL_NIF_TERM>(e.term),
                          enif_make_list_from_array(env, path.data(), static_cast<unsigned>(path.size())));
}

}  // namespace

bool decode_request(ErlNifEnv* env, ERL_NIF_TERM request, ReturnMode mode, WireRequest<ERL_NIF_TERM>* w) {
  int arity;
  const ERL_NIF_TERM* a;
  char name[16];
  if (!enif_get_tuple(env, request, &arity, &a) || arity < 2 ||
      enif_get_atom(env, a[0], name, sizeof name, ERL_NIF_LATIN1) <= 0 || !parse_op(name, &w->op)) {
    return false;
  }
  w->mode = mode;
  w->target = w->name = w->args = w->kwargs = w->value = w->code = w->globals = atoms.nil;
  ErlNifSInt64 depth;
  unsigned max;
  switch (w->op) {
    case Op::Call:
      if (arity != 5) return false;
      w->target = a[1], w->name = a[2], w->args = a[3], w->kwargs = a[4];
      return true;
    case Op::GetAttr:
      if (arity != 3) return false;
      w->target = a[1], w->name = a[2];
      return true;
    case Op::SetAttr:
      if (arity != 4) return false;
      w->target = a[1], w->name = a[2], w->value = a[3];
      return true;
    case Op::Eval:
    case Op::Exec:
      if (arity != 3) return false;
      w->code = a[1], w->globals = a[2];
      return true;
    case Op::Describe:
      if (arity != 4 || !enif_get_int64(env, a[2], &depth)) return false;
      w->target = a[1], w->depth = depth, w->include_private = a[3] == atoms.true_;
      return true;
    case Op::Next:
    case Op::Repr:
      if (arity != 3 || !enif_get_uint(env, a[2], &max)) return false;
      w->target = a[1], w->max = max;
      return true;
    case Op::Close:
    case Op::ToElixir:
      if (arity != 2) return false;
      w->target = a[1];
      return true;
    case Op::ToArray:
    case Op::ToColumns:
      if (arity != 3) return false;
      w->target = a[1], w->flag = a[2] == atoms.true_;
      return true;
  }
  return false;
}

namespace {

// GIL held. Runs the request `build` makes: the one place where a failure
// becomes the BEAM's {:error, reason}.
template <class Build>
ERL_NIF_TERM run_built(ErlNifEnv* env, Build build) {
  ERL_NIF_TERM reply;
  try {
    TermReader reader(env);
    Request q = build(reader);
    Outcome out = execute(q);
    TermSink sink(env);
    emit_outcome(sink, out, q.mode);
    reply = enif_make_tuple2(env, atoms.ok, sink.take());
  } catch (...) {
    TermSink sink(env);
    emit_current_failure(sink, [&](const Refusal& e) { sink.term(refusal_term(env, e)); });
    reply = enif_make_tuple2(env, atoms.error, sink.take());
  }
  if (PyErr_Occurred()) PyErr_Clear();  // never return to the BEAM with one pending
  return reply;
}

}  // namespace

ERL_NIF_TERM run_request(ErlNifEnv* env, const WireRequest<ERL_NIF_TERM>* w) {
  return run_built(env, [&](TermReader& reader) {
    if (!w) throw BadRequest("malformed SnakeBridge request");
    return build_request(reader, *w);
  });
}

ERL_NIF_TERM run_call(ErlNifEnv* env, PyObject* callable, ERL_NIF_TERM args, ERL_NIF_TERM kwargs, ReturnMode mode) {
  return run_built(env, [&](TermReader& reader) { return call_request(reader, PyRef::borrow(callable), args, kwargs, mode); });
}

}  // namespace sb::nif
