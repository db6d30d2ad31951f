#!/usr/bin/env bash
# CurveZMQ on the broker's endpoints (issue 9 parts 1 and 2): keys and
# allow-lists per role, the broker authenticated by its public key, the
# server directory that needs no options, the refusal to bind open without
# CURVE, and the exec task only where it was asked for. Real processes on
# 127.0.0.1 only (the 0.0.0.0 binds are refused before anything listens).
set -u
BIN=${DPOOL_BIN:-build/bin}
LIB=${DPOOL_LIB:-build/lib}
MOD="$LIB/libdpool_testtasks.so"
T=$(mktemp -d)
PIDS=()
cleanup () {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
port () { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait until FILE has at least N lines matching RE (deadline in s)
wait_lines () {
    local file=$1 re=$2 n=$3 deadline=$((SECONDS + ${4:-20}))
    while [ "$(grep -c -- "$re" "$file" 2>/dev/null)" -lt "$n" ]; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.1
    done
}
# no server directory unless a test asks for one
export DPOOL_SERVER_DIR="$T/no-server-dir"
unset DPOOL_BROKER

# --- keys -----------------------------------------------------------------
for k in broker client worker stranger fake; do
    "$BIN/dpool" keygen "$T/$k" || bad "keygen $k"
done
check '[ -s "$T/broker" ] && [ -s "$T/broker_secret" ]' "keygen wrote PATH and PATH_secret"
check '[ "$(stat -c %a "$T/broker_secret")" = 600 ]' "secret key file mode $(stat -c %a "$T/broker_secret")"
check 'grep -q public-key "$T/broker" && ! grep -q secret-key "$T/broker"' "public file holds only the public key"
"$BIN/dpool" keygen "$T/broker" 2> "$T/err"; rc=$?
check '[ $rc -ne 0 ] && grep -q "not overwritten" "$T/err"' "keygen refuses to overwrite (rc $rc)"
mkdir -p "$T/allow-clients" "$T/allow-workers" "$T/fake-allow"
cp "$T/client" "$T/allow-clients/"
cp "$T/worker" "$T/allow-workers/"
cp "$T/worker" "$T/fake-allow/"

# --- a broker with explicit keys, a remote worker with its key -------------
cp=$(port); wp=$(port)
CE="tcp://127.0.0.1:$cp" WE="tcp://127.0.0.1:$wp"
"$BIN/dpool-broker" -v -j none -c "$CE" -w "$WE" --curve-secret "$T/broker_secret" \
    --allow-clients "$T/allow-clients" --allow-workers "$T/allow-workers" > "$T/broker.log" 2>&1 &
PIDS+=($!)
"$BIN/dpool-worker" --connect "$WE" -m "$MOD" --curve-secret "$T/worker_secret" \
    --broker-key "$T/broker" > "$T/worker.log" 2>&1 &
PIDS+=($!)
check 'wait_lines "$T/broker.log" "worker .* ready" 1' "the listed worker registers: $(cat "$T/broker.log")"

seq 1 3000 > "$T/in"
awk '{ print $1 * $1 }' "$T/in" > "$T/want"
client=(--curve-secret "$T/client_secret" --broker-key "$T/broker")
timeout 60 "$BIN/dpool" map -b "$CE" "${client[@]}" square < "$T/in" > "$T/out"; rc=$?
check '[ $rc -eq 0 ] && cmp -s "$T/out" "$T/want"' "map over CURVE exact (rc $rc)"

# wrong keys: refused, with a clear error, in a few seconds
try_client () {     # SECRET BROKERKEY -> rc, stderr in $T/err, seconds in $secs
    local start=$SECONDS
    echo 4 | timeout 20 "$BIN/dpool" map -b "$CE" --curve-secret "$1" --broker-key "$2" square \
        > "$T/out" 2> "$T/err"
    rc=$? secs=$((SECONDS - start))
}
try_client "$T/stranger_secret" "$T/broker"
check '[ $rc -eq 2 ] && [ ! -s "$T/out" ] && grep -q "refused our key" "$T/err"' \
    "unknown client key refused (rc $rc): $(cat "$T/err")"
check '[ $secs -le 5 ]' "unknown key refused in ${secs}s"
try_client "$T/worker_secret" "$T/broker"
check '[ $rc -eq 2 ] && [ ! -s "$T/out" ] && grep -q "refused our key" "$T/err"' \
    "worker key as a client refused (rc $rc): $(cat "$T/err")"
try_client "$T/client_secret" "$T/fake"
check '[ $rc -eq 2 ] && [ ! -s "$T/out" ]' "wrong broker public key: no session (rc $rc): $(cat "$T/err")"
start=$SECONDS
echo 4 | timeout 20 "$BIN/dpool" map -b "$CE" square > "$T/out" 2> "$T/err"; rc=$?
secs=$((SECONDS - start))
check '[ $rc -eq 2 ] && grep -q "CURVE" "$T/err" && [ $secs -le 5 ]' \
    "plaintext client fails in ${secs}s with a clear error (rc $rc): $(cat "$T/err")"
echo 4 | timeout 20 "$BIN/dpool" map -b "$CE" --curve-secret "$T/client_secret" square \
    > /dev/null 2> "$T/err"; rc=$?
check '[ $rc -eq 64 ]' "--curve-secret without --broker-key is a usage error (rc $rc)"
"$BIN/dpool" status -b "$CE" "${client[@]}" > "$T/status" 2>&1; rc=$?
check '[ $rc -eq 0 ] && grep -q "items done 3000" "$T/status"' "dpool status over CURVE (rc $rc)"

# a client key cannot register as a worker: it never becomes ready
"$BIN/dpool-worker" --connect "$WE" -m "$MOD" --curve-secret "$T/client_secret" \
    --broker-key "$T/broker" > "$T/rogue.log" 2>&1 &
rogue=$!
PIDS+=($rogue)
"$BIN/dpool-worker" --connect "$WE" -m "$MOD" --curve-secret "$T/stranger_secret" \
    --broker-key "$T/broker" > "$T/rogue2.log" 2>&1 &
PIDS+=($!)
# a second listed worker is the witness that 3 s were enough to register
"$BIN/dpool-worker" --connect "$WE" -m "$MOD" --curve-secret "$T/worker_secret" \
    --broker-key "$T/broker" > "$T/worker2.log" 2>&1 &
PIDS+=($!)
check 'wait_lines "$T/broker.log" "worker .* ready" 2' "a second listed worker registers"
sleep 2     # the window in which the rogues would have registered too
check '[ "$(grep -c "worker .* ready" "$T/broker.log")" -eq 2 ]' \
    "client key and unknown key as workers refused: $(grep ready "$T/broker.log")"
check 'kill -0 $rogue' "the refused worker keeps trying, it did not crash"

# --- a fake broker (unknown key) gets no worker ----------------------------
fcp=$(port); fwp=$(port)
"$BIN/dpool-broker" -v -j none -c "tcp://127.0.0.1:$fcp" -w "tcp://127.0.0.1:$fwp" \
    --curve-secret "$T/fake_secret" --allow-clients "$T/allow-clients" \
    --allow-workers "$T/fake-allow" > "$T/fake.log" 2>&1 &
PIDS+=($!)
check 'wait_lines "$T/fake.log" "workers on" 1' "fake broker started"
"$BIN/dpool-worker" --connect "tcp://127.0.0.1:$fwp" -m "$MOD" --curve-secret "$T/worker_secret" \
    --broker-key "$T/broker" > "$T/victim.log" 2>&1 &
PIDS+=($!)
sleep 3     # the honest broker's workers register in well under that
check '! grep -q "ready" "$T/fake.log"' "a worker never registers with a fake broker: $(cat "$T/fake.log")"

# --- bad key options are refused at start -----------------------------------
cp "$T/broker" "$T/public-only"
timeout 10 "$BIN/dpool-broker" -j none -c "tcp://127.0.0.1:$(port)" -w "tcp://127.0.0.1:$(port)" \
    --curve-secret "$T/public-only" --allow-clients "$T/allow-clients" --allow-workers "$T/allow-workers" \
    > /dev/null 2> "$T/err"; rc=$?
check '[ $rc -ne 0 ] && grep -q "secret" "$T/err"' "a public key file as --curve-secret refused (rc $rc): $(cat "$T/err")"
timeout 10 "$BIN/dpool-broker" -j none -c "tcp://127.0.0.1:$(port)" -w "tcp://127.0.0.1:$(port)" \
    --curve-secret "$T/broker_secret" --allow-clients "$T/none" --allow-workers "$T/allow-workers" \
    > /dev/null 2> "$T/err"; rc=$?
check '[ $rc -ne 0 ] && grep -q "allow-list" "$T/err"' "a missing allow-list refused (rc $rc): $(cat "$T/err")"
"$BIN/dpool-broker" -j none --curve-secret "$T/broker_secret" > /dev/null 2> "$T/err"; rc=$?
check '[ $rc -eq 64 ]' "--curve-secret without allow-lists is a usage error (rc $rc)"

# the start-up self-check: without a ZAP handler libzmq would let any key in,
# and the broker must refuse to run
timeout 20 env DPOOL_TEST_NO_ZAP=1 "$BIN/dpool-broker" -j none -c "tcp://127.0.0.1:$(port)" \
    -w "tcp://127.0.0.1:$(port)" --curve-secret "$T/broker_secret" \
    --allow-clients "$T/allow-clients" --allow-workers "$T/allow-workers" > /dev/null 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ] && grep -q "let an unknown key in" "$T/err"' \
    "no ZAP handler: the self-check refuses to run (rc $rc): $(cat "$T/err")"

# --- no CURVE: only loopback and ipc ----------------------------------------
for ep in "tcp://0.0.0.0:$(port)" "tcp://*:$(port)"; do
    timeout 10 "$BIN/dpool-broker" --no-curve -j none -c "$ep" -w "tcp://127.0.0.1:$(port)" \
        > /dev/null 2> "$T/err"; rc=$?
    check '[ $rc -eq 1 ] && grep -q "refusing to bind" "$T/err"' "plaintext bind of $ep refused (rc $rc): $(cat "$T/err")"
done
timeout 10 "$BIN/dpool-broker" --no-curve -j none -c "tcp://127.0.0.1:$(port)" -w "tcp://0.0.0.0:$(port)" \
    > /dev/null 2> "$T/err"; rc=$?
check '[ $rc -eq 1 ] && grep -q "refusing to bind" "$T/err"' "plaintext worker bind of 0.0.0.0 refused (rc $rc)"
pcp=$(port)
"$BIN/dpool-broker" --no-curve -v -j 1 -m "$MOD" -c "tcp://127.0.0.1:$pcp" -w "ipc://$T/w.ipc" \
    > "$T/plain.log" 2>&1 &
PIDS+=($!)
check 'wait_lines "$T/plain.log" "worker .* ready" 1' "plaintext on loopback and ipc starts"
echo 7 | timeout 20 "$BIN/dpool" map -b "tcp://127.0.0.1:$pcp" square > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 0 ] && [ "$(cat "$T/out")" = 49 ]' "plaintext map on loopback (rc $rc)"
echo 7 | timeout 20 "$BIN/dpool" map -b "tcp://127.0.0.1:$pcp" "${client[@]}" square > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 2 ] && grep -Eq "without CURVE|does not use CURVE" "$T/err"' "CURVE client against a plaintext broker: clear error (rc $rc): $(cat "$T/err")"

