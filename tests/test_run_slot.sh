#!/usr/bin/env bash
# dpool run's {%} is GNU parallel's job slot: the slot that actually runs
# the job, 1..jobslots, reused when a job ends, never shared by two jobs
# running at the same time. Jobs of varied length print their slot and
# their start and end times; no two overlapping jobs may share a slot.
# Also: PARALLEL_JOBSLOT agrees, --dry-run and the joblog show numbers,
# --tagstring {%} and -t; through a broker, a node's workers are slots
# 1..its -j.
set -u
command -v python3 > /dev/null || { echo "test_run_slot: SKIP (no python3)"; exit 77; }
. "$(dirname "$0")/lib.sh"

# SLOTS FILE: every line "slot start end" (ns); slots in 1..SLOTS, all
# used, and no two jobs of one slot overlap in time
slots_ok() {
    python3 - "$1" "$2" <<'EOF'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
jobs = [tuple(int(x) for x in l.split()[:3]) for l in open(path) if l.strip()]
bad = [j for j in jobs if not 1 <= j[0] <= n]
if bad:
    sys.exit("slots outside 1..%d: %s" % (n, bad[:3]))
if len(set(j[0] for j in jobs)) != n:
    sys.exit("slots used: %s, expected all of 1..%d" % (sorted(set(j[0] for j in jobs)), n))
for s in range(1, n + 1):
    mine = sorted(j[1:] for j in jobs if j[0] == s)
    for a, b in zip(mine, mine[1:]):
        if b[0] < a[1]:
            sys.exit("slot %d: jobs overlap: %s and %s" % (s, a, b))
# and the slots were really shared out: at some time, n jobs ran at once
events = sorted([(j[1], 1) for j in jobs] + [(j[2], -1) for j in jobs])
run = most = 0
for t, d in events:
    run += d
    most = max(most, run)
if most != n:
    sys.exit("at most %d jobs ran at once, expected %d" % (most, n))
EOF
}
# job: slot, start, end (ns), and PARALLEL_JOBSLOT; lengths vary
JOB='s=$(date +%s%N); sleep 0.$(( ({#} * 7) % 10 ))$(( {#} % 3 )); echo {%} $s $(date +%s%N) $PARALLEL_JOBSLOT'

# 1. a local pool of 3: slots 1..3, no overlap within a slot
timeout 60 "$BIN/dpool" run -j 3 --joblog "$T/jl" "$JOB" ::: $(seq 1 24) > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 0 ] && [ $(wc -l < "$T/out") -eq 24 ]' "-j 3: rc=$rc, $(wc -l < "$T/out") lines: $(head -c 300 "$T/err")"
check 'slots_ok 3 "$T/out" > "$T/why" 2>&1' "-j 3: $(cat "$T/why")"
check '[ "$(awk "\$1 != \$4" "$T/out" | wc -l)" -eq 0 ]' "{%} and PARALLEL_JOBSLOT differ: $(awk '$1 != $4' "$T/out" | head -3)"
# the joblog's command is the one that ran: {%} is the slot number there
check '[ "$(tail -n +2 "$T/jl" | grep -c "echo [123] ")" -eq 24 ]' "joblog commands: $(tail -n +2 "$T/jl" | cut -f9 | head -3)"

# 2. --dry-run shows numbers (the turn a job would have); --tagstring and -t
check '[ "$("$BIN/dpool" run -j 3 --dry-run "echo {%}" ::: a b c d | tr "\n" " ")" = "echo 1 echo 2 echo 3 echo 1 " ]' "--dry-run {%}"
timeout 60 "$BIN/dpool" run -j 2 -t --tagstring 'slot{%}' 'echo {%}' ::: a b c d > "$T/out2" 2> "$T/err2"; rc=$?
check '[ $rc -eq 0 ] && [ "$(awk -F"\t" "\$1 != \"slot\" \$2" "$T/out2" | wc -l)" -eq 0 ] && [ $(wc -l < "$T/out2") -eq 4 ]' "--tagstring {%}: $(cat "$T/out2")"
check '[ "$(grep -c "^echo [12]$" "$T/err2")" -eq 4 ]' "-t with {%}: $(cat "$T/err2")"

# 3. through a broker: a node of 2 workers gives slots 1..2
cport=$(freeport); wport=$(freeport)
"$BIN/dpool-broker" -j none -c "tcp://127.0.0.1:$cport" -w "tcp://127.0.0.1:$wport" -v > "$T/broker.log" 2>&1 &
PIDS="$PIDS $!"
"$BIN/dpool-worker" -j 2 --connect "tcp://127.0.0.1:$wport" --allow-exec 2> "$T/node.log" & PIDS="$PIDS $!"
for i in $(seq 1 300); do [ "$(grep -c " ready: " "$T/broker.log")" -ge 3 ] && break; sleep 0.05; done
timeout 60 "$BIN/dpool" run -b "tcp://127.0.0.1:$cport" "$JOB" ::: $(seq 1 12) > "$T/out3" 2> "$T/err3"; rc=$?
check '[ $rc -eq 0 ] && [ $(wc -l < "$T/out3") -eq 12 ]' "broker: rc=$rc: $(head -c 300 "$T/err3")"
check 'slots_ok 2 "$T/out3" > "$T/why" 2>&1' "broker node -j 2: $(cat "$T/why")"

finish test_run_slot
