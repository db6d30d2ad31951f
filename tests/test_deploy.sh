#!/usr/bin/env bash
# deploy/slurm/dpool.sbatch, really run: Slurm's variables are faked and a
# fake `srun` on PATH runs the step's tasks on this machine, so the script
# starts a real broker, real workers, runs a real `dpool map` / `dpool run`
# and tears everything down. First on loopback; then (as root, with network
# namespaces) on two emulated nodes: the script and the broker on node1, the
# workers spread over node1 and node2, the broker address found from the node
# name as on a cluster. Plus `bash -n` and shellcheck (where installed).
# shellcheck disable=SC2016,SC2034  # check() evals its single-quoted condition
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
BIN=$(cd "${DPOOL_BIN:-$SRC/build/bin}" 2>/dev/null && pwd) || BIN=${DPOOL_BIN:-build/bin}
SB="$SRC/deploy/slurm/dpool.sbatch"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check () { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }

# --- static checks ------------------------------------------------------------
check 'bash -n "$SB"' "bash -n dpool.sbatch"
#   sbatch reads #SBATCH lines only before the first command
first_cmd=$(grep -nvE '^[[:space:]]*(#|$)' "$SB" | head -1 | cut -d: -f1)
last_sbatch=$(grep -n '^#SBATCH' "$SB" | tail -1 | cut -d: -f1)
check '[ "$last_sbatch" -lt "$first_cmd" ]' "#SBATCH lines all before the first command"
if command -v shellcheck >/dev/null 2>&1; then
    check 'shellcheck -S warning "$SB" "$HERE/netns.sh" "$SRC/deploy/setup.sh" >&2' "shellcheck"
else
    echo "test_deploy: shellcheck not installed, skipping that check" >&2
fi

# --- a fake srun: the step's tasks as local processes ---------------------------
mkdir -p "$T/bin"
cat > "$T/bin/srun" <<'EOF'
#!/usr/bin/env bash
# fake srun: --ntasks=N tasks of the command, here (or spread round-robin over
# the network namespaces in FAKE_SRUN_NODES); SIGTERM stops them all.
echo "srun $*" >> "$FAKE_SRUN_LOG"
ntasks=${SLURM_NTASKS:-1}
while [ $# -gt 0 ]; do
    case $1 in
        --ntasks=*) ntasks=${1#*=} ;;
        --*=*|--kill-on-bad-exit) ;;
        *) break ;;
    esac
    shift
