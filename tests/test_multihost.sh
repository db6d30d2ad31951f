#!/usr/bin/env bash
# Multi-host: three network namespaces on a bridge (tests/netns.sh) — the
# broker in "a" bound to a's address, worker nodes (dpool-worker -j 2) in "b"
# and "c". A 20,000-item job is started from a; mid-job b's cable is pulled.
#   - the job finishes (on c), every result correct, in order, exactly once;
#   - the broker takes b's workers for lost (no heartbeat), never c's;
#   - b's late results (chunks it finished while cut off, which the broker
#     had already given to c) are dropped: the output has no duplicate;
#   - once the cable is back, b's node and workers re-register (the same
#     processes, not restarted) and a second job runs on both nodes.
# Needs root and `ip netns`: without them it prints SKIP and exits 77 (skipped).
# shellcheck disable=SC2016  # check() evals its single-quoted condition
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${DPOOL_BIN:-$HERE/../build/bin}" 2>/dev/null && pwd) || BIN=${DPOOL_BIN:-build/bin}
LIB=$(cd "${DPOOL_LIB:-$HERE/../build/lib}" 2>/dev/null && pwd) || LIB=${DPOOL_LIB:-build/lib}
MOD="$LIB/libdpool_testtasks.so"
N=20000
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check () { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }
ms () { echo $(( $(date +%s%N) / 1000000 )); }
#   wait_until MS CONDITION: poll the condition every 50 ms for up to MS ms
wait_until () {
    local end=$(( $(ms) + $1 ))
    until eval "$2"; do
        [ "$(ms)" -ge "$end" ] && return 1
        sleep 0.05
    done
}

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null 2>&1 || ! ip netns list >/dev/null 2>&1; then
    echo "SKIP: test_multihost needs root and 'ip netns' (network namespaces)"
    exit 77
fi
# shellcheck source=tests/netns.sh
source "$HERE/netns.sh"
netns_setup a b c; rc=$?
check '[ $rc -eq 0 ]' "netns_setup a b c: status $rc (root with ip netns: must work)"
[ $rc -eq 0 ] || exit 1
A=$(ns_addr a)
#   Background commands are started with `ip netns exec` itself, so that $!
#   is the command's own pid (a backgrounded ns_exec, a shell function, runs
#   in a subshell whose pid $! would be).
NSA=$(ns_name a) NSB=$(ns_name b) NSC=$(ns_name c)

ip netns exec "$NSA" "$BIN/dpool-broker" -j none -v --allow-exec -c "tcp://$A:5555" -w "tcp://$A:5556" \
    --task-wait 20000 > "$T/broker.log" 2>&1 &
broker=$!
ip netns exec "$NSB" "$BIN/dpool-worker" --connect "tcp://$A:5556" -j 2 --allow-exec -m "$MOD" -v > "$T/node-b.log" 2>&1 &
nb=$!
ip netns exec "$NSC" "$BIN/dpool-worker" --connect "tcp://$A:5556" -j 2 --allow-exec -m "$MOD" -v > "$T/node-c.log" 2>&1 &
nc=$!
kids () { pgrep -P "$1" | sort | tr '\n' ' '; }
ready_lines () {  # PID: broker's "ready" lines for that process
    grep " ready: " "$T/broker.log" | grep -c "pid $1,"
}
lost_lines () {   # PID: broker's "lost" lines for that process
    grep -c "(pid $1) lost" "$T/broker.log"
}
all_ready () {    # N PID...: each has at least N ready lines
    local n=$1 p
    shift
    for p in "$@"; do [ "$(ready_lines "$p")" -ge "$n" ] || return 1; done
}
all_lost () {     # PID...: each has a lost line
    local p
    for p in "$@"; do [ "$(lost_lines "$p")" -ge 1 ] || return 1; done
}
none_lost () {    # PID...: none has a lost line
    local p
    for p in "$@"; do [ "$(lost_lines "$p")" -eq 0 ] || return 1; done
}
none_alive () {   # PID...: none is alive (a zombie is not)
    local p
    for p in "$@"; do
        case $(ps -o stat= -p "$p" 2>/dev/null) in ''|Z*) ;; *) return 1 ;; esac
    done
}
dump () {
    echo "---- broker log"; cat "$T/broker.log"
    echo "---- node b log"; cat "$T/node-b.log"
    echo "---- node c log"; cat "$T/node-c.log"
} >&2

check 'wait_until 10000 "[ \$(kids $nb | wc -w) -eq 2 ] && [ \$(kids $nc | wc -w) -eq 2 ]"' \
      "each node runs 2 workers: b: $(kids $nb) c: $(kids $nc)"
kb=$(kids $nb) kc=$(kids $nc)
# shellcheck disable=SC2086
check 'wait_until 15000 "all_ready 1 $nb $nc $kb $kc"' "both nodes and their 4 workers registered"

