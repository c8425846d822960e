// The NIF's reader for the core's builder (core/from_elixir.hpp): how BEAM terms
// present themselves. No mapping rule here, only what each term is.
#pragma once
#include <erl_nif.h>

#include <forward_list>
#include <string>
#include <string_view>

#include "../core/from_elixir.hpp"
#include "atoms.hpp"

namespace sb::nif {

class TermReader {
 public:
  using Value = ERL_NIF_TERM;
  explicit TermReader(ErlNifEnv* env) : env_(env) {}

  WireKind kind(Value t);
  bool int64(Value t, int64_t* out) {
    ErlNifSInt64 i;
    if (!enif_get_int64(env_, t, &i)) return false;
    *out = i;
    return true;
  }
  bool uint64(Value t, uint64_t* out) {
    ErlNifUInt64 u;
    if (!enif_get_uint64(env_, t, &u)) return false;
    *out = u;
    return true;
  }
  BigInt big_int(Value t);
  double float64(Value t) {
    double d = 0;
    enif_get_double(env_, t, &d);
    return d;
  }
  // Atoms: the name as UTF-8 (kept for the reader's life); binaries and
  // SnakeBridge.Bytes: the bytes.
  std::string_view text(Value t);
  bool length(Value t, size_t* n);
  template <class F>
  void each_item(Value t, F&& f) {
    int arity;
    const ERL_NIF_TERM* items;
    if (enif_get_tuple(env_, t, &arity, &items)) {
      for (int i = 0; i < arity; ++i) f(items[i]);
      return;
    }
    if (enif_is_map(env_, t)) {  // MapSet: the keys of its map
      ERL_NIF_TERM inner;
      enif_get_map_value(env_, t, atoms.map, &inner);
      return each_pair(inner, [&](ERL_NIF_TERM k, ERL_NIF_TERM) { f(k); });
    }
    ERL_NIF_TERM head, tail = t;
    while (enif_get_list_cell(env_, tail, &head, &tail)) f(head);
  }
  template <class F>
  void each_entry(Value t, F&& f) {
    each_pair(t, f);
  }
  std::string_view struct_name(Value t);
  bool field(Value t, const char* name, Value* out) {
    return enif_get_map_value(env_, t, enif_make_atom(env_, name), out);
  }
  PyObject* object(Value t);
  PyRef term(Value t);
  // Any term, kept as it is for Elixir (a callback's original error).
  std::shared_ptr<const TermPayload> held(Value t);
  uintptr_t token(Value t) { return static_cast<uintptr_t>(t); }
  // The binary itself, kept alive in an environment of its own: no copy.
  KeptBytes keep(Value t);

  // Also for call-site keys, without the GIL: the object's type.
  const void* object_type(Value t);

 private:
  // f(key, value) for each entry, in the order of maps:to_list/1 (and so of
  // Enum and of the port's encoder): the iterator walks a map of more than 32
  // keys (a hash trie) in the reverse of that order, so such a map is walked
  // from its end. The iterator is released however f leaves.
  template <class F>
  void each_pair(ERL_NIF_TERM map, F&& f) {
    size_t size = 0;
    enif_get_map_size(env_, map, &size);
    bool backwards = size > 32;
    ErlNifMapIterator it;
    if (!enif_map_iterator_create(env_, map, &it, backwards ? ERL_NIF_MAP_ITERATOR_LAST : ERL_NIF_MAP_ITERATOR_FIRST)) {
      return;
    }
    struct Destroy {
      ErlNifEnv* env;
      ErlNifMapIterator* it;
      ~Destroy() { enif_map_iterator_destroy(env, it); }
    } destroy{env_, &it};
    ERL_NIF_TERM k, v;
    while (enif_map_iterator_get_pair(env_, &it, &k, &v)) {
      f(k, v);
      backwards ? enif_map_iterator_prev(env_, &it) : enif_map_iterator_next(env_, &it);
    }
  }
  bool atom_text(ERL_NIF_TERM atom, std::string* out);

  ErlNifEnv* env_;
  // Atom names handed out by text(); a forward_list allocates nothing until
  // used (a deque would, on every request).
  std::forward_list<std::string> names_;
};

}  // namespace sb::nif
