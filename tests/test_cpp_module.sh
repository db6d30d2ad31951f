#!/usr/bin/env bash
# A task module written in C++ (issue 10): DP_MODULE in a .cpp file gives a
# table with C linkage that a worker loads; the public headers compile as
# C++. 77 = skipped (no C++ compiler: the example module was not built).
set -u
BIN=${DPOOL_BIN:-build/bin}
LIB=${DPOOL_LIB:-build/lib}
SRC=$(cd "$(dirname "$0")/.." && pwd)
MOD="$LIB/libdpool_example_cpp.so"
if [ ! -f "$MOD" ] || ! command -v g++ > /dev/null; then
    echo "test_cpp_module: SKIP (no C++ compiler, so no $MOD)"; exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }

# the table is exported unmangled, as data
check 'nm -D --defined-only "$MOD" | grep -qE " [DR] dp_module$"' "dp_module not exported with C linkage"
# every public header is C++-clean, and the module builds with g++ alone
printf '#include <dpool.h>\n#include <dpool_pack.h>\n#include <dpool_task.h>\nint main () { return dp_pool_jobs (nullptr) != 0; }\n' > "$T/headers.cpp"
g++ -std=c++11 -Wall -Wextra -Werror -I "$SRC/include" "$T/headers.cpp" -o "$T/headers" -L "$LIB" -ldpool 2> "$T/err"
check '[ $? -eq 0 ]' "public headers in C++: $(head -5 "$T/err")"
g++ -std=c++11 -Wall -Wextra -Werror -shared -fPIC -I "$SRC/include" "$SRC/examples/example_tasks_cpp.cpp" \
    -o "$T/libcpp.so" -L "$LIB" -Wl,-rpath,"$(cd "$LIB" && pwd)" -ldpool 2> "$T/err"
check '[ $? -eq 0 ]' "example builds with g++: $(head -5 "$T/err")"
# a worker loads it and lists its tasks
"$BIN/dpool-worker" --check -m "$T/libcpp.so" > "$T/tasks" 2> "$T/err"
check 'grep -qx reverse "$T/tasks" && grep -qx words "$T/tasks"' "worker --check: $(cat "$T/err")"
# and runs them
printf 'hello world\nb a b\n' | timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" reverse > "$T/out"
check '[ "$(cat "$T/out")" = "$(printf "dlrow olleh\nb a b")" ]' "map reverse: $(cat "$T/out")"
printf 'b a b c\n' | timeout 60 "$BIN/dpool" map -j 1 -m "$MOD" words > "$T/out"
check '[ "$(cat "$T/out")" = "a b c" ]' "map words: $(cat "$T/out")"
echo "test_cpp_module: $pass passed, $fail failed"
[ $fail -eq 0 ]
