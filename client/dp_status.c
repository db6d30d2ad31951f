/*  =========================================================================
    dp_status - `dpool status [-b EP] [--json]`

    One DEALER socket, one STATUS, one REPORT (or an ERROR, or nothing
    within the timeout), decoded by the codec (proto/dp_report.h), which
    checks every value before it is printed. The rates and ETAs are worked
    out here from what the report says: items done over the job's age.
    =========================================================================
*/
#include "dp_status.h"
#include "dp_opt.h"
#include "dp_proto.h"
#include "dp_report.h"
#include "dpool.h"

#include <czmq.h>
#include <getopt.h>
#include "dp_curve.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_EXIT_ERROR   2
#define S_EXIT_USAGE   64

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: dpool status [-b EP] [--json]\n"
        "Show what a broker is doing: its nodes and workers (host, pid, slots, busy,\n"
        "items done and failed, restarts), its jobs (client, done/total, rate, ETA)\n"
        "and its counters (messages, bytes, peers dropped, bad messages).\n"
        "\n"
        "  -b, --broker EP   the broker's client endpoint (default: $DPOOL_BROKER)\n"
        "      --json        print the report as one JSON object\n"
        "      --timeout MS  how long to wait for the answer (default 3000)\n"
        "      --curve-secret FILE, --broker-key FILE  CURVE keys, as for dpool map\n"
        "  -h, --help        show this help and exit\n"
        "\n"
        "Exit status: 0 the report was printed, 2 no answer or a bad one, 64 usage.\n");
}

//  Ask `endpoint` for a report. Returns 0, or -1 with the reason in err.
static int
s_ask (const char *endpoint, const dp_curve_keys_t *curve, int timeout_ms, dp_report_t *report,
       char *err, size_t errlen)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock) {
        snprintf (err, errlen, "cannot create a socket: %s", zmq_strerror (errno));
        return -1;
    }
    zsock_set_linger (sock, 0);
    zsock_set_maxmsgsize (sock, (int64_t) DP_MAX_REPORT + 4096);
    int rc = -1;
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_STATUS);
    dp_curve_watch_t *watch = NULL;
    if (dp_curve_client_apply (zsock_resolve (sock), curve) != 0)
        snprintf (err, errlen, "cannot set CURVE keys: %s", zmq_strerror (errno));
    else
    if (!(watch = dp_curve_watch_new (NULL, zsock_resolve (sock)))
    ||  zmq_connect (zsock_resolve (sock), endpoint) != 0)
        snprintf (err, errlen, "cannot connect to %s: %s", endpoint, zmq_strerror (errno));
    else
    if (dp_msg_send (&msg, zsock_resolve (sock), NULL) != 0)
        snprintf (err, errlen, "cannot send to %s: %s", endpoint, zmq_strerror (errno));
    else {
        zmq_pollitem_t item = { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
        int64_t deadline = zclock_mono () + timeout_ms;
        rc = -2;
        while (rc == -2) {
            int64_t left = deadline - zclock_mono ();
            int ready = left > 0 ? zmq_poll (&item, 1, left > 100 ? 100 : left) : 0;
            if (ready < 0 && errno == EINTR)
                continue;
            const char *failed = dp_curve_watch_why (watch, curve->on);
            if (ready == 0 && failed) {
                snprintf (err, errlen, "cannot reach %s: %s", endpoint, failed);
                rc = -1;
                continue;
            }
            if (ready == 0 && left > 100)
                continue;
            if (ready <= 0) {
                snprintf (err, errlen, "no answer from %s within %d ms", endpoint, timeout_ms);
                rc = -1;
                continue;
            }
            char why [256];
            int got = dp_msg_recv (&msg, zsock_resolve (sock), NULL, ZMQ_DONTWAIT, why, sizeof why);
            if (got == DP_PROTO_ESOCKET && errno == EAGAIN)
                continue;
            if (got != 0) {
                snprintf (err, errlen, "bad answer from %s: %s", endpoint, why);
                rc = -1;
            }
            else
            if (msg.cmd == DP_CMD_REPORT) {
                rc = dp_report_decode (report, &msg, why, sizeof why) == 0 ? 0 : -1;
                if (rc)
                    snprintf (err, errlen, "bad report from %s: %s", endpoint, why);
            }
            else
            if (msg.cmd == DP_CMD_ERROR) {
                snprintf (err, errlen, "%s: %.400s%s", endpoint, msg.text,
                          msg.code == DP_PROTO_ECMD ? " (a broker without STATUS?)" : "");
                rc = -1;
            }
            //  anything else (a HEARTBEAT) is not our answer: keep waiting
            dp_msg_reset (&msg);
        }
    }
    dp_msg_reset (&msg);
    dp_curve_watch_destroy (&watch);
    zsock_destroy (&sock);
    return rc;
}

