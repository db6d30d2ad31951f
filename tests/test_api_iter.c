/*  Iterators (imap, imap_unordered) and callback jobs on an embedded pool:
    order under random task times, completeness of unordered results,
    lazy input held to the window, timeouts, cancellation, several jobs
    at once on one pool, and the rules for calls from callbacks. */
#include "testutil.h"
#include "dpool.h"

#include <string.h>

//  Items "0".."3" at random, for sleep_ms: task times of 0 to 3 ms.
static char (*s_random_sleeps (size_t n, dp_item_t *items)) [4]
{
    char (*text) [4] = calloc (n, 4);
    for (size_t i = 0; i < n; i++) {
        text [i][0] = (char) ('0' + rand () % 4);
        items [i] = (dp_item_t) { text [i], 1 };
    }
    return text;
}

//  imap: results come in input order although task times vary.
static void
s_test_ordered (dp_pool_t *pool)
{
    const size_t n = 600;
    dp_item_t *items = calloc (n, sizeof (dp_item_t));
    char (*text) [4] = s_random_sleeps (n, items);
    dp_job_opts_t opts = { .chunksize = 1 };    //  one item per chunk: most reordering
    dp_iter_t *it = dp_imap_items (pool, "sleep_ms", items, n, &opts);
    REQUIRE (it);
    dp_result_t r;
    size_t count = 0, wrong = 0;
    int rc;
    while ((rc = dp_iter_next (it, &r, 10000)) == 1) {
        if (r.index != count || r.status != DP_OK || r.len != 1
        ||  ((const char *) r.data) [0] != text [r.index][0] || ((const char *) r.data) [1] != 0)
            wrong++;
        count++;
    }
    CHECK (rc == 0);
    CHECK (count == n);
    CHECK (wrong == 0);
    dp_progress_t p;
    CHECK (dp_iter_progress (it, &p) == 0);
    CHECK (p.finished && p.total_known && p.total == n && p.done == n && p.failed == 0);
    dp_iter_destroy (&it);
    CHECK (it == NULL);
    free (items);
    free (text);
}

//  Lazy input for the callback tests: decimal numbers, or a sleep value.
typedef struct {
    size_t n, next;
    const char *fixed;          //  every item this text, or NULL: the index
    char buf [32];
    size_t max_ahead;           //  most items read ahead of those taken
    size_t *taken;
} input_t;

static int
s_input (void *arg, const void **data, size_t *len)
{
    input_t *in = (input_t *) arg;
    if (in->next == in->n)
        return 0;
    if (in->taken && in->next - *in->taken > in->max_ahead)
        in->max_ahead = in->next - *in->taken;
    if (in->fixed) {
        *data = in->fixed;
        *len = strlen (in->fixed);
    }
    else {
        *len = (size_t) snprintf (in->buf, sizeof in->buf, "%zu", in->next);
        *data = in->buf;
    }
    in->next++;
    return 1;
}

//  imap_unordered: every index exactly once, results right.
static void
s_test_unordered (dp_pool_t *pool)
{
    const size_t n = 3000;
    dp_item_t *items = calloc (n, sizeof (dp_item_t));
    char (*text) [4] = s_random_sleeps (n, items);
    uint8_t *seen = calloc (n, 1);
    dp_job_opts_t opts = { .chunksize = 2 };
    dp_iter_t *it = dp_imap_items (pool, "sleep_ms", items, n, &opts);
    REQUIRE (it);
    dp_iter_destroy (&it);          //  an unfinished iterator: cancelled, pool fine
    opts.unordered = true;
    it = dp_imap_items (pool, "sleep_ms", items, n, &opts);
    REQUIRE (it);
    dp_result_t r;
    size_t count = 0, wrong = 0, out_of_order = 0;
    uint64_t last = 0;
    int rc;
    while ((rc = dp_iter_next (it, &r, 10000)) == 1) {
        if (r.index >= n || seen [r.index]++ || r.status != DP_OK
        ||  ((const char *) r.data) [0] != text [r.index][0])
            wrong++;
        out_of_order += count && r.index < last;
        last = r.index;
        count++;
    }
    if (rc != 0)                    //  the pool is stuck: no point going on
        fprintf (stderr, "no results for 10 s after a job was cancelled (%d results): "
                 "did the broker lose its workers' credit on CANCEL?\n", (int) count);
    REQUIRE (rc == 0);
    CHECK (count == n);
    CHECK (wrong == 0);
    printf ("imap_unordered: %zu results, %zu out of input order\n", count, out_of_order);
    dp_iter_destroy (&it);
    free (seen);
    free (items);
    free (text);
}