# --- secure with no typing: the server directory ---------------------------
export DPOOL_SERVER_DIR="$T/home/.dpool/server"
scp=$(port); swp=$(port)
"$BIN/dpool-broker" -v -j 1 -m "$MOD" -c "tcp://127.0.0.1:$scp" -w "tcp://127.0.0.1:$swp" \
    > "$T/sd.log" 2>&1 &
sd_broker=$!
PIDS+=($sd_broker)
check 'wait_lines "$T/sd.log" "worker .* ready" 1' "server-dir broker starts: $(cat "$T/sd.log")"
check '[ "$(stat -c %a "$DPOOL_SERVER_DIR")" = 700 ]' "server directory mode 700"
for f in broker broker_secret client client_secret worker worker_secret endpoints \
         allow-clients/client allow-workers/worker; do
    check '[ -s "$DPOOL_SERVER_DIR/$f" ]' "server directory has $f"
done
"$BIN/dpool-worker" -m "$MOD" > "$T/sdw.log" 2>&1 &       # no flags at all
PIDS+=($!)
check 'wait_lines "$T/sd.log" "worker .* ready" 2' "a worker with no flags registers over CURVE"
check 'grep -q "CURVE on" "$T/sd.log"' "server-dir broker runs CURVE"
timeout 60 "$BIN/dpool" map square < "$T/in" > "$T/out"; rc=$?            # no flags
check '[ $rc -eq 0 ] && cmp -s "$T/out" "$T/want"' "dpool map with no flags: exact over CURVE (rc $rc)"
timeout 60 "$BIN/dpool" map -b "tcp://127.0.0.1:$scp" square < "$T/in" > "$T/out"; rc=$?
check '[ $rc -eq 0 ] && cmp -s "$T/out" "$T/want"' "dpool map -b with the server dir's keys (rc $rc)"
echo 3 | DPOOL_SERVER_DIR="$T/elsewhere" timeout 20 "$BIN/dpool" map -b "tcp://127.0.0.1:$scp" square \
    > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 2 ] && grep -q "CURVE" "$T/err"' "without the directory: refused, clear error (rc $rc): $(cat "$T/err")"

