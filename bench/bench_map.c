/*  bench_map - items/s of an ordered map through the C API.

    bench_map [-j N] [-n ITEMS] [-r REPEATS] [-c CHUNKSIZE] [-b ENDPOINT] TASK MODULE
    Items are the decimal numbers 1..N. Prints one line per repetition and
    the median, as `items/s`. The pool is opened once, before timing. */
#include "dpool.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
s_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

int
main (int argc, char *argv [])
{
    int workers = 2, repeats = 3;
    size_t n = 1000000;
    dp_job_opts_t jopts = { 0 };
    const char *endpoint = NULL;
    int c;
    while ((c = getopt (argc, argv, "j:n:r:c:b:h")) != -1) {
        switch (c) {
            case 'j': workers = atoi (optarg); break;
            case 'n': n = (size_t) atoll (optarg); break;
            case 'r': repeats = atoi (optarg); break;
            case 'c': jopts.chunksize = (uint32_t) atoi (optarg); break;
            case 'b': endpoint = optarg; break;
            default:
                fprintf (stderr, "usage: bench_map [-j N] [-n ITEMS] [-r REPEATS] [-c CHUNK] "
                                 "[-b ENDPOINT] TASK MODULE\n");
                return c == 'h' ? 0 : 64;
        }
    }
    if (argc - optind != 2 || repeats < 1 || repeats > 100) {
        fprintf (stderr, "bench_map: expected TASK MODULE (see -h)\n");
        return 64;
    }
    const char *task = argv [optind];
    const char *modules [] = { argv [optind + 1] };
    char *buf = (char *) malloc (n * 21 + 1);
    dp_item_t *items = (dp_item_t *) malloc (n * sizeof (dp_item_t));
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        int len = sprintf (buf + at, "%zu", i + 1);
        items [i] = (dp_item_t) { buf + at, (size_t) len };
        at += (size_t) len + 1;
    }
    dp_pool_opts_t popts = { .endpoint = endpoint, .workers = workers, .modules = modules, .nmodules = 1 };
    dp_pool_t *pool = dp_pool_open (&popts);
    if (!pool) {
        fprintf (stderr, "bench_map: %s\n", dp_strerror_last ());
        return 1;
    }
    double rates [100];
    for (int r = 0; r < repeats; r++) {
        dp_results_t *res = NULL;
        double start = s_now ();
        long failed = dp_map (pool, task, items, n, &jopts, &res);
        double elapsed = s_now () - start;
        if (failed != 0) {
            fprintf (stderr, "bench_map: %ld failed: %s\n", failed, dp_strerror_last ());
            return 1;
        }
        dp_results_destroy (&res);
        rates [r] = n / elapsed;
        fprintf (stderr, "  run %d: %.3f s, %.0f items/s\n", r + 1, elapsed, rates [r]);
    }
    qsort (rates, (size_t) repeats, sizeof (double), s_cmp);
    printf ("%.0f\n", rates [repeats / 2]);
    dp_pool_close (&pool);
    free (items);
    free (buf);
    return 0;
}
