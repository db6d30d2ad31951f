#!/usr/bin/env bash
# docker-compose.yml and deploy/Dockerfile, checked without a Docker engine:
#  1. Debian's `docker-compose config` validates the compose file; its
#     resolved output is checked (services, commands, ports, health, restart,
#     scaling, variables).
#  2. The Dockerfile is read: bookworm-slim stages, build/runtime packages,
#     non-root user, no ENTRYPOINT. Its build-stage RUN recipe is executed
#     here (paths /src, /build, /opt/dpool moved under a scratch folder), and
#     the runtime packages it names must provide every library the installed
#     programs and modules load.
#  3. As root with network namespaces: the compose services' commands, as
#     `docker-compose config` resolves them, run verbatim on that install as
#     the image's non-root uid, each service in a namespace whose /etc/hosts
#     knows the service names (the compose network): broker plus a worker
#     service scaled to 2; the healthcheck; maps from both sides; a broker
#     restart that the workers survive.
# docker-compose is installed (Debian package, no Recommends) when missing and
# this runs as root; otherwise the test says so and exits 0.
# shellcheck disable=SC2016,SC2034,SC2154  # check() evals its single-quoted condition
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
T=$(mktemp -d)
#   the key volume (/keys in the containers), where the image's user can write
KEYS=$(mktemp -d /tmp/dpool-compose-keys.XXXXXX)
trap 'rm -rf "$T" "$KEYS"' EXIT
chmod 755 "$T"
pass=0 fail=0
check () { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }
PY=/usr/bin/python3     # Debian's python3, with python3-yaml (a docker-compose dependency)

