/*  Sharp edges of the public API (issue 10): malformed endpoints fail at
    once with a clear error; every destructor takes NULL and a pointer to
    NULL; a program that stays away from its pool for many heartbeat
    intervals (computing) keeps its jobs, on an embedded pool and on a
    standalone broker over TCP. */
#include "testutil.h"
#include "dpool.h"
#include "dpool_pack.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  Each malformed endpoint, given in the options or in $DPOOL_BROKER,
//  makes dp_pool_open return NULL within a second, naming the endpoint.
static void
s_test_endpoints (void)
{
    const char *bad [] = { "not-an-endpoint", "tcp://127.0.0.1", "foo://bar", "127.0.0.1:5555",
                           "tcp://127.0.0.1:0", "tcp://127.0.0.1:99999", "tcp://:5555",
                           "ipc://", "tcp://127.0.0.1:55x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        for (int env = 0; env < 2; env++) {
            dp_pool_opts_t opts = { .endpoint = env ? NULL : bad [i] };
            if (env)
                setenv ("DPOOL_BROKER", bad [i], 1);
            int64_t start = tu_now_ms ();
            dp_pool_t *pool = dp_pool_open (&opts);
            int64_t took = tu_now_ms () - start;
            unsetenv ("DPOOL_BROKER");
            const char *why = dp_strerror_last ();
            if (pool || took > 1000 || !strstr (why, bad [i])
            ||  (env && !strstr (why, "DPOOL_BROKER"))) {
                fprintf (stderr, "endpoint '%s' (%s): pool %p after %lld ms: %s\n", bad [i],
                         env ? "$DPOOL_BROKER" : "opts", (void *) pool, (long long) took, why);
                tu_failures++;
            }
            dp_pool_close (&pool);
        }
    printf ("malformed endpoints: refused at once (e.g. '%s')\n", dp_strerror_last ());
}

//  Every _destroy / _close takes NULL and a pointer to NULL.
static void
s_test_null (void)
{
    dp_pool_close (NULL);
    dp_results_destroy (NULL);
    dp_job_destroy (NULL);
    dp_iter_destroy (NULL);
    dp_future_destroy (NULL);
    dp_pack_destroy (NULL);
    dp_args_destroy (NULL);
    dp_pool_t *pool = NULL;
    dp_results_t *results = NULL;
    dp_job_t *job = NULL;
    dp_iter_t *iter = NULL;
    dp_future_t *future = NULL;
    dp_pack_t *pack = NULL;
    dp_args_t *args = NULL;
    dp_pool_close (&pool);
    dp_results_destroy (&results);
    dp_job_destroy (&job);
    dp_iter_destroy (&iter);
    dp_future_destroy (&future);
    dp_pack_destroy (&pack);
    dp_args_destroy (&args);
    CHECK (!pool && !results && !job && !iter && !future && !pack && !args);
    printf ("NULL destructors: fine\n");
}

//  The program computes for `ms` without calling the pool (this busy loop
//  is the scenario under test, not a wait for a condition).
static void
s_compute (int ms)
{
    volatile uint64_t x = 0;
    for (int64_t end = tu_now_ms () + ms; tu_now_ms () < end; )
        for (int i = 0; i < 100000; i++)
            x += (uint64_t) i;
}

