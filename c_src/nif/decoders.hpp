// Decoders of SnakeBridge's own types at the NIF boundary (boundary.hpp).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "../core/interpreter.hpp"
#include "../core/to_elixir.hpp"
#include "atoms.hpp"
#include "boundary.hpp"

namespace sb::nif {

// :auto | :ref | :value
template <>
struct Decoder<ReturnMode> {
  static ReturnMode decode(ErlNifEnv*, ERL_NIF_TERM t) {
    if (t == atoms.auto_) return ReturnMode::Auto;
    if (t == atoms.ref) return ReturnMode::Ref;
    if (t == atoms.value) return ReturnMode::Value;
    throw ArgumentError("expected :auto, :ref or :value");
  }
};

// The start-up options SnakeBridge.Application passes to init/1, validated on
// the Elixir side first (SnakeBridge.Config):
// %{python: path, paths: [path], pythonpath: text, max_threads: n, spin_us: n, fast_path: bool}
struct InitOptions {
  InterpreterConfig interpreter;
  std::optional<uint64_t> max_threads, spin_us;
  std::optional<bool> fast_path;
};

template <>
struct Decoder<InitOptions> {
  static InitOptions decode(ErlNifEnv* env, ERL_NIF_TERM map) {
    if (!enif_is_map(env, map)) throw ArgumentError("init options must be a map");
    InitOptions o;
    ERL_NIF_TERM v;
    auto get = [&](ERL_NIF_TERM key) { return enif_get_map_value(env, map, key, &v) && v != atoms.nil; };
    if (get(atoms.python)) o.interpreter.python_executable = Decoder<std::string>::decode(env, v);
    if (get(atoms.pythonpath)) o.interpreter.pythonpath = Decoder<std::string>::decode(env, v);
    if (get(atoms.paths)) {
      ERL_NIF_TERM head, tail = v;
      while (enif_get_list_cell(env, tail, &head, &tail)) {
        o.interpreter.extra_paths.push_back(Decoder<std::string>::decode(env, head));
      }
      if (!enif_is_empty_list(env, tail)) throw ArgumentError("paths must be a list of binaries");
    }
    if (get(atoms.max_threads)) o.max_threads = Decoder<uint64_t>::decode(env, v);
    if (get(atoms.spin_us)) o.spin_us = Decoder<uint64_t>::decode(env, v);
    if (get(atoms.fast_path)) {
      if (v != atoms.true_ && v != atoms.false_) throw ArgumentError("fast_path must be a boolean");
      o.fast_path = v == atoms.true_;
    }
    return o;
  }
};

}  // namespace sb::nif
