#!/usr/bin/env bash
# The dpool CLI contract, end to end with real processes.
set -u
. "$(dirname "$0")/lib.sh"

# map: results exact and in input order
seq 1 20000 > "$T/in"
awk '{ print $1 * $1 }' "$T/in" > "$T/want"
timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" square < "$T/in" > "$T/out"; rc=$?
check '[ $rc -eq 0 ]' "map square exit $rc"
check 'cmp -s "$T/out" "$T/want"' "map square output differs"

# module by name through DPOOL_MODULE_PATH
printf 'a\nb\n' | DPOOL_MODULE_PATH="$LIB" timeout 30 "$BIN/dpool" map -j 1 -m testtasks echo > "$T/out"
check '[ "$(cat "$T/out")" = "$(printf "a\nb")" ]' "module by name"

# -0: NUL-separated items, a last item without its separator
printf 'x y\0\0last' | timeout 30 "$BIN/dpool" map -0 -j 1 -m "$MOD" echo > "$T/out"
check '[ "$(cat "$T/out")" = "$(printf "x y\n\nlast")" ]' "map -0"

# empty input: no output, success
timeout 30 "$BIN/dpool" map -j 1 -m "$MOD" echo < /dev/null > "$T/out"; rc=$?
check '[ $rc -eq 0 ] && [ ! -s "$T/out" ]' "empty input rc=$rc"

# failed items: reason on stderr, the other results in order, exit 1
printf '1\nfail\n3\nfail\n5\n' | timeout 30 "$BIN/dpool" map -j 2 -m "$MOD" fail_if > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ]' "fail_if exit $rc"
check '[ "$(cat "$T/out")" = "$(printf "1\n3\n5")" ]' "fail_if other results"
check '[ "$(grep -c "item is fail" "$T/err")" -eq 2 ]' "fail_if reasons on stderr"
check 'grep -q "line 2" "$T/err"' "fail_if names the line"

# crashing item: retried, then failed with the signal named
printf 'a\ncrash\nb\n' | timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" crash_if > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ]' "crash_if exit $rc"
check '[ "$(cat "$T/out")" = "$(printf "a\nb")" ]' "crash_if other results"
check 'grep -q "SIGSEGV, 3 attempts" "$T/err"' "crash_if reason: $(cat "$T/err")"

# a per-item timeout kills the hanging item only (seconds, then N% of the median)
printf '10\n60000\n20\n' | timeout 30 "$BIN/dpool" map -j 2 -m "$MOD" --task-timeout 1.5 sleep_ms > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ] && [ "$(cat "$T/out")" = "$(printf "10\n20")" ] && grep -q "timed out after 1.5 s" "$T/err"' "task timeout rc=$rc: $(cat "$T/err")"
(for i in $(seq 1 30); do echo 20; done; echo 60000; echo 20) | timeout 30 "$BIN/dpool" map -j 2 -m "$MOD" --chunksize 1 --task-timeout 500% sleep_ms > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ] && [ "$(wc -l < "$T/out")" -eq 31 ] && grep -q "line 31): timed out" "$T/err"' "task timeout % rc=$rc: $(cat "$T/err")"

# unknown task, missing module, unreachable broker: clear error, exit 2, fast
start=$(date +%s%N)
echo 1 | timeout 20 "$BIN/dpool" map -j 1 -m "$MOD" no_such_task > /dev/null 2> "$T/err"; rc=$?
check '[ $rc -eq 2 ] && grep -q "no_such_task" "$T/err"' "unknown task rc=$rc: $(cat "$T/err")"
echo 1 | timeout 20 "$BIN/dpool" map -j 1 -m /nonexistent/libx.so echo > /dev/null 2> "$T/err"; rc=$?
check '[ $rc -eq 2 ] && grep -q "/nonexistent/libx.so" "$T/err"' "missing module rc=$rc: $(cat "$T/err")"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo 1 | timeout 20 "$BIN/dpool" map -b "tcp://127.0.0.1:$port" --timeout 1500 echo > /dev/null 2> "$T/err"; rc=$?
check '[ $rc -eq 2 ] && grep -q "cannot reach" "$T/err"' "unreachable broker rc=$rc: $(cat "$T/err")"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
check '[ $elapsed -lt 15000 ]' "errors took $elapsed ms"

# run: 500 shell jobs, outputs in input order
seq 1 500 > "$T/in"
timeout 180 "$BIN/dpool" run -j 2 -- echo {} < "$T/in" > "$T/out"; rc=$?
check '[ $rc -eq 0 ] && cmp -s "$T/in" "$T/out"' "run echo {} rc=$rc"
# (100 lines: each job is a shell and two programs, slow on a loaded machine)
head -100 "$T/in" > "$T/in100"
timeout 180 "$BIN/dpool" run -j 2 -- 'echo "<{}>" | tr 1 x' < "$T/in100" > "$T/out"; rc=$?
sed 's/.*/<&>/; y/1/x/' "$T/in100" > "$T/want"
check '[ $rc -eq 0 ] && cmp -s "$T/want" "$T/out"' "run with shell syntax rc=$rc"
printf "it's\n" | timeout 30 "$BIN/dpool" run -j 1 -- 'echo {} | cat' > "$T/out"
check '[ "$(cat "$T/out")" = "it'"'"'s" ]' "run quotes the item for the shell"
printf '0\n3\n0\n' | timeout 30 "$BIN/dpool" run -j 2 -- 'echo out{}; exit {}' > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ]' "run failing job rc=$rc (GNU parallel: the number of failed jobs)"
check '[ "$(cat "$T/out")" = "$(printf "out0\nout3\nout0")" ]' "run prints a failed job's stdout"

# --help and --version on every program
for p in dpool dpool-broker dpool-worker; do
    check '"$BIN/$p" --help | grep -qi usage' "$p --help"
    check '"$BIN/$p" --version | grep -q "[0-9]\.[0-9]"' "$p --version"
done

# broker shutdown on SIGTERM: children reaped, no orphans, no ipc files left
cport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
wport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/dpool-broker" -c "tcp://127.0.0.1:$cport" -w "tcp://127.0.0.1:$wport" -j 3 -m "$MOD" &
bpid=$!
kids=""
for i in $(seq 1 100); do
    kids=$(pgrep -P $bpid | tr '\n' ' ')
    [ "$(echo $kids | wc -w)" -eq 3 ] && break
    sleep 0.05
done
check '[ "$(echo $kids | wc -w)" -eq 3 ]' "broker started 3 workers ($kids)"
seq 1 1000 | timeout 30 "$BIN/dpool" map -b "tcp://127.0.0.1:$cport" square > "$T/out"
check '[ "$(wc -l < "$T/out")" -eq 1000 ]' "map through dpool-broker"
kill -TERM $bpid
for i in $(seq 1 100); do kill -0 $bpid 2>/dev/null || break; sleep 0.05; done
wait $bpid; rc=$?
check '[ $rc -eq 0 ]' "broker exit status $rc"
for k in $kids; do check '! kill -0 $k 2>/dev/null' "worker $k outlived the broker"; done
check '[ -z "$(ls ${TMPDIR:-/tmp}/dpool-$bpid-*.ipc 2>/dev/null)" ]' "ipc file left behind"

finish test_cli