//  Submit work, stay away from the pool for 30 heartbeat intervals, then
//  collect: every result is there. Then the pool still takes new jobs.
static void
s_test_idle (dp_pool_t *pool, const char *what)
{
    dp_future_t *one = dp_submit (pool, "square", "12", 2, NULL);
    tu_items_t items;
    tu_items_numbers (&items, 100, 0);
    dp_future_t *many = dp_map_async (pool, "square", (dp_item_t *) items.items, 100, NULL);
    REQUIRE (one && many);
    s_compute (3000);
    CHECK (dp_future_wait (one, 10000) == 0);
    CHECK (dp_future_wait (many, 10000) == 0);
    size_t len;
    const char *r = (const char *) dp_future_data (one, &len);
    if (dp_future_status (one) != DP_OK || strcmp (r, "144") != 0) {
        fprintf (stderr, "%s: submit after idle: %s '%s'\n", what,
                 dp_status_name (dp_future_status (one)), r);
        tu_failures++;
    }
    CHECK (dp_future_status (many) == DP_OK);
    const dp_results_t *res = dp_future_results (many);
    CHECK (res && dp_results_count (res) == 100 && dp_results_failed (res) == 0);
    if (res)
        CHECK (strcmp ((const char *) dp_results_data (res, 99, NULL), "9801") == 0);
    dp_future_destroy (&one);
    dp_future_destroy (&many);
    //  idle with no job at all, then a new job
    s_compute (1000);
    dp_results_t *out = NULL;
    CHECK (dp_map (pool, "square", (dp_item_t *) items.items, 100, NULL, &out) == 0);
    dp_results_destroy (&out);
    tu_items_free (&items);
    printf ("%s: jobs kept across 3 s of computing at a 100 ms heartbeat\n", what);
}

//  A streaming job cancelled after `at` outputs, by its flag or by
//  dp_job_cancel from the output callback: every item sent is answered
//  exactly once (results or DP_ERR_CANCELLED), then the job ends.
#define CANCEL_N 200000
typedef struct {
    uint64_t next;
    char text [32];
    uint8_t seen [CANCEL_N];
    uint64_t outputs, dupes, cancelled;
    volatile int flag;
    bool use_flag;
    dp_job_t *job;
} cancel_t;

static int
s_cancel_input (void *arg, const void **data, size_t *len)
{
    cancel_t *c = (cancel_t *) arg;
    if (c->next == CANCEL_N)
        return 0;
    *len = (size_t) snprintf (c->text, sizeof c->text, "%llu", (unsigned long long) c->next++);
    *data = c->text;
    return 1;
}

static int
s_cancel_output (void *arg, uint64_t index, dp_status_t status, const void *data, size_t len)
{
    cancel_t *c = (cancel_t *) arg;
    if (index >= CANCEL_N || c->seen [index]++)
        c->dupes++;
    c->outputs++;
    c->cancelled += status == DP_ERR_CANCELLED;
    if (c->outputs == 1000) {
        if (c->use_flag)
            c->flag = 1;
        else
            dp_job_cancel (c->job);
    }
    return 0;
}

static void
s_test_cancel (dp_pool_t *pool, bool use_flag)
{
    cancel_t *c = (cancel_t *) calloc (1, sizeof (cancel_t));
    REQUIRE (c);
    c->use_flag = use_flag;
    dp_job_opts_t opts = { .cancel = use_flag ? &c->flag : NULL };
    c->job = dp_job_start (pool, "square", &opts, s_cancel_input, s_cancel_output, c);
    REQUIRE (c->job);
    long rc = dp_job_wait (c->job, 30000);
    dp_progress_t progress;
    dp_job_progress (c->job, &progress);
    uint64_t missing = 0;
    for (uint64_t i = 0; i < progress.sent; i++)
        missing += !c->seen [i];
    printf ("%s: %llu sent, %llu outputs (%llu cancelled), %llu missing, %llu twice; rc %ld\n",
            use_flag ? "opts.cancel" : "dp_job_cancel", (unsigned long long) progress.sent,
            (unsigned long long) c->outputs, (unsigned long long) c->cancelled,
            (unsigned long long) missing, (unsigned long long) c->dupes, rc);
    CHECK (progress.sent > 1000 && progress.sent < CANCEL_N);
    CHECK (c->outputs == progress.sent && missing == 0 && c->dupes == 0);
    CHECK (progress.done == progress.sent);
    if (use_flag)
        CHECK (rc == -1 && strstr (dp_strerror_last (), "cancel"));
    else
        CHECK (rc >= 0);
    dp_job_destroy (&c->job);
    free (c);
}

