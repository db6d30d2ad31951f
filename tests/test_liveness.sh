#!/usr/bin/env bash
# Liveness and hangs (issue 9 parts 5 and 6): leading failures, heartbeats
# of busy workers and slow clients, timeouts on every kind of worker, bad
# option values, items over the size limit. Real processes, real sockets.
set -u
BIN=${DPOOL_BIN:-build/bin}
LIB=${DPOOL_LIB:-build/lib}
MOD="$LIB/libdpool_testtasks.so"
T=$(mktemp -d)
PIDS=""
cleanup() { for p in $PIDS; do kill -KILL $p 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
pass=0 fail=0
ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Leading failures: the first single-item probes all fail with no timing;
# the job must go on (it waited for a timing for good)
(for i in $(seq 8); do echo crash; done; echo a) \
    | timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" crash_if > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ] && [ "$(cat "$T/out")" = a ] && [ "$(grep -c "SIGSEGV, 3 attempts" "$T/err")" -eq 8 ]' \
    "8 leading crashes rc=$rc out=$(cat "$T/out") $(tail -2 "$T/err")"
(for i in $(seq 10); do echo 60000; done; echo 7) \
    | timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" --task-timeout 0.3 sleep_ms > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ] && [ "$(cat "$T/out")" = 7 ] && [ "$(grep -c "timed out" "$T/err")" -eq 10 ]' \
    "10 leading timeouts rc=$rc out=$(cat "$T/out") $(tail -2 "$T/err")"
(for i in $(seq 20); do echo fail; done; seq 1 500) \
    | timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" fail_if > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ] && [ "$(wc -l < "$T/out")" -eq 500 ] && [ "$(grep -c "item is fail" "$T/err")" -eq 20 ]' \
    "20 leading task failures rc=$rc"

echo "test_liveness: $pass passed, $fail failed"
[ $fail -eq 0 ]
