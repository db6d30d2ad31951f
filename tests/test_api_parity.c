/*  Pool parity (issue 10): dp_apply (Pool.apply), dp_pool_seal and
    dp_pool_join (Pool.close and .join), dp_pool_terminate (Pool.terminate),
    on an embedded pool of two workers; and two workers run two long items
    at once right after a job of tiny ones. */
#include "testutil.h"
#include "dpool.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

//  dp_apply: one item, blocking; its status, its result or message.
static void
s_test_apply (dp_pool_t *pool)
{
    dp_results_t *res = NULL;
    CHECK (dp_apply (pool, "square", "12", 2, NULL, &res) == DP_OK);
    CHECK (res && dp_results_count (res) == 1
           && strcmp ((const char *) dp_results_data (res, 0, NULL), "144") == 0);
    dp_results_destroy (&res);
    CHECK (dp_apply (pool, "fail_if", "fail", 4, NULL, &res) == DP_ERR_TASK);
    CHECK (res && strlen ((const char *) dp_results_data (res, 0, NULL)) > 0);
    printf ("dp_apply fail_if: '%s'\n", res ? (const char *) dp_results_data (res, 0, NULL) : "");
    dp_results_destroy (&res);
    dp_job_opts_t once = { .max_attempts = 1 };
    CHECK (dp_apply (pool, "crash_if", "crash", 5, &once, &res) == DP_ERR_DIED);
    dp_results_destroy (&res);
    CHECK (dp_apply (pool, "echo", NULL, 0, NULL, &res) == DP_OK);
    CHECK (res && dp_results_data (res, 0, NULL) && *(const char *) dp_results_data (res, 0, NULL) == 0);
    dp_results_destroy (&res);
    //  bad arguments: -1 and no result
    res = (dp_results_t *) 1;
    CHECK (dp_apply (pool, "", "1", 1, NULL, &res) == -1 && res == NULL);
    CHECK (dp_apply (pool, "square", NULL, 3, NULL, &res) == -1 && res == NULL);
    CHECK (dp_apply (pool, "square", "1", 1, NULL, NULL) == -1);
    CHECK (dp_apply (NULL, "square", "1", 1, NULL, &res) == -1 && res == NULL);
    printf ("dp_apply: result, task failure, crash, bad arguments\n");
}

static void
s_destroy_future (dp_future_t *future, void *arg)
{
    (void) arg;
    dp_future_destroy (&future);
}

//  on_done of a future: submit one more job while the pool is not sealed
static int s_chained;
static void
s_chain (dp_future_t *future, void *arg)
{
    dp_pool_t *pool = (dp_pool_t *) arg;
    dp_future_t *next = dp_submit (pool, "sleep_ms", "150", 3, NULL);
    s_chained += next != NULL;
    dp_future_destroy (&future);
    if (next)                       //  destroyed when done: a job join waits for
        dp_future_on_done (next, s_destroy_future, NULL);
}

//  A callback job's output: counts answers
typedef struct {
    int next, n;
    char text [32];
    int answered, cancelled, terminated, twice;
    char seen [64];
} cb_t;

static int
s_cb_input (void *arg, const void **data, size_t *len)
{
    cb_t *c = (cb_t *) arg;
    if (c->next == c->n)
        return 0;
    c->next++;
    *len = strlen (c->text);
    *data = c->text;
    return 1;
}

static int
s_cb_output (void *arg, uint64_t index, dp_status_t status, const void *data, size_t len)
{
    cb_t *c = (cb_t *) arg;
    if (index < 64)
        c->twice += c->seen [index]++ > 0;
    c->answered++;
    c->cancelled += status == DP_ERR_CANCELLED;
    c->terminated += status == DP_ERR_CANCELLED && len == 10 && memcmp (data, "terminated", 10) == 0;
    return 0;
}

