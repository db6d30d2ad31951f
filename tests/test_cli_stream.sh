#!/usr/bin/env bash
# dpool map streaming: memory ceiling on a long stream (measured: the CLI's
# ru_maxrss from wait4), --unordered and --index, the progress bar on a
# terminal (a pty) and nothing extra when piped, Ctrl-C (a real SIGINT)
# mid-job against a dpool-broker process, then a job that works.
set -u
. "$(dirname "$0")/lib.sh"
bpid=""
on_exit() { [ -n "$bpid" ] && kill -KILL $bpid 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- memory ceiling: 3,000,000 lines from a generator process ------------
# The CLI is started here and reaped with wait4: its peak resident set
# (ru_maxrss) covers the client and the embedded broker thread.
python3 - "$BIN/dpool" "$MOD" "$T" > "$T/mem" <<'EOF'
import os, subprocess, sys, time
dpool, mod, tmp = sys.argv[1:4]
n = 3000000
gen = subprocess.Popen(["seq", "1", str(n)], stdout=subprocess.PIPE)
out = open(os.path.join(tmp, "out"), "wb")
start = time.time()
cli = subprocess.Popen([dpool, "map", "-j", "2", "-m", mod, "echo"], stdin=gen.stdout, stdout=out)
gen.stdout.close()
_, status, usage = os.wait4(cli.pid, 0)
gen.wait()
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss // 1024, "%.2f" % (time.time() - start))
EOF
read rc peak secs < "$T/mem"
echo "memory: dpool map echo over 3,000,000 lines: peak RSS $peak MiB, $secs s, exit $rc"
check '[ "$rc" = 0 ]' "long stream exit $rc"
if ldd "$BIN/dpool" | grep -q libasan; then
    echo "memory: not checked in a sanitizer build (its shadow memory is not dpool's)"
else
    check '[ "$peak" -lt 64 ]' "peak RSS $peak MiB >= 64 MiB"
fi
check '[ "$(wc -l < "$T/out")" -eq 3000000 ]' "long stream: $(wc -l < "$T/out") lines"
check '[ "$(head -1 "$T/out")" = 1 ] && [ "$(tail -1 "$T/out")" = 3000000 ]' "long stream order"

# --- --index and --unordered -----------------------------------------------
printf 'a\nb\nc\n' | timeout 30 "$BIN/dpool" map -j 2 -m "$MOD" --index echo > "$T/out"
check '[ "$(cat "$T/out")" = "$(printf "0\ta\n1\tb\n2\tc")" ]' "--index: $(cat "$T/out")"
# random task times 0-3 ms: every index exactly once, with its own result
python3 -c 'import random; random.seed(3); print("\n".join(str(random.randint(0, 3)) for _ in range(2000)))' > "$T/in"
timeout 60 "$BIN/dpool" map -j 3 -m "$MOD" --unordered --index --chunksize 1 sleep_ms < "$T/in" > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 0 ] && [ ! -s "$T/err" ]' "--unordered rc=$rc: $(head -3 "$T/err")"
check '[ "$(wc -l < "$T/out")" -eq 2000 ]' "--unordered: $(wc -l < "$T/out") lines"
check '[ "$(cut -f1 "$T/out" | sort -n | uniq | wc -l)" -eq 2000 ]' "--unordered: an index missing or twice"
check '[ "$(cut -f1 "$T/out" | sort -n | head -1)" = 0 ] && [ "$(cut -f1 "$T/out" | sort -n | tail -1)" = 1999 ]' "--unordered index range"
sort -n -k1,1 "$T/out" | cut -f2 > "$T/sorted"
check 'cmp -s "$T/sorted" "$T/in"' "--unordered: a result differs from its item"
check '! cut -f1 "$T/out" | cmp -s - <(seq 0 1999)' "--unordered output was in input order (not streamed as results came)"
# an ordered run of the same is in order
timeout 60 "$BIN/dpool" map -j 3 -m "$MOD" --index --chunksize 1 sleep_ms < "$T/in" > "$T/out"
check 'cut -f1 "$T/out" | cmp -s - <(seq 0 1999)' "ordered --index not in order"

# --- progress ----------------------------------------------------------------
# piped: nothing extra on stderr
seq 1 20000 | timeout 30 "$BIN/dpool" map -j 2 -m "$MOD" square > /dev/null 2> "$T/err"
check '[ ! -s "$T/err" ]' "piped run printed on stderr: $(head -c 200 "$T/err")"
# a terminal: the bar (rate, ETA) on stderr by default; not with --no-progress
cat > "$T/on_tty.py" <<'EOF'
import os, pty, subprocess, sys
m, s = pty.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=s)
os.close(s)
p.stdin.write(b"1\n" * 1500)
p.stdin.close()
data = b""
while True:
    try:
        chunk = os.read(m, 4096)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
