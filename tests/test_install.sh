#!/usr/bin/env bash
# `cmake --install` into a scratch prefix; an outside C program and task
# module build with `pkg-config --cflags --libs dpool` and run on the
# installed programs.
set -u
BUILD=$(dirname "${DPOOL_BIN:-build/bin}")
SRC=$(cd "$(dirname "$0")/.." && pwd)
if ldd "${DPOOL_BIN:-build/bin}/dpool" | grep -q libasan; then
    echo "test_install: SKIP (a sanitizer build: outside programs do not link its runtime)"; exit 77
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

# find_package (dpool): a consumer project built by CMake against the
# install, a program and a module of its own; the program finds the
# installed example module by name (no DPOOL_MODULE_PATH)
unset DPOOL_MODULE_PATH DPOOL_BROKER
mkdir -p "$T/consumer"
cp "$SRC/examples/example_map.c" "$SRC/examples/example_tasks.c" "$T/consumer/"
cat > "$T/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required (VERSION 3.18)
project (consumer C)
find_package (dpool 0.1 REQUIRED)
add_executable (consumer_map example_map.c)
target_link_libraries (consumer_map PRIVATE dpool::dpool)
dpool_add_module (dpool_consumer example_tasks.c)
CMAKE
cmake -S "$T/consumer" -B "$T/consumer/build" -DCMAKE_PREFIX_PATH="$T/prefix" > "$T/cmake.log" 2>&1 \
    && cmake --build "$T/consumer/build" >> "$T/cmake.log" 2>&1
check '[ $? -eq 0 ]' "find_package consumer builds: $(tail -5 "$T/cmake.log")"
check '[ -f "$T/prefix/lib/libdpool_example.so" ] || [ -n "$(find "$T/prefix" -name libdpool_example.so)" ]' "example module installed"
timeout 60 "$T/consumer/build/consumer_map" 10 > out.txt 2> err.txt
check '[ $? -eq 0 ] && grep -q "collatz(3) = 7" out.txt' "find_package program runs: $(cat err.txt)"
printf '3\n4\n' | timeout 60 "$T/prefix/bin/dpool" map -j 1 -m "$T/consumer/build/libdpool_consumer.so" square > out.txt
check '[ "$(cat out.txt)" = "$(printf "9\n16")" ]' "find_package module runs: $(cat out.txt)"

# the README's quick start and its C program, on the installed tree
seq 1 2000 | timeout 60 "$T/prefix/bin/dpool" map -m example square > out.txt
check 'seq 1 2000 | awk "{ print \$1 * \$1 }" | cmp -s - out.txt' "README quick start (dpool map -m example square)"
awk '/^## The C API in ten lines/ { on = 1 } on && /^```c/ { inc = 1; next } inc && /^```/ { exit } inc' \
    "$SRC/README.md" > readme.c
cc readme.c -o readme_prog $(pkg-config --cflags --libs dpool) 2> err.txt
check '[ $? -eq 0 ]' "README's C program builds: $(head -3 err.txt)"
timeout 60 ./readme_prog > out.txt 2> err.txt
check 'grep -qx "ok: 9" out.txt && grep -qx "ok: 16" out.txt && grep -q "^task failed: " out.txt' \
    "README's C program runs: $(cat out.txt err.txt)"
# issue 10's sharp edges, from an outside program on the installed library:
# malformed endpoints, NULL destructors, embedded mode, dp_apply, computing
# between calls, cancel, speculation off, seal + join, terminate
cc "$SRC/tests/install_edges.c" -o install_edges $(pkg-config --cflags --libs dpool) 2> err.txt
check '[ $? -eq 0 ]' "install_edges builds: $(head -3 err.txt)"
timeout 120 ./install_edges > out.txt 2> err.txt
check '[ $? -eq 0 ] && grep -q "^0 failed" out.txt' "install_edges: $(grep FAIL out.txt) $(tail -3 err.txt)"
# a C++ module built with g++ against the installed headers, run by the installed CLI
if command -v g++ > /dev/null; then
    g++ -std=c++11 -Wall -Werror -shared -fPIC "$SRC/examples/example_tasks_cpp.cpp" -o libdpool_cppx.so \
        $(pkg-config --cflags --libs dpool) 2> err.txt
    check '[ $? -eq 0 ]' "C++ module builds against the install: $(head -3 err.txt)"
    printf 'abc\n' | timeout 60 "$T/prefix/bin/dpool" map -j 1 -m "$T/libdpool_cppx.so" reverse > out.txt
    check '[ "$(cat out.txt)" = cba ]' "installed dpool map runs the C++ module: $(cat out.txt)"
fi
# the installed CLI: -j 0, --on-error
printf '3\nx\n4\n' | timeout 60 "$T/prefix/bin/dpool" map -j 0 -m example --on-error empty square > out.txt 2> /dev/null
check '[ "$(cat out.txt)" = "$(printf "9\n\n16")" ]' "installed dpool map -j 0 --on-error empty: $(cat out.txt)"

# manual pages: installed where man finds them, and they render without warnings
for page in man1/dpool.1 man1/dpool-broker.1 man1/dpool-worker.1 man3/libdpool.3; do
    f="$T/prefix/share/man/$page"
    check '[ -f "$f" ]' "manual page $page installed"
    name=$(basename "$page" | sed 's/\.[0-9]$//')
    if command -v man > /dev/null 2>&1; then
        MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$f" > "$T/page.txt" 2> "$T/page.err"
        check '[ $? -eq 0 ] && [ ! -s "$T/page.err" ] && grep -q "^NAME" "$T/page.txt" && grep -qi "^ *$name " "$T/page.txt"' \
              "man -l $page renders: $(head -3 "$T/page.err")"
    elif command -v groff > /dev/null 2>&1; then
        groff -man -ww -Tutf8 "$f" > "$T/page.txt" 2> "$T/page.err"
        check '[ $? -eq 0 ] && [ ! -s "$T/page.err" ] && grep -q "NAME" "$T/page.txt"' "groff renders $page"
    else
        echo "test_install: neither man nor groff: $page not rendered" >&2
    fi
done
MANPATH="$T/prefix/share/man" man -w dpool-broker > "$T/where.txt" 2>&1
check 'grep -q "$T/prefix/share/man/man1/dpool-broker.1" "$T/where.txt" || ! command -v man > /dev/null' \
      "man finds dpool-broker(1) under the prefix: $(cat "$T/where.txt")"
echo "test_install: $pass passed, $fail failed"
[ $fail -eq 0 ]
