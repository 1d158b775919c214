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

# To build and run: the compiler, the system Lua 5.4, cJSON (JSON), SQLite (the run
# history), libmicrohttpd (the station's HTTP server), libpq (uploads to PostgreSQL),
# nettle (SHA-256 of attached files), busted (the Lua specs).
packages="build-essential cmake pkg-config liblua5.4-dev libcjson-dev libsqlite3-dev libmicrohttpd-dev libpq-dev
  nettle-dev lua5.4 lua-busted"
# Only the tests need these: real consumers of what hplua writes (a JSON Schema validator,
# junitparser, Perl's prove, xmllint, the sqlite3 shell), script(1) for a pseudo-terminal,
# socat for serial-port pairs, a PostgreSQL server, Chromium and Node.js (Playwright) for
# the panel, Debian's pytest as the benchmark baseline, valgrind.
[ "$mode" = test ] && packages="$packages python3-jsonschema python3-junitparser perl bsdutils libxml2-utils sqlite3
  socat postgresql chromium nodejs python3-pytest python3-pytest-dependency valgrind"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Debian's nodejs needs its npm package; NodeSource's nodejs carries npm itself.
if [ "$mode" = test ] && ! command -v npm >/dev/null 2>&1; then missing="$missing npm"; fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  log=$(mktemp /tmp/hplua-setup-apt.XXXXXX)
  echo "setup: installing$missing"
  echo "setup: (waits up to 10 minutes for another apt or dpkg to finish; details in $log)"
  if ! { $sudo apt-get -o DPkg::Lock::Timeout=600 update -q &&
         DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -q $missing; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "setup: installing the packages failed (the full log is $log)" >&2
    exit 1
  fi
  rm -f "$log"
fi

jobs=$(nproc 2>/dev/null || echo 2)
# Builds quietly; on failure shows what the compiler said.
build() {
  dir=$1
  shift
  blog=$(mktemp /tmp/hplua-setup-build.XXXXXX)
  if ! { cmake -S . -B "$dir" "$@" && cmake --build "$dir" -j "$jobs"; } >"$blog" 2>&1; then
    cat "$blog" >&2
    rm -f "$blog"
    echo "setup: the build in $dir failed" >&2
    exit 1
  fi
  rm -f "$blog"
}

echo "setup: building build/hplua"
build build -DCMAKE_BUILD_TYPE=Release -DHPLUA_WERROR=ON

if [ "$mode" = example ]; then
  echo "setup: running examples/hello (one test fails on purpose: exit status 1)"
  status=0
  build/hplua examples/hello || status=$?
  if [ "$status" -ne 1 ]; then
    echo "setup: examples/hello exited $status, expected 1" >&2
    exit 1
  fi
  echo
  echo "setup: done. build/hplua is built and examples/hello ran as expected (its one failure is on purpose)."
  echo "       next: build/hplua examples/hello -v   (details)    build/hplua init mysuite   (a starter suite)"
  echo "             build/hplua history              (recorded runs)   cmake --install build   (install hplua)"
  exit 0
fi

# ctest in folder $1; when a test fails, the end of each failed test's output is
# printed again after the summary (a long log is often cut in the middle), then the
# summary line once more, so that the closing line still gives the counts.
run_ctest() {
  dir=$1
  shift
  rc=0
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@" | tee "$dir/ctest-summary.log" || rc=$?
  [ "$rc" -eq 0 ] && grep -q "^100% tests passed" "$dir/ctest-summary.log" && return 0
  failed="$dir/Testing/Temporary/LastTestsFailed.log"
  log="$dir/Testing/Temporary/LastTest.log"
  if [ -f "$failed" ] && [ -f "$log" ]; then
    cut -d: -f2- "$failed" | while IFS= read -r name; do
      echo
      echo "setup: the end of $name's output (from $log):"
      awk -v t="$name" '$0 ~ "^[0-9]+/[0-9]+ Test: " && substr($0, index($0, "Test: ") + 6) == t { on = 1; next }
        on && /^<end of output>$/ { exit } on' "$log" | tail -n 60
    done
  fi
  echo
  grep -E "tests passed.*tests failed out of" "$dir/ctest-summary.log" | tail -n 1
  return 1
}

echo "setup: test suite, -Werror build"
run_ctest build
echo "setup: test suite, ASan+UBSan build"
build build-asan -DCMAKE_BUILD_TYPE=Debug -DHPLUA_WERROR=ON -DHPLUA_SANITIZE=ON
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest build-asan
