/*  =========================================================================
    dp_super - supervisor of N worker processes

    Used by the broker for its local workers and by a worker node
    (`dpool-worker -j N`) for its worker processes. Children are started
    with posix_spawn, watched through pidfds (so a death is seen at once,
    with its status, and no one else's children are reaped), given a shared
    progress page (dp_progress.h), killed when an item outlives its timeout
    or its chunk was aborted, and restarted: at once after a death in
    service, with a capped backoff when a child dies before it ever ran
    anything (a child that cannot start must not spin).

    Alternatively the children come from the fork server (dp_forkserver.h):
    the same arguments and environment extras, but the child is a fork of
    the host program's server rather than a new dpool-worker, so it has the
    host's tasks. The server, their parent, reaps them and reports each
    status over the supervisor's channel (polled with the pidfds); signals
    go through pidfds, which cannot name a recycled pid.

    A death is reported to the owner a short grace after it is reaped, so
    that what the child sent just before dying has been read first.
    =========================================================================
*/
#ifndef DP_SUPER_H_INCLUDED
#define DP_SUPER_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <zmq.h>
#include "dp_forkserver.h"

typedef struct dp_super dp_super_t;

typedef struct {
    int slot;
    pid_t pid;
    char reason [96];       //  "SIGSEGV", "exit status 3", "timed out after 2.0 s",
                            //  "out of memory (limit 64 MiB)"
    uint8_t code;           //  DP_ST_DIED or DP_ST_TIMEOUT
    uint64_t chunk;         //  chunk it was running (0: none)
    uint32_t item;          //  item in that chunk (DP_PROGRESS_NONE: none)
    bool clean;             //  exited 0 (recycled, told to stop): blames no one
    bool aborted;           //  killed because its chunk was aborted, or by
                            //  dp_super_kill: blames no one
} dp_death_t;

//  Called for each death, after the grace period.
typedef void (dp_death_fn) (void *owner, const dp_death_t *death);

typedef struct {
    const char *program;            //  path of dpool-worker
    const char *const *args;        //  arguments after the program name
    size_t nargs;
    const char *const *env;         //  extra NAME=VALUE entries, or NULL
    size_t nenv;
    int children;
    uint32_t mem_limit_mb;          //  reported in "out of memory" reasons
    dp_death_fn *on_death;
    void *owner;
    uint32_t liveness_ms;           //  kill a child whose progress page's alive_ns is
                                    //  older than this (stopped, hung), blaming the
                                    //  item it runs as a death would; 0: never
    dp_forkserver_t *forkserver;    //  start children through this channel to
                                    //  the fork server (program is then only
                                    //  a name), or NULL: posix_spawn
} dp_super_opts_t;

//  New supervisor; it owns opts->forkserver (if any) from here on, and
//  closes it when destroyed.
dp_super_t *dp_super_new (const dp_super_opts_t *opts);
void dp_super_destroy (dp_super_t **self_p);

//  Start every child. Returns 0, or -1 with the reason in err.
int dp_super_start (dp_super_t *self, char *err, size_t errlen);

//  Add the children's pidfds to a poll set; then hand the polled items
//  back to dp_super_handle.
void dp_super_poll_items (dp_super_t *self, zmq_pollitem_t *items, int *count, int max);
void dp_super_handle (dp_super_t *self, zmq_pollitem_t *items, int count);

//  Timers: kill timed-out and aborted children, report deaths whose grace
//  is over, restart children that are due. Call every loop iteration.
void dp_super_tick (dp_super_t *self);

//  Monotonic ms when dp_super_tick next has work, at the latest `next`.
int64_t dp_super_next_event (dp_super_t *self, int64_t next);

//  Slot of a running child with this pid, or -1.
int dp_super_slot (dp_super_t *self, pid_t pid);
int dp_super_size (dp_super_t *self);

//  Is the slot's child running (started, not yet reported dead)?
bool dp_super_running (dp_super_t *self, int slot);

//  Kill the slot's child (SIGKILL: it works on a stopped process too) for
//  a reason its owner found, e.g. "no heartbeat": it is reaped, reported
//  blaming no one (death.chunk 0, death.aborted) and restarted as usual.
void dp_super_kill (dp_super_t *self, int slot, const char *reason);

//  Stop every child: SIGTERM, up to grace_ms, SIGKILL; all are reaped.
void dp_super_stop (dp_super_t *self, int grace_ms);

//  Run `program --check -m MODULE...` and wait: 0, or -1 with its message.
//  It loads the modules only: their initializers run in the workers alone.
int dp_super_check_modules (const char *program, const char *const *modules,
                            size_t nmodules, char *err, size_t errlen);

//  Wait, up to timeout_ms, until the first child has run the modules'
//  initializers (its progress page says so): 0 when one succeeded (or
//  none has said anything by then: an initializer may take long), -1
//  with its message in err when one failed. For start-up, before the
//  owner's loop runs: a pool or node with a failing initializer fails at
//  once, though no other process ran the initializer.
int dp_super_wait_init (dp_super_t *self, int timeout_ms, char *err, size_t errlen);

//  Find the dpool-worker program: $DPOOL_WORKER, then beside the running
//  executable, then beside libdpool.so (../bin), then the install bindir,
//  then PATH. Returns 0 or -1.
int dp_find_worker_program (char *buf, size_t size);

#endif
