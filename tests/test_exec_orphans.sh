#!/usr/bin/env bash
# No exec command outlives its worker: a command with a background
# grandchild (`sleep M & sleep M`, M a marker) runs under `dpool run`, then
#   1. its worker node (dpool-worker -j 1) is SIGKILLed,
#   2. the broker that started its local worker is SIGKILLed,
#   3. `dpool run` itself (embedded pool: broker and worker in it) is SIGKILLed;
# each time every process holding the marker must be gone within 3 s.
# Only the pids this script started are killed.
set -u
BIN=${DPOOL_BIN:-build/bin}
T=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

# Processes whose command line holds $1 (zombies have none), but for
# `dpool run` itself ($run_pid), which names it too.
run_pid=0
holders() {
    # the pattern 17[.]30 finds 17.30 but not itself in grep's own cmdline
    grep -ls -- "${1//./[.]}" /proc/[0-9]*/cmdline | grep -cv -e "^/proc/$run_pid/" -e "^/proc/$$/"
}

# Wait up to $2 ms for holders of $1 to number $3 (or more with "ge").
wait_count() {
    local marker=$1 ms=$2 want=$3 mode=${4:-eq} end n
    end=$(( $(date +%s%3N) + ms ))
    while :; do
        n=$(holders "$marker")
        if [ "$mode" = ge ] && [ "$n" -ge "$want" ]; then echo "$n"; return 0; fi
        if [ "$mode" = eq ] && [ "$n" -eq "$want" ]; then echo "$n"; return 0; fi
        if [ "$(date +%s%3N)" -ge "$end" ]; then
            # leave none of ours behind (these are this test's commands)
            [ "$want" -eq 0 ] && for f in $(grep -ls -- "${marker//./[.]}" /proc/[0-9]*/cmdline); do
                f=${f#/proc/}; f=${f%/cmdline}
                [ "$f" != "$run_pid" ] && [ "$f" != "$$" ] && kill -9 "$f" 2>/dev/null
            done
            echo "$n"; return 1
        fi
        sleep 0.05
    done
}

# Start `dpool run` of the marker command in the background, wait for the
# shell and its two sleeps.
start_job() {
    local marker=$1; shift
    echo x | "$BIN/dpool" run "$@" --max-attempts 1 -- "sleep $marker & sleep $marker; : {}" \
        > /dev/null 2>&1 &
    run_pid=$!
    pids+=("$run_pid")
    n=$(wait_count "$marker" 20000 3 ge)
    check '[ "$n" -ge 3 ]' "$marker: the command and its grandchild started ($n)"
}

# --- 1. a worker node SIGKILLed --------------------------------------------
"$BIN/dpool-broker" -c "ipc://$T/c1" -w "ipc://$T/w1" -j none --allow-exec 2>/dev/null &
broker=$!; pids+=("$broker")
"$BIN/dpool-worker" -c "ipc://$T/w1" -j 1 --allow-exec 2>/dev/null &
node=$!; pids+=("$node")
start_job 17.3021 -b "ipc://$T/c1"
kill -9 "$node"
n=$(wait_count 17.3021 3000 0)
check '[ "$n" -eq 0 ]' "node SIGKILLed: $n marker processes left after 3 s"
kill -9 "$run_pid" "$broker" 2>/dev/null

# --- 2. the broker of a local worker SIGKILLed -----------------------------
"$BIN/dpool-broker" -c "ipc://$T/c2" -w "ipc://$T/w2" -j 1 --allow-exec 2>/dev/null &
broker=$!; pids+=("$broker")
start_job 16.2032 -b "ipc://$T/c2"
kill -9 "$broker"
n=$(wait_count 16.2032 3000 0)
check '[ "$n" -eq 0 ]' "broker SIGKILLed: $n marker processes left after 3 s"
kill -9 "$run_pid" 2>/dev/null

# --- 3. dpool run with its embedded pool SIGKILLed -------------------------
start_job 15.1043 -j 1
kill -9 "$run_pid"
n=$(wait_count 15.1043 3000 0)
check '[ "$n" -eq 0 ]' "dpool run (embedded pool) SIGKILLed: $n marker processes left after 3 s"

echo "test_exec_orphans: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
