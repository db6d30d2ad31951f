/*  A broker SIGKILLed mid-job. dpool-broker -j 2 with a worker node
    (dpool-worker -j 2 over TCP loopback) and two clients in the middle of
    jobs (this process through the API, and a `dpool map` process): kill -9
    the broker. Then
      - its local workers are gone within 1 s (PR_SET_PDEATHSIG);
      - both clients fail (dp_job_wait -1; dpool exits non-zero) within 5 s;
      - the node and its workers live on, and when a new broker (-j none, so
        only they can run anything) binds the same endpoints, the same
        worker processes re-register and a new job succeeds within ~10 s. */
#include "test_procs.h"

#include <glob.h>

#define WORKERS_GONE_MS     1000
#define CLIENT_ERROR_MS     5000
#define REJOIN_MS           10000

typedef struct {
    size_t next_in, done, wrong;
} job_state_t;

static int
s_input (void *arg, const void **data, size_t *len)
{
    job_state_t *s = (job_state_t *) arg;
    if (s->next_in == 100000)
        return 0;
    s->next_in++;
    *data = "5";
    *len = 1;
    return 1;
}

static int
s_output (void *arg, uint64_t index, dp_status_t status, const void *data, size_t len)
{
    job_state_t *s = (job_state_t *) arg;
    s->wrong += index != s->done || status != DP_OK || len != 1 || memcmp (data, "5", 1);
    s->done++;
    return 0;
}

//  Is there a "ready" line in the log for this pid?
static bool
s_ready_line (const char *log, const char *what, pid_t pid)
{
    char needle [64];
    snprintf (needle, sizeof needle, "pid %d,", (int) pid);
    FILE *f = fopen (log, "r");
    if (!f)
        return false;
    char line [4096];
    bool found = false;
    while (!found && fgets (line, sizeof line, f))
        found = strstr (line, needle) && strstr (line, " ready: ") && strstr (line, what);
    fclose (f);
    return found;
}

