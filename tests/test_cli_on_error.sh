#!/usr/bin/env bash
# dpool map --on-error: a failed item keeps its line on stdout (empty, or
# "dpool: KIND: MESSAGE"), so output line N belongs to input line N; the
# reasons still go to stderr and the exit status is still 1.
set -u
. "$(dirname "$0")/lib.sh"

# 2,000 lines, every 7th fails: as many output lines as input lines
for i in $(seq 1 2000); do if [ $((i % 7)) -eq 0 ]; then echo fail; else echo "$i"; fi; done > "$T/in"
awk '{ print ($1 == "fail") ? "" : $1 }' "$T/in" > "$T/want_empty"
timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" --no-progress --on-error empty fail_if < "$T/in" > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ]' "--on-error empty: exit $rc"
check 'cmp -s "$T/out" "$T/want_empty"' "--on-error empty: output differs ($(wc -l < "$T/out") lines)"
check '[ "$(grep -c "item is fail" "$T/err")" -eq 285 ]' "--on-error empty: reasons on stderr: $(grep -c "item is fail" "$T/err")"

awk '{ print ($1 == "fail") ? "dpool: task failed: item is fail" : $1 }' "$T/in" > "$T/want_text"
timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" --no-progress --on-error error-text fail_if < "$T/in" > "$T/out" 2> /dev/null; rc=$?
check '[ $rc -eq 1 ] && cmp -s "$T/out" "$T/want_text"' "--on-error error-text: rc $rc, $(diff "$T/out" "$T/want_text" | head -3)"

# unordered with --index: every index once
timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" --no-progress -u --index --on-error empty fail_if < "$T/in" > "$T/out" 2> /dev/null
check '[ "$(cut -f1 "$T/out" | sort -n | uniq | wc -l)" -eq 2000 ]' "-u --index --on-error empty: $(wc -l < "$T/out") lines"

# a crash and a timeout are failed lines too, with their kind
printf 'a\ncrash\nb\n' | timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" --no-progress --max-attempts 1 --on-error error-text crash_if > "$T/out" 2> /dev/null
check 'sed -n 2p "$T/out" | grep -q "^dpool: worker died: SIGSEGV" && [ "$(wc -l < "$T/out")" -eq 3 ]' "crash line: $(cat "$T/out")"
printf '10\n60000\n20\n' | timeout 30 "$BIN/dpool" map -j 2 -m "$MOD" --no-progress --task-timeout 0.5 --on-error error-text sleep_ms > "$T/out" 2> /dev/null
check '[ "$(sed -n 1p "$T/out")" = 10 ] && grep -q "^dpool: timed out" "$T/out" && [ "$(sed -n 3p "$T/out")" = 20 ]' "timeout line: $(cat "$T/out")"

# default (skip): the failed lines are missing, as before
timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" --no-progress fail_if < "$T/in" > "$T/out" 2> /dev/null
check '[ "$(wc -l < "$T/out")" -eq 1715 ]' "default skip: $(wc -l < "$T/out") lines"

# a bad mode is a usage error, documented in --help
echo 1 | "$BIN/dpool" map --on-error sometimes -j 1 -m "$MOD" echo > /dev/null 2> "$T/err"; rc=$?
check '[ $rc -eq 64 ] && grep -q "skip, empty or error-text" "$T/err"' "bad mode: rc $rc $(cat "$T/err")"
check '"$BIN/dpool" --help | grep -q -- "--on-error MODE"' "--help names --on-error"

finish test_cli_on_error
