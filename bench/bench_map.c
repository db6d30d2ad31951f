/*  bench_map - items/s of an ordered map through the C API.

    bench_map [-j N] [-n ITEMS] [-r REPEATS] [-c CHUNKSIZE] [-b ENDPOINT]
              [-s BYTES] [-1 | -F] [-v VALUE] TASK MODULE

    Items are the decimal numbers 1..N, or with -v VALUE N copies of VALUE
    (e.g. -v 1000 for spin_us), or with -s BYTES N distinct items of BYTES
    bytes each (each its own buffer, content varying per item). One line
    per repetition goes to stderr; stdout gets the median over repetitions:

      default  one dp_map of the N items per repetition: "ITEMS_PER_S"
      -1       N sequential one-item dp_map calls per repetition (after N/10
               warm-up calls): "ITEMS_PER_S P50_US P99_US", the median of
               each, where a latency is one dp_map call from entry to return
      -F       futures: N dp_submit calls of one item each, then a wait on
               every future: "ITEMS_PER_S". Exits with 3 if this libdpool
               has no futures API (dp_submit), so callers can fall back.

    The pool is opened once, before timing; every run checks that all items
    succeeded and that the last result of `square` is N*N. */
#include "dpool.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench_util.h"

//  The futures API (dp_submit, dp_future_*) came with DP_TIMEOUT. Weak
//  references: bench_map links and runs against a libdpool without it.
#ifdef DP_TIMEOUT
#   define HAVE_FUTURES 1
#   pragma weak dp_submit
#   pragma weak dp_future_wait
#   pragma weak dp_future_status
#   pragma weak dp_future_data
#   pragma weak dp_future_destroy
#else
#   define HAVE_FUTURES 0
#endif


