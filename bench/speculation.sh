#!/usr/bin/env bash
# Stragglers: a job whose few 20x slow items land on an overloaded worker
# finishes sooner with speculative backup copies than without.
#   bash bench/speculation.sh [REPEATS]
# Two local workers; worker A shares CPU 0 with two busy loops (it runs at
# about 1/3 speed), worker B has CPU 1 to itself. The job: 100 items of
# 10 ms of CPU (spin_cpu_us 10000: a third of the speed makes it 30 ms) then
# 4 items of 200 ms, chunk size 1. The broker runs once with
# --no-speculation and once by default.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-3}
B=build/bin
MOD=build/lib/libdpool_testtasks.so
[ -x "$B/dpool-broker" ] || bash deploy/setup.sh >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
items() { for i in $(seq 1 100); do echo 10000; done; for i in 1 2 3 4; do echo 200000; done; }

#   One run on a fresh broker (a killed loser's restarted worker would not
#   keep the pinning): prints milliseconds.
run_once() {    # $1: extra broker flag
    local cp wp bpid s e
    cp=$(port); wp=$(port)
    "$B/dpool-broker" -c "tcp://127.0.0.1:$cp" -w "tcp://127.0.0.1:$wp" -j 2 -m "$MOD" $1 &
    bpid=$!
    for i in $(seq 1 100); do [ "$(pgrep -P "$bpid" | wc -l)" -ge 2 ] && break; sleep 0.05; done
    local kids=($(pgrep -P "$bpid"))
    taskset -a -p -c 0 "${kids[0]}" >/dev/null     #  -a: every thread (the executor runs the tasks)
    taskset -a -p -c 1 "${kids[1]}" >/dev/null
    s=$(date +%s%N)
    items | "$B/dpool" map -b "tcp://127.0.0.1:$cp" --chunksize 1 spin_cpu_us > /dev/null
    e=$(date +%s%N)
    kill "$bpid"; wait "$bpid" 2>/dev/null || true
    echo $(( (e - s) / 1000000 ))
}

run_case() {    # $1: extra broker flag; prints the median milliseconds
    for r in $(seq 1 "$R"); do run_once "$1"; done \
        | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

#   two busy loops share CPU 0 with worker A
for h in 1 2; do taskset -c 0 sh -c 'while :; do :; done' & pids+=($!); done
with=$(run_case "")
without=$(run_case --no-speculation)
printf '%-40s %10s\n' "stragglers on an overloaded worker" "median ms"
printf '%-40s %10s\n' "dpool-broker --no-speculation" "$without"
printf '%-40s %10s\n' "dpool-broker (speculation, default)" "$with"
awk -v a="$without" -v b="$with" 'BEGIN { printf "speedup: %.2fx\n", a / b }'
