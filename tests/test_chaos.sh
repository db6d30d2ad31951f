#!/usr/bin/env bash
# Chaos: a 100,000-item map on dpool-broker -j 4 plus a worker node
# (dpool-worker -j 2; in a network namespace of its own when namespaces are
# available, else on loopback) while a random worker process — a child of
# the broker or of the node, never the broker or the node themselves — is
# SIGKILLed every 200 ms until the job ends. Asserts: every result correct,
# in order, none lost, none duplicated; afterwards no zombie among the
# broker's (or node's) children, the broker's open file descriptors back to
# their count before the job, the pool healthy for the next job.
# DPOOL_TEST_NO_NETNS=1 forces the loopback variant.
# shellcheck disable=SC2016  # check() evals its single-quoted condition
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${DPOOL_BIN:-$HERE/../build/bin}" 2>/dev/null && pwd) || BIN=${DPOOL_BIN:-build/bin}
LIB=$(cd "${DPOOL_LIB:-$HERE/../build/lib}" 2>/dev/null && pwd) || LIB=${DPOOL_LIB:-build/lib}
MOD="$LIB/libdpool_testtasks.so"
N=${CHAOS_N:-100000}
NAP_US=${CHAOS_NAP_US:-400}     # per item: 100,000 x 0.4 ms on 6 workers, about 8 s calm
# CHAOS_CHUNKSIZE=1 with tiny items: chunks grouped many to a CHUNK, so a kill
# lands inside groups (the tiny variant in tests/CMakeLists.txt)
CHUNK_ARGS=()
[ -n "${CHAOS_CHUNKSIZE:-}" ] && CHUNK_ARGS=(--chunksize "$CHAOS_CHUNKSIZE")
KILL_EVERY=${CHAOS_KILL_EVERY:-0.2}   # seconds between kills
T=$(mktemp -d)
pids=()
cleanup () {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
check () { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }
ms () { echo $(( $(date +%s%N) / 1000000 )); }
wait_until () {     # MS CONDITION: poll every 50 ms for up to MS ms
    local end=$(( $(ms) + $1 ))
    until eval "$2"; do
        [ "$(ms)" -ge "$end" ] && return 1
        sleep 0.05
    done
}
free_port () {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# --- the pool: broker (+ client) in one place, the node in another ----------------
IN_BROKER=() IN_NODE=()
if [ "${DPOOL_TEST_NO_NETNS:-0}" != 1 ] && [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null 2>&1 && ip netns list >/dev/null 2>&1; then
    # shellcheck source=tests/netns.sh
    source "$HERE/netns.sh"
    netns_setup a b; rc=$?
    check '[ $rc -eq 0 ]' "netns_setup a b: status $rc (root with ip netns: must work)"
    [ $rc -eq 0 ] || exit 1
    A=$(ns_addr a)
    CEP="tcp://$A:5555" WEP="tcp://$A:5556"
    #   `ip netns exec` execs the command: $! is the command's own pid
    IN_BROKER=(ip netns exec "$(ns_name a)") IN_NODE=(ip netns exec "$(ns_name b)")
    echo "node in a network namespace; broker at $A"
else
    CEP="tcp://127.0.0.1:$(free_port)" WEP="tcp://127.0.0.1:$(free_port)"
    echo "no network namespaces here: the node runs on loopback"
fi
"${IN_BROKER[@]}" "$BIN/dpool-broker" -j 4 -m "$MOD" -v -c "$CEP" -w "$WEP" \
    --task-wait 20000 > "$T/broker.log" 2>&1 &
broker=$!
pids+=("$broker")
"${IN_NODE[@]}" "$BIN/dpool-worker" --connect "$WEP" -j 2 -m "$MOD" > "$T/node.log" 2>&1 &
node=$!
pids+=("$node")

kids () { pgrep -P "$1" | tr '\n' ' '; }
nkids () { pgrep -P "$1" | wc -l; }
fds () { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
zombies () {        # PID...: zombie children of these processes
    local p
    for p in "$@"; do
        ps -o pid=,stat= --ppid "$p" 2>/dev/null | awk '$2 ~ /^Z/ { print $1 }'
    done | tr '\n' ' '
}
registered () {     # every worker process of the pool has a ready line
    local p
    for p in $(kids $broker) $(kids $node) $node; do
        grep " ready: " "$T/broker.log" | grep -q "pid $p," || return 1
    done
}
settled () {        # 4 + 2 workers, all registered, and the fd count steady
    [ "$(nkids $broker)" -eq 4 ] && [ "$(nkids $node)" -eq 2 ] && registered || return 1
    local a b
    a=$(fds $broker); sleep 0.2; b=$(fds $broker)
    [ "$a" -eq "$b" ] && [ "$(nkids $broker)" -eq 4 ] && [ "$(nkids $node)" -eq 2 ]
}
dump () {
    echo "---- broker log (last 60 lines)"; tail -60 "$T/broker.log"
    echo "---- node log (last 20 lines)"; tail -20 "$T/node.log"
    echo "---- client stderr (first 20 lines)"; head -20 "$T/err.txt" 2>/dev/null
} >&2

check 'wait_until 15000 settled' "4 local workers and a node of 2 registered: $(kids $broker) / $(kids $node)"
seq 1 1000 | timeout 60 "${IN_BROKER[@]}" "$BIN/dpool" map -b "$CEP" square > "$T/warm.txt" 2>&1
check '[ "$(wc -l < "$T/warm.txt")" -eq 1000 ]' "a first job works: $(head -3 "$T/warm.txt")"
check 'wait_until 5000 "grep -q \" left\" $T/broker.log && settled"' "the pool settles after the first job"
fd_before=$(fds $broker)
echo "broker: $fd_before open fds before the chaos"

# --- the job, and a random worker killed every 200 ms -------------------------------
seq 0 $((N - 1)) | sed "s/^/$NAP_US:/" > "$T/in.txt"
start=$(ms)
"${IN_BROKER[@]}" "$BIN/dpool" map -b "$CEP" "${CHUNK_ARGS[@]}" nap_echo \
    < "$T/in.txt" > "$T/out.txt" 2> "$T/err.txt" &
client=$!
pids+=("$client")
kills=0 local_kills=0 node_kills=0
while kill -0 $client 2>/dev/null; do
    sleep "$KILL_EVERY"
    #   live (not zombie) children of the broker and of the node
    mapfile -t victims < <(ps -o pid=,stat= --ppid "$broker,$node" | awk '$2 !~ /^Z/ { print $1 }')
    [ ${#victims[@]} -gt 0 ] || continue
    v=${victims[RANDOM % ${#victims[@]}]}
    [ "$v" = "$broker" ] || [ "$v" = "$node" ] || [ "$v" = "$client" ] && continue
    grep -q "^PPid:[[:space:]]*$broker$" "/proc/$v/status" 2>/dev/null && is_local=1 || is_local=0
    kill -KILL "$v" 2>/dev/null || continue
    kills=$((kills + 1))
    if [ "$is_local" = 1 ]; then local_kills=$((local_kills + 1)); else node_kills=$((node_kills + 1)); fi
    [ $(( $(ms) - start )) -gt 90000 ] && { echo "job still running after 90 s: giving up" >&2; kill -KILL $client; }
done
wait $client; rc=$?
took=$(( $(ms) - start ))
echo "job of $N items: status $rc in $took ms, $kills workers SIGKILLed ($local_kills local, $node_kills on the node)"
check '[ $rc -eq 0 ]' "job status $rc: $(head -3 "$T/err.txt")"
check '[ $kills -ge 10 ]' "only $kills kills: the job was too short to be a chaos test"
check '[ $local_kills -gt 0 ] && [ $node_kills -gt 0 ]' "kills on both: $local_kills local, $node_kills node"
got=$(wc -l < "$T/out.txt")
check '[ "$got" -eq $N ]' "lost or extra results: $got of $N"
check 'cmp -s "$T/in.txt" "$T/out.txt"' "results differ from the items (first difference: $(cmp "$T/in.txt" "$T/out.txt" 2>&1 | head -1))"
dups=$(sort "$T/out.txt" | uniq -d | wc -l)
check '[ "$dups" -eq 0 ]' "$dups duplicated results"
deaths=$(grep -c " died: " "$T/broker.log")
echo "broker saw $deaths worker deaths"
check '[ "$deaths" -ge $((kills / 2)) ]' "broker logged $deaths deaths for $kills kills"

# --- afterwards: no zombies, fds back, healthy --------------------------------------
check 'wait_until 10000 "[ -z \"\$(zombies $broker $node)\" ]"' "zombie children: $(zombies $broker $node)"
check 'wait_until 40000 settled' "the pool is back to 4 + 2 registered workers: $(kids $broker) / $(kids $node)"
check 'wait_until 20000 "[ \$(fds $broker) -eq $fd_before ]"' "broker fds: $(fds $broker), $fd_before before"
echo "broker: $(fds $broker) open fds after the chaos"
check '[ -z "$(zombies $broker $node)" ]' "zombie children: $(zombies $broker $node)"
seq 1 1000 | timeout 60 "${IN_BROKER[@]}" "$BIN/dpool" map -b "$CEP" square > "$T/after.txt" 2>&1
seq 1 1000 | awk '{ print $1 * $1 }' > "$T/want.txt"
check 'cmp -s "$T/after.txt" "$T/want.txt"' "a job after the chaos: $(head -3 "$T/after.txt")"

kill -TERM $node $broker
check 'wait_until 5000 "! kill -0 $node 2>/dev/null && ! kill -0 $broker 2>/dev/null"' "node and broker stop on SIGTERM"
wait $broker; rc=$?
check '[ $rc -eq 0 ]' "broker exit status $rc"
[ $fail -eq 0 ] || dump
echo "test_chaos: $pass passed, $fail failed"
[ $fail -eq 0 ]
