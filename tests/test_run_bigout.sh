#!/usr/bin/env bash
# dpool run: a job printing 300 MiB streams (PARTs with credit) instead of
# being held whole: byte-exact output, and peak memory (VmHWM) of client,
# broker and worker far under the output size, on the embedded pool and
# through a standalone broker and a remote worker. Also: a later job's early
# output is spilled and printed in order, --tag prefixes each line once
# across parts, --line-buffer never cuts a line, `| head -2` stops at once, and a job whose worker is killed
# while it prints fails instead of printing its output twice.
set -u
. "$(dirname "$0")/lib.sh"
pids=()
on_exit() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; }
command -v sha256sum > /dev/null || { echo "no sha256sum: skipped"; exit 77; }
LIMIT_KB=$((64 * 1024))
if ldd "$BIN/dpool" | grep -q libasan; then
    #   its quarantine keeps freed memory (256 MiB), its shadow is not dpool's
    echo "memory: not checked in a sanitizer build"
    LIMIT_KB=$((1 << 40))
fi
SIZE=314572800
BIG="head -c {} /dev/zero | tr '\\0' x"     #   with ::: $SIZE
want=$(head -c $SIZE /dev/zero | tr '\0' x | sha256sum)

# descendants PID: the process's children, grandchildren, ...
descendants() {
    local c
    for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done
}
# hwm PID: its peak resident memory, kB (0 once gone)
hwm() { awk '/^VmHWM:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# watch PID OUT NAME...: until PID ends, record in OUT the highest VmHWM
# seen of PID and of its descendants, per program name (client = PID)
watch_mem() {
    local pid=$1 out=$2
    declare -A top=()
    while kill -0 "$pid" 2>/dev/null; do
        for p in "$pid" $(descendants "$pid") ${EXTRA_PIDS:-}; do
            local name kb
            name=$(cat "/proc/$p/comm" 2>/dev/null) || continue
            [ "$p" = "$pid" ] && name=client
            kb=$(hwm "$p")
            [ "${top[$name]:-0}" -lt "$kb" ] && top[$name]=$kb
        done
        sleep 0.1
    done
    for k in "${!top[@]}"; do echo "$k ${top[$k]}"; done > "$out"
}
mem() { awk -v n="$2" '$1 == n { print $2 }' "$1"; }

# 1. embedded pool, -j 2: one job of 300 MiB
echo "[${SECONDS}s] 1"
start=$SECONDS
"$BIN/dpool" run -j 2 "$BIG" ::: $SIZE 2> "$T/err1" | sha256sum > "$T/sum1" &
sleep 0.2
client=$(pgrep -n -x dpool -P $$ 2>/dev/null || true)
[ -n "$client" ] && watch_mem "$client" "$T/mem1"
wait
secs=$((SECONDS - start))
check '[ "$(cat "$T/sum1")" = "$want" ]' "embedded: output differs from the command's (sha $(cat "$T/sum1"))"
check '[ ! -s "$T/err1" ]' "embedded: stderr: $(head -c 300 "$T/err1")"
check '[ -s "$T/mem1" ]' "embedded: no memory samples"
c=$(mem "$T/mem1" client); w=$(mem "$T/mem1" dpool-worker)
echo "embedded: ${secs} s, peak RSS client+broker ${c:-?} kB, worker ${w:-?} kB"
check '[ "${c:-0}" -gt 0 ] && [ "$c" -lt $LIMIT_KB ]' "embedded: client (with its broker) peaked at ${c:-?} kB"
check '[ "${w:-0}" -gt 0 ] && [ "$w" -lt $LIMIT_KB ]' "embedded: worker peaked at ${w:-?} kB"

# 2. a later job's output that comes first is spilled, then printed in order
echo "[${SECONDS}s] 2"
SPILL=104857600
"$BIN/dpool" run -j 2 'if [ {} = 1 ]; then sleep 1; echo first; else head -c '$SPILL' /dev/zero | tr "\0" y; fi' \
    ::: 1 2 2> "$T/err2" | sha256sum > "$T/sum2" &
sleep 0.2
client=$(pgrep -n -x dpool -P $$ 2>/dev/null || true)
[ -n "$client" ] && watch_mem "$client" "$T/mem2"
wait
want2=$( (echo first; head -c $SPILL /dev/zero | tr '\0' y) | sha256sum)
check '[ "$(cat "$T/sum2")" = "$want2" ]' "spill: output not in order or not whole"
c=$(mem "$T/mem2" client)
check '[ "${c:-0}" -gt 0 ] && [ "$c" -lt $LIMIT_KB ]' "spill: client peaked at ${c:-?} kB for 100 MiB kept"
check '[ -z "$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name "dpool-run-*" -user "$(id -u)" -newer "$T/sum1" 2>/dev/null)" ]' \
    "spill: a spill file was left in ${TMPDIR:-/tmp}"

# 3. --tag: each line prefixed once, lines cut between parts included
echo "[${SECONDS}s] 3"
"$BIN/dpool" run -j 2 --tag 'seq 1 {}' ::: 2000000 | sha256sum > "$T/sum3"
check '[ "$(cat "$T/sum3")" = "$(seq 1 2000000 | sed "s/^/2000000\t/" | sha256sum)" ]' "--tag over parts"

# 3b. --line-buffer: the jobs' lines interleave as they come, none cut
echo "[${SECONDS}s] 3b"
"$BIN/dpool" run -j 2 --line-buffer 'seq -f "{}-%g" 1 400000' ::: a b > "$T/out3b"
check '[ "$(sort "$T/out3b" | sha256sum)" = "$( (seq -f "a-%g" 1 400000; seq -f "b-%g" 1 400000) | sort | sha256sum)" ]' \
    "--line-buffer: lines lost or cut"
check '! grep -qvE "^[ab]-[0-9]+\$" "$T/out3b"' "--line-buffer: a line mixes two jobs"
rm -f "$T/out3b"

# 4. | head -2 stops at once (timed from head's exit), 141
echo "[${SECONDS}s] 4"
(timeout 30 "$BIN/dpool" run -j 2 'yes | head -c {}' ::: 1000000000 2> "$T/errh"; echo "${PIPESTATUS[0]}" > "$T/rch") \
    | (head -2 > "$T/outh"; date +%s%N > "$T/thead")
ms=$(( ($(date +%s%N) - $(cat "$T/thead")) / 1000000 ))
check '[ "$(cat "$T/outh")" = "$(printf "y\ny")" ]' "head -2 got [$(head -c 100 "$T/outh")]"
check '[ "$(cat "$T/rch")" -eq 141 ]' "| head -2: exit $(cat "$T/rch"), not 141"
check '[ $ms -lt 2000 ]' "dpool run went on $ms ms after head -2 exited"

# 5. the worker killed while it prints: the job fails, nothing printed twice
echo "[${SECONDS}s] 5"
"$BIN/dpool" run -j 1 'yes abcdefgh | head -c {}' ::: 400000000 > "$T/out5" 2> "$T/err5" &
run5=$!
pids+=("$run5")
killed=0
for _ in $(seq 1 100); do
    #   once it has printed a good part, kill the worker running it
    if [ "$(stat -c %s "$T/out5" 2>/dev/null || echo 0)" -gt 10000000 ]; then
        for p in $(descendants "$run5"); do
            #   the worker whose child is the command (not its guard)
            if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = dpool-worker ] \
            && [ -n "$(pgrep -P "$p" | while read -r c; do [ "$(cat "/proc/$c/comm" 2>/dev/null)" != dpool-guard ] && echo "$c"; done)" ]; then
                kill -9 "$p" && killed=1
            fi
        done
        break
    fi
    sleep 0.05
