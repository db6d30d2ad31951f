/*  Tasks defined in the test program itself (dp_register_task), run by an
    embedded pool whose workers come from the fork server: exact ordered
    results, crashes failed with the signal named and re-forked workers,
    no process left behind by dp_pool_close or dp_forkserver_stop, the
    server and its workers gone when the host is killed, and the clear
    error when the server was not started.

    The same program runs the scenarios that need a fresh process (no
    server started, host killed, duplicate names): `test_forkserver MODE`. */
#include "testutil.h"
#include "dpool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

//  Set before dp_forkserver_start: the workers see it.
static long long s_offset;

static int
s_parse (dp_task_t *task, const void *in, size_t len, long long *x)
{
    char *end;
    *x = strtoll ((const char *) in, &end, 10);
    if (len == 0 || end != (const char *) in + len)
        return dp_task_fail (task, "not a number: '%.*s'", (int) len, (const char *) in);
    return 0;
}

//  x -> x * x + s_offset
static int
host_square (dp_task_t *task, const void *in, size_t len)
{
    long long x;
    if (s_parse (task, in, len, &x))
        return -1;
    return dp_task_printf (task, "%lld", x * x + s_offset);
}

//  "boom" -> SIGSEGV; anything else -> itself
static int
host_crash (dp_task_t *task, const void *in, size_t len)
{
    if (len == 4 && memcmp (in, "boom", 4) == 0) {
        signal (SIGSEGV, SIG_DFL);
        raise (SIGSEGV);
    }
    return dp_task_reply (task, in, len);
}

//  -> the worker's pid and parent pid, "PID PPID"
static int
host_pid (dp_task_t *task, const void *in, size_t len)
{
    return dp_task_printf (task, "%d %d", (int) getpid (), (int) getppid ());
}

static void
s_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000 };
    nanosleep (&ts, NULL);
}

//  decimal ms -> sleeps that long, returns the item
static int
host_nap (dp_task_t *task, const void *in, size_t len)
{
    long long ms;
    if (s_parse (task, in, len, &ms))
        return -1;
    s_sleep_ms ((int) ms);
    return dp_task_reply (task, in, len);
}

static dp_pool_t *
s_open (int workers, bool with_module)
{
    const char *modules [] = { tu_lib ("libdpool_testtasks.so") };
    dp_pool_opts_t opts = { .workers = workers, .modules = modules,
                            .nmodules = with_module ? 1 : 0 };
    dp_pool_t *pool = dp_pool_open (&opts);
    if (!pool)
        fprintf (stderr, "dp_pool_open: %s\n", dp_strerror_last ());
    return pool;
}

//  The fork server: the one child of this process.
static pid_t
s_server (void)
{
    pid_t kids [8];
    int n = tu_children (getpid (), kids, 8);
    return n == 1 ? kids [0] : -1;
}

//  Children of pid that are alive (not zombies), into out.
static int
s_live_children (pid_t pid, pid_t *out, int max)
{
    pid_t kids [64];
    int n = tu_children (pid, kids, 64), live = 0;
    for (int i = 0; i < n; i++)
        if (tu_alive (kids [i]) && live < max)
            out [live++] = kids [i];
    return live;
}

