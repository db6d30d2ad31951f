/*  =========================================================================
    dp_super - supervisor of N worker processes (see dp_super.h)

    Why pidfds: the broker may be embedded in a user's program, so it must
    neither install a SIGCHLD handler nor wait() for children that are not
    its own; a pidfd per child goes into the owner's zmq_poll set and becomes
    readable when that child exits. Children never outlive their supervisor:
    they set PR_SET_PDEATHSIG and check getppid() against DPOOL_PARENT_PID.
    =========================================================================
*/
#include "dp_super.h"
#include "dp_progress.h"
#include "dp_proto.h"

#include <czmq.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   5000
#define DEATH_GRACE_MS   20
#define ABORT_GRACE_MS   50     //  an aborted chunk may finish this long

typedef struct {
    pid_t pid;                  //  0: not running
    int pidfd;
    dp_progress_page_t *progress;   //  shared page
    int memfd;
    int64_t restart_at_ms;      //  0: none scheduled
    int fast_failures;          //  deaths before running any item
    bool dead;                  //  reaped, not yet reported
    bool exited;                //  fork server child: its pidfd fired, status due
    int64_t dead_ms;
    dp_death_t death;
    const char *kill_reason;    //  why we killed it (timeout, abort, silence), or NULL
    uint64_t kill_chunk;
    uint32_t kill_item;
    uint8_t kill_code;          //  its death's code: DP_ST_DIED for silence (0: as the reason)
    int64_t seen_alive;         //  the progress page's alive_ns when we last saw it change
    int64_t seen_at_ns;         //  our clock then
} s_child_t;

struct dp_super {
    dp_super_opts_t opts;       //  program and args point to our own copies
    char *program;
    char **args;
    s_child_t *children;
    char **env;                 //  environ + extras + DPOOL_PARENT_PID
    dp_forkserver_t *fs;        //  children come from the fork server, or NULL
    bool fs_gone;               //  its end was seen: no more children
    char **fs_env;              //  the extras alone (the server adds the rest)
    char fs_err [256];          //  why the last fork failed
    int64_t last_tick_ns;       //  our last dp_super_tick (liveness: our own stalls)
};

//  --------------------------------------------------------------------------
//  Finding the worker program

static bool
s_executable (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 && S_ISREG (st.st_mode) && access (path, X_OK) == 0;
}

static bool
s_try (char *buf, size_t size, const char *dir, const char *rel)
{
    char path [4096];
    snprintf (path, sizeof path, "%s/%s", dir, rel);
    if (!s_executable (path))
        return false;
    snprintf (buf, size, "%s", path);
    return true;
}

//  Directory part of a path, in place; false if none.
static bool
s_dirname (char *path)
{
    char *slash = strrchr (path, '/');
    if (!slash)
        return false;
    *slash = 0;
    return true;
}

int
dp_find_worker_program (char *buf, size_t size)
{
    const char *env = getenv ("DPOOL_WORKER");
    if (env && *env) {
        snprintf (buf, size, "%s", env);
        return s_executable (buf) ? 0 : -1;
    }
    char dir [4096];
    ssize_t n = readlink ("/proc/self/exe", dir, sizeof dir - 1);
    if (n > 0) {
        dir [n] = 0;
        if (s_dirname (dir) && s_try (buf, size, dir, "dpool-worker"))
            return 0;
    }
    Dl_info info;
    if (dladdr ((void *) dp_find_worker_program, &info) && info.dli_fname) {
        snprintf (dir, sizeof dir, "%s", info.dli_fname);
        if (s_dirname (dir)
        &&  (s_try (buf, size, dir, "../bin/dpool-worker")
          || s_try (buf, size, dir, DPOOL_LIB_TO_BIN "/dpool-worker")))
            return 0;
    }
    if (s_try (buf, size, DPOOL_INSTALL_BINDIR, "dpool-worker"))
        return 0;
    const char *path = getenv ("PATH");
    char *copy = strdup (path ? path : "/usr/local/bin:/usr/bin:/bin");
    char *save = NULL;
    bool found = false;
    for (char *d = strtok_r (copy, ":", &save); d && !found; d = strtok_r (NULL, ":", &save))
        found = s_try (buf, size, d, "dpool-worker");
    free (copy);
    return found ? 0 : -1;
}

