#!/bin/sh
# hplua set-up on Debian 12: installs the Debian packages that are missing,
# builds, and then either runs the example suite or the whole test suite.
#
#   ./setup.sh          install, build (build/), run examples/hello
#   ./setup.sh --test   install, build, run every test: a -Werror build and an
#                       ASan+UBSan build (build-asan/), each under ctest
set -eu
cd "$(dirname "$0")"

mode=example
case "${1:-}" in
  "") ;;
  --test) mode=test ;;
  *) echo "usage: ./setup.sh [--test]" >&2; exit 4 ;;
esac

packages="build-essential cmake pkg-config liblua5.4-dev libcjson-dev lua5.4 lua-busted"
# Only the tests need these: real consumers of the reports (a JSON Schema validator,
# junitparser, Perl's prove) and script(1) for a pseudo-terminal.
# The benchmark smoke run compares with Debian's pytest.
[ "$mode" = test ] && packages="$packages python3-jsonschema python3-junitparser perl bsdutils python3-pytest python3-pytest-dependency valgrind"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHPLUA_WERROR=ON
cmake --build build -j "$jobs"

if [ "$mode" = example ]; then
  echo "setup: running examples/hello (one test fails on purpose: exit status 1)"
  status=0
  build/hplua examples/hello || status=$?
  if [ "$status" -ne 1 ]; then
    echo "setup: examples/hello exited $status, expected 1" >&2
    exit 1
  fi
  echo "setup: done; the binary is build/hplua"
  exit 0
fi

echo "setup: test suite, -Werror build"
ctest --test-dir build --output-on-failure -j "$jobs"
echo "setup: test suite, ASan+UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHPLUA_WERROR=ON -DHPLUA_SANITIZE=ON
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"
