/*  Issue 10's sharp edges, as an outside program sees them: built by
    test_install.sh against the installed headers and pkg-config only (no
    test helpers), run with the installed example module. Prints one line
    per check; exits with the number of failures. */
#include <dpool.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int s_failures;
#define EXPECT(cond, what) do { if (cond) printf ("ok: %s\n", what); \
    else { printf ("FAIL: %s (%s)\n", what, dp_strerror_last ()); s_failures++; } } while (0)

static long long
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

//  a callback job over N numbers whose output cancels after 50 results
#define CANCEL_N 400000
typedef struct {
    dp_job_t *job;
    volatile int flag;
    int use_flag;
    unsigned long next, outputs, twice;
    char seen [CANCEL_N];
    char text [16];
} cancel_t;

static int
s_input (void *arg, const void **data, size_t *len)
{
    cancel_t *c = (cancel_t *) arg;
    if (c->next == CANCEL_N)
        return 0;
    *len = (size_t) snprintf (c->text, sizeof c->text, "%lu", c->next++);
    *data = c->text;
    return 1;
}

static int
s_output (void *arg, uint64_t index, dp_status_t status, const void *data, size_t len)
{
    cancel_t *c = (cancel_t *) arg;
    (void) status; (void) data; (void) len;
    c->twice += index >= CANCEL_N || c->seen [index]++;
    if (++c->outputs == 50) {
        if (c->use_flag)
            c->flag = 1;
        else
            dp_job_cancel (c->job);
    }
    return 0;
}

int
main (void)
{
    alarm (120);
    const char *mods [] = { "example" };
    //  1. malformed endpoints fail at once
    const char *bad [] = { "not-an-endpoint", "tcp://127.0.0.1", "foo://bar", "127.0.0.1:5555" };
    for (int i = 0; i < 4; i++) {
        long long start = s_now_ms ();
        dp_pool_opts_t o = { .endpoint = bad [i] };
        dp_pool_t *p = dp_pool_open (&o);
        EXPECT (!p && s_now_ms () - start < 1000 && strstr (dp_strerror_last (), bad [i]),
                "malformed endpoint fails at once");
        dp_pool_close (&p);
        setenv ("DPOOL_BROKER", bad [i], 1);
        start = s_now_ms ();
        p = dp_pool_open (NULL);
        EXPECT (!p && s_now_ms () - start < 1000, "malformed $DPOOL_BROKER fails at once");
        dp_pool_close (&p);
        unsetenv ("DPOOL_BROKER");
    }
    //  2. NULL destructors
    dp_pool_close (NULL);
    dp_results_destroy (NULL);
    dp_job_destroy (NULL);
    dp_iter_destroy (NULL);
    dp_future_destroy (NULL);
    dp_pool_t *none = NULL;
    dp_pool_close (&none);
    EXPECT (1, "NULL destructors");
    //  3. an explicitly embedded pool ignores $DPOOL_BROKER
    setenv ("DPOOL_BROKER", "tcp://127.0.0.1:1", 1);
    dp_pool_opts_t opts = { .workers = 2, .modules = mods, .nmodules = 1, .heartbeat_ms = 100 };
    dp_pool_t *pool = dp_pool_open (&opts);
    unsetenv ("DPOOL_BROKER");
    EXPECT (pool, "embedded pool with modules ignores $DPOOL_BROKER");
    if (!pool)
        return 1;
    //  4. apply
    dp_results_t *res = NULL;
    EXPECT (dp_apply (pool, "square", "12", 2, NULL, &res) == DP_OK
            && strcmp ((const char *) dp_results_data (res, 0, NULL), "144") == 0, "dp_apply");
    dp_results_destroy (&res);
    EXPECT (dp_apply (pool, "square", "x", 1, NULL, &res) == DP_ERR_TASK, "dp_apply failure kind");
    dp_results_destroy (&res);
    //  5. a program computes for 2 s (20 heartbeats) between calls: a
    //  future submitted before is still there
    dp_future_t *f = dp_submit (pool, "square", "3", 1, NULL);
    long long until = s_now_ms () + 2000;
    volatile unsigned long spin = 0;
    while (s_now_ms () < until)
        spin++;
    EXPECT (f && dp_future_wait (f, 5000) == 0 && dp_future_status (f) == DP_OK,
            "a future survives 2 s of computing between calls");
    dp_future_destroy (&f);
    //  6. cancel answers every sent item once (flag and call)
    for (int use_flag = 0; use_flag < 2; use_flag++) {
        cancel_t *c = (cancel_t *) calloc (1, sizeof (cancel_t));
        c->use_flag = use_flag;
        dp_job_opts_t jo = { .cancel = use_flag ? &c->flag : NULL };
        c->job = dp_job_start (pool, "square", &jo, s_input, s_output, c);
        dp_job_wait (c->job, 30000);
        dp_progress_t pr;
        dp_job_progress (c->job, &pr);
        EXPECT (c->job && pr.finished && c->outputs == pr.sent && c->twice == 0 && pr.sent < CANCEL_N,
                use_flag ? "opts.cancel answers every sent item once"
                         : "dp_job_cancel answers every sent item once");
        dp_job_destroy (&c->job);
        free (c);
    }
    //  7. speculation off: no backup copies
    dp_item_t items [8];
    for (int i = 0; i < 8; i++)
        items [i] = (dp_item_t) { "7", 1 };
    dp_job_opts_t off = { .speculate = DP_SPECULATE_OFF };
    dp_future_t *m = dp_map_async (pool, "square", items, 8, &off);
    dp_progress_t pr;
    EXPECT (m && dp_future_wait (m, 10000) == 0 && dp_future_progress (m, &pr) == 0
            && pr.backups == 0 && dp_future_status (m) == DP_OK, "speculate off");
    dp_future_destroy (&m);
    //  8. seal + join, terminate
    dp_future_t *fs [4];
    for (int i = 0; i < 4; i++)
        fs [i] = dp_submit (pool, "collatz", "27", 2, NULL);
    EXPECT (dp_pool_seal (pool) == 0 && dp_submit (pool, "square", "1", 1, NULL) == NULL,
            "sealed pool refuses jobs");
    EXPECT (dp_pool_join (pool, 10000) == 0 && dp_pool_jobs (pool) == 0, "join waits for every job");
    for (int i = 0; i < 4; i++) {
        EXPECT (fs [i] && dp_future_status (fs [i]) == DP_OK, "joined future done");
        dp_future_destroy (&fs [i]);
    }
    dp_pool_close (&pool);
    pool = dp_pool_open (&opts);
    dp_future_t *t = pool ? dp_map_async (pool, "collatz", items, 8, NULL) : NULL;
    EXPECT (t && dp_pool_terminate (pool) == 0 && dp_future_wait (t, 0) == 0
            && dp_future_status (t) != DP_PENDING && dp_pool_jobs (pool) == 0, "terminate");
    dp_future_destroy (&t);
    dp_pool_close (&pool);
    printf ("%d failed\n", s_failures);
    return s_failures;
}