//  A long lazy input with a slow reader: the pool reads input only as
//  results are taken, so the items read ahead stay within the window.
static void
s_test_lazy (dp_pool_t *pool)
{
    const size_t n = 400000;
    size_t taken = 0;
    input_t in = { .n = n, .taken = &taken };
    dp_iter_t *it = dp_imap (pool, "echo", NULL, s_input, &in);
    REQUIRE (it);
    dp_result_t r;
    size_t wrong = 0;
    int rc;
    while ((rc = dp_iter_next (it, &r, 10000)) == 1) {
        char want [32];
        int len = snprintf (want, sizeof want, "%zu", taken);
        if (r.index != taken || r.len != (size_t) len || memcmp (r.data, want, r.len))
            wrong++;
        taken++;
        if (taken == 1000) {
            //  a reader that stops: the input stops too
            dp_pool_poll (pool, 300);
            CHECK (in.next <= 1000 + 131072);
        }
    }
    CHECK (rc == 0 && taken == n && wrong == 0);
    printf ("lazy input: at most %zu items read ahead of the reader\n", in.max_ahead);
    CHECK (in.max_ahead <= 131072);
    dp_iter_destroy (&it);
}

//  A timeout comes back in time; cancel then yields what is left,
//  cancelled items included, exactly once each; the pool is fine after.
static void
s_test_timeout_cancel (dp_pool_t *pool)
{
    input_t in = { .n = 100000, .fixed = "2" };
    dp_job_opts_t opts = { .chunksize = 1 };
    dp_iter_t *it = dp_imap_unordered (pool, "sleep_ms", &opts, s_input, &in);
    REQUIRE (it);
    dp_result_t r;
    int64_t start = tu_now_ms ();
    size_t count = 0;
    int rc = dp_iter_next (it, &r, 0);
    CHECK (rc == DP_TIMEOUT || rc == 1);
    count += rc == 1;
    CHECK (tu_now_ms () - start < 1000);
    while (count < 20 && dp_iter_next (it, &r, 5000) == 1)
        count++;
    CHECK (count == 20);
    start = tu_now_ms ();
    CHECK (dp_iter_cancel (it) == 0);
    size_t cancelled = 0, ok = 0;
    while ((rc = dp_iter_next (it, &r, 5000)) == 1) {
        cancelled += r.status == DP_ERR_CANCELLED;
        ok += r.status == DP_OK;
    }
    int64_t took = tu_now_ms () - start;
    dp_progress_t p;
    dp_iter_progress (it, &p);
    printf ("cancel: %zu more ok, %zu cancelled of %llu sent, in %lld ms\n", ok, cancelled,
            (unsigned long long) p.sent, (long long) took);
    CHECK (rc == 0);
    CHECK (cancelled > 0);
    CHECK (20 + ok + cancelled == p.sent);
    CHECK (in.next < in.n);           //  the input was not read to its end
    CHECK (took < 3000);
    CHECK (dp_iter_cancel (it) == -1);  //  already finished
    dp_iter_destroy (&it);
    //  the next job runs at once
    start = tu_now_ms ();
    dp_future_t *f = dp_submit (pool, "square", "7", 1, NULL);
    REQUIRE (f);
    if (dp_future_wait (f, 10000) != 0)
        fprintf (stderr, "no result for 10 s after a job was cancelled: "
                 "did the broker lose its workers' credit on CANCEL?\n");
    REQUIRE (dp_future_done (f));
    CHECK (strcmp (dp_future_data (f, NULL), "49") == 0);
    CHECK (tu_now_ms () - start < 5000);
    dp_future_destroy (&f);
}

//  Items "0" (sleep 0 ms), but a 60 s sleep at index LONG_AT.
#define LONG_AT     3000
static int
s_input_long (void *arg, const void **data, size_t *len)
{
    size_t *next = (size_t *) arg;
    if (*next == 20000)
        return 0;
    *data = *next == LONG_AT ? "60000" : "0";
    *len = strlen ((const char *) *data);
    (*next)++;
    return 1;
}

