#!/usr/bin/env bash
# dpool run --retries through a standalone broker with two worker nodes:
# a failed job is run again on ANOTHER node than the one it failed on
# (GNU parallel: "retry it on another computer on which it has not
# failed"), and on the same node only when no other node can run it.
# Node "a" fails every job, node "b" runs them: with --retries 2 every job
# must succeed, on b, and the joblog says so.
set -u
command -v python3 > /dev/null || { echo "test_run_retry: SKIP (no python3)"; exit 77; }
. "$(dirname "$0")/lib.sh"
wait_ready() {     # wait until the broker log shows $1 workers and nodes ready
    for i in $(seq 1 300); do
        [ "$(grep -c " ready: " "$T/broker.log")" -ge "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
stop_pid() {       # SIGTERM, then wait for it (at most 5 s), then SIGKILL
    kill -TERM "$1" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null
}

cport=$(freeport); wport=$(freeport)
"$BIN/dpool-broker" -j none -c "tcp://127.0.0.1:$cport" -w "tcp://127.0.0.1:$wport" -v > "$T/broker.log" 2>&1 &
PIDS="$PIDS $!"
NODE=a "$BIN/dpool-worker" -j 2 --connect "tcp://127.0.0.1:$wport" --allow-exec 2> "$T/a.log" & apid=$!; PIDS="$PIDS $apid"
NODE=b "$BIN/dpool-worker" -j 2 --connect "tcp://127.0.0.1:$wport" --allow-exec 2> "$T/b.log" & bpid=$!; PIDS="$PIDS $bpid"
check 'wait_ready 6' "2 nodes of 2 workers not ready: $(tail -5 "$T/broker.log")"
EP="tcp://127.0.0.1:$cport"
mkdir "$T/side"
# every attempt leaves a line NODE in side/SEQ; only node b succeeds
CMD='echo $NODE >> '"$T"'/side/{}; [ "$NODE" = b ] && echo {} $NODE'

# 1. without retries, node a's jobs fail (both nodes get work)
timeout 60 "$BIN/dpool" run -b "$EP" "$CMD" ::: $(seq 1 40) > "$T/out0" 2> "$T/err0"; rc=$?
check '[ $rc -ge 1 ] && [ $rc -lt 40 ]' "without --retries some (not all) jobs should fail on node a: rc=$rc"
rm -f "$T"/side/*

# 2. --retries 2: every job succeeds, each at most twice, the retry on b
timeout 60 "$BIN/dpool" run -b "$EP" --retries 2 --joblog "$T/jl" "$CMD" ::: $(seq 1 40) > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 0 ]' "--retries 2 rc=$rc: $(head -c 400 "$T/err")"
check '[ "$(sort -n "$T/out" | awk "{print \$1}" | tr "\n" " ")" = "$(seq 1 40 | tr "\n" " ")" ]' "outputs: $(tr '\n' ' ' < "$T/out")"
check '[ "$(awk "{print \$2}" "$T/out" | sort -u)" = b ]' "a job succeeded elsewhere than on b"
tries=$(cat "$T"/side/* | wc -l); ona=$(cat "$T"/side/* | grep -c a)
twice_a=0
for f in "$T"/side/*; do [ "$(grep -c a "$f")" -gt 1 ] && twice_a=$((twice_a + 1)); done
check '[ $twice_a -eq 0 ]' "$twice_a jobs were retried on node a, where they had failed"
check '[ $ona -ge 1 ] && [ $tries -eq $((40 + ona)) ]' "attempts: $tries for 40 jobs, $ona on a"
# the joblog: one line per job, every one exit 0
check '[ "$(tail -n +2 "$T/jl" | cut -f1 | sort -n | uniq | wc -l)" -eq 40 ] && [ "$(tail -n +2 "$T/jl" | wc -l)" -eq 40 ]' "joblog: $(wc -l < "$T/jl") lines"
check '[ "$(tail -n +2 "$T/jl" | awk -F"\t" "\$7 != 0 || \$8 != 0" | wc -l)" -eq 0 ]' "joblog: a job not exit 0: $(tail -n +2 "$T/jl" | awk -F'\t' '$7 != 0' | head -3)"
check '[ "$(tail -n +2 "$T/jl" | cut -f2 | sort -u)" = "$(hostname)" ]' "joblog Host column: $(tail -n +2 "$T/jl" | cut -f2 | sort -u | tr '\n' ' ')"

# 3. only node a left: the retries run there (nowhere else to go), no hang
stop_pid $bpid
rm -f "$T"/side/*
timeout 60 "$BIN/dpool" run -b "$EP" --retries 3 --joblog "$T/jl3" "$CMD" ::: 1 2 3 > "$T/out3" 2> "$T/err3"; rc=$?
check '[ $rc -eq 3 ]' "node a alone: rc=$rc, expected 3 failed jobs: $(head -c 300 "$T/err3")"
check '[ "$(cat "$T"/side/* | grep -c a)" -eq 9 ]' "node a alone: $(cat "$T"/side/* | wc -l) attempts, expected 3 x 3"
check '[ "$(tail -n +2 "$T/jl3" | awk -F"\t" "\$7 == 1" | wc -l)" -eq 3 ]' "joblog of failures: $(cat "$T/jl3")"

# 4. a job that streamed its output (over 1 MiB) and failed is run again,
#    and only its last run's output is printed (GNU parallel's --retries:
#    the failed run's output is dropped); embedded pool, -j 2. Each job's
#    first run prints 3 MB and "bad", its second 3 MB and "ok"
mkdir "$T/flags"
BIG='head -c 3000000 /dev/zero | tr "\0" {}; if [ -e '"$T"'/flags/{} ]; then echo ok; else touch '"$T"'/flags/{}; echo bad; exit 1; fi'
timeout 120 "$BIN/dpool" run -j 2 --retries 2 "$BIG" ::: a b c d > "$T/out4" 2> "$T/err4"; rc=$?
check '[ $rc -eq 0 ]' "streamed jobs retried: rc=$rc: $(head -c 300 "$T/err4")"
for x in a b c d; do head -c 3000000 /dev/zero | tr "\0" $x; echo ok; done > "$T/want4"
check 'cmp -s "$T/want4" "$T/out4"' "streamed jobs retried: output $(wc -c < "$T/out4") bytes, $(grep -c bad "$T/out4") 'bad' lines, not the 4 last runs' 12000012 bytes"
# with -u, each run's output is printed as it comes, as GNU parallel does
rm -f "$T"/flags/*
timeout 120 "$BIN/dpool" run -j 2 -u --retries 2 "$BIG" ::: a b > "$T/out5" 2> "$T/err5"; rc=$?
check '[ $rc -eq 0 ] && [ "$(grep -c bad "$T/out5")" -eq 2 ] && [ "$(grep -c ok "$T/out5")" -eq 2 ]' "-u streamed jobs retried: rc=$rc, $(grep -c bad "$T/out5") bad, $(grep -c ok "$T/out5") ok"

finish test_run_retry
