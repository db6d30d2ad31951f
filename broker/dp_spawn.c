/*  =========================================================================
    dp_spawn - the broker's local workers: a dp_super supervisor, and what
    a local worker's death means for the broker

    Local workers connect back over ipc:// and register with READY like any
    worker; their pid ties them to a supervisor slot. When one dies, the
    supervisor reports (after draining the grace period) the item it was
    running, read from its progress page, so only that item is blamed.

    With opts.forkserver (an embedded pool of a program that registered
    tasks of its own) the workers are forked by the fork server rather
    than spawned: the supervisor gets a channel to it, and the modules are
    checked in a forked child, together with the host's tasks.
    =========================================================================
*/
#include "dp_broker_internal.h"

#include <stdio.h>
#include <string.h>

#define STOP_GRACE_MS    2000
#define INIT_WAIT_MS     10000  //  start-up waits this long for a worker's initializers

//  A local worker died (reported by the supervisor).
static void
s_on_death (void *owner, const dp_death_t *death)
{
    broker_t *self = (broker_t *) owner;
    worker_t *worker = self->local [death->slot];
    self->local [death->slot] = NULL;
    if (worker)
        broker_worker_died (self, worker, death);
    else
    if (!death->clean && !death->aborted && !self->terminated)
        zsys_warning ("dpool-broker: local worker died before registering (%s)", death->reason);
}

int
spawn_start (broker_t *self, char *err, size_t errlen)
{
    dp_forkserver_t *fs = NULL;
    if (self->opts.forkserver) {
        fs = dp_forkserver_connect (err, errlen);
        if (!fs)
            return -1;
        if (self->opts.nmodules
        &&  dp_forkserver_check (fs, self->opts.modules, self->opts.nmodules, err, errlen)) {
            dp_forkserver_disconnect (&fs);
            return -1;
        }
    }
    else
    if (dp_super_check_modules (self->worker_program, self->opts.modules, self->opts.nmodules,
                                err, errlen))
        return -1;
    char hb [16];
    snprintf (hb, sizeof hb, "%u", self->opts.heartbeat_ms);
    const char **args = (const char **) zmalloc (sizeof (char *) * (2 * self->opts.nmodules + 16));
    size_t n = 0;
    args [n++] = "--connect";
    args [n++] = self->ipc;
    args [n++] = "--local";
    if (self->opts.allow_exec)
        args [n++] = "--allow-exec";
    args [n++] = "--heartbeat";
    args [n++] = hb;
    for (size_t i = 0; i < self->opts.nmodules; i++) {
        args [n++] = "-m";
        args [n++] = self->opts.modules [i];
    }
    char mem [16], tasks [16];
    if (self->opts.mem_limit_mb) {
        snprintf (mem, sizeof mem, "%u", self->opts.mem_limit_mb);
        args [n++] = "--mem-limit";
        args [n++] = mem;
    }
    if (self->opts.max_tasks) {
        snprintf (tasks, sizeof tasks, "%u", self->opts.max_tasks);
        args [n++] = "--max-tasks-per-child";
        args [n++] = tasks;
    }
    if (self->opts.init_args) {
        args [n++] = "--init";
        args [n++] = self->opts.init_args;
    }
    char token [48];
    snprintf (token, sizeof token, "DPOOL_NODE=%llu", (unsigned long long) self->local_token);
    const char *env [] = { token };
    dp_super_opts_t opts = {
        .program = self->worker_program, .args = args, .nargs = n, .env = env, .nenv = 1,
        .children = self->nlocal, .mem_limit_mb = self->opts.mem_limit_mb,
        .on_death = s_on_death, .owner = self, .forkserver = fs
    };
    self->super = dp_super_new (&opts);
    int rc = dp_super_start (self->super, err, errlen);
    free (args);
    //  a failing initializer fails the start, as the module check does;
    //  the initializers ran in the first worker, not in a check of their own
    if (rc == 0 && self->opts.init_args && self->opts.nmodules)
        rc = dp_super_wait_init (self->super, INIT_WAIT_MS, err, errlen);
    return rc;
}

void
spawn_stop (broker_t *self)
{
    if (self->super)
        dp_super_stop (self->super, STOP_GRACE_MS);
    dp_super_destroy (&self->super);
}

int
spawn_slot_by_pid (broker_t *self, pid_t pid)
{
    return self->super ? dp_super_slot (self->super, pid) : -1;
}

void
spawn_kill_slot (broker_t *self, int slot, const char *reason)
{
    if (self->super)
        dp_super_kill (self->super, slot, reason);
}

bool
spawn_all_registered (broker_t *self)
{
    for (int i = 0; i < self->nlocal; i++)
        if (!self->local [i])
            return false;
    return true;
}
