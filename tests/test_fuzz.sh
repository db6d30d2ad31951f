#!/usr/bin/env bash
# The libFuzzer targets (fuzz/, DPOOL_FUZZ=ON): built with clang in their
# own build folder ($DPOOL_FUZZ_BUILD_DIR, default build-fuzz at the top of
# the tree; an existing one is re-used), then each target is run over its
# committed seed corpus (fuzz/corpus/TARGET: every seed and regression
# input must pass) and fuzzed for 3 seconds ($DPOOL_FUZZ_SECONDS). The committed corpus must
# be what fuzz_gen_corpus writes from today's encoders. Skipped (77)
# without clang and libFuzzer.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
DIR=${DPOOL_FUZZ_BUILD_DIR:-$SRC/build-fuzz}
SECONDS_EACH=${DPOOL_FUZZ_SECONDS:-3}
TARGETS="proto_client proto_worker proto_node proto_broker proto_any batch report unpack records broker"
CC=${DPOOL_FUZZ_CC:-clang}
if ! command -v "$CC" > /dev/null; then
    echo "test_fuzz: SKIP (no clang)"; exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo 'int LLVMFuzzerTestOneInput (const char *d, unsigned long n) { return 0; }' > "$T/probe.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$T/probe.c" -o "$T/probe" 2> "$T/probe.err"; then
    echo "test_fuzz: SKIP ($CC has no libFuzzer: $(head -c 300 "$T/probe.err"))"; exit 77
fi

# Build (incremental when the folder exists); only the targets
if ! cmake -S "$SRC" -B "$DIR" -DCMAKE_C_COMPILER="$CC" -DDPOOL_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$T/cmake.log" 2>&1 \
   || ! cmake --build "$DIR" --target fuzz -j 2 > "$T/build.log" 2>&1; then
    echo "FAIL: building the fuzz targets in $DIR" >&2
    tail -n 30 "$T/cmake.log" "$T/build.log" >&2
    exit 1
fi
BIN="$DIR/bin"
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }

# The committed seeds are today's encoders' output
"$BIN/fuzz_gen_corpus" "$T/gen" > "$T/gen.log" 2>&1
check '[ $? -eq 0 ]' "fuzz_gen_corpus: $(cat "$T/gen.log")"
stale=""
for f in $(cd "$T/gen" && find . -type f | sort); do
    cmp -s "$T/gen/$f" "$SRC/fuzz/corpus/$f" || stale="$stale $f"
done
check '[ -z "$stale" ]' "fuzz/corpus is not what fuzz_gen_corpus writes now (run it: $BIN/fuzz_gen_corpus fuzz/corpus):$stale"

for t in $TARGETS; do
    seeds="$SRC/fuzz/corpus/$t"
    n=$(find "$seeds" -type f | wc -l)
    check '[ "$n" -gt 0 ]' "$t: no seed corpus in $seeds"
    # every seed and regression input, once
    extra=""
    [ $t = broker ] && extra="-detect_leaks=0"     #  a live broker thread: see fuzz_broker.c
    "$BIN/fuzz_$t" $extra -runs=0 "$seeds" > "$T/$t.seeds.log" 2>&1
    check '[ $? -eq 0 ]' "$t over its corpus: $(grep -E 'ERROR|fuzz check|runtime error|SUMMARY' "$T/$t.seeds.log" | head -5)"
    # then a few seconds of fuzzing from it (new inputs into a scratch folder)
    mkdir -p "$T/$t"
    "$BIN/fuzz_$t" $extra -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 \
        -artifact_prefix="$T/$t-" -print_final_stats=1 "$T/$t" "$seeds" > "$T/$t.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$T/$t.log")
    check '[ $rc -eq 0 ] && [ "${execs:-0}" -gt 0 ]' "$t fuzzing (rc=$rc): $(grep -E 'ERROR|fuzz check|runtime error|SUMMARY' "$T/$t.log" | head -5)"
    if [ $rc -ne 0 ]; then
        for a in "$T/$t-"*; do [ -f "$a" ] && echo "  crash input ($a): $(od -An -c "$a" | head -3)" >&2; done
    fi
    echo "test_fuzz: $t: ${execs:-0} runs in ${SECONDS_EACH}s, $n seeds"
done

echo "test_fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ]
