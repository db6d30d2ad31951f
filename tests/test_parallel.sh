#!/usr/bin/env bash
# dpool run as a drop-in for GNU parallel: command lines from GNU parallel's
# tutorial, man page and examples, each run through `parallel -k` and
# `dpool run`; stdout bytes and exit status must be the same, and so must
# the files a case leaves (--results trees byte for byte; other files as
# sorted lines, joblogs by Seq, Exitval, Signal and Command). A command
# line dpool run refuses must exit 255 with one line on stderr and print
# nothing (never different output).
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
# as under CI or a scheduler: no useful $SHELL, so the shell both tools run
# commands with is the one they were started from (this bash), which
# exported bash functions need
export SHELL=/bin/sh
mkdir -p "$HOME" "$T/fixtures"
cd "$T/fixtures"
printf 'f1\nf2\n' > args
printf 'a\tb\n1\t2\n3\t4\n' > table.tsv
printf 'x,y\n' > pair.csv
# the tutorial's files (man parallel_tutorial, "Input sources")
printf 'A\nB\nC\n' > abc-file
printf 'D\nE\nF\n' > def-file
printf 'A\0B\0C\0' > abc0-file
printf 'A_B_C_' > abc_-file
printf 'f1\tf2\nA\tB\nC\tD\n' > tsv-file.tsv
seq 8 > num8
seq 128 > num128
seq 30000 > num30000
(echo %head1; echo %head2; seq 10) > num_%header
# profiles: a config folder ($XDG_CONFIG_HOME/parallel) with a default
# config and a named profile, and a profile file named by its path
mkdir -p xdg/parallel
printf -- '--tag\n' > xdg/parallel/config
printf -- '# a comment line\n-k --tagstring "<{}>"\n' > xdg/parallel/tagged
printf -- '-j1 nice\n' > nicep
# a command that says which signal came (--termseq)
printf '%s\n' "trap 'echo got INT; exit 3' INT" "trap 'echo got TERM' TERM" \
    'sleep 20 & wait; sleep 20 & wait; sleep 20 & wait' > trap.sh
