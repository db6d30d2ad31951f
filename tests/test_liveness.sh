#!/usr/bin/env bash
# Liveness and hangs (issue 9 parts 5 and 6): leading failures, heartbeats
# of busy workers and slow clients, timeouts on every kind of worker, bad
# option values, items over the size limit. Real processes, real sockets.
set -u
. "$(dirname "$0")/lib.sh"

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

# One line over the item size limit (128 MiB) fails alone, with its
# reason; the items around it are answered (the whole job was aborted)
{ echo a; head -c 135266304 /dev/zero | tr '\0' x; echo; echo bb; } \
    | timeout 120 "$BIN/dpool" map -j 1 -m "$MOD" len > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ] && [ "$(cat "$T/out")" = "$(printf "1\n2")" ] && grep -q "item 1 (line 2): .*135266304 bytes is over the size limit of 128 MiB" "$T/err"' \
    "line over the size limit rc=$rc out=$(cat "$T/out") $(cat "$T/err")"

# A random mix of crashes, failures, timeouts and results, while workers
# are killed from outside: every item answered exactly once, each with its
# own result or reason (tests/mixcheck.py)
python3 -c '
import random, sys
r = random.Random(int(sys.argv[1]))
for i in range(300):
    x = r.random()
    print("crash" if x < .04 else "fail" if x < .08 else "30000000:%d" % i if x < .12
          else "%d:%d" % (r.choice([0, 100, 2000, 20000]), i))' "${MIX_SEED:-$RANDOM}" > "$T/mix"
timeout 150 "$BIN/dpool" map -j 3 -m "$MOD" --index --task-timeout 0.4 mixed < "$T/mix" > "$T/out" 2> "$T/err" & mpid=$!; PIDS="$PIDS $mpid"
kills=0
for k in $(seq 1 8); do
    sleep 0.3
    victim=$(pgrep -P "$(pgrep -P $mpid -x dpool)" -x dpool-worker | shuf -n 1)
    [ -n "$victim" ] && kill -KILL $victim 2>/dev/null && kills=$((kills + 1))
done
wait $mpid; rc=$?
check '[ $kills -gt 0 ]' "no worker killed"
python3 "$(dirname "$0")/mixcheck.py" "$T/mix" "$T/out" "$T/err" $kills > "$T/why"; mixrc=$?
check '[ $rc -eq 1 ] && [ $mixrc -eq 0 ]' \
    "mix of deaths and timeouts rc=$rc: $(head -c 1500 "$T/why") (input: $(tr '\n' ' ' < "$T/mix" | head -c 600))"

# A standalone broker (no local workers) and one remote worker over tcp
start_broker() {   # extra broker options in "$@"; sets bpid cport wport
    cport=$(freeport); wport=$(freeport)
    "$BIN/dpool-broker" -j none -c "tcp://127.0.0.1:$cport" -w "tcp://127.0.0.1:$wport" -v "$@" > "$T/broker.log" 2>&1 &
    bpid=$!; PIDS="$PIDS $bpid"
}
stop_pid() {       # SIGTERM, then wait for it (at most 5 s), then SIGKILL
    kill -TERM "$1" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null
}
wait_ready() {     # wait until the broker log shows $1 workers ready
    for i in $(seq 1 200); do
        [ "$(grep -c " ready: " "$T/broker.log")" -ge "$1" ] && return 0
        sleep 0.05
    done
    return 1
}

# A remote worker that ran 3,000 quick items then gets a 5 s item: the
# quick pace makes it run the long chunk on its main thread; it must keep
# heartbeating (it was declared dead after 3 s and the item ran twice)
start_broker
"$BIN/dpool-worker" --connect "tcp://127.0.0.1:$wport" -m "$MOD" 2> "$T/worker.log" & wpid=$!; PIDS="$PIDS $wpid"
wait_ready 1
quick_then_long() { for i in $(seq 3000); do echo 0; done; sleep 0.5; echo 5000000; sleep 0.2; for i in $(seq 10); do echo 0; done; }
quick_then_long > "$T/in"
quick_then_long | timeout 60 "$BIN/dpool" map -b "tcp://127.0.0.1:$cport" spin_us > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 0 ] && cmp -s "$T/in" "$T/out"' "quick items then a 5 s item: rc=$rc $(cat "$T/err")"
check '! grep -q "no heartbeat" "$T/broker.log"' "busy worker declared dead: $(grep lost "$T/broker.log")"
stop_pid $wpid; stop_pid $bpid

