#!/usr/bin/env bash
# Bad option values (issue 9): every numeric option of dpool, dpool status,
# dpool-broker and dpool-worker refuses nan, inf, signs, spaces, exponents,
# hex, trailing junk and out-of-range values with exit 64.
set -u
. "$(dirname "$0")/lib.sh"

# Bad numeric option values are usage errors (exit 64, the value named on
# the first line) for every numeric option of the three programs: one
# strict parser (proto/dp_opt.c)
all_bad=(nan inf -1 1e3 0x10 " 5" "5 " 5x "" 99999999999999999999 +5 1.5)
bad_values=(nan -1 5x 99999999999999999999)
usage_case() {     # program, option, extra bad values...
    local prog=$1 opt=$2; shift 2
    for v in "${bad_values[@]}" "$@"; do
        [ "$opt" = --task-timeout ] && [ "$v" = 1.5 ] && continue
        case $prog in
            dpool) "$BIN/dpool" map "$opt" "$v" echo < /dev/null > /dev/null 2> "$T/uerr" ;;
            dpool-status) "$BIN/dpool" status "$opt" "$v" > /dev/null 2> "$T/uerr" ;;
            *) "$BIN/$prog" "$opt" "$v" > /dev/null 2> "$T/uerr" ;;
        esac
        rc=$?
        check '[ $rc -eq 64 ] && [ "$(wc -l < "$T/uerr")" -le 2 ] && head -1 "$T/uerr" | grep -qF "'"'"'$v'"'"'"' \
            "$prog $opt '$v': rc=$rc $(cat "$T/uerr")"
    done
}
for o in -j --chunksize --max-attempts --timeout --mem-limit --max-tasks-per-child; do usage_case dpool $o; done
usage_case dpool --task-timeout "${all_bad[@]}" 0 0% 0.5% nan% %
usage_case dpool --chunksize 0
usage_case dpool-status --timeout "${all_bad[@]}" 0
for o in -j --heartbeat --max-attempts --task-wait --mem-limit --max-tasks-per-child; do usage_case dpool-broker $o; done
usage_case dpool-broker --heartbeat "${all_bad[@]}" 9
for o in -j --credit --heartbeat --mem-limit --max-tasks-per-child; do usage_case dpool-worker $o; done
usage_case dpool-worker --credit "${all_bad[@]}" 0 1025
for v in 127.0.0.1:nan 127.0.0.1:-1 127.0.0.1:65536 127.0.0.1:+80 127.0.0.1:; do
    "$BIN/dpool-broker" --metrics "$v" > /dev/null 2> "$T/uerr"; rc=$?
    check '[ $rc -eq 64 ]' "dpool-broker --metrics '$v': rc=$rc $(cat "$T/uerr")"
done
# dpool run's GNU parallel options: refused as GNU parallel refuses them
# (exit 255, one line naming the value), accepted where it accepts them
run_case() {       # option, expected status (0 or 255), values...
    local opt=$1 want=$2; shift 2
    for v in "$@"; do
        timeout 20 "$BIN/dpool" run -j 1 "$opt" "$v" echo ::: a > "$T/rout" 2> "$T/uerr"; rc=$?
        if [ "$want" = 0 ]; then
            check '[ $rc -eq 0 ] && [ "$(cat "$T/rout")" = a ]' "dpool run $opt '$v' should run: rc=$rc $(head -c 300 "$T/uerr")"
        else
            check '[ $rc -eq 255 ] && [ ! -s "$T/rout" ] && [ "$(wc -l < "$T/uerr")" -eq 1 ] && grep -qF -- "'"'"'$v'"'"'" "$T/uerr"' \
                "dpool run $opt '$v': rc=$rc $(head -c 300 "$T/uerr")"
        fi
    done
}
run_case --timeout 255 nan inf -1 1e400 1e3 0x10 " 2" 2x "" 0 "$(printf '9%.0s' $(seq 1 400))"
run_case --timeout 0 1.5m .5 30 50% 1h
run_case -j 255 2.5 1e12 0x10 nan inf +1.5 " 2" ""
run_case -j 0 150% -1 +1 0 3
run_case --block 255 1e3 nan 0 -1 5x
run_case --block 0 1.5M 10k
run_case --halt 255 now,fail=1e1 now,fail=nan soon,fail=0 now,fail=-1
run_case --halt 0 now,fail=1 soon,fail=20%
# ... and good values still work
printf '1\n2\n' | timeout 60 "$BIN/dpool" map -j 1 -m "$MOD" --task-timeout 2.5 --chunksize 1 --timeout 3000 square > "$T/out"; rc=$?
check '[ $rc -eq 0 ] && [ "$(cat "$T/out")" = "$(printf "1\n4")" ]' "good option values rc=$rc"
printf '1\n' | timeout 60 "$BIN/dpool" map -j 1 -m "$MOD" --task-timeout 300% square > "$T/out"; rc=$?
check '[ $rc -eq 0 ]' "--task-timeout 300% rc=$rc"

finish test_options
