#!/usr/bin/env bash
# valgrind memcheck on the end-to-end path: an embedded `dpool map` (the
# CLI, libdpool and the broker thread) and a dpool-broker process through a
# normal job, a crashing item, and a client killed mid-job. Any memcheck
# error or definite leak fails the test.
set -u
BIN=${DPOOL_BIN:-build/bin}
LIB=${DPOOL_LIB:-build/lib}
MOD="$LIB/libdpool_testtasks.so"
if ! command -v valgrind > /dev/null; then
    echo "test_valgrind: SKIP (valgrind not installed)"; exit 77
fi
if ldd "$BIN/dpool" | grep -q libasan; then
    echo "test_valgrind: SKIP (a sanitizer build: valgrind cannot run it)"; exit 77
fi
T=$(mktemp -d)
bpid=""
trap '[ -n "$bpid" ] && kill -9 $bpid 2>/dev/null; rm -rf "$T"' EXIT
VG="valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9"
# pidfd_open is unknown to valgrind 3.19: the supervisor falls back to polling
filter() { grep -v "syscall: 434\|own handler\|README_MISSING\|consider this a bug\|bug_reports" "$1"; }
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }

seq 1 5000 | timeout 120 $VG "$BIN/dpool" map -j 2 -m "$MOD" square > "$T/out" 2> "$T/cli.err"; rc=$?
check '[ $rc -eq 0 ] && [ "$(tail -n 1 "$T/out")" = 25000000 ]' "embedded map under valgrind rc=$rc: $(filter "$T/cli.err" | head -20)"
# chunk size 1: chunks packed in BATCHes, grouped in CHUNKs, answers merged; unordered too
seq 1 3000 | timeout 120 $VG "$BIN/dpool" map -j 2 -m "$MOD" --chunksize 1 -u --index square > "$T/out" 2> "$T/cli.err"; rc=$?
check '[ $rc -eq 0 ] && [ "$(sort -n "$T/out" | tail -n 1)" = "$(printf "2999\t9000000")" ] && [ $(wc -l < "$T/out") -eq 3000 ]' "embedded map, chunk size 1, under valgrind rc=$rc: $(filter "$T/cli.err" | head -20)"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cp=$(port); wp=$(port)
timeout 180 $VG "$BIN/dpool-broker" -c "tcp://127.0.0.1:$cp" -w "tcp://127.0.0.1:$wp" -j 2 -m "$MOD" 2> "$T/broker.err" &
bpid=$!
ok=""
for i in $(seq 1 200); do
    kill -0 $bpid 2> /dev/null || break      # it refused to start: say so below
    if echo 1 | timeout 10 "$BIN/dpool" map -b "tcp://127.0.0.1:$cp" --timeout 5000 square > /dev/null 2>&1; then ok=1; break; fi
done
check '[ -n "$ok" ]' "broker under valgrind answers: $(filter "$T/broker.err" | head -5)"
seq 1 20000 | timeout 60 "$BIN/dpool" map -b "tcp://127.0.0.1:$cp" square > "$T/out"
check '[ "$(wc -l < "$T/out")" -eq 20000 ]' "map through the broker"
printf 'a\ncrash\nb\n' | timeout 60 "$BIN/dpool" map -b "tcp://127.0.0.1:$cp" crash_if > "$T/out" 2> "$T/err"
check 'grep -q "3 attempts" "$T/err"' "crash_if through the broker"
(echo 0; yes 5000 | head -9) | stdbuf -o0 "$BIN/dpool" map -b "tcp://127.0.0.1:$cp" --chunksize 1 sleep_ms > "$T/slow" 2>&1 &
cpid=$!
for i in $(seq 1 400); do [ -s "$T/slow" ] && break; sleep 0.05; done   # the job has started
check '[ -s "$T/slow" ]' "slow job started"
kill -9 $cpid; wait $cpid 2>/dev/null
echo 1 | timeout 30 "$BIN/dpool" map -b "tcp://127.0.0.1:$cp" --timeout 10000 square > "$T/out"
check '[ "$(cat "$T/out")" = 1 ]' "broker healthy after a lost client"
kill -TERM $bpid; wait $bpid; rc=$?; bpid=""
check '[ $rc -eq 0 ]' "broker under valgrind exit $rc: $(filter "$T/broker.err" | head -30)"
echo "test_valgrind: $pass passed, $fail failed"
[ $fail -eq 0 ]
