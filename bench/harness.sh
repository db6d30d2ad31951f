#!/usr/bin/env bash
# dpool's benchmark harness (issue 5): every workload on dpool and on its peers
# side by side in one run, plus the raw-libzmq physical limit, one table of
# medians with the ratio dpool / peer and each goal, met or not.
#
#   bash bench/harness.sh                 full run, 5 repetitions (~10 min on 2 cores);
#                                         writes the table to bench/RESULTS.md
#   bash bench/harness.sh --quick         smoke run: tiny sizes, 1 repetition (< 60 s);
#                                         writes bench/out/RESULTS.quick.md only
#   options: -r, --repeats N   repetitions per measure (median; default 5, --quick 1)
#            --only LIST       comma-separated subset of: raw,w1,w1u,w2,w3,w4,w5,w6,m,scale,curve
#                              (writes bench/out/RESULTS.partial.md, not RESULTS.md)
#            --no-write        print the table only
#   env:     DPOOL_BUILD_DIR   build folder (default build), as deploy/setup.sh
#            PYTHON            the Python for the peers (default /usr/bin/python3,
#                              Debian's, which has python3-distributed)
#
# It builds dpool with deploy/setup.sh, which also apt-installs what is missing
# among the peers (python3, python3-distributed for Dask, parallel). Logs of every
# run (one line per repetition) go to bench/out/harness.log. Only 127.0.0.1 and
# ipc:// endpoints are used. A benchmark is not a test: nothing here asserts a time.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

REPEATS="" QUICK=0 ONLY="all" WRITE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        -r|--repeats) REPEATS=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --no-write) WRITE=0 ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "harness: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
    shift
done
[ -n "$REPEATS" ] || { [ $QUICK = 1 ] && REPEATS=1 || REPEATS=5; }
R=$REPEATS

#   Sizes: the issue's, or tiny ones for the smoke run
if [ $QUICK = 1 ]; then
    W1_N=20000 W1U_N=2000 W2_N=100 W3_N=200 W4_N=100 W5_N=300 M_N=100000
    SCALE_K=20 SCALE_N=2000 RAW_N=20000 LAT_N=1000
else
    W1_N=1000000 W1U_N=100000 W2_N=2000 W3_N=20000 W4_N=2000 W5_N=10000 M_N=10000000
    SCALE_K=200 SCALE_N=200000 RAW_N=100000 LAT_N=10000
fi
W2_US=1000 W3_SIZE=65536 RAW_WINDOW=1000 WORKERS=2
TMO=$([ $QUICK = 1 ] && echo 60 || echo 300)     # seconds, any one command

want() { [ "$ONLY" = all ] || [[ ",$ONLY," == *",$1,"* ]]; }

