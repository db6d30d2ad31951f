/*  =========================================================================
    dp_forkserver - worker processes forked from a copy of the host program
    (see dp_forkserver.h)

    The server (one poll loop over its main socket, the supervisors'
    channels and its children's pidfds), started by dp_forkserver_launch,
    and the host's end of its main socket. The supervisors' side of a
    channel is dp_fschannel.c; the wire between them dp_fs_wire.h. What a
    child runs once its process is set up is the launcher's hook: the
    worker runtime's (worker/dp_host_tasks.c). The public calls
    (dp_register_task, dp_forkserver_start / _stop) are the client's
    (client/dp_host.c).

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
#include "dp_fs_wire.h"
#include "dp_progress.h"

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

#define S_STOP_GRACE_MS 1000        //  children's SIGTERM before SIGKILL

//  --------------------------------------------------------------------------
//  The host's end of the server (set on the main thread at the top of
//  main; read later by broker threads under s_lock) and the child's hook

static dp_forkserver_child_fn *s_child;
static int s_main_fd = -1;
static pid_t s_server_pid;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;


//  --------------------------------------------------------------------------
//  Datagrams with one optional descriptor

//  Send one datagram, with fd (>= 0) attached. Returns 0 or -1 (errno).
int
dp_fs_send (int sock, const void *data, size_t len, int fd)
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
ssize_t
dp_fs_recv (int sock, void *buf, size_t cap, int *fd, int flags)
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

int64_t
dp_fs_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


//  --------------------------------------------------------------------------
//  A child of the server: a worker, or a module check

typedef struct {
    uint32_t type;
    const char *args [DP_FS_MAX_STRINGS];
    size_t nargs;
    const char *env [DP_FS_MAX_STRINGS];
    size_t nenv;
} s_parsed_t;

//  Parse a SPAWN / CHECK request. Returns 0 or -1 (malformed).
static int
s_parse_request (const char *buf, size_t len, s_parsed_t *req)
{
    dp_fs_request_t head;
    if (len < sizeof head)
        return -1;
    memcpy (&head, buf, sizeof head);
    if ((head.type != DP_FS_SPAWN && head.type != DP_FS_CHECK)
    ||  head.nargs >= DP_FS_MAX_STRINGS || head.nenv >= DP_FS_MAX_STRINGS)
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
    int target = req->type == DP_FS_SPAWN ? DP_PROGRESS_FD : 2;
    for (size_t i = 0; i < nfds; i++)
        if (fds [i] != fd && fds [i] != target)
            close (fds [i]);
    s_move_fd (fd, target);
    if (req->type == DP_FS_SPAWN)
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
    if (req->type == DP_FS_SPAWN)
        setenv (DP_PROGRESS_ENV, number, 1);
    else
        unsetenv (DP_PROGRESS_ENV);
    for (size_t i = 0; i < req->nenv; i++)
        putenv ((char *) req->env [i]); //  the request buffer lives until exit
    int code = s_child (req->type == DP_FS_CHECK, req->args, req->nargs);
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
    char *buf;                      //  DP_FS_MAX_REQUEST bytes
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
    dp_fs_report_t report = { type, (int32_t) pid, (int32_t) value };
    dp_fs_send (channel, &report, sizeof report, fd);
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
        s_report (channel, DP_FS_FAILED, 0, EINVAL, -1);
        if (fd >= 0)
            close (fd);
        return;
    }
    if (!kids || !fds || !pfds) {
        s_report (channel, DP_FS_FAILED, 0, ENOMEM, -1);
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
        s_report (channel, DP_FS_FAILED, 0, err, -1);
        return;
    }
    //  opened before any wait, so it cannot name a recycled pid
    int pidfd = (int) pidfd_open (pid, 0);
    if (pidfd >= 0)
        fcntl (pidfd, F_SETFD, FD_CLOEXEC);
    srv->kids [srv->nkids++] = (s_kid_t) { pid, pidfd, channel };
    s_report (channel, DP_FS_FORKED, pid, 0, pidfd);
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
    s_report (kid->channel, DP_FS_STATUS, kid->pid, status, -1);
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
    ssize_t n = dp_fs_recv (srv->main_fd, srv->buf, DP_FS_MAX_REQUEST, &fd, MSG_DONTWAIT);
    if (n == 0 || (n == -1 && errno != EAGAIN))
        return false;
    dp_fs_request_t head;
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
        if (head.type == DP_FS_CONNECT && channels && fds && pfds) {
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
    ssize_t n = dp_fs_recv (channel, srv->buf, DP_FS_MAX_REQUEST, &fd, MSG_DONTWAIT);
    if (n == 0 || (n == -1 && errno != EAGAIN))
        return false;
    if (n > 0)
        s_server_fork (srv, channel, (size_t) n, fd);
    else
    if (n == -2)
        s_report (channel, DP_FS_FAILED, 0, EMSGSIZE, -1);
    return true;
}

//  The host is gone, or asked us to stop: end every child (SIGTERM, up to
//  S_STOP_GRACE_MS, SIGKILL) and reap them all.
static void
s_server_shutdown (s_server_t *srv)
{
    for (size_t i = 0; i < srv->nkids; i++)
        kill (srv->kids [i].pid, SIGTERM);
    int64_t deadline = dp_fs_now_ms () + S_STOP_GRACE_MS;
    while (srv->nkids && dp_fs_now_ms () < deadline) {
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
    srv.buf = malloc (DP_FS_MAX_REQUEST);
    srv.fds = malloc (sizeof (int));
    srv.pfds = malloc (sizeof (struct pollfd));
    if (srv.buf && srv.fds && srv.pfds)
        s_server_loop (&srv);
    s_server_shutdown (&srv);
    _exit (0);
}


//  --------------------------------------------------------------------------
//  The host's end

int
dp_forkserver_launch (dp_forkserver_child_fn *child, char *err, size_t errlen)
{
    if (s_main_fd >= 0)
        return 0;
    int fds [2];
    if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
        snprintf (err, errlen, "socketpair: %s", strerror (errno));
        return -1;
    }
    s_child = child;
    fflush (NULL);                      //  no buffered output in two copies
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        close (fds [0]);
        s_server_main (fds [1], parent);
    }
    close (fds [1]);
    if (pid < 0) {
        snprintf (err, errlen, "fork: %s", strerror (errno));
        close (fds [0]);
        return -1;
    }
    pthread_mutex_lock (&s_lock);
    s_main_fd = fds [0];
    s_server_pid = pid;
    pthread_mutex_unlock (&s_lock);
    return 0;
}

void
dp_forkserver_halt (void)
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
dp_forkserver_running (void)
{
    pthread_mutex_lock (&s_lock);
    bool running = s_main_fd >= 0;
    pthread_mutex_unlock (&s_lock);
    return running;
}

//  Send CONNECT with a channel's end on the main socket, under the lock.
//  Returns 0, -1 (errno), or -2 when the server is not running.
int
dp_fs_host_connect (int fd)
{
    dp_fs_request_t head = { DP_FS_CONNECT, 0, 0 };
    pthread_mutex_lock (&s_lock);
    int rc = s_main_fd < 0 ? -2 : dp_fs_send (s_main_fd, &head, sizeof head, fd);
    int saved = errno;
    pthread_mutex_unlock (&s_lock);
    errno = saved;
    return rc;
}

//  The server's end was seen: reap it if it has exited (no zombie left).
void
dp_fs_host_lost (void)
{
    pthread_mutex_lock (&s_lock);
    if (s_server_pid > 0 && waitpid (s_server_pid, NULL, WNOHANG) == s_server_pid)
        s_server_pid = 0;
    pthread_mutex_unlock (&s_lock);
}
