#!/usr/bin/env bash
# dpool run as a drop-in for GNU parallel: command lines from GNU parallel's
# tutorial and man page, each run through `parallel -k` and `dpool run`;
# stdout bytes and exit status must be the same. A command line dpool run
# refuses must exit 255 with one line on stderr (never different output).
# Skipped (77) when GNU parallel is not installed and cannot be.
set -u
BIN=${DPOOL_BIN:-build/bin}
if ! command -v parallel > /dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        DEBIAN_FRONTEND=noninteractive timeout 120 apt-get install -y -qq parallel > /dev/null 2>&1
    fi
    command -v parallel > /dev/null || { echo "SKIP: GNU parallel is not installed"; exit 77; }
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export HOME="$T/home"          # no ~/.parallel of the user, no citation notice
mkdir -p "$HOME"
cd "$T"
printf 'f1\nf2\n' > args
printf 'a\tb\n1\t2\n3\t4\n' > table.tsv
printf 'x,y\n' > pair.csv
same=0 refused=0 fail=0
# t 'STDIN COMMAND' ARGS... : compare `STDIN | parallel -k ARGS` with `STDIN | dpool run ARGS`
t() {
    local input=$1; shift
    local prc drc
    if [ -n "$input" ]; then
        eval "$input" | timeout 60 parallel --will-cite -k "$@" > p.out 2> p.err; prc=$?
        eval "$input" | timeout 60 "$BIN/dpool" run "$@" > d.out 2> d.err; drc=$?
    else
        timeout 60 parallel --will-cite -k "$@" < /dev/null > p.out 2> p.err; prc=$?
        timeout 60 "$BIN/dpool" run "$@" < /dev/null > d.out 2> d.err; drc=$?
    fi
    if [ $drc -eq 255 ] && [ ! -s d.out ] && [ "$(wc -l < d.err)" -eq 1 ] && grep -q "Try --help" d.err; then
        refused=$((refused + 1)); echo "refused: $* ($(cat d.err))"
    elif [ $prc -eq $drc ] && cmp -s p.out d.out; then
        same=$((same + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: ${input:+$input | }dpool run $*: rc $drc (parallel $prc)" >&2
        diff <(head -c 2000 p.out) <(head -c 2000 d.out) | head -10 >&2
        head -c 500 d.err >&2
    fi
}
# --- input sources
t '' echo ::: A B C
t '' echo {} ::: A B C
t '' -k echo ::: A B C
t '' echo ::: A B ::: C D
t '' echo {1} {2} ::: A B ::: C D
t '' echo {2} {1} ::: A B ::: C D
t '' echo {3} {2} {1} ::: a ::: b ::: c
t '' echo ::: A B :::+ C D
t '' --link echo ::: A B ::: C D E
t '' --xapply echo {1}-{2} ::: A B ::: C D
t 'seq 5' echo
t 'seq 3' echo {} {}
t '' -a args echo
t '' echo :::: args
t '' echo ::: a :::: args
t 'seq 2' echo :::: - ::: x y
t '' --arg-sep ,, echo ,, a b
t 'printf "a\0b c\0"' -0 echo
t 'printf "a\0b\0"' --null echo x{}x
t 'printf "a,b,c"' -d , echo
t 'printf "a\nb\n"' -d '\n' echo
t 'printf "a\n\n  \nb\n"' -r echo x{}x
t 'printf "a\n\nb\n"' echo x{}x
t '' --trim lr echo x{}x ::: ' a '
t '' --trim l echo x{}x ::: ' a '
t 'printf "a\nSTOP\nb\n"' -E STOP echo
t '' ::: "echo a" "echo b"
t 'printf "echo 1\necho 2\n"'
t '' --colsep , echo {2} {1} :::: pair.csv
t '' --colsep '\t' --header : echo {b}-{a} :::: table.tsv
t 'cat table.tsv' --colsep '\t' echo {2} {1}
t '' --header : echo {x} {y} ::: x 1 2 ::: y 3
t 'printf "h\na\nb\n"' --header : echo {h}
t 'printf "h\na\n"' --skip-first-line echo
# --- replacement strings
t '' echo {.} ::: file.txt dir/file.tar.gz
t '' echo {/} ::: dir/sub/file.txt
t '' echo {//} ::: dir/sub/file.txt file /a
t '' echo {/.} ::: dir/sub/file.txt
t '' echo {#} ::: a b c
t '' -j1 echo {%} ::: a b c
t '' echo {1.} {2/} ::: a.x b.y ::: d/e
t '' echo {-1} {1/.} ::: /a/b.c ::: d
t '' -I ,, echo ,, ::: a b
t 'seq 3' -I X echo X X
t '' --er ,, echo ,, ::: a.b
t '' --bnr ,, echo ,, ::: a/b
t '' --seqreplace ,, echo ,, ::: a b
t '' echo {} ::: "it's" 'a"b' '$HOME' '*' 'a  b'
t '' echo '"{}"' ::: 'a b'
t '' echo {..} ::: a
t '' --plus echo {+/} ::: a/b
t '' echo {=uc=} ::: a
# --- arguments per job
t 'seq 5' -n2 echo
t 'seq 6' -N2 echo {2} {1}
t '' -N0 echo foo ::: 1 2 3
t 'seq 10' -j4 -m echo
t 'seq 10' -j4 -X echo x{}
t 'seq 10' --xargs echo
t '' -j1 -X echo {}.txt ::: a b c
t '' -q printf '%s-\n' ::: a b
t '' printf '%s-\n' ::: a b
# --- shell, exit status
t '' 'echo {} | tr a-z A-Z' ::: abc
t '' 'cd / && pwd' ::: a
t '' 'exit {}' ::: 0 1 2
t '' 'echo {}; exit {}' ::: 0 1 0 3
t 'seq 150' 'exit 1'
t '' 'echo {} >&2; echo out' ::: a
t 'seq 3' 'echo {}; echo {} >&2'
t '' 'echo $PARALLEL_SEQ' ::: a b
t '' -j1 --halt soon,fail=1 'echo {}; exit {}' ::: 0 1 2
t '' -j1 --halt now,fail=1 'echo {}; exit {}' ::: 0 1 2
t '' --retries 3 'exit 1' ::: a
t '' --timeout 2 'sleep {}; echo {}' ::: 0.1 10
t '' -j0 echo ::: a b
t '' -j+0 echo ::: a
t '' -j 50% echo ::: a
t '' --tag echo ::: a b
t '' --tag echo {} ::: a b ::: c
t '' --tagstring '{}:' echo ::: a b
t '' --dry-run echo {} ::: "a b"
t '' --joblog /dev/null echo ::: a
t '' --bar echo ::: a
t '' --nonall echo
t '' -S host echo ::: a
t '' --shuf echo ::: a
# --- --pipe
t 'seq 100000' --pipe wc -l
t 'seq 20' --pipe --block 10 wc -l
t 'seq 20' --pipe -N3 'echo {#}; cat'
t 'printf ">a\nxx\n>b\nyy\n"' --pipe -N1 --recstart '>' 'echo J; cat'
t 'seq 30' --pipe --block 20 --recend '0\n' 'echo B; cat'
echo "test_parallel: $same same as GNU parallel, $refused refused (255), $fail different"
[ $fail -eq 0 ] && [ $same -ge 60 ]
