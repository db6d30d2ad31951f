/*  =========================================================================
    dpool-worker - run dpool tasks for a broker

    Parses the command line and hands over to dp_worker_run (or
    dp_worker_check for --check). See --help.
    =========================================================================
*/
#include "dp_worker.h"
#include "dp_cpus.h"
#include "dp_opt.h"
#include "dpool.h"

#include <errno.h>
#include <stdint.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_MODULES   64

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: dpool-worker [--connect ENDPOINT] [OPTION]...\n"
        "       dpool-worker --check [-m MODULE]...\n"
        "Run dpool tasks for a broker: connect to its worker endpoint, announce\n"
        "the tasks this worker has, run the chunks of items it sends, answer.\n"
        "\n"
        "  -c, --connect ENDPOINT  broker's worker endpoint (tcp://host:port, ipc://path;\n"
        "                          default: the one in the server directory)\n"
        "  -m, --module MODULE     load a task module (repeatable): a path to a .so, or a\n"
        "                          name NAME found as libdpool_NAME.so, NAME.so or\n"
        "                          libNAME.so in $DPOOL_MODULE_PATH (colon-separated),\n"
        "                          the directory of libdpool.so, then the install libdir.\n"
        "      --allow-exec        offer the built-in task 'exec' (runs any shell\n"
        "                          command the broker's clients send; off by default)\n"
        "      --curve-secret FILE our secret key file (PATH_secret of 'dpool keygen')\n"
        "      --broker-key FILE   the broker's public key file: with --curve-secret,\n"
        "                          CURVE authentication and encryption. Without both,\n"
        "                          the keys of the server directory ($DPOOL_SERVER_DIR,\n"
        "                          default ~/.dpool/server) when it lists the endpoint\n"
        "      --credit N          chunks accepted at once, 1-1024 (default 64; the broker\n"
        "                          keeps ~1 ms of work queued, at least 2 chunks)\n"
        "      --heartbeat MS      heartbeat interval, 10-3600000 ms (default 1000); the\n"
        "                          broker counts as gone after 3 of its intervals\n"
        "                          without a message\n"
        "      --local             started by a broker: exit with it, on BYE, or when it\n"
        "                          goes silent (instead of reconnecting with backoff)\n"
        "  -j, --jobs N            run as a worker node: start and supervise N worker\n"
        "                          processes (restarted when they die; they die with\n"
        "                          the node); the node reports their deaths and what\n"
        "                          they were running to the broker, and kills an item\n"
        "                          that outlives its job's timeout\n"
        "                          (0: one per usable CPU, as nproc counts them;\n"
        "                          default: a node of 1 worker process)\n"
        "      --max-tasks-per-child N  a worker process exits after N items and is\n"
        "                          replaced\n"
        "      --mem-limit MB      limit each worker process's address space\n"
        "                          (RLIMIT_AS); an item that exhausts it is reported\n"
        "                          \"out of memory\"\n"
        "      --init ARGS         arguments for the modules' initializers, run once in\n"
        "                          each worker process before any item\n"
        "      --child             started by a node (internal): die with it\n"
        "      --check             load the modules, print the task names one per line\n"
        "                          and exit (0, or 78 if a module does not load)\n"
        "  -v, --verbose           log sessions to stderr (repeat for more)\n"
        "  -h, --help              show this help and exit\n"
        "  -V, --version           show the version and exit\n"
        "\n"
        "A remote worker that loses its broker reconnects with backoff 1 s to 32 s\n"
        "until SIGTERM or SIGINT, which stop it cleanly (exit 0).\n"
        "Exit status: 0 stopped, 64 bad usage, 78 a module failed to load.\n");
}

//  Parse a decimal option value in [min, max]. Returns 0 or -1.

static int
s_number (const char *text, unsigned long min, unsigned long max, uint32_t *value)
{
    uint64_t v;
    if (dp_opt_uint (text, min, max, &v))
        return -1;
    *value = (uint32_t) v;
    return 0;
}

//  Complain about the command line. Returns the usage exit code.

static int
s_bad_usage (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

static int
s_bad_usage (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "dpool-worker: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\nTry 'dpool-worker --help'.\n");
    va_end (args);
    return DP_WORKER_EXIT_USAGE;
}

#define S_GO (-1)                   //  options parsed: go on

//  Parse the command line into opts (modules into the caller's array).
//  Returns S_GO, or an exit code when the program should stop now.

