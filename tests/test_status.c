/*  Status and metrics (issue 11): a real dpool-broker with two local
    workers and a real worker node, asked through a raw DEALER socket
    (STATUS -> REPORT, no session), through `dpool status`, and scraped
    over HTTP with curl. Counters must move with what happens: bad
    messages, a job's items, a killed worker, a client that vanished. */
#include "testpeer.h"
#include "dp_report.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *s_ctx;
static pid_t s_broker, s_node;

//  A failed REQUIRE exits: take the broker and the node along.
static void
s_kill_all (void)
{
    if (s_node > 0)
        kill (s_node, SIGKILL);
    if (s_broker > 0)
        kill (s_broker, SIGKILL);
}

//  STATUS on a fresh socket (no session); the decoded report, or exit.
static void
s_status (const char *endpoint, dp_report_t *report)
{
    void *sock = tu_dealer (s_ctx, endpoint);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_STATUS);
    REQUIRE (dp_msg_send (&msg, sock, NULL) == 0);
    dp_msg_init (&msg, 0);
    REQUIRE (tu_recv (sock, &msg, 10000) == DP_CMD_REPORT);   //  a loaded machine
    char err [256];
    int rc = dp_report_decode (report, &msg, err, sizeof err);
    if (rc)
        fprintf (stderr, "report: %s\n", err);
    REQUIRE (rc == 0);
    dp_msg_reset (&msg);
    zmq_close (sock);
}

//  The node row that is not the local pool, or NULL.
static dp_report_node_t *
s_remote_node (dp_report_t *r)
{
    for (uint32_t i = 0; i < r->nnodes; i++)
        if (!r->nodes [i].local)
            return &r->nodes [i];
    return NULL;
}

//  Wait up to 10 s for the broker to have `workers` workers and `nodes`
//  nodes; the last report is left in *r.
static bool
s_wait_workers (const char *endpoint, dp_report_t *r, uint32_t workers, uint32_t nodes)
{
    int64_t deadline = tu_now_ms () + 10000;
    while (true) {
        s_status (endpoint, r);
        if (r->nworkers == workers && r->nnodes == nodes)
            return true;
        if (tu_now_ms () > deadline)
            return false;
        dp_report_clear (r);
        usleep (50000);
    }
}

//  Run a shell command, return its output (static buffer) and status.
static const char *
s_capture (const char *command, int *status)
{
    static char out [65536];
    FILE *pipe = popen (command, "r");
    REQUIRE (pipe);
    size_t n = fread (out, 1, sizeof out - 1, pipe);
    out [n] = 0;
    int rc = pclose (pipe);
    *status = WIFEXITED (rc) ? WEXITSTATUS (rc) : -1;
    return out;
}

