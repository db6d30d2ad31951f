/*  =========================================================================
    dp_forkserver - worker processes forked from a copy of the host program
    (see dp_forkserver.h)

    Three parts: the host tasks and the public calls (dp_register_task,
    dp_forkserver_start / _stop), the server (one poll loop over its main
    socket, the supervisors' channels and its children's pidfds), and the
    supervisors' side of a channel.

    Messages are single SOCK_SEQPACKET datagrams between parts of one
    program, still checked (size, counts, strings) before use: a request
    that does not parse is answered FAILED, never trusted. A descriptor
    rides along with SCM_RIGHTS: the new channel (CONNECT), the progress
    page or the check's pipe (SPAWN, CHECK), the child's pidfd (FORKED).

        host -> server (main socket):   CONNECT + channel fd
        supervisor -> server (channel): SPAWN / CHECK + fd, args, env
        server -> supervisor (channel): FORKED pid + pidfd | FAILED errno
                                        STATUS pid, wait status (any time)
    =========================================================================
*/
#include "dp_forkserver.h"
//  dpool.h declares the public calls below (DP_EXPORT) but cannot be
//  included here: its dp_progress_t clashes with dp_progress.h's (the
//  restructuring of issue 10 gives them one name each); the definitions
//  carry the marker themselves.
#include "dp_progress.h"
#include "dp_task_internal.h"
#include "dp_worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