OUT=$ROOT/bench/out
mkdir -p "$OUT"
LOG=$OUT/harness.log
: > "$LOG"
CMDS=$OUT/commands.txt
: > "$CMDS"
T=$(mktemp -d /tmp/dpool-bench.XXXXXX)
SCALE_PIDS=()
cleanup() {
    for p in "${SCALE_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "harness: $*" >&2; echo "== $*" >> "$LOG"; }

#   ---------------------------------------------------------------------------
#   Build and peers
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$LOAD0" 'BEGIN { exit !(l > 0.5) }' \
    && say "warning: load average $LOAD0 before the run: other work on this machine will disturb the figures"
say "building (deploy/setup.sh) and installing missing peers"
bash deploy/setup.sh python3 python3-distributed parallel >> "$LOG" 2>&1 \
    || { echo "harness: build failed, see $LOG" >&2; exit 1; }
BUILD=${DPOOL_BUILD_DIR:-build}
B=$ROOT/$BUILD/bin
MOD=$ROOT/$BUILD/lib/libdpool_testtasks.so
for p in bench_map raw_zmq serial_spin dpool dpool-broker dpool-worker; do
    [ -x "$B/$p" ] || { echo "harness: $B/$p was not built" >&2; exit 1; }
done
PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=$(command -v python3)
HAVE_DASK=1
"$PY" -c "import distributed" 2>/dev/null || { HAVE_DASK=0; say "no Dask for $PY: W5's peer is skipped"; }
HAVE_PARALLEL=1
command -v parallel >/dev/null || { HAVE_PARALLEL=0; say "no GNU parallel: its W4 rows are skipped"; }

#   ---------------------------------------------------------------------------
#   Helpers

# Run a command (a string for bash -c), logged in the commands list; its
# stdout is the result, its stderr goes to the log.
run() {
    echo "$1" >> "$CMDS"
    echo "\$ $1" >> "$LOG"
    timeout -k 5 "$TMO" bash -c "$1" 2>> "$LOG"
    local rc=$?
    [ $rc = 0 ] || echo "  (exit status $rc)" >> "$LOG"
    [ $rc != 124 ] || echo "harness: timed out after $TMO s: $1" >&2
    return 0
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }

# rate_cmd ITEMS CMD [CHECK]: run CMD (bash -c) REPEATS times, print the median
# of ITEMS / seconds; CHECK (a bash -c string) must succeed after each run.
rate_cmd() {
    rate_cmds "$1" "$2" "${3:-true}"
}

# rate_cmds ITEMS CMD CHECK [CMD CHECK]...: like rate_cmd for several commands,
# their repetitions interleaved (1st of each, 2nd of each, ...) so that a
# disturbance from outside hits them alike; prints their medians on one line
# ("-" for a command that failed).
rate_cmds() {
    local n=$1 r s e i cmd check out=""
    shift
    local -a cmds=() checks=()
    while [ $# -gt 0 ]; do cmds+=("$1"); checks+=("${2:-true}"); shift; [ $# -gt 0 ] && shift; done
    for ((i = 0; i < ${#cmds[@]}; i++)); do
        echo "${cmds[$i]}    # x$R, timed$([ ${#cmds[@]} -gt 1 ] && echo ', interleaved')" >> "$CMDS"
        : > "$T/rates.$i"
        rm -f "$T/failed.$i"
    done
    for ((r = 1; r <= R; r++)); do
        for ((i = 0; i < ${#cmds[@]}; i++)); do
            cmd=${cmds[$i]} check=${checks[$i]}
            [ -e "$T/failed.$i" ] && continue
            s=$(date +%s%N)
            if ! timeout -k 5 "$TMO" bash -c "$cmd" 2>> "$LOG"; then
                echo "harness: failed: $cmd" >&2; echo "FAILED: $cmd" >> "$LOG"; : > "$T/failed.$i"; continue
            fi
            e=$(date +%s%N)
            if ! bash -c "$check" 2>> "$LOG"; then
                echo "harness: wrong output: $cmd" >&2; echo "WRONG OUTPUT: $cmd" >> "$LOG"; : > "$T/failed.$i"; continue
            fi
            awk -v n="$n" -v s="$s" -v e="$e" -v r="$r" -v c="$cmd" \
                'BEGIN { printf "  run %d: %.3f s, %.0f items/s   %s\n", r, (e - s) / 1e9, n / ((e - s) / 1e9), c }' >> "$LOG"
            awk -v n="$n" -v s="$s" -v e="$e" 'BEGIN { printf "%.1f\n", n / ((e - s) / 1e9) }' >> "$T/rates.$i"
        done
    done
    for ((i = 0; i < ${#cmds[@]}; i++)); do
        if [ -e "$T/failed.$i" ]; then out+=" -"; else out+=" $(median < "$T/rates.$i")"; fi
    done
    echo "${out# }"
}

isnum() { [[ "${1:-}" =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

#   Results: one line per table row in $T/rows, tab-separated:
#   workload, dpool value, peer, peer value, ratio, goal, met
ROWS=$T/rows
: > "$ROWS"

# fmt VALUE UNIT: thousands separators for big numbers, 3 significant digits for small
fmt() {
    isnum "${1:-}" || { echo "n/a"; return; }
    awk -v v="$1" -v u="$2" 'BEGIN {
        if (v >= 999.5) { s = sprintf ("%.0f", v); o = "";
            while (length (s) > 3) { o = "," substr (s, length (s) - 2) o; s = substr (s, 1, length (s) - 3) }
            out = s o }
        else if (v >= 100) out = sprintf ("%.0f", v)
        else if (v >= 10) out = sprintf ("%.1f", v)
        else out = sprintf ("%.2f", v)
        print out (u == "" ? "" : " " u) }'
}

# row WORKLOAD DVAL UNIT PEER PVAL PUNIT OP GOAL
#   OP: ge (ratio >= GOAL), le (ratio <= GOAL), lt_abs (DVAL < GOAL, absolute),
#   info (no goal). The ratio is DVAL / PVAL.
row() {
    local w=$1 dv=$2 du=$3 peer=$4 pv=$5 pu=$6 op=$7 goal=${8:-} ratio="n/a" met="—" gtext="—"
    if isnum "$dv" && isnum "$pv" && awk -v p="$pv" 'BEGIN { exit !(p > 0) }'; then
        ratio=$(awk -v d="$dv" -v p="$pv" 'BEGIN { printf "%.2fx", d / p }')
    fi
    case $op in
        ge) gtext="≥ ${goal}x"
            isnum "$dv" && isnum "$pv" && { awk -v d="$dv" -v p="$pv" -v g="$goal" 'BEGIN { exit !(d / p >= g) }' && met=yes || met=NO; } ;;
        le) gtext="≤ ${goal}x"
            isnum "$dv" && isnum "$pv" && { awk -v d="$dv" -v p="$pv" -v g="$goal" 'BEGIN { exit !(d / p <= g) }' && met=yes || met=NO; } ;;
        lt_abs) gtext="< $(fmt "$goal" "$du")"
            isnum "$dv" && { awk -v d="$dv" -v g="$goal" 'BEGIN { exit !(d < g) }' && met=yes || met=NO; } ;;
    esac
    isnum "$dv" || met="not run"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$(fmt "$dv" "$du")" "$peer" "$(fmt "$pv" "$pu")" \
        "$ratio" "$gtext" "$met" >> "$ROWS"
}

#   ---------------------------------------------------------------------------
#   Workloads. Each sets shell variables; the table is built at the end.

RAW_PIPE="" RAW_P50="" RAW_P99=""
if want raw || want w1u || want w6 || want curve; then
    say "raw ZMQ: pipelined round trips (window $RAW_WINDOW) and one at a time"
    RAW_PIPE=$(run "$B/raw_zmq -W $WORKERS -n $RAW_N -w $RAW_WINDOW -r $R pipe")
    read -r RAW_P50 RAW_P99 <<< "$(run "$B/raw_zmq -W $WORKERS -n $LAT_N -r $R lat")"
fi

W1_API="" W1_CLI="" W1_PY=""
if want w1; then
    say "W1: $W1_N square items, C API / dpool map / Pool($WORKERS).map"
    W1_API=$(run "$B/bench_map -j $WORKERS -n $W1_N -r $R square $MOD")
    seq 1 "$W1_N" > "$T/w1.in"
    W1_CLI=$(rate_cmd "$W1_N" "$B/dpool map -j $WORKERS -m $MOD square < $T/w1.in > $T/w1.out" \
        "[ \"\$(tail -n 1 $T/w1.out)\" = $((W1_N * W1_N)) ] && [ \$(wc -l < $T/w1.out) = $W1_N ]")
    W1_PY=$(run "$PY bench/peers/pool_peer.py map $W1_N $WORKERS $R")
fi

W1U_API="" W1U_PY=""
if want w1u; then
    say "W1u: $W1U_N square items one per chunk, C API / Pool.imap(chunksize=1)"
    W1U_API=$(run "$B/bench_map -j $WORKERS -n $W1U_N -c 1 -r $R square $MOD")
    W1U_PY=$(run "$PY bench/peers/pool_peer.py imap1 $W1U_N $WORKERS $R")
fi

W2_DP="" W2_SER="" W2_PY="" W2C_DP="" W2C_SER=""
if want w2; then
    say "W2: $W2_N x spin_us $W2_US, dpool automatic chunks / serial C / Pool($WORKERS).map"
    W2_DP=$(run "$B/bench_map -j $WORKERS -n $W2_N -v $W2_US -r $R spin_us $MOD")
    W2_SER=$(run "$B/serial_spin -n $W2_N -r $R $W2_US")
    #   spin_us spins on the wall clock (as the serial loop and the Python
    #   peer do): W2 sees gaps in dispatch, not CPU the client and broker
    #   take from the workers' cores. Items of CPU time show that too (info)
    W2C_DP=$(run "$B/bench_map -j $WORKERS -n $W2_N -v $W2_US -r $R spin_cpu_us $MOD")
    W2C_SER=$(run "$B/serial_spin -c -n $W2_N -r $R $W2_US")
    W2_PY=$(run "$PY bench/peers/pool_peer.py spin $W2_N $WORKERS $R $W2_US")
fi

W3_DP="" W3_PY=""
if want w3; then
    say "W3: $W3_N items of $W3_SIZE bytes, task len, C API / Pool($WORKERS).map"
    r=$(run "$B/bench_map -j $WORKERS -n $W3_N -s $W3_SIZE -r $R len $MOD")
    isnum "$r" && W3_DP=$(awk -v r="$r" -v s="$W3_SIZE" 'BEGIN { printf "%.1f", r * s / 1e6 }')
    r=$(run "$PY bench/peers/pool_peer.py len $W3_N $WORKERS $R $W3_SIZE")
    isnum "$r" && W3_PY=$(awk -v r="$r" -v s="$W3_SIZE" 'BEGIN { printf "%.1f", r * s / 1e6 }')
fi

W4_DT="" W4_XT="" W4_PT="" W4_DE="" W4_XE="" W4_PE="" W4_DN="" W4_XN="" W4_XB=""
if want w4; then
    say "W4: $W4_N shell jobs (true, echo {}): dpool run / xargs -P$WORKERS / parallel -j$WORKERS"
    seq 1 "$W4_N" > "$T/w4.in"
    okw4="[ \$(wc -l < $T/w4.out) = $W4_N ]"
    par="parallel --will-cite -j $WORKERS"
    [ $HAVE_PARALLEL = 1 ] || par="false"
    #   dpool run and parallel append the line to a command without {}
    #   (`true 1`): so does xargs -n 1. With an argument, coreutils' true
    #   sets up its locale (about a third of its run time here); xargs
    #   -I{} true runs it bare, an info row
    read -r W4_DT W4_XT W4_PT W4_XB <<< "$(rate_cmds "$W4_N" \
        "$B/dpool run -j $WORKERS -- true < $T/w4.in > /dev/null" true \
        "xargs -P $WORKERS -n 1 true < $T/w4.in" true \
        "$par true < $T/w4.in" true \
        "xargs -P $WORKERS -I{} true < $T/w4.in" true)"
    read -r W4_DE W4_XE W4_PE <<< "$(rate_cmds "$W4_N" \
        "$B/dpool run -j $WORKERS -- echo {} < $T/w4.in > $T/w4.out" "$okw4" \
        "xargs -P $WORKERS -I{} echo {} < $T/w4.in > $T/w4.out" "$okw4" \
        "$par -k echo {} < $T/w4.in > $T/w4.out" "$okw4")"
    #   a static no-op program: no dynamic loader per job, so what is left
    #   is each runner's own per-job cost (info)
    if cc -O2 -static -o "$T/nop" bench/nop.c 2>> "$LOG"; then
        read -r W4_DN W4_XN <<< "$(rate_cmds "$W4_N" \
            "$B/dpool run -j $WORKERS -- $T/nop < $T/w4.in > /dev/null" true \
            "xargs -P $WORKERS -n 1 $T/nop < $T/w4.in" true)"
    fi
fi

#   W5 and W6 both come from one run of N sequential one-item dp_map calls:
#   its rate is W5's dpool side (until the futures API lands), its
#   latencies W6's.
#   W5 uses futures (bench_map -F: N dp_submit, then wait all) when this
#   libdpool has them; else (bench_map exits 3) the sequential maps' rate,
#   labelled so.
W5_DP="" W5_DASK="" W6_P50="" W6_P99=""
W5_LABEL="W5 $W5_N single-item dp_submit, then wait all, items/s"
if want w5 || want w6; then
    say "W5/W6: $W5_N sequential one-item dp_map calls (rate, p50, p99), interleaved with raw ZMQ one at a time"
    #   one repetition of each in turn, so that a change of load on a shared
    #   machine hits dpool and its raw baseline alike (the raw figures
    #   measured first are replaced by these)
    : > "$T/w6.dp"; : > "$T/w6.raw"
    for ((r = 1; r <= R; r++)); do
        run "$B/raw_zmq -W $WORKERS -n $LAT_N -r 1 lat" >> "$T/w6.raw"
        run "$B/bench_map -j $WORKERS -n $W5_N -1 -r 1 square $MOD" >> "$T/w6.dp"
    done
    W5_SEQ=$(awk '{ print $1 }' "$T/w6.dp" | median)
    W6_P50=$(awk '{ print $2 }' "$T/w6.dp" | median)
    W6_P99=$(awk '{ print $3 }' "$T/w6.dp" | median)
    r=$(awk '{ print $1 }' "$T/w6.raw" | median)
    isnum "$r" && RAW_P50=$r && RAW_P99=$(awk '{ print $2 }' "$T/w6.raw" | median)
    if want w5; then
        say "W5: $W5_N single-item submits (futures), then wait all"
        W5_DP=$(run "$B/bench_map -j $WORKERS -n $W5_N -F -r $R square $MOD")
        if ! isnum "$W5_DP"; then
            say "W5: no futures in this libdpool: sequential one-item maps instead"
            W5_DP=$W5_SEQ
            W5_LABEL="W5 $W5_N sequential one-item maps (futures API pending), items/s"
        fi
    fi
    if want w5 && [ $HAVE_DASK = 1 ]; then
        say "W5: Dask LocalCluster($WORKERS processes) client.map of $W5_N + gather"
        W5_DASK=$(run "$PY bench/peers/dask_peer.py $W5_N $R")
    fi
fi

M_DP_MAIN="" M_DP_WORKER="" M_DP_S="" M_PY_MAIN="" M_PY_WORKER="" M_PY_S=""
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<< "$2"; }
if want m; then
    say "M: $M_N-line stream through dpool map echo / Pool($WORKERS).map, peak RSS (once)"
    r=$(run "$PY bench/rss_peak.py --feed 'seq 1 $M_N' -- $B/dpool map -j $WORKERS -m $MOD echo")
    echo "  $r" >> "$LOG"
    if [ "$(kv rc "$r")" = 0 ]; then
        M_DP_MAIN=$(kv main_kb "$r") M_DP_WORKER=$(kv child_max_kb "$r") M_DP_S=$(kv elapsed "$r")
        [ "$(kv children "$r")" != 0 ] || M_DP_WORKER=""    # none seen alive
    fi
    r=$(run "$PY bench/rss_peak.py --feed 'seq 1 $M_N' -- $PY bench/peers/pool_peer.py stream $M_N $WORKERS")
    echo "  $r" >> "$LOG"
    if [ "$(kv rc "$r")" = 0 ]; then
        M_PY_MAIN=$(kv main_kb "$r") M_PY_WORKER=$(kv child_max_kb "$r") M_PY_S=$(kv elapsed "$r")
    fi
fi

#   Scale: a broker with -j none on ipc:// endpoints, K dpool-worker processes
#   connected to it, the rate of tiny one-item chunks through it.
scale_rate() {
    local k=$1 d="$T/scale$1" i n=0 t
    mkdir -p "$d"
    echo "$B/dpool-broker -j none -c ipc://$d/c -w ipc://$d/w -v > $d/log 2>&1 &" >> "$CMDS"
    "$B/dpool-broker" -j none -c "ipc://$d/c" -w "ipc://$d/w" -v > "$d/log" 2>&1 &
    local broker=$!
    SCALE_PIDS=("$broker")
    echo "for i in \$(seq $k); do $B/dpool-worker --connect ipc://$d/w -m $MOD & done" >> "$CMDS"
    for ((i = 0; i < k; i++)); do
        "$B/dpool-worker" --connect "ipc://$d/w" -m "$MOD" > /dev/null 2>&1 &
        SCALE_PIDS+=($!)
    done
    for ((t = 0; t < 600; t++)); do
        n=$(grep -c " ready: " "$d/log" 2>/dev/null)
        [ "${n:-0}" -ge "$k" ] && break
        sleep 0.1
    done
    [ "${n:-0}" -ge "$k" ] || echo "harness: scale: only ${n:-0} of $k workers ready" >&2
    echo "  scale $k: $n workers ready" >> "$LOG"
    run "$B/bench_map -b ipc://$d/c -n $SCALE_N -c 1 -r $R square $MOD"
    kill "${SCALE_PIDS[@]:1}" 2>/dev/null
    sleep 0.2
    kill "$broker" 2>/dev/null
    wait 2>/dev/null
    SCALE_PIDS=()
}
#   CURVE on and off (issue 9): the same jobs through two dpool-brokers
#   -j $WORKERS on tcp://127.0.0.1, up at once, one with its server
#   directory's keys (the client's link authenticated and encrypted; its
#   local workers are on ipc://), one --no-curve. Each repetition runs every
#   job against the CURVE broker, then against the plaintext one (on, off,
#   on, off, ...), so that a disturbance from outside hits both alike. Jobs:
#     w1     bench_map -b EP square, $W1_N items, automatic chunks (items/s)
#     w1cli  dpool map -b EP square on $W1_N lines, whole command timed (items/s)
#     w1u    bench_map -c 1, $W1U_N items (items/s)
#     w3     bench_map -s $W3_SIZE len, $W3_N distinct items (MB/s)
#     w6     bench_map -1: $W5_N sequential one-item dp_map calls ("rate p50 p99")
#   bench_map times the map calls only (connect and pool start-up not
#   timed); clients find each broker's endpoint and keys in its server
#   directory ($DPOOL_SERVER_DIR). One figure per run in $T/curve.MODE.JOB.
curve_start() {
    local mode=$1 d="$T/curve-$1" t n=0 cp wp
    mkdir -p "$d"
    cp=$(free_port) wp=$(free_port)
    local -a opts=()
    [ "$mode" = off ] && opts=(--no-curve)
    echo "DPOOL_SERVER_DIR=$d/sd $B/dpool-broker -j $WORKERS -m $MOD ${opts[*]} -c tcp://127.0.0.1:$cp -w tcp://127.0.0.1:$wp -v &" >> "$CMDS"
    DPOOL_SERVER_DIR="$d/sd" "$B/dpool-broker" -j "$WORKERS" -m "$MOD" ${opts[@]+"${opts[@]}"} \
        -c "tcp://127.0.0.1:$cp" -w "tcp://127.0.0.1:$wp" -v > "$d/log" 2>&1 &
    SCALE_PIDS+=($!)
    for ((t = 0; t < 600; t++)); do
        n=$(grep -c " ready: " "$d/log" 2>/dev/null)
        [ "${n:-0}" -ge "$WORKERS" ] && break
        sleep 0.1
    done
    echo "  curve $mode: $n workers ready" >> "$LOG"
    echo "tcp://127.0.0.1:$cp" > "$d/ep"
}
# timed_rate ITEMS CMD CHECK: run CMD (bash -c) once, print ITEMS / seconds
# if it and CHECK succeed (nothing otherwise; logged either way)
timed_rate() {
    local s e
    echo "\$ $2" >> "$LOG"
    s=$(date +%s%N)
    if ! timeout -k 5 "$TMO" bash -c "$2" 2>> "$LOG"; then
        echo "harness: failed: $2" >&2; echo "FAILED: $2" >> "$LOG"; return 0
    fi
    e=$(date +%s%N)
    bash -c "$3" 2>> "$LOG" || { echo "harness: wrong output: $2" >&2; echo "WRONG OUTPUT: $2" >> "$LOG"; return 0; }
    awk -v n="$1" -v s="$s" -v e="$e" 'BEGIN { printf "  run: %.3f s, %.0f items/s\n", (e - s) / 1e9, n / ((e - s) / 1e9) }' >> "$LOG"
    awk -v n="$1" -v s="$s" -v e="$e" 'BEGIN { printf "%.1f\n", n / ((e - s) / 1e9) }'
}
curve_run() {   # MODE JOB (commands go to the commands list once, in the first repetition)
    local d="$T/curve-$1" ep r cmds=$CMDS sd
    ep=$(cat "$d/ep") sd="DPOOL_SERVER_DIR=$d/sd"
    [ $r_first = 1 ] || cmds=/dev/null
    case $2 in
        w1) CMDS=$cmds run "$sd $B/bench_map -b $ep -n $W1_N -r 1 square $MOD" ;;
        w1u) CMDS=$cmds run "$sd $B/bench_map -b $ep -n $W1U_N -c 1 -r 1 square $MOD" ;;
        w1cli)
            echo "$sd $B/dpool map -b $ep square < $T/w1.in > $T/curve.w1.out    # timed" >> "$cmds"
            timed_rate "$W1_N" "$sd $B/dpool map -b $ep square < $T/w1.in > $T/curve.w1.out" \
                "[ \"\$(tail -n 1 $T/curve.w1.out)\" = $((W1_N * W1_N)) ] && [ \$(wc -l < $T/curve.w1.out) = $W1_N ]" ;;
        w3) r=$(CMDS=$cmds run "$sd $B/bench_map -b $ep -n $W3_N -s $W3_SIZE -r 1 len $MOD")
            isnum "$r" && awk -v r="$r" -v s="$W3_SIZE" 'BEGIN { printf "%.1f\n", r * s / 1e6 }' ;;
        w6) CMDS=$cmds run "$sd $B/bench_map -b $ep -n $W5_N -1 -r 1 square $MOD" ;;
    esac >> "$T/curve.$1.$2"
}
# crange MODE JOB [COLUMN]: "min-max" of one job's figures (formatted)
crange() {
    local f="$T/curve.$1.$2" lo hi
    [ -s "$f" ] || { echo "n/a"; return; }
    read -r lo hi <<< "$(awk -v c="${3:-1}" '{ print $c }' "$f" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo, hi }')"
    echo "$(fmt "$lo" "")-$(fmt "$hi" "")"
}
cmedian() { [ -s "$T/curve.$1.$2" ] && awk -v c="${3:-1}" '{ print $c }' "$T/curve.$1.$2" | median; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A CV=()
CURVE_RANGES=""
CURVE_JOBS="w1 w1cli w1u w3 w6"
if want curve; then
    say "curve: W1 (C API, CLI), W1u, W3, W6 through dpool-broker -j $WORKERS over tcp://127.0.0.1, CURVE on / off interleaved"
    [ -s "$T/w1.in" ] || seq 1 "$W1_N" > "$T/w1.in"
    curve_start on
    curve_start off
    for ((r = 1; r <= R; r++)); do
        r_first=$([ $r = 1 ] && echo 1 || echo 0)
        for mode in on off; do
            for job in $CURVE_JOBS; do curve_run $mode $job; done
        done
    done
    kill "${SCALE_PIDS[@]}" 2>/dev/null
    wait 2>/dev/null
    SCALE_PIDS=()
    for mode in on off; do
        for job in w1 w1cli w1u w3; do CV[$mode.$job]=$(cmedian $mode $job); done
        CV[$mode.w6p50]=$(cmedian $mode w6 2) CV[$mode.w6p99]=$(cmedian $mode w6 3)
    done
    CURVE_RANGES="CURVE on / off, min-max of $R interleaved runs:"
    CURVE_RANGES+=" W1 C API $(crange on w1) / $(crange off w1) items/s;"
    CURVE_RANGES+=" W1 CLI $(crange on w1cli) / $(crange off w1cli) items/s;"
    CURVE_RANGES+=" W1u $(crange on w1u) / $(crange off w1u) items/s;"
    CURVE_RANGES+=" W3 $(crange on w3) / $(crange off w3) MB/s;"
    CURVE_RANGES+=" W6 p50 $(crange on w6 2) / $(crange off w6 2) µs, p99 $(crange on w6 3) / $(crange off w6 3) µs."
    CURVE_RANGES+=" Raw ZMQ in the same run (broker thread, ipc:// workers, no CURVE): pipelined"
    CURVE_RANGES+=" $(fmt "$RAW_PIPE" "msgs/s"), one at a time p50 $(fmt "$RAW_P50" "µs")."
    say "$CURVE_RANGES"
fi

SCALE_2="" SCALE_K_RATE=""
if want scale; then
    say "scale: broker -j none, $SCALE_K vs $WORKERS dpool-worker processes, $SCALE_N one-item chunks"
    #   not in $(...): the worker pids must stay in this shell for cleanup
    scale_rate "$WORKERS" > "$T/scale.2"
    SCALE_2=$(cat "$T/scale.2")
    scale_rate "$SCALE_K" > "$T/scale.k"
    SCALE_K_RATE=$(cat "$T/scale.k")
fi

#   ---------------------------------------------------------------------------
#   The table
if isnum "$W2_SER" && isnum "$W2_PY"; then
    W2_PY_EFF=$(awk -v p="$W2_PY" -v s="$W2_SER" 'BEGIN { printf "%.2f", p / s }')
else
    W2_PY_EFF=""
fi
MIB=65536   # 64 MiB in KiB
row "W1 $W1_N square, C API dp_map, items/s" "$W1_API" "" "Pool($WORKERS).map" "$W1_PY" "" ge 2
row "W1 $W1_N square, dpool map CLI (lines in/out), items/s" "$W1_CLI" "" "Pool($WORKERS).map" "$W1_PY" "" ge 1
row "W1 $W1_N square, C API via dpool-broker over tcp, CURVE on, items/s" "${CV[on.w1]:-}" "" "the same, CURVE off" "${CV[off.w1]:-}" "" ge 0.85
row "W1 $W1_N square, dpool map -b (CLI) over tcp, CURVE on, items/s" "${CV[on.w1cli]:-}" "" "the same, CURVE off" "${CV[off.w1cli]:-}" "" ge 0.85
row "W1u $W1U_N square, chunk size 1, C API over tcp, CURVE on, items/s" "${CV[on.w1u]:-}" "" "the same, CURVE off" "${CV[off.w1u]:-}" "" ge 0.85
row "W1u same, CURVE on, vs the physical limit (info), items/s" "${CV[on.w1u]:-}" "" "raw ZMQ pipelined (window $RAW_WINDOW)" "$RAW_PIPE" "" info
row "W3 $W3_N items x 64 KiB, C API over tcp, CURVE on, MB/s" "${CV[on.w3]:-}" "" "the same, CURVE off" "${CV[off.w3]:-}" "" ge 0.85
row "W6 one-item dp_map over tcp, CURVE on, p50, µs" "${CV[on.w6p50]:-}" "" "the same, CURVE off" "${CV[off.w6p50]:-}" "" le 1.3
row "W6 same, CURVE on, p99 (info), µs" "${CV[on.w6p99]:-}" "" "the same, CURVE off" "${CV[off.w6p99]:-}" "" info
row "W6 same, CURVE on, p50 vs the physical limit (info), µs" "${CV[on.w6p50]:-}" "" "raw ZMQ one-at-a-time p50" "$RAW_P50" "" info
row "W1u $W1U_N square, chunk size 1, C API, items/s" "$W1U_API" "" "Pool.imap(chunksize=1)" "$W1U_PY" "" ge 5
row "W1u same, vs the physical limit, items/s" "$W1U_API" "" "raw ZMQ pipelined (window $RAW_WINDOW)" "$RAW_PIPE" "" ge 0.55
row "W2 $W2_N x spin_us $W2_US, automatic chunks, items/s" "$W2_DP" "" "serial C loop" "$W2_SER" "" ge 1.94
row "W2 same, dpool vs Python, items/s" "$W2_DP" "" "Pool($WORKERS).map busy loop (${W2_PY_EFF:-n/a}x serial C)" "$W2_PY" "" info
row "W2 with items of CPU time (spin_cpu_us $W2_US, info), items/s" "$W2C_DP" "" "serial C loop, CPU time" "$W2C_SER" "" info
row "W3 $W3_N items x 64 KiB, task len, MB/s" "$W3_DP" "" "Pool($WORKERS).map(len)" "$W3_PY" "" ge 3
row "W4 $W4_N jobs \`true\`, dpool run -j$WORKERS, jobs/s" "$W4_DT" "" "xargs -P$WORKERS -n1 (same command lines)" "$W4_XT" "" ge 1
row "W4 same, against xargs running \`true\` without the line (info), jobs/s" "$W4_DT" "" "xargs -P$WORKERS -I{} true" "$W4_XB" "" info
row "W4 $W4_N jobs \`true\`, dpool run -j$WORKERS, jobs/s" "$W4_DT" "" "GNU parallel -j$WORKERS" "$W4_PT" "" ge 4
row "W4 $W4_N jobs \`echo {}\`, dpool run -j$WORKERS, jobs/s" "$W4_DE" "" "xargs -P$WORKERS" "$W4_XE" "" ge 1
row "W4 $W4_N jobs \`echo {}\`, dpool run -j$WORKERS, jobs/s" "$W4_DE" "" "GNU parallel -k -j$WORKERS" "$W4_PE" "" ge 4
row "W4 $W4_N jobs of a static no-op program (the runner's own cost), jobs/s" "$W4_DN" "" "xargs -P$WORKERS" "$W4_XN" "" info
row "$W5_LABEL" "$W5_DP" "" "Dask LocalCluster($WORKERS procs) map+gather" "$W5_DASK" "" ge 100
row "W6 one-item dp_map round trip p50, µs" "$W6_P50" "" "raw ZMQ one-at-a-time p50" "$RAW_P50" "" le 1.5
row "W6 one-item dp_map round trip p99, µs" "$W6_P99" "" "raw ZMQ one-at-a-time p99" "$RAW_P99" "" info
row "M $M_N-line dpool map echo: dpool CLI (client + broker) peak RSS, KiB" "$M_DP_MAIN" "" "64 MiB" "$MIB" "" lt_abs "$MIB"
row "M same: largest dpool-worker peak RSS, KiB" "$M_DP_WORKER" "" "64 MiB" "$MIB" "" lt_abs "$MIB"
row "M same input, Python Pool($WORKERS).map: parent peak RSS, KiB (info)" "$M_PY_MAIN" "" "dpool CLI peak" "$M_DP_MAIN" "" info
row "Scale $SCALE_N one-item chunks, $SCALE_K workers, items/s" "$SCALE_K_RATE" "" "same with $WORKERS workers" "$SCALE_2" "" ge 0.8

TABLE=$T/table.md
{
    echo "| workload (2 workers unless said) | dpool | peer | peer value | dpool/peer | goal | met |"
    echo "|---|---:|---|---:|---:|---|---|"
    #   rows where nothing was measured (--only: where dpool's side was not run)
    #   are left out
    awk -F'\t' -v only="$ONLY" '!($2 == "n/a" && ($4 == "n/a" || only != "all")) {
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' "$ROWS"
} > "$TABLE"
{
    echo
    echo "Medians of $R repetition(s) each (M: one run). Also measured: raw ZMQ pipelined"
    echo "$(fmt "$RAW_PIPE" "msgs/s"), one at a time p50 $(fmt "$RAW_P50" "µs") p99 $(fmt "$RAW_P99" "µs");"
    echo "M elapsed: dpool $(fmt "$M_DP_S" "s"), Python $(fmt "$M_PY_S" "s"); Python's largest worker"
    echo "peak RSS $(fmt "$M_PY_WORKER" "KiB"). W2 efficiency (rate / serial C rate; ideal 2.00):"
    echo "dpool $(isnum "$W2_DP" && isnum "$W2_SER" && awk -v d="$W2_DP" -v s="$W2_SER" 'BEGIN { printf "%.3f", d / s }' || echo n/a),"
    echo "Pool.map ${W2_PY_EFF:-n/a}."
    [ -z "$CURVE_RANGES" ] || { echo; echo "$CURVE_RANGES"; }
} > "$T/after.md"
echo
cat "$TABLE" "$T/after.md"

#   ---------------------------------------------------------------------------
#   RESULTS.md: a generated section between markers; the rest is kept.
if [ $WRITE = 1 ]; then
    if [ $QUICK = 1 ]; then
        RES=$OUT/RESULTS.quick.md
    elif [ "$ONLY" != all ]; then
        RES=$OUT/RESULTS.partial.md
    else
        RES=$ROOT/bench/RESULTS.md
    fi
    MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
    MEM=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    GEN=$T/generated.md
    {
        echo "<!-- BEGIN GENERATED by bench/harness.sh; edit outside these markers only -->"
        echo "## Results ($(date -u '+%Y-%m-%d %H:%M UTC'))"
        echo
        echo "Machine: $MODEL, $(nproc) cores, $MEM memory; $(uname -sr);"
        echo "Debian $(cat /etc/debian_version 2>/dev/null || echo '?'), libzmq $(pkg-config --modversion libzmq 2>/dev/null || echo '?'),"
        echo "$("$PY" --version 2>&1), Dask $("$PY" -c 'import distributed; print(distributed.__version__)' 2>/dev/null || echo 'n/a'),"
        echo "GNU parallel $(parallel --version 2>/dev/null | head -1 | awk '{ print $3 }' || echo 'n/a')."
        echo "dpool commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- broker client worker proto include 2>/dev/null || echo ' + uncommitted changes in the tree'),"
        echo "build folder \`$BUILD\` (RelWithDebInfo). Load average (1 min) at start $LOAD0, at end $(cut -d' ' -f1 /proc/loadavg)."
        echo "Command: \`bash bench/harness.sh$([ $QUICK = 1 ] && echo ' --quick')$([ "$ONLY" != all ] && echo " --only $ONLY") -r $R\`."
        echo
        cat "$TABLE" "$T/after.md"
        echo
        echo "<details><summary>Exact commands</summary>"
        echo
        echo '```sh'
        sed "s#$ROOT/##g; s#$T#\$TMP#g" "$CMDS"
        echo '```'
        echo "</details>"
        echo "<!-- END GENERATED -->"
    } > "$GEN"
    if [ -f "$RES" ] && grep -q '^<!-- BEGIN GENERATED' "$RES" && grep -q '^<!-- END GENERATED' "$RES"; then
        awk -v gen="$GEN" '
            /^<!-- BEGIN GENERATED/ { while ((getline l < gen) > 0) print l; skip = 1; next }
            /^<!-- END GENERATED/ { skip = 0; next }
            !skip { print }' "$RES" > "$T/res.md"
    else
        { echo "# dpool benchmark results"; echo
          echo "Generated by \`bash bench/harness.sh\` (see bench/README.md); the notes below the"
          echo "generated section are written by hand and kept across runs."; echo
          cat "$GEN"; echo; echo "## Notes"; echo; echo "(hand-written)"; } > "$T/res.md"
    fi
    cp "$T/res.md" "$RES"
    say "wrote $RES (log: $LOG)"
fi
