/*  =========================================================================
    dp_forkserver - worker processes forked from a copy of the host program

    Tasks defined in the calling program itself (dp_register_task) cannot
    reach a worker started with posix_spawn: a fresh dpool-worker does not
    hold the host's code. A plain fork of the host is not safe either once
    it runs threads or holds a ZeroMQ context. So, as the `forkserver` of
    Python's multiprocessing, dp_forkserver_start (client/dp_host.c) calls
    dp_forkserver_launch, which forks one small single-threaded server at
    the top of main, before any thread exists;
    later, a supervisor (dp_super, for an embedded broker's local workers)
    asks it to fork each worker. A child of the server is a fork of a
    process that has no thread and no ZeroMQ context: once its process is
    set up it runs the launcher's hook (dp_host_worker_main, which builds a
    task registry from the host tasks plus the modules asked for and runs
    the normal worker loop). Supervision does not know what a worker is.

    The server reaps its children and reports each one's wait status to the
    supervisor that asked for it, so deaths are named ("SIGSEGV") although
    the supervisor is not the children's parent. Each supervisor talks to
    the server over a channel of its own (a SOCK_SEQPACKET socketpair
    handed over the server's main socket), so several embedded pools in
    several threads never share a socket.

    The server exits when the host closes its main socket (exit, or
    dp_forkserver_halt), when the host dies (PR_SET_PDEATHSIG, getppid),
    and kills and reaps the children of a channel that closes.
    =========================================================================
*/
#ifndef DP_FORKSERVER_H_INCLUDED
#define DP_FORKSERVER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

//  The "program" an embedded broker names when its workers come from the
//  fork server (it appears in messages such as "cannot start ...").
#define DP_FORKSERVER_PROGRAM   "the dpool fork server"

typedef struct dp_forkserver dp_forkserver_t;

//  What a child of the server runs, its process set up (signals, the
//  progress page or check pipe, environment): `args` are dpool-worker
//  arguments; `check` asks only for the module check. Returns the child's
//  exit code.
typedef int (dp_forkserver_child_fn) (bool check, const char *const *args, size_t nargs);

//  Fork the server; its children run `child`. The caller made sure that no
//  other thread runs. Returns 0 (also when it already runs), or -1 with the
//  reason in err.
int dp_forkserver_launch (dp_forkserver_child_fn *child, char *err, size_t errlen);

//  Close the host's end and reap the server (which stops its children).
void dp_forkserver_halt (void);

//  Is the server running?
bool dp_forkserver_running (void);

//  Open a channel of one supervisor to the server. Returns it, or NULL
//  with the reason in err (not started, gone). Thread-safe.
dp_forkserver_t *dp_forkserver_connect (char *err, size_t errlen);

//  Close the channel (the server kills and reaps what it still runs for
//  it) and null the caller's pointer.
void dp_forkserver_disconnect (dp_forkserver_t **self_p);

//  Ask the server to fork a worker running `dpool-worker ARGS` with the
//  extra NAME=VALUE entries in its environment and `memfd` (the progress
//  page) at DP_PROGRESS_FD. Returns 0 with the pid and a pidfd for it
//  (owned by the caller; -1 if the kernel has none), or -1 with the reason
//  in err. Statuses arriving meanwhile are kept for dp_forkserver_reaped.
int dp_forkserver_spawn (dp_forkserver_t *self, const char *const *args, size_t nargs,
                         const char *const *env, size_t nenv, int memfd,
                         pid_t *pid, int *pidfd, char *err, size_t errlen);

//  Check, in a forked child, that the host tasks and these modules make a
//  valid registry (the initializers are not run: they run only in the
//  workers, see dp_super_wait_init). Returns 0, or -1 with the child's
//  message in err.
int dp_forkserver_check (dp_forkserver_t *self, const char *const *modules, size_t nmodules,
                         char *err, size_t errlen);

//  The descriptor to poll: readable when a status (or the server's end)
//  is there.
int dp_forkserver_fd (dp_forkserver_t *self);

//  Take one status the server reported: 1 with the child's pid and wait
//  status, 0 when none is there now, -1 when the server is gone (then
//  every child it ran for this channel is dead too). Never blocks.
int dp_forkserver_reaped (dp_forkserver_t *self, pid_t *pid, int *status);

//  Wait up to timeout_ms for a status (as dp_forkserver_reaped).
int dp_forkserver_wait (dp_forkserver_t *self, pid_t *pid, int *status, int timeout_ms);

#endif
