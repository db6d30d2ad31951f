/*  Process rig for the resilience tests (test_resilience, test_client_loss,
    test_broker_loss): start brokers, nodes and clients as real processes,
    find their children in /proc, wait on conditions with deadlines, and
    kill and reap everything that was started, also when a check fails
    (atexit) or the test is stopped (SIGTERM, SIGINT; children also get
    PR_SET_PDEATHSIG, so a SIGKILLed test takes them along).

    Header-only: each test is one .c file linked with testutil.c. */
#ifndef DP_TEST_PROCS_H_INCLUDED
#define DP_TEST_PROCS_H_INCLUDED

#include "testutil.h"
#include "dpool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RIG_MAX 32
static pid_t s_rig_pids [RIG_MAX];
static char s_rig_dir [256];

static inline void
rig_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000 };
    nanosleep (&ts, NULL);
}

//  SIGKILL and reap every process started and not reaped yet.
static inline void
rig_cleanup (void)
{
    for (int i = 0; i < RIG_MAX; i++)
        if (s_rig_pids [i] > 0) {
            kill (s_rig_pids [i], SIGKILL);
            waitpid (s_rig_pids [i], NULL, 0);
            s_rig_pids [i] = 0;
        }
}

static inline void
rig_on_signal (int sig)
{
    for (int i = 0; i < RIG_MAX; i++)
        if (s_rig_pids [i] > 0)
            kill (s_rig_pids [i], SIGKILL);
    signal (sig, SIG_DFL);
    raise (sig);
}

//  A scratch folder for logs; set up cleanup.
static inline const char *
rig_init (const char *name)
{
    snprintf (s_rig_dir, sizeof s_rig_dir, "/tmp/%s.XXXXXX", name);
    REQUIRE (mkdtemp (s_rig_dir));
    atexit (rig_cleanup);
    signal (SIGTERM, rig_on_signal);
    signal (SIGINT, rig_on_signal);
    signal (SIGPIPE, SIG_IGN);
    setvbuf (stdout, NULL, _IOLBF, 0);
    return s_rig_dir;
}

//  Path of a file in the scratch folder: one stable string per name (up to
//  RIG_FILES names), valid until the process ends.
#define RIG_FILES 32
static inline const char *
rig_path (const char *file)
{
    static char paths [RIG_FILES][512];
    static char names [RIG_FILES][64];
    int i = 0;
    for (; i < RIG_FILES && names [i][0]; i++)
        if (strcmp (names [i], file) == 0)
            return paths [i];
    REQUIRE (i < RIG_FILES);
    snprintf (names [i], sizeof names [i], "%s", file);
    snprintf (paths [i], sizeof paths [i], "%s/%s", s_rig_dir, file);
    return paths [i];
}

//  Start argv with stdin from in_path (NULL: /dev/null) and stdout, stderr
//  to out_path / err_path (NULL: inherit). The child dies with this process.
static inline pid_t
rig_spawn (char *const argv [], const char *in_path, const char *out_path, const char *err_path)
{
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        //  async-signal-safe calls only: the parent may have threads
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (getppid () != parent)
            _exit (127);
        int fd = open (in_path ? in_path : "/dev/null", O_RDONLY);
        if (fd >= 0 && fd != 0) { dup2 (fd, 0); close (fd); }
        if (out_path && (fd = open (out_path, O_WRONLY | O_CREAT | O_APPEND, 0644)) >= 0) {
            dup2 (fd, 1);
            close (fd);
        }
        if (err_path && (fd = open (err_path, O_WRONLY | O_CREAT | O_APPEND, 0644)) >= 0) {
            dup2 (fd, 2);
            close (fd);
        }
        execv (argv [0], argv);
        _exit (127);
    }
    REQUIRE (pid > 0);
    for (int i = 0; i < RIG_MAX; i++)
        if (s_rig_pids [i] == 0) {
            s_rig_pids [i] = pid;
            break;
        }
    return pid;
}

static inline void
rig_forget (pid_t pid)
{
    for (int i = 0; i < RIG_MAX; i++)
        if (s_rig_pids [i] == pid)
            s_rig_pids [i] = 0;
}

//  Wait for a started process up to timeout_ms: its wait status, or -1 on
//  timeout (it is then SIGKILLed and reaped).
static inline int
rig_wait (pid_t pid, int timeout_ms)
{
    int status = tu_wait (pid, timeout_ms);
    rig_forget (pid);
    return status;
}