int
main (void)
{
    rig_init ("test_broker_loss");
    static char mod [4096];
    snprintf (mod, sizeof mod, "%s", tu_lib ("libdpool_testtasks.so"));
    char clients [64], workers [64];
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", tu_free_port ());
    const char *blog = rig_path ("broker1.log");
    const char *b2log = rig_path ("broker2.log");
    const char *nlog = rig_path ("node.log");
    const char *clog = rig_path ("client.log");
    char *bargv [] = { (char *) tu_bin ("dpool-broker"), "-c", clients, "-w", workers,
                       "-j", "2", "-m", mod, "-v", NULL };
    pid_t broker = rig_spawn (bargv, NULL, blog, blog);
    char *nargv [] = { (char *) tu_bin ("dpool-worker"), "--connect", workers, "-j", "2",
                       "-m", mod, "-v", NULL };
    pid_t node = rig_spawn (nargv, NULL, nlog, nlog);

    //  2 local workers, the node and its 2 workers registered
    CHECK (rig_wait_lines (blog, " ready: ", 5, 15000));
    pid_t local [8], remote [8];
    int nlocal = rig_live_children (broker, local, 8);
    int nremote = rig_live_children (node, remote, 8);
    CHECK (nlocal == 2);
    CHECK (nremote == 2);
    for (int i = 0; i < nremote; i++)
        CHECK (s_ready_line (blog, "worker ", remote [i]));
    CHECK (s_ready_line (blog, "node ", node));

    //  two clients mid-job: this one (API) and a dpool map process
    dp_pool_t *pool = rig_pool_open (clients, 5000);
    REQUIRE (pool);
    job_state_t state = { 0 };
    dp_job_t *job = dp_job_start (pool, "sleep_ms", NULL, s_input, s_output, &state);
    REQUIRE (job);
    const char *in = rig_path ("in.txt");
    FILE *f = fopen (in, "w");
    REQUIRE (f);
    for (int i = 0; i < 20000; i++)
        fprintf (f, "5\n");
    fclose (f);
    const char *cout = rig_path ("client.out");
    char *cargv [] = { (char *) tu_bin ("dpool"), "map", "-b", clients,
                       "sleep_ms", NULL };
    pid_t cli = rig_spawn (cargv, in, cout, clog);
    int64_t deadline = tu_now_ms () + 10000;
    //  (the CLI's output to a file is block-buffered: it is known to be
    //  mid-job once connected, with results flowing to the other client)
    while (tu_now_ms () < deadline
       &&  (state.done < 500 || rig_count_lines (blog, ") connected") < 2))
        if (dp_job_wait (job, 20) != DP_TIMEOUT)
            break;
    CHECK (state.done >= 500);
    CHECK (rig_count_lines (blog, ") connected") == 2);
    CHECK (tu_alive (cli));

    //  kill -9 the broker
    kill (broker, SIGKILL);
    int64_t killed = tu_now_ms ();
    rig_wait (broker, 1000);
    //  a SIGKILLed broker cannot remove its ipc file: do it for it
    char pattern [256];
    const char *tmp = getenv ("TMPDIR");
    snprintf (pattern, sizeof pattern, "%s/dpool-%d-*.ipc",
              tmp && *tmp && strlen (tmp) < 60 ? tmp : "/tmp", (int) broker);
    glob_t g;
    if (glob (pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink (g.gl_pathv [i]);
        globfree (&g);
    }

    //  local workers gone within 1 s
    int64_t gone_ms = rig_wait_gone (local, nlocal, 3000);
    if (gone_ms >= 0)
        gone_ms = tu_now_ms () - killed;
    printf ("broker SIGKILLed: its local workers gone after %lld ms\n", (long long) gone_ms);
    CHECK (gone_ms >= 0 && gone_ms <= WORKERS_GONE_MS);

    //  the API client fails within 5 s
    long rc = DP_TIMEOUT;
    while (rc == DP_TIMEOUT && tu_now_ms () - killed < 10000)
        rc = dp_job_wait (job, 50);
    int64_t api_ms = tu_now_ms () - killed;
    printf ("API client: dp_job_wait %ld after %lld ms (%s), %zu results before\n", rc,
            (long long) api_ms, dp_strerror_last (), state.done);
    CHECK (rc == -1);
    CHECK (api_ms <= CLIENT_ERROR_MS);
    CHECK (state.wrong == 0);
    dp_job_destroy (&job);
    dp_pool_close (&pool);

    //  the CLI client exits non-zero within 5 s
    int left = (int) (CLIENT_ERROR_MS - (tu_now_ms () - killed));
    int status = rig_wait (cli, left > 0 ? left : 1);
    int64_t cli_ms = tu_now_ms () - killed;
    printf ("dpool map client: status %d after %lld ms\n",
            status != -1 && WIFEXITED (status) ? WEXITSTATUS (status) : -1, (long long) cli_ms);
    CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) != 0);
    CHECK (cli_ms <= CLIENT_ERROR_MS);

    //  the node and its workers wait for a broker
    CHECK (tu_alive (node));
    for (int i = 0; i < nremote; i++)
        CHECK (tu_alive (remote [i]));

    //  a new broker on the same endpoints, without local workers
    char *b2argv [] = { (char *) tu_bin ("dpool-broker"), "-c", clients, "-w", workers,
                        "-j", "none", "--task-wait", "20000", "-v", NULL };
    int64_t restarted = tu_now_ms ();
    broker = rig_spawn (b2argv, NULL, b2log, b2log);
    pool = rig_pool_open (clients, 5000);
    REQUIRE (pool);
    bool ok = rig_square_ok (pool, 10000);
    int64_t rejoin_ms = tu_now_ms () - restarted;
    printf ("new broker: a job through the node's workers succeeded %lld ms after its start "
            "(%lld ms after the kill)\n", (long long) rejoin_ms,
            (long long) (tu_now_ms () - killed));
    CHECK (ok);
    CHECK (rejoin_ms <= REJOIN_MS);
    //  the same processes re-registered: the node, and both its workers
    CHECK (rig_wait_lines (b2log, " ready: ", 3, 5000));
    CHECK (s_ready_line (b2log, "node ", node));
    for (int i = 0; i < nremote; i++) {
        CHECK (tu_alive (remote [i]));
        CHECK (s_ready_line (b2log, "worker ", remote [i]));
    }
    pid_t now [8];
    CHECK (rig_live_children (node, now, 8) == 2);
    CHECK (rig_square_ok (pool, 1000));
    dp_pool_close (&pool);

    CHECK (rig_stop (node));
    CHECK (rig_wait_gone (remote, nremote, 3000) >= 0);
    CHECK (rig_stop (broker));
    if (tu_failures) {
        rig_dump ("first broker log", blog);
        rig_dump ("second broker log", b2log);
        rig_dump ("node log", nlog);
        rig_dump ("dpool map client log", clog);
    }
    return rig_done ("test_broker_loss");
}
