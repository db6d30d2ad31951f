/*  =========================================================================
    dp_spawn - supervisor of the broker's local worker processes

    Local workers are started with posix_spawn (never a bare fork: the
    broker is a threaded process holding a ZeroMQ context) and connect back
    over ipc://. Each child is watched through a pidfd in the broker's poll
    set, so its death is seen at once, with its exit status, without a
    SIGCHLD handler and without reaping anyone else's children (an embedded
    broker lives inside a user's program). Children set PR_SET_PDEATHSIG
    and check getppid() against DPOOL_PARENT_PID, so they never outlive the
    broker. A child that dies is restarted at once if it had registered,
    else with a capped backoff (a worker that cannot start must not spin).
    =========================================================================
*/
#include "dp_broker_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   5000
#define STOP_GRACE_MS    2000
#define DEATH_GRACE_MS   20

static bool
s_executable (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 && S_ISREG (st.st_mode) && access (path, X_OK) == 0;
}

//  Try dir + "/" + rel; on success copy into buf.
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
        char *slash = strrchr (dir, '/');
        if (slash) {
            *slash = 0;
            if (s_try (buf, size, dir, "dpool-worker"))
                return 0;
        }
    }
    Dl_info info;
    if (dladdr ((void *) dp_find_worker_program, &info) && info.dli_fname) {
        snprintf (dir, sizeof dir, "%s", info.dli_fname);
        char *slash = strrchr (dir, '/');
        if (slash) {
            *slash = 0;
            if (s_try (buf, size, dir, "../bin/dpool-worker")
            ||  s_try (buf, size, dir, DPOOL_LIB_TO_BIN "/dpool-worker"))
                return 0;
        }
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

//  Spawn attributes that give the child default signal handling and an
//  empty mask (the broker thread may block signals its host blocks).
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

//  Run `dpool-worker --check -m ...` and wait for it: the modules must load
//  before the broker starts workers that would die at once. Returns 0, or
//  -1 with the worker's message in err.
int
spawn_check_modules (broker_t *self, char *err, size_t errlen)
{
    if (self->opts.nmodules == 0)
        return 0;
    int fds [2];
    if (pipe2 (fds, O_CLOEXEC) != 0) {
        snprintf (err, errlen, "pipe: %s", strerror (errno));
        return -1;
    }
    const char **argv = (const char **) zmalloc (sizeof (char *) * (2 * self->opts.nmodules + 3));
    int argc = 0;
    argv [argc++] = self->worker_program;
    argv [argc++] = "--check";
    for (size_t i = 0; i < self->opts.nmodules; i++) {
        argv [argc++] = "-m";
        argv [argc++] = self->opts.modules [i];
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2 (&fa, fds [1], 2);
    posix_spawnattr_t attr;
    s_spawnattr (&attr);
    pid_t pid;
    int rc = posix_spawn (&pid, self->worker_program, &fa, &attr, (char *const *) argv, environ);
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
    if (rc != 0 || !WIFEXITED (status) || WEXITSTATUS (status) != 0) {
        char *nl = strchr (text, '\n');
        if (nl)
            *nl = 0;
        snprintf (err, errlen, "%s", rc ? strerror (rc) : text [0] ? text : "module check failed");
        return -1;
    }
    return 0;
}

//  The environment for a local worker: ours plus DPOOL_PARENT_PID (built
//  per spawn rather than setenv, which is not safe in a threaded host).
//  Free env[0] and env.
static char **
s_child_env (void)
{
    size_t n = 0;
    while (environ [n])
        n++;
    char **env = (char **) zmalloc (sizeof (char *) * (n + 2));
    char parent [48];
    snprintf (parent, sizeof parent, "DPOOL_PARENT_PID=%d", (int) getpid ());
    env [0] = strdup (parent);
    size_t at = 1;
    for (size_t i = 0; i < n; i++)
        if (strncmp (environ [i], "DPOOL_PARENT_PID=", 17) != 0)
            env [at++] = environ [i];
    return env;
}

//  Start the worker of one slot. Returns 0 or -1.
static int
s_start (broker_t *self, slot_t *slot)
{
    char hb [16];
    snprintf (hb, sizeof hb, "%u", self->opts.heartbeat_ms);
    const char **argv = (const char **) zmalloc (sizeof (char *) * (2 * self->opts.nmodules + 8));
    int argc = 0;
    argv [argc++] = self->worker_program;
    argv [argc++] = "--connect";
    argv [argc++] = self->ipc;
    argv [argc++] = "--local";
    argv [argc++] = "--heartbeat";
    argv [argc++] = hb;
    for (size_t i = 0; i < self->opts.nmodules; i++) {
        argv [argc++] = "-m";
        argv [argc++] = self->opts.modules [i];
    }
    //  the worker's stdout is never the user's output: send it to stderr
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_adddup2 (&fa, 2, 1);
    posix_spawnattr_t attr;
    s_spawnattr (&attr);
    char **env = s_child_env ();
    pid_t pid;
    int rc = posix_spawn (&pid, self->worker_program, &fa, &attr, (char *const *) argv, env);
    posix_spawn_file_actions_destroy (&fa);
    posix_spawnattr_destroy (&attr);
    free (argv);
    free (env [0]);
    free (env);
    if (rc != 0) {
        zsys_error ("dpool-broker: cannot start %s: %s", self->worker_program, strerror (rc));
        return -1;
    }
    slot->pid = pid;
    slot->pidfd = (int) pidfd_open (pid, 0);
    slot->started_ms = self->now_ms;
    slot->restart_at_ms = 0;
    slot->worker = NULL;
    return 0;
}

int
spawn_start (broker_t *self, char *err, size_t errlen)
{
    for (int i = 0; i < self->nslots; i++) {
        self->slots [i].pidfd = -1;
        if (s_start (self, &self->slots [i]) != 0) {
            snprintf (err, errlen, "cannot start %s", self->worker_program);
            return -1;
        }
    }
    return 0;
}

void
spawn_poll_items (broker_t *self, zmq_pollitem_t *items, int *count, int max)
{
    for (int i = 0; i < self->nslots && *count < max; i++)
        if (self->slots [i].pid > 0 && self->slots [i].pidfd >= 0)
            items [(*count)++] = (zmq_pollitem_t) { NULL, self->slots [i].pidfd, ZMQ_POLLIN, 0 };
}

//  Describe a wait status: "SIGSEGV", "exit status 3".
static void
s_describe (int status, char *buf, size_t size)
{
    if (WIFSIGNALED (status)) {
        const char *name = sigabbrev_np (WTERMSIG (status));
        if (name)
            snprintf (buf, size, "SIG%s", name);
        else
            snprintf (buf, size, "signal %d", WTERMSIG (status));
    }
    else
        snprintf (buf, size, "exit status %d", WEXITSTATUS (status));
}

//  A local worker died. Its loss is handled a moment later (DEATH_GRACE_MS):
//  what it sent just before dying (a RESULT) may still be on its way
//  through the socket, and must be read first so that blame for the death
//  goes to the chunk it was really running.
static void
s_reap (broker_t *self, slot_t *slot)
{
    int status = 0;
    if (waitpid (slot->pid, &status, WNOHANG) == 0)
        return;     //  pidfd readable but not yet reapable: next round
    s_describe (status, slot->dead_why, sizeof slot->dead_why);
    if (slot->pidfd >= 0)
        close (slot->pidfd);
    slot->pidfd = -1;
    slot->pid = 0;
    slot->dead_ms = self->now_ms;
    if (slot->worker) {     //  no more chunks for it while the grace runs
        slot->worker->gone = true;
        link_remove (&slot->worker->available);
    }
}

//  Handle a reaped worker's loss: requeue its chunks, schedule its restart
//  (at once if it had registered, else with a capped backoff).
static void
s_handle_death (broker_t *self, slot_t *slot)
{
    bool registered = slot->worker != NULL;
    if (registered)
        broker_worker_lost (self, slot->worker, slot->dead_why);
    else
        zsys_warning ("dpool-broker: local worker died before registering (%s)", slot->dead_why);
    int delay = 0;
    if (!registered && !self->terminated) {
        delay = BACKOFF_MIN_MS << (slot->fast_failures < 6 ? slot->fast_failures : 6);
        delay = delay > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay;
        slot->fast_failures++;
    }
    else
        slot->fast_failures = 0;
    slot->worker = NULL;
    slot->dead_ms = 0;
    slot->restart_at_ms = self->now_ms + delay;
}

void
spawn_handle (broker_t *self, zmq_pollitem_t *items, int count)
{
    for (int i = 0; i < count; i++) {
        if (!(items [i].revents & ZMQ_POLLIN))
            continue;
        for (int s = 0; s < self->nslots; s++)
            if (self->slots [s].pid > 0 && self->slots [s].pidfd == items [i].fd) {
                s_reap (self, &self->slots [s]);
                break;
            }
    }
}

void
spawn_tick (broker_t *self)
{
    for (int i = 0; i < self->nslots; i++) {
        slot_t *slot = &self->slots [i];
        if (slot->pid > 0 && slot->pidfd < 0)
            s_reap (self, slot);    //  no pidfd (old kernel): poll instead
        if (slot->dead_ms && self->now_ms - slot->dead_ms >= DEATH_GRACE_MS)
            s_handle_death (self, slot);
        if (slot->pid == 0 && !slot->dead_ms && slot->restart_at_ms
        &&  slot->restart_at_ms <= self->now_ms)
            s_start (self, slot);
    }
}

//  When the loop must wake next for a local worker (a death to handle, a
//  restart due), at the latest `next`.
int64_t
spawn_next_event (broker_t *self, int64_t next)
{
    for (int i = 0; i < self->nslots; i++) {
        slot_t *slot = &self->slots [i];
        if (slot->dead_ms && slot->dead_ms + DEATH_GRACE_MS < next)
            next = slot->dead_ms + DEATH_GRACE_MS;
        if (slot->pid == 0 && !slot->dead_ms && slot->restart_at_ms && slot->restart_at_ms < next)
            next = slot->restart_at_ms;
    }
    return next;
}

slot_t *
spawn_slot_by_pid (broker_t *self, pid_t pid)
{
    for (int i = 0; i < self->nslots; i++)
        if (pid > 0 && self->slots [i].pid == pid)
            return &self->slots [i];
    return NULL;
}

bool
spawn_all_registered (broker_t *self)
{
    for (int i = 0; i < self->nslots; i++)
        if (!self->slots [i].worker)
            return false;
    return true;
}

//  Stop every local worker: SIGTERM, a grace period watched through the
//  pidfds, then SIGKILL; every child is reaped, so none is left a zombie.
void
spawn_stop (broker_t *self)
{
    for (int i = 0; i < self->nslots; i++)
        if (self->slots [i].pid > 0)
            kill (self->slots [i].pid, SIGTERM);
    int64_t deadline = zclock_mono () + STOP_GRACE_MS;
    for (int i = 0; i < self->nslots; i++) {
        slot_t *slot = &self->slots [i];
        if (slot->pid <= 0)
            continue;
        int64_t left = deadline - zclock_mono ();
        struct pollfd pfd = { slot->pidfd, POLLIN, 0 };
        if (slot->pidfd < 0 || poll (&pfd, 1, left > 0 ? (int) left : 0) <= 0)
            kill (slot->pid, SIGKILL);
        while (waitpid (slot->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        if (slot->pidfd >= 0)
            close (slot->pidfd);
        slot->pid = 0;
        slot->pidfd = -1;
        slot->worker = NULL;
    }
}