//  seal + join: join waits for every job (futures, a callback job, a job
//  started by a callback); once sealed, new jobs fail.
static void
s_test_join (dp_pool_t *pool)
{
    dp_future_t *f [6];
    for (int i = 0; i < 6; i++)
        f [i] = dp_submit (pool, "sleep_ms", "100", 3, NULL);
    s_chained = 0;
    dp_future_t *chain = dp_submit (pool, "sleep_ms", "50", 2, NULL);
    REQUIRE (chain);
    dp_future_on_done (chain, s_chain, pool);
    cb_t *c = (cb_t *) calloc (1, sizeof (cb_t));
    REQUIRE (c);
    c->n = 8;
    snprintf (c->text, sizeof c->text, "30");
    dp_job_t *job = dp_job_start (pool, "sleep_ms", NULL, s_cb_input, s_cb_output, c);
    REQUIRE (job);
    CHECK (dp_pool_jobs (pool) == 8);
    CHECK (dp_pool_join (pool, 0) == DP_TIMEOUT);
    int64_t start = tu_now_ms ();
    CHECK (dp_pool_join (pool, 20000) == 0);
    int64_t took = tu_now_ms () - start;
    CHECK (dp_pool_jobs (pool) == 0);
    CHECK (s_chained == 1);
    for (int i = 0; i < 6; i++) {
        CHECK (f [i] && dp_future_wait (f [i], 0) == 0 && dp_future_status (f [i]) == DP_OK);
        dp_future_destroy (&f [i]);
    }
    CHECK (c->answered == 8 && c->cancelled == 0);
    CHECK (dp_job_wait (job, 0) == 0);
    dp_job_destroy (&job);
    free (c);
    printf ("dp_pool_join: 8 jobs and a chained one finished in %lld ms\n", (long long) took);
    //  sealed: running jobs go on, new ones are refused
    dp_future_t *last = dp_submit (pool, "sleep_ms", "100", 3, NULL);
    REQUIRE (last);
    CHECK (dp_pool_seal (pool) == 0);
    dp_future_t *refused = dp_submit (pool, "square", "2", 1, NULL);
    CHECK (!refused && strstr (dp_strerror_last (), "no new jobs"));
    dp_results_t *res = NULL;
    CHECK (dp_apply (pool, "square", "2", 1, NULL, &res) == -1 && !res);
    CHECK (dp_pool_join (pool, 10000) == 0);
    CHECK (dp_future_wait (last, 0) == 0 && dp_future_status (last) == DP_OK);
    dp_future_destroy (&last);
    printf ("dp_pool_seal: new jobs refused ('%s'), running ones finish\n", dp_strerror_last ());
    CHECK (dp_pool_seal (NULL) == -1 && dp_pool_join (NULL, 0) == -1
           && dp_pool_terminate (NULL) == -1);
}

//  Children of this process that sleep in an item (a thread of theirs in
//  nanosleep, from /proc/PID/task/*/wchan), up to max; how many.
static int
s_sleepers (pid_t *pids, int max)
{
    pid_t kids [16];
    int nkids = tu_children (getpid (), kids, 16), n = 0;
    for (int i = 0; i < nkids && n < max; i++) {
        char cmd [128];
        snprintf (cmd, sizeof cmd, "cat /proc/%d/task/*/wchan 2>/dev/null", (int) kids [i]);
        FILE *f = popen (cmd, "r");
        char text [1024] = "";
        size_t got = f ? fread (text, 1, sizeof text - 1, f) : 0;
        text [got] = 0;
        if (f)
            pclose (f);
        if (strstr (text, "nanosleep"))
            pids [n++] = kids [i];
    }
    return n;
}

//  terminate: long items running on both workers, an iterator, a future
//  and a waiting array job; every job ends at once, every sent item is
//  answered once ("terminated"), the workers running items are killed.
static void
s_test_terminate (void)
{
    dp_pool_t *pool = tu_pool_open (2);
    REQUIRE (pool);
    cb_t *c = (cb_t *) calloc (1, sizeof (cb_t));
    REQUIRE (c);
    c->n = 6;
    snprintf (c->text, sizeof c->text, "20000");
    dp_job_opts_t one = { .chunksize = 1 };
    dp_job_t *job = dp_job_start (pool, "sleep_ms", &one, s_cb_input, s_cb_output, c);
    dp_future_t *future = dp_submit (pool, "sleep_ms", "20000", 5, NULL);
    dp_item_t items [3] = { { "20000", 5 }, { "20000", 5 }, { "20000", 5 } };
    dp_iter_t *iter = dp_imap_items (pool, "sleep_ms", items, 3, &one);
    REQUIRE (job && future && iter);
    //  until both workers run an item and the callback job has sent its
    //  items (the future's and the iterator's, sent at once, may keep both
    //  workers busy before the callback job's first poll)
    dp_progress_t p = { 0 };
    pid_t busy [8];
    for (int64_t end = tu_now_ms () + 5000;
         (s_sleepers (busy, 8) < 2 || p.sent < (uint64_t) c->n) && tu_now_ms () < end; ) {
        dp_pool_poll (pool, 50);
        dp_job_progress (job, &p);
    }
    dp_job_progress (job, &p);
    uint64_t sent = p.sent;
    pid_t pids [8];
    int npids = s_sleepers (pids, 8);
    if (npids == 0)
        printf ("(no /proc/PID/task/*/wchan here: the kill is not checked)\n");
    int64_t start = tu_now_ms ();
    CHECK (dp_pool_terminate (pool) == 0);
    int64_t took = tu_now_ms () - start;
    CHECK (took < 2000);
    //  the callback job: every sent item answered once, as "terminated"
    CHECK (dp_job_wait (job, 0) == -1 && strstr (dp_strerror_last (), "pool terminated"));
    dp_job_progress (job, &p);
    CHECK (sent > 0 && p.sent == sent && p.done == p.sent && p.finished);
    CHECK ((uint64_t) c->answered == p.sent && c->twice == 0);
    CHECK (c->terminated == c->answered);
    //  the future: done, cancelled
    CHECK (dp_future_wait (future, 0) == 0 && dp_future_status (future) == DP_ERR_CANCELLED);
    //  the iterator: its answered items say "terminated", then it fails
    dp_result_t r;
    int rc, items_seen = 0, terminated = 0;
    while ((rc = dp_iter_next (iter, &r, 0)) == 1) {
        items_seen++;
        terminated += r.status == DP_ERR_CANCELLED && strcmp ((const char *) r.data, "terminated") == 0;
    }
    CHECK (rc == -1 && strstr (dp_strerror_last (), "pool terminated"));
    CHECK (terminated == items_seen);
    CHECK (dp_pool_jobs (pool) == 0);
    //  sealed; join returns at once
    CHECK (dp_submit (pool, "square", "2", 1, NULL) == NULL
           && strstr (dp_strerror_last (), "dp_pool_terminate"));
    CHECK (dp_pool_join (pool, 0) == 0);
    //  the workers that ran the 20 s items are killed within a few seconds
    int alive = npids;
    for (int64_t end = tu_now_ms () + 5000; alive > 0 && tu_now_ms () < end; ) {
        alive = 0;
        for (int i = 0; i < npids; i++)
            alive += tu_alive (pids [i]);
        if (alive)
            usleep (20000);         //  polling a condition with a deadline
    }
    CHECK (alive == 0);
    printf ("dp_pool_terminate: %lld ms; %d items answered 'terminated' (callback job), "
            "%d (iterator); the %d busy workers killed: %s\n", (long long) took, c->answered,
            items_seen, npids, alive ? "NO" : "yes");
    dp_job_destroy (&job);
    dp_future_destroy (&future);
    dp_iter_destroy (&iter);
    free (c);
    start = tu_now_ms ();
    dp_pool_close (&pool);
    CHECK (tu_now_ms () - start < 3000);
}