//  Wait up to timeout_ms for pid to have exactly `want` live children.
static bool
s_wait_children (pid_t pid, int want, int timeout_ms)
{
    int64_t deadline = tu_now_ms () + timeout_ms;
    pid_t kids [64];
    while (s_live_children (pid, kids, 64) != want) {
        if (tu_now_ms () > deadline)
            return false;
        s_sleep_ms (10);
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Scenarios in this process

//  host_square over 100,000 items: every result exact and in order; a
//  module's task runs beside the host's in the same workers.
static void
s_test_square (dp_pool_t *pool)
{
    const size_t n = 100000;
    tu_items_t items;
    tu_items_numbers (&items, n, -5000);
    dp_results_t *res = NULL;
    int64_t start = tu_now_ms ();
    long failed = dp_map (pool, "host_square", (dp_item_t *) items.items, n, NULL, &res);
    printf ("host_square x %zu: %lld ms\n", n, (long long) (tu_now_ms () - start));
    if (failed != 0)
        fprintf (stderr, "dp_map: %ld: %s\n", failed, dp_strerror_last ());
    REQUIRE (failed == 0);
    REQUIRE (dp_results_count (res) == n);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        long long x = -5000 + (long long) i;
        char want [32];
        snprintf (want, sizeof want, "%lld", x * x + s_offset);
        size_t len;
        const char *got = (const char *) dp_results_data (res, i, &len);
        if (dp_results_status (res, i) != DP_OK || len != strlen (want) || memcmp (got, want, len))
            wrong++;
    }
    CHECK (wrong == 0);
    dp_results_destroy (&res);
    //  the module's `square` (no offset) in the same pool
    failed = dp_map (pool, "square", (dp_item_t *) items.items, 1000, NULL, &res);
    CHECK (failed == 0);
    if (failed == 0)
        CHECK (strcmp ((const char *) dp_results_data (res, 0, NULL), "25000000") == 0);
    dp_results_destroy (&res);
    tu_items_free (&items);
}

//  A host task that crashes on `boom`: those items fail "worker died:
//  SIGSEGV, 3 attempts", the rest succeed, and the workers are re-forked
//  by the server (new pids, still its children).
static void
s_test_crash (dp_pool_t *pool, pid_t server)
{
    const size_t n = 3000;
    dp_item_t *items = calloc (n, sizeof (dp_item_t));
    char (*text) [16] = calloc (n, 16);
    for (size_t i = 0; i < n; i++) {
        if (i % 1000 == 500)
            strcpy (text [i], "boom");
        else
            snprintf (text [i], 16, "x%zu", i);
        items [i] = (dp_item_t) { text [i], strlen (text [i]) };
    }
    pid_t before [8];
    int nbefore = s_live_children (server, before, 8);
    dp_results_t *res = NULL;
    long failed = dp_map (pool, "host_crash", items, n, NULL, &res);
    if (failed != 3)
        fprintf (stderr, "host_crash: dp_map returned %ld: %s\n", failed, dp_strerror_last ());
    CHECK (failed == 3);
    REQUIRE (res);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *got = (const char *) dp_results_data (res, i, &len);
        if (i % 1000 == 500) {
            CHECK (dp_results_status (res, i) == DP_ERR_DIED);
            if (strcmp (got, "worker died: SIGSEGV, 3 attempts") != 0) {
                fprintf (stderr, "item %zu: '%s'\n", i, got);
                tu_failures++;
            }
        }
        else
        if (dp_results_status (res, i) != DP_OK || len != strlen (text [i])
        ||  memcmp (got, text [i], len)) {
            fprintf (stderr, "item %zu: status %d '%s'\n", i, dp_results_status (res, i), got);
            tu_failures++;
        }
    }
    dp_results_destroy (&res);
    //  9 deaths, 9 re-forks: the server has 2 workers again, new ones
    CHECK (s_wait_children (server, 2, 5000));
    pid_t after [8];
    int nafter = s_live_children (server, after, 8);
    int kept = 0;
    for (int i = 0; i < nafter; i++)
        for (int j = 0; j < nbefore; j++)
            kept += after [i] == before [j];
    CHECK (kept < nafter);
    //  they answer, and they are the server's children
    tu_items_t few;
    tu_items_numbers (&few, 50, 0);
    failed = dp_map (pool, "host_pid", (dp_item_t *) few.items, 50, NULL, &res);
    CHECK (failed == 0);
    for (size_t i = 0; failed == 0 && i < 50; i++) {
        int pid = 0, ppid = 0;
        sscanf ((const char *) dp_results_data (res, i, NULL), "%d %d", &pid, &ppid);
        CHECK (ppid == server);
        CHECK (pid != getpid () && pid != server);
    }
    dp_results_destroy (&res);
    tu_items_free (&few);
    free (items);
    free (text);
}

