// Custom Catch2 main: catch_discover_tests runs every test case in its own process,
// so each process starts the embedded interpreter here, before any test runs. After
// initialize_interpreter the GIL is released; tests take it with sb::Gil.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>

#include "../core/interpreter.hpp"

int main(int argc, char* argv[]) {
  try {
    sb::initialize_interpreter({SNAKEBRIDGE_PYTHON, SNAKEBRIDGE_LIBPYTHON, {}, ""});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cannot start the embedded Python (%s): %s\n", SNAKEBRIDGE_PYTHON, e.what());
    return 2;
  }
  return Catch::Session().run(argc, argv);
}