print(p.wait())
sys.stdout.write(data.decode("utf-8", "replace"))
EOF
timeout 60 python3 "$T/on_tty.py" "$BIN/dpool" map -j 2 -m "$MOD" sleep_ms > "$T/tty"
check '[ "$(head -1 "$T/tty")" = 0 ]' "progress run exit $(head -1 "$T/tty")"
check 'grep -q "100%" "$T/tty" && grep -q "/s" "$T/tty" && grep -q "1500" "$T/tty"' "no progress bar on a terminal: $(tail -c 300 "$T/tty")"
check 'grep -q "ETA\|reading input" "$T/tty"' "no ETA while running: $(tail -c 300 "$T/tty")"
timeout 60 python3 "$T/on_tty.py" "$BIN/dpool" map -j 2 -m "$MOD" --no-progress sleep_ms > "$T/tty"
check '[ "$(wc -c < "$T/tty")" -le 2 ]' "--no-progress printed: $(tail -c 200 "$T/tty")"
# --progress forced on a file
seq 1 2000 | timeout 30 "$BIN/dpool" map -j 2 -m "$MOD" --progress echo > /dev/null 2> "$T/err"
check 'grep -q "100%" "$T/err"' "--progress on a file: $(head -c 200 "$T/err")"

# --- a closed pipe stops the job early ---------------------------------------
start=$(date +%s%N)
seq 1 20000000 | timeout 60 "$BIN/dpool" map -j 2 -m "$MOD" echo 2> /dev/null | head -1 > "$T/out"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
check '[ "$(cat "$T/out")" = 1 ] && [ $elapsed -lt 20000 ]' "| head -1 took $elapsed ms"

# --- Ctrl-C mid-job against a broker, then a job that works -------------------
cport=$(free_port); wport=$(free_port)
"$BIN/dpool-broker" -c "tcp://127.0.0.1:$cport" -w "tcp://127.0.0.1:$wport" -j 2 -m "$MOD" 2> "$T/broker.err" &
bpid=$!
kids=""
for i in $(seq 1 200); do
    kids=$(pgrep -P $bpid | tr '\n' ' ')
    [ "$(echo $kids | wc -w)" -eq 2 ] && break
    sleep 0.05
done
check '[ "$(echo $kids | wc -w)" -eq 2 ]' "broker started 2 workers ($kids)"
# workers' CPU time (utime + stime, ticks)
cpu() { local t=0; for k in $kids; do t=$((t + $(awk '{ print $14 + $15 }' /proc/$k/stat 2>/dev/null || echo 0))); done; echo $t; }
# 100,000 items of 2 ms CPU each: minutes of work
yes 2000 | head -100000 > "$T/in"
"$BIN/dpool" map -b "tcp://127.0.0.1:$cport" spin_us < "$T/in" > "$T/out" 2> "$T/err" &
cpid=$!
for i in $(seq 1 200); do [ "$(wc -l < "$T/out")" -ge 50 ] && break; sleep 0.05; done
check '[ "$(wc -l < "$T/out")" -ge 50 ]' "the job did not start: $(cat "$T/err")"
start=$(date +%s%N)
kill -INT $cpid
for i in $(seq 1 100); do kill -0 $cpid 2>/dev/null || break; sleep 0.05; done
wait $cpid; rc=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
echo "Ctrl-C: exit $rc after $elapsed ms, $(wc -l < "$T/out") results printed"
check '[ $rc -eq 130 ]' "SIGINT exit status $rc (want 130): $(cat "$T/err")"
check '[ $elapsed -lt 3000 ]' "SIGINT took $elapsed ms"
check 'grep -q "interrupted" "$T/err"' "no interrupted message: $(cat "$T/err")"
# nothing more dispatched: the workers go idle (CPU time stops growing)
sleep 0.5
c1=$(cpu); sleep 1; c2=$(cpu)
echo "workers' CPU after the cancel: $((c2 - c1)) ticks in 1 s"
check '[ $((c2 - c1)) -le 20 ]' "workers still busy after Ctrl-C: $((c2 - c1)) ticks in 1 s"
check 'kill -0 $bpid 2>/dev/null' "broker died"
# the next job works, at full speed
seq 1 5000 | timeout 30 "$BIN/dpool" map -b "tcp://127.0.0.1:$cport" square > "$T/out" 2> "$T/err"; rc=$?
awk '{ print $1 * $1 }' <(seq 1 5000) > "$T/want"
check '[ $rc -eq 0 ] && cmp -s "$T/out" "$T/want"' "map after Ctrl-C rc=$rc: $(head -3 "$T/err")"
# and Ctrl-C while waiting on input (a silent pipe) exits just as cleanly
mkfifo "$T/fifo"
"$BIN/dpool" map -b "tcp://127.0.0.1:$cport" echo < "$T/fifo" > "$T/out" 2> "$T/err" &
cpid=$!
exec 7> "$T/fifo"
echo hello >&7
for i in $(seq 1 100); do [ -s "$T/out" ] && break; sleep 0.05; done
kill -INT $cpid
for i in $(seq 1 100); do kill -0 $cpid 2>/dev/null || break; sleep 0.05; done
wait $cpid; rc=$?
exec 7>&-
check '[ $rc -eq 130 ] && [ "$(cat "$T/out")" = hello ]' "SIGINT while reading input: exit $rc, out $(cat "$T/out")"
kill -TERM $bpid
wait $bpid; rc=$?
bpid=""
check '[ $rc -eq 0 ]' "broker exit status $rc"

finish test_cli_stream