# --- the job; b is cut off mid-job ---------------------------------------------
#   nap_echo "2000:i": 2 ms each (about 10 s on 4 workers), and each result
#   names its item
seq 0 $((N - 1)) | sed "s/^/2000:/" > "$T/in.txt"
start=$(ms)
ip netns exec "$NSA" "$BIN/dpool" map -b "tcp://$A:5555" nap_echo \
    < "$T/in.txt" > "$T/out.txt" 2> "$T/err.txt" &
client=$!
#   a tenth of the results are out (the output to a file is block-buffered)
check 'wait_until 20000 "[ \$(wc -l < $T/out.txt) -ge $((N / 10)) ]"' "the job makes progress"
check 'kill -0 $client 2>/dev/null' "the job is still running when b is cut"
ns_link_down b
cut=$(ms)
echo "b cut off after $((cut - start)) ms, $(wc -l < "$T/out.txt") results out"
#   the broker notices (3 missed heartbeats), requeues b's chunks on c
# shellcheck disable=SC2086
check 'wait_until 8000 "all_lost $kb"' \
      "b's workers taken for lost"
lost_ms=$(( $(ms) - cut ))
echo "b's workers lost after $lost_ms ms"
check 'kill -0 $client 2>/dev/null' "the job is still running when b is known lost"
#   cable back while the job runs: b's late results must be dropped
ns_link_up b
restored=$(ms)
#   wait for the job (60 s at most), noting when b's node and workers have
#   registered again (a new ready line for each)
back_ms=""
while kill -0 $client 2>/dev/null; do
    # shellcheck disable=SC2086
    [ -z "$back_ms" ] && all_ready 2 $nb $kb && back_ms=$(( $(ms) - restored ))
    [ $(( $(ms) - restored )) -gt 60000 ] && { echo "job hangs: killed" >&2; kill -KILL $client; }
    sleep 0.05
done
wait $client; rc=$?
done_ms=$(( $(ms) - start ))
echo "job of $N items finished in $done_ms ms, status $rc"
check '[ $rc -eq 0 ]' "job status $rc: $(head -5 "$T/err.txt")"
check '[ "$(wc -l < "$T/out.txt")" -eq $N ]' "$N results: $(wc -l < "$T/out.txt")"
check 'cmp -s "$T/in.txt" "$T/out.txt"' "results correct and in input order"
check '[ -z "$(sort "$T/out.txt" | uniq -d | head -3)" ]' "duplicates: $(sort "$T/out.txt" | uniq -d | head -3)"
check 'none_lost $nc $kc' \
      "node c or its workers were taken for lost"
check 'kill -0 $nb 2>/dev/null && [ "$(kids $nb)" = "$kb" ]' "node b and its workers live on: $(kids $nb) (were $kb)"

# --- b comes back ----------------------------------------------------------------
#   its workers re-register: a new ready line for each (backoff is at most 32 s)
# shellcheck disable=SC2086
check 'wait_until 45000 "all_ready 2 $nb $kb"' \
      "node b and its workers registered again after the cable came back"
[ -n "$back_ms" ] || back_ms="$(( $(ms) - restored )) (after the job)"
echo "b registered again $back_ms ms after the cable came back"
check '[ "$(kids $nb)" = "$kb" ]' "the same worker processes of b: $(kids $nb) (were $kb)"
#   a second job runs on both nodes: each item answers its worker's pid
seq 1 200 > "$T/in2.txt"
ns_exec a timeout 60 "$BIN/dpool" run -b "tcp://$A:5555" -- \
    'sleep 0.02; echo {} $PPID' < "$T/in2.txt" > "$T/out2.txt" 2> "$T/err2.txt"; rc=$?
check '[ $rc -eq 0 ]' "second job status $rc: $(head -5 "$T/err2.txt")"
check '[ "$(cut -d" " -f1 "$T/out2.txt")" = "$(cat "$T/in2.txt")" ]' "second job's results in order"
on_b=0 on_c=0
for p in $kb; do on_b=$(( on_b + $(awk -v p="$p" '$2 == p' "$T/out2.txt" | wc -l) )); done
for p in $kc; do on_c=$(( on_c + $(awk -v p="$p" '$2 == p' "$T/out2.txt" | wc -l) )); done
echo "second job: $on_b items on b, $on_c on c"
check '[ $on_b -gt 0 ] && [ $on_c -gt 0 ] && [ $((on_b + on_c)) -eq 200 ]' \
      "second job on both nodes: b $on_b, c $on_c of 200"

# --- teardown ------------------------------------------------------------------------
kill -TERM $nb $nc $broker 2>/dev/null
for p in $nb $nc $broker; do
    check 'wait_until 5000 "! kill -0 $p 2>/dev/null"' "process $p stopped on SIGTERM"
done
wait $broker; rc=$?
check '[ $rc -eq 0 ]' "broker exit status $rc"
# shellcheck disable=SC2086
check 'wait_until 3000 "none_alive $kb $kc"' "workers outlived their nodes: $kb $kc"
[ $fail -eq 0 ] || dump
netns_teardown
echo "test_multihost: $pass passed, $fail failed"
[ $fail -eq 0 ]
