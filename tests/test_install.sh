#!/usr/bin/env bash
# `cmake --install` into a scratch prefix; an outside C program and task
# module build with `pkg-config --cflags --libs dpool` and run on the
# installed programs.
set -u
BUILD=$(dirname "${DPOOL_BIN:-build/bin}")
SRC=$(cd "$(dirname "$0")/.." && pwd)
if ldd "${DPOOL_BIN:-build/bin}/dpool" | grep -q libasan; then
    echo "test_install: SKIP (a sanitizer build: outside programs do not link its runtime)"; exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }

cmake --install "$BUILD" --prefix "$T/prefix" > "$T/install.log" 2>&1
check '[ $? -eq 0 ]' "cmake --install: $(tail -3 "$T/install.log")"
pc=$(dirname "$(find "$T/prefix" -name dpool.pc | head -1)")
check '[ -n "$pc" ] && [ -f "$pc/dpool.pc" ]' "dpool.pc installed"
check '[ -x "$T/prefix/bin/dpool" ] && [ -x "$T/prefix/bin/dpool-broker" ] && [ -x "$T/prefix/bin/dpool-worker" ]' "programs installed"
check '[ -f "$T/prefix/include/dpool.h" ] && [ -f "$T/prefix/include/dpool_task.h" ]' "headers installed"
export PKG_CONFIG_PATH="$pc"
cd "$T"
cc -shared -fPIC "$SRC/examples/example_tasks.c" -o libdpool_example.so $(pkg-config --cflags --libs dpool)
check '[ $? -eq 0 ]' "module builds with pkg-config"
cc "$SRC/examples/example_map.c" -o example_map $(pkg-config --cflags --libs dpool)
check '[ $? -eq 0 ]' "program builds with pkg-config"
DPOOL_MODULE_PATH="$T" timeout 60 ./example_map 10 > out.txt 2> err.txt
check '[ $? -eq 0 ] && grep -q "collatz(3) = 7" out.txt' "installed example runs: $(cat err.txt)"
# the installed CLI finds its worker and a module by path
printf '1\n2\n' | timeout 60 "$T/prefix/bin/dpool" map -j 1 -m "$T/libdpool_example.so" collatz > out.txt
check '[ "$(cat out.txt)" = "$(printf "0\n1")" ]' "installed dpool map"
echo "test_install: $pass passed, $fail failed"
[ $fail -eq 0 ]
