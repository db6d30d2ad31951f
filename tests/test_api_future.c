/*  Futures on an embedded pool: 10,000 pipelined submits, timeouts and
    cancellation, completion callbacks (counted, and destroying their
    future), map_async while the caller works, failures with their kind,
    and a pool closed under running futures. */
#include "testutil.h"
#include "dpool.h"

#include <string.h>

//  10,000 submits, then a wait on each: pipelined, so fast.
static void
s_test_many_submits (dp_pool_t *pool)
{
    const size_t n = 10000;
    dp_future_t **futures = calloc (n, sizeof (dp_future_t *));
    int64_t start = tu_now_ms ();
    for (size_t i = 0; i < n; i++) {
        char text [24];
        int len = snprintf (text, sizeof text, "%zu", i);
        futures [i] = dp_submit (pool, "square", text, (size_t) len, NULL);
        REQUIRE (futures [i]);
    }
    int64_t submitted = tu_now_ms ();
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK (dp_future_wait (futures [i], 20000) == 0);
        char want [32];
        snprintf (want, sizeof want, "%zu", i * i);
        size_t len;
        const char *data = dp_future_data (futures [i], &len);
        if (dp_future_status (futures [i]) != DP_OK || strcmp (data, want) || len != strlen (want))
            wrong++;
    }
    int64_t done = tu_now_ms ();
    printf ("10,000 submits: %lld ms to submit, %lld ms in all (%.0f calls/s)\n",
            (long long) (submitted - start), (long long) (done - start),
            n * 1000.0 / (double) (done - start + 1));
    CHECK (wrong == 0);
    CHECK (done - start < 15000);
    for (size_t i = 0; i < n; i++)
        dp_future_destroy (&futures [i]);
    CHECK (futures [0] == NULL);
    CHECK (dp_pool_jobs (pool) == 0);
    free (futures);
}

static int s_calls;

static void
s_count_done (dp_future_t *future, void *arg)
{
    s_calls++;
    *(dp_status_t *) arg = dp_future_status (future);
}

//  A wait that times out, then a cancel: done at once, cancelled.
static void
s_test_timeout_cancel (dp_pool_t *pool)
{
    dp_future_t *slow = dp_submit (pool, "sleep_ms", "3000", 4, NULL);
    REQUIRE (slow);
    dp_status_t seen = DP_PENDING;
    s_calls = 0;
    CHECK (dp_future_on_done (slow, s_count_done, &seen) == 0);
    int64_t start = tu_now_ms ();
    CHECK (dp_future_wait (slow, 100) == 1);
    int64_t took = tu_now_ms () - start;
    CHECK (took >= 90 && took < 1000);
    CHECK (!dp_future_done (slow));
    CHECK (dp_future_status (slow) == DP_PENDING);
    CHECK (dp_future_results (slow) == NULL);
    CHECK (s_calls == 0);
    CHECK (dp_future_cancel (slow) == 0);
    CHECK (s_calls == 1 && seen == DP_ERR_CANCELLED);     //  ran inside cancel
    CHECK (dp_future_done (slow));
    CHECK (dp_future_wait (slow, 0) == 0);
    CHECK (dp_future_status (slow) == DP_ERR_CANCELLED);
    CHECK (dp_results_status (dp_future_results (slow), 0) == DP_ERR_CANCELLED);
    CHECK (dp_future_cancel (slow) == -1);
    dp_future_destroy (&slow);
    //  the workers are not kept busy by it: a quick call is quick
    start = tu_now_ms ();
    dp_future_t *quick = dp_submit (pool, "square", "12", 2, NULL);
    CHECK (quick && dp_future_wait (quick, 5000) == 0);
    CHECK (strcmp (dp_future_data (quick, NULL), "144") == 0);
    printf ("a call after a cancelled 3 s one: %lld ms\n", (long long) (tu_now_ms () - start));
    dp_future_destroy (&quick);
}

//  Callbacks: once each, inside the waits; one that destroys its future,
//  one that submits more work.
typedef struct {
    dp_pool_t *pool;
    int calls;
    dp_future_t *chained;
} chain_t;

static void
s_destroy_self (dp_future_t *future, void *arg)
{
    (*(int *) arg)++;
    dp_future_destroy (&future);
}

static void
s_chain (dp_future_t *future, void *arg)
{
    chain_t *chain = (chain_t *) arg;
    chain->calls++;
    size_t len;
    const char *data = dp_future_data (future, &len);
    chain->chained = dp_submit (chain->pool, "square", data, len, NULL);   //  allowed here
    CHECK (dp_future_wait (future, 0) == 0);        //  done: no wait needed
}

