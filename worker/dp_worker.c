/*  =========================================================================
    dp_worker - one dpool worker process: set-up, start and stop

    dp_worker_run makes a worker process ready to take items and hands it
    to the session loop (dp_session.c): it exits at once when its parent
    is gone (a local or supervised worker dies with its parent), loads
    the host tasks and modules into the registry and runs their
    initializers (reporting how they went on the progress page), reads the
    CURVE keys, installs the SIGTERM/SIGINT handlers and the self-pipe,
    starts the executor and watchdog threads (dp_executor.c), applies the
    memory limit, and at the end shuts everything down (BYE to the broker
    first when it has our chunks). dp_worker_check loads modules only.
    dp_worker_internal.h has the whole picture.
    =========================================================================
*/
#include "dp_worker_internal.h"
#include "dp_wake.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#define S_BYE_LINGER_MS 200         //  time to deliver BYE on exit

volatile sig_atomic_t wk_interrupted;
int wk_wake [2] = { -1, -1 };

//  A worker whose executor was still in a task when it stopped: the thread
//  goes on using it until the process exits, so it must stay allocated.
static wk_worker_t *s_abandoned;


//  --------------------------------------------------------------------------
//  Start and stop

static void
s_signal_handler (int sig)
{
    wk_interrupted = sig;
    dp_wake (wk_wake);
}

//  SIGTERM/SIGINT set a flag (no SA_RESTART: blocking calls return EINTR);
//  SIGCHLD back to default so the exec task can wait for its children.

static void
s_signals_install (void)
{
    dp_wake_open (wk_wake);
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_signal_handler;
    sigemptyset (&action.sa_mask);
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    signal (SIGCHLD, SIG_DFL);
}

//  Release everything and null the caller's pointer; with `bye`, tell the
//  broker first so it re-queues our chunks at once. When the executor
//  could not be stopped, leave the worker (the thread reads it), the
//  context and the registry (its code may be running) to process exit.

static void
s_shutdown (wk_worker_t **self_p, bool bye)
{
    wk_worker_t *self = *self_p;
    *self_p = NULL;
    //  A local worker's broker learns of its exit from its pidfd, and one
    //  not yet welcomed has nothing to give back: no BYE, so no linger
    //  (a BYE on a connection still being made would hold exit 200 ms)
    bye = bye && self->welcomed && !self->opts->local;
    if (self->broker && bye && wk_send_cmd (self, DP_CMD_BYE) == 0) {
        int linger = S_BYE_LINGER_MS;   //  let zmq_ctx_term flush it
        zmq_setsockopt (self->broker, ZMQ_LINGER, &linger, sizeof linger);
    }
    dp_curve_watch_destroy (&self->watch);
    wk_watchdog_stop (self);
    if (self->broker)
        zmq_close (self->broker);
    self->broker = NULL;
    if (self->executor_started && wk_executor_stop (self)) {
        wk_log (self, 1, "a task is still running: exiting without waiting for it");
        s_abandoned = self;
        return;
    }
    if (!self->executor_started && self->exec_pipe)
        zmq_close (self->exec_pipe);
    if (self->pipe)
        zmq_close (self->pipe);
    while (self->free_works) {
        wk_work_t *work = self->free_works;
        self->free_works = work->next;
        free (work);
    }
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    dp_registry_destroy (&self->registry);
    dp_batch_clear (&self->inline_batch);
    free (self);
}

//  Add the host tasks (if any) and load every module into a new registry.
//  Returns it, or NULL with the error printed to stderr.

static dp_registry_t *
s_registry_load (const dp_task_def_t *tasks, size_t ntasks,
                 const char *const *modules, size_t nmodules)
{
    dp_registry_t *registry = dp_registry_new ();
    if (!registry) {
        fprintf (stderr, "dpool-worker: out of memory\n");
        return NULL;
    }
    for (size_t i = 0; i < ntasks; i++) {
        char err [DP_MAX_NAME * 2 + 128];
        if (dp_registry_add_task (registry, tasks [i].name, tasks [i].fn, "(host program)",
                                  err, sizeof err)) {
            fprintf (stderr, "dpool-worker: %s\n", err);
            dp_registry_destroy (&registry);
            return NULL;
        }
    }
    for (size_t i = 0; i < nmodules; i++) {
        char err [1024];
        if (dp_registry_load (registry, modules [i], err, sizeof err)) {
            fprintf (stderr, "dpool-worker: %s\n", err);
            dp_registry_destroy (&registry);
            return NULL;
        }
    }
    return registry;
}

int
dp_worker_check (const char *const *modules, size_t nmodules)
{
    dp_registry_t *registry = s_registry_load (NULL, 0, modules, nmodules);
    if (!registry)
        return DP_WORKER_EXIT_CONFIG;
    for (size_t i = 0; i < dp_registry_count (registry); i++)
        printf ("%s\n", dp_registry_name (registry, i));
    fflush (stdout);
    dp_registry_destroy (&registry);
    return DP_WORKER_EXIT_OK;
}

