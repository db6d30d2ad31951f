#!/usr/bin/env bash
# dpool run as a drop-in for GNU parallel: command lines from GNU parallel's
# tutorial and man page, each run through `parallel -k` and `dpool run`;
# stdout bytes and exit status must be the same. A command line dpool run
# refuses must exit 255 with one line on stderr (never different output).
# Skipped (77) when GNU parallel is not installed and cannot be.
set -u
BIN=$(cd "${DPOOL_BIN:-build/bin}" && pwd)
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
# t 'STDIN COMMAND' ARGS... : a case: `STDIN | parallel -k ARGS` against
# `STDIN | dpool run ARGS`. Cases are written down first; GNU parallel (a
# second or more each on a loaded machine) then runs them 4 at a time.
mkdir cases
n=0
t() {
    local input=$1; shift
    n=$((n + 1))
    { printf 'input=%q\nargs=(' "$input"; printf '%q ' "$@"; printf ')\n'; } > "cases/$n"
}
# run_case N TOOL... : stdout, stderr and status of the case under TOOL
run_case() {
    local c=$1; shift
    local input args
    . "cases/$c"
    if [ -n "$input" ]; then
        eval "$input" | timeout 300 "$@" "${args[@]}" > "cases/$c.$2.out" 2> "cases/$c.$2.err"
        echo "${PIPESTATUS[1]}" > "cases/$c.$2.rc"
    else
        timeout 300 "$@" "${args[@]}" < /dev/null > "cases/$c.$2.out" 2> "cases/$c.$2.err"
        echo $? > "cases/$c.$2.rc"
    fi
}
compare() {
    local c=$1 input args
    . "cases/$c"
    local prc drc
    prc=$(cat "cases/$c.--will-cite.rc") drc=$(cat "cases/$c.run.rc")
    if [ "$drc" -eq 255 ] && [ ! -s "cases/$c.run.out" ] && [ "$(wc -l < "cases/$c.run.err")" -eq 1 ] \
       && grep -q "Try --help" "cases/$c.run.err"; then
        refused=$((refused + 1)); echo "refused: ${args[*]} ($(cat "cases/$c.run.err"))"
    elif [ "$prc" -eq "$drc" ] && cmp -s "cases/$c.--will-cite.out" "cases/$c.run.out"; then
        same=$((same + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: ${input:+$input | }dpool run ${args[*]}: rc $drc (parallel $prc)" >&2
        diff <(head -c 2000 "cases/$c.--will-cite.out") <(head -c 2000 "cases/$c.run.out") | head -10 >&2
        head -c 500 "cases/$c.run.err" >&2
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
t 'seq 105' 'exit 1'
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
export -f run_case
s0=$SECONDS
seq 1 $n | xargs -P 4 -I N bash -c 'run_case N parallel --will-cite -k'
echo "GNU parallel: $((SECONDS - s0)) s"; s0=$SECONDS
for c in $(seq 1 $n); do run_case $c "$BIN/dpool" run; compare $c; done
echo "dpool run: $((SECONDS - s0)) s"
echo "test_parallel: $same same as GNU parallel, $refused refused (255), $fail different"
[ $fail -eq 0 ] && [ $same -ge 60 ]
