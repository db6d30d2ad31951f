#!/usr/bin/env bash
# dpool run --joblog through a standalone broker that is SIGKILLed mid-run,
# and through worker nodes one of which is SIGKILLed mid-run: the joblog
# stays correct (each job logged at most once, only what finished), and
# the same command with --resume (against a restarted broker) runs exactly
# the jobs not logged; --resume-failed then reruns the failed ones only.
# In the end every job is logged successful exactly once.
set -u
command -v python3 > /dev/null || { echo "test_run_crash: SKIP (no python3)"; exit 77; }
. "$(dirname "$0")/lib.sh"
wait_for() {       # CONDITION SECONDS
    local deadline=$((SECONDS + $2))
    while ! eval "$1"; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.05
    done
}
ready() { [ "$(grep -c " ready: " "$1")" -ge "$2" ]; }     # LOG N: N workers and nodes ready
logged() { [ -f "$1" ] && [ "$(wc -l < "$1")" -gt "$2" ]; }
start_broker() {   # LOG: the broker on $cport/$wport; sets bpid
    "$BIN/dpool-broker" -j none -c "tcp://127.0.0.1:$cport" -w "tcp://127.0.0.1:$wport" -v > "$1" 2>&1 &
    bpid=$!; PIDS="$PIDS $bpid"
}
start_node() {     # LOG: a node of 2 workers; sets npid
    "$BIN/dpool-worker" -j 2 --connect "tcp://127.0.0.1:$wport" --allow-exec 2> "$1" &
    npid=$!; PIDS="$PIDS $npid"
}
# SEQS LOG: seqs in the joblog (one per line, sorted, repeats kept)
seqs() { tail -n +2 "$1" | cut -f1 | sort -n; }
# the number of seqs of 1..N logged with exit 0 exactly once / more than once
ok_once() { tail -n +2 "$1" | awk -F'\t' '$7 == 0 && $8 == 0 { print $1 }' | sort -n | uniq -c | awk '$1 == 1' | wc -l; }
ok_twice() { tail -n +2 "$1" | awk -F'\t' '$7 == 0 && $8 == 0 { print $1 }' | sort -n | uniq -d | wc -l; }
torn() { [ -s "$1" ] && [ "$(tail -c 1 "$1" | od -An -c | tr -d ' ')" != '\n' ]; }
N=80

# 1. the broker is SIGKILLed mid-run; jobs whose seq is a multiple of 10
#    fail until $T/fixed exists
cport=$(freeport); wport=$(freeport)
start_broker "$T/b1.log"
start_node "$T/n1.log"; node1=$npid
check 'wait_for "ready $T/b1.log 3" 20' "node not ready: $(tail -3 "$T/b1.log")"
EP="tcp://127.0.0.1:$cport"
mkdir "$T/side"
CMD='echo x >> '"$T"'/side/{}; sleep 0.05; [ $(({} % 10)) -ne 0 ] || [ -e '"$T"'/fixed ] && echo {}'
"$BIN/dpool" run -b "$EP" --joblog "$T/jl" "$CMD" ::: $(seq 1 $N) > "$T/out1" 2> "$T/err1" &
cpid=$!; PIDS="$PIDS $cpid"
check 'wait_for "logged $T/jl 20" 30' "joblog did not grow"
kill -9 $bpid; wait $bpid 2>/dev/null
check 'wait_for "! kill -0 $cpid 2>/dev/null" 20' "the client did not end after its broker was killed"
wait $cpid; rc=$?
before=$(seqs "$T/jl" | wc -l)
check '[ $rc -ne 0 ] && [ $before -lt $N ]' "client rc=$rc with $before jobs logged: the run ended before the kill?"
check '! torn "$T/jl" && [ "$(seqs "$T/jl" | uniq -d | wc -l)" -eq 0 ]' "joblog after the kill: torn or a job twice"
check '[ "$(wc -l < "$T/out1")" -eq "$(tail -n +2 "$T/jl" | awk -F"\t" "\$7 == 0" | wc -l)" ]' "printed $(wc -l < "$T/out1") outputs, logged $(tail -n +2 "$T/jl" | awk -F'\t' '$7 == 0' | wc -l) successes"
cp "$T/jl" "$T/jl.killed"

# --resume against a restarted broker: exactly the jobs not logged
start_broker "$T/b2.log"
check 'wait_for "ready $T/b2.log 3" 30' "node did not come back to the restarted broker: $(tail -3 "$T/b2.log")"
timeout 60 "$BIN/dpool" run -b "$EP" --joblog "$T/jl" --resume "$CMD" ::: $(seq 1 $N) > "$T/out2" 2> "$T/err2"; rc=$?
check '[ $rc -eq $(( (N / 10) - $(tail -n +2 "$T/jl.killed" | awk -F"\t" "\$7 != 0" | wc -l) )) ]' "resume rc=$rc (the failures among the rest): $(head -c 300 "$T/err2")"
check '[ "$(seqs "$T/jl" | uniq | wc -l)" -eq $N ] && [ "$(seqs "$T/jl" | uniq -d | wc -l)" -eq 0 ]' "after --resume the joblog does not hold each job once: $(seqs "$T/jl" | uniq | wc -l) jobs, $(seqs "$T/jl" | uniq -d | wc -l) twice"
twice=0
for i in $(tail -n +2 "$T/jl.killed" | cut -f1); do
    [ "$(wc -l < "$T/side/$i")" -eq 1 ] || twice=$((twice + 1))
