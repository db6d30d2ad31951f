#!/usr/bin/env bash
# -j 0 means one worker per usable CPU (affinity mask, cgroup quota: as
# nproc) in every program: dpool map, dpool run, dpool-broker, dpool-worker
# (dp_pool_opts_t.workers = 0 is in test_cpus). Each program runs under a
# one-CPU mask (taskset -c FIRST: exactly 1 worker) and under the whole mask
# (all the same count, at most nproc). dpool-broker -j none starts none.
set -u
BIN=${DPOOL_BIN:-build/bin}
LIB=${DPOOL_LIB:-build/lib}
MOD="$LIB/libdpool_testtasks.so"
command -v taskset > /dev/null && command -v pgrep > /dev/null || { echo "no taskset/pgrep: skipped"; exit 77; }
T=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2> /dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# dpool-worker children of $1, once they reach $2 (or 10 s pass): the count
workers_of() {
    local pid=$1 want=$2 n=0
    for _ in $(seq 1 200); do
        n=$(pgrep -c -P "$pid" -x dpool-worker)
        [ "$n" -ge "$want" ] && break
        sleep 0.05      # polling a condition with a deadline
    done
    # and no more come: one more look a little later
    sleep 0.2
    pgrep -c -P "$pid" -x dpool-worker
}

first=$(taskset -pc $$ | sed 's/.*: *//; s/[,-].*//')
all=$(nproc)
# count PROGRAM-KIND MASK: start it, count its worker processes, stop it
count() {
    local kind=$1 mask=$2 want=$3 pid
    local -a pre=()
    [ "$mask" = one ] && pre=(taskset -c "$first")
    local id="$kind-$mask"
    local c="ipc://$T/c$id" w="ipc://$T/w$id"
    case $kind in
        broker) "${pre[@]}" "$BIN/dpool-broker" -j 0 -m "$MOD" -c "$c" -w "$w" 2> "$T/log" & ;;
        worker) "${pre[@]}" "$BIN/dpool-worker" --connect "$w" -j 0 -m "$MOD" 2> "$T/log" & ;;
        map)    mkfifo "$T/in$id"
                "${pre[@]}" "$BIN/dpool" map -j 0 -m "$MOD" --no-progress echo < "$T/in$id" > /dev/null 2> "$T/log" &
                exec 7> "$T/in$id" ;;
        run)    mkfifo "$T/in$id"
                "${pre[@]}" "$BIN/dpool" run -j 0 -- echo {} < "$T/in$id" > /dev/null 2> "$T/log" &
                exec 7> "$T/in$id" ;;
    esac
    pid=$!
    pids+=("$pid")
    local n
    n=$(workers_of "$pid" "$want")
    [ "$kind" = map ] || [ "$kind" = run ] && exec 7>&-
    kill "$pid" 2> /dev/null
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.05      # polling its exit with a deadline
    done
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    echo "$n"
}

declare -A got
for kind in broker worker map run; do
    n=$(count "$kind" one 1)
    [ "$n" -eq 1 ] && ok || bad "$kind -j 0 under a one-CPU mask: $n workers (want 1)"
    got[$kind]=$(count "$kind" all "$all")
done
echo "-j 0 under the whole mask ($all CPUs): broker ${got[broker]}, worker node ${got[worker]}, map ${got[map]}, run ${got[run]}"
for kind in worker map run; do
    [ "${got[$kind]}" -eq "${got[broker]}" ] && ok || bad "$kind -j 0: ${got[$kind]} workers, broker -j 0: ${got[broker]}"
done
[ "${got[broker]}" -ge 1 ] && [ "${got[broker]}" -le "$all" ] && ok || bad "broker -j 0: ${got[broker]} workers, nproc $all"

# dpool-broker -j none: no local workers; a node brings them
"$BIN/dpool-broker" -j none -m "$MOD" -c "ipc://$T/cn" -w "ipc://$T/wn" 2> "$T/log" &
broker=$!; pids+=("$broker")
"$BIN/dpool-worker" --connect "ipc://$T/wn" -j 1 -m "$MOD" 2> /dev/null &
pids+=("$!")
out=$(seq 1 5 | timeout 20 "$BIN/dpool" map -b "ipc://$T/cn" --no-progress square | tr '\n' ' ')
[ "$out" = "1 4 9 16 25 " ] && ok || bad "map through broker -j none: '$out'"
n=$(pgrep -c -P "$broker" -x dpool-worker)
[ "$n" -eq 0 ] && ok || bad "broker -j none started $n local workers"
"$BIN/dpool-broker" -j -1 2> "$T/err"; rc=$?
[ $rc -eq 64 ] && grep -q "none" "$T/err" && ok || bad "broker -j -1: rc $rc: $(cat "$T/err")"

# a node whose workers start slowly (their module takes 2 s to load): a job
# sent once the node is there waits for them, past --task-wait (before, it
# failed "no worker has task" after --task-wait)
"$BIN/dpool-broker" -v -j none --task-wait 300 -c "ipc://$T/cs" -w "ipc://$T/ws" 2> "$T/slog" &
pids+=("$!")
DPOOL_TEST_LOAD_MS=2000 "$BIN/dpool-worker" --connect "ipc://$T/ws" -j 2 -m "$MOD" 2> /dev/null &
pids+=("$!")
for i in $(seq 1 400); do grep -q "node .* ready" "$T/slog" && break; sleep 0.05; done
grep -q "node .* ready" "$T/slog" && ok || bad "slow node: no NODE within 20 s: $(cat "$T/slog")"
out=$(seq 1 3 | timeout 30 "$BIN/dpool" map -b "ipc://$T/cs" --no-progress square 2> "$T/serr" | tr '\n' ' ')
[ "$out" = "1 4 9 " ] && ok || bad "slow node: the job did not wait for its workers: '$out' $(cat "$T/serr")"
grep -q "worker .* ready" "$T/slog" && ! grep -q "no worker has task" "$T/serr" && ok \
    || bad "slow node: $(cat "$T/serr")"

echo "test_jobs_zero: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
