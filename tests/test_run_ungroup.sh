#!/usr/bin/env bash
# dpool run -u and --line-buffer print ordinary jobs' output as it comes,
# as GNU parallel does (their order is not deterministic, so these are
# properties, not bytes compared with parallel -k):
#   -u: a running job's first line is out while the job still runs, and
#       another job's output passes it;
#   --line-buffer --nok: a later job's lines pass a running one, and no
#       line is ever torn (a job writing a line in pieces, with others
#       writing meanwhile, still gives whole lines);
#   --line-buffer (dpool run's -k): lines stay in input order, whole, the
#       oldest job's as they come (GNU parallel's -k --lb);
#   -g (the default): a job's output only once it ended, in order.
# Jobs wait on a file the test makes once it has seen what it waits for
# (a deadline each side), never on a fixed sleep.
set -u
. "$(dirname "$0")/lib.sh"
cd "$T"

# wait_for FILE PATTERN: FILE holds a line matching PATTERN within 30 s
wait_for() {
    local i
    for i in $(seq 600); do
        grep -q -- "$2" "$1" 2> /dev/null && return 0
        sleep 0.05
    done
    return 1
}
# the job: "ONE-start", then wait for the barrier file, then "ONE-end"
cat > job.sh <<'EOF'
if [ "$1" = one ]; then
    echo one-start
    for i in $(seq 600); do [ -e barrier ] && break; sleep 0.05; done
    echo one-end
else
    echo "$1"
fi
EOF

# ungrouped MODE...: job "one" blocks until the test saw both its first
# line and job "two"'s line in dpool run's output (a file)
ungrouped() {
    rm -f barrier out
    "$BIN/dpool" run -j2 "$@" 'sh job.sh {}' ::: one two > out 2> err &
    local pid=$!
    wait_for out '^one-start$' && wait_for out '^two$'
    local seen=$?
    touch barrier
    wait "$pid"
    local rc=$?
    check "[ $seen -eq 0 ]" "$*: one-start and two not out while job one ran: $(cat out err)"
    check "[ $rc -eq 0 ]" "$*: exit $rc"
    check "[ \"\$(sort out | tr '\n' ' ')\" = 'one-end one-start two ' ]" "$*: output $(cat out)"
    check "[ \"\$(head -1 out)\" != one-end ]" "$*: one-end before one-start"
}
ungrouped -u
ungrouped --line-buffer --nok
ungrouped -u --tag                  # (-u disables --tag, as in GNU parallel)

# grouped EARLY MODE...: job two's output waits for job one's end; job
# one's first line is out before its end when EARLY is 'one-start' (GNU
# parallel's -k --lb: the oldest job's lines as they come), else nothing is
grouped() {
    local want=$1
    shift
    rm -f barrier out log
    "$BIN/dpool" run -j2 --joblog log "$@" 'sh job.sh {}' ::: one two > out 2> err &
    local pid=$!
    # job two has run (a joblog line) and job one has begun: its first
    # line is out by now if it is to be
    local i
    for i in $(seq 600); do
        awk -F'\t' '$1 == 2' log 2> /dev/null | grep -q . && break
        sleep 0.05
    done
    [ -z "$want" ] || wait_for out "^$want\$"
    local early
    early=$(tr '\n' ' ' < out)
    touch barrier
    wait "$pid"
    check "[ \"\$early\" = \"${want:+$want }\" ]" "$*: output before job one ended: $early"
    check "[ \"\$(tr '\n' ' ' < out)\" = 'one-start one-end two ' ]" "$*: output $(cat out)"
}
grouped ''
grouped one-start --line-buffer

# lines never torn: 4 jobs each write 30 lines in two pieces (a pause
# between), all at once; every line is whole, each job's in its order
cat > pieces.sh <<'EOF'
for i in $(seq 30); do
    printf '%s-' "$1"
    sleep 0.01
    printf '%s-%s\n' "$1" "$i"
done
EOF
for mode in "--line-buffer --nok" "--line-buffer"; do
    "$BIN/dpool" run -j4 $mode 'sh pieces.sh {}' ::: a b c d > out 2> err
    rc=$?
    check "[ $rc -eq 0 ]" "$mode: exit $rc $(cat err)"
    check "[ \"\$(wc -l < out)\" -eq 120 ]" "$mode: $(wc -l < out) lines"
    check "! grep -vqE '^([a-d])-\\1-[0-9]+\$' out" "$mode: torn lines: $(grep -vE '^([a-d])-\1-[0-9]+$' out | head -3)"
    for j in a b c d; do
        check "[ \"\$(grep \"^$j-\" out | cut -d- -f3 | tr '\n' ' ')\" = \"\$(seq 30 | tr '\n' ' ')\" ]" \
            "$mode: job $j's lines out of order"
    done
done
# --line-buffer keeps input order (GNU parallel's -k --lb); --nok lets
# lines of jobs mix (they ran at once: at least one job's lines were
# passed by another's)
"$BIN/dpool" run -j4 --line-buffer 'sh pieces.sh {}' ::: a b c d > out 2> err
check "[ \"\$(cut -c1 out | uniq | tr -d '\n')\" = abcd ]" "--line-buffer: jobs not in order"
"$BIN/dpool" run -j4 --line-buffer --nok 'sh pieces.sh {}' ::: a b c d > out 2> err
check "[ \"\$(cut -c1 out | uniq | wc -l)\" -gt 4 ]" "--line-buffer --nok: no lines mixed"

finish test_run_ungroup