# --- docker-compose -------------------------------------------------------------
apt_install () {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" > "$T/apt.log" 2>&1 ||
    { apt-get update -qq > /dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" > "$T/apt.log" 2>&1; }
}
if ! command -v docker-compose > /dev/null 2>&1 || ! "$PY" -c 'import yaml' 2> /dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "test_compose: SKIP: docker-compose (Debian package) is not installed and this is" \
             "not root to install it: apt-get install --no-install-recommends docker-compose"
        exit 77
    fi
    echo "test_compose: installing docker-compose (apt-get, no recommends)" >&2
    apt_install docker-compose python3-yaml || { echo "FAIL: apt-get install docker-compose: $(tail -3 "$T/apt.log")" >&2; exit 1; }
fi
echo "test_compose: $(docker-compose version --short 2>/dev/null || docker-compose version | head -1)" >&2

: > "$T/empty.env"
compose () {    # compose [NAME=VALUE]... ARG...: docker-compose on the repository's
                #   file, with only the variables given
    local -a vars=()
    while [ $# -gt 0 ] && [[ $1 == *=* ]]; do vars+=("$1"); shift; done
    env -u DPOOL_IMAGE -u DPOOL_PUBLISH -u DPOOL_BROKER_JOBS -u DPOOL_KEYS ${vars[@]+"${vars[@]}"} \
        docker-compose --project-directory "$SRC" -f "$SRC/docker-compose.yml" \
            --env-file "$T/empty.env" "$@"
}
compose_config () { local cfg=$1; shift; compose "$@" config > "$cfg" 2> "$T/config.err"; }

#   facts from a resolved config, one "key<TAB>value" a line
cat > "$T/facts.py" <<'EOF'
import shlex, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
svc = c.get("services", {})
out = [("services", " ".join(sorted(svc)))]
def ports(s):
    r = []
    for p in s.get("ports", []) or []:
        if isinstance(p, dict):
            r.append("%s:%s:%s" % (p.get("host_ip", ""), p.get("published", ""), p.get("target", "")))
        else:
            r.append(str(p).split("/")[0])
    return " ".join(r)
for name, s in svc.items():
    #   what the container gets: `$$` in the file is a literal `$`
    unesc = lambda v: v.replace("$$", "$")
    cmd = s.get("command", "")
    out.append((name + ".command", shlex.join(map(unesc, cmd)) if isinstance(cmd, list) else unesc(cmd)))
    b = s.get("build", {}) or {}
    out.append((name + ".build", "%s %s" % (b.get("context", ""), b.get("dockerfile", ""))))
    out.append((name + ".image", s.get("image", "")))
    out.append((name + ".ports", ports(s)))
    out.append((name + ".container_name", s.get("container_name", "")))
    out.append((name + ".restart", s.get("restart", "")))
    out.append((name + ".init", str(s.get("init", ""))))
    out.append((name + ".user", str(s.get("user", ""))))
    env = s.get("environment", {}) or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    out.append((name + ".environment", shlex.join("%s=%s" % kv for kv in sorted(env.items()))))
    dep = s.get("depends_on", {}) or {}
    if isinstance(dep, list):
        dep = {d: {} for d in dep}
    out.append((name + ".depends_on", " ".join("%s:%s" % (d, (v or {}).get("condition", ""))
                                               for d, v in sorted(dep.items()))))
    hc = s.get("healthcheck", {}) or {}
    t = hc.get("test", "")
    out.append((name + ".health", shlex.join(map(unesc, t)) if isinstance(t, list) else unesc(t)))
for k, v in out:
    print("%s\t%s" % (k, v))
EOF
facts () { "$PY" "$T/facts.py" "$1" > "$1.facts"; }
get () { awk -F'\t' -v k="$2" '$1 == k { sub(/^[^\t]*\t/, ""); print; exit }' "$1.facts"; }

# --- 1. the compose file ---------------------------------------------------------
C="$T/config.yml"
compose_config "$C" DPOOL_KEYS="$KEYS"; rc=$?
check '[ $rc -eq 0 ]' "docker-compose config: status $rc: $(cat "$T/config.err")"
check 'compose config -q 2>/dev/null' "docker-compose config -q (valid)"
check '[ "$(compose config --services 2>/dev/null | sort | tr "\n" " ")" = "broker worker " ]' \
      "services: $(compose config --services 2>&1 | tr '\n' ' ')"
facts "$C"
check '[ "$(get "$C" services)" = "broker worker" ]' "both services present"
for s in broker worker; do
    check '[ "$(get "$C" $s.build)" = "$SRC deploy/Dockerfile" ]' "$s built from deploy/Dockerfile: $(get "$C" $s.build)"
    check '[ "$(get "$C" $s.image)" = dpool:latest ]' "$s image dpool:latest: $(get "$C" $s.image)"
    check '[ "$(get "$C" $s.restart)" = unless-stopped ]' "$s restart policy: $(get "$C" $s.restart)"
    check '[ "$(get "$C" $s.init)" = True ]' "$s runs under an init"
done
bc=$(get "$C" broker.command) wc=$(get "$C" worker.command)
check '[[ " $bc " == *" --clients tcp://0.0.0.0:5555 "* ]]' "broker binds clients on all container addresses: $bc"
check '[[ " $bc " == *" --workers tcp://0.0.0.0:5556 "* ]]' "broker binds workers on all container addresses: $bc"
check '[[ " $bc " == *" --jobs none "* ]]' "broker leaves the work to the worker service by default: $bc"
check '[[ "$bc" == dpool-broker\ * ]]' "broker runs dpool-broker"
check '[[ "$wc" == dpool-worker\ * || "$wc" == *"exec dpool-worker "* ]]' "worker runs dpool-worker: $wc"
check '[[ "$wc" == *" --jobs "* || "$wc" == *" -j "* ]]' "worker is a node supervising --jobs processes: $wc"
check '[ "$(get "$C" worker.environment)" = "DPOOL_SERVER_DIR=$KEYS/server DPOOL_WORKER_JOBS=" ]' "DPOOL_WORKER_JOBS empty by default: $(get "$C" worker.environment)"
check '[[ " $wc " == *" --connect tcp://broker:5556 "* ]]' "worker connects to broker:5556: $wc"
check '[[ " $wc " == *" --module testtasks "* || " $wc " == *" -m testtasks "* ]]' "worker loads testtasks: $wc"
check '[ "$(get "$C" broker.ports)" = "127.0.0.1:5555:5555 127.0.0.1:5556:5556" ]' \
      "broker ports published on the host's loopback: $(get "$C" broker.ports)"
check '[ -z "$(get "$C" worker.ports)" ] && [ -z "$(get "$C" worker.container_name)" ]' \
      "worker scales (no container_name, no host ports)"
check '[ "$(get "$C" worker.depends_on)" = broker:service_healthy ]' "worker waits for a healthy broker: $(get "$C" worker.depends_on)"
check '[ -n "$(get "$C" broker.health)" ]' "broker has a healthcheck"
check '[ "$(get "$C" broker.environment)" = "DPOOL_BROKER=tcp://127.0.0.1:5555 DPOOL_SERVER_DIR=$KEYS/server" ]' "broker's DPOOL_BROKER for exec, its server directory: $(get "$C" broker.environment)"
#   CURVE: no plaintext options; the workers use the key volume's keys
check '[[ " $bc " != *" --insecure "* && " $bc " != *" --no-curve "* ]]' "broker runs CURVE: $bc"
check '[[ " $wc " == *" --curve-secret "*worker_secret* && " $wc " == *" --broker-key "* ]]' "worker authenticates with keys: $wc"
check 'grep -q "dpool-keys:$KEYS" "$C"' "both services mount the key volume"
check '[ -z "$(get "$C" broker.user)$(get "$C" worker.user)" ]' "services run as the image's user"
#   variables
V="$T/config-vars.yml"
compose_config "$V" DPOOL_KEYS="$KEYS" DPOOL_BROKER_JOBS=3 DPOOL_PUBLISH=0.0.0.0 DPOOL_IMAGE=registry.example/dpool:1 \
    DPOOL_WORKER_JOBS=3
facts "$V"
check '[ "$(get "$V" worker.environment)" = "DPOOL_SERVER_DIR=$KEYS/server DPOOL_WORKER_JOBS=3" ]' "DPOOL_WORKER_JOBS passed on: $(get "$V" worker.environment)"
check '[[ " $(get "$V" broker.command) " == *" --jobs 3 "* ]]' "DPOOL_BROKER_JOBS: $(get "$V" broker.command)"
check '[ "$(get "$V" broker.ports)" = "0.0.0.0:5555:5555 0.0.0.0:5556:5556" ]' "DPOOL_PUBLISH: $(get "$V" broker.ports)"
check '[ "$(get "$V" worker.image)" = registry.example/dpool:1 ]' "DPOOL_IMAGE: $(get "$V" worker.image)"
#   an invalid file is refused (the validation has teeth)
sed 's/^services:/servicez:/' "$SRC/docker-compose.yml" > "$T/bad.yml"
check '! docker-compose --project-directory "$SRC" -f "$T/bad.yml" --env-file "$T/empty.env" config -q 2>/dev/null' \
      "docker-compose config refuses a broken file"

# --- 2. the Dockerfile -----------------------------------------------------------
D="$SRC/deploy/Dockerfile"
#   instructions, continuation lines joined: "N<TAB>STAGE<TAB>INSTRUCTION ARGS"
"$PY" - "$D" > "$T/df.txt" <<'EOF'
import sys
lines, cur = [], ""
for raw in open(sys.argv[1]):
    s = raw.rstrip("\n")
    if not cur and (not s.strip() or s.lstrip().startswith("#")):
        continue
    if cur and s.lstrip().startswith("#"):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    lines.append(" ".join((cur + s).split()))
    cur = ""
stage = -1
for i, l in enumerate(lines):
    if l.upper().startswith("FROM "):
        stage += 1
    print("%d\t%d\t%s" % (i, stage, l))
EOF
inst () { awk -F'\t' -v s="$1" -v k="$2" '$2 == s && toupper($3) ~ "^"k" " { print $3 }' "$T/df.txt"; }
last=$(awk -F'\t' 'END { print $2 }' "$T/df.txt")
froms=$(awk -F'\t' 'toupper($3) ~ /^FROM / { print $3 }' "$T/df.txt")
check '[ "$(echo "$froms" | wc -l)" -eq 2 ] && ! grep -qv "^FROM debian:bookworm-slim" <<< "$froms"' "two stages on debian:bookworm-slim: $froms"
check 'grep -q "^FROM debian:bookworm-slim AS build$" <<< "$froms"' "a build stage named build"
brun=$(inst 0 RUN)
for p in gcc make cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libmicrohttpd-dev; do
    check 'grep -qw -- "$p" <<< "$brun"' "build stage installs $p"
done
check 'grep -q "cmake --install" <<< "$brun"' "build stage runs cmake --install"
rrun=$(inst "$last" RUN)
runtime_pkgs=$(grep -o 'apt-get install [^&]*' <<< "$rrun" | tr ' ' '\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
               grep -vE '^(apt-get|install)$' | sort | tr '\n' ' ')
check '[ "$runtime_pkgs" = "libczmq4 libmicrohttpd12 libmsgpackc2 libzmq5 " ]' "runtime stage installs only the runtime libraries: $runtime_pkgs"
check '! grep -Eq -- "-dev\b|\b(gcc|cmake|make)\b" <<< "$rrun"' "no build tools in the runtime stage"
check 'inst "$last" COPY | grep -q "^COPY --from=build /opt/dpool /opt/dpool$"' "runtime copies the install from the build stage"
user=$(inst "$last" USER | tail -1 | awk '{ print $2 }')
check '[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ]' "runs as a non-root user: ${user:-none}"
uid=$(grep -o -- '--uid [0-9]*' <<< "$rrun" | awk '{ print $2 }')
check '[ -n "$uid" ] && [ "$uid" -ne 0 ]' "the user has a fixed non-zero uid: ${uid:-none}"
check '! grep -qiE "^[0-9]+.[0-9]+.ENTRYPOINT" "$T/df.txt"' "no ENTRYPOINT"
check 'inst "$last" ENV | grep -q "PATH=/opt/dpool/bin:"' "programs on PATH"
check '[ -f "$SRC/.dockerignore" ] && grep -qx "build/" "$SRC/.dockerignore"' ".dockerignore keeps build/ out of the context"

#   the build recipe, for real: the build stage's cmake RUN with its paths moved
recipe=$(grep -F 'cmake -S' <<< "$brun" | sed 's/^RUN //')
"$PY" - "$recipe" "$SRC" "$T/build" "$T/opt/dpool" > "$T/recipe.sh" <<'EOF'
import re, sys
r, src, build, opt = sys.argv[1:]
print(re.sub(r"(?<![\w./-])/(src|build|opt/dpool)(?![\w-])",
             lambda m: {"src": src, "build": build, "opt/dpool": opt}[m.group(1)], r))
EOF
#   (RUN's shell form is /bin/sh -c)
(cd "$T" && sh "$T/recipe.sh") > "$T/recipe.log" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "the Dockerfile's build recipe runs: status $rc: $(tail -5 "$T/recipe.log")"
P="$T/opt/dpool"
check '[ -x "$P/bin/dpool-broker" ] && [ -x "$P/bin/dpool-worker" ] && [ -x "$P/bin/dpool" ]' "programs installed in /opt/dpool/bin"
check '[ -f "$P/lib/libdpool_testtasks.so" ]' "test task module in the libdir"
#   the runtime stage's own check, with its path moved
rcheck=$(grep -o '/opt/dpool/bin/dpool-worker --check[^&]*' <<< "$rrun" | sed "s|/opt/dpool|$P|g")
check '[ -n "$rcheck" ] && bash -c "$rcheck"' "runtime stage's check passes: $rcheck"
#   every library they need comes from the runtime packages (or libc6, which
#   every Debian image has); libraries of those libraries come with the
#   packages' own dependencies
for f in "$P"/bin/* "$P"/lib/*.so; do
    LD_LIBRARY_PATH="$P/lib" ldd "$f" 2>/dev/null
done | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }
           $1 ~ /^\// { n = split($1, a, "/"); print a[n], $1 }' | sort -u > "$T/paths.txt"
direct=$(for f in "$P"/bin/* "$P"/lib/*.so; do readelf -d "$f" 2>/dev/null; done |
         sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort -u)
missing=""
for lib in $direct; do
    [ -e "$P/lib/$lib" ] && continue
    path=$(awk -v l="$lib" '$1 == l { print $2; exit }' "$T/paths.txt")
    pkg=""
    for q in "$path" "$(readlink -f "${path:-/nonexistent}")"; do
        [ -n "$q" ] && pkg=$(dpkg -S "$q" 2>/dev/null | head -1 | cut -d: -f1)
        [ -n "$pkg" ] && break
    done
    case " $runtime_pkgs libc6 " in *" $pkg "*) ;; *) missing="$missing $lib(${pkg:-?})" ;; esac
done
echo "test_compose: libraries needed: $(tr '\n' ' ' <<< "$direct")" >&2
check '[ -n "$direct" ] && [ -z "$missing" ]' "runtime packages cover the libraries loaded: missing:$missing"

# --- 3. the services, run as compose would run them --------------------------------
# shellcheck source=tests/netns.sh
source "$HERE/netns.sh"
netns_setup broker worker_1 worker_2 broker_2; rc=$?
if [ $rc -eq 77 ]; then
    echo "test_compose: running the services skipped (see above)" >&2
elif check '[ $rc -eq 0 ]' "netns_setup: $rc"; then
    for h in broker worker_1 worker_2 broker_2; do ns_hosts "$h"; done
    #   as in the image: the install on PATH, its non-root uid, the service's environment
    as_image () {   # as_image SERVICE HOST CMD...
        local svc=$1 host=$2; shift 2
        local -a envs=()
        eval "envs=($(get "${CFG:-$C}" "$svc.environment"))"
        ns_exec "$host" setpriv --reuid="$uid" --regid="$uid" --clear-groups \
            env PATH="$P/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/tmp ${envs[@]+"${envs[@]}"} "$@"
    }
    spawn_image () {   # like as_image, in the background; pid in NS_PID
        local svc=$1 host=$2; shift 2
        local -a envs=()
        eval "envs=($(get "${CFG:-$C}" "$svc.environment"))"
        ns_spawn "$host" setpriv --reuid="$uid" --regid="$uid" --clear-groups \
            env PATH="$P/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/tmp ${envs[@]+"${envs[@]}"} "$@"
    }
    eval "bcmd=($bc)"; eval "wcmd=($wc)"
    health=$(get "$C" broker.health)
    eval "hcmd=($health)"
    if [ "${hcmd[0]}" = CMD-SHELL ]; then hcmd=(sh -c "${hcmd[1]}"); else hcmd=("${hcmd[@]:1}"); fi
    healthy () { as_image broker broker "${hcmd[@]}" > /dev/null 2>&1; }

    chown "$uid:$uid" "$KEYS"
    check '! healthy' "healthcheck fails while the broker is down"
    spawn_image broker broker "${bcmd[@]}" > "$T/broker.log" 2>&1; bpid=$NS_PID
    #   worker_1 as configured by default, worker_2 with DPOOL_WORKER_JOBS=3
    spawn_image worker worker_1 "${wcmd[@]}" > "$T/worker1.log" 2>&1; w1pid=$NS_PID
    CFG=$V spawn_image worker worker_2 "${wcmd[@]}" > "$T/worker2.log" 2>&1; w2pid=$NS_PID
    up=""; for _ in $(seq 1 50); do healthy && { up=1; break; }; sleep 0.2; done
    check '[ -n "$up" ]' "broker healthy: $(cat "$T/broker.log")"
    check '[ "$(stat -c %u /proc/$bpid)" = "$uid" ]' "broker runs as uid $uid"
    kids () { pgrep -P "$1" | wc -l; }
    for _ in $(seq 1 50); do
        [ "$(kids "$w1pid")" -eq "$(nproc)" ] && [ "$(kids "$w2pid")" -eq 3 ] && break
        sleep 0.1
    done
    check '[ "$(kids "$w1pid")" -eq "$(nproc)" ]' "a worker node runs one process per CPU by default: $(kids "$w1pid")"
    check '[ "$(kids "$w2pid")" -eq 3 ]' "DPOOL_WORKER_JOBS=3: 3 processes: $(kids "$w2pid")"

    seq 1 1000 | awk '{ print $1 * $1 }' > "$T/want.txt"
    #   docker-compose exec -T broker dpool map square
    seq 1 1000 | as_image broker broker dpool map square > "$T/out1.txt" 2> "$T/err1.txt"
    check 'cmp -s "$T/out1.txt" "$T/want.txt"' "map through the broker's DPOOL_BROKER: $(cat "$T/err1.txt")"
    #   a client on the compose network, by service name
    seq 1 1000 | as_image worker worker_2 dpool map -b tcp://broker:5555 square > "$T/out2.txt" 2> "$T/err2.txt"
    check 'cmp -s "$T/out2.txt" "$T/want.txt"' "map from the network via tcp://broker:5555: $(cat "$T/err2.txt")"
    #   the work is spread over the scaled workers
    seq 1 200 | as_image broker broker dpool run -- "sleep 0.02; ip -o -4 addr show dev eth0; : {}" 2>/dev/null |
        awk '{ print $4 }' | sort | uniq -c > "$T/where.txt"
    check 'grep -q "$(ns_addr worker_1)/24" "$T/where.txt" && grep -q "$(ns_addr worker_2)/24" "$T/where.txt"' \
          "both worker replicas ran items: $(tr '\n' ' ' < "$T/where.txt")"

    #   the broker container is recreated (docker-compose up after a change):
    #   SIGTERM, then a new broker at a new address under the same name; the
    #   worker nodes find it by themselves
    kill -TERM "$bpid"; wait "$bpid"; rc=$?
    check '[ $rc -eq 0 ]' "broker stops cleanly on SIGTERM (docker stop): status $rc"
    check '! healthy' "healthcheck fails after the broker stopped"
    B2=$(ns_addr broker_2)
    for h in worker_1 worker_2 broker_2; do ns_hosts "$h" "$B2 broker"; done
    check '[ "$(ns_exec worker_1 getent hosts broker | awk "{ print \$1 }")" = "$B2" ]' "the name broker moved to $B2"
    spawn_image broker broker_2 "${bcmd[@]}" >> "$T/broker.log" 2>&1; bpid=$NS_PID
    back=""; end=$(( SECONDS + 60 ))
    while [ $SECONDS -lt $end ]; do
        [ "$(seq 1 50 | as_image broker broker_2 dpool map square 2>/dev/null | md5sum)" = "$(head -50 "$T/want.txt" | md5sum)" ] &&
            { back=1; break; }
        sleep 0.5
    done
    check '[ -n "$back" ]' "worker nodes serve the new broker by themselves: $(tail -3 "$T/worker1.log")"
    seq 1 200 | as_image broker broker_2 dpool run -- "sleep 0.02; ip -o -4 addr show dev eth0; : {}" 2>/dev/null |
        awk '{ print $4 }' | sort | uniq -c > "$T/where2.txt"
    check 'grep -q "$(ns_addr worker_1)/24" "$T/where2.txt" && grep -q "$(ns_addr worker_2)/24" "$T/where2.txt"' \
          "both worker nodes came back: $(tr '\n' ' ' < "$T/where2.txt")"
    check '[ -z "$(ns_pids broker_2 | grep -vx "$bpid")" ]' "nothing but the broker in its container"
    netns_teardown
fi

echo "test_compose: $pass passed, $fail failed"
[ $fail -eq 0 ]
