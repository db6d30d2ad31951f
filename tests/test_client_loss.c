/*  A client SIGKILLed mid-job: a `dpool map` process keeps both workers of
    a pool busy with 20 items of sleep_ms 60000 and is killed with SIGKILL.
    The broker must take it for dead within its heartbeat deadline (3 x 1 s),
    cancel its job and abort the running chunks (the workers running the
    60 s items are killed and restarted), so that, measured from the kill,
    no worker runs a 60 s item any more and a new job from another client
    (started right after the kill) has completed, both within 4 s.
    Run on the local workers of a dpool-broker -j 2, then on the workers of
    a node (dpool-worker -j 2) connected to a dpool-broker -j none. */
#include "test_procs.h"

#define FREED_MS    4000

//  Workers of the pool (children of `super`) running a sleep_ms item.
static int
s_busy (pid_t super, int *nworkers)
{
    pid_t kids [8];
    int n = rig_live_children (super, kids, 8), busy = 0;
    for (int i = 0; i < n; i++)
        busy += rig_sleeping_threads (kids [i]) > 0;
    if (nworkers)
        *nworkers = n;
    return busy;
}

static void
s_scenario (const char *rig, const char *clients, pid_t super, const char *blog)
{
    pid_t kids [8];
    int nkids = rig_live_children (super, kids, 8);
    CHECK (nkids == 2);
    CHECK (s_busy (super, NULL) == 0);      //  idle workers sleep in no sleep call

    //  the victim: 20 items of 60 s on 2 workers
    const char *in = rig_path ("in.txt");
    FILE *f = fopen (in, "w");
    REQUIRE (f);
    for (int i = 0; i < 20; i++)
        fprintf (f, "60000\n");
    fclose (f);
    char *cargv [] = { (char *) tu_bin ("dpool"), "map", "-b", (char *) clients,
                       "sleep_ms", NULL };
    const char *clog = rig_path ("client.log");
    pid_t client = rig_spawn (cargv, in, clog, clog);

    //  until both workers run one of its items
    int64_t deadline = tu_now_ms () + 10000;
    while (s_busy (super, NULL) < 2 && tu_now_ms () < deadline)
        rig_sleep_ms (20);
    CHECK (s_busy (super, NULL) == 2);
    CHECK (tu_alive (client));

    kill (client, SIGKILL);
    int64_t killed = tu_now_ms ();
    rig_wait (client, 1000);

    //  another client's small job, started at once: it runs once a worker
    //  is free; meanwhile, watch for the moment no worker runs a 60 s item
    dp_pool_t *pool = rig_pool_open (clients, 3000);
    REQUIRE (pool);
    tu_items_t items;
    tu_items_numbers (&items, 1000, 1);
    dp_future_t *fut = dp_map_async (pool, "square", (dp_item_t *) items.items, 1000, NULL);
    REQUIRE (fut);
    int64_t job_ms = -1, idle_ms = -1;
    deadline = killed + 15000;
    while ((job_ms < 0 || idle_ms < 0) && tu_now_ms () < deadline) {
        if (job_ms < 0 && dp_future_wait (fut, 5) == 0)
            job_ms = tu_now_ms () - killed;
        int n;
        if (idle_ms < 0 && s_busy (super, &n) == 0 && n == 2)
            idle_ms = tu_now_ms () - killed;
    }
    printf ("%s: client SIGKILLed; %lld ms later no worker ran its items, %lld ms later "
            "another client's job had completed\n", rig, (long long) idle_ms, (long long) job_ms);
    CHECK (job_ms >= 0 && job_ms < FREED_MS);
    CHECK (idle_ms >= 0 && idle_ms < FREED_MS);
    CHECK (dp_future_status (fut) == DP_OK);
    const dp_results_t *res = dp_future_results (fut);
    CHECK (res && dp_results_count (res) == 1000 && dp_results_failed (res) == 0);
    if (res && dp_results_count (res) == 1000)
        CHECK (strcmp ((const char *) dp_results_data (res, 999, NULL), "1000000") == 0);
    dp_future_destroy (&fut);
    tu_items_free (&items);
    CHECK (rig_count_lines (blog, "its jobs are cancelled") == 1);

    //  the workers that ran 60 s items were replaced
    pid_t after [8];
    int nafter = rig_live_children (super, after, 8);
    CHECK (nafter == 2);
    int replaced = 0;
    for (int i = 0; i < nafter; i++)
        replaced += after [i] != kids [0] && after [i] != kids [1];
    CHECK (replaced == 2);
    CHECK (rig_square_ok (pool, 1000));
    dp_pool_close (&pool);
}

int
main (void)
{
    rig_init ("test_client_loss");
    static char mod [4096];
    snprintf (mod, sizeof mod, "%s", tu_lib ("libdpool_testtasks.so"));
    char clients [64], workers [64];

    //  A. dpool-broker -j 2
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", tu_free_port ());
    const char *blog = rig_path ("broker-local.log");
    char *bargv [] = { (char *) tu_bin ("dpool-broker"), "-c", clients, "-w", workers,
                       "-j", "2", "-m", mod, "-v", NULL };
    pid_t broker = rig_spawn (bargv, NULL, blog, blog);
    CHECK (rig_wait_lines (blog, "(local)", 2, 10000));
    s_scenario ("local workers", clients, broker, blog);
    CHECK (rig_stop (broker));
    if (tu_failures)
        rig_dump ("broker log", blog);

    //  B. dpool-broker -j none and dpool-worker -j 2
    int before = tu_failures;
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", tu_free_port ());
    const char *b2log = rig_path ("broker-node.log");
    const char *nlog = rig_path ("node.log");
    char *b2argv [] = { (char *) tu_bin ("dpool-broker"), "-c", clients, "-w", workers,
                        "-j", "none", "-v", NULL };
    broker = rig_spawn (b2argv, NULL, b2log, b2log);
    char *nargv [] = { (char *) tu_bin ("dpool-worker"), "--connect", workers, "-j", "2",
                       "-m", mod, NULL };
    pid_t node = rig_spawn (nargv, NULL, nlog, nlog);
    CHECK (rig_wait_lines (b2log, " ready: ", 3, 10000));
    s_scenario ("node workers", clients, node, b2log);
    CHECK (rig_stop (node));
    CHECK (rig_stop (broker));
    if (tu_failures > before) {
        rig_dump ("broker log", b2log);
        rig_dump ("node log", nlog);
    }
    return rig_done ("test_client_loss");
}