//  --------------------------------------------------------------------------
//  Table

//  A duration as "1h02m", "3m20s", "4.2s".
static const char *
s_duration (double seconds, char *out, size_t size)
{
    if (seconds < 0)
        snprintf (out, size, "-");
    else
    if (seconds < 60)
        snprintf (out, size, "%.1fs", seconds);
    else
    if (seconds < 3600)
        snprintf (out, size, "%dm%02ds", (int) seconds / 60, (int) seconds % 60);
    else
        snprintf (out, size, "%dh%02dm", (int) (seconds / 3600), (int) seconds % 3600 / 60);
    return out;
}

//  Bytes as "512 B", "3.4 MB".
static const char *
s_bytes (uint64_t bytes, char *out, size_t size)
{
    static const char *units [] = { "B", "kB", "MB", "GB", "TB" };
    double value = (double) bytes;
    int unit = 0;
    while (value >= 1000 && unit < 4) {
        value /= 1000;
        unit++;
    }
    snprintf (out, size, unit ? "%.1f %s" : "%.0f %s", value, units [unit]);
    return out;
}

//  A job's rate (items/s over its age) and ETA in seconds (-1: unknown).
static double
s_rate (const dp_report_job_t *job, double *eta)
{
    double age = (double) job->age_ms / 1000;
    double rate = age > 0 ? (double) job->done / age : 0;
    *eta = job->ended && rate > 0 ? (double) (job->total - job->done) / rate : -1;
    if (job->ended && job->done >= job->total)
        *eta = 0;
    return rate;
}

