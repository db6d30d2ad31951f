/*  =========================================================================
    dp_exec - the built-in `exec` task: one command per item

    A command starts with clone (CLONE_VM | CLONE_VFORK, as posix_spawn
    does: never fork, the worker is threaded and may be large) so that the
    child can do what posix_spawn cannot before execve: set
    PR_SET_PDEATHSIG and check getppid, and tell the guard its process
    group. The child runs on a stack of its own with every signal blocked
    and only async-signal-safe calls.

    The guard is a process forked once per worker, on its first command,
    that only reads a socket: "+pgid" when a command starts (sent by the
    child itself, before execve, so no window is left), "-pgid" when the
    worker is about to reap it (before waitpid, while the zombie still
    holds the group id, so the id cannot be reused by then). When the
    socket ends -- the worker exited or was killed, by anyone, SIGKILL
    included -- the guard SIGKILLs every group still recorded and exits.
    A supervisor's kill for --task-timeout or an aborted chunk (dp_super.c)
    kills the worker, so the guard ends its command too. The guard sits in
    a process group of its own and closes every other file descriptor, so
    that it neither takes the worker's group signals nor keeps its sockets
    open. Being a fork, it shares the worker's memory as it was then (copy
    on write: pages the worker rewrites later are kept for the guard too),
    which is why it is forked on the first command, while a worker that
    runs commands is still small, and not later.

    The worker reads stdout and stderr with poll. Stdout streams straight
    into the reply (the map starts with "out" and a bin32 header patched
    at the end), stderr into a buffer packed after it. When the command's
    first process exits, the pipes are drained of what is there and the
    rest of its process group is killed: nothing a command started in its
    group outlives its item.

    Big output streams when the executor gives a stream (the client takes
    PARTs): each time DP_EXEC_PART bytes of stdout (or of stderr) are
    buffered, they go as a PART and the buffer starts again, so memory
    stays bounded whatever the command prints (an item that asks "flush"
    sends each piece as it is read: `dpool run -u` / `--line-buffer`,
    whose output is printed as it comes). With DP_PART_WINDOW parts
    unacknowledged, the pipes are not read (the command blocks on its
    writes) until an acknowledgement wakes us. The reply then holds the
    rest and the number of parts, and goes only once every part has been
    acknowledged, so the client has them all before the reply. A cut
    stream (session over, chunk aborted) kills the command and fails the
    item.
    =========================================================================
*/
#include "dp_exec.h"
#include "dp_exec_msg.h"
#include "dp_proto.h"
#include "dp_task_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define S_READ_CHUNK    65536           //  read size for stdout / stderr
#define S_CHILD_STACK   65536           //  stack of the cloned child
#define S_GUARD_MAX     64              //  groups a guard records

//  Process group of the running command (0: none), for dp_task_kill_child
static atomic_int s_child_pgid;

//  The calling thread's output stream, or NULL (dp_exec_stream_set)
static _Thread_local const dp_exec_stream_t *s_stream;

void
dp_exec_stream_set (const dp_exec_stream_t *stream)
{
    s_stream = stream;
}

//  The guard's socket (worker side) and the pid it was forked in: a fork
//  of the worker (a fork server's child) starts a guard of its own.
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static int s_guard = -1;
static pid_t s_guard_owner;
static pid_t s_guard_pid;


//  --------------------------------------------------------------------------
//  The guard

//  Runs in the forked guard (one thread: async-signal-safe calls only).
//  Never returns.
static void
s_guard_main (int fd)
{
    sigset_t all;
    sigfillset (&all);
    sigprocmask (SIG_SETMASK, &all, NULL);
    setpgid (0, 0);
    //  its own name in ps/pgrep: it is no worker (takes no items)
    prctl (PR_SET_NAME, "dpool-guard", 0, 0, 0);
    if (fd != 0)
        dup2 (fd, 0);
    //  the worker's sockets, and our copy of the guard's other end
    if (syscall (SYS_close_range, 1u, ~0u, 0u) != 0)
        for (int i = 1; i < 4096; i++)
            close (i);
    pid_t groups [S_GUARD_MAX];
    size_t n = 0;
    while (true) {
        int32_t msg [64];
        ssize_t got = read (0, msg, sizeof msg);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        for (size_t i = 0; i < (size_t) got / sizeof msg [0]; i++) {
            pid_t pgid = msg [i] > 0 ? msg [i] : -msg [i];
            size_t at = 0;
            while (at < n && groups [at] != pgid)
                at++;
            if (msg [i] > 0 && at == n) {
                if (n == S_GUARD_MAX)           //  full: forget the oldest
                    memmove (groups, groups + 1, --n * sizeof groups [0]);
                groups [n++] = pgid;
            }
            else
            if (msg [i] < 0 && at < n)
                groups [at] = groups [--n];
        }
    }
    for (size_t i = 0; i < n; i++)
        kill (-groups [i], SIGKILL);
    _exit (0);
}

