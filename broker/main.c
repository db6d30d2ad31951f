/*  =========================================================================
    dpool-broker - run a dpool broker

    A thin main: parse options, start the broker actor, wait for SIGINT or
    SIGTERM, stop it (which stops and reaps the local workers).
    =========================================================================
*/
#include "dp_broker.h"
#include "dp_http.h"
#include "dp_opt.h"
#include "dpool.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODULES 64

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: dpool-broker [OPTION]...\n"
        "Run a dpool broker: clients submit map jobs to it, it farms their items out\n"
        "to local worker processes it starts and to remote workers that connect.\n"
        "\n"
        "  -c, --clients EP       client endpoint to bind (default tcp://127.0.0.1:5555)\n"
        "  -w, --workers EP       worker endpoint to bind (default tcp://127.0.0.1:5556)\n"
        "  -j, --jobs N|none      local worker processes (default or 0: one per usable\n"
        "                         CPU, from the affinity mask and cgroup quota, as\n"
        "                         nproc counts them; none: no local workers, remote\n"
        "                         workers only)\n"
        "  -m, --module MODULE    task module for the local workers (path, or NAME for\n"
        "                         libdpool_NAME.so in the library path); repeatable\n"
        "      --heartbeat MS     heartbeat interval (default 1000); a peer silent for\n"
        "                         3 intervals is dead\n"
        "      --max-attempts N   times an item may kill a worker before it fails (3)\n"
        "      --task-wait MS     how long a job waits for a worker with its task (3000;\n"
        "                         longer while a worker node that came in the last\n"
        "                         minute has not all its workers here yet)\n"
        "      --mem-limit MB     limit each local worker's address space (RLIMIT_AS);\n"
        "                         an item that exhausts it fails \"out of memory\"\n"
        "      --max-tasks-per-child N  replace a local worker after N items\n"
        "      --init ARGS        arguments for the modules' initializers, run once in\n"
        "                         each local worker process\n"
        "      --no-speculation   never run backup copies of straggling chunks near\n"
        "                         the end of a job (default: idle workers race them)\n"
        "      --metrics ADDR:PORT  serve Prometheus metrics over HTTP at\n"
        "                         http://ADDR:PORT/metrics (port 0: any free port,\n"
        "                         logged at start); ADDR must be loopback\n"
        "      --metrics-public   allow a non-loopback --metrics address\n"
        "      --allow-exec       offer the built-in exec task (shell commands, as\n"
        "                         dpool run sends) on the local workers; off by default\n"
        "\n"
        "Security (CurveZMQ authentication and encryption on both endpoints):\n"
        "      --curve-secret FILE  the broker's secret key file (PATH_secret of\n"
        "                         'dpool keygen PATH'); needs both allow-lists:\n"
        "      --allow-clients DIR  public key files of the clients let in\n"
        "      --allow-workers DIR  public key files of the workers let in\n"
        "      --server-dir DIR   without --curve-secret: keep keys in DIR (default\n"
        "                         $DPOOL_SERVER_DIR, else ~/.dpool/server; made mode\n"
        "                         0700): the broker's key pair, a client and a worker\n"
        "                         key pair, allow-clients/, allow-workers/ and the\n"
        "                         endpoints, so that dpool and dpool-worker run by whoever\n"
        "                         can read DIR connect with CURVE and no options\n"
        "      --no-curve         plaintext, no authentication: only on loopback or\n"
        "                         ipc endpoints\n"
        "      --insecure         plaintext, and allow binding any address (anyone who\n"
        "                         reaches the ports can run tasks)\n"
        "      --window N         items a client may have outstanding (default 131072)\n"
        "      --window-bytes MB  item bytes a client may have outstanding (default 256);\n"
        "                         a BATCH beyond either window ends its job (EWINDOW)\n"
        "      --max-clients N    client sessions at once (default 1024); more: ELIMIT\n"
        "      --max-workers N    worker and node sessions at once (default 4096)\n"
        "      --max-jobs N       open jobs over all clients (default 16384)\n"
        "      --max-rss MB       memory ceiling: over it, the TCP connection that sent\n"
        "                         the most in the last 100 ms is cut (default 64 +\n"
        "                         4 x --window-bytes + 512; 0: none)\n"
        "  -v, --verbose          log peers coming and going\n"
        "  -h, --help             show this help and exit\n"
        "  -V, --version          show the version and exit\n"
        "\n"
        "Stops cleanly on SIGINT or SIGTERM: local workers are terminated and reaped,\n"
        "remote workers are told to reconnect later.\n");
}

static long
s_number (const char *arg, const char *what, long min, long max)
{
    uint64_t value;
    if (dp_opt_uint (arg, (uint64_t) min, (uint64_t) max, &value)) {
        fprintf (stderr, "dpool-broker: invalid %s '%s' (a whole number, %ld..%ld)\n", what, arg, min, max);
        exit (64);
    }
    return (long) value;
}

