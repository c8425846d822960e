#!/bin/sh
# How fast Python code runs with libpython linked as the port program links it
# (static, CMakeLists.txt), against the shared library the NIF loads, and
# against python3 itself (docs/benchmarks.md, "The port program links
# libpython statically"): the same pure-Python work (bench/libpython/work.py)
# in each, alternating, ROUNDS times (default 20); CPU ms, medians.
#
#     sh bench/libpython.sh [ROUNDS]
set -eu
PY=${SNAKEBRIDGE_PYTHON:-/usr/bin/python3}
ROUNDS=${1:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
var() { "$PY" -c "import sysconfig; print(sysconfig.get_config_var('$1') or '')"; }
INC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
cc -O2 -I"$INC" "$HERE/libpython/embed.c" -o "$DIR/shared" -L"$(var LIBPL)" -lpython"$(var LDVERSION)"
# shellcheck disable=SC2046
cc -O2 -no-pie -I"$INC" "$HERE/libpython/embed.c" -o "$DIR/static" -Wl,--export-dynamic \
  "$(var LIBPL)/$(var LIBRARY)" $(var MODLIBS) $(var LIBS) $(var SYSLIBS)
for i in $(seq "$ROUNDS"); do
  "$DIR/shared" "$HERE/libpython/work.py" >> "$DIR/s"
  "$DIR/static" "$HERE/libpython/work.py" >> "$DIR/t"
  "$PY" "$HERE/libpython/work.py" >> "$DIR/p"
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
S=$(median "$DIR/s"); T=$(median "$DIR/t"); P=$(median "$DIR/p")
echo "CPU ms of bench/libpython/work.py, median of $ROUNDS runs each (alternating), $("$PY" -V):"
echo "  shared libpython (the NIF):          $S"
echo "  static libpython (the port program): $T ($(echo "$S $T" | awk '{ printf "%.2f", $1 / $2 }')x as fast)"
echo "  $PY itself: $P ($(echo "$S $P" | awk '{ printf "%.2f", $1 / $2 }')x as fast)"