//  terminate from inside an output callback: the job ends in the wait
//  that runs the callback, every sent item answered once
typedef struct {
    dp_pool_t *pool;
    uint64_t next, outputs, twice, terminated;
    char seen [20000];
    char text [16];
} inner_t;

static int
s_inner_input (void *arg, const void **data, size_t *len)
{
    inner_t *c = (inner_t *) arg;
    if (c->next == sizeof c->seen)
        return 0;
    *len = (size_t) snprintf (c->text, sizeof c->text, "%llu", (unsigned long long) c->next++);
    *data = c->text;
    return 1;
}

static int
s_inner_output (void *arg, uint64_t index, dp_status_t status, const void *data, size_t len)
{
    inner_t *c = (inner_t *) arg;
    c->twice += index >= sizeof c->seen || c->seen [index]++;
    c->terminated += status == DP_ERR_CANCELLED && strcmp ((const char *) data, "terminated") == 0;
    if (++c->outputs == 500)
        CHECK (dp_pool_terminate (c->pool) == 0);
    return 0;
}

static void
s_test_terminate_inside (void)
{
    inner_t *c = (inner_t *) calloc (1, sizeof (inner_t));
    REQUIRE (c);
    c->pool = tu_pool_open (2);
    REQUIRE (c->pool);
    long rc = dp_map_stream (c->pool, "square", NULL, s_inner_input, s_inner_output, c);
    CHECK (rc == -1 && strstr (dp_strerror_last (), "pool terminated"));
    CHECK (c->outputs == c->next && c->twice == 0 && c->outputs >= 500);
    CHECK (dp_pool_jobs (c->pool) == 0);
    printf ("dp_pool_terminate from a callback: %llu sent, each answered once, %llu 'terminated'\n",
            (unsigned long long) c->next, (unsigned long long) c->terminated);
    dp_pool_close (&c->pool);
    free (c);
}

//  N workers run N items at once, as Pool's processes do, even right after
//  a job of tiny items (whose history once made one worker queue every
//  long item while the other idled: 4 items of 600 ms took 2.4 s)
static void
s_test_fresh_job (void)
{
    dp_pool_t *pool = tu_pool_open (2);
    REQUIRE (pool);
    tu_items_t tiny;
    tu_items_numbers (&tiny, 400, 0);
    dp_job_opts_t one = { .chunksize = 1 };
    dp_results_t *res = NULL;
    CHECK (dp_map (pool, "square", (dp_item_t *) tiny.items, 400, &one, &res) == 0);
    dp_results_destroy (&res);
    tu_items_free (&tiny);
    dp_item_t slow [4] = { { "600", 3 }, { "600", 3 }, { "600", 3 }, { "600", 3 } };
    int64_t start = tu_now_ms ();
    CHECK (dp_map (pool, "sleep_ms", slow, 4, &one, &res) == 0);
    int64_t took = tu_now_ms () - start;
    dp_results_destroy (&res);
    printf ("4 items of 600 ms on 2 workers after a tiny job: %lld ms (2 rounds: 1200)\n",
            (long long) took);
    CHECK (took < 1900);
    dp_pool_close (&pool);
}

int
main (void)
{
    alarm (100);                    //  a hang is a failure, not a stuck ctest
    dp_pool_t *pool = tu_pool_open (2);
    REQUIRE (pool);
    s_test_apply (pool);
    s_test_join (pool);
    dp_pool_close (&pool);
    s_test_terminate ();
    s_test_terminate_inside ();
    s_test_fresh_job ();
    return tu_done ("test_api_parity");
}