static void
s_test_callbacks (dp_pool_t *pool)
{
    int destroyed = 0;
    for (int i = 0; i < 50; i++) {
        dp_future_t *f = dp_submit (pool, "echo", "x", 1, NULL);
        REQUIRE (f);
        dp_future_on_done (f, s_destroy_self, &destroyed);
    }
    chain_t chain = { .pool = pool };
    dp_future_t *first = dp_submit (pool, "square", "3", 1, NULL);
    dp_future_on_done (first, s_chain, &chain);
    CHECK (dp_future_wait (first, 5000) == 0);
    int64_t deadline = tu_now_ms () + 5000;
    while (destroyed < 50 && tu_now_ms () < deadline)
        dp_pool_poll (pool, 100);
    CHECK (destroyed == 50);
    CHECK (chain.calls == 1);
    REQUIRE (chain.chained);
    CHECK (dp_future_wait (chain.chained, 5000) == 0);
    CHECK (strcmp (dp_future_data (chain.chained, NULL), "81") == 0);
    //  a callback set on a done future runs at once
    int calls = 0;
    dp_future_on_done (chain.chained, s_destroy_self, &calls);
    CHECK (calls == 1);
    dp_future_destroy (&first);
    CHECK (dp_pool_jobs (pool) == 0);
}

//  map_async: the caller works and polls; results by index; failures.
static void
s_test_map_async (dp_pool_t *pool)
{
    const size_t n = 100000;
    tu_items_t items;
    tu_items_numbers (&items, n, 0);
    dp_future_t *f = dp_map_async (pool, "square", (dp_item_t *) items.items, n, NULL);
    REQUIRE (f);
    size_t polls = 0;
    while (!dp_future_done (f)) {
        volatile double work = 0;      //  "other work" between polls
        for (int i = 0; i < 20000; i++)
            work += i;
        polls++;
    }
    dp_progress_t p;
    dp_future_progress (f, &p);
    printf ("map_async: done after %zu polls, %.0f items/s\n", polls, p.rate);
    CHECK (p.finished && p.done == n);
    CHECK (dp_future_status (f) == DP_OK);
    const dp_results_t *res = dp_future_results (f);
    REQUIRE (res && dp_results_count (res) == n);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        char want [32];
        snprintf (want, sizeof want, "%zu", i * i);
        wrong += strcmp (dp_results_data (res, i, NULL), want) != 0;
    }
    CHECK (wrong == 0);
    dp_future_destroy (&f);
    tu_items_free (&items);

    //  failures: the first failed item's kind and message
    dp_item_t bad [] = { { "a", 1 }, { "fail", 4 }, { "b", 1 }, { "fail", 4 } };
    f = dp_map_async (pool, "fail_if", bad, 4, NULL);
    REQUIRE (f);
    CHECK (dp_future_wait (f, 10000) == 0);
    CHECK (dp_future_status (f) == DP_ERR_TASK);
    CHECK (strcmp (dp_future_data (f, NULL), "item is fail") == 0);
    const char *reason = NULL;
    CHECK (dp_results_first_failure (dp_future_results (f), &reason) == 1);
    CHECK (dp_results_failed (dp_future_results (f)) == 2);
    dp_future_destroy (&f);

    //  a task no worker has: the whole job fails, no results
    f = dp_submit (pool, "no_such_task", "1", 1, NULL);
    REQUIRE (f);
    CHECK (dp_future_wait (f, 10000) == 0);
    CHECK (dp_future_status (f) == DP_ERR_NOWORKER);
    CHECK (strstr (dp_future_data (f, NULL), "no_such_task") != NULL);
    CHECK (dp_future_results (f) == NULL);
    dp_future_destroy (&f);

    //  a crash: the kind says the worker died, the message names the signal
    f = dp_submit (pool, "crash_if", "crash", 5, NULL);
    REQUIRE (f);
    CHECK (dp_future_wait (f, 30000) == 0);
    CHECK (dp_future_status (f) == DP_ERR_DIED);
    CHECK (strstr (dp_future_data (f, NULL), "SIGSEGV") != NULL);
    dp_future_destroy (&f);
}

//  Closing the pool under running futures: they end with DP_ERR_POOL and
//  their callbacks run; the handles stay valid until destroyed.
static void
s_test_close (void)
{
    dp_pool_t *pool = tu_pool_open (1);
    REQUIRE (pool);
    dp_future_t *f = dp_submit (pool, "sleep_ms", "5000", 4, NULL);
    REQUIRE (f);
    dp_status_t seen = DP_PENDING;
    s_calls = 0;
    dp_future_on_done (f, s_count_done, &seen);
    dp_pool_close (&pool);
    CHECK (s_calls == 1 && seen == DP_ERR_POOL);
    CHECK (dp_future_done (f));
    CHECK (dp_future_wait (f, 1000) == 0);
    CHECK (strstr (dp_future_data (f, NULL), "pool closed") != NULL);
    dp_future_destroy (&f);
}

int
main (void)
{
    dp_pool_t *pool = tu_pool_open (2);
    REQUIRE (pool);
    s_test_many_submits (pool);
    s_test_timeout_cancel (pool);
    s_test_callbacks (pool);
    s_test_map_async (pool);
    s_test_many_submits (pool);     //  still healthy after crashes and cancels
    dp_pool_close (&pool);
    s_test_close ();
    return tu_done ("test_api_future");
}
