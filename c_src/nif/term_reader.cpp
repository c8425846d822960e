#include "term_reader.hpp"

#include "callbacks.hpp"
#include <stdexcept>

#include "object_resource.hpp"

namespace sb::nif {
namespace {

// The external term format of `t`, released with the scope.
struct Etf {
  ErlNifBinary bin;
  bool ok;
  Etf(ErlNifEnv* env, ERL_NIF_TERM t) : ok(enif_term_to_binary(env, t, &bin)) {}
  ~Etf() {
    if (ok) enif_release_binary(&bin);
  }
};

}  // namespace

WireKind TermReader::kind(Value t) {
  switch (enif_term_type(env_, t)) {
    case ERL_NIF_TERM_TYPE_ATOM:
      if (t == atoms.nil) return WireKind::Nil;
      if (t == atoms.true_) return WireKind::True;
      if (t == atoms.false_) return WireKind::False;
      return WireKind::Atom;
    case ERL_NIF_TERM_TYPE_INTEGER:
      return WireKind::Integer;
    case ERL_NIF_TERM_TYPE_FLOAT:
      return WireKind::Float;
    case ERL_NIF_TERM_TYPE_BITSTRING: {
      ErlNifBinary bin;
      return enif_inspect_binary(env_, t, &bin) ? WireKind::Binary : WireKind::Opaque;
    }
    case ERL_NIF_TERM_TYPE_LIST:
      return WireKind::List;
    case ERL_NIF_TERM_TYPE_TUPLE:
      return WireKind::Tuple;
    case ERL_NIF_TERM_TYPE_MAP: {
      ERL_NIF_TERM name, inner;
      if (!enif_get_map_value(env_, t, atoms.__struct__, &name) || !enif_is_atom(env_, name)) return WireKind::Map;
      ErlNifBinary bin;
      if (name == atoms.elixir_object) return WireKind::Object;
      if (name == atoms.elixir_bytes && enif_get_map_value(env_, t, atoms.data, &inner) &&
          enif_inspect_binary(env_, inner, &bin)) {
        return WireKind::Bytes;
      }
      if (name == atoms.elixir_mapset && enif_get_map_value(env_, t, atoms.map, &inner) && enif_is_map(env_, inner)) {
        return WireKind::Set;
      }
      return WireKind::Struct;
    }
    case ERL_NIF_TERM_TYPE_PID:
    case ERL_NIF_TERM_TYPE_PORT:
    case ERL_NIF_TERM_TYPE_REFERENCE:
    case ERL_NIF_TERM_TYPE_FUN:
      return WireKind::Term;
    default:
      return WireKind::Opaque;
  }
}

BigInt TermReader::big_int(Value t) {
  // A bignum's digits through the external term format (the only public view
  // of them): tag 110 SMALL_BIG_EXT or 111 LARGE_BIG_EXT.
  BigInt b;
  Etf etf(env_, t);
  if (!etf.ok) return b;
  const unsigned char* p = etf.bin.data;
  size_t n = 0, off = 0;
  if (etf.bin.size >= 3 && p[1] == 110) {
    n = p[2];
    off = 3;
  } else if (etf.bin.size >= 6 && p[1] == 111) {
    n = (size_t(p[2]) << 24) | (size_t(p[3]) << 16) | (size_t(p[4]) << 8) | p[5];
    off = 6;
  } else {
    return b;
  }
  if (off + 1 + n > etf.bin.size) return b;
  b.negative = p[off] != 0;
  b.magnitude.assign(p + off + 1, p + off + 1 + n);
  return b;
}

bool TermReader::atom_text(ERL_NIF_TERM atom, std::string* out) {
  // OTP 25 hands atom text out as Latin-1 only: re-encoded as UTF-8. An atom
  // beyond Latin-1 is read from its external format (ATOM_UTF8_EXT).
  char buf[256];
  int n = enif_get_atom(env_, atom, buf, sizeof buf, ERL_NIF_LATIN1);
  if (n > 0) {
    out->clear();
    for (int i = 0; i < n - 1; ++i) {
      auto c = static_cast<unsigned char>(buf[i]);
      if (c < 0x80) {
        out->push_back(static_cast<char>(c));
      } else {
        out->push_back(static_cast<char>(0xC0 | (c >> 6)));
        out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
      }
    }
    return true;
  }
  Etf etf(env_, atom);
  if (!etf.ok || etf.bin.size < 3) return false;
  const unsigned char* p = etf.bin.data;
  size_t len, off;
  if (p[1] == 119) {  // SMALL_ATOM_UTF8_EXT
    len = p[2];
    off = 3;
  } else if (p[1] == 118 && etf.bin.size >= 4) {  // ATOM_UTF8_EXT
    len = (size_t(p[2]) << 8) | p[3];
    off = 4;
  } else {
    return false;
  }
  if (off + len > etf.bin.size) return false;
  out->assign(reinterpret_cast<const char*>(p + off), len);
  return true;
}

std::string_view TermReader::text(Value t) {
  ErlNifBinary bin;
  if (enif_inspect_binary(env_, t, &bin)) return {reinterpret_cast<const char*>(bin.data), bin.size};
  ERL_NIF_TERM data;
  if (enif_is_map(env_, t) && enif_get_map_value(env_, t, atoms.data, &data) && enif_inspect_binary(env_, data, &bin)) {
    return {reinterpret_cast<const char*>(bin.data), bin.size};
  }
  std::string name;
  if (!enif_is_atom(env_, t) || !atom_text(t, &name)) return {};
  return names_.emplace_front(std::move(name));
}

bool TermReader::length(Value t, size_t* n) {
  unsigned len;
  int arity;
  const ERL_NIF_TERM* items;
  ERL_NIF_TERM inner;
  if (enif_get_list_length(env_, t, &len)) {
    *n = len;
    return true;
  }
  if (enif_get_tuple(env_, t, &arity, &items)) {
    *n = static_cast<size_t>(arity);
    return true;
  }
  if (enif_is_map(env_, t)) {
    if (enif_get_map_value(env_, t, atoms.__struct__, &inner) && inner == atoms.elixir_mapset &&
        enif_get_map_value(env_, t, atoms.map, &inner)) {
      return enif_get_map_size(env_, inner, n);
    }
    return enif_get_map_size(env_, t, n);
  }
  return false;  // an improper list
}

std::string_view TermReader::struct_name(Value t) {
  ERL_NIF_TERM name;
  if (!enif_get_map_value(env_, t, atoms.__struct__, &name)) return {};
  return text(name);
}

PyObject* TermReader::object(Value t) {
  PyObject* obj;
  return get_object(env_, t, &obj) ? obj : nullptr;
}

KeptBytes TermReader::keep(Value t) {
  // Copying a term into another environment copies no binary data larger than
  // 64 bytes: the copy references the same off-heap binary.
  ErlNifEnv* env = enif_alloc_env();
  ErlNifBinary bin;
  if (!env || !enif_inspect_binary(env, enif_make_copy(env, t), &bin)) {
    if (env) enif_free_env(env);
    throw std::runtime_error("cannot keep a binary");
  }
  KeptBytes k;
  k.data = reinterpret_cast<const char*>(bin.data);
  k.size = bin.size;
  k.ctx = env;
  k.release = [](void* e) { enif_free_env(static_cast<ErlNifEnv*>(e)); };
  return k;
}

const void* TermReader::object_type(Value t) {
  PyObject* obj;
  return get_object(env_, t, &obj) ? static_cast<const void*>(Py_TYPE(obj)) : nullptr;
}

PyRef TermReader::term(Value t) { return python_term(env_, t); }
std::shared_ptr<const TermPayload> TermReader::held(Value t) { return std::make_shared<NifTerm>(env_, t); }

}  // namespace sb::nif