static int
s_parse (int argc, char *argv [], dp_worker_opts_t *opts, const char **modules, bool *check,
         int *node_jobs)
{
    enum { OPT_CREDIT = 256, OPT_HEARTBEAT, OPT_LOCAL, OPT_CHECK, OPT_CHILD, OPT_MAXTASKS,
           OPT_MEMLIMIT, OPT_INIT, OPT_EXEC, OPT_SECRET, OPT_BROKERKEY };
    static const struct option options [] = {
        { "connect",   required_argument, NULL, 'c' },
        { "module",    required_argument, NULL, 'm' },
        { "jobs",      required_argument, NULL, 'j' },
        { "credit",    required_argument, NULL, OPT_CREDIT },
        { "heartbeat", required_argument, NULL, OPT_HEARTBEAT },
        { "local",     no_argument,       NULL, OPT_LOCAL },
        { "check",     no_argument,       NULL, OPT_CHECK },
        { "child",     no_argument,       NULL, OPT_CHILD },
        { "max-tasks-per-child", required_argument, NULL, OPT_MAXTASKS },
        { "mem-limit", required_argument, NULL, OPT_MEMLIMIT },
        { "init",      required_argument, NULL, OPT_INIT },
        { "allow-exec", no_argument,      NULL, OPT_EXEC },
        { "curve-secret", required_argument, NULL, OPT_SECRET },
        { "broker-key", required_argument, NULL, OPT_BROKERKEY },
        { "verbose",   no_argument,       NULL, 'v' },
        { "help",      no_argument,       NULL, 'h' },
        { "version",   no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    uint32_t jobs;
    int opt;
    while ((opt = getopt_long (argc, argv, "c:m:j:vhV", options, NULL)) != -1) {
        switch (opt) {
            case 'c':
                opts->endpoint = optarg;
                break;
            case 'm':
                if (opts->nmodules == S_MAX_MODULES)
                    return s_bad_usage ("more than %d modules", S_MAX_MODULES);
                modules [opts->nmodules++] = optarg;
                break;
            case 'j':
                if (s_number (optarg, 0, 4096, &jobs))
                    return s_bad_usage ("bad --jobs value '%s' (0-4096)", optarg);
                *node_jobs = jobs ? (int) jobs : dp_cpu_count ();
                break;
            case OPT_INIT:
                opts->init_args = optarg;
                break;
            case OPT_EXEC:
                opts->allow_exec = true;
                break;
            case OPT_SECRET:
                opts->curve_secret = optarg;
                break;
            case OPT_BROKERKEY:
                opts->broker_key = optarg;
                break;
            case OPT_CHILD:
                opts->supervised = true;
                break;
            case OPT_MAXTASKS:
                if (s_number (optarg, 1, UINT32_MAX, &opts->max_tasks))
                    return s_bad_usage ("bad --max-tasks-per-child value '%s'", optarg);
                break;
            case OPT_MEMLIMIT:
                if (s_number (optarg, 16, 1u << 22, &opts->mem_limit_mb))
                    return s_bad_usage ("bad --mem-limit value '%s' (16 MiB or more)", optarg);
                break;
            case OPT_CREDIT:
                if (s_number (optarg, 1, 1024, &opts->credit))
                    return s_bad_usage ("bad --credit value '%s' (1-1024)", optarg);
                break;
            case OPT_HEARTBEAT:
                if (s_number (optarg, 10, 3600000, &opts->heartbeat_ms))
                    return s_bad_usage ("bad --heartbeat value '%s' (10-3600000 ms)", optarg);
                break;
            case OPT_LOCAL:
                opts->local = true;
                break;
            case OPT_CHECK:
                *check = true;
                break;
            case 'v':
                opts->verbose++;
                break;
            case 'h':
                s_usage (stdout);
                return DP_WORKER_EXIT_OK;
            case 'V':
                printf ("dpool-worker %s\n", DPOOL_VERSION_STRING);
                return DP_WORKER_EXIT_OK;
            default:
                fprintf (stderr, "Try 'dpool-worker --help'.\n");
                return DP_WORKER_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return s_bad_usage ("unexpected argument '%s'", argv [optind]);
    return S_GO;
}

int
main (int argc, char *argv [])
{
    const char *modules [S_MAX_MODULES];
    dp_worker_opts_t opts = { .modules = modules };
    bool check = false;
    int node_jobs = 0;
    int code = s_parse (argc, argv, &opts, modules, &check, &node_jobs);
    if (code != S_GO)
        return code;
    if (check)
        return dp_worker_check (opts.modules, opts.nmodules);
    char dir [4096], endpoint [1024];
    if (!opts.endpoint && dp_curve_server_dir (NULL, dir, sizeof dir)
    &&  dp_curve_server_endpoint (dir, "workers", endpoint, sizeof endpoint) == 0)
        opts.endpoint = endpoint;
    if (!opts.endpoint)
        return s_bad_usage ("--connect ENDPOINT is required (no running broker in the "
                            "server directory)");
    if (!opts.curve_secret != !opts.broker_key)
        return s_bad_usage ("--curve-secret and --broker-key go together");
    //  A plain remote worker is a node of one supervised worker process:
    //  only a supervisor can kill an item that outlives its job's
    //  timeout (and replace the process), report the death of the one
    //  that crashed, recycle after --max-tasks-per-child
    if (node_jobs == 0 && !opts.local && !opts.supervised)
        node_jobs = 1;
    if (node_jobs > 0)
        return dp_node_run (&opts, node_jobs);
    return dp_worker_run (&opts);
}
