# shellcheck shell=bash
# netns.sh: a small sourceable library for multi-host tests on one machine.
#
# Every "host" is a network namespace with one interface, eth0, holding an
# address in a private test range (default 10.251.0.0/24). The hosts are
# plugged into a bridge that lives in a namespace of its own (the "switch"),
# so the machine's own network is never modified: every link, address and
# route this library makes exists only inside namespaces it creates, and
# netns_teardown removes them all (and the processes running in them).
#
#   source tests/netns.sh
#   netns_setup broker w1 w2 || exit $?   # 77: skip (not root, no `ip netns`, ...)
#   ns_spawn broker dpool-broker -j none -c "tcp://$(ns_addr broker):5555" \
#                                     -w "tcp://$(ns_addr broker):5556"
#   broker_pid=$NS_PID
#   ns_spawn w1 dpool-worker --connect "tcp://$(ns_addr broker):5556"
#   seq 1 9 | ns_exec broker dpool map -b "tcp://$(ns_addr broker):5555" square
#   ns_link_down w1         # pull w1's cable (at the switch): silent partition
#   ns_link_up w1
#   netns_teardown          # also runs by itself on EXIT, INT, TERM, HUP
#
# Functions (all return 0 on success; netns_init/netns_setup/ns_add return
# 77, the automake/ctest "skipped" status, with a reason on stderr when the
# machine cannot do it: not root, no `ip netns`, no veth/bridge support):
#
#   netns_init                  check, create the switch namespace, set traps
#   netns_setup NAME...         netns_init, then ns_add each NAME in order
#   ns_add NAME [ADDR]          new host NAME; ADDR defaults to SUBNET.N, N =
#                               1, 2, ... in order of creation
#   ns_addr NAME                print NAME's address (no prefix length)
#   ns_name NAME                print the real namespace name (for `ip -n`)
#   ns_exec NAME CMD [ARG]...   run CMD inside NAME, in the foreground (with
#                               `&`, $! would be a subshell's pid: use ns_spawn)
#   ns_spawn NAME CMD [ARG]...  start CMD inside NAME in the background; its own
#                               pid is in NS_PID (redirections given to ns_spawn
#                               apply to CMD): ns_spawn a prog > log 2>&1; p=$NS_PID
#   ns_hosts NAME [LINE]...     give NAME its own /etc/hosts: localhost, a line
#                               "ADDR HOST" per host made so far, and each LINE
#                               ("ADDR NAME..."; a host named in a LINE loses
#                               its own entry, so a name can be moved). Seen by
#                               what runs in NAME through ip-netns's
#                               /etc/netns/<ns>/ mechanism; calling it again
#                               changes the file in place for running programs
#   ns_link_down NAME           set NAME's switch port down: no carrier on
#                               NAME's eth0, packets both ways are dropped
#   ns_link_up NAME             set it up again (addresses and routes stay)
#   ns_link_state NAME          print NAME's eth0 state as `ip` reports it
#                               (UP, or LOWERLAYERDOWN / DOWN when cut)
#   ns_reach NAME ADDR PORT [S] whether a TCP connection from NAME to ADDR:PORT
#                               opens (1 s per try), trying again for up to S
#                               seconds (default: one try). After ns_link_up
#                               the first tries can fail for a moment (ARP
#                               entries that failed during the cut).
#   ns_pids NAME                print the pids of processes running in NAME
#   netns_teardown              kill what runs in our namespaces, delete them
#                               and any /etc/netns files we made; idempotent
#
# Settings (set before netns_init):
#   NETNS_PREFIX   namespace name prefix (default dpt<pid of the test shell>);
#                  namespaces are named PREFIX-NAME, the switch PREFIX-sw
#   NETNS_SUBNET   first three octets of the test range (default 10.251.0)
#   NETNS_NO_TRAP  set to 1 to install no traps (then call netns_teardown)
#
# Namespaces left behind by a test that was SIGKILLed (names dpt<pid>-* whose
# pid is gone) are removed by the next netns_init.

NETNS_PREFIX=${NETNS_PREFIX:-dpt$$}
NETNS_SUBNET=${NETNS_SUBNET:-10.251.0}
_NETNS_SW=""            # switch namespace, set by netns_init
_NETNS_NAMES=()         # user names of hosts, in order of creation
declare -gA _NETNS_ADDR=()   # user name -> address
declare -gA _NETNS_PORT=()   # user name -> veth name on the switch side
_NETNS_CREATED=()       # real namespace names we created (for teardown)
_NETNS_ETC=()           # /etc/netns/<ns> folders we created
_NETNS_ETC_ROOT_MADE=0  # whether we created /etc/netns itself

