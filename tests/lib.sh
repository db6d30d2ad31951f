# Shared by the shell tests: `. "$(dirname "$0")/lib.sh"` after `set -u`.
# BIN, LIB: the programs and libraries (absolute paths; ctest passes
#   DPOOL_BIN/DPOOL_LIB, by hand they default to the build folder);
# MOD: the test task module; T: a temporary folder, removed at exit;
# PIDS: processes to SIGKILL at exit (append with PIDS="$PIDS $!"); a test
#   with more to undo defines on_exit, run first;
# check CONDITION MESSAGE: counts a pass, or a failure with MESSAGE;
# freeport: a free tcp port on 127.0.0.1; finish NAME: the summary line and
#   the exit status (0 only when nothing failed).
_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$(cd "${DPOOL_BIN:-$_here/../build/bin}" 2>/dev/null && pwd) || BIN=${DPOOL_BIN:-build/bin}
LIB=$(cd "${DPOOL_LIB:-$_here/../build/lib}" 2>/dev/null && pwd) || LIB=${DPOOL_LIB:-build/lib}
MOD="$LIB/libdpool_testtasks.so"
T=$(mktemp -d)
PIDS=""
pass=0 fail=0
_lib_exit() {
    declare -F on_exit > /dev/null && on_exit
    for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap _lib_exit EXIT
ok()    { pass=$((pass + 1)); }
bad()   { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
finish() { echo "$1: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; }