//  SIGTERM a started process: did it exit 0 within 5 s?
static inline bool
rig_stop (pid_t pid)
{
    kill (pid, SIGTERM);
    int status = rig_wait (pid, 5000);
    return status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

//  SIGKILL a started process and reap it.
static inline void
rig_kill (pid_t pid)
{
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    rig_forget (pid);
}

//  How many lines of the file contain `needle`.
static inline int
rig_count_lines (const char *path, const char *needle)
{
    FILE *f = fopen (path, "r");
    if (!f)
        return 0;
    char line [4096];
    int count = 0;
    while (fgets (line, sizeof line, f))
        count += strstr (line, needle) != NULL;
    fclose (f);
    return count;
}

//  Wait until at least `count` lines of the file contain `needle`.
static inline bool
rig_wait_lines (const char *path, const char *needle, int count, int timeout_ms)
{
    int64_t deadline = tu_now_ms () + timeout_ms;
    while (rig_count_lines (path, needle) < count) {
        if (tu_now_ms () > deadline)
            return false;
        rig_sleep_ms (20);
    }
    return true;
}

//  Live (non-zombie) children of pid.
static inline int
rig_live_children (pid_t pid, pid_t *out, int max)
{
    pid_t all [64];
    int n = tu_children (pid, all, 64), live = 0;
    for (int i = 0; i < n; i++)
        if (tu_alive (all [i]) && live < max)
            out [live++] = all [i];
    return live;
}

//  Wait until pid has exactly `count` live children.
static inline bool
rig_wait_children (pid_t pid, int count, int timeout_ms)
{
    int64_t deadline = tu_now_ms () + timeout_ms;
    pid_t kids [64];
    while (rig_live_children (pid, kids, 64) != count) {
        if (tu_now_ms () > deadline)
            return false;
        rig_sleep_ms (10);
    }
    return true;
}

//  Wait until none of the n processes is alive (zombies count as gone);
//  returns the ms it took, or -1 past the timeout.
static inline int64_t
rig_wait_gone (const pid_t *pids, int n, int timeout_ms)
{
    int64_t start = tu_now_ms ();
    while (true) {
        int alive = 0;
        for (int i = 0; i < n; i++)
            alive += tu_alive (pids [i]);
        if (alive == 0)
            return tu_now_ms () - start;
        if (tu_now_ms () - start > timeout_ms)
            return -1;
        rig_sleep_ms (5);
    }
}

//  Threads of pid blocked in a sleep system call (a `sleep_ms` item running).
static inline int
rig_sleeping_threads (pid_t pid)
{
    char path [128];
    snprintf (path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *d = opendir (path);
    if (!d)
        return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (e->d_name [0] == '.')
            continue;
        char file [400], buf [64] = "";
        snprintf (file, sizeof file, "%s/%s/syscall", path, e->d_name);
        FILE *f = fopen (file, "r");
        if (!f)
            continue;
        long nr = -1;
        if (fgets (buf, sizeof buf, f))
            nr = strtol (buf, NULL, 10);
        fclose (f);
#ifdef SYS_nanosleep
        count += nr == SYS_nanosleep;
#endif
#ifdef SYS_clock_nanosleep
        count += nr == SYS_clock_nanosleep;
#endif
    }
    closedir (d);
    return count;
}

//  Open a pool on a broker that may still be starting.
static inline dp_pool_t *
rig_pool_open (const char *endpoint, int timeout_ms)
{
    dp_pool_opts_t opts = { .endpoint = endpoint };
    dp_pool_t *pool = NULL;
    int64_t deadline = tu_now_ms () + timeout_ms;
    while (!pool && tu_now_ms () < deadline)
        pool = dp_pool_open (&opts);
    if (!pool)
        fprintf (stderr, "dp_pool_open %s: %s\n", endpoint, dp_strerror_last ());
    return pool;
}

//  Map `square` over 1..n; true when every result is exact.
static inline bool
rig_square_ok (dp_pool_t *pool, size_t n)
{
    tu_items_t items;
    tu_items_numbers (&items, n, 1);
    dp_results_t *res = NULL;
    long failed = dp_map (pool, "square", (dp_item_t *) items.items, n, NULL, &res);
    size_t wrong = 0;
    if (failed < 0)
        fprintf (stderr, "square job: pool error: %s\n", dp_strerror_last ());
    for (size_t i = 0; failed == 0 && i < n; i++) {
        char want [32];
        snprintf (want, sizeof want, "%lld", (long long) (i + 1) * (long long) (i + 1));
        size_t len;
        const char *got = (const char *) dp_results_data (res, i, &len);
        wrong += dp_results_status (res, i) != DP_OK || len != strlen (want)
              || memcmp (got, want, len) != 0;
    }
    if (failed > 0)
        fprintf (stderr, "square job: %ld items failed\n", failed);
    dp_results_destroy (&res);
    tu_items_free (&items);
    return failed == 0 && wrong == 0;
}

//  Print a file (a log) to stderr, for a failed check.
static inline void
rig_dump (const char *title, const char *path)
{
    FILE *f = fopen (path, "r");
    fprintf (stderr, "---- %s (%s)\n", title, path);
    if (!f)
        return;
    char line [4096];
    while (fgets (line, sizeof line, f))
        fputs (line, stderr);
    fclose (f);
    fprintf (stderr, "----\n");
}

//  Summary line and exit status; the scratch folder is removed on success
//  (kept with its logs for a failed run).
static inline int
rig_done (const char *name)
{
    rig_cleanup ();
    if (tu_failures == 0 && s_rig_dir [0]) {
        char cmd [600];
        snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_rig_dir);
        if (system (cmd) != 0)
            fprintf (stderr, "%s: could not remove %s\n", name, s_rig_dir);
    }
    else
    if (s_rig_dir [0])
        fprintf (stderr, "%s: logs kept in %s\n", name, s_rig_dir);
    return tu_done (name);
}

#endif
