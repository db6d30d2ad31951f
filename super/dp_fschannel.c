/*  =========================================================================
    dp_fschannel - a supervisor's channel to the fork server (see
    dp_forkserver.h): spawn and check requests, and the statuses of the
    children the server reaps for it
    =========================================================================
*/
#include "dp_forkserver.h"
#include "dp_fs_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    int rc = dp_fs_host_connect (fds [1]);
    int saved = errno;
    close (fds [1]);
    if (rc) {
        close (fds [0]);
        if (rc == -2)
            snprintf (err, errlen, "the fork server is not running: call dp_forkserver_start () "
                      "at the top of main, before any thread or pool exists");
        else {
            snprintf (err, errlen, "the fork server is gone (%s)", strerror (saved));
            dp_fs_host_lost ();
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
s_read_report (dp_forkserver_t *self, dp_fs_report_t *report, int *fd, int timeout_ms)
{
    *fd = -1;
    if (self->gone)
        return -1;
    int64_t deadline = dp_fs_now_ms () + timeout_ms;
    while (true) {
        ssize_t n = dp_fs_recv (self->fd, report, sizeof *report, fd, MSG_DONTWAIT);
        if (n == (ssize_t) sizeof *report)
            return 1;
        if (*fd >= 0)
            close (*fd);
        *fd = -1;
        if (n == 0 || (n == -1 && errno != EAGAIN)) {
            self->gone = true;
            dp_fs_host_lost ();
            return -1;
        }
        if (n != -1)
            continue;                   //  a malformed datagram: dropped
        int64_t left = deadline - dp_fs_now_ms ();
        if (left <= 0)
            return 0;
        struct pollfd pfd = { self->fd, POLLIN, 0 };
        poll (&pfd, 1, (int) left);
    }
}

//  Keep a status for dp_forkserver_reaped.
static void
s_queue (dp_forkserver_t *self, const dp_fs_report_t *report)
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
    size_t len = sizeof (dp_fs_request_t);
    for (size_t i = 0; i < nargs; i++)
        len += strlen (args [i]) + 1;
    for (size_t i = 0; i < nenv; i++)
        len += strlen (env [i]) + 1;
    if (len > DP_FS_MAX_REQUEST || nargs >= DP_FS_MAX_STRINGS || nenv >= DP_FS_MAX_STRINGS) {
        snprintf (err, errlen, "fork server: request too long");
        return -1;
    }
    char *buf = malloc (len);
    if (!buf) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    dp_fs_request_t head = { type, (uint32_t) nargs, (uint32_t) nenv };
    memcpy (buf, &head, sizeof head);
    size_t at = sizeof head;
    for (size_t i = 0; i < nargs + nenv; i++) {
        const char *s = i < nargs ? args [i] : env [i - nargs];
        memcpy (buf + at, s, strlen (s) + 1);
        at += strlen (s) + 1;
    }
    int rc = self->gone ? -1 : dp_fs_send (self->fd, buf, len, fd);
    free (buf);
    int64_t deadline = dp_fs_now_ms () + DP_FS_REPLY_MS;
    while (rc == 0) {
        dp_fs_report_t report;
        int got_fd;
        int64_t left = deadline - dp_fs_now_ms ();
        int got = left > 0 ? s_read_report (self, &report, &got_fd, (int) left) : 0;
        if (got <= 0) {
            snprintf (err, errlen, got < 0 ? "the fork server is gone"
                                           : "the fork server does not answer");
            return -1;
        }
        if (report.type == DP_FS_STATUS)
            s_queue (self, &report);
        else
        if (report.type == DP_FS_FORKED) {
            *pid = report.pid;
            *pidfd = got_fd;
            return 0;
        }
        else
        if (report.type == DP_FS_FAILED) {
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
    return s_request (self, DP_FS_SPAWN, args, nargs, env, nenv, memfd, pid, pidfd, err, errlen);
}

int
dp_forkserver_check (dp_forkserver_t *self, const char *const *modules, size_t nmodules,
                     char *err, size_t errlen)
{
    const char **args = calloc (2 * nmodules + 2, sizeof (char *));
    int fds [2];
    if (!args || pipe2 (fds, O_CLOEXEC) != 0) {
        snprintf (err, errlen, "fork server check: %s", strerror (errno));
        free (args);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < nmodules && n + 2 <= 2 * nmodules + 2; i++) {
        args [n++] = "-m";
        args [n++] = modules [i];
    }
    pid_t pid;
    int pidfd = -1;
    int rc = s_request (self, DP_FS_CHECK, args, n, NULL, 0, fds [1], &pid, &pidfd, err, errlen);
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
    int64_t deadline = dp_fs_now_ms () + DP_FS_REPLY_MS;
    while (status == -1 && dp_fs_now_ms () < deadline) {
        dp_fs_report_t report;
        int fd;
        int got_one = s_read_report (self, &report, &fd, (int) (deadline - dp_fs_now_ms ()));
        if (fd >= 0)
            close (fd);
        if (got_one < 0)
            break;
        if (got_one > 0 && report.type == DP_FS_STATUS && report.pid == pid)
            status = report.value;
        else
        if (got_one > 0 && report.type == DP_FS_STATUS)
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
    int64_t deadline = dp_fs_now_ms () + timeout_ms;
    while (true) {
        dp_fs_report_t report;
        int fd;
        int64_t left = deadline - dp_fs_now_ms ();
        int rc = s_read_report (self, &report, &fd, left > 0 ? (int) left : 0);
        if (fd >= 0)
            close (fd);
        if (rc <= 0)
            return rc;
        if (report.type == DP_FS_STATUS) {
            *pid = report.pid;
            *status = report.value;
            return 1;
        }
    }
}