//  A host task that outlives the job's timeout: its worker is killed (by
//  pidfd: the supervisor is not its parent) and the item failed.
static void
s_test_timeout (dp_pool_t *pool)
{
    dp_item_t items [] = { {"1", 1}, {"20000", 5}, {"2", 1} };
    dp_job_opts_t opts = { .timeout_ms = 300 };
    dp_results_t *res = NULL;
    int64_t start = tu_now_ms ();
    long failed = dp_map (pool, "host_nap", items, 3, &opts, &res);
    CHECK (failed == 1);
    CHECK (tu_now_ms () - start < 10000);
    if (res) {
        CHECK (dp_results_status (res, 0) == DP_OK);
        CHECK (dp_results_status (res, 1) == DP_ERR_TIMEOUT);
        CHECK (strstr ((const char *) dp_results_data (res, 1, NULL), "timed out after 0.3 s"));
        CHECK (dp_results_status (res, 2) == DP_OK);
    }
    dp_results_destroy (&res);
}

//  A fresh process running this program in MODE; its exit status.
static int
s_run_mode (const char *mode, const char *out_path, int timeout_ms)
{
    char self [4096];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    REQUIRE (n > 0);
    self [n] = 0;
    char *argv [] = { self, (char *) mode, NULL };
    pid_t pid = tu_spawn (argv, out_path, NULL);
    REQUIRE (pid > 0);
    int status = tu_wait (pid, timeout_ms);
    return status >= 0 && WIFEXITED (status) ? WEXITSTATUS (status) : 100;
}

//  The host killed (SIGKILL) with an open pool: the server and its
//  workers go too, and nothing is left.
static void
s_test_host_killed (void)
{
    char out [] = "/tmp/test_forkserver.XXXXXX";
    int fd = mkstemp (out);
    REQUIRE (fd >= 0);
    close (fd);
    char self [4096];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    REQUIRE (n > 0);
    self [n] = 0;
    char *argv [] = { self, "host", NULL };
    pid_t host = tu_spawn (argv, out, NULL);
    REQUIRE (host > 0);
    //  it writes "ready SERVER" once its pool has run a map
    pid_t server = 0;
    int64_t deadline = tu_now_ms () + 15000;
    while (!server && tu_now_ms () < deadline) {
        FILE *f = fopen (out, "r");
        int got = 0;
        if (f && fscanf (f, "ready %d", &got) == 1)
            server = got;
        if (f)
            fclose (f);
        if (!server)
            s_sleep_ms (20);
    }
    CHECK (server > 0);
    pid_t workers [8];
    int nworkers = server > 0 ? s_live_children (server, workers, 8) : 0;
    CHECK (nworkers == 2);
    kill (host, SIGKILL);
    tu_wait (host, 5000);
    deadline = tu_now_ms () + 5000;
    bool alive = true;
    while (alive && tu_now_ms () < deadline) {
        alive = server > 0 && tu_alive (server);
        for (int i = 0; i < nworkers; i++)
            alive |= tu_alive (workers [i]);
        if (alive)
            s_sleep_ms (20);
    }
    CHECK (!alive);
    printf ("host killed: server %d and %d workers gone\n", (int) server, nworkers);
    unlink (out);
}


//  --------------------------------------------------------------------------
//  Modes run in a fresh process (exit 0: as expected)

//  Tasks registered, no dp_forkserver_start: the embedded pool is refused
//  with the rule in the message.
static int
s_mode_noserver (void)
{
    if (dp_register_task ("host_square", host_square))
        return 2;
    dp_pool_t *pool = s_open (1, false);
    if (pool) {
        dp_pool_close (&pool);
        return 3;
    }
    const char *why = dp_strerror_last ();
    printf ("%s\n", why);
    return strstr (why, "dp_forkserver_start") && strstr (why, "before any thread") ? 0 : 4;
}

//  A host task with the name of a module's task: dp_pool_open says so.
static int
s_mode_duplicate (void)
{
    if (dp_register_task ("square", host_square) || dp_forkserver_start ())
        return 2;
    dp_pool_t *pool = s_open (1, true);
    if (pool) {
        dp_pool_close (&pool);
        return 3;
    }
    const char *why = dp_strerror_last ();
    printf ("%s\n", why);
    return strstr (why, "duplicate task name 'square'") ? 0 : 4;
}

//  dp_forkserver_start after a thread started: refused.
static void *
s_idle (void *arg)
{
    s_sleep_ms (2000);
    return arg;
}

