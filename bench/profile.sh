#!/usr/bin/env bash
# Profile W1 (1,000,000 `square`, automatic chunks) and W1u (100,000 `square`,
# chunk size 1) through the C API, every process of the pool included (the
# client with its embedded broker thread, the ZeroMQ I/O threads, the two
# dpool-worker processes), and write the top of each profile.
#
#   bash bench/profile.sh [w1|w1u]...      (default: both)
#
# With perf (linux-perf; installed if missing and apt works): perf stat
# (CPU time, context switches) and perf record at 2999 Hz, reported by
# process, by shared object and by symbol. Without a working perf: valgrind
# --tool=callgrind --trace-children=yes on a tenth of the size. Output:
# bench/out/profile-W.txt. Needs a build (bash deploy/setup.sh, or the
# harness); DPOOL_BUILD_DIR as there.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${DPOOL_BUILD_DIR:-build}
B=$BUILD/bin
MOD=$BUILD/lib/libdpool_testtasks.so
OUT=bench/out
mkdir -p "$OUT"
[ -x "$B/bench_map" ] || bash deploy/setup.sh >&2 || exit 1
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(w1 w1u)

if ! command -v perf >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends linux-perf >&2 || true
fi
use_perf=0
perf record -q -o /dev/null -- true >/dev/null 2>&1 && use_perf=1

for c in "${cases[@]}"; do
    case $c in
        w1)  n=1000000 args="-r 5" ;;
        w1u) n=100000  args="-c 1 -r 1" ;;
        *) echo "profile: unknown case $c" >&2; exit 64 ;;
    esac
    f=$OUT/profile-$c.txt
    {
        echo "# profile $c: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null), $(nproc) cores"
        if [ $use_perf = 1 ]; then
            cmd="$B/bench_map -j 2 -n $n $args square $MOD"
            echo "# perf record -F 2999 -- $cmd"
            echo
            echo "## perf stat"
            perf stat -e task-clock,context-switches,cpu-migrations -- $cmd 2>&1 | grep -E "run |task-clock|context|migrations|elapsed"
            perf record -q -F 2999 -o "$OUT/$c.perf.data" -- $cmd > /dev/null 2>&1
            for sort in comm dso comm,dso,sym; do
                echo
                echo "## by $sort"
                perf report -i "$OUT/$c.perf.data" --stdio --no-children --sort $sort 2>/dev/null \
                    | grep -v '^#' | grep -v '^$' | head -30
            done
        else
            n=$((n / 10))
            cmd="$B/bench_map -j 2 -n $n ${args/-r 5/-r 1} square $MOD"
            echo "# valgrind --tool=callgrind --trace-children=yes -- $cmd"
            rm -f "$OUT"/callgrind.$c.*
            valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$OUT/callgrind.$c.%p" \
                -- $cmd > /dev/null 2>&1
            for g in "$OUT"/callgrind.$c.*; do
                echo
                echo "## $g"
                callgrind_annotate "$g" 2>/dev/null | sed -n '1,40p'
            done
        fi
    } > "$f"
    echo "profile: wrote $f" >&2
done