int
main (int argc, char *argv [])
{
    int workers = 2, repeats = 3;
    size_t n = 1000000;
    dp_job_opts_t jopts = { 0 };
    const char *endpoint = NULL, *value = NULL;
    size_t size = 0;
    bool one = false, futures = false;
    int c;
    while ((c = getopt (argc, argv, "j:n:r:c:b:s:v:1Fh")) != -1) {
        switch (c) {
            case 'j': workers = atoi (optarg); break;
            case 'n': n = (size_t) atoll (optarg); break;
            case 'r': repeats = atoi (optarg); break;
            case 'c': jopts.chunksize = (uint32_t) atoi (optarg); break;
            case 'b': endpoint = optarg; break;
            case 's': size = (size_t) atoll (optarg); break;
            case 'v': value = optarg; break;
            case '1': one = true; break;
            case 'F': futures = true; break;
            default:
                fprintf (stderr, "usage: bench_map [-j N] [-n ITEMS] [-r REPEATS] [-c CHUNK] "
                                 "[-b ENDPOINT] [-s BYTES] [-v VALUE] [-1|-F] TASK MODULE\n");
                return c == 'h' ? 0 : 64;
        }
    }
    if (argc - optind != 2 || repeats < 1 || repeats > 100) {
        fprintf (stderr, "bench_map: expected TASK MODULE (see -h)\n");
        return 64;
    }
    if (futures) {
#if HAVE_FUTURES
        if (!dp_submit || !dp_future_wait || !dp_future_status || !dp_future_destroy) {
#else
        {
#endif
            fprintf (stderr, "bench_map: this libdpool has no futures API (dp_submit)\n");
            return 3;
        }
    }
    const char *task = argv [optind];
    const char *modules [] = { argv [optind + 1] };
    if (n < 1) {
        fprintf (stderr, "bench_map: -n must be at least 1\n");
        return 64;
    }
    dp_item_t *items = (dp_item_t *) malloc (n * sizeof (dp_item_t));
    char *buf = NULL;
    if (size) {
        //  Distinct buffers, so nothing is served from one hot copy
        buf = (char *) malloc (n * size);
        if (!buf || !items) {
            fprintf (stderr, "bench_map: cannot allocate %zu x %zu bytes\n", n, size);
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            memset (buf + i * size, 'a' + (int) (i % 26), size);
            items [i] = (dp_item_t) { buf + i * size, size };
        }
    }
    else
    if (value) {
        for (size_t i = 0; i < n; i++)
            items [i] = (dp_item_t) { value, strlen (value) };
    }
    else {
        buf = (char *) malloc (n * 21 + 1);
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            int len = sprintf (buf + at, "%zu", i + 1);
            items [i] = (dp_item_t) { buf + at, (size_t) len };
            at += (size_t) len + 1;
        }
    }
    dp_pool_opts_t popts = { .endpoint = endpoint, .workers = workers, .modules = modules, .nmodules = 1 };
    dp_pool_t *pool = dp_pool_open (&popts);
    if (!pool) {
        fprintf (stderr, "bench_map: %s\n", dp_strerror_last ());
        return 1;
    }
    bool check_square = strcmp (task, "square") == 0 && !size && !value;
    double rates [100], p50s [100], p99s [100];
    double *lat = one ? (double *) malloc (n * sizeof (double)) : NULL;
    for (int r = 0; r < repeats; r++) {
        if (one) {
            size_t warm = n / 10 + 1;
            double start = 0;
            for (size_t k = 0; k < warm + n; k++) {
                size_t i = k < warm ? k % n : k - warm;
                if (k == warm)
                    start = s_now ();
                double t0 = s_now ();
                dp_results_t *res = NULL;
                long failed = dp_map (pool, task, items + i, 1, &jopts, &res);
                if (failed != 0) {
                    fprintf (stderr, "bench_map: one-item map failed: %s\n", dp_strerror_last ());
                    return 1;
                }
                dp_results_destroy (&res);
                if (k >= warm)
                    lat [i] = (s_now () - t0) * 1e6;
            }
            double elapsed = s_now () - start;
            rates [r] = n / elapsed;
            qsort (lat, n, sizeof (double), s_cmp);
            p50s [r] = lat [n / 2];
            p99s [r] = lat [(size_t) (n * 0.99) < n ? (size_t) (n * 0.99) : n - 1];
            fprintf (stderr, "  run %d: %.3f s, %.0f items/s, p50 %.1f us, p99 %.1f us\n",
                     r + 1, elapsed, rates [r], p50s [r], p99s [r]);
            continue;
        }
#if HAVE_FUTURES
        if (futures) {
            dp_future_t **fut = (dp_future_t **) calloc (n, sizeof (dp_future_t *));
            double start = s_now ();
            for (size_t i = 0; i < n; i++) {
                fut [i] = dp_submit (pool, task, items [i].data, items [i].len, &jopts);
                if (!fut [i]) {
                    fprintf (stderr, "bench_map: dp_submit failed: %s\n", dp_strerror_last ());
                    return 1;
                }
            }
            for (size_t i = 0; i < n; i++) {
                if (dp_future_wait (fut [i], -1) != 0 || dp_future_status (fut [i]) != DP_OK) {
                    fprintf (stderr, "bench_map: future %zu failed: %s\n", i, dp_strerror_last ());
                    return 1;
                }
            }
            double elapsed = s_now () - start;
            if (check_square) {
                char want [48];
                snprintf (want, sizeof want, "%llu", (unsigned long long) n * n);
                const char *last = (const char *) dp_future_data (fut [n - 1], NULL);
                if (strcmp (last, want) != 0) {
                    fprintf (stderr, "bench_map: wrong last result %s (want %s)\n", last, want);
                    return 1;
                }
            }
            for (size_t i = 0; i < n; i++)
                dp_future_destroy (&fut [i]);
            free (fut);
            rates [r] = n / elapsed;
            fprintf (stderr, "  run %d: %.3f s, %.0f items/s (futures)\n", r + 1, elapsed, rates [r]);
            continue;
        }
#endif
        dp_results_t *res = NULL;
        double start = s_now ();
        long failed = dp_map (pool, task, items, n, &jopts, &res);
        double elapsed = s_now () - start;
        if (failed != 0) {
            fprintf (stderr, "bench_map: %ld failed: %s\n", failed, dp_strerror_last ());
            return 1;
        }
        if (dp_results_count (res) != n) {
            fprintf (stderr, "bench_map: %zu results for %zu items\n", dp_results_count (res), n);
            return 1;
        }
        if (check_square) {
            char want [48];
            snprintf (want, sizeof want, "%llu", (unsigned long long) n * n);
            const char *last = (const char *) dp_results_data (res, n - 1, NULL);
            if (n < 4000000000ULL && strcmp (last, want) != 0) {
                fprintf (stderr, "bench_map: wrong last result %s (want %s)\n", last, want);
                return 1;
            }
        }
        dp_results_destroy (&res);
        rates [r] = n / elapsed;
        fprintf (stderr, "  run %d: %.3f s, %.0f items/s\n", r + 1, elapsed, rates [r]);
    }
    qsort (rates, (size_t) repeats, sizeof (double), s_cmp);
    if (one) {
        qsort (p50s, (size_t) repeats, sizeof (double), s_cmp);
        qsort (p99s, (size_t) repeats, sizeof (double), s_cmp);
        printf ("%.0f %.1f %.1f\n", rates [repeats / 2], p50s [repeats / 2], p99s [repeats / 2]);
    }
    else
        printf ("%.0f\n", rates [repeats / 2]);
    free (lat);
    dp_pool_close (&pool);
    free (items);
    free (buf);
    return 0;
}