done
check '[ $twice -eq 0 ]' "$twice jobs logged before the kill ran again on --resume"
check '[ "$(cat "$T/out1" "$T/out2" | sort -n | uniq -d | wc -l)" -eq 0 ] && [ "$(cat "$T/out1" "$T/out2" | wc -l)" -eq $((N - N / 10)) ]' "outputs of both runs: $(cat "$T/out1" "$T/out2" | wc -l)"

# --resume-failed: the failed ones run again (and now pass), nothing else
touch "$T/fixed"
cat "$T"/side/* | wc -l > "$T/runs.before"
timeout 60 "$BIN/dpool" run -b "$EP" --joblog "$T/jl" --resume-failed "$CMD" ::: $(seq 1 $N) > "$T/out3" 2> "$T/err3"; rc=$?
check '[ $rc -eq 0 ]' "resume-failed rc=$rc: $(head -c 300 "$T/err3")"
check '[ "$(sort -n "$T/out3" | tr "\n" " ")" = "$(seq 10 10 $N | tr "\n" " ")" ]' "resume-failed ran: $(sort -n "$T/out3" | tr '\n' ' ')"
check '[ $(cat "$T"/side/* | wc -l) -eq $(( $(cat "$T/runs.before") + N / 10 )) ]' "resume-failed ran $(( $(cat "$T"/side/* | wc -l) - $(cat "$T/runs.before") )) jobs, expected $((N / 10))"
check '[ $(ok_once "$T/jl") -eq $N ] && [ $(ok_twice "$T/jl") -eq 0 ]' "in the end $(ok_once "$T/jl") jobs logged successful once, $(ok_twice "$T/jl") twice"

# 2. one of two nodes is SIGKILLed mid-run: its jobs go to the other; the
#    run ends with every job logged once
start_node "$T/n2.log"; node2=$npid
check 'wait_for "ready $T/b2.log 6" 30' "second node not ready: $(tail -3 "$T/b2.log")"
rm -rf "$T/side"; mkdir "$T/side"
"$BIN/dpool" run -b "$EP" --joblog "$T/jn" "$CMD" ::: $(seq 1 $N) > "$T/out4" 2> "$T/err4" &
cpid=$!; PIDS="$PIDS $cpid"
check 'wait_for "logged $T/jn 15" 30' "joblog did not grow"
kill -9 $node1
check 'wait_for "! kill -0 $cpid 2>/dev/null" 60' "the run did not end after a node was killed"
wait $cpid; rc=$?
check '[ $rc -eq 0 ] && [ "$(sort -n "$T/out4" | uniq | wc -l)" -eq $N ]' "node killed: rc=$rc, $(sort -n "$T/out4" | uniq | wc -l) outputs: $(head -c 300 "$T/err4")"
check '[ $(ok_once "$T/jn") -eq $N ] && [ "$(seqs "$T/jn" | wc -l)" -eq $N ]' "node killed: $(ok_once "$T/jn") jobs logged successful once, $(seqs "$T/jn" | wc -l) lines"
timeout 60 "$BIN/dpool" run -b "$EP" --joblog "$T/jn" --resume "$CMD" ::: $(seq 1 $N) > "$T/out5" 2> "$T/err5"; rc=$?
check '[ $rc -eq 0 ] && [ ! -s "$T/out5" ] && [ "$(seqs "$T/jn" | wc -l)" -eq $N ]' "resume after a complete run ran something: rc=$rc"

# 3. the only node is SIGKILLed mid-run: the client gives up (no worker),
#    the node is restarted, --resume runs exactly the rest
rm -rf "$T/side"; mkdir "$T/side"
"$BIN/dpool" run -b "$EP" --joblog "$T/jo" "$CMD" ::: $(seq 1 $N) > "$T/out6" 2> "$T/err6" &
cpid=$!; PIDS="$PIDS $cpid"
check 'wait_for "logged $T/jo 15" 30' "joblog did not grow"
kill -9 $node2
check 'wait_for "! kill -0 $cpid 2>/dev/null" 60' "the client did not end after its only node was killed"
wait $cpid; rc=$?
cp "$T/jo" "$T/jo.killed"
check '[ $rc -ne 0 ] && [ "$(seqs "$T/jo" | uniq -d | wc -l)" -eq 0 ] && [ "$(tail -n +2 "$T/jo" | awk -F"\t" "\$7 == -1" | wc -l)" -eq 0 ]' "only node killed: rc=$rc, a job twice or logged as not run: $(tail -n +2 "$T/jo" | awk -F'\t' '$7 == -1' | head -2)"
start_node "$T/n3.log"
check 'wait_for "ready $T/b2.log 9" 30' "restarted node not ready: $(tail -3 "$T/b2.log")"
timeout 60 "$BIN/dpool" run -b "$EP" --joblog "$T/jo" --resume "$CMD" ::: $(seq 1 $N) > "$T/out7" 2> "$T/err7"; rc=$?
check '[ $rc -eq 0 ] && [ $(ok_once "$T/jo") -eq $N ] && [ "$(seqs "$T/jo" | wc -l)" -eq $N ]' "resume after the node came back: rc=$rc, $(ok_once "$T/jo") successful once, $(seqs "$T/jo" | wc -l) lines: $(head -c 300 "$T/err7")"
twice=0
for i in $(tail -n +2 "$T/jo.killed" | cut -f1); do
    [ "$(wc -l < "$T/side/$i")" -eq 1 ] || twice=$((twice + 1))
done
check '[ $twice -eq 0 ]' "$twice jobs logged before the kill ran again"

finish test_run_crash