static int
s_mode_late (void)
{
    pthread_t thread;
    if (dp_register_task ("host_square", host_square)
    ||  pthread_create (&thread, NULL, s_idle, NULL))
        return 2;
    int rc = dp_forkserver_start ();
    printf ("%s\n", dp_strerror_last ());
    return rc == -1 && strstr (dp_strerror_last (), "threads") ? 0 : 4;
}

//  Start a pool, say "ready SERVER", then wait to be killed.
static int
s_mode_host (void)
{
    if (dp_register_task ("host_square", host_square) || dp_forkserver_start ())
        return 2;
    pid_t server = s_server ();
    dp_pool_t *pool = s_open (2, false);
    if (!pool)
        return 3;
    tu_items_t items;
    tu_items_numbers (&items, 1000, 0);
    dp_results_t *res = NULL;
    if (dp_map (pool, "host_square", (dp_item_t *) items.items, 1000, NULL, &res) != 0)
        return 4;
    dp_results_destroy (&res);
    s_wait_children (server, 2, 5000);
    printf ("ready %d\n", (int) server);
    fflush (stdout);
    while (true) {
        dp_pool_poll (pool, 1000);      //  stay a live client
    }
}

int
main (int argc, char *argv [])
{
    //  The rule: tasks and the fork server first, before any thread
    s_offset = argc > 1 ? 0 : 7;
    if (argc > 1) {
        if (!strcmp (argv [1], "noserver"))
            return s_mode_noserver ();
        if (!strcmp (argv [1], "duplicate"))
            return s_mode_duplicate ();
        if (!strcmp (argv [1], "late"))
            return s_mode_late ();
        if (!strcmp (argv [1], "host"))
            return s_mode_host ();
        return 64;
    }
    REQUIRE (dp_register_task ("host_square", host_square) == 0);
    REQUIRE (dp_register_task ("host_crash", host_crash) == 0);
    REQUIRE (dp_register_task ("host_pid", host_pid) == 0);
    REQUIRE (dp_register_task ("host_nap", host_nap) == 0);
    CHECK (dp_register_task ("host_pid", host_pid) == -1);      //  duplicate
    CHECK (dp_register_task ("exec", host_pid) == -1);          //  built-in
    REQUIRE (dp_forkserver_start () == 0);
    CHECK (dp_register_task ("too_late", host_pid) == -1);
    CHECK (strstr (dp_strerror_last (), "before dp_forkserver_start") != NULL);
    pid_t server = s_server ();
    REQUIRE (server > 0);
    setvbuf (stdout, NULL, _IOLBF, 0);

    dp_pool_t *pool = s_open (2, true);
    REQUIRE (pool);
    CHECK (s_wait_children (server, 2, 5000));
    s_test_square (pool);
    s_test_crash (pool, server);
    s_test_timeout (pool);
    CHECK (s_wait_children (server, 2, 5000));
    dp_pool_close (&pool);
    //  no worker left, not even a zombie; the server is our one child
    pid_t kids [64];
    int nkids = tu_children (server, kids, 64);
    if (nkids)
        fprintf (stderr, "after dp_pool_close: the server still has %d children\n", nkids);
    CHECK (nkids == 0);
    CHECK (tu_children (getpid (), kids, 64) == 1 && kids [0] == server);

    //  the server serves the next pool too
    pool = s_open (3, false);
    REQUIRE (pool);
    tu_items_t items;
    tu_items_numbers (&items, 1000, 0);
    dp_results_t *res = NULL;
    CHECK (dp_map (pool, "host_square", (dp_item_t *) items.items, 1000, NULL, &res) == 0);
    dp_results_destroy (&res);
    tu_items_free (&items);
    dp_pool_close (&pool);
    CHECK (tu_children (server, kids, 64) == 0);

    //  stopped: it is gone and reaped
    dp_forkserver_stop ();
    CHECK (!tu_alive (server));
    CHECK (tu_children (getpid (), kids, 64) == 0);
    pool = s_open (1, false);
    CHECK (pool == NULL);               //  tasks registered, no server
    dp_pool_close (&pool);

    CHECK (s_run_mode ("noserver", NULL, 10000) == 0);
    CHECK (s_run_mode ("duplicate", NULL, 10000) == 0);
    CHECK (s_run_mode ("late", NULL, 10000) == 0);
    s_test_host_killed ();
    return tu_done ("test_forkserver");
}
