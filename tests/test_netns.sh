#!/usr/bin/env bash
# Self-test of tests/netns.sh (the multi-host test library): two hosts on a
# bridge in a switch namespace, a real dpool-broker bound to one host's
# address, a real dpool-worker on the other, 1000 `square` items mapped from
# the broker's host; then the worker's cable is pulled and put back, and
# everything is torn down, also when a test is killed. The machine's own
# interfaces must be exactly the same before, during and after.
# Needs root; exits 77 (skipped) where network namespaces are not available.
# shellcheck disable=SC2016,SC2034  # check() evals its single-quoted condition
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${DPOOL_BIN:-$HERE/../build/bin}" 2>/dev/null && pwd) || BIN=${DPOOL_BIN:-build/bin}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check () { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }
host_links () { ip -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' '; }
our_ns () { ip netns list | awk '{print $1}' | grep -E "^$1-" | sort | tr '\n' ' '; }

# shellcheck source=tests/netns.sh
source "$HERE/netns.sh"
links_before=$(host_links)

# --- 1. a test killed with SIGTERM tears down by itself; one killed with
#        SIGKILL is cleaned up by the next netns_init -------------------------
#   a test shell: a host "a" with a process in it, then it waits
child='source "$1/netns.sh"; netns_setup a || exit $?
       ns_exec a sleep 1000 &
       for _ in $(seq 1 200); do [ -n "$(ns_pids a)" ] && break; sleep 0.05; done
       [ -n "$(ns_pids a)" ] || exit 1
       echo "$NETNS_PREFIX $(ns_pids a)" > "$2"; wait'
await () {  # await PID FILE: until the child is ready (0) or has exited (its status)
    local end=$(( SECONDS + 60 ))
    while [ $SECONDS -lt $end ]; do
        [ -s "$2" ] && return 0
        kill -0 "$1" 2>/dev/null || { wait "$1"; return; }
        sleep 0.05
    done
    kill -KILL "$1"; wait "$1" 2>/dev/null
    return 1
}
bash -c "$child" _ "$HERE" "$T/ready1" & c1=$!
await $c1 "$T/ready1"; rc=$?
[ $rc -eq 77 ] && { echo "test_netns: skipped (see above)"; exit 77; }
[ $rc -eq 0 ] || { echo "FAIL: netns_setup in a child: status $rc" >&2; exit 1; }
read -r p1 sleeper1 < "$T/ready1"
check '[ -n "$(our_ns "$p1")" ]' "child namespaces exist: $(our_ns "$p1")"
kill -TERM $c1; wait $c1
check '[ -z "$(our_ns "$p1")" ]' "SIGTERMed test removed its namespaces: $(our_ns "$p1")"
check '! kill -0 "$sleeper1" 2>/dev/null' "SIGTERMed test killed its processes"

bash -c "$child" _ "$HERE" "$T/ready2" & c2=$!
await $c2 "$T/ready2" || { echo "FAIL: second child did not start" >&2; exit 1; }
read -r p2 sleeper < "$T/ready2"
kill -KILL $c2; wait $c2 2>/dev/null
check '[ -n "$(our_ns "$p2")" ]' "SIGKILLed test left its namespaces (expected)"

# --- 2. two hosts on the switch --------------------------------------------
netns_setup broker w1; rc=$?
[ $rc -eq 77 ] && { echo "test_netns: skipped (see above)"; exit 77; }
check '[ $rc -eq 0 ]' "netns_setup broker w1: status $rc"
[ $rc -eq 0 ] || exit 1
check '[ -z "$(our_ns "$p2")" ]' "stale namespaces of the SIGKILLed test reaped: $(our_ns "$p2")"
check '[ -n "$sleeper" ] && ! kill -0 "$sleeper" 2>/dev/null' "process left in a stale namespace killed"
check '[ "$(our_ns "$NETNS_PREFIX")" = "$NETNS_PREFIX-broker $NETNS_PREFIX-sw $NETNS_PREFIX-w1 " ]' \
      "namespaces broker, w1 and the switch: $(our_ns "$NETNS_PREFIX")"
B=$(ns_addr broker) W=$(ns_addr w1)
check '[ "$B" = 10.251.0.1 ] && [ "$W" = 10.251.0.2 ]' "addresses in the test range: $B $W"
check 'ns_exec broker ip -o -4 addr show dev eth0 | grep -q " $B/24 "' "broker's eth0 holds $B/24"
check 'ns_exec w1 ip -o -4 addr show dev eth0 | grep -q " $W/24 "' "w1's eth0 holds $W/24"
check '[ "$(ip -n "$(ns_name broker)" -o link show | wc -l)" -eq 2 ]' "a host has only lo and eth0"
check '[ "$(host_links)" = "$links_before" ]' "host interfaces untouched: $(host_links)"
check '[ "$(ns_link_state w1)" = UP ]' "w1's link is up: $(ns_link_state w1)"

