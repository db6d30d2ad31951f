/*  A module's initializer runs only in the processes that take items (issue
    10): never in a start-up check. The test module's initializer, given
    "pidfile=PATH", appends its pid to PATH; every pid there must be a
    worker (alive, not a check that has exited), once, and every worker
    that took items (initinfo reports its pid) is there. An embedded
    pool of 1 and of 2 workers, a dpool-broker with --init and local
    workers, and a worker node (dpool-worker -j 1 --init). A failing
    initializer still fails the start at once. */
#include "testutil.h"
#include "dpool.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

//  Pids in the file, up to max; how many lines.
static int
s_read_pids (const char *path, int *pids, int max)
{
    FILE *file = fopen (path, "r");
    int n = 0, pid;
    while (file && n < max && fscanf (file, "%d", &pid) == 1)
        pids [n++] = pid;
    if (file)
        fclose (file);
    return n;
}

//  Map initinfo over `n` items on the pool; the pids that ran them.
static int
s_item_pids (dp_pool_t *pool, int n, int *pids, int max)
{
    tu_items_t items;
    tu_items_numbers (&items, (size_t) n, 0);
    dp_job_opts_t opts = { .chunksize = 1 };
    dp_results_t *res = NULL;
    int count = 0;
    if (dp_map (pool, "initinfo", (dp_item_t *) items.items, (size_t) n, &opts, &res) == 0)
        for (int i = 0; i < n; i++) {
            int pid = atoi ((const char *) dp_results_data (res, (size_t) i, NULL));
            int k = 0;
            while (k < count && pids [k] != pid)
                k++;
            if (k == count && count < max)
                pids [count++] = pid;
        }
    dp_results_destroy (&res);
    tu_items_free (&items);
    return count;
}

static bool
s_has (const int *pids, int n, int pid)
{
    for (int i = 0; i < n; i++)
        if (pids [i] == pid)
            return true;
    return false;
}

//  Every process that took items ran the initializer, once; every pid in
//  the file is a worker still running (no start-up check, which has
//  exited); with one worker, exactly that one.
static void
s_check (const char *what, const char *path, dp_pool_t *pool, int max_workers)
{
    int took [64], ran [64];
    int ntook = s_item_pids (pool, 400, took, 64);
    int nran = s_read_pids (path, ran, 64);
    int alive = 0;
    for (int i = 0; i < nran; i++)
        alive += tu_alive (ran [i]);
    printf ("%s: initializer ran in %d process(es) (%d still running), %d took items\n",
            what, nran, alive, ntook);
    CHECK (ntook >= 1 && ntook <= max_workers);
    CHECK (nran >= ntook && nran <= max_workers && alive == nran);
    if (max_workers == 1)
        CHECK (nran == 1 && ran [0] == took [0]);
    for (int i = 0; i < nran; i++)
        for (int k = 0; k < i; k++)
            CHECK (ran [k] != ran [i]);
    for (int i = 0; i < ntook; i++)
        CHECK (s_has (ran, nran, took [i]));
}

static void
s_embedded (int workers, const char *path)
{
    char args [300];
    snprintf (args, sizeof args, "pidfile=%s", path);
    unlink (path);
    const char *modules [] = { tu_lib ("libdpool_testtasks.so") };
    dp_pool_opts_t opts = { .workers = workers, .modules = modules, .nmodules = 1,
                            .init_args = args };
    dp_pool_t *pool = dp_pool_open (&opts);
    REQUIRE (pool);
    char what [64];
    snprintf (what, sizeof what, "embedded pool of %d", workers);
    s_check (what, path, pool, workers);
    dp_pool_close (&pool);
}

//  A standalone broker (local workers, or none and a node of one worker).
static void
s_standalone (bool node, const char *path)
{
    char args [300], clients [64], workers [64];
    snprintf (args, sizeof args, "pidfile=%s", path);
    unlink (path);
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", tu_free_port ());
    const char *module = tu_lib ("libdpool_testtasks.so");
    char *bargv [] = { (char *) tu_bin ("dpool-broker"), "--clients", clients, "--workers", workers,
                       "-j", node ? "none" : "1", "-m", (char *) module, "--init", args, NULL };
    char *nargv [] = { (char *) tu_bin ("dpool-worker"), "--connect", workers, "-j", "1",
                       "-m", (char *) module, "--init", args, NULL };
    pid_t broker = tu_spawn (bargv, NULL, NULL);
    pid_t worker = node ? tu_spawn (nargv, NULL, NULL) : 0;
    REQUIRE (broker > 0 && worker >= 0);
    dp_pool_opts_t opts = { .endpoint = clients };
    dp_pool_t *pool = NULL;
    for (int64_t end = tu_now_ms () + 10000; !pool && tu_now_ms () < end; )
        pool = dp_pool_open (&opts);    //  the broker may still be starting
    REQUIRE (pool);
    s_check (node ? "dpool-worker -j 1 --init (a node)" : "dpool-broker -j 1 --init",
             path, pool, 1);
    dp_pool_close (&pool);
    if (worker > 0) {
        kill (worker, SIGTERM);
        CHECK (tu_wait (worker, 5000) != -1);
    }
    kill (broker, SIGTERM);
    CHECK (tu_wait (broker, 5000) != -1);
}

int
main (void)
{
    alarm (100);                    //  a hang is a failure, not a stuck ctest
    char path [128];
    snprintf (path, sizeof path, "/tmp/dpool-init-once-%d", (int) getpid ());
    s_embedded (1, path);
    s_embedded (2, path);
    s_standalone (false, path);
    s_standalone (true, path);
    unlink (path);

    //  a failing initializer fails the start at once, with its message
    const char *modules [] = { tu_lib ("libdpool_testtasks.so") };
    dp_pool_opts_t opts = { .workers = 2, .modules = modules, .nmodules = 1,
                            .init_args = "fail" };
    int64_t start = tu_now_ms ();
    dp_pool_t *pool = dp_pool_open (&opts);
    CHECK (!pool && strstr (dp_strerror_last (), "initializer failed"));
    CHECK (tu_now_ms () - start < 5000);
    printf ("failing initializer: '%s' in %lld ms\n", dp_strerror_last (),
            (long long) (tu_now_ms () - start));
    dp_pool_close (&pool);
    return tu_done ("test_init_once");
}
