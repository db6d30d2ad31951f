/*  serial_spin - the serial C baseline of W2: the work of testtasks'
    `spin_us` (parse the item, burn CPU for that many microseconds, format
    the answer) done ITEMS times in a loop, in one process, no pool.

    serial_spin [-n ITEMS] [-r REPEATS] [-c] [US]     (defaults 2000 3 1000)
    -c spins on the thread's CPU time, as `spin_cpu_us` does.
    Prints the median items/s over REPEATS runs. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench_util.h"


static clockid_t s_clock = CLOCK_MONOTONIC;

//  The body of testtasks.c's s_spin, without the task plumbing.
static int
s_spin_us (const char *in, char *out, size_t outsize)
{
    char *end;
    errno = 0;
    long long us = strtoll (in, &end, 10);
    if (errno || end == in || us < 0)
        return -1;
    struct timespec start, now;
    clock_gettime (s_clock, &start);
    do
        clock_gettime (s_clock, &now);
    while ((now.tv_sec - start.tv_sec) * 1000000LL
           + (now.tv_nsec - start.tv_nsec) / 1000 < us);
    return snprintf (out, outsize, "%lld", us);
}

int
main (int argc, char *argv [])
{
    long n = 2000;
    int repeats = 3, c;
    while ((c = getopt (argc, argv, "n:r:ch")) != -1) {
        switch (c) {
            case 'n': n = atol (optarg); break;
            case 'r': repeats = atoi (optarg); break;
            case 'c': s_clock = CLOCK_THREAD_CPUTIME_ID; break;
            default:
                fprintf (stderr, "usage: serial_spin [-n ITEMS] [-r REPEATS] [-c] [US]\n");
                return c == 'h' ? 0 : 64;
        }
    }
    const char *us = optind < argc ? argv [optind] : "1000";
    if (n < 1 || repeats < 1 || repeats > 100)
        return 64;
    double rates [100];
    char out [32];
    for (int r = 0; r < repeats; r++) {
        double start = s_now ();
        for (long i = 0; i < n; i++)
            if (s_spin_us (us, out, sizeof out) < 0)
                return 1;
        double elapsed = s_now () - start;
        rates [r] = n / elapsed;
        fprintf (stderr, "  serial run %d: %.3f s, %.1f items/s\n", r + 1, elapsed, rates [r]);
    }
    qsort (rates, (size_t) repeats, sizeof (double), s_cmp);
    printf ("%.1f\n", rates [repeats / 2]);
    return 0;
}