//  The public calls' errors go where dp_strerror_last reads them
//  (dp_pool.c; its header cannot come here: dpool.h and dp_progress.h
//  both name a dp_progress_t).
void client_set_error (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

#define S_CONNECT       1u
#define S_SPAWN         2u
#define S_CHECK         3u
#define S_FORKED        4u
#define S_FAILED        5u
#define S_STATUS        6u
#define S_MAX_REQUEST   65536       //  a request: header, args, env
#define S_MAX_STRINGS   512
#define S_REPLY_MS      10000       //  a fork answers well within this
#define S_STOP_GRACE_MS 1000        //  children's SIGTERM before SIGKILL
#define S_HOST_MODULE   "(host program)"

typedef struct {
    uint32_t type;
    uint32_t nargs;                 //  then nargs + nenv NUL-terminated strings
    uint32_t nenv;
} s_request_t;

typedef struct {
    uint32_t type;
    int32_t pid;
    int32_t value;                  //  FAILED: errno; STATUS: wait status
} s_report_t;


//  --------------------------------------------------------------------------
//  Host tasks and the host's end of the server (set on the main thread at
//  the top of main; read later by broker threads under s_lock)

static dp_task_def_t *s_tasks;
static size_t s_ntasks, s_tasks_cap;
static int s_main_fd = -1;
static pid_t s_server_pid;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;


//  --------------------------------------------------------------------------
//  Datagrams with one optional descriptor

//  Send one datagram, with fd (>= 0) attached. Returns 0 or -1 (errno).
static int
s_send (int sock, const void *data, size_t len, int fd)
{
    struct iovec iov = { (void *) data, len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    union {
        char buf [CMSG_SPACE (sizeof (int))];
        struct cmsghdr align;
    } control;
    if (fd >= 0) {
        memset (&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN (sizeof (int));
        memcpy (CMSG_DATA (cmsg), &fd, sizeof (int));
    }
    ssize_t n;
    while ((n = sendmsg (sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t) len ? 0 : -1;
}

//  Receive one datagram into buf; *fd gets an attached descriptor (close-
//  on-exec) or -1. Returns its size, 0 at the peer's end, -1 on error
//  (EAGAIN with flags MSG_DONTWAIT), -2 for a datagram cut short (dropped).
static ssize_t
s_recv (int sock, void *buf, size_t cap, int *fd, int flags)
{
    struct iovec iov = { buf, cap };
    union {
        char buf [CMSG_SPACE (sizeof (int) * 4)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control.buf, .msg_controllen = sizeof control.buf };
    *fd = -1;
    ssize_t n;
    while ((n = recvmsg (sock, &msg, flags | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR (&msg); c; c = CMSG_NXTHDR (&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t count = (c->cmsg_len - CMSG_LEN (0)) / sizeof (int);
            for (size_t i = 0; i < count; i++) {
                int got;
                memcpy (&got, CMSG_DATA (c) + i * sizeof (int), sizeof (int));
                if (*fd < 0)
                    *fd = got;
                else
                    close (got);        //  one is all we ever send
            }
        }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        if (*fd >= 0)
            close (*fd);
        *fd = -1;
        return -2;
    }
    return n;
}

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


//  --------------------------------------------------------------------------
//  A child of the server: a worker, or a module check

typedef struct {
    uint32_t type;
    const char *args [S_MAX_STRINGS];
    size_t nargs;
    const char *env [S_MAX_STRINGS];
    size_t nenv;
} s_parsed_t;

//  Parse a SPAWN / CHECK request. Returns 0 or -1 (malformed).
static int
s_parse_request (const char *buf, size_t len, s_parsed_t *req)
{
    s_request_t head;
    if (len < sizeof head)
        return -1;
    memcpy (&head, buf, sizeof head);
    if ((head.type != S_SPAWN && head.type != S_CHECK)
    ||  head.nargs >= S_MAX_STRINGS || head.nenv >= S_MAX_STRINGS)
        return -1;
    req->type = head.type;
    req->nargs = head.nargs;
    req->nenv = head.nenv;
    size_t at = sizeof head;
    for (size_t i = 0; i < (size_t) head.nargs + head.nenv; i++) {
        const char *end = at < len ? memchr (buf + at, 0, len - at) : NULL;
        if (!end)
            return -1;
        if (i < head.nargs)
            req->args [i] = buf + at;
        else
            req->env [i - head.nargs] = buf + at;
        at = (size_t) (end - buf) + 1;
    }
    req->args [req->nargs] = NULL;
    return at == len ? 0 : -1;
}

//  Parse the worker arguments a supervisor passes (the subset of
//  dpool-worker's options that a local or supervised worker gets).
//  Returns 0, or -1 with a message on stderr.
static int
s_parse_args (const s_parsed_t *req, dp_worker_opts_t *opts, const char **modules)
{
    for (size_t i = 0; i < req->nargs; i++) {
        const char *arg = req->args [i];
        const char *value = i + 1 < req->nargs ? req->args [i + 1] : NULL;
        bool takes = true;
        if (!strcmp (arg, "--connect") || !strcmp (arg, "-c"))
            opts->endpoint = value;
        else
        if (!strcmp (arg, "--module") || !strcmp (arg, "-m")) {
            if (value)
                modules [opts->nmodules++] = value;
        }
        else
        if (!strcmp (arg, "--init"))
            opts->init_args = value;
        else
        if (!strcmp (arg, "--heartbeat"))
            opts->heartbeat_ms = value ? (uint32_t) strtoul (value, NULL, 10) : 0;
        else
        if (!strcmp (arg, "--credit"))
            opts->credit = value ? (uint32_t) strtoul (value, NULL, 10) : 0;
        else
        if (!strcmp (arg, "--mem-limit"))
            opts->mem_limit_mb = value ? (uint32_t) strtoul (value, NULL, 10) : 0;
        else
        if (!strcmp (arg, "--max-tasks-per-child"))
            opts->max_tasks = value ? (uint32_t) strtoul (value, NULL, 10) : 0;
        else {
            takes = false;
            if (!strcmp (arg, "--local"))
                opts->local = true;
            else
            if (!strcmp (arg, "--child"))
                opts->supervised = true;
            else
            if (!strcmp (arg, "--allow-exec"))
                opts->allow_exec = true;
            else
            if (!strcmp (arg, "--verbose") || !strcmp (arg, "-v"))
                opts->verbose++;
            else {
                fprintf (stderr, "dpool-worker: unknown option '%s' from the fork server\n", arg);
                return -1;
            }
        }
        if (takes && !value) {
            fprintf (stderr, "dpool-worker: option '%s' needs a value\n", arg);
            return -1;
        }
        i += takes;
    }
    return 0;
}

//  The CHECK child: the host tasks plus the modules must make one registry
//  and the initializers must accept init_args. Returns an exit code.
static int
s_check (const char *const *modules, size_t nmodules, const char *init_args)
{
    dp_registry_t *registry = dp_registry_new ();
    char err [1024] = "out of memory";
    int rc = registry ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < s_ntasks; i++)
        rc = dp_registry_add_task (registry, s_tasks [i].name, s_tasks [i].fn,
                                   S_HOST_MODULE, err, sizeof err);
    for (size_t i = 0; rc == 0 && i < nmodules; i++)
        rc = dp_registry_load (registry, modules [i], err, sizeof err);
    if (rc == 0 && init_args)
        rc = dp_registry_init (registry, init_args, err, sizeof err);
    if (rc)
        fprintf (stderr, "dpool-worker: %s\n", err);
    dp_registry_destroy (&registry);
    return rc ? DP_WORKER_EXIT_CONFIG : DP_WORKER_EXIT_OK;
}

//  Put `fd` at `target` (without close-on-exec), closing the original.
static void
s_move_fd (int fd, int target)
{
    if (fd == target)
        fcntl (fd, F_SETFD, 0);
    else {
        dup2 (fd, target);
        close (fd);
    }
}

//  In the forked child: become a worker (or a module check) and exit.
//  The server's descriptors are closed first (`fds`, nfds), so a child
//  never keeps a channel or the main socket open.
static void __attribute__ ((noreturn))
s_child_main (const s_parsed_t *req, int fd, const int *fds, size_t nfds, pid_t server)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    //  what posix_spawn gives a dpool-worker: default dispositions, no mask
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal (sig, SIG_DFL);
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    int target = req->type == S_SPAWN ? DP_PROGRESS_FD : 2;
    for (size_t i = 0; i < nfds; i++)
        if (fds [i] != fd && fds [i] != target)
            close (fds [i]);
    s_move_fd (fd, target);
    if (req->type == S_SPAWN)
        dup2 (2, 1);                    //  a worker's stdout is never the user's
    else {
        int null = open ("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0)
            dup2 (null, 1);
    }
    char number [24];
    snprintf (number, sizeof number, "%d", (int) server);
    setenv ("DPOOL_PARENT_PID", number, 1);
    snprintf (number, sizeof number, "%d", DP_PROGRESS_FD);
    if (req->type == S_SPAWN)
        setenv (DP_PROGRESS_ENV, number, 1);
    else
        unsetenv (DP_PROGRESS_ENV);
    for (size_t i = 0; i < req->nenv; i++)
        putenv ((char *) req->env [i]); //  the request buffer lives until exit
    const char *modules [S_MAX_STRINGS];
    dp_worker_opts_t opts = { .modules = modules };
    int code = DP_WORKER_EXIT_USAGE;
    if (s_parse_args (req, &opts, modules) == 0) {
        if (req->type == S_CHECK)
            code = s_check (modules, opts.nmodules, opts.init_args);
        else {
            opts.tasks = s_tasks;
            opts.ntasks = s_ntasks;
            code = dp_worker_run (&opts);
        }
    }
    fflush (stdout);
    fflush (stderr);
    _exit (code);
}


//  --------------------------------------------------------------------------
//  The server

typedef struct {
    pid_t pid;
    int pidfd;                      //  -1: kernel without pidfds, polled
    int channel;                    //  fd to report to, -1: none (closed)
} s_kid_t;

typedef struct {
    int main_fd;
    pid_t parent, self;
    int *channels;
    size_t nchannels;
    s_kid_t *kids;
    size_t nkids;
    int *fds;                       //  every descriptor of ours, for children
    struct pollfd *pfds;
    char *buf;                      //  S_MAX_REQUEST bytes
} s_server_t;

static volatile sig_atomic_t s_server_stop;

static void
s_server_on_signal (int sig)
{
    s_server_stop = sig;
}

//  Grow an array to hold n + 1 elements. Returns it, or NULL (the old one
//  is kept).
static void *
s_grow (void *array, size_t n, size_t size)
{
    return realloc (array, (n + 1) * size);
}

static void
s_report (int channel, uint32_t type, pid_t pid, int value, int fd)
{
    if (channel < 0)
        return;
    s_report_t report = { type, (int32_t) pid, (int32_t) value };
    s_send (channel, &report, sizeof report, fd);
}

//  Every descriptor the server holds, into srv->fds. Returns how many.
static size_t
s_server_fds (s_server_t *srv)
{
    size_t n = 0;
    srv->fds [n++] = srv->main_fd;
    for (size_t i = 0; i < srv->nchannels; i++)
        srv->fds [n++] = srv->channels [i];
    for (size_t i = 0; i < srv->nkids; i++)
        if (srv->kids [i].pidfd >= 0)
            srv->fds [n++] = srv->kids [i].pidfd;
    return n;
}

//  A SPAWN or CHECK request on a channel: fork, answer FORKED (with the
//  child's pidfd) or FAILED. `fd` (the page or the pipe) is consumed.
static void
s_server_fork (s_server_t *srv, int channel, size_t len, int fd)
{
    s_parsed_t req;
    s_kid_t *kids = s_grow (srv->kids, srv->nkids, sizeof (s_kid_t));
    int *fds = s_grow (srv->fds, 1 + srv->nchannels + srv->nkids, sizeof (int));
    struct pollfd *pfds = s_grow (srv->pfds, 1 + srv->nchannels + srv->nkids, sizeof (struct pollfd));
    if (kids)
        srv->kids = kids;
    if (fds)
        srv->fds = fds;
    if (pfds)
        srv->pfds = pfds;
    if (s_parse_request (srv->buf, len, &req) || fd < 0) {
        s_report (channel, S_FAILED, 0, EINVAL, -1);
        if (fd >= 0)
            close (fd);
        return;
    }
    if (!kids || !fds || !pfds) {
        s_report (channel, S_FAILED, 0, ENOMEM, -1);
        close (fd);
        return;
    }
    size_t nfds = s_server_fds (srv);
    pid_t pid = fork ();
    if (pid == 0)
        s_child_main (&req, fd, srv->fds, nfds, srv->self);
    int err = errno;
    close (fd);
    if (pid < 0) {
        s_report (channel, S_FAILED, 0, err, -1);
        return;
    }
    //  opened before any wait, so it cannot name a recycled pid
    int pidfd = (int) pidfd_open (pid, 0);
    if (pidfd >= 0)
        fcntl (pidfd, F_SETFD, FD_CLOEXEC);
    srv->kids [srv->nkids++] = (s_kid_t) { pid, pidfd, channel };
    s_report (channel, S_FORKED, pid, 0, pidfd);
}

//  A channel closed: its supervisor is gone, so are its children.
static void
s_server_drop_channel (s_server_t *srv, size_t index)
{
    int channel = srv->channels [index];
    for (size_t i = 0; i < srv->nkids; i++)
        if (srv->kids [i].channel == channel) {
            kill (srv->kids [i].pid, SIGKILL);
            srv->kids [i].channel = -1;
        }
    close (channel);
    srv->channels [index] = srv->channels [--srv->nchannels];
}

//  Reap a child if it has ended, and report its status. Returns true if
//  it was reaped (and removed: the kid at `index` is now another one).
static bool
s_server_reap (s_server_t *srv, size_t index)
{
    s_kid_t *kid = &srv->kids [index];
    int status = 0;
    pid_t rc = waitpid (kid->pid, &status, WNOHANG);
    if (rc == 0 || (rc < 0 && errno == EINTR))
        return false;
    if (rc < 0)
        status = 0;                     //  not ours any more (cannot happen)
    s_report (kid->channel, S_STATUS, kid->pid, status, -1);
    if (kid->pidfd >= 0)
        close (kid->pidfd);
    srv->kids [index] = srv->kids [--srv->nkids];
    return true;
}

//  One message on the main socket. Returns false when the host is gone.
static bool
s_server_on_main (s_server_t *srv)
{
    int fd;
    ssize_t n = s_recv (srv->main_fd, srv->buf, S_MAX_REQUEST, &fd, MSG_DONTWAIT);
    if (n == 0 || (n == -1 && errno != EAGAIN))
        return false;
    s_request_t head;
    if (n >= (ssize_t) sizeof head && fd >= 0) {
        memcpy (&head, srv->buf, sizeof head);
        int *channels = s_grow (srv->channels, srv->nchannels, sizeof (int));
        int *fds = s_grow (srv->fds, 1 + srv->nchannels + srv->nkids, sizeof (int));
        struct pollfd *pfds = s_grow (srv->pfds, 1 + srv->nchannels + srv->nkids, sizeof (struct pollfd));
        if (channels)
            srv->channels = channels;
        if (fds)
            srv->fds = fds;
        if (pfds)
            srv->pfds = pfds;
        if (head.type == S_CONNECT && channels && fds && pfds) {
            srv->channels [srv->nchannels++] = fd;
            return true;
        }
    }
    if (fd >= 0)
        close (fd);                     //  the host side sees the channel close
    return true;
}

//  One message on a channel. Returns false if the channel closed.
static bool
s_server_on_channel (s_server_t *srv, int channel)
{
    int fd;
    ssize_t n = s_recv (channel, srv->buf, S_MAX_REQUEST, &fd, MSG_DONTWAIT);
    if (n == 0 || (n == -1 && errno != EAGAIN))
        return false;
    if (n > 0)
        s_server_fork (srv, channel, (size_t) n, fd);
    else
    if (n == -2)
        s_report (channel, S_FAILED, 0, EMSGSIZE, -1);
    return true;
}

//  The host is gone, or asked us to stop: end every child (SIGTERM, up to
//  S_STOP_GRACE_MS, SIGKILL) and reap them all.
static void
s_server_shutdown (s_server_t *srv)
{
    for (size_t i = 0; i < srv->nkids; i++)
        kill (srv->kids [i].pid, SIGTERM);
    int64_t deadline = s_now_ms () + S_STOP_GRACE_MS;
    while (srv->nkids && s_now_ms () < deadline) {
        for (size_t i = 0; i < srv->nkids; )
            if (!s_server_reap (srv, i))
                i++;
        if (srv->nkids) {
            struct timespec ts = { 0, 10 * 1000000 };
            nanosleep (&ts, NULL);
        }
    }
    for (size_t i = 0; i < srv->nkids; i++) {
        kill (srv->kids [i].pid, SIGKILL);
        while (waitpid (srv->kids [i].pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    srv->nkids = 0;
}

//  The server's event loop; returns when the host is gone.
static void
s_server_loop (s_server_t *srv)
{
    while (!s_server_stop && getppid () == srv->parent) {
        size_t n = 0;
        srv->pfds [n++] = (struct pollfd) { srv->main_fd, POLLIN, 0 };
        for (size_t i = 0; i < srv->nchannels; i++)
            srv->pfds [n++] = (struct pollfd) { srv->channels [i], POLLIN, 0 };
        bool blind = false;             //  a child without a pidfd: poll
        for (size_t i = 0; i < srv->nkids; i++) {
            srv->pfds [n++] = (struct pollfd) { srv->kids [i].pidfd, POLLIN, 0 };
            blind |= srv->kids [i].pidfd < 0;
        }
        int rc = poll (srv->pfds, n, blind ? 50 : 1000);
        if (rc < 0 && errno != EINTR)
            return;
        if (rc <= 0)
            goto reap;
        //  channels: walk the poll set's copy, the list changes underneath
        size_t polled = srv->nchannels;
        if (srv->pfds [0].revents && !s_server_on_main (srv))
            return;
        for (size_t i = 1; i < 1 + polled; i++) {
            if (!srv->pfds [i].revents)
                continue;
            int channel = srv->pfds [i].fd;
            if (!s_server_on_channel (srv, channel))
                for (size_t c = 0; c < srv->nchannels; c++)
                    if (srv->channels [c] == channel) {
                        s_server_drop_channel (srv, c);
                        break;
                    }
        }
    reap:
        for (size_t i = 0; i < srv->nkids; )
            if (!s_server_reap (srv, i))
                i++;
    }
}

//  The server process: never returns.
static void __attribute__ ((noreturn))
s_server_main (int main_fd, pid_t parent)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_server_on_signal;
    sigemptyset (&action.sa_mask);
    sigaction (SIGTERM, &action, NULL);
    signal (SIGINT, SIG_IGN);           //  Ctrl-C is the host's to handle
    signal (SIGPIPE, SIG_IGN);
    signal (SIGCHLD, SIG_DFL);          //  the host may ignore it: we must wait
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
        _exit (0);
    //  no stdin to share with the host; stdout goes where workers' goes
    int null = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2 (null, 0);
        close (null);
    }
    dup2 (2, 1);
    s_server_t srv = { .main_fd = main_fd, .parent = parent, .self = getpid () };
    srv.buf = malloc (S_MAX_REQUEST);
    srv.fds = malloc (sizeof (int));
    srv.pfds = malloc (sizeof (struct pollfd));
    if (srv.buf && srv.fds && srv.pfds)
        s_server_loop (&srv);
    s_server_shutdown (&srv);
    _exit (0);
}


//  --------------------------------------------------------------------------
//  Public calls (include/dpool.h)

DP_EXPORT int
dp_register_task (const char *name, dp_task_fn *fn)
{
    if (!name || !*name || strlen (name) > DP_MAX_NAME || !fn) {
        client_set_error ("dp_register_task: a task needs a function and a name of 1 to %d bytes",
                          DP_MAX_NAME);
        return -1;
    }
    if (s_main_fd >= 0) {
        client_set_error ("dp_register_task ('%s'): the fork server is already running; "
                          "register tasks before dp_forkserver_start", name);
        return -1;
    }
    if (!strcmp (name, "exec")) {
        client_set_error ("dp_register_task: 'exec' is a built-in task");
        return -1;
    }
    for (size_t i = 0; i < s_ntasks; i++)
        if (!strcmp (s_tasks [i].name, name)) {
            client_set_error ("dp_register_task: task '%s' is already registered", name);
            return -1;
        }
    if (s_ntasks + 1 >= DP_MAX_TASKS) {
        client_set_error ("dp_register_task: more than %d tasks", DP_MAX_TASKS - 1);
        return -1;
    }
    if (s_ntasks == s_tasks_cap) {
        size_t cap = s_tasks_cap ? s_tasks_cap * 2 : 8;
        dp_task_def_t *tasks = realloc (s_tasks, cap * sizeof *tasks);
        if (!tasks) {
            client_set_error ("dp_register_task: out of memory");
            return -1;
        }
        s_tasks = tasks;
        s_tasks_cap = cap;
    }
    char *copy = strdup (name);
    if (!copy) {
        client_set_error ("dp_register_task: out of memory");
        return -1;
    }
    s_tasks [s_ntasks++] = (dp_task_def_t) { copy, fn };
    return 0;
}

//  Threads of this process (from /proc/self/task), or -1 if unknown.
static int
s_threads (void)
{
    DIR *dir = opendir ("/proc/self/task");
    if (!dir)
        return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        count += entry->d_name [0] != '.';
    closedir (dir);
    return count;
}

DP_EXPORT int
dp_forkserver_start (void)
{
    if (s_main_fd >= 0)
        return 0;
    int threads = s_threads ();
    if (threads > 1) {
        client_set_error ("dp_forkserver_start: the program already runs %d threads; "
                          "call it at the top of main, before any thread or pool exists", threads);
        return -1;
    }
    int fds [2];
    if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
        client_set_error ("dp_forkserver_start: socketpair: %s", strerror (errno));
        return -1;
    }
    fflush (NULL);                      //  no buffered output in two copies
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        close (fds [0]);
        s_server_main (fds [1], parent);
    }
    close (fds [1]);
    if (pid < 0) {
        client_set_error ("dp_forkserver_start: fork: %s", strerror (errno));
        close (fds [0]);
        return -1;
    }
    pthread_mutex_lock (&s_lock);
    s_main_fd = fds [0];
    s_server_pid = pid;
    pthread_mutex_unlock (&s_lock);
    return 0;
}

DP_EXPORT void
dp_forkserver_stop (void)
{
    pthread_mutex_lock (&s_lock);
    if (s_main_fd >= 0) {
        close (s_main_fd);              //  the server sees the end, stops its children
        if (s_server_pid > 0)
            while (waitpid (s_server_pid, NULL, 0) < 0 && errno == EINTR)
                ;
    }
    s_main_fd = -1;
    s_server_pid = 0;
    pthread_mutex_unlock (&s_lock);
}

bool
dp_forkserver_has_tasks (void)
{
    return s_ntasks > 0;
}

bool
dp_forkserver_running (void)
{
    pthread_mutex_lock (&s_lock);
    bool running = s_main_fd >= 0;
    pthread_mutex_unlock (&s_lock);
    return running;
}

//  The server's end was seen: reap it if it has exited (no zombie left).
static void
s_server_lost (void)
{
    pthread_mutex_lock (&s_lock);
    if (s_server_pid > 0 && waitpid (s_server_pid, NULL, WNOHANG) == s_server_pid)
        s_server_pid = 0;
    pthread_mutex_unlock (&s_lock);
}


//  --------------------------------------------------------------------------
//  A supervisor's channel

typedef struct {
    pid_t pid;
    int status;
} s_status_t;

struct dp_forkserver {
    int fd;
    bool gone;                      //  the server's end was seen
    s_status_t *queue;              //  statuses read while waiting for a reply
    size_t nqueue, queue_cap;
};

dp_forkserver_t *
dp_forkserver_connect (char *err, size_t errlen)
{
    int fds [2];
    if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
        snprintf (err, errlen, "fork server: socketpair: %s", strerror (errno));
        return NULL;
    }
    s_request_t head = { S_CONNECT, 0, 0 };
    pthread_mutex_lock (&s_lock);
    int rc = s_main_fd < 0 ? -2 : s_send (s_main_fd, &head, sizeof head, fds [1]);
    int saved = errno;
    pthread_mutex_unlock (&s_lock);
    close (fds [1]);
    if (rc) {
        close (fds [0]);
        if (rc == -2)
            snprintf (err, errlen, "the fork server is not running: call dp_forkserver_start () "
                      "at the top of main, before any thread or pool exists");
        else {
            snprintf (err, errlen, "the fork server is gone (%s)", strerror (saved));
            s_server_lost ();
        }
        return NULL;
    }
    dp_forkserver_t *self = calloc (1, sizeof *self);
    if (!self) {
        close (fds [0]);
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->fd = fds [0];
    return self;
}

void
dp_forkserver_disconnect (dp_forkserver_t **self_p)
{
    dp_forkserver_t *self = *self_p;
    if (!self)
        return;
    close (self->fd);
    free (self->queue);
    free (self);
    *self_p = NULL;
}

int
dp_forkserver_fd (dp_forkserver_t *self)
{
    return self->fd;
}

//  Read one report, waiting up to timeout_ms (0: not at all). Returns 1
//  with it (and *fd), 0 when none came, -1 when the server is gone.
static int
s_read_report (dp_forkserver_t *self, s_report_t *report, int *fd, int timeout_ms)
{
    *fd = -1;
    if (self->gone)
        return -1;
    int64_t deadline = s_now_ms () + timeout_ms;
    while (true) {
        ssize_t n = s_recv (self->fd, report, sizeof *report, fd, MSG_DONTWAIT);
        if (n == (ssize_t) sizeof *report)
            return 1;
        if (*fd >= 0)
            close (*fd);
        *fd = -1;
        if (n == 0 || (n == -1 && errno != EAGAIN)) {
            self->gone = true;
            s_server_lost ();
            return -1;
        }
        if (n != -1)
            continue;                   //  a malformed datagram: dropped
        int64_t left = deadline - s_now_ms ();
        if (left <= 0)
            return 0;
        struct pollfd pfd = { self->fd, POLLIN, 0 };
        poll (&pfd, 1, (int) left);
    }
}

//  Keep a status for dp_forkserver_reaped.
static void
s_queue (dp_forkserver_t *self, const s_report_t *report)
{
    if (self->nqueue == self->queue_cap) {
        size_t cap = self->queue_cap ? self->queue_cap * 2 : 8;
        s_status_t *queue = realloc (self->queue, cap * sizeof *queue);
        if (!queue)
            return;                     //  lost: the child's pidfd still says it died
        self->queue = queue;
        self->queue_cap = cap;
    }
    self->queue [self->nqueue++] = (s_status_t) { report->pid, report->value };
}

//  Send a request and wait for its FORKED / FAILED. Returns 0 with the pid
//  and pidfd, or -1 with err set.
static int
s_request (dp_forkserver_t *self, uint32_t type, const char *const *args, size_t nargs,
           const char *const *env, size_t nenv, int fd, pid_t *pid, int *pidfd,
           char *err, size_t errlen)
{
    size_t len = sizeof (s_request_t);
    for (size_t i = 0; i < nargs; i++)
        len += strlen (args [i]) + 1;
    for (size_t i = 0; i < nenv; i++)
        len += strlen (env [i]) + 1;
    if (len > S_MAX_REQUEST || nargs >= S_MAX_STRINGS || nenv >= S_MAX_STRINGS) {
        snprintf (err, errlen, "fork server: request too long");
        return -1;
    }
    char *buf = malloc (len);
    if (!buf) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    s_request_t head = { type, (uint32_t) nargs, (uint32_t) nenv };
    memcpy (buf, &head, sizeof head);
    size_t at = sizeof head;
    for (size_t i = 0; i < nargs + nenv; i++) {
        const char *s = i < nargs ? args [i] : env [i - nargs];
        memcpy (buf + at, s, strlen (s) + 1);
        at += strlen (s) + 1;
    }
    int rc = self->gone ? -1 : s_send (self->fd, buf, len, fd);
    free (buf);
    int64_t deadline = s_now_ms () + S_REPLY_MS;
    while (rc == 0) {
        s_report_t report;
        int got_fd;
        int64_t left = deadline - s_now_ms ();
        int got = left > 0 ? s_read_report (self, &report, &got_fd, (int) left) : 0;
        if (got <= 0) {
            snprintf (err, errlen, got < 0 ? "the fork server is gone"
                                           : "the fork server does not answer");
            return -1;
        }
        if (report.type == S_STATUS)
            s_queue (self, &report);
        else
        if (report.type == S_FORKED) {
            *pid = report.pid;
            *pidfd = got_fd;
            return 0;
        }
        else
        if (report.type == S_FAILED) {
            snprintf (err, errlen, "fork server: cannot fork: %s", strerror (report.value));
            return -1;
        }
        if (got_fd >= 0)
            close (got_fd);
    }
    snprintf (err, errlen, "the fork server is gone");
    return -1;
}

int
dp_forkserver_spawn (dp_forkserver_t *self, const char *const *args, size_t nargs,
                     const char *const *env, size_t nenv, int memfd,
                     pid_t *pid, int *pidfd, char *err, size_t errlen)
{
    return s_request (self, S_SPAWN, args, nargs, env, nenv, memfd, pid, pidfd, err, errlen);
}

int
dp_forkserver_check (dp_forkserver_t *self, const char *const *modules, size_t nmodules,
                     const char *init_args, char *err, size_t errlen)
{
    const char **args = calloc (2 * nmodules + 2, sizeof (char *));
    int fds [2];
    if (!args || pipe2 (fds, O_CLOEXEC) != 0) {
        snprintf (err, errlen, "fork server check: %s", strerror (errno));
        free (args);
        return -1;
    }
    size_t n = 0;
    if (init_args) {
        args [n++] = "--init";
        args [n++] = init_args;
    }
    for (size_t i = 0; i < nmodules && n + 2 <= 2 * nmodules + 2; i++) {
        args [n++] = "-m";
        args [n++] = modules [i];
    }
    pid_t pid;
    int pidfd = -1;
    int rc = s_request (self, S_CHECK, args, n, NULL, 0, fds [1], &pid, &pidfd, err, errlen);
    free (args);
    close (fds [1]);
    char text [512] = "";
    size_t have = 0;
    ssize_t got;
    while (rc == 0 && have < sizeof text - 1
           && ((got = read (fds [0], text + have, sizeof text - 1 - have)) > 0
               || (got < 0 && errno == EINTR)))
        have += got > 0 ? (size_t) got : 0;
    text [have] = 0;
    close (fds [0]);
    if (pidfd >= 0)
        close (pidfd);
    if (rc)
        return -1;
    //  its status: the others that come meanwhile stay queued
    int status = -1;
    int64_t deadline = s_now_ms () + S_REPLY_MS;
    while (status == -1 && s_now_ms () < deadline) {
        s_report_t report;
        int fd;
        int got_one = s_read_report (self, &report, &fd, (int) (deadline - s_now_ms ()));
        if (fd >= 0)
            close (fd);
        if (got_one < 0)
            break;
        if (got_one > 0 && report.type == S_STATUS && report.pid == pid)
            status = report.value;
        else
        if (got_one > 0 && report.type == S_STATUS)
            s_queue (self, &report);
    }
    if (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0)
        return 0;
    char *nl = strchr (text, '\n');
    if (nl)
        *nl = 0;
    snprintf (err, errlen, "%s", text [0] ? text : "module check failed");
    return -1;
}

int
dp_forkserver_reaped (dp_forkserver_t *self, pid_t *pid, int *status)
{
    if (self->nqueue) {
        *pid = self->queue [0].pid;
        *status = self->queue [0].status;
        memmove (self->queue, self->queue + 1, --self->nqueue * sizeof *self->queue);
        return 1;
    }
    return dp_forkserver_wait (self, pid, status, 0);
}

int
dp_forkserver_wait (dp_forkserver_t *self, pid_t *pid, int *status, int timeout_ms)
{
    if (self->nqueue)
        return dp_forkserver_reaped (self, pid, status);
    int64_t deadline = s_now_ms () + timeout_ms;
    while (true) {
        s_report_t report;
        int fd;
        int64_t left = deadline - s_now_ms ();
        int rc = s_read_report (self, &report, &fd, left > 0 ? (int) left : 0);
        if (fd >= 0)
            close (fd);
        if (rc <= 0)
            return rc;
        if (report.type == S_STATUS) {
            *pid = report.pid;
            *status = report.value;
            return 1;
        }
    }
}
