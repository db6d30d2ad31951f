/*  Small helpers shared by the benchmark programs. */
#ifndef DP_BENCH_UTIL_H_INCLUDED
#define DP_BENCH_UTIL_H_INCLUDED

#include <time.h>

//  Monotonic seconds.
static inline double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

//  qsort comparator for doubles (medians).
static inline int
s_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

#endif
