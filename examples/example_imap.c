/*  =========================================================================
    example_imap - stream results with iterators (imap, imap_unordered)

    Opens an embedded pool with the example module, then:
      1. dp_imap over a lazy input (a callback that makes the numbers
         1..N on demand): collatz results in input order, printed as they
         come; memory stays bounded whatever N is, because the input is
         read only as results are taken;
      2. dp_imap_unordered: results as they finish, stopped early with
         dp_iter_cancel once one number needs more than 300 steps.

        ./example_imap [N]              (default N = 20)
        DPOOL_BROKER=tcp://host:5555 ./example_imap     (use a running broker)
    =========================================================================
*/
#include <dpool.h>

#include <stdio.h>
#include <stdlib.h>

//  The lazy input: the decimal numbers 1..n, made one at a time when the
//  pool has room for them. The bytes must stay valid until the next call.

typedef struct {
    unsigned long next, n;
    char text [24];
} numbers_t;

static int
s_numbers (void *arg, const void **data, size_t *len)
{
    numbers_t *numbers = (numbers_t *) arg;
    if (numbers->next > numbers->n)
        return 0;                   //  the end of the input
    *len = (size_t) snprintf (numbers->text, sizeof numbers->text, "%lu", numbers->next++);
    *data = numbers->text;
    return 1;
}

int
main (int argc, char *argv [])
{
    unsigned long n = argc > 1 ? strtoul (argv [1], NULL, 10) : 20;
    if (n == 0) {
        fprintf (stderr, "usage: example_imap [N], N >= 1\n");
        return 2;
    }
    const char *modules [] = { "example" };
    dp_pool_opts_t opts = { .workers = 2, .modules = modules, .nmodules = 1 };
    dp_pool_t *pool = dp_pool_open (&opts);
    if (!pool) {
        fprintf (stderr, "example_imap: %s\n", dp_strerror_last ());
        return 1;
    }
    //  1. In input order
    numbers_t numbers = { 1, n, "" };
    dp_iter_t *it = dp_imap (pool, "collatz", NULL, s_numbers, &numbers);
    if (!it) {
        fprintf (stderr, "example_imap: %s\n", dp_strerror_last ());
        dp_pool_close (&pool);
        return 1;
    }
    dp_result_t r;
    int rc;
    while ((rc = dp_iter_next (it, &r, -1)) == 1) {
        if (r.status == DP_OK)
            printf ("collatz(%llu) = %s\n", (unsigned long long) r.index + 1, (const char *) r.data);
        else
            printf ("collatz(%llu) failed (%s): %s\n", (unsigned long long) r.index + 1,
                    dp_status_name (r.status), (const char *) r.data);
    }
    if (rc < 0)
        fprintf (stderr, "example_imap: %s\n", dp_strerror_last ());
    dp_progress_t p;
    dp_iter_progress (it, &p);
    printf ("%llu items in %.1f ms\n", (unsigned long long) p.done, p.elapsed_s * 1000);
    dp_iter_destroy (&it);

    //  2. As they finish, until one needs more than 300 steps
    numbers = (numbers_t) { 1, 1000000, "" };
    it = dp_imap_unordered (pool, "collatz", NULL, s_numbers, &numbers);
    unsigned long long found = 0, taken = 0;
    while (it && dp_iter_next (it, &r, -1) == 1) {
        taken++;
        if (!found && r.status == DP_OK && atol ((const char *) r.data) > 300) {
            found = r.index + 1;
            printf ("collatz(%llu) = %s > 300: cancelling\n", found, (const char *) r.data);
            dp_iter_cancel (it);        //  the rest come back cancelled
        }
    }
    dp_iter_progress (it, &p);
    printf ("unordered: %llu results taken, %llu items sent of 1000000\n", taken,
            (unsigned long long) p.sent);
    dp_iter_destroy (&it);
    dp_pool_close (&pool);
    return rc < 0 || !found ? 1 : 0;
}