//  The guard's socket, forking the guard on first use in this process.
//  -1 if it cannot be started (commands then have PDEATHSIG only).
static int
s_guard_get (void)
{
    pthread_mutex_lock (&s_lock);
    if (s_guard >= 0 && s_guard_owner != getpid ()) {
        close (s_guard);                //  inherited from the process we forked from
        s_guard = -1;
    }
    if (s_guard < 0) {
        int sv [2];
        if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
            pid_t pid = fork ();
            if (pid == 0)
                s_guard_main (sv [1]);
            close (sv [1]);
            if (pid > 0) {
                s_guard = sv [0];
                s_guard_owner = getpid ();
                s_guard_pid = pid;
            }
            else
                close (sv [0]);
        }
    }
    int fd = s_guard;
    pthread_mutex_unlock (&s_lock);
    return fd;
}

//  Tell the guard a group has started (pgid > 0) or ended. Returns 0, or
//  -1 if the guard is gone.
static int
s_guard_send (int fd, int32_t msg)
{
    ssize_t rc = 0;
    if (fd >= 0)
        while ((rc = send (fd, &msg, sizeof msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
            ;
    return rc < 0 ? -1 : 0;
}

//  The worker side of s_guard_send: a guard found gone (killed by someone)
//  is forgotten, and the next command forks a new one.
static void
s_guard_tell (int fd, int32_t msg)
{
    if (s_guard_send (fd, msg) == 0)
        return;
    pthread_mutex_lock (&s_lock);
    if (s_guard == fd) {
        close (s_guard);
        s_guard = -1;
        waitpid (s_guard_pid, NULL, WNOHANG);   //  its zombie
    }
    pthread_mutex_unlock (&s_lock);
}


//  --------------------------------------------------------------------------
//  Starting a command

//  The program a command name runs: NAME with a '/' as is, else the first
//  executable NAME in $PATH, remembered (a worker's PATH does not change).
//  Writes it to `path`; returns 0 or ENOENT.
static int
s_resolve (const char *name, char *path, size_t size)
{
    static struct { char name [64]; char path [512]; } cache [16];
    static int cached = 0;
    if (strchr (name, '/')) {
        snprintf (path, size, "%s", name);
        return 0;
    }
    int rc = ENOENT;
    pthread_mutex_lock (&s_lock);
    for (int i = 0; i < cached && rc; i++)
        if (strcmp (cache [i].name, name) == 0) {
            snprintf (path, size, "%s", cache [i].path);
            rc = 0;
        }
    const char *env = getenv ("PATH");
    char dirs [4096];
    snprintf (dirs, sizeof dirs, "%s", env ? env : "/usr/local/bin:/usr/bin:/bin");
    char *save = NULL;
    for (char *d = strtok_r (dirs, ":", &save); d && rc; d = strtok_r (NULL, ":", &save)) {
        snprintf (path, size, "%s/%s", *d ? d : ".", name);
        if (access (path, X_OK) == 0) {
            rc = 0;
            if (cached < 16 && strlen (name) < sizeof cache [0].name
            &&  strlen (path) < sizeof cache [0].path) {
                snprintf (cache [cached].name, sizeof cache [0].name, "%s", name);
                snprintf (cache [cached].path, sizeof cache [0].path, "%s", path);
                cached++;
            }
        }
    }
    pthread_mutex_unlock (&s_lock);
    return rc;
}

//  Environment of a command: the worker's, with the item's variables and
//  PARALLEL_SEQ / PARALLEL_JOBSLOT (and the "slotvar", the slot less one)
//  replacing any of the same name. The array is malloc'd (free it); its
//  strings belong to environ, the item, or `extra` (three buffers).
static char **
s_environ (const dp_exec_item_t *item, char extra [3][96])
{
    size_t nitem = 0, nenv = 0;
    while (item->env && item->env [nitem])
        nitem++;
    while (environ [nenv])
        nenv++;
    char **list = malloc ((nenv + nitem + 4) * sizeof *list);
    char **add = malloc ((nitem + 3) * sizeof *add);
    if (!list || !add) {
        free (list);
        free (add);
        return NULL;
    }
    size_t nadd = 0;
    for (size_t i = 0; i < nitem; i++)
        add [nadd++] = item->env [i];
    if (item->has_seq) {
        snprintf (extra [0], 96, "PARALLEL_SEQ=%llu", (unsigned long long) item->seq);
        add [nadd++] = extra [0];
    }
    if (item->has_slot) {
        snprintf (extra [1], 96, "PARALLEL_JOBSLOT=%llu", (unsigned long long) item->slot);
        add [nadd++] = extra [1];
    }
    if (item->slotvar) {                //  a checked name of at most 64 bytes
        unsigned long long slot = item->has_slot && item->slot ? item->slot : 1;
        snprintf (extra [2], 96, "%s=%llu", item->slotvar, slot - 1);
        add [nadd++] = extra [2];
    }
    size_t n = 0;
    for (size_t i = 0; i < nenv; i++) {
        const char *eq = strchr (environ [i], '=');
        size_t nlen = eq ? (size_t) (eq - environ [i]) : strlen (environ [i]);
        bool replaced = false;
        for (size_t j = 0; j < nadd && !replaced; j++)
            replaced = strncmp (add [j], environ [i], nlen) == 0 && add [j][nlen] == '=';
        if (!replaced)
            list [n++] = environ [i];
    }
    for (size_t j = 0; j < nadd; j++)
        list [n++] = add [j];
    list [n] = NULL;
    free (add);
    return list;
}

typedef struct {
    const char *path;
    char **argv;
    char **envp;
    const char *cwd;
    int fd [3];                 //  the command's stdin, stdout, stderr
    int guard;                  //  the guard's socket, or -1
    pid_t ppid;                 //  the worker
    volatile int error;         //  errno of a failed execve
} s_spawn_t;

//  The cloned child: it shares the worker's memory until execve and runs
//  with every signal blocked; async-signal-safe calls only.
static int
s_child (void *arg)
{
    s_spawn_t *a = (s_spawn_t *) arg;
    setpgid (0, 0);
    if (prctl (PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid () != a->ppid)
        _exit (127);                    //  the worker is already gone
    s_guard_send (a->guard, (int32_t) getpid ());
    //  Default dispositions: handlers would run on the worker's memory,
    //  ignored signals would stay ignored after execve.
    struct sigaction dfl;
    memset (&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction old;
        if (sig != SIGKILL && sig != SIGSTOP && sigaction (sig, NULL, &old) == 0
        &&  old.sa_handler != SIG_DFL)
            sigaction (sig, &dfl, NULL);
    }
    for (int i = 0; i < 3; i++)
        if (dup2 (a->fd [i], i) < 0)
            goto failed;
    if (a->cwd && chdir (a->cwd) != 0) {
        //  no such directory here: stay in the worker's
    }
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    execve (a->path, a->argv, a->envp);
failed:
    a->error = errno;
    _exit (127);
}

//  A descriptor at 3 or above (the child's dup2 onto 0..2 must not hit one
//  of its sources), close-on-exec. Returns it, or -1.
static int
s_high_fd (int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int high = fcntl (fd, F_DUPFD_CLOEXEC, 3);
    close (fd);
    return high;
}

//  Start the command: returns 0 with *pid set, or an errno value.
static int
s_spawn (s_spawn_t *a, pid_t *pid)
{
    static char stack [S_CHILD_STACK] __attribute__ ((aligned (64)));
    static pthread_mutex_t stack_lock = PTHREAD_MUTEX_INITIALIZER;
    sigset_t all, old;
    sigfillset (&all);
    a->ppid = getpid ();
    a->error = 0;
    pthread_mutex_lock (&stack_lock);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    *pid = clone (s_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
    int rc = *pid < 0 ? errno : 0;
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    pthread_mutex_unlock (&stack_lock);
    if (rc == 0 && a->error) {
        //  started, but execve failed: reap it
        rc = a->error;
        s_guard_tell (a->guard, -(int32_t) *pid);
        while (waitpid (*pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    return rc;
}


//  --------------------------------------------------------------------------
//  Running it

typedef struct {
    dp_task_t *task;
    pid_t pid;
    int pidfd;                  //  -1: poll waitid instead
    int in, out, err;           //  our ends, -1 once closed
    const uint8_t *input;
    size_t input_size, input_off;
    size_t out_at;              //  where stdout starts in the reply
    size_t out_size;            //  stdout bytes in the reply
    uint8_t *errbuf;
    size_t err_size, err_cap;   //  stderr bytes in errbuf
    const dp_exec_stream_t *stream;     //  or NULL: no PARTs
    uint64_t parts;             //  PARTs sent
    uint64_t streamed;          //  bytes they carried
    bool exited, timedout, overflow, oom, cut;
    uint64_t slot;              //  the job slot it runs in (0: none)
    size_t part_min;            //  bytes buffered that make a PART: DP_EXEC_PART,
                                //  or 1 ("flush": as the output comes)
    const dp_exec_item_t *item; //  its "termseq"
} s_run_t;

static int64_t
s_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_close (int *fd)
{
    if (*fd >= 0)
        close (*fd);
    *fd = -1;
}

//  Bytes we may still read before the output is over the limit (one more
//  than the limit allows, so that going over is seen).
static size_t
s_room (s_run_t *r)
{
    size_t have = r->out_size + r->err_size;
    size_t room = have > DP_EXEC_MAX_OUTPUT ? 0 : DP_EXEC_MAX_OUTPUT - have + 1;
    return room < S_READ_CHUNK ? room : S_READ_CHUNK;
}

//  Read what stdout has into the reply.
static void
s_read_out (s_run_t *r)
{
    size_t room = s_room (r);
    size_t have = dp_task_size (r->task);
    uint8_t *dest = room ? dp_task_grow (r->task, room) : NULL;
    if (!dest) {
        r->oom = room > 0;
        r->overflow = room == 0;
        return;
    }
    ssize_t n = read (r->out, dest, room);
    dp_task_set_size (r->task, have + (n > 0 ? (size_t) n : 0));
    if (n > 0)
        r->out_size += (size_t) n;
    else
    if (n == 0 || (errno != EINTR && errno != EAGAIN))
        s_close (&r->out);
}

//  Read what stderr has into errbuf.
static void
s_read_err (s_run_t *r)
{
    size_t room = s_room (r);
    if (room == 0) {
        r->overflow = true;
        return;
    }
    if (r->err_cap - r->err_size < room) {
        size_t cap = r->err_cap ? r->err_cap * 2 : S_READ_CHUNK;
        while (cap - r->err_size < room)
            cap *= 2;
        uint8_t *buf = realloc (r->errbuf, cap);
        if (!buf) {
            r->oom = true;
            return;
        }
        r->errbuf = buf, r->err_cap = cap;
    }
    ssize_t n = read (r->err, r->errbuf + r->err_size, room);
    if (n > 0)
        r->err_size += (size_t) n;
    else
    if (n == 0 || (errno != EINTR && errno != EAGAIN))
        s_close (&r->err);
}

//  Feed stdin. A write to a command that closed its stdin raises SIGPIPE
//  at this thread: it is blocked here and taken back, never delivered.
static void
s_write_in (s_run_t *r)
{
    sigset_t pipe_set, old;
    sigemptyset (&pipe_set);
    sigaddset (&pipe_set, SIGPIPE);
    pthread_sigmask (SIG_BLOCK, &pipe_set, &old);
    size_t left = r->input_size - r->input_off;
    ssize_t n = write (r->in, r->input + r->input_off, left < S_READ_CHUNK ? left : S_READ_CHUNK);
    if (n > 0)
        r->input_off += (size_t) n;
    else
    if (errno != EINTR && errno != EAGAIN)
        r->input_off = r->input_size;       //  EPIPE: it does not want the rest
    if (n < 0 && errno == EPIPE) {
        struct timespec zero = { 0, 0 };
        sigtimedwait (&pipe_set, NULL, &zero);
    }
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (r->input_off == r->input_size)
        s_close (&r->in);
}

//  Has the command's first process exited (not reaped yet)?
static bool
s_exited (s_run_t *r)
{
    siginfo_t info;
    memset (&info, 0, sizeof info);
    return waitid (P_PID, (id_t) r->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0
        && info.si_pid == r->pid;
}

//  The kill for a timeout, step by step: the item's "termseq" (signal,
//  wait, ...) or GNU parallel's default, TERM 200 ms TERM 100 ms TERM 50 ms
//  KILL 25 ms. Returns the next step's delay, or -1 when the sequence is
//  over (a group still there then gets SIGKILL: a timeout always ends).
static int
s_terminate (pid_t pgid, int step, const dp_exec_item_t *item)
{
    static const uint32_t fallback [] = { SIGTERM, 200, SIGTERM, 100, SIGTERM, 50, SIGKILL, 25 };
    const uint32_t *seq = item->ntermseq ? item->termseq : fallback;
    int steps = item->ntermseq ? (int) item->ntermseq : 4;
    if (step >= steps) {
        kill (-pgid, SIGKILL);
        return -1;
    }
    kill (-pgid, (int) seq [2 * step]);
    return (int) seq [2 * step + 1];
}

//  Send what is buffered of stdout, then of stderr, as PARTs while the
//  window has room and a buffer holds DP_EXEC_PART bytes. A cut stream
//  sets r->cut; a failed send r->oom.
static void
s_stream_flush (s_run_t *r)
{
    const dp_exec_stream_t *st = r->stream;
    if (st->cut (st->arg)) {
        r->cut = true;
        return;
    }
    if (r->out_size >= r->part_min && st->room (st->arg)) {
        if (st->send (st->arg, 1, dp_task_data (r->task) + r->out_at, r->out_size)) {
            r->oom = true;
            return;
        }
        dp_task_set_size (r->task, r->out_at);
        r->streamed += r->out_size;
        r->out_size = 0;
        r->parts++;
    }
    if (r->err_size >= r->part_min && st->room (st->arg)) {
        if (st->send (st->arg, 2, r->errbuf, r->err_size)) {
            r->oom = true;
            return;
        }
        r->streamed += r->err_size;
        r->err_size = 0;
        r->parts++;
    }
}

//  Is a buffer full and waiting for the window (so the pipes wait too)?
static bool
s_stream_held (s_run_t *r)
{
    return r->stream && !r->cut && !r->oom
        && (r->out_size >= r->part_min || r->err_size >= r->part_min);
}

//  Empty the stream's eventfd.
static void
s_stream_clear (const dp_exec_stream_t *st)
{
    uint64_t count;
    if (read (st->wake_fd, &count, sizeof count) < 0) {
        //  nothing there: fine
    }
}

//  Once the parts are all sent, wait until they are all acknowledged (or
//  the stream is cut): the reply must not pass them.
static void
s_stream_drain (s_run_t *r)
{
    const dp_exec_stream_t *st = r->stream;
    while (!r->cut) {
        if (st->cut (st->arg))
            r->cut = true;
        else
        if (st->drained (st->arg))
            break;
        else {
            struct pollfd fd = { st->wake_fd, POLLIN, 0 };
            if (poll (&fd, 1, 1000) > 0)
                s_stream_clear (st);
        }
    }
}

//  Poll until the command's first process exited and the pipes are drained,
//  killing it at its timeout (ms, 0 = none) or when output is over the limit.
static void
s_run (s_run_t *r, double timeout)
{
    //  over ~30 years is no timeout (and would overflow)
    int64_t next_kill = timeout > 0 && timeout < 1e9 ? s_mono_ms () + (int64_t) (timeout * 1000) : -1;
    int step = 0;
    while (true) {
        if (r->stream && !r->cut && !r->oom)
            s_stream_flush (r);
        bool held = s_stream_held (r);
        if (r->exited && r->out < 0 && r->err < 0 && !held)
            break;
        struct pollfd fds [5];
        int nfds = 0, at_out = -1, at_err = -1, at_in = -1, at_pid = -1, at_wake = -1;
        if (r->out >= 0 && !held)
            at_out = nfds, fds [nfds++] = (struct pollfd) { r->out, POLLIN, 0 };
        if (r->err >= 0 && !held)
            at_err = nfds, fds [nfds++] = (struct pollfd) { r->err, POLLIN, 0 };
        if (r->in >= 0)
            at_in = nfds, fds [nfds++] = (struct pollfd) { r->in, POLLOUT, 0 };
        if (!r->exited && r->pidfd >= 0)
            at_pid = nfds, fds [nfds++] = (struct pollfd) { r->pidfd, POLLIN, 0 };
        if (held)
            at_wake = nfds, fds [nfds++] = (struct pollfd) { r->stream->wake_fd, POLLIN, 0 };
        //  killing for a timeout: the sequence goes on while the group
        //  holds the pipes after the first process is gone (a child that
        //  traps the signal still prints, as under GNU parallel)
        bool killing = r->timedout && next_kill >= 0 && (r->out >= 0 || r->err >= 0);
        int wait_ms = -1;
        if (r->exited && !killing)
            wait_ms = held ? 1000 : 0;  //  drain what is there, no more
        else {
            if (next_kill >= 0) {
                int64_t left = next_kill - s_mono_ms ();
                wait_ms = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int) left;
            }
            if (r->pidfd < 0 && (wait_ms < 0 || wait_ms > 10))
                wait_ms = 10;
        }
        int ready = poll (fds, (nfds_t) nfds, wait_ms);
        if (ready < 0 && errno != EINTR)
            break;                      //  cannot happen with valid fds
        if (r->exited && ready == 0 && !held && !killing)
            break;
        if (at_wake >= 0 && fds [at_wake].revents)
            s_stream_clear (r->stream);
        if (at_out >= 0 && fds [at_out].revents)
            s_read_out (r);
        if (at_err >= 0 && fds [at_err].revents)
            s_read_err (r);
        if (at_in >= 0 && fds [at_in].revents)
            s_write_in (r);
        if (!r->exited && (at_pid >= 0 ? fds [at_pid].revents != 0 : s_exited (r))) {
            r->exited = true;
            s_close (&r->in);
        }
        if (r->overflow || r->oom || r->cut) {
            kill (-r->pid, SIGKILL);
            s_close (&r->out);
            s_close (&r->err);
            s_close (&r->in);
        }
        if (next_kill >= 0 && (!r->exited || killing) && s_mono_ms () >= next_kill) {
            r->timedout = true;
            int delay = s_terminate (r->pid, step++, r->item);
            next_kill = delay < 0 ? -1 : s_mono_ms () + delay;
        }
    }
}


//  --------------------------------------------------------------------------
//  The task

static char s_host [DP_MAX_NAME + 1];
static uint64_t s_node_tag;
static uint64_t s_slot;         //  $DPOOL_SLOT: this worker's place in its node
static const char *s_hostname (void);

static void
s_host_init (void)
{
    if (gethostname (s_host, sizeof s_host - 1))
        snprintf (s_host, sizeof s_host, "localhost");
    //  the node this worker belongs to (its supervisor's token), told to
    //  the client as a tag: a retry can then ask for another node
    const char *node = getenv ("DPOOL_NODE");
    s_node_tag = node ? dp_node_tag (strtoull (node, NULL, 10)) : 0;
    //  one item at a time runs in a worker process, so its place among
    //  its supervisor's processes is a job slot no running job shares
    const char *slot = getenv ("DPOOL_SLOT");
    s_slot = slot ? strtoull (slot, NULL, 10) : 0;
}

//  An item that asks for the worker's job slot ("slotat"): the slot goes
//  to PARALLEL_JOBSLOT and into the command at each offset. Returns 0 or
//  -1 (out of memory).
static int
s_slot_in (dp_exec_item_t *item)
{
    s_hostname ();                  //  (reads $DPOOL_SLOT)
    if (s_slot)
        item->slot = s_slot;
    else
    if (!item->has_slot || !item->slot)
        item->slot = 1;             //  a worker of no supervisor: the only slot
    item->has_slot = true;
    if (!item->nslot_at)
        return 0;
    char num [24];
    size_t nlen = (size_t) snprintf (num, sizeof num, "%llu", (unsigned long long) item->slot);
    size_t len = strlen (item->sh);
    char *sh = (char *) malloc (len + item->nslot_at * nlen + 1);
    if (!sh)
        return -1;
    size_t from = 0, at = 0;
    for (size_t i = 0; i < item->nslot_at; i++) {
        memcpy (sh + at, item->sh + from, item->slot_at [i] - from);
        at += item->slot_at [i] - from;
        memcpy (sh + at, num, nlen);
        at += nlen;
        from = item->slot_at [i];
    }
    memcpy (sh + at, item->sh + from, len - from + 1);
    free (item->sh);
    item->sh = sh;
    return 0;
}

//  gethostname, once
static const char *
s_hostname (void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once (&once, s_host_init);
    return s_host;
}

//  msgpack_packer write callback appending to the reply.
static int
s_reply_write (void *data, const char *buf, size_t len)
{
    dp_task_t *task = (dp_task_t *) data;
    uint8_t *dest = dp_task_grow (task, len);
    if (!dest)
        return -1;
    memcpy (dest, buf, len);
    return 0;
}

static double
s_epoch (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

//  Open the pipes: ours non-blocking and close-on-exec, the child's ends
//  at 3 or above. Returns 0 or an errno value.
static int
s_pipes (const dp_exec_item_t *item, int child [3], s_run_t *r)
{
    static int devnull = -1;
    if (devnull < 0)
        devnull = s_high_fd (open ("/dev/null", O_RDONLY | O_CLOEXEC));
    int p [3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
    for (int i = 0; i < 3; i++) {
        if (i == 0 && !item->has_input)
            continue;
        if (pipe2 (p [i], O_CLOEXEC)) {
            int rc = errno;
            for (int j = 0; j < i; j++)
                close (p [j][0]), close (p [j][1]);
            return rc;
        }
        p [i][0] = s_high_fd (p [i][0]);
        p [i][1] = s_high_fd (p [i][1]);
    }
    child [0] = item->has_input ? p [0][0] : devnull;
    child [1] = p [1][1], child [2] = p [2][1];
    r->in = p [0][1], r->out = p [1][0], r->err = p [2][0];
    int mine [3] = { r->in, r->out, r->err };
    for (int i = 0; i < 3; i++)
        if (mine [i] >= 0)
            fcntl (mine [i], F_SETFL, O_NONBLOCK);
    return child [0] < 0 || child [1] < 0 || child [2] < 0 ? EMFILE : 0;
}

//  Pack everything after "out" and patch out's length. Returns 0 or -1.
static int
s_reply_finish (s_run_t *r, int status, double start, double runtime)
{
    uint8_t *head = dp_task_data (r->task) + r->out_at - 4;
    uint32_t size = (uint32_t) r->out_size;
    head [0] = size >> 24, head [1] = size >> 16, head [2] = size >> 8, head [3] = size;
    if (r->parts)
        head [-6] = 0x8b;               //  a fixmap of 11: "parts" follows
    msgpack_packer pk;
    msgpack_packer_init (&pk, r->task, s_reply_write);
    dp_exec_reply_t reply = { 0 };
    if (WIFSIGNALED (status)) {
        reply.signal = WTERMSIG (status);
        reply.status = 128 + reply.signal;
    }
    else
        reply.status = WEXITSTATUS (status);
    int rc = msgpack_pack_str (&pk, 3) | msgpack_pack_str_body (&pk, "err", 3)
           | msgpack_pack_bin (&pk, r->err_size)
           | msgpack_pack_bin_body (&pk, r->errbuf ? (char *) r->errbuf : "", r->err_size);
    const char *keys [] = { "status", "signal", "timedout", "start", "runtime", "host", "node",
                            "slot" };
    s_hostname ();                  //  (sets s_node_tag too)
    for (int i = 0; i < 8; i++) {
        rc |= msgpack_pack_str (&pk, strlen (keys [i]));
        rc |= msgpack_pack_str_body (&pk, keys [i], strlen (keys [i]));
        switch (i) {
            case 0: rc |= msgpack_pack_int (&pk, reply.status); break;
            case 1: rc |= msgpack_pack_int (&pk, reply.signal); break;
            case 2: rc |= r->timedout ? msgpack_pack_true (&pk) : msgpack_pack_false (&pk); break;
            case 3: rc |= msgpack_pack_double (&pk, start); break;
            case 4: rc |= msgpack_pack_double (&pk, runtime); break;
            case 6: rc |= msgpack_pack_uint64 (&pk, s_node_tag); break;
            case 7: rc |= msgpack_pack_uint64 (&pk, r->slot); break;
            default:
                rc |= msgpack_pack_str (&pk, strlen (s_hostname ()));
                rc |= msgpack_pack_str_body (&pk, s_hostname (), strlen (s_hostname ()));
        }
    }
    if (r->parts)
        rc |= msgpack_pack_str (&pk, 5) | msgpack_pack_str_body (&pk, "parts", 5)
            | msgpack_pack_uint64 (&pk, r->parts);
    return rc ? -1 : 0;
}

int
dp_exec_task (dp_task_t *task, const void *in, size_t len)
{
    dp_exec_item_t item;
    char err [256];
    if (dp_exec_item_decode (in, len, &item, err, sizeof err))
        return dp_task_fail (task, "exec: %s", err);
    if (item.has_slot_at && s_slot_in (&item) != 0) {
        dp_exec_item_destroy (&item);
        return dp_task_fail (task, "exec: out of memory");
    }
    char *sh_argv [4] = { item.shell ? item.shell : "/bin/sh", "-c", item.sh, NULL };
    char **argv = item.sh ? sh_argv : item.argv;
    //  "nice": the command under `nice -n N` (GNU parallel's --nice)
    char nice_num [16], *nice_argv [1024 + 4];
    if (item.nice) {
        size_t n = 0;
        while (argv [n])
            n++;
        if (n > 1024) {
            dp_exec_item_destroy (&item);
            return dp_task_fail (task, "exec: nice: more than 1024 words");
        }
        snprintf (nice_num, sizeof nice_num, "%d", item.nice);
        nice_argv [0] = "nice", nice_argv [1] = "-n", nice_argv [2] = nice_num;
        memcpy (nice_argv + 3, argv, n * sizeof (char *));
        nice_argv [n + 3] = NULL;
        argv = nice_argv;
    }
    char path [PATH_MAX], extra [3][96];
    char **envp = NULL;
    s_run_t r = { .task = task, .pidfd = -1, .in = -1, .out = -1, .err = -1,
                  .input = item.input, .input_size = item.input_size, .stream = s_stream,
                  .slot = item.has_slot ? item.slot : 0,
                  .part_min = item.flush ? 1 : DP_EXEC_PART, .item = &item };
    s_spawn_t a = { .path = path, .argv = argv, .cwd = item.cwd, .guard = s_guard_get () };
    int rc = s_resolve (argv [0], path, sizeof path);
    if (rc == 0)
        rc = (envp = s_environ (&item, extra)) ? 0 : ENOMEM;
    if (rc == 0)
        rc = s_pipes (&item, a.fd, &r);
    a.envp = envp;
    double start = s_epoch ();
    int64_t started = s_mono_ms ();
    if (rc == 0)
        rc = s_spawn (&a, &r.pid);
    //  the child's ends are the child's now (or nobody's)
    if (a.fd [0] >= 0 && item.has_input)
        close (a.fd [0]);
    for (int i = 1; i < 3; i++)
        if (a.fd [i] >= 0)
            close (a.fd [i]);
    free (envp);
    if (rc) {
        s_close (&r.in), s_close (&r.out), s_close (&r.err);
        dp_task_fail (task, "exec: cannot run '%s': %s", argv [0], strerror (rc));
        dp_exec_item_destroy (&item);
        return -1;
    }
    atomic_store (&s_child_pgid, r.pid);
    r.pidfd = (int) syscall (SYS_pidfd_open, r.pid, 0);
    //  map of 10, "out", bin32 of a length patched at the end
    static const uint8_t head [] = { 0x8a, 0xa3, 'o', 'u', 't', 0xc6, 0, 0, 0, 0 };
    uint8_t *dest = dp_task_grow (task, sizeof head);
    if (dest)
        memcpy (dest, head, sizeof head);
    else
        r.oom = true;
    r.out_at = sizeof head;
    s_run (&r, item.timeout);
    if (r.parts && !r.oom)
        s_stream_drain (&r);
    //  whatever it left in its group goes too; then the guard forgets the
    //  group, before the zombie is reaped and its id can be reused
    kill (-r.pid, SIGKILL);
    s_guard_tell (a.guard, -(int32_t) r.pid);
    int status = 0;
    while (waitpid (r.pid, &status, 0) < 0 && errno == EINTR)
        ;
    atomic_store (&s_child_pgid, 0);
    double runtime = (double) (s_mono_ms () - started) / 1000.0;
    s_close (&r.pidfd), s_close (&r.in), s_close (&r.out), s_close (&r.err);
    bool failed = r.overflow || r.oom || r.cut;
    if (r.cut)
        dp_task_fail (task, "exec: output stream cut after %llu parts (%llu bytes): command killed",
                      (unsigned long long) r.parts, (unsigned long long) r.streamed);
    else
    if (r.overflow)
        dp_task_fail (task, "exec: output over %u bytes (stdout %zu, stderr %zu so far): "
                      "command killed", DP_EXEC_MAX_OUTPUT, r.out_size, r.err_size);
    else
    if (r.oom || (failed = s_reply_finish (&r, status, start, runtime) != 0))
        dp_task_fail (task, "exec: out of memory for the output (stdout %zu, stderr %zu bytes)",
                      r.out_size, r.err_size);
    free (r.errbuf);
    dp_exec_item_destroy (&item);
    return failed ? -1 : 0;
}

void
dp_task_kill_child (int sig)
{
    pid_t pgid = atomic_load (&s_child_pgid);
    if (pgid > 0)
        kill (-pgid, sig);
}