# --- exec only where it was asked for --------------------------------------
echo hi | timeout 30 "$BIN/dpool" run -b "tcp://127.0.0.1:$scp" -- echo {} > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -ne 0 ] && [ ! -s "$T/out" ]' "no exec on a broker without --allow-exec (rc $rc): $(cat "$T/err")"
echo hi | timeout 30 "$BIN/dpool" run -j 1 -- echo {} > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 0 ] && [ "$(cat "$T/out")" = hi ]' "the embedded pool of dpool run has exec (rc $rc)"
kill $sd_broker; wait $sd_broker 2>/dev/null
check '[ ! -e "$DPOOL_SERVER_DIR/endpoints" ]' "a stopped broker takes its endpoints out"
"$BIN/dpool-broker" -v --allow-exec -j 1 -c "tcp://127.0.0.1:$scp" -w "tcp://127.0.0.1:$swp" \
    > "$T/sd2.log" 2>&1 &
PIDS+=($!)
check 'wait_lines "$T/sd2.log" "worker .* ready" 1' "broker with --allow-exec restarts on the same keys"
echo hi | timeout 30 "$BIN/dpool" run -b "tcp://127.0.0.1:$scp" -- echo {} > "$T/out" 2> "$T/err"; rc=$?
check '[ $rc -eq 0 ] && [ "$(cat "$T/out")" = hi ]' "exec on a broker with --allow-exec (rc $rc): $(cat "$T/err")"

echo "test_curve: $pass passed, $fail failed"
[ $fail -eq 0 ]
