/*  =========================================================================
    example_map - map a task over an array with libdpool

    Opens an embedded pool (a broker thread and local worker processes)
    with the example module, runs `collatz` over 1..N in input order,
    prints each result, reports failures, closes the pool.

        ./example_map [N]               (default N = 20)
        DPOOL_BROKER=tcp://host:5555 ./example_map     (use a running broker)
    =========================================================================
*/
#include <dpool.h>

#include <stdio.h>
#include <stdlib.h>

//  Print each item's result or failure, in input order.

static void
s_print (dp_results_t *results, char (*text) [24])
{
    for (size_t i = 0; i < dp_results_count (results); i++) {
        size_t len;
        const char *data = dp_results_data (results, i, &len);
        if (dp_results_status (results, i) == DP_OK)
            printf ("collatz(%s) = %s\n", text [i], data);
        else
            printf ("collatz(%s) failed (%s): %s\n", text [i],
                    dp_status_name (dp_results_status (results, i)), data);
    }
}

int
main (int argc, char *argv [])
{
    size_t n = argc > 1 ? strtoul (argv [1], NULL, 10) : 20;
    if (n == 0 || n > 1000000) {
        fprintf (stderr, "usage: example_map [N], 1 <= N <= 1000000\n");
        return 2;
    }
    //  Items are byte strings: here the decimal text of 1..n
    char (*text) [24] = malloc (n * sizeof *text);
    dp_item_t *items = malloc (n * sizeof *items);
    if (!text || !items)
        return 1;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf (text [i], sizeof text [i], "%zu", i + 1);
        items [i] = (dp_item_t) { text [i], (size_t) len };
    }
    //  The worker finds "example" as libdpool_example.so next to libdpool
    //  (or in $DPOOL_MODULE_PATH)
    const char *modules [] = { "example" };
    dp_pool_opts_t opts = { .workers = 2, .modules = modules, .nmodules = 1 };
    dp_pool_t *pool = dp_pool_open (&opts);
    if (!pool) {
        fprintf (stderr, "example_map: %s\n", dp_strerror_last ());
        return 1;
    }
    dp_results_t *results;
    long failed = dp_map (pool, "collatz", items, n, NULL, &results);
    if (failed < 0) {
        fprintf (stderr, "example_map: %s\n", dp_strerror_last ());
        dp_pool_close (&pool);
        return 1;
    }
    s_print (results, text);
    printf ("%zu items, %ld failed\n", n, failed);
    dp_results_destroy (&results);
    dp_pool_close (&pool);
    free (items);
    free (text);
    return failed ? 1 : 0;
}