done
read -r -a nodes <<< "${FAKE_SRUN_NODES:-}"
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait; exit 0' TERM INT
for (( i = 0; i < ntasks; i++ )); do
    if [ ${#nodes[@]} -gt 0 ]; then
        SLURM_PROCID=$i ip netns exec "${nodes[i % ${#nodes[@]}]}" "$@" &
    else
        SLURM_PROCID=$i "$@" &
    fi
    pids+=($!)
done
wait
EOF
chmod +x "$T/bin/srun"
export FAKE_SRUN_LOG="$T/srun.log"

free_port () {  # two free consecutive ports on loopback, below the ephemeral range
    local p used
    used=$(ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u)
    for _ in $(seq 1 100); do
        p=$(( 21000 + RANDOM % 10000 ))
        grep -qx -e "$p" -e "$((p + 1))" <<< "$used" || { echo $p; return; }
    done
    echo 31000
}
CP=$(free_port) WP=$((CP + 1))
sbatch_env=(env PATH="$T/bin:$PATH" DPOOL_BIN="$BIN" SLURM_JOB_ID=4242 SLURM_JOB_NUM_NODES=2
            SLURM_NTASKS=3 SLURMD_NODENAME=fakenode DPOOL_ADDR=127.0.0.1
            DPOOL_CLIENT_PORT="$CP" DPOOL_WORKER_PORT="$WP" DPOOL_TASK_WAIT=10000)
leftovers () { pgrep -f -- "tcp://$1" | tr '\n' ' '; }
seq 1 1000 | awk '{ print $1 * $1 }' > "$T/want.txt"

# --- 1. loopback: dpool map as arguments ------------------------------------
: > "$FAKE_SRUN_LOG"
"${sbatch_env[@]}" bash "$SB" bash -c '
    seq 1 1000 | dpool map square
    for i in $(seq 1 50); do     # all 3 srun tasks are workers of this broker
        [ "$(pgrep -fxc "dpool-worker --connect tcp://127.0.0.1:'"$WP"' -j 1 -m testtasks --allow-exec")" -eq 3 ] && break
        sleep 0.1
    done
    pgrep -fxc "dpool-worker --connect tcp://127.0.0.1:'"$WP"' -j 1 -m testtasks --allow-exec" > "'"$T"'/nworkers"
    echo "$DPOOL_BROKER" > "'"$T"'/broker_env"' > "$T/out1.txt" 2> "$T/err1.txt"
rc=$?
check '[ $rc -eq 0 ]' "sbatch script with a dpool map: status $rc: $(cat "$T/err1.txt")"
check 'cmp -s "$T/out1.txt" "$T/want.txt"' "1000 squares in order ($(wc -l < "$T/out1.txt") lines)"
check '[ "$(cat "$T/broker_env" 2>/dev/null)" = "tcp://127.0.0.1:$CP" ]' "the command gets DPOOL_BROKER"
check '[ "$(cat "$T/nworkers" 2>/dev/null)" = 3 ]' "one worker node per Slurm task: $(cat "$T/nworkers" 2>/dev/null)"
check 'grep -q -- "--nodes=2 --ntasks=3 " "$FAKE_SRUN_LOG"' "srun spans the allocation: $(cat "$FAKE_SRUN_LOG")"
check 'grep -q -- " dpool-worker --connect tcp://127.0.0.1:$WP -j 1 -m testtasks" "$FAKE_SRUN_LOG"' "srun runs the worker nodes, -j 1 without --cpus-per-task"
sleep 0.2
check '[ -z "$(leftovers "127.0.0.1:$WP")" ]' "no broker or worker left: $(leftovers "127.0.0.1:$WP")"

# --- 2. DPOOL_COMMAND, dpool run, no modules, exit status passed on -----------
: > "$FAKE_SRUN_LOG"
"${sbatch_env[@]}" SLURM_NTASKS=2 DPOOL_MODULES="" DPOOL_WORKER_JOBS=2 \
    DPOOL_COMMAND='printf "a\nb c\n" | dpool run -- echo x{}; exit 3' \
    bash "$SB" > "$T/out2.txt" 2> "$T/err2.txt"
rc=$?
check '[ $rc -eq 3 ]' "the command's exit status is the script's: $rc"
check '[ "$(cat "$T/out2.txt")" = "$(printf "xa\nxb c")" ]' "dpool run through DPOOL_COMMAND: $(cat "$T/out2.txt" "$T/err2.txt")"
check '! grep -q -- " -m " "$FAKE_SRUN_LOG"' "DPOOL_MODULES empty: no -m"
check 'grep -q -- "dpool-worker --connect tcp://127.0.0.1:$WP -j 2 --allow-exec$" "$FAKE_SRUN_LOG"' "DPOOL_WORKER_JOBS=2: -j 2: $(cat "$FAKE_SRUN_LOG")"
sleep 0.2
check '[ -z "$(leftovers "127.0.0.1:$WP")" ]' "no broker or worker left: $(leftovers "127.0.0.1:$WP")"

# --- 3. scancel: SIGTERM to the script mid-command ------------------------------
"${sbatch_env[@]}" bash "$SB" sleep "60.$$" > /dev/null 2> "$T/err3.txt" &
job=$!
for _ in $(seq 1 100); do
    [ "$(pgrep -fxc "dpool-worker --connect tcp://127.0.0.1:$WP -j 1 -m testtasks --allow-exec")" -eq 3 ] && break
    sleep 0.1
done
check '[ "$(pgrep -fxc "dpool-worker --connect tcp://127.0.0.1:$WP -j 1 -m testtasks --allow-exec")" -eq 3 ]' "workers up before the cancel"
t0=$(date +%s%N)
kill -TERM $job
wait $job
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check '[ $rc -eq 143 ]' "cancelled script exits 143: $rc: $(cat "$T/err3.txt")"
check '[ $ms -lt 5000 ]' "cancel handled at once: ${ms} ms"
check '[ -z "$(leftovers "127.0.0.1:$WP")" ] && ! pgrep -fx "sleep 60.$$" >/dev/null' \
      "cancel leaves nothing running: $(leftovers "127.0.0.1:$WP")"

# --- 4. errors --------------------------------------------------------------------
: > "$FAKE_SRUN_LOG"
#   192.0.2.1 (TEST-NET-1) is no address of this machine: bind fails, no packet sent
"${sbatch_env[@]}" DPOOL_ADDR=192.0.2.1 timeout 60 bash "$SB" true > /dev/null 2> "$T/err4.txt"
rc=$?
check '[ $rc -eq 1 ] && grep -q "broker did not start" "$T/err4.txt"' "broker that cannot bind: status $rc: $(cat "$T/err4.txt")"
check '[ ! -s "$FAKE_SRUN_LOG" ]' "no workers started without a broker"
"${sbatch_env[@]}" bash "$SB" > /dev/null 2> "$T/err5.txt"
rc=$?
check '[ $rc -eq 1 ] && grep -q "no command" "$T/err5.txt"' "no command: status $rc"

# --- 5. two emulated nodes in network namespaces ------------------------------
# shellcheck source=tests/netns.sh
source "$HERE/netns.sh"
netns_setup node1 node2; rc=$?
if [ $rc -eq 77 ]; then
    echo "test_deploy: two-node part skipped (see above)" >&2
elif check '[ $rc -eq 0 ]' "netns_setup: $rc"; then
    #   node names resolve to the nodes' addresses on both nodes, as on a cluster
    ns_hosts node1 && ns_hosts node2
    : > "$FAKE_SRUN_LOG"
    ns_exec node1 env PATH="$T/bin:$PATH" DPOOL_BIN="$BIN" SLURM_JOB_ID=77 \
        SLURM_JOB_NUM_NODES=2 SLURM_NTASKS=4 SLURM_CPUS_PER_TASK=2 SLURMD_NODENAME=node1 \
        DPOOL_TASK_WAIT=10000 \
        FAKE_SRUN_NODES="$(ns_name node1) $(ns_name node2)" \
        bash "$SB" bash -c '
            seq 1 1000 | dpool map square > "$0/out6.txt"
            #   dpool-worker processes in the two nodes (namespaces $1, $2),
            #   counted before exec starts each worker its fork server (a
            #   worker being restarted is missing for a moment: 10 s at most)
            for i in $(seq 1 100); do
                for p in $(pgrep -x dpool-worker); do readlink "/proc/$p/ns/net"; done |
                    grep -cx -e "net:\[$1\]" -e "net:\[$2\]" > "$0/nprocs"
                [ "$(cat "$0/nprocs")" -eq 12 ] && break
                sleep 0.1
            done
            #   where do the items run? each answers with its node address
            seq 1 200 | dpool run -- "sleep 0.02; ip -o -4 addr show dev eth0; : {}" \
                | awk "{ print \$4 }" | sort | uniq -c > "$0/where.txt"' "$T" \
            "$(stat -L -c %i "/run/netns/$(ns_name node1)")" "$(stat -L -c %i "/run/netns/$(ns_name node2)")" \
        > /dev/null 2> "$T/err6.txt"
    rc=$?
    check '[ $rc -eq 0 ]' "on two nodes: status $rc: $(cat "$T/err6.txt")"
    check 'grep -q "broker tcp://10.251.0.1:20154, workers tcp://10.251.0.1:20155" "$T/err6.txt"' \
          "broker bound to node1's address, ports from the job id: $(head -1 "$T/err6.txt")"
    check 'cmp -s "$T/out6.txt" "$T/want.txt"' "1000 squares in order on two nodes"
    check 'grep -q -- "--ntasks=4 --cpus-per-task=2 .* -j 2 -m testtasks --allow-exec$" "$FAKE_SRUN_LOG"' \
          "a node per task with the task's CPUs: $(cat "$FAKE_SRUN_LOG")"
    check '[ "$(cat "$T/nprocs")" -eq 12 ]' "4 nodes of 2 processes, 12 dpool-workers in all: $(cat "$T/nprocs")"
    check 'grep -q "10.251.0.1/24" "$T/where.txt" && grep -q "10.251.0.2/24" "$T/where.txt"' \
          "items ran on both nodes: $(tr '\n' ' ' < "$T/where.txt")"
    check '[ "$(awk "{ s += \$1 } END { print s }" "$T/where.txt")" = 200 ]' "200 dpool run results"
    check '[ -z "$(ns_pids node1)$(ns_pids node2)" ]' "nothing left running on the nodes"
    netns_teardown
fi

# --- 6. deploy/k8s: consistent manifests (no cluster here: structure only) -------
K8S="$SRC/deploy/k8s/dpool.yaml"
if [ -f "$K8S" ] && /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    /usr/bin/python3 - "$K8S" "$SRC/deploy/Dockerfile" > "$T/k8s.txt" 2>&1 <<'EOF'
import re, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
uid = int(re.search(r"--uid (\d+)", open(sys.argv[2]).read()).group(1))
objs = {(d["kind"], d["metadata"]["name"]): d for d in docs}
def ok(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
ok(sorted(objs) == [("Deployment", "dpool-broker"), ("Deployment", "dpool-worker"),
                    ("Service", "dpool-broker")], "objects: %s" % sorted(objs))
svc = objs[("Service", "dpool-broker")]
b = objs[("Deployment", "dpool-broker")]
w = objs[("Deployment", "dpool-worker")]
ports = {p["port"] for p in svc["spec"]["ports"]}
ok(ports == {5555, 5556}, "service ports 5555, 5556: %s" % ports)
labels = lambda d: d["spec"]["template"]["metadata"]["labels"]
ok(all(labels(b).get(k) == v for k, v in svc["spec"]["selector"].items()), "service selects the broker pod")
for d in (b, w):
    n = d["metadata"]["name"]
    ok(d["spec"]["selector"]["matchLabels"].items() <= labels(d).items(), n + ": selector matches its pods")
    sc = d["spec"]["template"]["spec"]["securityContext"]
    ok(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == uid, n + ": non-root, uid %d as in the image" % uid)
    ok(d["spec"]["template"]["spec"]["containers"][0]["image"] == "dpool:latest", n + ": image dpool:latest")
ok(b["spec"]["replicas"] == 1 and b["spec"]["strategy"]["type"] == "Recreate", "one broker, never two at once")
bc = " ".join(b["spec"]["template"]["spec"]["containers"][0]["command"])
ok("--clients tcp://0.0.0.0:5555" in bc and "--workers tcp://0.0.0.0:5556" in bc, "broker binds the pod's addresses: " + bc)
wc = " ".join(w["spec"]["template"]["spec"]["containers"][0]["command"])
ok("dpool-worker --connect tcp://%s:5556" % svc["metadata"]["name"] in wc, "workers connect to the service: " + wc)
ok("--jobs" in wc, "workers are nodes (--jobs)")
#   CURVE: the key options name files that the Secret's items mount
def mounts(d):
    spec = d["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    out = {}
    for m in spec["containers"][0].get("volumeMounts", []):
        for it in vols.get(m["name"], {}).get("secret", {}).get("items", []):
            out[m["mountPath"] + "/" + it["path"]] = it["key"]
    return out
def flag(cmd, name):
    m = re.search(name + r" (\S+)", cmd)
    return m.group(1) if m else "-"
bm, wm = mounts(b), mounts(w)
ok("--insecure" not in bc and "--no-curve" not in bc, "broker runs CURVE: " + bc)
ok(bm.get(flag(bc, "--curve-secret")) == "broker_secret", "broker's --curve-secret is the Secret's broker_secret")
ok(bm.get(flag(bc, "--allow-clients") + "/client") == "client", "broker's allow-clients holds the client key")
ok(bm.get(flag(bc, "--allow-workers") + "/worker") == "worker", "broker's allow-workers holds the worker key")
ok(wm.get(flag(wc, "--curve-secret")) == "worker_secret" and wm.get(flag(wc, "--broker-key")) == "broker",
   "workers have the worker key and the broker's public key: %s" % wm)
EOF
    while read -r st what; do
        check '[ "$st" = ok ]' "k8s: $what"
    done < "$T/k8s.txt"
    check '[ -s "$T/k8s.txt" ] && ! grep -q Traceback "$T/k8s.txt"' "k8s manifest parsed: $(grep -A3 Traceback "$T/k8s.txt")"
else
    echo "test_deploy: k8s checks skipped (no deploy/k8s or no python3-yaml)" >&2
fi

echo "test_deploy: $pass passed, $fail failed"
[ $fail -eq 0 ]