//  --------------------------------------------------------------------------
//  Spawning

//  Spawn attributes that give the child default signal handling and an
//  empty mask (the supervisor's thread may block signals its host blocks).
static void
s_spawnattr (posix_spawnattr_t *attr)
{
    sigset_t none, all;
    sigemptyset (&none);
    sigfillset (&all);
    sigdelset (&all, SIGKILL);
    sigdelset (&all, SIGSTOP);
    posix_spawnattr_init (attr);
    posix_spawnattr_setsigmask (attr, &none);
    posix_spawnattr_setsigdefault (attr, &all);
    posix_spawnattr_setflags (attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

int
dp_super_check_modules (const char *program, const char *const *modules,
                        size_t nmodules, char *err, size_t errlen)
{
    if (nmodules == 0)
        return 0;
    int fds [2];
    if (pipe2 (fds, O_CLOEXEC) != 0) {
        snprintf (err, errlen, "pipe: %s", strerror (errno));
        return -1;
    }
    const char **argv = (const char **) calloc (2 * nmodules + 5, sizeof (char *));
    int argc = 0;
    argv [argc++] = program;
    argv [argc++] = "--check";
    for (size_t i = 0; i < nmodules; i++) {
        argv [argc++] = "-m";
        argv [argc++] = modules [i];
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2 (&fa, fds [1], 2);
    posix_spawnattr_t attr;
    s_spawnattr (&attr);
    pid_t pid;
    int rc = posix_spawn (&pid, program, &fa, &attr, (char *const *) argv, environ);
    posix_spawn_file_actions_destroy (&fa);
    posix_spawnattr_destroy (&attr);
    free (argv);
    close (fds [1]);
    char text [512] = "";
    size_t have = 0;
    ssize_t n;
    while (rc == 0 && have < sizeof text - 1
           && (n = read (fds [0], text + have, sizeof text - 1 - have)) > 0)
        have += (size_t) n;
    text [have] = 0;
    close (fds [0]);
    int status = 0;
    if (rc == 0)
        while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
            ;
    if (rc == 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0)
        return 0;
    char *nl = strchr (text, '\n');
    if (nl)
        *nl = 0;
    snprintf (err, errlen, "%s", rc ? strerror (rc) : text [0] ? text : "module check failed");
    return -1;
}

#define S_SLOT_ENV  "DPOOL_SLOT="
#define S_SLOT_SIZE 32

//  The children's environment: ours, the owner's extras, DPOOL_PARENT_PID,
//  and at S_ENV_SLOT DPOOL_SLOT, the child's slot + 1, written before each
//  start (built here rather than with setenv, which is unsafe in a
//  threaded host).
#define S_ENV_SLOT  2
static char **
s_child_env (const dp_super_opts_t *opts)
{
    size_t n = 0;
    while (environ [n])
        n++;
    char **env = (char **) calloc (n + opts->nenv + 4, sizeof (char *));
    char parent [48];
    snprintf (parent, sizeof parent, "DPOOL_PARENT_PID=%d", (int) getpid ());
    size_t at = 0;
    env [at++] = strdup (parent);
    env [at++] = strdup (DP_PROGRESS_ENV "=3");
    env [at++] = (char *) calloc (1, S_SLOT_SIZE);
    for (size_t i = 0; i < opts->nenv; i++)
        env [at++] = strdup (opts->env [i]);
    for (size_t i = 0; i < n; i++)
        if (strncmp (environ [i], "DPOOL_PARENT_PID=", 17) && strncmp (environ [i], DP_PROGRESS_ENV "=", 18)
        &&  strncmp (environ [i], S_SLOT_ENV, strlen (S_SLOT_ENV)))
            env [at++] = strdup (environ [i]);
    return env;
}

//  Write "DPOOL_SLOT=N" (the slot + 1: a job slot, GNU parallel's {%}) into
//  the buffer that a child's environment holds for it.
static void
s_slot_env (dp_super_t *self, s_child_t *child, char *buffer)
{
    snprintf (buffer, S_SLOT_SIZE, S_SLOT_ENV "%d", (int) (child - self->children) + 1);
}

//  A fresh shared progress page for a child. Returns 0 or -1.
static int
s_progress_new (s_child_t *child)
{
    if (child->progress) {
        memset (child->progress, 0, sizeof (dp_progress_page_t));
        atomic_store (&child->progress->item, DP_PROGRESS_NONE);
        return 0;
    }
    int fd = memfd_create ("dpool-progress", MFD_CLOEXEC);
    //  keep it above the child's DP_PROGRESS_FD, so dup2 always clears CLOEXEC
    child->memfd = fd >= 0 ? fcntl (fd, F_DUPFD_CLOEXEC, 10) : -1;
    if (fd >= 0)
        close (fd);
    if (child->memfd < 0 || ftruncate (child->memfd, sizeof (dp_progress_page_t)) != 0)
        return -1;
    void *page = mmap (NULL, sizeof (dp_progress_page_t), PROT_READ | PROT_WRITE, MAP_SHARED,
                       child->memfd, 0);
    if (page == MAP_FAILED)
        return -1;
    child->progress = (dp_progress_page_t *) page;
    atomic_store (&child->progress->item, DP_PROGRESS_NONE);
    return 0;
}

//  Start the child of one slot through the fork server. Returns 0, or -1
//  (then retried after the longest backoff: the server may be gone).
static int
s_start_forked (dp_super_t *self, s_child_t *child)
{
    size_t nenv = 0;
    while (self->fs_env [nenv])
        nenv++;
    s_slot_env (self, child, self->fs_env [nenv - 1]);
    pid_t pid;
    int pidfd = -1;
    if (self->fs_gone
    ||  dp_forkserver_spawn (self->fs, self->opts.args, self->opts.nargs,
                             (const char *const *) self->fs_env, nenv, child->memfd,
                             &pid, &pidfd, self->fs_err, sizeof self->fs_err)) {
        if (self->fs_gone)
            snprintf (self->fs_err, sizeof self->fs_err, "the fork server is gone");
        fprintf (stderr, "dpool: cannot start a worker: %s\n", self->fs_err);
        child->restart_at_ms = zclock_mono () + BACKOFF_MAX_MS;
        return -1;
    }
    child->pid = pid;
    child->pidfd = pidfd;
    child->restart_at_ms = 0;
    child->dead = false;
    child->exited = false;
    child->kill_reason = NULL;
    child->kill_code = 0;
    return 0;
}

//  Signal a child: through its pidfd when it is the fork server's (its pid
//  may be recycled once the server reaped it), else by pid.
static void
s_signal (dp_super_t *self, s_child_t *child, int sig)
{
    if (self->fs && child->pidfd >= 0)
        pidfd_send_signal (child->pidfd, sig, NULL, 0);
    else
        kill (child->pid, sig);
}

//  Start the child of one slot. Returns 0 or -1.
static int
s_start (dp_super_t *self, s_child_t *child)
{
    if (s_progress_new (child) != 0)
        return -1;
    if (self->fs)
        return s_start_forked (self, child);
    const char **argv = (const char **) calloc (self->opts.nargs + 2, sizeof (char *));
    argv [0] = self->opts.program;
    for (size_t i = 0; i < self->opts.nargs; i++)
        argv [i + 1] = self->opts.args [i];
    //  a worker's stdout is never the user's output: it goes to stderr
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_adddup2 (&fa, 2, 1);
    posix_spawn_file_actions_adddup2 (&fa, child->memfd, DP_PROGRESS_FD);
    posix_spawnattr_t attr;
    s_spawnattr (&attr);
    pid_t pid;
    s_slot_env (self, child, self->env [S_ENV_SLOT]);
    int rc = posix_spawn (&pid, self->opts.program, &fa, &attr, (char *const *) argv, self->env);
    posix_spawn_file_actions_destroy (&fa);
    posix_spawnattr_destroy (&attr);
    free (argv);
    if (rc != 0) {
        fprintf (stderr, "dpool: cannot start %s: %s\n", self->opts.program, strerror (rc));
        return -1;
    }
    child->pid = pid;
    child->pidfd = (int) pidfd_open (pid, 0);
    child->restart_at_ms = 0;
    child->dead = false;
    child->kill_reason = NULL;
    child->kill_code = 0;
    return 0;
}

dp_super_t *
dp_super_new (const dp_super_opts_t *opts)
{
    dp_super_t *self = (dp_super_t *) calloc (1, sizeof (dp_super_t));
    self->opts = *opts;
    self->program = strdup (opts->program);
    self->args = (char **) calloc (opts->nargs + 1, sizeof (char *));
    for (size_t i = 0; i < opts->nargs; i++)
        self->args [i] = strdup (opts->args [i]);
    self->opts.program = self->program;
    self->opts.args = (const char *const *) self->args;
    self->opts.env = NULL;      //  copied into self->env
    self->children = (s_child_t *) calloc ((size_t) opts->children + 1, sizeof (s_child_t));
    for (int i = 0; i < opts->children; i++) {
        self->children [i].pidfd = -1;
        self->children [i].memfd = -1;
    }
    self->env = s_child_env (opts);
    self->fs = opts->forkserver;
    if (self->fs) {
        self->fs_env = (char **) calloc (opts->nenv + 2, sizeof (char *));
        for (size_t i = 0; i < opts->nenv; i++)
            self->fs_env [i] = strdup (opts->env [i]);
        self->fs_env [opts->nenv] = (char *) calloc (1, S_SLOT_SIZE);   //  the slot, last
    }
    self->opts.forkserver = NULL;
    return self;
}

void
dp_super_destroy (dp_super_t **self_p)
{
    dp_super_t *self = *self_p;
    if (!self)
        return;
    dp_super_stop (self, 0);
    for (int i = 0; i < self->opts.children; i++) {
        s_child_t *child = &self->children [i];
        if (child->progress)
            munmap (child->progress, sizeof (dp_progress_page_t));
        if (child->memfd >= 0)
            close (child->memfd);
    }
    for (char **e = self->env; *e; e++)
        free (*e);
    free (self->env);
    for (char **e = self->fs_env; e && *e; e++)
        free (*e);
    free (self->fs_env);
    dp_forkserver_disconnect (&self->fs);
    for (size_t i = 0; i < self->opts.nargs; i++)
        free (self->args [i]);
    free (self->args);
    free (self->program);
    free (self->children);
    free (self);
    *self_p = NULL;
}

int
dp_super_start (dp_super_t *self, char *err, size_t errlen)
{
    for (int i = 0; i < self->opts.children; i++)
        if (s_start (self, &self->children [i]) != 0) {
            if (self->fs)
                snprintf (err, errlen, "cannot start a worker: %s", self->fs_err);
            else
                snprintf (err, errlen, "cannot start %s", self->opts.program);
            return -1;
        }
    return 0;
}

int
dp_super_wait_init (dp_super_t *self, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        for (int i = 0; i < self->opts.children; i++) {
            dp_progress_page_t *page = self->children [i].progress;
            uint32_t state = page ? atomic_load (&page->init_state) : DP_INIT_PENDING;
            if (state == DP_INIT_DONE)
                return 0;
            if (state == DP_INIT_FAILED) {
                snprintf (err, errlen, "%.*s", (int) sizeof page->init_error, page->init_error);
                return -1;
            }
        }
        if (zclock_mono () >= deadline)
            return 0;
        zclock_sleep (2);           //  children starting: a short start-up wait
    }
}

int
dp_super_size (dp_super_t *self)
{
    return self->opts.children;
}

int
dp_super_slot (dp_super_t *self, pid_t pid)
{
    for (int i = 0; pid > 0 && i < self->opts.children; i++)
        if (self->children [i].pid == pid && !self->children [i].dead)
            return i;
    return -1;
}

bool
dp_super_running (dp_super_t *self, int slot)
{
    return slot >= 0 && slot < self->opts.children && self->children [slot].pid > 0
        && !self->children [slot].dead;
}

//  --------------------------------------------------------------------------
//  Deaths

void
dp_super_poll_items (dp_super_t *self, zmq_pollitem_t *items, int *count, int max)
{
    if (self->fs && !self->fs_gone && *count < max)
        items [(*count)++] = (zmq_pollitem_t) { NULL, dp_forkserver_fd (self->fs), ZMQ_POLLIN, 0 };
    for (int i = 0; i < self->opts.children && *count < max; i++)
        if (self->children [i].pid > 0 && !self->children [i].dead && self->children [i].pidfd >= 0
        &&  !self->children [i].exited)
            items [(*count)++] = (zmq_pollitem_t) { NULL, self->children [i].pidfd, ZMQ_POLLIN, 0 };
}

//  Describe how a child ended, from its wait status and its progress page.
static void
s_describe (dp_super_t *self, s_child_t *child, int status)
{
    dp_death_t *death = &child->death;
    death->code = DP_ST_DIED;
    death->chunk = atomic_load (&child->progress->chunk);
    death->item = atomic_load (&child->progress->item);
    death->clean = WIFEXITED (status) && WEXITSTATUS (status) == 0;
    death->aborted = false;
    if (child->kill_reason) {
        snprintf (death->reason, sizeof death->reason, "%s", child->kill_reason);
        death->chunk = child->kill_chunk;
        death->item = child->kill_item;
        death->aborted = strcmp (child->kill_reason, "aborted") == 0 || !child->kill_chunk
                      || child->kill_item == DP_PROGRESS_NONE;
        death->code = death->aborted ? DP_ST_CANCELLED
                    : child->kill_code ? child->kill_code : DP_ST_TIMEOUT;
    }
    else
    if (atomic_load (&child->progress->oom) && self->opts.mem_limit_mb)
        snprintf (death->reason, sizeof death->reason, "out of memory (limit %u MiB)",
                  self->opts.mem_limit_mb);
    else
    if (WIFSIGNALED (status)) {
        const char *name = sigabbrev_np (WTERMSIG (status));
        if (name)
            snprintf (death->reason, sizeof death->reason, "SIG%s", name);
        else
            snprintf (death->reason, sizeof death->reason, "signal %d", WTERMSIG (status));
    }
    else
        snprintf (death->reason, sizeof death->reason, "exit status %d", WEXITSTATUS (status));
}

//  A child has been reaped with this wait status: describe it; its death
//  is reported after the grace.
static void
s_reaped (dp_super_t *self, s_child_t *child, int status)
{
    s_describe (self, child, status);
    child->death.slot = (int) (child - self->children);
    child->death.pid = child->pid;
    if (child->pidfd >= 0)
        close (child->pidfd);
    child->pidfd = -1;
    child->dead = true;
    child->dead_ms = zclock_mono ();
}

//  Reap a child whose pidfd fired.
static void
s_reap (dp_super_t *self, s_child_t *child)
{
    int status = 0;
    pid_t rc = waitpid (child->pid, &status, WNOHANG);
    if (rc == 0)
        return;
    s_reaped (self, child, rc < 0 ? 0 : status);
}

//  The running child with this pid, or NULL.
static s_child_t *
s_child_by_pid (dp_super_t *self, pid_t pid)
{
    for (int c = 0; pid > 0 && c < self->opts.children; c++)
        if (self->children [c].pid == pid && !self->children [c].dead)
            return &self->children [c];
    return NULL;
}

//  Take the statuses the fork server reported. When it is gone, so are
//  its children (they die with it): each is taken for killed.
static void
s_fs_drain (dp_super_t *self)
{
    pid_t pid;
    int status, rc;
    while (!self->fs_gone && (rc = dp_forkserver_reaped (self->fs, &pid, &status)) != 0) {
        if (rc < 0) {
            self->fs_gone = true;
            fprintf (stderr, "dpool: the fork server is gone: its workers are lost\n");
            for (int c = 0; c < self->opts.children; c++)
                if (self->children [c].pid > 0 && !self->children [c].dead)
                    s_reaped (self, &self->children [c], SIGKILL);
            return;
        }
        s_child_t *child = s_child_by_pid (self, pid);
        if (child)
            s_reaped (self, child, status);
    }
}

void
dp_super_handle (dp_super_t *self, zmq_pollitem_t *items, int count)
{
    for (int i = 0; i < count; i++) {
        if (!(items [i].revents & ZMQ_POLLIN))
            continue;
        for (int c = 0; c < self->opts.children; c++) {
            s_child_t *child = &self->children [c];
            if (child->pid > 0 && !child->dead && child->pidfd == items [i].fd) {
                if (self->fs)
                    child->exited = true;   //  its status comes from the server
                else
                    s_reap (self, child);
                break;
            }
        }
    }
    if (self->fs)
        s_fs_drain (self);
}

//  Report a death to the owner and schedule the restart: at once if the
//  child had run items, else with a capped backoff.
static void
s_report (dp_super_t *self, s_child_t *child)
{
    bool served = atomic_load (&child->progress->items_done) > 0
               || child->death.chunk != 0 || child->death.clean;
    child->pid = 0;
    child->dead = false;
    if (self->opts.on_death)
        self->opts.on_death (self->opts.owner, &child->death);
    int delay = 0;
    if (!served) {
        delay = BACKOFF_MIN_MS << (child->fast_failures < 6 ? child->fast_failures : 6);
        delay = delay > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay;
        child->fast_failures++;
    }
    else
        child->fast_failures = 0;
    child->restart_at_ms = zclock_mono () + delay;
    if (child->restart_at_ms == 0)
        child->restart_at_ms = 1;
}

//  Was this chunk aborted more than ABORT_GRACE_MS ago?
static bool
s_aborted_since (dp_progress_page_t *p, uint64_t chunk, int64_t now_ns)
{
    for (int i = 0; i < 4; i++)
        if (dp_abort_has (&p->abort_chunk [i], &p->abort_count [i], chunk)
        &&  now_ns - atomic_load (&p->abort_ns [i]) > (int64_t) ABORT_GRACE_MS * 1000000)
            return true;
    return false;
}

//  Kill a child that stopped turning its loop (SIGSTOP, a hang) for longer
//  than the liveness limit: it is replaced like any dead child, and the
//  item it runs, if any, is blamed as for a crash (PROTOCOL.md rule 7: the
//  one item charged an attempt, the others requeued uncharged). Returns
//  true if it was killed.
static bool
s_watch_alive (dp_super_t *self, s_child_t *child, int64_t now_ns)
{
    dp_progress_page_t *p = child->progress;
    int64_t alive = atomic_load (&p->alive_ns);
    //  silence is counted on our own clock from when we saw the last sign,
    //  and only while we ourselves run (dp_super_tick resets it after a
    //  stall of ours: a loaded host that stopped everybody kills nobody)
    if (alive != child->seen_alive) {
        child->seen_alive = alive;
        child->seen_at_ns = now_ns;
    }
    int64_t silent = now_ns - child->seen_at_ns;
    if (!self->opts.liveness_ms || !alive || child->kill_reason
    ||  silent <= (int64_t) self->opts.liveness_ms * 1000000)
        return false;
    static __thread char reason [64];
    snprintf (reason, sizeof reason, "no sign of life for %.1f s (stopped or hung)",
              (double) silent / 1e9);
    child->kill_reason = reason;
    child->kill_code = DP_ST_DIED;
    child->kill_chunk = atomic_load (&p->chunk);
    child->kill_item = child->kill_chunk ? atomic_load (&p->item) : DP_PROGRESS_NONE;
    s_signal (self, child, SIGKILL);
    return true;
}

//  Kill a child whose item outlived its timeout, or whose chunk was
//  aborted and is still running after ABORT_GRACE_MS.
static void
s_watch (dp_super_t *self, s_child_t *child, int64_t now_ns)
{
    dp_progress_page_t *p = child->progress;
    if (s_watch_alive (self, child, now_ns))
        return;
    uint64_t chunk = atomic_load (&p->chunk);
    uint32_t item = atomic_load (&p->item);
    if (!chunk || item == DP_PROGRESS_NONE || child->kill_reason)
        return;
    uint32_t timeout = atomic_load (&p->timeout_ms);
    int64_t ran = now_ns - atomic_load (&p->started_ns);
    static __thread char reason [64];
    if (timeout && ran > (int64_t) timeout * 1000000) {
        snprintf (reason, sizeof reason, "timed out after %.1f s", timeout / 1000.0);
        child->kill_reason = reason;
    }
    else
    if (s_aborted_since (p, chunk, now_ns))
        child->kill_reason = "aborted";
    else
        return;
    child->kill_chunk = chunk;
    child->kill_item = item;
    s_signal (self, child, SIGKILL);
}

void
dp_super_kill (dp_super_t *self, int slot, const char *reason)
{
    if (slot < 0 || slot >= self->opts.children)
        return;
    s_child_t *child = &self->children [slot];
    if (child->pid <= 0 || child->dead || child->kill_reason)
        return;
    child->kill_reason = reason;
    child->kill_chunk = 0;
    child->kill_item = DP_PROGRESS_NONE;
    s_signal (self, child, SIGKILL);
}

void
dp_super_tick (dp_super_t *self)
{
    int64_t now = zclock_mono ();
    int64_t now_ns = dp_progress_now_ns ();
    //  we did not run for half the liveness limit: we cannot tell who was
    //  silent, so every child's silence counts from now
    bool stalled = self->opts.liveness_ms && self->last_tick_ns
                && now_ns - self->last_tick_ns > (int64_t) self->opts.liveness_ms * 500000;
    self->last_tick_ns = now_ns;
    for (int i = 0; stalled && i < self->opts.children; i++)
        self->children [i].seen_at_ns = now_ns;
    if (self->fs)
        s_fs_drain (self);
    for (int i = 0; i < self->opts.children; i++) {
        s_child_t *child = &self->children [i];
        if (child->pid > 0 && !child->dead) {
            if (child->pidfd < 0 && !self->fs)
                s_reap (self, child);       //  no pidfd (old kernel): poll
            else
                s_watch (self, child, now_ns);
        }
        if (child->dead && now - child->dead_ms >= DEATH_GRACE_MS)
            s_report (self, child);
        if (child->pid == 0 && child->restart_at_ms && child->restart_at_ms <= now)
            s_start (self, child);
    }
}

int64_t
dp_super_next_event (dp_super_t *self, int64_t next)
{
    for (int i = 0; i < self->opts.children; i++) {
        s_child_t *child = &self->children [i];
        if (child->dead && child->dead_ms + DEATH_GRACE_MS < next)
            next = child->dead_ms + DEATH_GRACE_MS;
        if (child->pid == 0 && child->restart_at_ms && child->restart_at_ms < next)
            next = child->restart_at_ms;
        //  a running item with a timeout or an abort: watch it closely
        if (child->pid > 0 && child->progress && atomic_load (&child->progress->chunk)
        &&  (atomic_load (&child->progress->timeout_ms) || atomic_load (&child->progress->abort_ns [0]))) {
            int64_t soon = zclock_mono () + 20;
            if (soon < next)
                next = soon;
        }
    }
    return next;
}

//  dp_super_stop for the fork server's children: they are not ours to
//  wait for, so wait for the server's statuses (it has reaped them then).
static void
s_stop_forked (dp_super_t *self, int grace_ms)
{
    for (int i = 0; i < self->opts.children; i++) {
        self->children [i].restart_at_ms = 0;
        if (self->children [i].pid > 0 && !self->children [i].dead)
            s_signal (self, &self->children [i], SIGTERM);
    }
    int64_t deadline = zclock_mono () + grace_ms;
    for (int i = 0; i < self->opts.children; i++) {
        s_child_t *child = &self->children [i];
        if (child->pid <= 0 || child->dead)
            continue;
        int64_t left = deadline - zclock_mono ();
        struct pollfd pfd = { child->pidfd, POLLIN, 0 };
        if (child->pidfd < 0 || poll (&pfd, 1, left > 0 ? (int) left : 0) <= 0)
            s_signal (self, child, SIGKILL);
    }
    //  every status, or the server's end (it reaps all it has then)
    deadline = zclock_mono () + grace_ms + 2000;
    while (!self->fs_gone) {
        bool waiting = false;
        for (int i = 0; i < self->opts.children; i++)
            waiting |= self->children [i].pid > 0 && !self->children [i].dead;
        int64_t left = deadline - zclock_mono ();
        pid_t pid;
        int status;
        int rc = waiting && left > 0 ? dp_forkserver_wait (self->fs, &pid, &status, (int) left) : 0;
        if (rc == 0)
            break;
        if (rc < 0)
            self->fs_gone = true;
        s_child_t *child = rc > 0 ? s_child_by_pid (self, pid) : NULL;
        if (child)
            s_reaped (self, child, status);
    }
    for (int i = 0; i < self->opts.children; i++) {
        s_child_t *child = &self->children [i];
        if (child->pidfd >= 0)
            close (child->pidfd);
        child->pidfd = -1;
        child->pid = 0;
        child->dead = false;
        child->exited = false;
    }
}

void
dp_super_stop (dp_super_t *self, int grace_ms)
{
    if (self->fs) {
        s_stop_forked (self, grace_ms);
        return;
    }
    for (int i = 0; i < self->opts.children; i++) {
        self->children [i].restart_at_ms = 0;
        if (self->children [i].pid > 0 && !self->children [i].dead)
            kill (self->children [i].pid, SIGTERM);
    }
    int64_t deadline = zclock_mono () + grace_ms;
    for (int i = 0; i < self->opts.children; i++) {
        s_child_t *child = &self->children [i];
        if (child->pid <= 0)
            continue;
        if (!child->dead) {
            int64_t left = deadline - zclock_mono ();
            struct pollfd pfd = { child->pidfd, POLLIN, 0 };
            if (child->pidfd < 0 || poll (&pfd, 1, left > 0 ? (int) left : 0) <= 0)
                kill (child->pid, SIGKILL);
            while (waitpid (child->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
        if (child->pidfd >= 0)
            close (child->pidfd);
        child->pidfd = -1;
        child->pid = 0;
        child->dead = false;
    }
}

//  --------------------------------------------------------------------------
//  Child side

dp_progress_page_t *
dp_progress_child (void)
{
    static dp_progress_page_t *page = NULL;
    static bool looked = false;
    if (looked)
        return page;
    looked = true;
    const char *fd = getenv (DP_PROGRESS_ENV);
    if (!fd || !*fd)
        return NULL;
    int number = (int) strtol (fd, NULL, 10);
    void *p = mmap (NULL, sizeof (dp_progress_page_t), PROT_READ | PROT_WRITE, MAP_SHARED, number, 0);
    page = p == MAP_FAILED ? NULL : (dp_progress_page_t *) p;
    //  the mapping stays; the fd must not leak into the commands tasks run
    if (page)
        fcntl (number, F_SETFD, FD_CLOEXEC);
    return page;
}