//  The server directory's endpoints name a running broker: take ours out
//  (not another broker's that wrote its own since).
static void
s_forget_endpoints (const char *dir)
{
    char path [4200], listed [64];
    snprintf (path, sizeof path, "%s/endpoints", dir);
    if (dp_curve_server_endpoint (dir, "pid", listed, sizeof listed) == 0
    &&  atoi (listed) == (int) getpid ())
        unlink (path);
}

int
main (int argc, char *argv [])
{
    static const struct option longopts [] = {
        { "clients", required_argument, NULL, 'c' },
        { "workers", required_argument, NULL, 'w' },
        { "jobs", required_argument, NULL, 'j' },
        { "module", required_argument, NULL, 'm' },
        { "heartbeat", required_argument, NULL, 'H' },
        { "max-attempts", required_argument, NULL, 'A' },
        { "task-wait", required_argument, NULL, 'T' },
        { "mem-limit", required_argument, NULL, 'M' },
        { "max-tasks-per-child", required_argument, NULL, 'X' },
        { "no-speculation", no_argument, NULL, 'S' },
        { "init", required_argument, NULL, 'I' },
        { "metrics", required_argument, NULL, 'P' },
        { "metrics-public", no_argument, NULL, 'U' },
        { "allow-exec", no_argument, NULL, 300 },
        { "curve-secret", required_argument, NULL, 301 },
        { "allow-clients", required_argument, NULL, 302 },
        { "allow-workers", required_argument, NULL, 303 },
        { "server-dir", required_argument, NULL, 304 },
        { "no-curve", no_argument, NULL, 305 },
        { "insecure", no_argument, NULL, 306 },
        { "window", required_argument, NULL, 'W' },
        { "window-bytes", required_argument, NULL, 'B' },
        { "max-clients", required_argument, NULL, 'C' },
        { "max-workers", required_argument, NULL, 'K' },
        { "max-jobs", required_argument, NULL, 'J' },
        { "max-rss", required_argument, NULL, 307 },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    dp_broker_opts_t opts = {
        .clients = "tcp://127.0.0.1:5555", .workers = "tcp://127.0.0.1:5556", .local_workers = -1
    };
    const char *modules [MAX_MODULES];
    const char *metrics = NULL;
    bool metrics_public = false, no_curve = false;
    const char *secret = NULL, *server_dir = NULL;
    int64_t max_rss = -1;           //  --max-rss; -1: from the windows
    int c;
    while ((c = getopt_long (argc, argv, "c:w:j:m:vhV", longopts, NULL)) != -1) {
        switch (c) {
            case 'c': opts.clients = optarg; break;
            case 'w': opts.workers = optarg; break;
            case 'j':               //  0: one per CPU, as -j 0 everywhere
                opts.local_workers = strcmp (optarg, "none") == 0
                                   ? 0 : (int) s_number (optarg, "worker count (or none)", 0, 1000);
                if (opts.local_workers == 0 && strcmp (optarg, "none") != 0)
                    opts.local_workers = -1;
                break;
            case 'm':
                if (opts.nmodules == MAX_MODULES) {
                    fprintf (stderr, "dpool-broker: more than %d modules\n", MAX_MODULES);
                    return 64;
                }
                modules [opts.nmodules++] = optarg;
                break;
            case 'H': opts.heartbeat_ms = (uint32_t) s_number (optarg, "heartbeat", 10, 600000); break;
            case 'A': opts.max_attempts = (uint32_t) s_number (optarg, "attempts", 1, 1000); break;
            case 'T': opts.task_wait_ms = (uint32_t) s_number (optarg, "task wait", 1, 86400000); break;
            case 'M': opts.mem_limit_mb = (uint32_t) s_number (optarg, "memory limit", 16, 1 << 22); break;
            case 'X': opts.max_tasks = (uint32_t) s_number (optarg, "tasks per child", 1, 2000000000); break;
            case 'S': opts.no_speculation = true; break;
            case 'I': opts.init_args = optarg; break;
            case 'P': {
                //  the port is checked here (a usage error); the address
                //  when it is resolved
                const char *colon = strrchr (optarg, ':');
                uint64_t port;
                if (!colon || dp_opt_uint (colon + 1, 0, 65535, &port)) {
                    fprintf (stderr, "dpool-broker: invalid --metrics '%s' (ADDR:PORT, port 0..65535)\n", optarg);
                    return 64;
                }
                metrics = optarg;
                break;
            }
            case 'U': metrics_public = true; break;
            case 300: opts.allow_exec = true; break;
            case 301: secret = optarg; break;
            case 302: opts.allow_clients = optarg; break;
            case 303: opts.allow_workers = optarg; break;
            case 304: server_dir = optarg; break;
            case 305: no_curve = true; break;
            case 306: opts.insecure = no_curve = true; break;
            case 'W': opts.window = (uint32_t) s_number (optarg, "window", 1, 1 << 24); break;
            case 'B': opts.wbytes = (uint64_t) s_number (optarg, "window bytes (MB)", 1, 1 << 20) << 20; break;
            case 'C': opts.max_clients = (uint32_t) s_number (optarg, "client limit", 1, 1 << 20); break;
            case 'K': opts.max_workers = (uint32_t) s_number (optarg, "worker limit", 1, 1 << 20); break;
            case 'J': opts.max_jobs = (uint32_t) s_number (optarg, "job limit", 1, 1 << 24); break;
            case 307: max_rss = (int64_t) s_number (optarg, "memory ceiling (MB)", 0, 1 << 24); break;
            case 'v': opts.verbose++; break;
            case 'h': s_usage (stdout); return 0;
            case 'V': printf ("dpool-broker %s\n", DPOOL_VERSION_STRING); return 0;
            default: s_usage (stderr); return 64;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "dpool-broker: unexpected argument '%s'\n", argv [optind]);
        return 64;
    }
    opts.modules = modules;
    //  the memory ceiling: room for 4 clients' full windows and 2 of the
    //  largest frames above a base, unless given
    opts.max_rss_mb = max_rss >= 0 ? (uint32_t) max_rss
                    : (uint32_t) (64 + 4 * ((opts.wbytes ? opts.wbytes : (256u << 20)) >> 20) + 512);
    dp_broker_raise_nofile ();      //  as many connections as the host allows
    //  the keys: given, none asked for, or the server directory's
    char err [512], dir [4096], path [2][4200];
    dp_curve_keys_t curve = { 0 };
    if (secret || opts.allow_clients || opts.allow_workers) {
        if (!secret || !opts.allow_clients || !opts.allow_workers || no_curve || server_dir) {
            fprintf (stderr, "dpool-broker: --curve-secret, --allow-clients and --allow-workers "
                     "go together (and not with --server-dir, --no-curve or --insecure)\n");
            return 64;
        }
        if (dp_curve_load_secret (secret, &curve, err, sizeof err)) {
            fprintf (stderr, "dpool-broker: %s\n", err);
            return 64;
        }
        server_dir = NULL;
    }
    else
    if (no_curve) {
        if (server_dir) {
            fprintf (stderr, "dpool-broker: --server-dir is for CURVE keys: not with "
                     "--no-curve or --insecure\n");
            return 64;
        }
    }
    else {
        server_dir = dp_curve_server_dir (server_dir, dir, sizeof dir);
        if (!server_dir) {
            fprintf (stderr, "dpool-broker: no server directory: HOME is not set "
                     "(give --server-dir DIR)\n");
            return 64;
        }
        if (dp_curve_server_dir_init (server_dir, &curve, err, sizeof err)) {
            fprintf (stderr, "dpool-broker: %s\n", err);
            return 1;
        }
        snprintf (path [0], sizeof path [0], "%s/allow-clients", server_dir);
        snprintf (path [1], sizeof path [1], "%s/allow-workers", server_dir);
        opts.allow_clients = path [0];
        opts.allow_workers = path [1];
    }
    if (curve.on)
        opts.curve = &curve;
    //  signals are taken with sigwait here, not by CZMQ's handler
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    zsys_handler_set (NULL);
    zsys_set_logstream (stderr);    //  diagnostics are not output
    char inproc [64];
    dp_http_t *http = NULL;
    if (metrics) {
        http = dp_http_new (metrics, metrics_public, err, sizeof err);
        if (!http) {
            fprintf (stderr, "dpool-broker: %s\n", err);
            return 1;
        }
        opts.metrics_fn = dp_http_publish;
        opts.metrics_arg = http;
        opts.metrics_port = dp_http_port (http);
    }
    //  the endpoints first: peers that start with us read them at once
    if (server_dir && dp_curve_server_dir_endpoints (server_dir, opts.clients, opts.workers,
                                                     err, sizeof err)) {
        fprintf (stderr, "dpool-broker: %s\n", err);
        dp_http_destroy (&http);
        return 1;
    }
    dp_broker_t *broker = dp_broker_new (&opts, inproc, sizeof inproc, err, sizeof err);
    if (!broker) {
        if (server_dir)
            s_forget_endpoints (server_dir);
        fprintf (stderr, "dpool-broker: %s\n", err);
        dp_http_destroy (&http);
        return 1;
    }
    if (opts.verbose && curve.on)
        zsys_info ("dpool-broker: CURVE on, keys from %s", server_dir ? server_dir : secret);
    if (http)
        zsys_info ("dpool-broker: metrics on %s", dp_http_url (http));
    if (opts.verbose)
        zsys_info ("dpool-broker: clients on %s, workers on %s", opts.clients, opts.workers);
    int sig = 0;
    sigwait (&signals, &sig);
    if (server_dir)
        s_forget_endpoints (server_dir);
    dp_broker_destroy (&broker);
    dp_http_destroy (&http);        //  after the broker: it publishes to it
    return 0;
}
