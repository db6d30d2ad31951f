#!/usr/bin/env bash
# dpool's first benchmark: 1,000,000 `square` items through the C API and
# through `dpool map`, and Python's multiprocessing.Pool(2).map on the same
# input, side by side in one run. Medians of REPEATS runs.
#   bash bench/run.sh [ITEMS] [REPEATS]     (defaults 1000000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
R=${2:-3}
bash deploy/setup.sh python3 >/dev/null
B=build/bin
MOD=build/lib/libdpool_testtasks.so
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
seq 1 "$N" > "$T/in"
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "== $N square items, 2 workers, $(nproc) cores, $(date -u +%Y-%m-%d)" >&2
api=$("$B/bench_map" -j 2 -n "$N" -r "$R" square "$MOD")
cli=$(for r in $(seq 1 "$R"); do
    s=$(date +%s%N)
    "$B/dpool" map -j 2 -m "$MOD" square < "$T/in" > "$T/out"
    e=$(date +%s%N)
    echo "$N $s $e" | awk '{ printf "%.0f\n", $1 / (($3 - $2) / 1e9) }'
done | median)
[ "$(tail -n 1 "$T/out")" = "$((N * N))" ] || { echo "bench: wrong CLI output" >&2; exit 1; }
py=$(${PYTHON:-python3} bench/peers/pool_peer.py map "$N" 2 "$R")

printf '%-44s %14s %10s\n' "workload (2 workers)" "items/s" "vs Pool.map"
printf '%-44s %14s %10s\n' "dpool C API dp_map (embedded pool)" "$api" "$(awk -v a="$api" -v p="$py" 'BEGIN { printf "%.2fx", a / p }')"
printf '%-44s %14s %10s\n' "dpool map CLI (stdin lines -> stdout)" "$cli" "$(awk -v a="$cli" -v p="$py" 'BEGIN { printf "%.2fx", a / p }')"
printf '%-44s %14s %10s\n' "python3 multiprocessing.Pool(2).map" "$py" "1.00x"
