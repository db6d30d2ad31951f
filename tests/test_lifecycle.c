/*  Worker lifecycle on an embedded pool: a module initializer runs exactly
    once in each worker process, with the pool's arguments; max tasks per
    child recycles the processes (their pids change); a memory hog under a
    memory limit fails "out of memory" while the rest of the job succeeds. */
#include "testutil.h"
#include "dpool.h"

#include <string.h>

//  Map `initinfo` over n items; count distinct pids, check each result
//  says the initializer ran once with `args`.
static int
s_distinct_pids (dp_pool_t *pool, size_t n, const char *args)
{
    tu_items_t items;
    tu_items_numbers (&items, n, 0);
    dp_job_opts_t jopts = { .chunksize = 10 };
    dp_results_t *res = NULL;
    long failed = dp_map (pool, "initinfo", (dp_item_t *) items.items, n, &jopts, &res);
    REQUIRE (failed == 0);
    int pids [4096], npids = 0;
    for (size_t i = 0; i < n; i++) {
        int pid = 0, calls = 0;
        char got_args [256] = "";
        const char *text = (const char *) dp_results_data (res, i, NULL);
        if (sscanf (text, "%d %d %255[^\n]", &pid, &calls, got_args) < 2 || calls != 1
        ||  strcmp (got_args, args) != 0) {
            fprintf (stderr, "item %zu: '%s'\n", i, text);
            tu_failures++;
            break;
        }
        bool seen = false;
        for (int k = 0; k < npids && !seen; k++)
            seen = pids [k] == pid;
        if (!seen && npids < 4096)
            pids [npids++] = pid;
    }
    dp_results_destroy (&res);
    tu_items_free (&items);
    return npids;
}

int
main (void)
{
    const char *modules [] = { tu_lib ("libdpool_testtasks.so") };
    //  initializer once per process; no recycling: at most 2 processes
    dp_pool_opts_t opts = { .workers = 2, .modules = modules, .nmodules = 1,
                            .init_args = "alpha beta" };
    dp_pool_t *pool = dp_pool_open (&opts);
    REQUIRE (pool);
    int pids = s_distinct_pids (pool, 20000, "alpha beta");
    printf ("no recycling: %d worker processes\n", pids);
    CHECK (pids >= 1 && pids <= 2);
    dp_pool_close (&pool);

    //  recycled every 500 items: 20,000 items need at least 20 processes
    opts.max_tasks_per_child = 500;
    pool = dp_pool_open (&opts);
    REQUIRE (pool);
    pids = s_distinct_pids (pool, 20000, "alpha beta");
    printf ("max 500 tasks per child: %d worker processes\n", pids);
    CHECK (pids >= 20);
    dp_pool_close (&pool);

    //  a failing initializer: the pool does not open, and says why
    opts.init_args = "fail";
    opts.max_tasks_per_child = 0;
    pool = dp_pool_open (&opts);
    CHECK (pool == NULL);
    CHECK (strstr (dp_strerror_last (), "initializer") != NULL);

    //  memory limit: a hog fails "out of memory", the others succeed
    //  (not under AddressSanitizer: its shadow memory does not fit a limit)
#ifndef __SANITIZE_ADDRESS__
    opts.init_args = NULL;
    opts.mem_limit_mb = 400;
    pool = dp_pool_open (&opts);
    REQUIRE (pool);
    dp_item_t items [3] = { { "1", 1 }, { "4000", 4 }, { "2", 1 } };
    dp_results_t *res = NULL;
    long failed = dp_map (pool, "alloc_mb", items, 3, NULL, &res);
    CHECK (failed == 1);
    if (res) {
        const char *why = (const char *) dp_results_data (res, 1, NULL);
        printf ("memory hog: %s\n", why);
        CHECK (dp_results_status (res, 1) == DP_ERR_DIED);
        CHECK (strstr (why, "out of memory") != NULL);
        CHECK (dp_results_status (res, 0) == DP_OK && dp_results_status (res, 2) == DP_OK);
    }
    dp_results_destroy (&res);
    dp_pool_close (&pool);
#endif
    return tu_done ("test_lifecycle");
}