//  Cancel while a long item runs among tiny ones on a one-worker pool.
//  With chunk size 1 the broker sends the tiny chunks many to a CHUNK, so
//  the long item sits inside a group (and the worker holds up to 64
//  chunks): the ABORT must name the whole group, else the long one runs
//  on for 60 s, and the next job waits for it.
static void
s_test_cancel_inside_group (void)
{
    dp_pool_t *pool = tu_pool_open (1);
    REQUIRE (pool);
    size_t next = 0;
    dp_job_opts_t opts = { .chunksize = 1 };
    dp_iter_t *it = dp_imap (pool, "sleep_ms", &opts, s_input_long, &next);
    REQUIRE (it);
    dp_result_t r;
    int rc;
    size_t count = 0;
    while ((rc = dp_iter_next (it, &r, 2000)) == 1)
        count++;
    printf ("cancel inside a group: %zu results before the long item held the rest\n", count);
    CHECK (rc == DP_TIMEOUT);
    CHECK (count <= LONG_AT && count > 100);
    int64_t start = tu_now_ms ();
    CHECK (dp_iter_cancel (it) == 0);
    while ((rc = dp_iter_next (it, &r, 5000)) == 1)
        ;
    CHECK (rc == 0);
    dp_iter_destroy (&it);
    dp_future_t *f = dp_submit (pool, "square", "9", 1, NULL);
    REQUIRE (f);
    CHECK (dp_future_wait (f, 10000) == 0);
    int64_t took = tu_now_ms () - start;
    printf ("cancel inside a group: next job answered %lld ms after the cancel\n", (long long) took);
    CHECK (dp_future_done (f) && strcmp (dp_future_data (f, NULL), "81") == 0);
    CHECK (took < 5000);
    dp_future_destroy (&f);
    dp_pool_close (&pool);
}

//  Callback job: output in order, progress, and no waiting from callbacks.
typedef struct {
    input_t in;
    dp_pool_t *pool;
    size_t count, wrong;
    int nested;                 //  what a wait from inside returned
} cb_t;

static int
s_cb_input (void *arg, const void **data, size_t *len)
{
    return s_input (&((cb_t *) arg)->in, data, len);
}

static int
s_cb_output (void *arg, uint64_t index, dp_status_t status, const void *data, size_t len)
{
    cb_t *cb = (cb_t *) arg;
    char want [32];
    snprintf (want, sizeof want, "%llu", (unsigned long long) (index * index));
    if (index != cb->count || status != DP_OK || len != strlen (want) || memcmp (data, want, len))
        cb->wrong++;
    cb->count++;
    if (cb->count == 10)
        cb->nested = dp_pool_poll (cb->pool, 0);
    return 0;
}

static void
s_test_jobs (dp_pool_t *pool)
{
    cb_t cb = { .in = { .n = 50000 }, .pool = pool };
    dp_job_t *job = dp_job_start (pool, "square", NULL, s_cb_input, s_cb_output, &cb);
    REQUIRE (job);
    //  a second job on the same pool at the same time: an iterator
    input_t in2 = { .n = 20000 };
    dp_iter_t *it = dp_imap (pool, "echo", NULL, s_input, &in2);
    REQUIRE (it);
    dp_result_t r;
    size_t count2 = 0;
    while (dp_iter_next (it, &r, 10000) == 1)
        count2 += r.index == count2;
    CHECK (count2 == in2.n);
    long rc = dp_job_wait (job, 20000);
    CHECK (rc == 0);
    CHECK (cb.count == cb.in.n && cb.wrong == 0);
    CHECK (cb.nested == -1);
    CHECK (strstr (dp_strerror_last (), "callback") != NULL);
    dp_progress_t p;
    dp_job_progress (job, &p);
    CHECK (p.finished && p.done == cb.in.n && p.rate > 0 && p.eta_s == 0);
    dp_job_destroy (&job);
    dp_iter_destroy (&it);
    CHECK (dp_pool_jobs (pool) == 0);
}

//  A job whose task no worker has fails as a whole, with the reason.
static void
s_test_no_worker (dp_pool_t *pool)
{
    dp_item_t item = { "1", 1 };
    dp_iter_t *it = dp_imap_items (pool, "no_such_task", &item, 1, NULL);
    REQUIRE (it);
    dp_result_t r;
    CHECK (dp_iter_next (it, &r, 10000) == -1);
    CHECK (strstr (dp_strerror_last (), "no_such_task") != NULL);
    dp_iter_destroy (&it);
}

int
main (void)
{
    srand (42);
    dp_pool_t *pool = tu_pool_open (3);
    REQUIRE (pool);
    s_test_ordered (pool);
    s_test_unordered (pool);
    s_test_lazy (pool);
    s_test_timeout_cancel (pool);
    s_test_jobs (pool);
    s_test_no_worker (pool);
    s_test_ordered (pool);          //  still healthy
    dp_pool_close (&pool);
    s_test_cancel_inside_group ();
    return tu_done ("test_api_iter");
}
