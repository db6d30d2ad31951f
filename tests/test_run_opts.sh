#!/usr/bin/env bash
# dpool run's own GNU parallel options beyond test_parallel's reach.
# --delay S (GNU parallel's): no job starts within S seconds of
# the one before, however many job slots are free; "Sauto" grows S by 30%
# at each failed run. The joblog's start times (ms, taken by the worker)
# show the spacing; the client spaces the jobs it sends, so a gap may be
# short by the jitter of sending (a few ms): the span of all the starts is
# checked, with 100 ms to spare, and each gap is at least half the delay.
# Only lower bounds: a loaded machine starts jobs later, never sooner.
# Also: --process-slot-var and --number-of-* through the CLI, and the
# shell commands run with (GNU parallel's choice: $PARALLEL_SHELL, else the
# nearest ancestor that is a shell, else $SHELL, else /bin/sh).
set -u
. "$(dirname "$0")/lib.sh"

# The gaps between consecutive start times of joblog $1, in ms, one a line
gaps() {
    awk -F'\t' 'NR > 1 { print $3 }' "$1" | sort -n \
        | awk 'NR > 1 { printf "%.0f\n", ($1 - prev) * 1000 } { prev = $1 }'
}

# 1. -j 4 --delay 0.3: 5 jobs that could all run at once start >= 300 ms apart
"$BIN/dpool" run -j 4 --delay 0.3 --joblog "$T/j1" 'echo {}' ::: 1 2 3 4 5 > "$T/out1"; rc=$?
check '[ $rc -eq 0 ] && [ "$(tr "\n" " " < "$T/out1")" = "1 2 3 4 5 " ]' "--delay 0.3: rc $rc, output $(cat "$T/out1")"
check '[ "$(gaps "$T/j1" | wc -l)" -eq 4 ]' "--delay 0.3: 5 joblog lines expected: $(cat "$T/j1")"
min=$(gaps "$T/j1" | sort -n | head -1)
span=$(gaps "$T/j1" | awk '{ s += $1 } END { print s + 0 }')
check '[ "${min:-0}" -ge 150 ] && [ "$span" -ge 1100 ]' \
    "--delay 0.3: jobs started $(gaps "$T/j1" | tr '\n' ' ')ms apart (each 300 expected)"

# 2. --delay 0.2auto, every run failing, one slot: the gaps grow at least
#    as 200, 260, 338 ms (+30% a failure)
"$BIN/dpool" run -j 1 --delay 0.2auto --joblog "$T/j3" 'exit 1; : {}' ::: 1 2 3 4; rc=$?
check '[ $rc -eq 4 ]' "--delay 0.2auto: 4 failed jobs, exit status $rc"
#    (798 in all; 600 without auto)
span=$(gaps "$T/j3" | awk '{ s += $1 } END { print s + 0 }')
check '[ "$span" -ge 698 ]' "--delay 0.2auto: gaps $(gaps "$T/j3" | tr '\n' ' ')ms (200 260 338 expected)"

# 3. bad values: one line, exit 255, nothing run
for v in x -1 0.5autox 1q; do
    "$BIN/dpool" run --delay "$v" echo ::: a > "$T/out4" 2> "$T/err4"; rc=$?
    check '[ $rc -eq 255 ] && [ ! -s "$T/out4" ] && [ "$(wc -l < "$T/err4")" -eq 1 ] && grep -q -- "--delay" "$T/err4"' \
        "--delay $v: rc $rc, stdout $(cat "$T/out4"), stderr $(cat "$T/err4")"
done

# 4. --process-slot-var NAME: the job slot less one, GNU parallel's lowest free slot
"$BIN/dpool" run -j 3 --process-slot-var slot0 'sleep 0.{}; echo $slot0 {} $PARALLEL_JOBSLOT' ::: 3 2 1 > "$T/out5"
check '[ "$(tr "\n" " " < "$T/out5")" = "0 3 1 1 2 2 2 1 3 " ]' "--process-slot-var: $(tr '\n' ' ' < "$T/out5")"
"$BIN/dpool" run --process-slot-var 9bad echo ::: a > /dev/null 2> "$T/err5"; rc=$?
check '[ $rc -eq 255 ] && grep -q "process-slot-var" "$T/err5"' "--process-slot-var 9bad: rc $rc: $(cat "$T/err5")"

# 5. --number-of-threads is the affinity mask's CPUs (as nproc counts them)
n=$("$BIN/dpool" run --number-of-threads)
check '[ "$n" = "$(nproc)" ]' "--number-of-threads printed $n (nproc $(nproc))"
if command -v taskset > /dev/null; then
    n=$(taskset -c 0 "$BIN/dpool" run --number-of-threads)
    check '[ "$n" = 1 ]' "--number-of-threads under taskset -c 0 printed $n"
fi
# 6. the shell: $PARALLEL_SHELL; else the shell dpool run was started from,
#    whatever $SHELL says; an exported bash function works from bash
out=$(PARALLEL_SHELL=/bin/sh "$BIN/dpool" run 'echo $0; : {}' ::: 1)
check '[ "$out" = /bin/sh ]' "PARALLEL_SHELL=/bin/sh: the job ran with '$out'"
if command -v dash > /dev/null; then
    out=$(SHELL=/bin/bash dash -c "\"$BIN/dpool\" run 'echo \$0; : {}' ::: 1")
    check '[ "$(basename "$out")" = dash ]' "started from dash (SHELL=/bin/bash): the job ran with '$out'"
fi
f() { echo "in f $1"; }
export -f f
out=$(SHELL=/bin/sh "$BIN/dpool" run f ::: 1 2 | tr '\n' ' ')
check '[ "$out" = "in f 1 in f 2 " ]' "an exported bash function from bash (SHELL=/bin/sh): '$out'"
unset -f f
finish test_run_opts
