/*  =========================================================================
    example_futures - submit calls and maps, get results later

    Opens an embedded pool with the example module, then:
      1. dp_submit: one call per number, all pipelined, with a completion
         callback counting them; waits for each with a timeout;
      2. dp_map_async: a whole map that runs while the program does other
         work, polling dp_future_done and showing dp_future_progress;
      3. structured arguments: pow (base, exp) over packed tuples with
         dp_args_add and dp_starmap, reading the results with dp_unpack;
      4. dp_future_cancel of a call that is not needed any more.

        ./example_futures [N]           (default N = 1000)
    =========================================================================
*/
#include <dpool.h>
#include <dpool_pack.h>

#include <stdio.h>
#include <stdlib.h>

//  Called inside the pool call that completes the future.

static void
s_on_done (dp_future_t *future, void *arg)
{
    if (dp_future_status (future) == DP_OK)
        ++*(int *) arg;
}

int
main (int argc, char *argv [])
{
    size_t n = argc > 1 ? strtoul (argv [1], NULL, 10) : 1000;
    if (n == 0 || n > 10000000) {
        fprintf (stderr, "usage: example_futures [N], 1 <= N <= 10000000\n");
        return 2;
    }
    const char *modules [] = { "example" };
    dp_pool_opts_t opts = { .workers = 2, .modules = modules, .nmodules = 1 };
    dp_pool_t *pool = dp_pool_open (&opts);
    if (!pool) {
        fprintf (stderr, "example_futures: %s\n", dp_strerror_last ());
        return 1;
    }
    //  1. One future per call; the item is copied, so a stack buffer is fine
    size_t calls = n < 100 ? n : 100;
    dp_future_t **futures = calloc (calls, sizeof (dp_future_t *));
    int ok = 0;
    for (size_t i = 0; i < calls; i++) {
        char text [24];
        int len = snprintf (text, sizeof text, "%zu", i + 1);
        futures [i] = dp_submit (pool, "collatz", text, (size_t) len, NULL);
        if (futures [i])
            dp_future_on_done (futures [i], s_on_done, &ok);
    }
    unsigned long longest = 0;
    for (size_t i = 0; i < calls; i++) {
        if (!futures [i] || dp_future_wait (futures [i], 10000) != 0) {
            fprintf (stderr, "example_futures: call %zu did not finish\n", i);
            continue;
        }
        unsigned long steps = strtoul (dp_future_data (futures [i], NULL), NULL, 10);
        if (steps > longest)
            longest = steps;
        dp_future_destroy (&futures [i]);
    }
    printf ("%d of %zu calls ok; the longest took %lu steps\n", ok, calls, longest);
    free (futures);

    //  2. A whole map in the background. The items must stay valid until
    //  the future is done (they are read as the pool's window allows)
    char (*text) [24] = malloc (n * sizeof *text);
    dp_item_t *items = malloc (n * sizeof *items);
    for (size_t i = 0; i < n; i++)
        items [i] = (dp_item_t) { text [i], (size_t) snprintf (text [i], 24, "%zu", i + 1) };
    dp_future_t *map = dp_map_async (pool, "collatz", items, n, NULL);
    unsigned long polls = 0;
    while (map && !dp_future_done (map)) {
        polls++;                    //  ...the program's own work goes here...
        dp_progress_t p;
        if (polls % 100000 == 0 && dp_future_progress (map, &p) == 0)
            printf ("  map: %llu of %llu done\n", (unsigned long long) p.done,
                    (unsigned long long) p.total);
    }
    if (map && dp_future_status (map) == DP_OK) {
        const dp_results_t *results = dp_future_results (map);
        printf ("map of %zu: collatz(%zu) = %s (%lu polls meanwhile)\n", n, n,
                (const char *) dp_results_data (results, n - 1, NULL), polls);
    }
    else
        printf ("map failed: %s\n", map ? (const char *) dp_future_data (map, NULL) : dp_strerror_last ());
    dp_future_destroy (&map);
    free (items);
    free (text);

    //  3. Structured arguments: pow (base, exp) takes a packed tuple
    dp_args_t *args = dp_args_new ();
    for (int exp = 0; exp <= 10; exp++)
        dp_args_add (args, "ii", 3, exp);          //  the item [3, exp]
    dp_results_t *results;
    long failed = dp_starmap (pool, "pow", args, NULL, &results);
    for (size_t i = 0; failed >= 0 && i < dp_results_count (results); i++) {
        size_t len;
        const void *data = dp_results_data (results, i, &len);
        dp_unpack_t u;
        int64_t value;
        dp_unpack_init (&u, data, len);
        if (dp_results_status (results, i) == DP_OK && dp_unpack_format (&u, "I", &value) == 0)
            printf ("3^%zu = %lld\n", i, (long long) value);
        else
            printf ("3^%zu failed: %s\n", i, (const char *) data);
    }
    if (failed < 0)
        fprintf (stderr, "example_futures: %s\n", dp_strerror_last ());
    dp_results_destroy (&results);
    dp_args_destroy (&args);

    //  4. Cancel a call nobody needs any more
    dp_future_t *late = dp_submit (pool, "collatz", "27", 2, NULL);
    if (late && dp_future_cancel (late) == 0)
        printf ("cancelled: %s\n", dp_status_name (dp_future_status (late)));
    dp_future_destroy (&late);
    dp_pool_close (&pool);
    return failed == 0 && ok == (int) calls ? 0 : 1;
}