# --task-timeout holds on a plain remote worker (dpool-worker --connect,
# no -j): the 5 s item is killed after 1 s, the worker process replaced,
# and the next job still runs
start_broker
"$BIN/dpool-worker" --connect "tcp://127.0.0.1:$wport" -m "$MOD" 2> "$T/worker.log" & wpid=$!; PIDS="$PIDS $wpid"
wait_ready 1
t0=$(date +%s%N)
printf '5000\n10\n' | timeout 60 "$BIN/dpool" map -b "tcp://127.0.0.1:$cport" --task-timeout 1 sleep_ms > "$T/out" 2> "$T/err"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check '[ $rc -eq 1 ] && [ "$(cat "$T/out")" = 10 ] && grep -q "line 1): timed out after 1.0 s" "$T/err"' \
    "plain worker timeout rc=$rc out=$(cat "$T/out") $(cat "$T/err")"
check '[ $ms -lt 4000 ]' "plain worker timeout took $ms ms"
seq 1 100 | timeout 60 "$BIN/dpool" map -b "tcp://127.0.0.1:$cport" square > "$T/out"; rc=$?
check '[ $rc -eq 0 ] && [ "$(wc -l < "$T/out")" -eq 100 ]' "plain worker after a timeout rc=$rc"
kids=$(pgrep -P $wpid)
check '[ -n "$kids" ]' "a plain worker supervises a worker process"
stop_pid $wpid; stop_pid $bpid
for k in $kids; do
    for i in $(seq 1 100); do kill -0 $k 2>/dev/null || break; sleep 0.05; done
    check '! kill -0 $k 2>/dev/null' "worker process $k outlived its node"
done

# A stopped (SIGSTOP) local worker of a broker is replaced once its
# heartbeats stop: its items go elsewhere, the job is exact, a new worker
# takes its slot, the stopped one is killed
start_broker -j 2 -m "$MOD" --heartbeat 300
wait_ready 2
kids=$(pgrep -P $bpid); victim=$(echo "$kids" | head -n 1)   # one of them (the list is one pid a line)
seq 1 400 | sed 's/.*/20/' > "$T/in"
timeout 60 "$BIN/dpool" map -b "tcp://127.0.0.1:$cport" sleep_ms < "$T/in" > "$T/out" 2> "$T/err" & mpid=$!; PIDS="$PIDS $mpid"
# the job has started when the broker has its client (the CLI's output to
# a file is block-buffered: it cannot tell us)
for i in $(seq 1 200); do grep -q "client .* connected" "$T/broker.log" && break; sleep 0.05; done
kill -STOP $victim
wait $mpid; rc=$?
check '[ $rc -eq 0 ] && cmp -s "$T/in" "$T/out"' "job with a stopped worker rc=$rc $(cat "$T/err")"
check 'grep -q "pid $victim) lost: no heartbeat" "$T/broker.log"' "stopped worker not lost: $(cat "$T/broker.log")"
wait_ready 3
check '[ "$(grep -c " ready: " "$T/broker.log")" -ge 3 ]' "stopped worker not replaced: $(cat "$T/broker.log")"
for i in $(seq 1 100); do kill -0 $victim 2>/dev/null || break; sleep 0.05; done
check '! kill -0 $victim 2>/dev/null' "stopped worker $victim not killed"
kill -CONT $victim 2>/dev/null
stop_pid $bpid

