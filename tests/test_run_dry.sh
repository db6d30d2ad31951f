#!/usr/bin/env bash
# dpool run's command lines without running them (--dry-run): replacement
# strings, quoting, input sources, -n/-N/-m/-X, and the refusals (exit 255
# and one line). Expected lines are GNU parallel 20221122's --dry-run output.
set -u
BIN=${DPOOL_BIN:-build/bin}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
# expect 'WANT' ARGS... (stdin from $IN when set)
expect() {
    local want=$1; shift
    local got rc
    if [ -n "${IN+x}" ]; then
        got=$(printf "$IN" | timeout 20 "$BIN/dpool" run --dry-run "$@" 2>"$T/err"); rc=$?
    else
        got=$(timeout 20 "$BIN/dpool" run --dry-run "$@" < /dev/null 2>"$T/err"); rc=$?
    fi
    if [ $rc -eq 0 ] && [ "$got" = "$(printf "$want")" ]; then pass=$((pass + 1))
    else fail=$((fail + 1)); echo "FAIL: dpool run --dry-run $* -> rc=$rc [$got] want [$(printf "$want")] $(cat "$T/err")" >&2; fi
}
# refused ARGS...: exit 255, one line on stderr naming the problem, nothing on stdout
refused() {
    local out rc
    out=$(timeout 20 "$BIN/dpool" run "$@" < /dev/null 2>"$T/err"); rc=$?
    if [ $rc -eq 255 ] && [ -z "$out" ] && [ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "Try --help" "$T/err"; then pass=$((pass + 1))
    else fail=$((fail + 1)); echo "FAIL: dpool run $* -> rc=$rc out=[$out] err=[$(cat "$T/err")]" >&2; fi
}
unset IN
expect 'echo a.tar a.tar.gz . a.tar\necho dir.x/file file dir.x file' echo {.} {/} {//} {/.} ::: a.tar.gz dir.x/file
expect "echo /a a / a\necho '' .bashrc . ''\necho x/ .y x ''" echo {.} {/} {//} {/.} ::: /a .bashrc x/.y
expect "echo 'it'\"'\"'s'\necho 'x\$y'\necho ''\necho 'a b'" echo ::: "it's" 'x$y' "" "a b"
expect 'echo a c\necho a d\necho b c\necho b d' echo ::: a b ::: c d
expect 'echo a c\necho b d' echo ::: a b :::+ c d
expect 'echo a c\necho b d\necho a e' --link echo ::: a b ::: c d e
expect 'echo c a c\necho c b c' echo {2} {1} {-1} ::: a b ::: c
expect 'echo a e' echo {1.} {2/} ::: a.x ::: d/e
expect 'echo 1 a\necho 2 b' echo {#} {} ::: a b
expect "echo 'a b' c" -q echo "a b" {} ::: c
expect 'echo x-a\necho x-b' -I ,, echo x-,, ::: a b
expect 'echo foo\necho foo' -N0 echo foo ::: 1 2
expect 'echo a-b=a b' -n2 echo {1}-{2}={} ::: a b
expect 'echo 1 2 3 4 5 6 7 8 9 10' --xargs echo ::: 1 2 3 4 5 6 7 8 9 10
expect 'echo 1 2 3 4\necho 5 6 7 8\necho 9 10' -j3 -m echo ::: 1 2 3 4 5 6 7 8 9 10
expect 'echo x1y x2y x3y x4y\necho x5y x6y x7y x8y\necho x9y x10y' -j3 -X echo x{}y ::: 1 2 3 4 5 6 7 8 9 10
expect 'echo 13\necho 23' --header : echo {a}{b} ::: a 1 2 ::: b 3
expect 'echo a\necho b' ::: "echo a" "echo b"
IN='a\tb\nc\td\n' expect 'echo b-a\necho d-c' --colsep '\t' echo {2}-{1}
IN='a,b\n' expect 'echo b a' -C , echo {2} {1}
IN='a\n\n  \nb\n' expect 'echo xax\necho xbx' -r echo x{}x
IN='a\n\nb\n' expect "echo xax\necho x''x\necho xbx" echo x{}x
IN='a\0b c\0' expect "echo a\necho 'b c'" -0 echo
IN='a,b,c' expect 'echo a\necho b\necho c' -d , echo
IN='  a  \n' expect 'echo xax' --trim lr echo x{}x
IN='h\na\n' expect 'echo a' --header : echo {h}
IN='a\nSTOP\nb\n' expect 'echo a' -E STOP echo
printf 'f1\nf2\n' > "$T/args"
expect 'echo f1 x\necho f2 x' echo {} x :::: "$T/args"
expect 'echo f1\necho f2' -a "$T/args" echo
refused --plus echo {host} ::: a
refused --plus echo '{%a*}' ::: a
expect 'echo a/b.c a b.c c' --plus echo {} {+/} {/} {+.} ::: a/b.c
refused -S host echo ::: a
refused --bogus-option echo ::: a
refused echo {..} ::: a
refused echo {=uc=} ::: a
refused echo {+/} ::: a
refused --shuf echo ::: a
refused -L 2 echo ::: a
refused --resume echo ::: a
refused --halt sometimes echo ::: a
refused --timeout x echo ::: a
refused -j x echo ::: a
# help: run's options only
"$BIN/dpool" run --help > "$T/help"; rc=$?
if [ $rc -eq 0 ] && grep -q -- "--joblog" "$T/help" && ! grep -q -- "--module\|--task-timeout" "$T/help"; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL: dpool run --help rc=$rc" >&2; fi
"$BIN/dpool" map --help > "$T/help"; rc=$?
if [ $rc -eq 0 ] && grep -q -- "--module" "$T/help" && ! grep -q -- "--joblog" "$T/help"; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL: dpool map --help rc=$rc" >&2; fi
echo "test_run_dry: $pass passed, $fail failed"
[ $fail -eq 0 ]
