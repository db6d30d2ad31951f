/*  Bad items against real pools: a poison item (always SIGSEGV), a hanging
    item under a 2 s task timeout and a memory hog under --mem-limit each
    fail with their own reason, the rest of the job succeeds, and the pool
    is healthy for the next job. Run twice: on a dpool-broker's local
    workers (-j 2), then on a worker node (dpool-worker -j 2) connected to a
    broker that has no local worker. */
#include "test_procs.h"

#define MEM_LIMIT   "300"

//  Is the program built with AddressSanitizer? Its shadow memory needs far
//  more address space than any --mem-limit leaves, so that scenario cannot
//  run there (the workers could not even start).
static bool
s_asan (const char *path)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return false;
    static char buf [1 << 16];
    const char *needle = "__asan_init";
    size_t keep = 0, n;
    bool found = false;
    while (!found && (n = fread (buf + keep, 1, sizeof buf - keep, f)) > 0) {
        n += keep;
        found = memmem (buf, n, needle, strlen (needle)) != NULL;
        keep = strlen (needle) - 1;
        memmove (buf, buf + n - keep, keep);
    }
    fclose (f);
    return found;
}

static bool s_hog = true;       //  run the memory hog scenario

//  Without the memory hog scenario, end the argv before --mem-limit.
static void
s_no_mem_limit (char **argv)
{
    for (int i = 0; argv [i] && !s_hog; i++)
        if (strcmp (argv [i], "--mem-limit") == 0)
            argv [i] = NULL;
}

//  A job over n items, text per index from `text`; returns the results
//  (NULL on a pool error) and the wall time in *ms.
static dp_results_t *
s_run (dp_pool_t *pool, const char *task, size_t n, const char *(*text) (size_t, char *),
       const dp_job_opts_t *opts, long *failed, int64_t *ms)
{
    char *buf = (char *) malloc (n * 16);
    dp_item_t *items = (dp_item_t *) malloc (n * sizeof (dp_item_t));
    for (size_t i = 0; i < n; i++) {
        items [i].data = text (i, buf + i * 16);
        items [i].len = strlen ((const char *) items [i].data);
    }
    dp_results_t *res = NULL;
    int64_t start = tu_now_ms ();
    *failed = dp_map (pool, task, items, n, opts, &res);
    *ms = tu_now_ms () - start;
    if (*failed < 0)
        fprintf (stderr, "%s job: pool error: %s\n", task, dp_strerror_last ());
    free (items);
    free (buf);
    return *failed < 0 ? NULL : res;
}

//  Every item but `bad` succeeded with the text `want` gives it; the bad
//  one has `status` and a message containing `reason`.
static void
s_check (const char *what, dp_results_t *res, size_t n, size_t bad, dp_status_t status,
         const char *reason, const char *(*want) (size_t, char *))
{
    if (!res) {
        CHECK (!"job failed as a whole");
        return;
    }
    CHECK (dp_results_count (res) == n);
    CHECK (dp_results_failed (res) == 1);
    size_t wrong = 0;
    for (size_t i = 0; i < n && i < dp_results_count (res); i++) {
        size_t len;
        const char *got = (const char *) dp_results_data (res, i, &len);
        if (i == bad) {
            printf ("  %s: item %zu: %s: \"%s\"\n", what, i,
                    dp_status_name (dp_results_status (res, i)), got);
            CHECK (dp_results_status (res, i) == status);
            CHECK (strstr (got, reason) != NULL);
            continue;
        }
        char buf [16];
        const char *w = want (i, buf);
        if (dp_results_status (res, i) != DP_OK || len != strlen (w) || memcmp (got, w, len)) {
            if (wrong++ < 5)
                fprintf (stderr, "%s: item %zu: %s \"%s\", want \"%s\"\n", what, i,
                         dp_status_name (dp_results_status (res, i)), got, w);
        }
    }
    CHECK (wrong == 0);
    const char *first = NULL;
    CHECK (dp_results_first_failure (res, &first) == (long) bad);
}

//  Poison: 2,000 items for crash_if, one of them `crash`.
#define POISON_N    2000
#define POISON_AT   1234
static const char *
s_poison_text (size_t i, char *buf)
{
    if (i == POISON_AT)
        return "crash";
    sprintf (buf, "%zu", i);
    return buf;
}

//  Hang: 40 items of sleep_ms 5, one of 100,000 (100 s).
#define HANG_N      40
#define HANG_AT     17
static const char *
s_hang_text (size_t i, char *buf)
{
    (void) buf;
    return i == HANG_AT ? "100000" : "5";
}

//  Hog: 20 items of alloc_mb 8, one of 2,000 (over a 300 MiB limit).
#define HOG_N       20
#define HOG_AT      9
static const char *
s_hog_text (size_t i, char *buf)
{
    (void) buf;
    return i == HOG_AT ? "2000" : "8";
}