//  Which pool: an explicitly embedded one (modules or workers given) is
//  never sent to $DPOOL_BROKER; DP_POOL_EMBEDDED / DP_POOL_REMOTE force.
static void
s_test_mode (void)
{
    setenv ("DPOOL_BROKER", "tcp://127.0.0.1:1", 1);     //  nobody there
    const char *modules [] = { tu_lib ("libdpool_testtasks.so") };
    dp_pool_opts_t opts = { .modules = modules, .nmodules = 1, .workers = 1, .timeout_ms = 500 };
    dp_item_t items [1] = { { "7", 1 } };
    dp_results_t *res = NULL;
    dp_pool_t *pool = dp_pool_open (&opts);
    CHECK (pool && dp_map (pool, "square", items, 1, NULL, &res) == 0);
    CHECK (res && strcmp ((const char *) dp_results_data (res, 0, NULL), "49") == 0);
    dp_results_destroy (&res);
    dp_pool_close (&pool);
    //  forced remote: $DPOOL_BROKER, which does not answer
    opts.mode = DP_POOL_REMOTE;
    pool = dp_pool_open (&opts);
    CHECK (!pool && strstr (dp_strerror_last (), "tcp://127.0.0.1:1"));
    dp_pool_close (&pool);
    //  no modules, no workers: $DPOOL_BROKER (auto)
    dp_pool_opts_t plain = { .timeout_ms = 500 };
    pool = dp_pool_open (&plain);
    CHECK (!pool && strstr (dp_strerror_last (), "tcp://127.0.0.1:1"));
    //  forced embedded, even with an endpoint given
    plain.mode = DP_POOL_EMBEDDED;
    plain.endpoint = "tcp://127.0.0.1:1";
    plain.modules = modules;
    plain.nmodules = 1;
    pool = dp_pool_open (&plain);
    CHECK (pool && dp_map (pool, "square", items, 1, NULL, &res) == 0);
    dp_results_destroy (&res);
    dp_pool_close (&pool);
    unsetenv ("DPOOL_BROKER");
    //  forced remote with nothing to connect to; a bad mode
    opts.mode = DP_POOL_REMOTE;
    CHECK (!dp_pool_open (&opts) && strstr (dp_strerror_last (), "DPOOL_BROKER"));
    opts.mode = 7;
    CHECK (!dp_pool_open (&opts) && strstr (dp_strerror_last (), "mode"));
    printf ("pool mode: explicit embedded ignores $DPOOL_BROKER; both forced modes work\n");
}

int
main (void)
{
    alarm (100);                    //  a hang is a failure, not a stuck ctest
    s_test_endpoints ();
    s_test_null ();
    s_test_mode ();

    const char *modules [] = { tu_lib ("libdpool_testtasks.so") };
    dp_pool_opts_t opts = { .workers = 2, .modules = modules, .nmodules = 1,
                            .heartbeat_ms = 100 };
    dp_pool_t *pool = dp_pool_open (&opts);
    REQUIRE (pool);
    s_test_idle (pool, "embedded pool");
    s_test_cancel (pool, true);
    s_test_cancel (pool, false);
    dp_pool_close (&pool);

    char clients [64], workers [64];
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", tu_free_port ());
    char *bargv [] = { (char *) tu_bin ("dpool-broker"), "--clients", clients, "--workers", workers,
                       "-j", "2", "-m", (char *) modules [0], "--heartbeat", "100", NULL };
    pid_t broker = tu_spawn (bargv, NULL, NULL);
    REQUIRE (broker > 0);
    dp_pool_opts_t ropts = { .endpoint = clients, .heartbeat_ms = 100 };
    int64_t deadline = tu_now_ms () + 10000;
    while (!pool && tu_now_ms () < deadline)
        pool = dp_pool_open (&ropts);   //  the broker may still be starting
    REQUIRE (pool);
    s_test_idle (pool, "standalone broker");
    dp_pool_close (&pool);
    kill (broker, SIGTERM);
    CHECK (tu_wait (broker, 5000) != -1);
    return tu_done ("test_api_edges");
}
