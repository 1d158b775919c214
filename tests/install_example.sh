#!/bin/sh
# The instrument example through the installed tree: cmake --install into a
# temporary prefix, build the module with pkg-config, run the suite with the
# installed hplua. Usage: install_example.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" > /dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/$(gcc -print-multiarch)/pkgconfig"
mkdir "$tmp/suite"
cp "$src/examples/instrument/"*.lua "$src/examples/instrument/"*.c "$tmp/suite/"
cd "$tmp/suite"
cc -Wall -Wextra -Werror -shared -fPIC $(pkg-config --cflags hplua) dmm.c -o dmm.so
cc -Wall -Wextra -Werror sim.c -o sim
status=0
"$tmp/prefix/bin/hplua" -v --color never . > out.txt 2>&1 || status=$?
cat out.txt
[ "$status" -eq 1 ] || { echo "expected exit 1 (one limit fails on purpose), got $status"; exit 1; }
grep -q '^PASSED  01_rails::3V3 rail' out.txt
grep -q '^PASSED  01_rails::instrument error queue' out.txt
grep -q '12v = 12.61 V (11.4 … 12.6 V) OUT OF LIMITS' out.txt
grep -q '^PASSED  02_lua_driver::5V rail through the driver' out.txt
grep -q '^11 passed, 1 failed, 0 skipped' out.txt
grep -q 'dmm: 5v (driver) = 5.01 V (01_rails::5V rail through the driver' out.txt
# a module installed into the module folder is found by require from anywhere
moddir=$(pkg-config --variable=moduledir hplua)
cp dmm.so "$moddir/"
cd /
"$tmp/prefix/bin/hplua" -e 'assert(require("dmm").open)'
echo "installed example: ok"