done
timeout 60 tail --pid=$run5 -f /dev/null
wait $run5; rc5=$?
size5=$(stat -c %s "$T/out5")
check '[ $killed -eq 1 ]' "could not kill the worker mid-stream"
check '[ $rc5 -ne 0 ]' "killed mid-stream: the job did not fail (exit $rc5)"
check '[ "$size5" -lt 400000000 ]' "killed mid-stream: $size5 bytes printed: printed twice?"
check 'grep -q "two runs" "$T/err5"' "killed mid-stream: no reason given: $(head -c 300 "$T/err5")"
check '[ -z "$(head -c "$size5" "$T/out5" | tr -d "\n" | tr -d "abcdefgh")" ]' "killed mid-stream: garbled output"

# 6. a standalone broker and a remote worker
echo "[${SECONDS}s] 6"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if command -v python3 > /dev/null; then
    CEP="tcp://127.0.0.1:$(free_port)" WEP="tcp://127.0.0.1:$(free_port)"
    #   plaintext on loopback: CURVE costs 2-3x the time here (bench/bigout.sh:
    #   every byte encrypted on two links), and memory is what this checks
    "$BIN/dpool-broker" --no-curve -j none -c "$CEP" -w "$WEP" > "$T/broker.log" 2>&1 &
    broker=$!; pids+=("$broker")
    "$BIN/dpool-worker" --connect "$WEP" --allow-exec > "$T/worker.log" 2>&1 &
    worker=$!; pids+=("$worker")
    "$BIN/dpool" run -b "$CEP" --broker-timeout 20000 "$BIG" ::: $SIZE 2> "$T/err6" | sha256sum > "$T/sum6" &
    sum6=$!
    sleep 0.2
    client=$(pgrep -n -x dpool -P $$ 2>/dev/null || true)
    [ -n "$client" ] && EXTRA_PIDS="$broker $worker" watch_mem "$client" "$T/mem6"
    wait "$sum6"
    check '[ "$(cat "$T/sum6")" = "$want" ]' "remote: output differs (err: $(head -c 300 "$T/err6"))"
    c=$(mem "$T/mem6" client); b=$(mem "$T/mem6" dpool-broker); w=$(mem "$T/mem6" dpool-worker)
    echo "remote: peak RSS client ${c:-?} kB, broker ${b:-?} kB, worker ${w:-?} kB"
    for role in c b w; do
        v=${!role}
        check '[ "${v:-0}" -gt 0 ] && [ "$v" -lt $LIMIT_KB ]' "remote: $role peaked at ${v:-?} kB"
    done