int
main (void)
{
    s_ctx = zmq_ctx_new ();
    atexit (s_kill_all);
    char clients [64], workers [64];
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", tu_free_port ());
    char *argv [] = { (char *) tu_bin ("dpool-broker"), "-c", clients, "-w", workers, "-j", "2", "--no-curve",
                      "-m", (char *) tu_lib ("libdpool_testtasks.so"), "--heartbeat", "200",
                      "--metrics", "127.0.0.1:0", NULL };
    s_broker = tu_spawn (argv, NULL, NULL);
    REQUIRE (s_broker > 0);

    //  1. STATUS needs no session; the local pool comes up as a node of 2
    dp_report_t r;
    CHECK (s_wait_workers (clients, &r, 2, 1));
    CHECK (r.broker.pid == (uint32_t) s_broker && r.broker.clients == 0);
    CHECK (r.nnodes >= 1 && r.nodes [0].local && r.nodes [0].slots == 2 && r.nodes [0].workers == 2);
    CHECK (r.nworkers == 2 && r.workers [0].node == 0 && r.workers [1].node == 0);
    CHECK (r.broker.bad_messages == 0 && r.broker.msgs_in > 0 && r.broker.bytes_in > 0);
    uint16_t port = (uint16_t) r.broker.metrics_port;
    CHECK (port > 0);
    dp_report_clear (&r);

    //  2. bad messages are counted: a wrong signature (dropped, no answer)
    //  and STATUS with a payload frame (EFRAMES, answered)
    void *sock = tu_dealer (s_ctx, clients);
    zmq_send (sock, "XYZ", 3, 0);
    zmq_send (sock, "DPL\x01", 4, ZMQ_SNDMORE);
    zmq_send (sock, "\x0c", 1, ZMQ_SNDMORE);
    zmq_send (sock, "\x80", 1, ZMQ_SNDMORE);
    zmq_send (sock, "junk", 4, 0);
    dp_msg_t msg;
    dp_msg_init (&msg, 0);
    CHECK (tu_recv (sock, &msg, 3000) == DP_CMD_ERROR && msg.code == DP_PROTO_EFRAMES);
    s_status (clients, &r);
    CHECK (r.broker.bad_messages == 2);
    dp_report_clear (&r);

    //  3. a worker node of 2 joins: its row, its workers under it
    char *nargv [] = { (char *) tu_bin ("dpool-worker"), "--connect", workers, "-j", "2",
                       "-m", (char *) tu_lib ("libdpool_testtasks.so"), "--heartbeat", "200", NULL };
    s_node = tu_spawn (nargv, NULL, NULL);
    REQUIRE (s_node > 0);
    CHECK (s_wait_workers (clients, &r, 4, 2));
    dp_report_node_t *node = s_remote_node (&r);
    CHECK (node && node->pid == (uint32_t) s_node && node->slots == 2 && node->workers == 2);
    dp_report_clear (&r);

    //  4. a job in progress: its client's name, items sent, busy workers
    dp_msg_init (&msg, DP_CMD_HELLO);
    msg.hb = 1000;
    strcpy (msg.host, "tester");
    REQUIRE (dp_msg_send (&msg, sock, NULL) == 0);
    dp_msg_init (&msg, 0);
    CHECK (tu_recv (sock, &msg, 3000) == DP_CMD_WELCOME);
    dp_msg_init (&msg, DP_CMD_JOB);
    msg.job = 7;
    strcpy (msg.task, "sleep_ms");
    msg.chunksize = 1;
    REQUIRE (dp_msg_send (&msg, sock, NULL) == 0);
    dp_batch_t batch;
    dp_batch_init (&batch);
    for (int i = 0; i < 40; i++)
        REQUIRE (dp_batch_add (&batch, "100", 3) == 0);
    dp_msg_init (&msg, DP_CMD_BATCH);
    msg.job = 7;
    msg.csize = 1;
    REQUIRE (dp_batch_attach (&batch, &msg, false) == 0);
    REQUIRE (dp_msg_send (&msg, sock, NULL) == 0);
    dp_batch_clear (&batch);
    int64_t deadline = tu_now_ms () + 5000;
    bool busy = false;
    while (!busy && tu_now_ms () < deadline) {
        s_status (clients, &r);
        uint32_t b = 0;
        for (uint32_t i = 0; i < r.nnodes; i++)
            b += r.nodes [i].busy;
        busy = b >= 2 && r.njobs == 1;
        if (!busy) {
            dp_report_clear (&r);
            usleep (20000);
        }
    }
    CHECK (busy);
    if (busy) {
        CHECK (strcmp (r.jobs [0].client, "tester") == 0 && r.jobs [0].job == 7);
        CHECK (strcmp (r.jobs [0].task, "sleep_ms") == 0 && r.jobs [0].sent == 40);
        CHECK (!r.jobs [0].ended && r.broker.clients == 1);
        dp_report_clear (&r);
    }
    //  `dpool status` shows the same, as a table and as JSON
    char command [512];
    int status;
    snprintf (command, sizeof command, "%s status -b %s", tu_bin ("dpool"), clients);
    const char *out = s_capture (command, &status);
    CHECK (status == 0 && strstr (out, "tester") && strstr (out, "sleep_ms") && strstr (out, "(local)"));
    CHECK (strstr (out, "/40+"));
    snprintf (command, sizeof command, "%s status -b %s --json", tu_bin ("dpool"), clients);
    out = s_capture (command, &status);
    CHECK (status == 0 && strstr (out, "\"client\":\"tester\"") && strstr (out, "\"sent\":40"));
    CHECK (strstr (out, "\"local\":true,\"slots\":2"));
    snprintf (command, sizeof command, "%s status -b %s --json | python3 -c 'import json, sys; "
              "r = json.load (sys.stdin); print (len (r [\"nodes\"]), len (r [\"workers\"]), "
              "r [\"jobs\"] [0] [\"client\"])'", tu_bin ("dpool"), clients);
    out = s_capture (command, &status);
    CHECK (status == 0 && strcmp (out, "2 4 tester\n") == 0);      //  valid JSON

    //  5. the job ends: 40 items done, counted at the broker and its nodes
    dp_msg_init (&msg, DP_CMD_END);
    msg.job = 7;
    msg.total = 40;
    REQUIRE (dp_msg_send (&msg, sock, NULL) == 0);
    uint64_t answered = 0;
    deadline = tu_now_ms () + 10000;
    dp_msg_init (&msg, 0);
    while (answered < 40 && tu_now_ms () < deadline) {
        int cmd = tu_recv (sock, &msg, 3000);     //  (it resets msg first)
        if (cmd == DP_CMD_RESULTS)
            answered += msg.n;
        else
        if (cmd == DP_CMD_DONE || cmd < 0)
            break;
    }
    dp_msg_reset (&msg);
    CHECK (answered == 40);
    s_status (clients, &r);
    CHECK (r.broker.items_done == 40 && r.broker.items_failed == 0 && r.njobs == 0);
    uint64_t done = 0;
    for (uint32_t i = 0; i < r.nnodes; i++)
        done += r.nodes [i].done;
    CHECK (done == 40);
    dp_report_clear (&r);

    //  6. deaths are restarts: a local worker and a node's worker, SIGKILLed
    pid_t kids [8];
    CHECK (tu_children (s_broker, kids, 8) >= 2);
    kill (kids [0], SIGKILL);
    CHECK (tu_children (s_node, kids, 8) >= 2);
    kill (kids [0], SIGKILL);
    deadline = tu_now_ms () + 10000;
    bool restarted = false;
    while (!restarted && tu_now_ms () < deadline) {
        s_status (clients, &r);
        node = s_remote_node (&r);
        restarted = r.nodes [0].restarts == 1 && node && node->restarts == 1 && r.nworkers == 4;
        CHECK (r.nodes [0].done + (node ? node->done : 0) == 40);   //  counts survive the dead
        dp_report_clear (&r);
        usleep (50000);
    }
    CHECK (restarted);

    //  7. a client that vanishes is a dropped peer
    zmq_close (sock);
    deadline = tu_now_ms () + 5000;
    bool dropped = false;
    while (!dropped && tu_now_ms () < deadline) {
        s_status (clients, &r);
        dropped = r.broker.peers_dropped >= 1 && r.broker.clients == 0;
        dp_report_clear (&r);
        usleep (50000);
    }
    CHECK (dropped);

    //  8. Prometheus metrics, scraped with a real HTTP client
    snprintf (command, sizeof command, "curl -sS --max-time 5 http://127.0.0.1:%u/metrics", port);
    deadline = tu_now_ms () + 3000;
    do {
        out = s_capture (command, &status);
    } while (status == 0 && !strstr (out, "dpool_peers_dropped_total 1") && tu_now_ms () < deadline
             && usleep (100000) == 0);
    if (status == 127)
        fprintf (stderr, "test_status: no curl: metrics not scraped\n");
    else {
        CHECK (status == 0 && strstr (out, "# TYPE dpool_items_done_total counter\n"));
        CHECK (strstr (out, "\ndpool_up 1\n") && strstr (out, "\ndpool_items_done_total 40\n"));
        CHECK (strstr (out, "\ndpool_bad_messages_total 2\n"));
        CHECK (strstr (out, "\ndpool_peers_dropped_total 1\n"));
        char line [160];
        snprintf (line, sizeof line, "pid=\"%d\",local=\"true\"} 2\n", (int) s_broker);
        CHECK (strstr (out, "dpool_node_slots{host=") && strstr (out, line));
        snprintf (line, sizeof line, "pid=\"%d\",local=\"false\"} 1\n", (int) s_node);
        CHECK (strstr (out, "dpool_node_restarts_total{") && strstr (out, line));
        snprintf (command, sizeof command,
                  "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%u/other", port);
        out = s_capture (command, &status);
        CHECK (strcmp (out, "404") == 0);
        snprintf (command, sizeof command,
                  "curl -s -o /dev/null -w '%%{http_code}' -d x http://127.0.0.1:%u/metrics", port);
        out = s_capture (command, &status);
        CHECK (strcmp (out, "405") == 0);
    }

    //  9. errors: no broker there, not a dpool endpoint, usage
    snprintf (command, sizeof command, "%s status -b tcp://127.0.0.1:%d --timeout 300 2>&1",
              tu_bin ("dpool"), tu_free_port ());
    out = s_capture (command, &status);
    CHECK (status == 2 && strstr (out, "no answer"));
    snprintf (command, sizeof command, "%s status -b %s 2>&1", tu_bin ("dpool"), workers);
    out = s_capture (command, &status);
    CHECK (status == 2 && strstr (out, "send READY"));
    snprintf (command, sizeof command, "env -u DPOOL_BROKER %s status 2>&1", tu_bin ("dpool"));
    out = s_capture (command, &status);
    CHECK (status == 64 && strstr (out, "-b EP"));
    snprintf (command, sizeof command, "%s status -b %s --bogus 2>&1", tu_bin ("dpool"), clients);
    out = s_capture (command, &status);
    CHECK (status == 64 && strstr (out, "Try 'dpool status --help'"));

    //  the broker stops cleanly, metrics thread and all
    kill (s_node, SIGTERM);
    CHECK (tu_wait (s_node, 5000) == 0);
    s_node = 0;
    kill (s_broker, SIGTERM);
    CHECK (tu_wait (s_broker, 5000) == 0);
    s_broker = 0;
    zmq_ctx_term (s_ctx);
    return tu_done ("test_status");
}