static void
s_print_table (const dp_report_t *r)
{
    const dp_report_broker_t *b = &r->broker;
    char t1 [32], t2 [32];
    printf ("broker %s pid %u, up %s, %u client%s\n", b->host, b->pid,
            s_duration ((double) b->uptime_ms / 1000, t1, sizeof t1), b->clients,
            b->clients == 1 ? "" : "s");
    printf ("  messages %llu in, %llu out; bytes %s in, %s out\n",
            (unsigned long long) b->msgs_in, (unsigned long long) b->msgs_out,
            s_bytes (b->bytes_in, t1, sizeof t1), s_bytes (b->bytes_out, t2, sizeof t2));
    printf ("  peers dropped %llu, bad messages %llu; items done %llu, failed %llu\n",
            (unsigned long long) b->peers_dropped, (unsigned long long) b->bad_messages,
            (unsigned long long) b->items_done, (unsigned long long) b->items_failed);
    if (b->metrics_port)
        printf ("  metrics on port %u\n", b->metrics_port);
    printf ("\n%-28s %8s %6s %5s %10s %8s %9s\n", "NODE / WORKER", "PID", "SLOTS", "BUSY",
            "DONE", "FAILED", "RESTARTS");
    //  each node, its workers under it, then the workers on no node
    for (int32_t n = 0; n <= (int32_t) r->nnodes; n++) {
        int32_t node = n < (int32_t) r->nnodes ? n : -1;
        if (node >= 0) {
            const dp_report_node_t *row = &r->nodes [node];
            char name [DP_MAX_NAME + 16];
            snprintf (name, sizeof name, "%s%s", row->host, row->local ? " (local)" : "");
            printf ("%-28s %8u %6u %5u %10llu %8llu %9u\n", name, row->pid, row->slots, row->busy,
                    (unsigned long long) row->done, (unsigned long long) row->failed, row->restarts);
        }
        for (uint32_t i = 0; i < r->nworkers; i++) {
            const dp_report_worker_t *w = &r->workers [i];
            if (w->node != node)
                continue;
            char name [DP_MAX_NAME + 4];
            snprintf (name, sizeof name, "%s%s", node >= 0 ? "  " : "", w->host);
            printf ("%-28s %8u %6u %5u %10llu %8llu %9s\n", name, w->pid, 1u, w->inflight > 0 ? 1u : 0u,
                    (unsigned long long) w->done, (unsigned long long) w->failed, "-");
        }
    }
    printf ("\n%-24s %6s %-16s %21s %8s %10s %8s\n", "CLIENT", "JOB", "TASK", "DONE/TOTAL", "FAILED",
            "RATE/s", "ETA");
    for (uint32_t i = 0; i < r->njobs; i++) {
        const dp_report_job_t *j = &r->jobs [i];
        double eta, rate = s_rate (j, &eta);
        char progress [48];
        if (j->ended)
            snprintf (progress, sizeof progress, "%llu/%llu", (unsigned long long) j->done,
                      (unsigned long long) j->total);
        else
            snprintf (progress, sizeof progress, "%llu/%llu+", (unsigned long long) j->done,
                      (unsigned long long) j->sent);
        printf ("%-24.24s %6u %-16.16s %21s %8llu %10.1f %8s\n", j->client, j->job, j->task, progress,
                (unsigned long long) j->failed, rate, s_duration (eta, t1, sizeof t1));
    }
    if (r->truncated)
        printf ("(the broker left rows out: more than %d of a kind)\n", DP_REPORT_MAX_ROWS);
}

//  --------------------------------------------------------------------------
//  JSON

static void
s_json_str (const char *s)
{
    putchar ('"');
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf ("\\%c", *p);
        else
        if (*p < 0x20)
            printf ("\\u%04x", *p);
        else
            putchar (*p);
    }
    putchar ('"');
}

static void
s_print_json (const dp_report_t *r)
{
    const dp_report_broker_t *b = &r->broker;
    printf ("{\"broker\":{\"host\":");
    s_json_str (b->host);
    printf (",\"pid\":%u,\"uptime_ms\":%llu,\"clients\":%u,\"messages_in\":%llu,\"messages_out\":%llu,"
            "\"bytes_in\":%llu,\"bytes_out\":%llu,\"peers_dropped\":%llu,\"bad_messages\":%llu,"
            "\"items_done\":%llu,\"items_failed\":%llu,\"metrics_port\":%u},\"nodes\":[",
            b->pid, (unsigned long long) b->uptime_ms, b->clients, (unsigned long long) b->msgs_in,
            (unsigned long long) b->msgs_out, (unsigned long long) b->bytes_in,
            (unsigned long long) b->bytes_out, (unsigned long long) b->peers_dropped,
            (unsigned long long) b->bad_messages, (unsigned long long) b->items_done,
            (unsigned long long) b->items_failed, b->metrics_port);
    for (uint32_t i = 0; i < r->nnodes; i++) {
        const dp_report_node_t *n = &r->nodes [i];
        printf ("%s{\"host\":", i ? "," : "");
        s_json_str (n->host);
        printf (",\"pid\":%u,\"local\":%s,\"slots\":%u,\"workers\":%u,\"busy\":%u,\"done\":%llu,"
                "\"failed\":%llu,\"restarts\":%u}", n->pid, n->local ? "true" : "false", n->slots,
                n->workers, n->busy, (unsigned long long) n->done, (unsigned long long) n->failed,
                n->restarts);
    }
    printf ("],\"workers\":[");
    for (uint32_t i = 0; i < r->nworkers; i++) {
        const dp_report_worker_t *w = &r->workers [i];
        printf ("%s{\"host\":", i ? "," : "");
        s_json_str (w->host);
        printf (",\"pid\":%u,\"node\":%d,\"busy\":%s,\"inflight\":%u,\"credit\":%u,\"done\":%llu,"
                "\"failed\":%llu}", w->pid, w->node, w->inflight ? "true" : "false", w->inflight,
                w->credit, (unsigned long long) w->done, (unsigned long long) w->failed);
    }
    printf ("],\"jobs\":[");
    for (uint32_t i = 0; i < r->njobs; i++) {
        const dp_report_job_t *j = &r->jobs [i];
        double eta, rate = s_rate (j, &eta);
        printf ("%s{\"client\":", i ? "," : "");
        s_json_str (j->client);
        printf (",\"job\":%u,\"task\":", j->job);
        s_json_str (j->task);
        printf (",\"sent\":%llu,\"total\":%llu,\"ended\":%s,\"done\":%llu,\"failed\":%llu,"
                "\"age_ms\":%llu,\"rate\":%.3f,\"eta_s\":", (unsigned long long) j->sent,
                (unsigned long long) j->total, j->ended ? "true" : "false",
                (unsigned long long) j->done, (unsigned long long) j->failed,
                (unsigned long long) j->age_ms, rate);
        if (eta < 0)
            printf ("null}");
        else
            printf ("%.3f}", eta);
    }
    printf ("],\"truncated\":%s}\n", r->truncated ? "true" : "false");
}

