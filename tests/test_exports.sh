#!/usr/bin/env bash
# libdpool exports its public API and nothing else (issue 10): the dynamic
# symbols `nm -D --defined-only` shows in libdpool.so are exactly the
# functions declared DP_EXPORT in include/*.h, in both directions; every
# public declaration carries the marker. 77 = skipped (no nm).
set -u
LIB=${DPOOL_LIB:-build/lib}
SRC=$(cd "$(dirname "$0")/.." && pwd)
command -v nm > /dev/null || { echo "test_exports: SKIP (no nm)"; exit 77; }
so="$LIB/libdpool.so"
[ -f "$so" ] || { echo "test_exports: FAIL: no $so" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0

# the declarations: every `DP_EXPORT <type> name (` in the public headers
cat "$SRC"/include/*.h | sed -n 's/^DP_EXPORT .*[ *]\(dp_[a-z0-9_]*\) (.*/\1/p' | sort -u > "$T/declared"
# a function-like declaration at column 0 without the marker is a mistake
unmarked=$(grep -hE '^[a-z][a-z_0-9 *]*[ *]dp_[a-z0-9_]+ \(' "$SRC"/include/*.h | grep -v '^typedef' || true)
if [ -n "$unmarked" ]; then
    echo "FAIL: public declarations without DP_EXPORT:" >&2; echo "$unmarked" >&2; fail=1
fi
# what the library exports (code and data), less the toolchain's own
nm -D --defined-only "$so" | awk '$2 ~ /^[TtDdBbRrVvWwiu]$/ { print $3 }' \
    | grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' | sed 's/@.*//' | sort -u > "$T/exported"

extra=$(comm -13 "$T/declared" "$T/exported")
missing=$(comm -23 "$T/declared" "$T/exported")
if [ -n "$extra" ]; then
    echo "FAIL: exported but not in the public headers:" >&2; echo "$extra" | sed 's/^/  /' >&2; fail=1
fi
if [ -n "$missing" ]; then
    echo "FAIL: declared in the public headers but not exported:" >&2; echo "$missing" | sed 's/^/  /' >&2; fail=1
fi
n=$(wc -l < "$T/declared")
[ "$n" -ge 80 ] || { echo "FAIL: only $n public declarations found (parser broken?)" >&2; fail=1; }
echo "test_exports: $n public functions declared, $(wc -l < "$T/exported") exported"
exit $fail
