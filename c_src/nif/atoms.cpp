#include "atoms.hpp"

namespace sb::nif {

Atoms atoms;

namespace {
const char* atom_text(const char* identifier, const char* text = nullptr) {
  return text ? text : identifier;
}
}  // namespace

void make_atoms(ErlNifEnv* env) {
#define SB_MAKE_ATOM(name, ...) atoms.name = enif_make_atom(env, atom_text(#name, ##__VA_ARGS__));
  SB_ATOMS(SB_MAKE_ATOM)
#undef SB_MAKE_ATOM
}

}  // namespace sb::nif
