#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
int tu_failures = 0;

int
tu_done (const char *name)
{
    printf ("%s: %s\n", name, tu_failures ? "FAILED" : "ok");
    return tu_failures ? 1 : 0;
}

int64_t
tu_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
s_path (const char *var, const char *fallback, const char *name)
{
    static char buf [4][4096];
    static int slot = 0;
    const char *dir = getenv (var);
    char *out = buf [slot++ % 4];
    snprintf (out, sizeof buf [0], "%s/%s", dir ? dir : fallback, name);
    return out;
}

const char *
tu_bin (const char *name)
{
    return s_path ("DPOOL_BIN", "build/bin", name);
}

const char *
tu_lib (const char *name)
{
    return s_path ("DPOOL_LIB", "build/lib", name);
}

pid_t
tu_spawn (char *const argv [], const char *out_path, const char *err_path)
{
    return tu_spawn_io (argv, NULL, out_path, err_path);
}

pid_t
tu_spawn_io (char *const argv [], const char *in_path, const char *out_path, const char *err_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    if (in_path)
        posix_spawn_file_actions_addopen (&fa, 0, in_path, O_RDONLY, 0);
    if (out_path)
        posix_spawn_file_actions_addopen (&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err_path)
        posix_spawn_file_actions_addopen (&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn (&pid, argv [0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&fa);
    return rc == 0 ? pid : -1;
}

int
tu_wait (pid_t pid, int timeout_ms)
{
    int64_t deadline = tu_now_ms () + timeout_ms;
    while (true) {
        int status;
        pid_t r = waitpid (pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0)
            return -1;
        if (tu_now_ms () > deadline) {
            kill (pid, SIGKILL);
            waitpid (pid, &status, 0);
            return -1;
        }
        struct timespec ts = { 0, 5 * 1000000 };
        nanosleep (&ts, NULL);  //  poll interval of a deadline wait
    }
}

bool
tu_file_has (const char *path, const char *text)
{
    FILE *f = fopen (path, "r");
    char line [1024];
    bool found = false;
    while (f && !found && fgets (line, sizeof line, f))
        found = strstr (line, text) != NULL;
    if (f)
        fclose (f);
    return found;
}

long
tu_status_kb (pid_t pid, const char *field)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *f = fopen (path, "r");
    size_t len = strlen (field);
    long kb = -1;
    while (f && fgets (line, sizeof line, f))
        if (strncmp (line, field, len) == 0 && line [len] == ':')
            kb = atol (line + len + 1);
    if (f)
        fclose (f);
    return kb;
}

double
tu_cpu_s (pid_t pid)
{
    char path [64], text [1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (path, "r");
    size_t size = f ? fread (text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose (f);
    text [size] = 0;
    const char *at = strrchr (text, ')');
    unsigned long utime = 0, stime = 0;
    if (at)
        sscanf (at + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
    return (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
}

bool
tu_alive (pid_t pid)
{
    char path [64], buf [512];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return false;
    size_t n = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf [n] = 0;
    char *p = strrchr (buf, ')');
    return p && p [1] == ' ' && p [2] != 'Z' && p [2] != 'X';
}

int
tu_children (pid_t pid, pid_t *out, int max)
{
    int count = 0;
    DIR *d = opendir ("/proc");
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (e->d_name [0] < '0' || e->d_name [0] > '9')
            continue;
        char path [300], buf [512];
        snprintf (path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen (path, "r");
        if (!f)
            continue;
        size_t n = fread (buf, 1, sizeof buf - 1, f);
        fclose (f);
        buf [n] = 0;
        char *p = strrchr (buf, ')');
        int ppid = 0;
        char state;
        if (p && sscanf (p + 2, "%c %d", &state, &ppid) == 2 && ppid == pid && count < max)
            out [count++] = atoi (e->d_name);
    }
    closedir (d);
    return count;
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "dpool.h"

int
tu_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = -1;
    if (fd >= 0 && bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0
    &&  getsockname (fd, (struct sockaddr *) &addr, &len) == 0)
        port = ntohs (addr.sin_port);
    if (fd >= 0)
        close (fd);
    return port;
}

void
tu_items_numbers (tu_items_t *self, size_t n, long long start)
{
    self->n = n;
    self->buf = (char *) malloc (n * 24 + 1);
    dp_item_t *items = (dp_item_t *) malloc ((n + 1) * sizeof (dp_item_t));
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        int len = sprintf (self->buf + at, "%lld", start + (long long) i);
        items [i].data = self->buf + at;
        items [i].len = (size_t) len;
        at += (size_t) len + 1;
    }
    self->items = items;
}

void
tu_items_free (tu_items_t *self)
{
    free (self->items);
    free (self->buf);
    self->items = NULL;
    self->buf = NULL;
}

dp_pool_t *
tu_pool_open (int workers)
{
    const char *modules [] = { tu_lib ("libdpool_testtasks.so") };
    dp_pool_opts_t opts = { .workers = workers, .modules = modules, .nmodules = 1 };
    dp_pool_t *pool = dp_pool_open (&opts);
    if (!pool)
        fprintf (stderr, "dp_pool_open: %s\n", dp_strerror_last ());
    return pool;
}

void
tu_files_make (tu_files_t *self, const char *tag)
{
    char *paths [] = { self->in, self->out, self->err };
    const char *names [] = { "in", "out", "err" };
    for (int i = 0; i < 3; i++) {
        snprintf (paths [i], sizeof self->in, "/tmp/dpool-%.20s-%s-XXXXXX", tag, names [i]);
        int fd = mkstemp (paths [i]);
        REQUIRE (fd >= 0);
        close (fd);
    }
}

void
tu_files_remove (tu_files_t *self)
{
    unlink (self->in);
    unlink (self->out);
    unlink (self->err);
}
