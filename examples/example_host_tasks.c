/*  =========================================================================
    example_host_tasks - run a function of this program on a pool, no module

    `poly` below is an ordinary static function of this program. It is
    registered by name, then the fork server is started — at the top of
    main, before any thread or pool exists (the one rule) — and an embedded
    pool's workers are forked from it: they hold `poly` and the globals as
    they were when the server started (here, the coefficients from argv).

        ./example_host_tasks [N [A B C]]    a*x*x + b*x + c for x = 1..N
                                            (default N = 10, A B C = 1 0 0)
    =========================================================================
*/
#include <dpool.h>

#include <stdio.h>
#include <stdlib.h>

//  Set from argv before dp_forkserver_start: every worker has them.
static long long s_a = 1, s_b = 0, s_c = 0;

//  The task: decimal x -> a*x*x + b*x + c.
static int
poly (dp_task_t *task, const void *in, size_t len)
{
    char *end;
    long long x = strtoll ((const char *) in, &end, 10);
    if (len == 0 || end != (const char *) in + len)
        return dp_task_fail (task, "not a number: '%.*s'", (int) len, (const char *) in);
    return dp_task_printf (task, "%lld", s_a * x * x + s_b * x + s_c);
}

int
main (int argc, char *argv [])
{
    size_t n = argc > 1 ? strtoul (argv [1], NULL, 10) : 10;
    if (argc > 4) {
        s_a = atoll (argv [2]);
        s_b = atoll (argv [3]);
        s_c = atoll (argv [4]);
    }
    if (n == 0 || n > 1000000) {
        fprintf (stderr, "usage: example_host_tasks [N [A B C]], 1 <= N <= 1000000\n");
        return 2;
    }
    //  First: register, then start the fork server, before any thread
    if (dp_register_task ("poly", poly) || dp_forkserver_start ()) {
        fprintf (stderr, "example_host_tasks: %s\n", dp_strerror_last ());
        return 1;
    }
    char (*text) [24] = malloc (n * sizeof *text);
    dp_item_t *items = malloc (n * sizeof *items);
    if (!text || !items)
        return 1;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf (text [i], sizeof text [i], "%zu", i + 1);
        items [i] = (dp_item_t) { text [i], (size_t) len };
    }
    //  An embedded pool (no endpoint, no DPOOL_BROKER): no module needed
    dp_pool_opts_t opts = { .workers = 2 };
    dp_pool_t *pool = dp_pool_open (&opts);
    if (!pool) {
        fprintf (stderr, "example_host_tasks: %s\n", dp_strerror_last ());
        return 1;
    }
    dp_results_t *results;
    long failed = dp_map (pool, "poly", items, n, NULL, &results);
    if (failed < 0)
        fprintf (stderr, "example_host_tasks: %s\n", dp_strerror_last ());
    else {
        for (size_t i = 0; i < n; i++)
            printf ("poly(%s) = %s\n", text [i], (const char *) dp_results_data (results, i, NULL));
        printf ("%zu items, %ld failed\n", n, failed);
        dp_results_destroy (&results);
    }
    dp_pool_close (&pool);
    free (items);
    free (text);
    return failed == 0 ? 0 : 1;
}