# --- 3. a real broker and worker on two hosts --------------------------------
ns_spawn broker "$BIN/dpool-broker" -j none -c "tcp://$B:5555" -w "tcp://$B:5556" > "$T/broker.log" 2>&1
broker=$NS_PID
ns_spawn w1 "$BIN/dpool-worker" --connect "tcp://$B:5556" -m testtasks > "$T/worker.log" 2>&1
worker=$NS_PID
map () { ns_exec broker "$BIN/dpool" map -b "tcp://$B:5555" --timeout 5000 square; }
ready () {  # until the worker has registered (a one-item map works), up to $1 s
    local end=$(( SECONDS + $1 ))
    while :; do
        [ "$(echo 7 | map 2>/dev/null)" = 49 ] && return 0
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}
for _ in $(seq 1 50); do
    [ "$(cat /proc/$broker/comm 2>/dev/null)$(cat /proc/$worker/comm 2>/dev/null)" = dpool-brokerdpool-worker ] && break
    sleep 0.05
done
check '[ "$(cat /proc/$broker/comm)" = dpool-broker ] && [ "$(cat /proc/$worker/comm)" = dpool-worker ]' \
      "ns_spawn gives the programs' own pids"
check 'ns_pids broker | grep -qx "$broker" && ns_pids w1 | grep -qx "$worker"' "they run in their namespaces"
check 'ready 20' "worker registered with the broker across the bridge: $(cat "$T/broker.log" "$T/worker.log")"
seq 1 1000 | map > "$T/out.txt" 2> "$T/err.txt"
check '[ $? -eq 0 ]' "dpool map across namespaces: $(cat "$T/err.txt")"
seq 1 1000 | awk '{ print $1 * $1 }' > "$T/want.txt"
check 'cmp -s "$T/out.txt" "$T/want.txt"' "1000 squares in order ($(wc -l < "$T/out.txt") lines)"
check 'ns_reach w1 "$B" 5555' "w1 reaches the broker by TCP"

# --- 4. pull the worker's cable, put it back --------------------------------
ns_link_down w1
st=$(ns_link_state w1)
check '[ "$st" = LOWERLAYERDOWN ] || [ "$st" = DOWN ]' "ip reports w1's eth0 down: $st"
check 'ns_exec w1 ip -o link show dev eth0 | grep -q NO-CARRIER' "w1's eth0 has no carrier"
check 'ip -n "$(ns_name broker)" -o link show >/dev/null && ip -n "$NETNS_PREFIX-sw" -o link show dev v2 | grep -q "state DOWN"' \
      "switch port of w1 is down"
check '! ns_reach w1 "$B" 5555' "w1 cannot reach the broker while cut"
check 'kill -0 $broker && kill -0 $worker' "broker and worker still running"
ns_link_up w1
for _ in $(seq 1 20); do [ "$(ns_link_state w1)" = UP ] && break; sleep 0.1; done
check '[ "$(ns_link_state w1)" = UP ]' "w1's link is up again: $(ns_link_state w1)"
check 'ns_reach w1 "$B" 5555 10' "w1 reaches the broker again"
#   the worker's session survived the short cut, or it reconnects (backoff)
check 'ready 40' "worker serves the broker again after the cut"
seq 1 100 | map > "$T/out2.txt" 2>/dev/null
check '[ "$(md5sum < "$T/out2.txt")" = "$(head -100 "$T/want.txt" | md5sum)" ]' "map after the cut"

# --- 5. teardown ------------------------------------------------------------
netns_teardown
check '[ -z "$(our_ns "$NETNS_PREFIX")" ]' "teardown removed every namespace: $(our_ns "$NETNS_PREFIX")"
for _ in $(seq 1 20); do kill -0 $broker 2>/dev/null || kill -0 $worker 2>/dev/null || break; sleep 0.1; done
check '! kill -0 $broker 2>/dev/null && ! kill -0 $worker 2>/dev/null' "teardown stopped the broker and the worker"
wait $broker 2>/dev/null; wait $worker 2>/dev/null
check '[ "$(host_links)" = "$links_before" ]' "host interfaces untouched after teardown: $(host_links)"
netns_teardown  # idempotent
check '[ $? -eq 0 ]' "second teardown is harmless"

echo "test_netns: $pass passed, $fail failed"
[ $fail -eq 0 ]