printf 'HHHHAAABBBCCC' > fixedlen
cd "$T"
same=0 refused=0 fail=0
# t 'STDIN COMMAND' ARGS... : a case: `STDIN | parallel -k ARGS` against
# `STDIN | dpool run ARGS`, each in a folder of its own holding the
# fixtures. '@COMMAND' instead: COMMAND runs first, to its end, with
# $TOOL the tool under test (to prepare a joblog), then ARGS on no input.
# Cases are written down first; GNU parallel (a second or more each on a
# loaded machine) then runs them 4 at a time.
mkdir cases
n=0
# CASE_ENV='NAME=VALUE ...' before t: the case runs with those variables.
t() {
    local input=$1; shift
    n=$((n + 1))
    { printf 'input=%q\nargs=(' "$input"; printf '%q ' "$@"; printf ')\nenvs=(%s)\n' "${CASE_ENV:-}"; } > "cases/$n"
}
# run_case N TOOL... : stdout, stderr, status and files of the case under TOOL
run_case() {
    local c=$1; shift
    local input args envs d="$PWD/cases/$c.$2"
    . "cases/$c"
    mkdir -p "$d.d"
    ln -s "$PWD"/fixtures/* "$d.d/"
    (
        cd "$d.d" || exit 1
        TOOL="$*"
        if [ "${input#@}" != "$input" ]; then
            eval "${input#@}" < /dev/null > /dev/null 2>&1
            input=
        fi
        if [ -n "$input" ]; then
            eval "$input" | timeout 300 env "${envs[@]}" "$@" "${args[@]}" > "$d.out" 2> "$d.err"
            echo "${PIPESTATUS[1]}" > "$d.rc"
        else
            timeout 300 env "${envs[@]}" "$@" "${args[@]}" < /dev/null > "$d.out" 2> "$d.err"
            echo $? > "$d.rc"
        fi
    )
}
# files DIR: what a case left there, comparable between the tools
files() {
    (cd "$1" && find . -type f | LC_ALL=C sort | while read -r f; do
        echo "== $f"
        case $f in
            ./*/*) cat "$f" ;;                       # --results trees: bytes
            *) if head -1 "$f" | grep -q '^Seq.Host.Starttime'; then
                   awk -F'\t' 'NR > 1 { print $1, $7, $8, $9 }' "$f" | LC_ALL=C sort
               else
                   LC_ALL=C sort "$f"
               fi ;;
        esac
    done)
}
compare() {
    local c=$1 input args envs
    . "cases/$c"
    local prc drc p="cases/$c.--will-cite" d="cases/$c.run"
    prc=$(cat "$p.rc") drc=$(cat "$d.rc")
    if [ "$drc" -eq 255 ] && [ ! -s "$d.out" ] && [ "$(wc -l < "$d.err")" -eq 1 ] \
       && grep -q "Try --help" "$d.err"; then
        refused=$((refused + 1)); echo "refused: ${args[*]} ($(cat "$d.err"))"
    elif [ "$prc" -eq "$drc" ] && cmp -s "$p.out" "$d.out" \
         && cmp -s <(files "$p.d") <(files "$d.d"); then
        same=$((same + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: ${envs[*]:+${envs[*]} }${input:+$input | }dpool run ${args[*]}: rc $drc (parallel $prc)" >&2
        diff <(head -c 2000 "$p.out") <(head -c 2000 "$d.out") | head -10 >&2
        diff <(files "$p.d") <(files "$d.d") | head -10 >&2
        head -c 500 "$d.err" >&2
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
t 'seq 3000' --pipe --block 1k wc -c
t 'seq 3000' --pipe --block 1K wc -c
t 'seq 20' --pipe -N3 'echo {#}; cat'
t 'printf ">a\nxx\n>b\nyy\n"' --pipe -N1 --recstart '>' 'echo J; cat'
t 'seq 30' --pipe --block 20 --recend '0\n' 'echo B; cat'
# === man parallel_tutorial
# --- input sources
t '' -a abc-file echo
t 'cat abc-file' echo
t '' echo ::: A B C ::: D E F
t '' -a abc-file -a def-file echo
t 'cat abc-file' -a - -a def-file echo
t 'cat abc-file' echo :::: - def-file
t '' echo ::: A B C :::: def-file
t '' --link echo ::: A B C ::: D E F
t '' --link echo ::: A B C D E ::: F G
t '' echo :::: abc-file :::+ G H I :::: def-file
t '' echo :::: abc-file ::: G H I ::::+ def-file
t '' echo ::: A B C D E :::+ F G
t '' --arg-sep ,, echo ,, A B C :::: def-file
t '' --arg-file-sep // echo ::: A B C // def-file
t '' -d _ echo :::: abc_-file
t '' -d '\0' echo :::: abc0-file
t '' -0 echo :::: abc0-file
t '' -E stop echo ::: A B stop C D
t '(echo 1; echo; echo 2)' --no-run-if-empty echo
t '' ::: 'echo foo' 'echo bar'
my_func() { echo in my_func "$1"; }
export -f my_func
t '' my_func ::: 1 2 3
# --- replacement strings
t '' echo ::: A/B.C
t '' echo {} ::: A/B.C
t '' echo {.} ::: A/B.C
t '' echo {/} ::: A/B.C
t '' echo {//} ::: A/B.C
t '' echo {/.} ::: A/B.C
t '' echo {#} ::: A B C
t '' -I ,, echo ,, ::: A/B.C
t '' --extensionreplace ,, echo ,, ::: A/B.C
t '' --basenamereplace ,, echo ,, ::: A/B.C
t '' --dirnamereplace ,, echo ,, ::: A/B.C
t '' --basenameextensionreplace ,, echo ,, ::: A/B.C
t '' --seqreplace ,, echo ,, ::: A B C
t '' -j1 --slotreplace ,, echo ,, ::: A B C
t '' echo '{= s:\.[^.]+$::;s:\.[^.]+$::; =}' ::: foo.tar.gz
t '' echo Job {#} of {= '$_=total_jobs()' =} ::: {1..5}
t '' echo {1} and {2} ::: A B ::: C D
t '' echo /={1/} //={1//} /.={1/.} .={1.} ::: A/B.C D/E.F
t '' echo 1={1} 2={2} 3={3} -1={-1} -2={-2} -3={-3} ::: A B ::: C D ::: E F
t '' --rpl '{..} s:\.[^.]+$::;s:\.[^.]+$::;' echo '{2..} {1}' ::: bar ::: foo.tar.gz
t '' --colsep '\t' echo 1={1} 2={2} :::: tsv-file.tsv
t '' --header : echo f1={f1} f2={f2} ::: f1 A B ::: f2 C D
t '' --header : --colsep '\t' echo f1={f1} f2={f2} :::: tsv-file.tsv
# --plus (the tutorial's lines, several to a case)
t '' --plus echo {} {+/}/{/} {.}.{+.} {+/}/{/.}.{+.} ::: dir/sub/file.ex1.ex2.ex3
t '' --plus echo {..}.{+..} {+/}/{/..}.{+..} {...}.{+...} {+/}/{/...}.{+...} \
    ::: dir/sub/file.ex1.ex2.ex3
t '' --plus echo Job {#} of {##} ::: {1..5}
t '' --plus echo {:-myval} ::: ''
t '' --plus echo {:2} {:2:3} {#bc} {#abc} {%de} {%def} ::: abcAaAdef
t '' --plus echo {/def/ghi} {^a} {^^a} ::: abcAaAdef
t '' --plus echo '{,A}' '{,,A}' ::: AbcAaAdef
# --- arguments per job
t 'cat num30000' --xargs echo
t 'cat num30000' --xargs -s 10000 echo
t 'cat num30000' --jobs 4 -m echo
t '' --jobs 4 -m echo ::: 1 2 3 4 5 6 7 8 9 10
t '' --jobs 4 -m echo pre-{}-post ::: A B C D E F G
t '' --jobs 4 -X echo pre-{}-post ::: A B C D E F G
t '' -N3 echo ::: A B C D E F G H
t '' -N3 echo 1={1} 2={2} 3={3} ::: A B C D E F G H
# --- quoting, trimming, shell
t '' perl -e 'print "@ARGV\n"' ::: This wont work
t '' -q perl -e 'print "@ARGV\n"' ::: This works
t '' perl -e \''print "@ARGV\n"'\' ::: This works, too
t "echo \"perl -e 'print \\\"@ARGV\\\\n\\\"'\"" --shellquote
t '' perl\ -e\ \'print\ \"@ARGV\\n\"\' ::: This also works
t '' --trim r echo pre-{}-post ::: ' A '
t '' --trim l echo pre-{}-post ::: ' A '
t '' --trim lr echo pre-{}-post ::: ' A '
t '' echo \={} ::: bash ls
# --- output
t '' --tag echo foo-{} ::: A B C
t '' --tagstring {}-bar echo foo-{} ::: A B C
t '' --dryrun echo {} ::: A B C
t '' --verbose echo {} ::: A B C
t '' -j2 'printf "%s-start\n%s" {} {}; sleep {};printf "%s\n" -middle;echo {}-end' ::: 0.4 0.2 0.1
t '' -j2 --linebuffer 'printf "%s-start\n%s" {} {}; sleep {};printf "%s\n" -middle;echo {}-end' \
    ::: 0.4 0.2 0.1
t '' --files echo ::: A B C
t '' --results outdir echo ::: A B C
t '' --header : --results outdir echo ::: f1 A B ::: f2 C D
# --- running
t '' -N0 -j64 sleep 0.1 :::: num8
t '' -N0 --jobs 200% sleep 0.1 :::: num8
t '' --use-cpus-instead-of-cores -N0 sleep 0.1 :::: num8
t '' --shuf echo ::: 1 2 3 ::: a b c ::: A B C
# the man page's line prints date(1) too, which differs between any two runs
t '' --delay 0.3 echo Starting {} ::: 1 2 3
t '' --delay 0.1auto -j2 'echo {}; exit {}' ::: 0 1 0
t '' --timeout 4.1 sleep {}\; echo {} ::: 2 4 6 8
t '' --bar sleep ::: 0.1 0.3
t '' --joblog log exit ::: 1 2 3 0
t '@$TOOL --joblog log exit ::: 1 2 3 0' --resume --joblog log exit ::: 1 2 3 0 0 0
t '@$TOOL --joblog log exit ::: 1 2 3 0 0 0' --resume-failed --joblog log exit ::: 1 2 3 0 0 0
t '@$TOOL --joblog log exit ::: 1 2 3 0 0 0' --retry-failed --joblog log
t '' -j1 --halt soon,fail=1 echo {}\; exit {} ::: 0 0 1 2 3
t '' -j1 --halt now,fail=1 echo {}\; exit {} ::: 0 0 1 2 3
t '' -j1 --halt soon,fail=20% echo {}\; exit {} ::: 0 1 2 3 4 5 6 7 8 9
t '' -j1 --halt now,success=1 echo {}\; exit {} ::: 1 2 3 0 4 5 6
t '' -k --retries 3 'echo tried {} >>runs; echo completed {}; exit {}' ::: 1 2 0
t '' --termseq INT,200,TERM,100,KILL,25 -u --timeout 1 sleep ::: 3
t '' --termseq TERM,300,KILL,25 --timeout 2 'bash trap.sh; : {}' ::: 1
t '' --term-seq SIGINT,100 --timeout 2 'bash trap.sh; : {}' ::: 1
show_signals() {
    perl -e 'for(keys %SIG) { $SIG{$_} = eval "sub { print \"Got $_\\n\"; }"; } while(1){sleep 1}'
}
export -f show_signals
t 'echo' -u --timeout 1 show_signals
t '' --load 100% echo load is less than {} job per cpu ::: 1
t '' --nice 17 echo this is being run with nice -n ::: 17
t '' -S : echo running on ::: the_local_machine
t '' --env MYVAR echo '$MYVAR' ::: baz
# --- --pipe
t 'seq 1000000' --pipe wc
t 'seq 1000000' --pipe -j4 --roundrobin wc
t 'seq 1000000' --pipe -N140000 wc
t 'seq 1000000' --pipe -L75 wc
t 'cat fixedlen' --pipe --header .{4} --block 3 --recend '' 'echo start; cat; echo'
t 'echo /foo, bar/, /baz, qux/,' -kN1 --recend ', ' --pipe echo JOB{#}\;cat\;echo END
t 'echo /foo, bar/, /baz, qux/,' -kN1 --recstart / --pipe echo JOB{#}\;cat\;echo END
t 'echo /foo, bar/, /baz, qux/,' -kN1 --recend ', ' --recstart / --pipe echo JOB{#}\;cat\;echo END
t 'echo foo,bar,_baz,__qux,' -kN1 --regexp --recend ,_+ --pipe echo JOB{#}\;cat\;echo END
t 'echo foo,bar,_baz,__qux,' -kN1 --rrs --regexp --recend ,_+ --pipe echo JOB{#}\;cat\;echo END
t 'cat num_%header' --header '(%.*\n)*' --pipe -N3 echo JOB{#}\;cat
t 'cat num_%header' --header 2 --pipe -N3 echo JOB{#}\;cat
t '' --pipepart -a num30000 --block 30k wc
t '' --pipepart -a num30000 --block -3 wc
t '' --pipepart -a num30000 wc -l
t '' --pipepart -a num128 --block 1 wc -c
t '' --pipepart --recend 5 --block 10k -a num30000 md5sum
t '' --pipepart --recstart 1 --recend 0 --block 10k -a num30000 wc
t '' --pipepart -a num30000 -a num128 --block 20k wc
t '' --pipepart -a num8 --block 2 cat
t 'seq 10' --pipe -L3 'echo J; cat'
t 'seq 5' --pipe --header : -N2 'echo J; cat'
t 'seq 5' --pipe --rrs -N2 'echo J; cat; echo'
# --- others
t '' --max-line-length-allowed
t '' --number-of-cpus
t '' --number-of-cores
t '' --number-of-threads
t '' --number-of-sockets
t '' --use-sockets-instead-of-threads -j100% --dry-run echo {%} ::: 1 2 3
t '' --use-cores-instead-of-threads -j100% 'sleep 0.{}; echo {%}' ::: 3 2 1
t '' --profile nicetimeout echo ::: A B C
t '' --semaphore echo a
# === man parallel
t '' --arg-sep ,, echo {} ,, file1 file2
t '' ::: "echo file1" "echo file2"
t '' echo {1} {2} {3} ::: 6 7 ::: 4 5 ::: 1 2 3
t 'seq 6 7' -a - -a def-file echo {1} {2} {3} ::: 1 2
t 'seq 4 5' echo {1} {2} {3} :::: num8 - ::: 1 2
t '' echo ::: a b c :::+ 1 2 3 ::: X Y :::+ 11 22
t '' --colsep '-' echo {4} {3} {2} {1} ::: A-B C-D ::: e-f g-h
t '' --colsep ',' echo {1} of {2} at {3} ::: 'a,b,c' ' x , y ,z'
t '' --colsep ',' --trim n echo x{2}x ::: 'a, b ,c'
t '' --csv echo {1} of {2} ::: 'a,b'
t '' -j4 -k sleep {}\; echo {} ::: 0.2 0.1 0.4 0.3
t '' -j0 -k --lb 'echo {};sleep {};echo {}' ::: 0.1 0.3 0.2 0.4
t '' --link echo {1} {2} {3} ::: 1 2 ::: a b c ::: I II III IIII
t '' -j1 --halt now,done=50% echo ::: {1..10}
t '' -j1 --halt soon,done=2 echo ::: a b c d
t '' -j1 --halt 2 echo {}\; exit {} ::: 0 4 0
t '' -j1 --halt now,fail=2 echo {}\; exit {} ::: 0 4 0 5 6
t 'printf "a:b:c:d:e:f:g\nh:i:j:k:l:m:n\n"' -d : -N7 echo {1} {6}
t '' --header : --results foo echo {a} {b} ::: a I II ::: b III IIII
t '' --results foo echo {1} {2} ::: I II ::: III IIII
t '' --results my_{} echo ::: foo bar baz
t '' --results my_{}/ echo ::: foo bar baz
t '' --results x/{1}/{2} echo ::: a ::: b/c
t '' --results r{#}.txt 'echo {}; echo e >&2' ::: a b
t '' --results my.csv seq ::: 10 20 30
t 'seq 4' -j4 'sleep 0.{};echo -n start{};sleep 0.{};echo {}end'
t 'seq 10' -N2 echo seq:\$PARALLEL_SEQ arg1:{1} arg2:{2}
t 'seq 10' -N2 echo seq:'$'PARALLEL_SEQ arg1:{1} arg2:{2}
t 'echo test' echo {} \'"\$HOME"\'
t 'echo test' VAR=this_is_set_after_starting \; echo {} \$VAR
t '' VAR='"two  spaces  between  each  word"' echo {} \'"\$VAR"\'
t 'echo test' echo {} \\\$VAR
t 'echo test' -q echo {} \$VAR
t 'ls abc-file def-file' -q perl -ne '/^\S+\s+\S+$/ and print $ARGV,"\n"'
t 'ls abc-file' -q bash -c 'wc -c <(echo {})'
t 'echo 1,2,3' -vkd, "echo 'a{}b'"
t 'echo 1,2,3' -vkd, echo a{}b
t 'echo 1,2,3' -vkd, "echo 'a'{}'b'"
t 'echo 1,2,3' -vkd, "echo 'a'"{}"'b'"
t 'printf "abc-file\ndef-file\n"' -j1 -k -v ls
t '' --parens ,,,, echo foo is ,,s/I/O/g,, ::: FII
t 'seq 3' -j1 --process-slot-var=name echo '$name' {}
t '' -j3 --process-slot-var name 'sleep 0.{}; echo $name {} $PARALLEL_JOBSLOT' ::: 3 2 1
# profiles and $PARALLEL (GNU parallel's read_options)
CASE_ENV="XDG_CONFIG_HOME=$T/fixtures/xdg" t '' echo ::: a b
CASE_ENV="XDG_CONFIG_HOME=$T/fixtures/xdg" t '' --plain echo ::: a b
CASE_ENV="XDG_CONFIG_HOME=$T/fixtures/xdg" t '' -J tagged echo ::: a b
CASE_ENV="XDG_CONFIG_HOME=$T/fixtures/xdg" t '' --profile ./nicep echo ::: a b
CASE_ENV="XDG_CONFIG_HOME=$T/fixtures/xdg" t '' --profile nonesuch echo ::: a b
CASE_ENV="PARALLEL='--tagstring \"x y\" -k'" t '' echo ::: a b
CASE_ENV="PARALLEL='-k echo'" t '' ::: q r
CASE_ENV="XDG_CONFIG_HOME=$T/fixtures/xdg PARALLEL=--tagstring=z" t '' echo ::: a
t '' --filter '{1} < {2}+1' echo ::: {1..3} ::: {1..3}
t 'seq 1000' --pipe --tee -v wc {} ::: -w -l -c
t 'seq 1000' --pipe --tee --tag 'wc {}; echo {}' ::: -w -l -c
t 'printf "a\nb\n"' -j2 --tee --pipe 'cat; echo {}' ::: 1 2
t 'seq 5' --pipe --tee 'head -{1}; echo {2}' ::: 1 2 ::: x y
t '' --max-args 2 echo ::: a b c
t '' --max-replace-args 2 echo {2}-{1} ::: a b c d
t '' --dry-run '{} x' ::: 'a b.c'
t '' '{} | cat' ::: 'echo a b'
t '' --dry-run 'x;{}' ::: 'a b'
t '' --dry-run 'V={}' echo ::: 'a b'
# === man parallel_examples
t 'seq -w 0 99' echo rm pict{}.jpg
t 'seq -w 0 99' -X echo rm pict{}.jpg
t 'seq -w 0 99' -m echo rm
t 'printf "a.log\0b.log\0"' -0 -m echo mv {} destdir
t '' echo zcat {} '">"'{.} ::: a.gz b.gz
t 'printf "a\nb c\n"' 'echo -n {}" "; echo {}|wc -c'
t 'printf "x/y/aBc\n"' 'a={}; name=${a##*/}; echo $name'
t 'printf "AbC\n"' 'echo {} | tr "[:upper:]" "[:lower:]"'
t 'printf "abc-file\nnofile\n"' 'if [ ! -e {} ] ; then echo {}; fi'
doit() { echo Doing it for "$1"; sleep 0.1; echo Done with "$1"; }
export -f doit
t '' doit ::: 1 2 3
doubleit() { echo Doing it for "$1" "$2"; }
export -f doubleit
t '' doubleit ::: 1 2 3 ::: a b
t '' --plus echo {%_demo} ::: mycode_demo keep_demo_here
t '' --plus echo {#demo_} ::: demo_mycode keep_demo_here
t '' --plus echo {/demo_/} ::: demo_mycode remove_demo_here
t '' echo {1} {2} ::: red green blue ::: S M L XL XXL
t '' --header : echo {colour} {size} ::: colour red green blue ::: size S M L XL XXL
t '' --plus echo {choose_k} ::: A B C D ::: A B C D
t '' --plus echo 2{2choose_k} 1{1choose_k} ::: A B C D ::: A B C D
t '' --plus echo {choose_k} ::: A B C D ::: A B C D ::: A B C D
t '' --plus echo {uniq} ::: A B C  ::: A B C  ::: A B C
t '' --plus echo {1uniq}+{2uniq}+{3uniq} ::: A B C  ::: A B C  ::: A B C
t '' --plus --joblog log echo {uniq} ::: A B ::: A B
t '' echo {1} - {2} ::::+ num8 abc-file
t '' echo {1} - {2} ::: a b c :::+ b c d
t '' -k echo {1}'{=3 $_=$_%2?":":" "=}'{2}{3} ::: Ke ::: eee ::: {1..5}
t '' -q echo "\$HOME" ::: '!'
t '' echo '"$VAR"' ::: '!'
t 'printf "a\nb\n"' -k echo {} append_string
t '' -k echo ::: 0 1 ::: 0 1 ::: 0 1 ::: 0 1
t '' --link -a num8 -a abc-file echo
t '' --link echo :::: num8 abc-file
t 'printf "c\nb\na\n"' echo {} {#}.png
t '' -a table.tsv --colsep '\t' echo -o {2} -i {1}
t '' -a table.tsv --trim n --colsep '\t' echo -o {2} -i {1}
t 'seq 3' -n0 echo my_args
t 'printf "echo a\necho b\n"' -j 100
t 'printf ">a\nAC\n>b\nGT\n"' --pipe -N1 --recstart '>' --rrs 'echo J; cat'
t 'seq 10' --pipe --recend '' -k 'wc -c'
t '' --tagstring '\033[30;3{=$_=++$::color%8=}m' seq {} ::: 2
# --- edges found by hand: CRLF input, missing arguments, -d on ::: values
t 'printf "crlf\r\nline\r\n"' --trim lr echo [{}]
t 'printf "crlf\r\nline\r\n"' --colsep ' ' echo {2}:{1}
t 'printf "crlf\r\nline\r\n"' --tag echo
t 'printf "a\rb\rc\n"' --tagstring T echo
t '' -N3 echo {1} {3} ::: a b c d e
t '' -N2 echo x{}y ::: a b c
t '' -N2 echo x{.}y ::: a.1 b.2 c
t '' -N0 printf '[%s]' {} x ::: a
t '' printf '[%s]' {3} x ::: a ::: b
t '' printf '[%s]' {2} x ::: a ::: ''
t '' -d , echo [{}] ::: a,b, c ,d
t '' -d , echo [{}] ::: 'a,b' ::: x,y
t '' echo [{}] ::: "$(printf 'a\nb')"
t '' -n 0 echo x ::: a b
# === edges found while mining (each checked against GNU parallel 20221122)
t '' 'kill -TERM $$' ::: a
t '' --halt now,fail=1 'kill -9 $$' ::: a
t '' echo x{}x ::: ''
t '' --dry-run -X echo a{}b ::: 1 2 3
t 'seq 5' --dry-run --pipe -N2 cat
t '' --xargs -n 2 echo ::: a b c d e
t 'seq 6' --pipe --tag -N2 cat
t '' --tag -N2 echo ::: a b c
t '' --colsep , --header : echo {a.b} {c} ::: 'a.b,c' '1,2'
t '' --retries 2 --joblog jl 'echo {}; exit {}' ::: 0 1
t '' --timeout 0.5 --joblog jl 'sleep {}; echo {}' ::: 0.1 3
t '' --tag --tagstring '{1}' echo ::: a ::: b
t '' echo '{}{}' '{1}{1}' '{.}.{}' ::: a.b
t '' -q echo '{} {}' ::: a
t '' echo {3} ::: a ::: b
t '' echo ::: a :::: /dev/null
t '' echo :::: /dev/null ::: a
t '' echo x{1}x{2}x ::: :::
t '' --link echo x{1}x{2}x ::: a b :::
t '' -d '\t' echo ::: 'a	b'
t '' -d , echo x{}x ::: 'a,' ',' b
t '' echo x{}x ::: 'a
b'
t '' -r echo x{}x ::: '' b
t '' -d , -E b echo ::: a,b,c
t '' -u --tag echo ::: a
t '' --plus -j1 echo {0#} ::: {1..12}
t 'echo /foo, bar/, /baz, qux/,' -kN1 --regexp --recend ', ' --recstart / --pipe echo JOB{#}\;cat\;echo END
t 'printf ">a\nAC\n>b\nGT\n"' --pipe -N1 --regexp --recstart '>' 'echo J; cat'
t 'printf "a1b22c333d"' --pipe -N1 --regexp --recend '[0-9]+' 'echo J; cat; echo'
t 'seq 20' --pipe --regexp --recend '5\n' 'echo J; cat'
# --timeout N%: a job already running is killed once it passes N% of the
# median (the tutorial's line, and a quicker one)
t '' --timeout 200% 'sleep {}; echo {}' ::: 2.1 2.2 3 7 2.3
t '' --timeout 300% 'sleep {}; echo {}' ::: 0.3 0.3 0.4 20 0.3
t '' --tmpdir . echo ::: a b
export -f run_case
s0=$SECONDS
seq 1 $n | xargs -P 4 -I N bash -c 'run_case N parallel --will-cite -k'
echo "GNU parallel: $((SECONDS - s0)) s"; s0=$SECONDS
for c in $(seq 1 $n); do run_case $c "$BIN/dpool" run; compare $c; done
echo "dpool run: $((SECONDS - s0)) s"
echo "test_parallel: $n cases: $same same as GNU parallel, $refused refused (255), $fail different"
[ $fail -eq 0 ] && [ $same -ge 200 ]
