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
# ... and good values still work
printf '1\n2\n' | timeout 60 "$BIN/dpool" map -j 1 -m "$MOD" --task-timeout 2.5 --chunksize 1 --timeout 3000 square > "$T/out"; rc=$?
check '[ $rc -eq 0 ] && [ "$(cat "$T/out")" = "$(printf "1\n4")" ]' "good option values rc=$rc"
printf '1\n' | timeout 60 "$BIN/dpool" map -j 1 -m "$MOD" --task-timeout 300% square > "$T/out"; rc=$?
check '[ $rc -eq 0 ]' "--task-timeout 300% rc=$rc"

finish test_options
