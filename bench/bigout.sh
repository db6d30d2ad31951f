#!/usr/bin/env bash
# What CURVE costs a big streamed output: `dpool run` of one job printing
# BYTES (`head -c BYTES /dev/zero`) through a standalone broker (-j none)
# and a remote `dpool-worker --allow-exec`, both on tcp://127.0.0.1, once
# with CURVE (the broker's server directory's keys) and once --no-curve.
# The two setups are up at once and their runs interleave (on, off, on,
# off, ...). Prints the wall time of every run, then the CPU time (user,
# system) that each setup's broker, worker and clients took over all its
# runs, start-up included (bash's `times` of a subshell per setup).
#
#   bash bench/bigout.sh [-n BYTES] [-r REPEATS]     defaults: 100000000, 3
#   env: DPOOL_BUILD_DIR (default build)
#
# The output passes through the stream of PARTs (1 MiB each, 4 unacknowledged
# at most: PROTOCOL.md rule 13): worker -> broker -> client, ACKs back. A
# benchmark, not a test: nothing is asserted but the byte count.
set -uo pipefail
cd "$(dirname "$0")/.."
N=100000000 R=3
while [ $# -gt 0 ]; do
    case "$1" in
        -n) N=$2; shift ;;
        -r) R=$2; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bigout: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
    shift
done
B=${DPOOL_BUILD_DIR:-build}/bin
for p in dpool dpool-broker dpool-worker; do
    [ -x "$B/$p" ] || { echo "bigout: $B/$p was not built" >&2; exit 1; }
done
T=$(mktemp -d /tmp/dpool-bigout.XXXXXX)
trap 'rm -rf "$T"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# setup MODE: in a subshell that owns a broker and a worker, run the job
# whenever a line "go" comes on the fifo $T/MODE.go, answering with its
# seconds on $T/MODE.done; on "stop", stop both and print the CPU times
setup() {
    local mode=$1 d="$T/$1" cep wep opt="" s e i
    mkdir -p "$d"
    cep=tcp://127.0.0.1:$(free_port) wep=tcp://127.0.0.1:$(free_port)
    [ "$mode" = off ] && opt=--no-curve
    export DPOOL_SERVER_DIR=$d/sd
    "$B/dpool-broker" $opt -j none -c "$cep" -w "$wep" -v > "$d/broker.log" 2>&1 &
    local broker=$!
    "$B/dpool-worker" --connect "$wep" --allow-exec > "$d/worker.log" 2>&1 &
    local worker=$!
    for ((i = 0; i < 200; i++)); do
        grep -q " ready: " "$d/broker.log" 2>/dev/null && break
        sleep 0.05
    done
    while read -r cmd; do
        [ "$cmd" = go ] || break
        s=$(date +%s%N)
        "$B/dpool" run -b "$cep" --broker-timeout 20000 "head -c {} /dev/zero" ::: "$N" | wc -c > "$d/n"
        e=$(date +%s%N)
        awk -v s="$s" -v e="$e" -v n="$(cat "$d/n")" 'BEGIN { printf "%.3f %s\n", (e - s) / 1e9, n }' > "$d/done"
    done < "$d/go"
    kill "$worker" "$broker" 2>/dev/null
    wait "$worker" "$broker" 2>/dev/null
    times > "$d/times"              #   (not in a pipe: that would be a subshell's)
    tail -n 1 "$d/times" > "$d/cpu"
}

for mode in on off; do
    mkdir -p "$T/$mode"
    mkfifo "$T/$mode/go"
    setup "$mode" &
    eval "exec {fd_$mode}> \"$T/$mode/go\""
done
echo "bigout: $N bytes through a broker and a remote worker over tcp, CURVE on / off, $R runs each, interleaved" >&2
for ((r = 1; r <= R; r++)); do
    for mode in on off; do
        fd=fd_$mode
        rm -f "$T/$mode/done"
        echo go >&"${!fd}"
        while [ ! -s "$T/$mode/done" ]; do sleep 0.02; done
        read -r secs bytes < "$T/$mode/done"
        [ "$bytes" = "$N" ] || echo "bigout: CURVE $mode run $r: $bytes bytes, not $N" >&2
        echo "CURVE $mode run $r: $secs s"
    done
done
for mode in on off; do
    fd=fd_$mode
    echo stop >&"${!fd}"
    eval "exec {fd_$mode}>&-"
done
wait
for mode in on off; do
    echo "CURVE $mode: CPU of broker, worker and $R clients (user, system): $(cat "$T/$mode/cpu")"
done
