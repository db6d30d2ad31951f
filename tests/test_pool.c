/*  Embedded pool end to end: a broker thread in this process, local worker
    processes it starts over ipc://, the test task module. */
#include "testutil.h"
#include "dpool.h"

#include <string.h>

//  square over 200,000 items: every result exact and in order.
static void
s_test_square (dp_pool_t *pool)
{
    const size_t n = 200000;
    tu_items_t items;
    tu_items_numbers (&items, n, -1000);
    dp_results_t *res = NULL;
    int64_t start = tu_now_ms ();
    long failed = dp_map (pool, "square", (dp_item_t *) items.items, n, NULL, &res);
    printf ("square x %zu: %lld ms\n", n, (long long) (tu_now_ms () - start));
    REQUIRE (failed == 0);
    REQUIRE (dp_results_count (res) == n);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        long long x = -1000 + (long long) i;
        char want [32];
        snprintf (want, sizeof want, "%lld", x * x);
        size_t len;
        const char *got = (const char *) dp_results_data (res, i, &len);
        if (dp_results_status (res, i) != DP_OK || len != strlen (want) || memcmp (got, want, len))
            wrong++;
    }
    CHECK (wrong == 0);
    dp_results_destroy (&res);
    tu_items_free (&items);
}

//  fail_if and crash_if: per-item failures with a reason, the rest succeed;
//  a crashing item is tried max_attempts times, then failed.
static void
s_test_failures (dp_pool_t *pool, const char *task, const char *bad, dp_status_t want,
                 const char *reason)
{
    const size_t n = 3000;
    dp_item_t *items = (dp_item_t *) calloc (n, sizeof (dp_item_t));
    char (*text) [16] = calloc (n, 16);
    for (size_t i = 0; i < n; i++) {
        if (i % 1000 == 500)
            strcpy (text [i], bad);
        else
            snprintf (text [i], 16, "x%zu", i);
        items [i].data = text [i];
        items [i].len = strlen (text [i]);
    }
    dp_results_t *res = NULL;
    long failed = dp_map (pool, task, items, n, NULL, &res);
    if (failed != 3)
        fprintf (stderr, "%s: dp_map returned %ld: %s\n", task, failed, dp_strerror_last ());
    CHECK (failed == 3);
    REQUIRE (res);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *got = (const char *) dp_results_data (res, i, &len);
        if (i % 1000 == 500) {
            CHECK (dp_results_status (res, i) == want);
            if (!strstr (got, reason)) {
                fprintf (stderr, "item %zu: reason '%s', want '%s'\n", i, got, reason);
                tu_failures++;
            }
        }
        else {
            if (dp_results_status (res, i) != DP_OK)
                fprintf (stderr, "item %zu (%s): %s\n", i, text [i], got);
            CHECK (dp_results_status (res, i) == DP_OK);
            CHECK (len == strlen (text [i]) && memcmp (got, text [i], len) == 0);
        }
    }
    const char *first = NULL;
    CHECK (dp_results_first_failure (res, &first) == 500);
    dp_results_destroy (&res);
    free (items);
    free (text);
}

//  An unknown task is a clear error within seconds, not a hang.
static void
s_test_unknown_task (dp_pool_t *pool)
{
    dp_item_t item = { "1", 1 };
    dp_results_t *res = NULL;
    int64_t start = tu_now_ms ();
    long rc = dp_map (pool, "no_such_task", &item, 1, NULL, &res);
    CHECK (rc == -1);
    CHECK (res == NULL);
    CHECK (strstr (dp_strerror_last (), "no_such_task") != NULL);
    CHECK (tu_now_ms () - start < 5000);
}

static void
s_test_missing_module (void)
{
    const char *modules [] = { "/nonexistent/libnothing.so" };
    dp_pool_opts_t opts = { .workers = 1, .modules = modules, .nmodules = 1 };
    int64_t start = tu_now_ms ();
    dp_pool_t *pool = dp_pool_open (&opts);
    CHECK (pool == NULL);
    CHECK (strstr (dp_strerror_last (), "/nonexistent/libnothing.so") != NULL);
    CHECK (tu_now_ms () - start < 5000);
    dp_pool_close (&pool);
}

static void
s_test_unreachable (void)
{
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", tu_free_port ());
    dp_pool_opts_t opts = { .endpoint = endpoint, .timeout_ms = 1500 };
    int64_t start = tu_now_ms ();
    dp_pool_t *pool = dp_pool_open (&opts);
    CHECK (pool == NULL);
    CHECK (strstr (dp_strerror_last (), "cannot reach") != NULL);
    CHECK (tu_now_ms () - start < 4000);
}

int
main (void)
{
    dp_pool_t *pool = tu_pool_open (2);
    REQUIRE (pool);
    s_test_square (pool);
    s_test_failures (pool, "fail_if", "fail", DP_ERR_TASK, "item is fail");
    s_test_failures (pool, "crash_if", "crash", DP_ERR_DIED, "SIGSEGV, 3 attempts");
    s_test_unknown_task (pool);
    s_test_square (pool);       //  still healthy after crashes
    dp_pool_close (&pool);
    CHECK (pool == NULL);
    s_test_missing_module ();
    s_test_unreachable ();
    return tu_done ("test_pool");
}
