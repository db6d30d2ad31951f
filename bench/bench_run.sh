#!/usr/bin/env bash
# dpool run vs GNU parallel vs xargs -P, at equal -j, interleaved (each
# round runs every tool once per workload), medians of ROUNDS:
#   5,000 short jobs (echo), 500 jobs of `sleep 0.02`, --pipe of MB megabytes
#   of lines into `wc -l` (xargs has no --pipe), and dpool run with --joblog.
#   bash bench/bench_run.sh [J] [MB] [ROUNDS] [SHORT_JOBS] [SLEEP_JOBS]   (defaults 2 200 3 5000 500)
#   BENCH_RUN_ONLY=joblog: only dpool run's short jobs with and without --joblog
set -euo pipefail
cd "$(dirname "$0")/.."
J=${1:-2}
MB=${2:-200}
R=${3:-3}
N=${4:-5000}
S=${5:-500}
B=${DPOOL_BIN:-build/bin}
command -v parallel > /dev/null || { echo "bench_run: GNU parallel is not installed (apt-get install parallel)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export HOME="$T"            # GNU parallel: no ~/.parallel, no notice
seq 1 "$N" > "$T/short"
for _ in $(seq 1 "$S"); do echo 0.02; done > "$T/sleep"    # the argument is appended: sleep 0.02
# MB of numbered lines
awk -v mb="$MB" 'BEGIN { line = sprintf("%0127d", 0); n = mb * 1048576 / 128;
    for (i = 0; i < n; i++) print line }' > "$T/lines"
bytes=$(stat -c %s "$T/lines")
lines=$(wc -l < "$T/lines")
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# time_of CMD... : seconds
time_of() {
    local s e
    s=$(date +%s%N)
    "$@"
    e=$(date +%s%N)
    echo "$s $e" | awk '{ printf "%.4f\n", ($2 - $1) / 1e9 }'
}
short_dpool()    { "$B/dpool" run -j "$J" echo < "$T/short" > "$T/o"; }
short_dpool_jl() { rm -f "$T/jl"; "$B/dpool" run -j "$J" --joblog "$T/jl" echo < "$T/short" > "$T/o"; }
short_par()      { parallel --will-cite -k -j "$J" echo < "$T/short" > "$T/o"; }
short_xargs()    { xargs -P "$J" -n 1 echo < "$T/short" > "$T/o"; }
sleep_dpool()    { "$B/dpool" run -j "$J" sleep < "$T/sleep" > "$T/o"; }
sleep_par()      { parallel --will-cite -k -j "$J" sleep < "$T/sleep" > "$T/o"; }
sleep_xargs()    { xargs -P "$J" -n 1 sleep < "$T/sleep" > "$T/o"; }
pipe_dpool()     { "$B/dpool" run -j "$J" --pipe --block 4M wc -l < "$T/lines" > "$T/o"; }
pipe_par()       { parallel --will-cite -k -j "$J" --pipe --block 4M wc -l < "$T/lines" > "$T/o"; }
check_pipe()     { [ "$(awk '{ s += $1 } END { print s }' "$T/o")" = "$lines" ] || { echo "bench_run: --pipe lost lines" >&2; exit 1; }; }
declare -A t
# cpu_of CMD... : "WALL CPU" seconds, CPU being user + system of CMD and
# all it waited for (the client, its embedded broker and its workers):
# far less disturbed than the wall time by other load on the machine
cpu_of() {
    local s e
    s=$(date +%s%N)
    ( "$@"; times; date +%s%N ) | awk -v s="$s" 'NR == 2 { split($1, u, /[ms]/); split($2, y, /[ms]/) }
        NR == 3 { printf "%.4f %.3f\n", ($1 - s) / 1e9, u[1] * 60 + u[2] + y[1] * 60 + y[2] }'
}
declare -A c
if [ "${BENCH_RUN_ONLY:-}" = joblog ]; then
    for r in $(seq 1 "$R"); do
        for w in short_dpool short_dpool_jl; do
            read -r wall cpu <<< "$(cpu_of $w)"
            t[$w]+="$wall " c[$w]+="$cpu "
        done
    done
    echo "== -j $J, $(nproc) cores, $R interleaved rounds, $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "wall (s) without: ${t[short_dpool]}; with --joblog: ${t[short_dpool_jl]}"
    echo "CPU (s) without: ${c[short_dpool]}; with --joblog: ${c[short_dpool_jl]}"
    R=0
fi
for r in $(seq 1 "$R"); do
    for w in short_dpool short_dpool_jl short_par short_xargs sleep_dpool sleep_par sleep_xargs; do
        t[$w]+="$(time_of $w) "
    done
    for w in pipe_dpool pipe_par; do
        t[$w]+="$(time_of $w) "
        check_pipe
    done
done
med() { echo "${t[$1]}" | tr ' ' '\n' | grep . | median; }
least() { echo "${t[$1]}" | tr ' ' '\n' | grep . | sort -g | head -1; }
# the --joblog cost: time with it over time without, less 1, in %
cost() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (b / a - 1) * 100 }'; }
rate() { awk -v n="$1" -v s="$(med "$2")" 'BEGIN { printf "%.0f", n / s }'; }
mbs() { awk -v b="$bytes" -v s="$(med "$1")" 'BEGIN { printf "%.1f", b / 1048576 / s }'; }
[ "${BENCH_RUN_ONLY:-}" = joblog ] || {
echo "== -j $J, $(nproc) cores, medians of $R interleaved rounds, $(date -u +%Y-%m-%d), GNU parallel $(parallel --version | head -1 | awk '{ print $3 }')"
printf '%-34s %14s %14s %14s\n' "workload" "dpool run" "GNU parallel" "xargs -P"
printf '%-34s %14s %14s %14s\n' "$N x echo (jobs/s)" "$(rate "$N" short_dpool)" "$(rate "$N" short_par)" "$(rate "$N" short_xargs)"
printf '%-34s %14s %14s %14s\n' "$N x echo, --joblog (jobs/s)" "$(rate "$N" short_dpool_jl)" "-" "-"
printf '%-34s %14s %14s %14s\n' "$S x sleep 0.02 (jobs/s)" "$(rate "$S" sleep_dpool)" "$(rate "$S" sleep_par)" "$(rate "$S" sleep_xargs)"
printf '%-34s %14s %14s %14s\n' "--pipe $MB MB into wc -l (MB/s)" "$(mbs pipe_dpool)" "$(mbs pipe_par)" "-"
}
echo "dpool run --joblog cost on $N x echo: $(cost "$(med short_dpool)" "$(med short_dpool_jl)") (medians:" \
     "$(med short_dpool) s without, $(med short_dpool_jl) s with), $(cost "$(least short_dpool)" "$(least short_dpool_jl)")" \
     "(minima: $(least short_dpool) s, $(least short_dpool_jl) s); the goal is under +5%"
[ "${BENCH_RUN_ONLY:-}" = joblog ] && {
    cmed() { echo "${c[$1]}" | tr ' ' '\n' | grep . | median; }
    echo "the same in CPU time (user + system, client, broker and workers): $(cost "$(cmed short_dpool)" "$(cmed short_dpool_jl)")" \
         "(medians: $(cmed short_dpool) s without, $(cmed short_dpool_jl) s with)"
}
exit 0
