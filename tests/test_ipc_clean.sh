#!/usr/bin/env bash
# Clean ends (issue 11): what a SIGKILLed CLI, broker or worker node leaves
# in the ipc directory ($TMPDIR), and that the next start cleans it.
#   - an embedded `dpool map` SIGKILLed mid-job: its local workers die with
#     it; the ipc file it leaves (dpool-PID-*.ipc, PID gone) is removed by
#     the next dpool that starts local workers, which leaves nothing itself;
#   - a worker node SIGKILLed: it made no ipc file, its workers die with it;
#   - a dpool-broker SIGKILLed: the same as the CLI; SIGTERMed: it removes
#     its own ipc file and those of the ipc:// endpoints it was given.
set -u
BIN=$(cd "${DPOOL_BIN:-build/bin}" && pwd)
LIB=$(cd "${DPOOL_LIB:-build/lib}" && pwd)
MOD="$LIB/libdpool_testtasks.so"
T=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
export TMPDIR="$T/tmp"
mkdir -p "$TMPDIR"
pass=0 fail=0
check () { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }
ms () { echo $(( $(date +%s%N) / 1000000 )); }
wait_until () {     # wait_until MS CONDITION
    local end=$(( $(ms) + $1 ))
    until eval "$2"; do
        [ "$(ms)" -ge "$end" ] && return 1
        sleep 0.05
    done
}
ipc_files () { find "$TMPDIR" "$@" -maxdepth 1 -name '*.ipc' -printf '%f\n' 2>/dev/null | sort; }
#   processes whose command line names PATTERN (our workers name their ipc path)
procs () { pgrep -f -- "$1" | grep -vx "$$" || true; }

# --- 1. a SIGKILLed embedded dpool map ------------------------------------------
yes 20 | head -n 100000 | "$BIN/dpool" map -j 2 -m "$MOD" sleep_ms > /dev/null 2>&1 &
cli=$!
pids+=("$cli")
check 'wait_until 10000 "[ -n \"\$(ipc_files)\" ] && [ -n \"\$(procs \"\$TMPDIR/dpool-$cli-\")\" ]"' \
      "the CLI's local workers run over ipc in \$TMPDIR"
stale=$(ipc_files)
kill -9 "$cli"
wait "$cli" 2>/dev/null
check '[[ "$stale" == dpool-$cli-*.ipc ]]' "the CLI's ipc file is named by its pid: $stale"
check 'wait_until 3000 "[ -z \"\$(procs \"\$TMPDIR/dpool-$cli-\")\" ]"' \
      "its workers die with it: $(procs "$TMPDIR/dpool-$cli-" | xargs -r ps -o pid,args -p)"
check '[ "$(ipc_files)" = "$stale" ]' "SIGKILL leaves its ipc file: $(ipc_files)"
out=$(echo 7 | "$BIN/dpool" map -j 1 -m "$MOD" square 2>&1)
check '[ "$out" = 49 ]' "the next dpool map works: $out"
check '[ -z "$(ipc_files)" ]' "the next start removed the stale file and left none: $(ipc_files)"

# --- 2. a worker node SIGKILLed; a broker SIGTERMed -----------------------------
"$BIN/dpool-broker" -j none -c "ipc://$T/c.ipc" -w "ipc://$T/w.ipc" --heartbeat 200 2> "$T/broker.log" &
broker=$!
pids+=("$broker")
"$BIN/dpool-worker" --connect "ipc://$T/w.ipc" -j 2 -m "$MOD" --heartbeat 200 2> "$T/node.log" &
node=$!
pids+=("$node")
#   (-j none: the node is the report's first node; its workers name it: node 0)
workers_up () { [ "$("$BIN/dpool" status -b "ipc://$T/c.ipc" --json 2>/dev/null | grep -o '"node":0' | wc -l)" -eq 2 ]; }
check 'wait_until 10000 workers_up' "the node's 2 workers registered: $("$BIN/dpool" status -b "ipc://$T/c.ipc" 2>&1)"
out=$(seq 1 1000 | "$BIN/dpool" map -b "ipc://$T/c.ipc" square | tail -1)
check '[ "$out" = 1000000 ]' "a map through the node: $out"
kill -9 "$node"
wait "$node" 2>/dev/null
check 'wait_until 3000 "[ -z \"\$(procs \"connect ipc://$T/w.ipc\")\" ]"' \
      "the node's workers die with it: $(procs "connect ipc://$T/w.ipc" | xargs -r ps -o pid,args -p)"
check '[ -z "$(ipc_files)" ]' "a SIGKILLed node leaves no ipc file: $(ipc_files)"
kill -TERM "$broker"
wait "$broker"
check '[ $? -eq 0 ]' "the broker stops on SIGTERM"
check '[ -z "$(ipc_files "$T")" ] && [ -z "$(ipc_files)" ]' \
      "a stopped broker removes its endpoints' ipc files: $(ipc_files "$T") $(ipc_files)"

# --- 3. a SIGKILLed dpool-broker with local workers -------------------------------
"$BIN/dpool-broker" -j 2 -m "$MOD" -c "ipc://$T/c.ipc" -w "ipc://$T/w.ipc" 2> "$T/broker2.log" &
broker=$!
pids+=("$broker")
check 'wait_until 10000 "[ -n \"\$(ipc_files)\" ] && \"$BIN/dpool\" status -b ipc://$T/c.ipc --timeout 500 > /dev/null 2>&1"' \
      "a broker with local workers"
kill -9 "$broker"
wait "$broker" 2>/dev/null
check 'wait_until 3000 "[ -z \"\$(procs \"\$TMPDIR/dpool-$broker-\")\" ]"' "its local workers die with it"
check '[[ "$(ipc_files)" == dpool-$broker-*.ipc ]]' "SIGKILL leaves its ipc file: $(ipc_files)"
"$BIN/dpool-broker" -j 1 -m "$MOD" -c "ipc://$T/c.ipc" -w "ipc://$T/w.ipc" 2> "$T/broker3.log" &
broker=$!
pids+=("$broker")
check 'wait_until 10000 "\"$BIN/dpool\" status -b ipc://$T/c.ipc --timeout 500 > /dev/null 2>&1"' "the next broker starts"
check '[[ "$(ipc_files)" == dpool-$broker-*.ipc ]]' "it removed the stale file, keeps only its own: $(ipc_files)"
kill -TERM "$broker"
wait "$broker"
check '[ -z "$(ipc_files)" ] && [ -z "$(ipc_files "$T")" ]' "and leaves none: $(ipc_files) $(ipc_files "$T")"

echo "test_ipc_clean: $pass passed, $fail failed"
[ $fail -eq 0 ]