static void
s_scenarios (const char *rig, dp_pool_t *pool)
{
    long failed;
    int64_t ms;
    dp_results_t *res;

    //  1. poison item
    res = s_run (pool, "crash_if", POISON_N, s_poison_text, NULL, &failed, &ms);
    printf ("%s: poison job (%d items, one crash): %ld failed, %lld ms\n", rig, POISON_N,
            failed, (long long) ms);
    CHECK (failed == 1);
    s_check ("poison", res, POISON_N, POISON_AT, DP_ERR_DIED,
             "worker died: SIGSEGV, 3 attempts", s_poison_text);
    dp_results_destroy (&res);
    CHECK (rig_square_ok (pool, 2000));

    //  1b. the same with chunk size 1: the broker sends the tiny chunks
    //  several to a CHUNK, and a death inside one blames only the item
    //  that ran (the others of its CHUNK run again)
    dp_job_opts_t one = { .chunksize = 1 };
    res = s_run (pool, "crash_if", POISON_N, s_poison_text, &one, &failed, &ms);
    printf ("%s: poison job, chunk size 1: %ld failed, %lld ms\n", rig, failed, (long long) ms);
    CHECK (failed == 1);
    s_check ("poison/1", res, POISON_N, POISON_AT, DP_ERR_DIED,
             "worker died: SIGSEGV, 3 attempts", s_poison_text);
    dp_results_destroy (&res);
    one.unordered = true;
    res = s_run (pool, "crash_if", POISON_N, s_poison_text, &one, &failed, &ms);
    CHECK (failed == 1);
    s_check ("poison/1 unordered", res, POISON_N, POISON_AT, DP_ERR_DIED,
             "worker died: SIGSEGV, 3 attempts", s_poison_text);
    dp_results_destroy (&res);
    CHECK (rig_square_ok (pool, 2000));

    //  2. hanging item with a 2 s task timeout
    dp_job_opts_t opts = { .timeout_ms = 2000 };
    res = s_run (pool, "sleep_ms", HANG_N, s_hang_text, &opts, &failed, &ms);
    printf ("%s: hanging job (%d items, one sleeps 100 s, timeout 2 s): %ld failed, %lld ms\n",
            rig, HANG_N, failed, (long long) ms);
    CHECK (failed == 1);
    CHECK (ms < 10000);
    s_check ("hang", res, HANG_N, HANG_AT, DP_ERR_TIMEOUT, "timed out after 2.0 s", s_hang_text);
    dp_results_destroy (&res);
    CHECK (rig_square_ok (pool, 2000));

    //  3. memory hog under --mem-limit
    if (!s_hog) {
        printf ("%s: SKIP memory hog: AddressSanitizer build (its shadow memory does not fit "
                "a --mem-limit)\n", rig);
        return;
    }
    res = s_run (pool, "alloc_mb", HOG_N, s_hog_text, NULL, &failed, &ms);
    printf ("%s: memory hog job (%d items, one allocates 2000 MiB, limit %s MiB): "
            "%ld failed, %lld ms\n", rig, HOG_N, MEM_LIMIT, failed, (long long) ms);
    CHECK (failed == 1);
    s_check ("hog", res, HOG_N, HOG_AT, DP_ERR_DIED, "out of memory", s_hog_text);
    dp_results_destroy (&res);
    CHECK (rig_square_ok (pool, 2000));
}

int
main (void)
{
    rig_init ("test_resilience");
    static char mod [4096];
    snprintf (mod, sizeof mod, "%s", tu_lib ("libdpool_testtasks.so"));
    char clients [64], workers [64];
    s_hog = !s_asan (tu_bin ("dpool-worker"));

    //  A. local workers of dpool-broker -j 2 --mem-limit 300
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", tu_free_port ());
    char *bargv [] = { (char *) tu_bin ("dpool-broker"), "-c", clients, "-w", workers,
                       "-j", "2", "-m", mod, "--task-wait", "10000", "-v",
                       "--mem-limit", MEM_LIMIT, NULL };
    s_no_mem_limit (bargv);
    const char *blog = rig_path ("broker-local.log");
    pid_t broker = rig_spawn (bargv, NULL, blog, blog);
    dp_pool_t *pool = rig_pool_open (clients, 10000);
    REQUIRE (pool);
    CHECK (rig_square_ok (pool, 100));
    s_scenarios ("local workers", pool);
    dp_pool_close (&pool);
    CHECK (rig_stop (broker));
    if (tu_failures)
        rig_dump ("broker log", blog);

    //  B. a worker node: dpool-broker -j none, dpool-worker -j 2 --mem-limit 300
    int before = tu_failures;
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", tu_free_port ());
    char *b2argv [] = { (char *) tu_bin ("dpool-broker"), "-c", clients, "-w", workers,
                        "-j", "none", "--task-wait", "10000", "-v", NULL };
    const char *b2log = rig_path ("broker-node.log");
    const char *nlog = rig_path ("node.log");
    broker = rig_spawn (b2argv, NULL, b2log, b2log);
    char *nargv [] = { (char *) tu_bin ("dpool-worker"), "--connect", workers, "-j", "2",
                       "-m", mod, "--mem-limit", MEM_LIMIT, NULL };
    s_no_mem_limit (nargv);
    pid_t node = rig_spawn (nargv, NULL, nlog, nlog);
    //  the node and both its workers registered (before the pool is open:
    //  a pool left alone for 3 heartbeats is taken for dead)
    CHECK (rig_wait_lines (b2log, "node ", 1, 15000));
    CHECK (rig_wait_lines (b2log, "worker ", 2, 15000));
    pool = rig_pool_open (clients, 10000);
    REQUIRE (pool);
    CHECK (rig_square_ok (pool, 100));
    s_scenarios ("node workers", pool);
    dp_pool_close (&pool);
    CHECK (tu_alive (node));
    CHECK (rig_stop (node));
    CHECK (rig_stop (broker));
    if (tu_failures > before) {
        rig_dump ("broker log", b2log);
        rig_dump ("node log", nlog);
    }
    return rig_done ("test_resilience");
}
