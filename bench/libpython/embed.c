/* Runs the Python file named by argv[1] in an embedded interpreter: built
 * once against the shared libpython and once against the static one by
 * bench/libpython.sh, to compare how fast the same Python code runs in each. */
#include <Python.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  FILE* f = fopen(argv[1], "r");
  if (!f) return 2;
  Py_Initialize();
  int rc = PyRun_SimpleFileEx(f, argv[1], 1);
  Py_Finalize();
  return rc == 0 ? 0 : 1;
}