//  A local worker dies with the process that started it: the kernel kills
//  it when its parent goes, and it exits at once if the parent is already
//  gone (re-parented before prctl). Returns true if it should exit now.

static bool
s_orphaned (void)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    const char *parent = getenv ("DPOOL_PARENT_PID");
    return parent && *parent && getppid () != (pid_t) strtol (parent, NULL, 10);
}

//  --------------------------------------------------------------------------
//  Memory limit

static size_t s_probe_size;

//  A crash under a memory limit: if the address space is (nearly) used up,
//  say so on the progress page, so the supervisor reports "out of memory"
//  rather than the signal. Only async-signal-safe calls.
static void
s_crash_handler (int sig)
{
    dp_progress_page_t *p = dp_progress_child ();
    void *probe = mmap (NULL, s_probe_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe == MAP_FAILED) {
        if (p)
            atomic_store (&p->oom, 1);
    }
    else
        munmap (probe, s_probe_size);
    signal (sig, SIG_DFL);
    raise (sig);
}

//  Limit the address space (RLIMIT_AS) and watch for crashes it causes.
//  Returns 0 or -1.
static int
s_mem_limit (uint32_t mb)
{
    dp_progress_child ();               //  map it now, not in the handler
    struct rlimit limit = { (rlim_t) mb << 20, (rlim_t) mb << 20 };
    if (setrlimit (RLIMIT_AS, &limit) != 0) {
        fprintf (stderr, "dpool-worker: cannot limit memory to %u MiB: %s\n", mb, strerror (errno));
        return -1;
    }
    s_probe_size = 4u << 20;           //  less than this left: out of memory
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_crash_handler;
    sigaction (SIGSEGV, &action, NULL);
    sigaction (SIGBUS, &action, NULL);
    sigaction (SIGABRT, &action, NULL);
    return 0;
}

int
dp_worker_run (const dp_worker_opts_t *opts)
{
    if ((opts->local || opts->supervised) && s_orphaned ())
        return DP_WORKER_EXIT_OK;
    if (!opts->endpoint || !*opts->endpoint) {
        fprintf (stderr, "dpool-worker: no broker endpoint\n");
        return DP_WORKER_EXIT_USAGE;
    }
    wk_worker_t *self = (wk_worker_t *) calloc (1, sizeof *self);
    if (!self) {
        fprintf (stderr, "dpool-worker: out of memory\n");
        return 1;
    }
    self->opts = opts;
    self->credit = opts->credit ? opts->credit : 64;
    self->hb_ms = opts->heartbeat_ms ? opts->heartbeat_ms : 1000;
    self->broker_hb = self->hb_ms;
    self->backoff = WK_BACKOFF_MIN;
    self->seed = (unsigned) getpid () ^ (unsigned) wk_now_ns ();
    self->registry = s_registry_load (opts->tasks, opts->ntasks, opts->modules, opts->nmodules);
    self->progress = dp_progress_child ();
    if (self->registry && !opts->allow_exec)
        dp_registry_remove (self->registry, "exec");
    char why [1024];
    //  local workers use the broker's private ipc endpoint, never CURVE
    if (!opts->local && dp_curve_client_keys (opts->curve_secret, opts->broker_key, "worker",
                                              opts->endpoint, &self->curve, why, sizeof why)) {
        fprintf (stderr, "dpool-worker: %s\n", why);
        dp_registry_destroy (&self->registry);
        free (self);
        return DP_WORKER_EXIT_USAGE;
    }
    //  the initializers run here, in a process that takes items, and
    //  nowhere else; the page tells the supervisor how they went (it
    //  waits for the first worker's at start-up)
    if (self->registry && dp_registry_init (self->registry, opts->init_args, why, sizeof why)) {
        fprintf (stderr, "dpool-worker: %s\n", why);
        dp_registry_destroy (&self->registry);
        if (self->progress) {
            snprintf (self->progress->init_error, sizeof self->progress->init_error, "%.255s", why);
            atomic_store (&self->progress->init_state, DP_INIT_FAILED);
        }
    }
    if (!self->registry) {
        free (self);
        return DP_WORKER_EXIT_CONFIG;
    }
    if (self->progress)
        atomic_store (&self->progress->init_state, DP_INIT_DONE);
    const char *node = getenv ("DPOOL_NODE");
    self->node = node ? strtoull (node, NULL, 10) : 0;
    wk_interrupted = 0;
    s_signals_install ();
    int code = WK_GO;
    self->ctx = zmq_ctx_new ();
    if (!self->ctx || wk_executor_start (self) || wk_watchdog_start (self)) {
        wk_log (self, 0, "cannot start: %s", zmq_strerror (errno));
        code = 1;
    }
    else
    if (wk_connect (self))
        code = DP_WORKER_EXIT_USAGE;    //  the endpoint itself is bad
    if (code == WK_GO && opts->mem_limit_mb && s_mem_limit (opts->mem_limit_mb))
        code = 1;
    if (code == WK_GO)
        code = wk_loop (self);
    s_shutdown (&self, wk_interrupted != 0 || (self && self->recycle));
    return code;
}