# A stopped (SIGSTOP) worker of a worker node (dpool-worker -j 2) is killed
# by its node after 1.5 heartbeat intervals without a sign of life on its
# progress page, and replaced (the broker dropped it after 3 missed
# heartbeats, but the process stayed, stopped, for ever). The job is exact:
# the item it ran is charged one attempt (the node's DEATH names it; or, if
# the broker's "no heartbeat" came first, its chunk is requeued as a silent
# worker's, PROTOCOL.md rule 7)
start_broker --heartbeat 300
"$BIN/dpool-worker" --connect "tcp://127.0.0.1:$wport" -j 2 --heartbeat 300 -m "$MOD" 2> "$T/worker.log" & wpid=$!; PIDS="$PIDS $wpid"
wait_ready 3                    # the node and its 2 workers
seq 1 40 | sed 's/.*/200/' > "$T/in"         # 200 ms items: it is stopped in one
timeout 60 "$BIN/dpool" map -b "tcp://127.0.0.1:$cport" sleep_ms < "$T/in" > "$T/out" 2> "$T/err" & mpid=$!; PIDS="$PIDS $mpid"
# until the job has answers (its output is block-buffered: ask the broker)
job_done() {
    "$BIN/dpool" status -b "tcp://127.0.0.1:$cport" --json 2>/dev/null \
        | python3 -c 'import json,sys; print(max([j["done"] for j in json.load(sys.stdin)["jobs"]] or [0]))' 2>/dev/null || echo 0
}
for i in $(seq 1 100); do [ "$(job_done)" -ge 4 ] && break; sleep 0.05; done
victim=$(pgrep -P $wpid | head -n 1)
kill -STOP $victim; t0=$(date +%s%N)
for i in $(seq 1 100); do kill -0 $victim 2>/dev/null || break; sleep 0.05; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check '! kill -0 $victim 2>/dev/null' "stopped node worker $victim still there after $ms ms: $(grep "State" /proc/$victim/status 2>/dev/null)"
echo "node worker $victim stopped: gone after $ms ms; broker: $(grep -E "pid $victim\) (died|lost)" "$T/broker.log" | sed 's/.*dpool-broker: //')"
wait $mpid; rc=$?
check '[ $rc -eq 0 ] && cmp -s "$T/in" "$T/out"' "job with a stopped node worker rc=$rc $(cat "$T/err")"
for i in $(seq 1 100); do [ "$(pgrep -P $wpid | grep -cvx "$victim")" -ge 2 ] && break; sleep 0.1; done
check '[ "$(pgrep -P $wpid | grep -cvx "$victim")" -ge 2 ]' "stopped node worker not restarted: $(pgrep -P $wpid -a)"
wait_ready 4
check '[ "$(grep -c " ready: " "$T/broker.log")" -ge 4 ]' "stopped node worker's replacement not registered: $(cat "$T/broker.log")"
check 'kill -0 $wpid 2>/dev/null' "the node died"
kill -CONT $victim 2>/dev/null; kill -KILL $victim 2>/dev/null
stop_pid $wpid; stop_pid $bpid

# A client keeps its session while it reads a long input line from a slow
# writer (20 MiB, with a pause over the broker's 3 x 500 ms), then sends
# it in one message. (100 MiB works as well, but on a loaded machine the
# frame's way on to the worker can take longer than 3 heartbeats: see
# README, liveness and large items.)
start_broker -j 1 -m "$MOD" --heartbeat 500
wait_ready 1
{ echo short; head -c 12582912 /dev/zero | tr '\0' x; sleep 2; head -c 8388608 /dev/zero | tr '\0' x; echo; echo end; } \
    | timeout 90 "$BIN/dpool" map -b "tcp://127.0.0.1:$cport" len > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 0 ] && [ "$(cat "$T/out")" = "$(printf "5\n20971520\n3")" ]' \
    "20 MiB line from a slow writer rc=$rc $(cut -c1-20 "$T/out") $(cat "$T/err")"
# ... and while it sends 1 MiB items over a 1 MB/s link (a frame takes
# longer than 3 heartbeats to pass; ZMTP PONGs wait behind it)
# the proxy's endpoint is not the one the server directory lists: the
# client is given the server directory's keys (CURVE through the proxy)
keys=()
[ -n "${DPOOL_SERVER_DIR:-}" ] && keys=(--curve-secret "$DPOOL_SERVER_DIR/client_secret" --broker-key "$DPOOL_SERVER_DIR/broker")
python3 "$(dirname "$0")/slowproxy.py" $cport 1000000 > "$T/pport" & ppid=$!; PIDS="$PIDS $ppid"
for i in $(seq 1 100); do [ -s "$T/pport" ] && break; sleep 0.1; done
python3 -c 'import sys; [sys.stdout.write("y" * (1 << 20) + "\n") for i in range(3)]' \
    | timeout 90 "$BIN/dpool" map -b "tcp://127.0.0.1:$(cat "$T/pport")" "${keys[@]}" len > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 0 ] && [ "$(cat "$T/out")" = "$(printf "1048576\n1048576\n1048576")" ]' \
    "1 MiB items over a slow link rc=$rc $(cat "$T/err")"
kill $ppid; wait $ppid 2>/dev/null
stop_pid $bpid

finish test_liveness
