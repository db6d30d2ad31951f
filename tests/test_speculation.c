/*  Speculation (issue 10): equally fast workers produce no backup copies;
    a really straggling worker does, and they are counted in progress; a
    job option turns them off; `dpool run` (the exec task: commands with
    side effects) runs no command twice by default. */
#include "testutil.h"
#include "dpool.h"

#include <string.h>
#include <unistd.h>

//  Map sleep_ms over the given durations (chunks of one item); the
//  results must be exact. Returns the job's backup copies.
static uint64_t
s_run (dp_pool_t *pool, const int *ms, size_t n, uint32_t speculate)
{
    char texts [256][16];
    dp_item_t items [256];
    REQUIRE (n <= 256);
    for (size_t i = 0; i < n; i++) {
        snprintf (texts [i], sizeof texts [i], "%d", ms [i]);
        items [i] = (dp_item_t) { texts [i], strlen (texts [i]) };
    }
    dp_job_opts_t opts = { .chunksize = 1, .speculate = speculate };
    dp_future_t *future = dp_map_async (pool, "sleep_ms", items, n, &opts);
    REQUIRE (future);
    CHECK (dp_future_wait (future, 60000) == 0);
    CHECK (dp_future_status (future) == DP_OK);
    const dp_results_t *res = dp_future_results (future);
    for (size_t i = 0; res && i < n; i++)
        if (dp_results_status (res, i) != DP_OK
        ||  strcmp ((const char *) dp_results_data (res, i, NULL), texts [i]) != 0) {
            fprintf (stderr, "item %zu: %s\n", i, (const char *) dp_results_data (res, i, NULL));
            tu_failures++;
            break;
        }
    dp_progress_t progress;
    dp_future_progress (future, &progress);
    dp_future_destroy (&future);
    return progress.backups;
}

int
main (void)
{
    const char *modules [] = { tu_lib ("libdpool_testtasks.so") };
    dp_pool_opts_t opts = { .workers = 4, .modules = modules, .nmodules = 1 };
    dp_pool_t *pool = dp_pool_open (&opts);
    REQUIRE (pool);

    //  uniform 50 ms items on 4 equally fast workers: no backup copy
    int uniform [40];
    for (int i = 0; i < 40; i++)
        uniform [i] = 50;
    uint64_t total = 0;
    for (int run = 0; run < 5; run++)
        total += s_run (pool, uniform, 40, DP_SPECULATE_AUTO);
    printf ("uniform 50 ms items, 5 jobs of 40: %llu backup copies\n", (unsigned long long) total);
    CHECK (total == 0);

    //  three equal 1.5 s items on 4 workers: nothing measured yet to call
    //  any of them slow, so no copy (the idle worker stays idle)
    int slow [3] = { 1500, 1500, 1500 };
    uint64_t early = s_run (pool, slow, 3, DP_SPECULATE_AUTO);
    printf ("three 1.5 s items on 4 workers: %llu backup copies\n", (unsigned long long) early);
    CHECK (early == 0);

    //  one item of 3 s among 50 ms ones: its worker straggles
    int straggler [30];
    for (int i = 0; i < 30; i++)
        straggler [i] = i == 12 ? 3000 : 50;
    uint64_t on = s_run (pool, straggler, 30, DP_SPECULATE_AUTO);
    uint64_t off = s_run (pool, straggler, 30, DP_SPECULATE_OFF);
    printf ("a 3 s straggler: %llu backup copies; with DP_SPECULATE_OFF: %llu\n",
            (unsigned long long) on, (unsigned long long) off);
    CHECK (on >= 1);
    CHECK (off == 0);
    dp_pool_close (&pool);

    //  dpool run: a command with a side effect (a line appended to a log)
    //  behind one straggler runs exactly once per item
    char cmd [1024], log [128];
    snprintf (log, sizeof log, "/tmp/dpool-test-spec-%d.log", (int) getpid ());
    snprintf (cmd, sizeof cmd,
              "rm -f %s; for i in $(seq 30); do if [ $i = 12 ]; then echo 3; else echo 0.05; fi; done"
              " | %s run -j 4 'echo {} >> %s; sleep {}' > /dev/null", log, tu_bin ("dpool"), log);
    CHECK (system (cmd) == 0);
    snprintf (cmd, sizeof cmd, "test $(wc -l < %s) -eq 30 && test $(grep -c '^3$' %s) -eq 1", log, log);
    int once = system (cmd);
    printf ("dpool run with a straggler: every command ran once: %s\n", once == 0 ? "yes" : "no");
    CHECK (once == 0);
    unlink (log);
    return tu_done ("test_speculation");
}