_netns_skip () { echo "netns: skip: $*" >&2; return 77; }
_netns_err () { echo "netns: $*" >&2; return 1; }

#   Remove namespaces of earlier runs that died without tearing down.
_netns_reap_stale () {
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        [[ $ns =~ ^dpt([0-9]+)- ]] || continue
        pid=${BASH_REMATCH[1]}
        [ "$pid" = "$$" ] && continue
        kill -0 "$pid" 2>/dev/null && continue
        _netns_kill_in "$ns"
        ip netns delete "$ns" 2>/dev/null
        [ -d "/etc/netns/$ns" ] && rm -rf "/etc/netns/$ns"
    done
    return 0
}

#   SIGTERM the processes in namespace $1, then SIGKILL what is left.
_netns_kill_in () {
    local ns=$1 pids i
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [ -z "${pids// /}" ] && return 0
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null
    for i in $(seq 1 30); do
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        [ -z "${pids// /}" ] && return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    for i in $(seq 1 20); do
        [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    return 0
}

netns_init () {
    [ -n "$_NETNS_SW" ] && return 0
    [ "$(id -u)" -eq 0 ] || { _netns_skip "needs root (network namespaces)"; return; }
    command -v ip >/dev/null 2>&1 || { _netns_skip "no 'ip' command (iproute2)"; return; }
    ip netns list >/dev/null 2>&1 || { _netns_skip "'ip netns' is not available"; return; }
    _netns_reap_stale
    local sw="$NETNS_PREFIX-sw"
    if ip netns list | awk '{print $1}' | grep -qx -- "$sw"; then
        _netns_err "namespace $sw exists already (another run with NETNS_PREFIX=$NETNS_PREFIX?)"
        return
    fi
    ip netns add "$sw" 2>/dev/null || { _netns_skip "cannot create a network namespace"; return; }
    _NETNS_CREATED+=("$sw")
    _NETNS_SW=$sw
    if [ "${NETNS_NO_TRAP:-0}" != 1 ]; then
        #   chain onto an EXIT trap the caller set before us
        local prev="" t
        local -a words=()
        t=$(trap -p EXIT)
        if [ -n "$t" ]; then
            eval "words=($t)"           # trap -- 'COMMAND' EXIT
            prev=${words[2]}
        fi
        # shellcheck disable=SC2064
        trap "netns_teardown; ${prev:-:}" EXIT
        [ -z "$(trap -p INT)" ] && trap 'exit 130' INT
        [ -z "$(trap -p TERM)" ] && trap 'exit 143' TERM
        [ -z "$(trap -p HUP)" ] && trap 'exit 129' HUP
    fi
    if ! { ip -n "$sw" link set lo up &&
           ip -n "$sw" link add br0 type bridge stp_state 0 forward_delay 0 2>/dev/null &&
           ip -n "$sw" link set br0 up; }; then
        netns_teardown
        _netns_skip "cannot create a bridge (no bridge support?)"
        return
    fi
    return 0
}

ns_name () { echo "$NETNS_PREFIX-$1"; }

ns_add () {
    local name=$1 addr=${2:-} rc
    [ -n "$_NETNS_SW" ] || { netns_init || return; }
    [ -n "$name" ] || { _netns_err "ns_add: no name"; return; }
    [ -n "${_NETNS_ADDR[$name]:-}" ] && { _netns_err "ns_add: $name exists"; return; }
    local n=$(( ${#_NETNS_NAMES[@]} + 1 ))
    [ -n "$addr" ] || addr="$NETNS_SUBNET.$n"
    local ns port="v$n"
    ns=$(ns_name "$name")
    ip netns add "$ns" || { _netns_err "ns_add: cannot create namespace $ns"; return; }
    _NETNS_CREATED+=("$ns")
    #   both ends are made inside our namespaces: the veth is created in the
    #   switch namespace with its peer placed straight into the host's one
    ip -n "$_NETNS_SW" link add "$port" type veth peer name eth0 netns "$ns" 2>/dev/null ||
        { _netns_skip "cannot create a veth pair (no veth support?)"; return; }
    ip -n "$_NETNS_SW" link set "$port" master br0 &&
    ip -n "$_NETNS_SW" link set "$port" up &&
    ip -n "$ns" link set lo up &&
    ip -n "$ns" addr add "$addr/24" dev eth0 &&
    ip -n "$ns" link set eth0 up
    rc=$?
    [ $rc -eq 0 ] || { _netns_err "ns_add: cannot configure $ns"; return; }
    _NETNS_NAMES+=("$name")
    _NETNS_ADDR[$name]=$addr
    _NETNS_PORT[$name]=$port
    return 0
}

netns_setup () {
    netns_init || return
    local name
    for name in "$@"; do
        ns_add "$name" || return
    done
}

_netns_known () {
    [ -n "${_NETNS_ADDR[${1:-}]:-}" ] || { _netns_err "unknown namespace '${1:-}'"; return 1; }
}

ns_addr () { _netns_known "$1" || return; echo "${_NETNS_ADDR[$1]}"; }

ns_exec () {
    _netns_known "$1" || return
    local ns
    ns=$(ns_name "$1")
    shift
    ip netns exec "$ns" "$@"
}

ns_reach () {
    _netns_known "$1" || return
    local ns end
    ns=$(ns_name "$1")
    end=$(( SECONDS + ${4:-0} ))
    while :; do
        # shellcheck disable=SC2016  # expanded by the inner bash
        ip netns exec "$ns" timeout 1 bash -c ': > "/dev/tcp/$0/$1"' "$2" "$3" 2>/dev/null &&
            return 0
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}

NS_PID=""
ns_spawn () {
    _netns_known "$1" || return
    local ns
    ns=$(ns_name "$1")
    shift
    #   ip execs CMD after entering the namespace: $! is CMD's pid
    ip netns exec "$ns" "$@" &
    # shellcheck disable=SC2034  # for the caller
    NS_PID=$!
}

ns_pids () { _netns_known "$1" || return; ip netns pids "$(ns_name "$1")"; }

ns_hosts () {
    _netns_known "$1" || return
    local ns dir h
    ns=$(ns_name "$1")
    shift
    dir="/etc/netns/$ns"
    if [ ! -d /etc/netns ]; then
        mkdir -p /etc/netns || return
        _NETNS_ETC_ROOT_MADE=1
    fi
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir" || return
        _NETNS_ETC+=("$dir")
    fi
    #   a name given in a LINE replaces that host's own entry
    local -A given=()
    local line word
    for line in "$@"; do
        for word in ${line#*[[:space:]]}; do given[$word]=1; done
    done
    #   rewritten in place: programs already running in NAME see the change
    {
        printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
        for h in "${_NETNS_NAMES[@]}"; do
            [ -n "${given[$h]:-}" ] || printf '%s\t%s\n' "${_NETNS_ADDR[$h]}" "$h"
        done
        for line in "$@"; do
            printf '%s\n' "$line"
        done
    } > "$dir/hosts"
}

ns_link_down () {
    _netns_known "$1" || return
    ip -n "$_NETNS_SW" link set "${_NETNS_PORT[$1]}" down
}

ns_link_up () {
    _netns_known "$1" || return
    ip -n "$_NETNS_SW" link set "${_NETNS_PORT[$1]}" up
}

ns_link_state () {
    _netns_known "$1" || return
    ip -n "$(ns_name "$1")" -o link show dev eth0 |
        sed -n 's/.* state \([A-Z_]*\) .*/\1/p'
}

netns_teardown () {
    local ns i
    #   hosts first (their processes, then the namespace: deleting it
    #   destroys its end of the veth, and with it the switch's end)
    for (( i = ${#_NETNS_CREATED[@]} - 1; i >= 0; i-- )); do
        ns=${_NETNS_CREATED[$i]}
        _netns_kill_in "$ns"
        ip netns delete "$ns" 2>/dev/null
    done
    for ns in "${_NETNS_ETC[@]}"; do
        rm -rf "$ns"
    done
    if [ "$_NETNS_ETC_ROOT_MADE" = 1 ]; then
        rmdir /etc/netns 2>/dev/null
    fi
    _NETNS_CREATED=()
    _NETNS_ETC=()
    _NETNS_ETC_ROOT_MADE=0
    _NETNS_NAMES=()
    _NETNS_ADDR=()
    _NETNS_PORT=()
    _NETNS_SW=""
    return 0
}
