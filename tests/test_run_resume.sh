#!/usr/bin/env bash
# dpool run --joblog / --resume / --resume-failed / --resume-by content, and a
# closed stdout: the client SIGKILLed mid-run, then resumed, does every item;
# a torn last joblog line is ignored; `| head -2` ends at once with 141.
set -u
BIN=${DPOOL_BIN:-build/bin}
T=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }
# wait_for CONDITION SECONDS
wait_for() {
    local deadline=$((SECONDS + $2))
    while ! eval "$1"; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.05
    done
}
# the number of lines appended to side files (stable once no job runs)
side_total() { cat "$T"/side/* 2>/dev/null | wc -l; }
quiet() {
    local a b
    a=$(side_total)
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        sleep 0.3; b=$(side_total)
        [ "$a" = "$b" ] && return 0
        a=$b
    done
    return 1
}
mkdir "$T/side"
CMD='sleep 0.02; echo x >> '"$T"'/side/{}; echo {}'

# 1. SIGKILL the client mid-run, resume: every item done; logged ones once
seq 1 300 > "$T/in"
"$BIN/dpool" run -j 4 --joblog "$T/jl" "$CMD" < "$T/in" > "$T/out1" 2> "$T/err1" &
pid=$!; pids+=($pid)
check 'wait_for "[ -f $T/jl ] && [ \$(wc -l < $T/jl) -ge 60 ]" 30' "joblog did not grow"
kill -9 $pid; wait $pid 2>/dev/null
check 'quiet' "jobs still running 3 s after the client was killed"
cp "$T/jl" "$T/jl.killed"
logged=$(tail -n +2 "$T/jl.killed" | awk -F'\t' 'NF >= 9 { print $1 }' | sort -n)
check '[ $(echo "$logged" | wc -l) -lt 300 ]' "the run ended before the kill"
timeout 60 "$BIN/dpool" run -j 4 --joblog "$T/jl" --resume "$CMD" < "$T/in" > "$T/out2" 2> "$T/err2"; rc=$?
check '[ $rc -eq 0 ]' "resume rc=$rc: $(head -c 300 "$T/err2")"
missing=0; multi=0; logged_twice=0
for i in $(seq 1 300); do
    n=$(cat "$T/side/$i" 2>/dev/null | wc -l)
    [ "$n" -ge 1 ] || missing=$((missing + 1))
    [ "$n" -gt 1 ] && multi=$((multi + 1))
done
for i in $logged; do
    [ "$(wc -l < "$T/side/$i")" -eq 1 ] || logged_twice=$((logged_twice + 1))
done
check '[ $missing -eq 0 ]' "$missing items never ran"
check '[ $logged_twice -eq 0 ]' "$logged_twice items logged before the kill ran again"
# only the jobs in flight at the kill (not yet logged) may have run twice
check '[ $multi -le 40 ]' "$multi items ran twice"
check '[ "$(tail -n +2 "$T/jl" | cut -f1 | sort -n | uniq -d | wc -l)" -eq 0 ] && [ "$(tail -n +2 "$T/jl" | cut -f1 | sort -n | uniq | wc -l)" -eq 300 ]' "joblog does not hold each seq once"
check '[ "$(head -1 "$T/jl")" = "$(printf "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand")" ]' "joblog header"
check '[ "$(awk -F"\t" "NR > 1 && NF != 9" "$T/jl" | wc -l)" -eq 0 ]' "joblog lines without 9 fields"

# 2. a torn last line is ignored, and the item it names runs again
printf '301\t:\t17' >> "$T/jl"
seq 1 305 > "$T/in"
timeout 60 "$BIN/dpool" run -j 4 --joblog "$T/jl" --resume "$CMD" < "$T/in" > "$T/out3" 2> "$T/err3"; rc=$?
check '[ $rc -eq 0 ] && [ "$(sort -n "$T/out3" | tr "\n" " ")" = "301 302 303 304 305 " ]' "torn line: rc=$rc ran [$(tr '\n' ' ' < "$T/out3")]"

# 3. --resume-failed reruns the failed ones only
rm -rf "$T/side"; mkdir "$T/side"
FCMD='echo x >> '"$T"'/side/{}; [ $(({} % 3)) -ne 0 ] || [ -e '"$T"'/fixed ]'
timeout 60 "$BIN/dpool" run -j 3 --joblog "$T/jf" "$FCMD" ::: $(seq 1 12) > /dev/null 2>&1; rc=$?
check '[ $rc -eq 4 ]' "4 failed jobs should exit 4, got $rc"
touch "$T/fixed"
timeout 60 "$BIN/dpool" run -j 3 --joblog "$T/jf" --resume-failed "$FCMD" ::: $(seq 1 12) > /dev/null 2>&1; rc=$?
check '[ $rc -eq 0 ]' "resume-failed rc=$rc"
check '[ "$(cat "$T"/side/3 | wc -l)" -eq 2 ] && [ "$(cat "$T"/side/4 | wc -l)" -eq 1 ]' "resume-failed ran the wrong items"
timeout 60 "$BIN/dpool" run -j 3 --joblog "$T/jf" --resume "$FCMD" ::: $(seq 1 12) > /dev/null 2>&1; rc=$?
check '[ $rc -eq 0 ] && [ "$(cat "$T"/side/* | wc -l)" -eq 16 ]' "a second resume ran something again (rc=$rc)"

# 4. --resume-by content: the input grew and was reordered
rm -rf "$T/side"; mkdir "$T/side"
timeout 60 "$BIN/dpool" run -j 3 --joblog "$T/jc" "$CMD" ::: $(seq 1 10) > /dev/null 2>&1
timeout 60 "$BIN/dpool" run -j 3 --joblog "$T/jc" --resume --resume-by content "$CMD" ::: $(seq 15 -1 1) > "$T/outc" 2>&1; rc=$?
check '[ $rc -eq 0 ] && [ "$(tr "\n" " " < "$T/outc")" = "15 14 13 12 11 " ]' "resume-by content ran [$(tr '\n' ' ' < "$T/outc")] rc=$rc"
check '[ "$(cat "$T"/side/* | wc -l)" -eq 15 ]' "resume-by content: some item ran twice"

# 5. | head -2: ends at once (timed from head's exit), 141 (SIGPIPE), no message
(seq 1 100000 | timeout 30 "$BIN/dpool" run -j 2 echo 2> "$T/errh"; echo "${PIPESTATUS[1]}" > "$T/rch") \
    | (head -2 > "$T/outh"; date +%s%N > "$T/thead")
ms=$(( ($(date +%s%N) - $(cat "$T/thead")) / 1000000 ))
rc=$(cat "$T/rch")
check '[ "$(cat "$T/outh")" = "$(printf "1\n2")" ]' "head -2 got [$(cat "$T/outh")]"
check '[ "$rc" -eq 141 ]' "| head -2: exit $rc, not 141"
check '[ ! -s "$T/errh" ]' "| head -2 printed: $(head -c 300 "$T/errh")"
check '[ $ms -lt 1500 ]' "dpool run went on $ms ms after head -2 exited"

# --joblog - : the log on stdout, each job's line after its output (GNU parallel)
( cd "$T" && "$BIN/dpool" run -j 2 --joblog - echo ::: a b c ) > "$T/jls" 2> "$T/jlserr"; rc=$?
check '[ $rc -eq 0 ] && [ "$(cut -f1,7- "$T/jls" | tr "\t\n" ",;")" = "Seq,Exitval,Signal,Command;a;1,0,0,echo a;b;2,0,0,echo b;c;3,0,0,echo c;" ] && [ ! -e "$T/-" ]' \
    "--joblog -: rc=$rc $(cut -f1,7- "$T/jls" | tr '\t\n' ',;') $(head -c 200 "$T/jlserr")"

echo "test_run_resume: $pass passed, $fail failed"
[ $fail -eq 0 ]