int
dp_status_main (int argc, char *argv [])
{
    static const struct option longopts [] = {
        { "broker", required_argument, NULL, 'b' },
        { "json", no_argument, NULL, 'J' },
        { "timeout", required_argument, NULL, 'T' },
        { "curve-secret", required_argument, NULL, 'S' },
        { "broker-key", required_argument, NULL, 'B' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *endpoint = getenv ("DPOOL_BROKER");
    const char *secret = NULL, *broker_key = NULL;
    bool json = false;
    int timeout_ms = 3000;
    int c;
    optind = 1;
    while ((c = getopt_long (argc, argv, "+b:h", longopts, NULL)) != -1) {
        switch (c) {
            case 'b': endpoint = optarg; break;
            case 'J': json = true; break;
            case 'S': secret = optarg; break;
            case 'B': broker_key = optarg; break;
            case 'T': {
                uint64_t value;
                if (dp_opt_uint (optarg, 1, 3600000, &value)) {
                    fprintf (stderr, "dpool status: invalid timeout '%s' (1..3600000 ms)\n", optarg);
                    return S_EXIT_USAGE;
                }
                timeout_ms = (int) value;
                break;
            }
            case 'h': s_usage (stdout); return 0;
            default:
                fprintf (stderr, "Try 'dpool status --help'.\n");
                return S_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "dpool status: unexpected argument '%s'\nTry 'dpool status --help'.\n",
                 argv [optind]);
        return S_EXIT_USAGE;
    }
    char dir [4096], found [1024];
    if ((!endpoint || !*endpoint) && dp_curve_server_dir (NULL, dir, sizeof dir)
    &&  dp_curve_server_endpoint (dir, "clients", found, sizeof found) == 0)
        endpoint = found;
    if (!endpoint || !*endpoint) {
        fprintf (stderr, "dpool status: which broker? Give -b EP or set DPOOL_BROKER\n");
        return S_EXIT_USAGE;
    }
    zsys_handler_set (NULL);
    dp_report_t report;
    dp_report_init (&report);
    char err [DP_MAX_TEXT + 512];
    dp_curve_keys_t curve;
    if (dp_curve_client_keys (secret, broker_key, "client", endpoint, &curve, err, sizeof err)) {
        fprintf (stderr, "dpool status: %s\n", err);
        return S_EXIT_USAGE;
    }
    if (s_ask (endpoint, &curve, timeout_ms, &report, err, sizeof err) != 0) {
        fprintf (stderr, "dpool status: %s\n", err);
        return S_EXIT_ERROR;
    }
    if (json)
        s_print_json (&report);
    else
        s_print_table (&report);
    dp_report_clear (&report);
    return fflush (stdout) == 0 ? 0 : S_EXIT_ERROR;
}
