// The NIF boundary, in the spirit of elixir-nx/fine: a NIF is a plain C++
// function whose parameters and result are C++ types. Decoder<T> and Encoder<T>
// convert them; `invoke` is the one ladder every NIF goes through (decode,
// call, encode, and turn any C++ exception into an Elixir exception); SB_NIF
// registers a function beside its definition, so the NIF table cannot drift
// from the code.
#pragma once
#include <erl_nif.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace sb::nif {

// An argument of the wrong type: ArgumentError in Elixir.
struct ArgumentError : std::exception {
  std::string message;
  explicit ArgumentError(std::string m) : message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

template <class T, class = void>
struct Decoder;
template <class T, class = void>
struct Encoder;

// A term passed through as it is. (ERL_NIF_TERM itself is an integer type here,
// the same as uint64_t, so a NIF names terms with this type.)
struct Term {
  ERL_NIF_TERM t;
  Term(ERL_NIF_TERM term) : t(term) {}  // NOLINT: implicit on purpose
  operator ERL_NIF_TERM() const { return t; }
};
template <>
struct Decoder<Term> {
  static Term decode(ErlNifEnv*, ERL_NIF_TERM t) { return t; }
};
template <>
struct Encoder<Term> {
  static ERL_NIF_TERM encode(ErlNifEnv*, Term t) { return t; }
};

template <>
struct Decoder<int64_t> {
  static int64_t decode(ErlNifEnv* env, ERL_NIF_TERM t) {
    ErlNifSInt64 i;
    if (!enif_get_int64(env, t, &i)) throw ArgumentError("expected an integer");
    return i;
  }
};
template <>
struct Decoder<uint64_t> {
  static uint64_t decode(ErlNifEnv* env, ERL_NIF_TERM t) {
    ErlNifUInt64 u;
    if (!enif_get_uint64(env, t, &u)) throw ArgumentError("expected a non-negative integer");
    return u;
  }
};
template <>
struct Encoder<uint64_t> {
  static ERL_NIF_TERM encode(ErlNifEnv* env, uint64_t u) { return enif_make_uint64(env, u); }
};

template <>
struct Decoder<std::string> {
  static std::string decode(ErlNifEnv* env, ERL_NIF_TERM t) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, t, &bin)) throw ArgumentError("expected a binary");
    return std::string(reinterpret_cast<const char*>(bin.data), bin.size);
  }
};
template <>
struct Encoder<std::string> {
  static ERL_NIF_TERM encode(ErlNifEnv* env, const std::string& s) {
    ERL_NIF_TERM t;
    unsigned char* buf = enif_make_new_binary(env, s.size(), &t);
    if (!s.empty()) memcpy(buf, s.data(), s.size());
    return t;
  }
};

template <>
struct Decoder<ErlNifPid> {
  static ErlNifPid decode(ErlNifEnv* env, ERL_NIF_TERM t) {
    ErlNifPid pid;
    if (!enif_get_local_pid(env, t, &pid)) throw ArgumentError("expected a local pid");
    return pid;
  }
};

// An optional trailing argument (a NIF of two arities).
template <class T>
struct Decoder<std::optional<T>> {
  static std::optional<T> decode(ErlNifEnv* env, ERL_NIF_TERM t) { return Decoder<T>::decode(env, t); }
};

// Tells the scheduler how much of its timeslice (1 ms) a NIF used since
// `t0_ns` (monotonic): a NIF that polls or copies for a while reports it.
void consume_timeslice_since(ErlNifEnv* env, uint64_t t0_ns);

// Raises `module` (an Elixir exception with a message) from a NIF.
ERL_NIF_TERM raise(ErlNifEnv* env, const char* module, const std::string& message);

namespace detail {

template <class T>
using Bare = std::remove_cv_t<std::remove_reference_t<T>>;

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <class R, class... Args, size_t... I>
ERL_NIF_TERM call(R (*fn)(ErlNifEnv*, Args...), ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[],
                  std::index_sequence<I...>) {
  // An std::optional last parameter may be missing (the shorter arity).
  auto arg = [&](auto tag, size_t i) {
    using T = typename decltype(tag)::type;
    if constexpr (IsOptional<T>::value) {
      if (i >= static_cast<size_t>(argc)) return T{};
    }
    return Decoder<T>::decode(env, argv[i]);
  };
  if constexpr (std::is_void_v<R>) {
    fn(env, arg(std::type_identity<Bare<Args>>{}, I)...);
    return enif_make_atom(env, "ok");
  } else {
    return Encoder<Bare<R>>::encode(env, fn(env, arg(std::type_identity<Bare<Args>>{}, I)...));
  }
}

}  // namespace detail

template <class R, class... Args>
constexpr unsigned arity(R (*)(ErlNifEnv*, Args...)) {
  return sizeof...(Args);
}

// The one ladder: decode, call, encode; every C++ exception an Elixir one.
template <class R, class... Args>
ERL_NIF_TERM invoke_fn(R (*fn)(ErlNifEnv*, Args...), ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
  try {
    return detail::call(fn, env, argc, argv, std::index_sequence_for<Args...>{});
  } catch (const ArgumentError& e) {
    return raise(env, "Elixir.ArgumentError", std::string("snakebridge NIF: ") + e.message);
  } catch (const std::exception& e) {
    return raise(env, "Elixir.RuntimeError", std::string("snakebridge NIF: ") + e.what());
  } catch (...) {
    return raise(env, "Elixir.RuntimeError", "snakebridge NIF: unknown C++ exception");
  }
}

template <auto Fn>
ERL_NIF_TERM invoke(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
  return invoke_fn(Fn, env, argc, argv);
}

// The NIF table, filled by SB_NIF at static initialisation and read when the
// library loads (after every static initialiser ran).
std::vector<ErlNifFunc>& nif_table();

struct Registration {
  Registration(const char* name, unsigned arity, ERL_NIF_TERM (*fptr)(ErlNifEnv*, int, const ERL_NIF_TERM[]),
               unsigned flags) {
    nif_table().push_back(ErlNifFunc{name, arity, fptr, flags});
  }
};

#define SB_NIF_CONCAT2(a, b) a##b
#define SB_NIF_CONCAT(a, b) SB_NIF_CONCAT2(a, b)
// SB_NIF("name", function, flags): registers `function` as SnakeBridge.Native.name/N,
// N its number of parameters after the env.
#define SB_NIF(name, fn, flags)                                                                          \
  static const ::sb::nif::Registration SB_NIF_CONCAT(sb_nif_registration_, __LINE__)(                  \
      name, ::sb::nif::arity(&fn), &::sb::nif::invoke<&fn>, flags)
// The same function under a shorter arity: its trailing std::optional parameters missing.
#define SB_NIF_ARITY(name, fn, n, flags)                                                                 \
  static const ::sb::nif::Registration SB_NIF_CONCAT(sb_nif_registration_, __LINE__)(name, n,          \
                                                                                     &::sb::nif::invoke<&fn>, flags)

}  // namespace sb::nif