fi

# --tmpdir: a later job's big output waits in a spill file in that folder
# (seen open, unlinked, in /proc while the first job still runs)
mkdir -p "$T/spilldir"
"$BIN/dpool" run -j 2 --tmpdir "$T/spilldir" \
    'if [ {} = a ]; then sleep 4; fi; head -c 3000000 /dev/zero | tr "\0" {}' ::: a b > "$T/tmpdir.out" 2> "$T/tmpdir.err" &
rpid=$!
seen=0
for i in $(seq 1 60); do
    ls -l /proc/$rpid/fd 2>/dev/null | grep -q "$T/spilldir/dpool-run-" && { seen=1; break; }
    sleep 0.05
done
wait $rpid; rc=$?
check '[ $seen -eq 1 ]' "--tmpdir: no spill file under $T/spilldir seen in /proc/$rpid/fd"
check '[ $rc -eq 0 ] && cmp -s "$T/tmpdir.out" <(for x in a b; do head -c 3000000 /dev/zero | tr "\0" $x; done)' \
    "--tmpdir: rc=$rc, output $(wc -c < "$T/tmpdir.out") bytes, not byte-exact: $(head -c 200 "$T/tmpdir.err")"
check '[ -z "$(ls -A "$T/spilldir")" ]' "--tmpdir: left files: $(ls "$T/spilldir")"

echo "[${SECONDS}s] done"
finish test_run_bigout
