/*  =========================================================================
    dpool - the command line: the dispatcher, and `dpool map`

    dpool map [-b EP] [-j N] [-m MODULE]... [-0] [-u] [--index] TASK
        items are the lines of stdin (NUL-separated with -0); results go to
        stdout one per line, in input order (as they arrive with -u); a
        failed item's reason goes to stderr, the other results still come,
        and the exit status is 1. --on-error empty|error-text keeps a line
        in stdout for a failed item, so output lines match input lines.
    dpool run ...   GNU parallel's interface: dp_run.c, dp_run_args.c,
                    dp_run_input.c
    dpool status    dp_status.c

    Input is read lazily from a non-blocking buffer and results are taken
    from an iterator (dp_imap): the pool reads input only while its window
    has room, and a result's memory is released once printed, so memory
    stays bounded however long the input stream is. The iterator is asked
    with a timeout, so a progress bar can be redrawn and Ctrl-C is seen at
    once: the job is cancelled (nothing more dispatched) and dpool exits
    with 130.
    =========================================================================
*/
#include "dpool.h"
#include "dp_curve.h"
#include "dp_records.h"
#include "dp_status.h"
#include "dp_run.h"
#include "dp_opt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_MODULES 64

#define EXIT_FAILED_ITEMS   1
#define EXIT_POOL_ERROR     2
#define EXIT_USAGE          64
#define EXIT_INTERRUPTED    130
#define PROGRESS_MS         200     //  progress bar redraw interval
#define DP_LINE_MAX         4096    //  --on-error error-text: longest line

static volatile int s_interrupted = 0;

static void
s_on_signal (int sig)
{
    (void) sig;
    s_interrupted = 1;
}

//  --------------------------------------------------------------------------
//  Lazy delimited input from a file descriptor

typedef struct {
    dp_records_t records;       //  client/dp_records.c
    uint64_t items;
} input_t;

//  Next delimited record, or NULL when none is complete yet (*later set) or
//  at the end of input. The record stays valid until the next call. A read
//  error ends the input (reported); running out of memory ends dpool.
static const char *
s_next_record (input_t *in, size_t *len, bool *later)
{
    *later = false;
    const char *record;
    int rc = dp_records_next (&in->records, &record, len);
    if (rc == -1) {
        if (errno == ENOMEM) {
            fprintf (stderr, "dpool: out of memory reading input\n");
            exit (EXIT_POOL_ERROR);
        }
        fprintf (stderr, "dpool: reading input: %s\n", strerror (errno));
        rc = dp_records_next (&in->records, &record, len);  //  what was read before
    }
    *later = rc == 2;
    return rc == 1 ? record : NULL;
}

static int
s_map_input (void *arg, const void **data, size_t *len)
{
    input_t *in = (input_t *) arg;     //  the first member of cli_t
    bool later;
    const char *record = s_next_record (in, len, &later);
    if (!record)
        return later ? 2 : 0;
    *data = record;
    in->items++;
    return 1;
}

//  --------------------------------------------------------------------------
//  Output

//  What `dpool map` prints on stdout for a failed item (--on-error)
typedef enum {
    ON_ERROR_SKIP,              //  nothing: its line is missing (the default)
    ON_ERROR_EMPTY,             //  an empty line
    ON_ERROR_TEXT               //  "dpool: KIND: MESSAGE" on one line
} on_error_t;

typedef struct {
    on_error_t on_error;        //  a failed item's line on stdout
    bool index;                 //  prefix each output line with its index
    bool progress;              //  draw a progress bar on stderr
    bool bar_shown;             //  a bar is on the terminal line now
    bool stdout_tty;            //  results share the terminal with the bar
    int64_t next_draw_ms;
    uint64_t failed;
} output_t;

//  The one context both callbacks get.
typedef struct {
    input_t in;
    output_t out;
} cli_t;

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Take the progress bar off the terminal line (before other output).
static void
s_bar_clear (output_t *out)
{
    if (out->bar_shown) {
        fputs ("\r\033[K", stderr);
        out->bar_shown = false;
    }
}

//  A count or rate in short form: 950, 12.3k, 4.56M.
static void
s_human (char *buf, size_t size, double value)
{
    if (value >= 1e9)
        snprintf (buf, size, "%.2fG", value / 1e9);
    else
    if (value >= 1e6)
        snprintf (buf, size, "%.2fM", value / 1e6);
    else
    if (value >= 1e4)
        snprintf (buf, size, "%.1fk", value / 1e3);
    else
        snprintf (buf, size, "%.0f", value);
}

//  Draw the bar: done/total, rate and ETA once the total is known (the
//  input has ended), else the count and the rate.
static void
s_bar_draw (output_t *out, dp_iter_t *it, bool final)
{
    dp_progress_t p;
    if (dp_iter_progress (it, &p) != 0)
        return;
    char rate [32], done [32], line [200];
    s_human (rate, sizeof rate, p.rate);
    s_human (done, sizeof done, (double) p.done);
    if (p.total_known && p.total > 0) {
        char bar [31];
        int fill = (int) (30.0 * (double) p.done / (double) p.total);
        for (int i = 0; i < 30; i++)
            bar [i] = i < fill ? '#' : '.';
        bar [30] = 0;
        char eta [32] = "--:--";
        if (final)
            snprintf (eta, sizeof eta, "in %.1fs", p.elapsed_s);
        else
        if (p.eta_s >= 0)
            snprintf (eta, sizeof eta, "ETA %d:%02d", (int) p.eta_s / 60, (int) p.eta_s % 60);
        snprintf (line, sizeof line, "\r[%s] %3d%% %llu/%llu %s/s %s", bar,
                  (int) (100.0 * (double) p.done / (double) p.total),
                  (unsigned long long) p.done, (unsigned long long) p.total, rate, eta);
    }
    else
        snprintf (line, sizeof line, "\r%s done, %s/s, reading input", done, rate);
    fputs (line, stderr);
    fputs (final ? "\033[K\n" : "\033[K", stderr);
    out->bar_shown = !final;
    out->next_draw_ms = s_now_ms () + PROGRESS_MS;
}

//  Write `len` bytes of a result; with --index each line gets the prefix.
//  Only this thread writes to stdout: the unlocked stdio calls save a lock
//  per call, which shows at millions of lines a second.
static void
s_write (output_t *out, uint64_t index, const char *data, size_t len, bool newline)
{
    if (!out->index) {
        fwrite_unlocked (data, 1, len, stdout);
        if (newline)
            fputc_unlocked ('\n', stdout);
        return;
    }
    char prefix [24];
    int plen = snprintf (prefix, sizeof prefix, "%llu\t", (unsigned long long) index);
    size_t at = 0;
    do {
        const char *eol = (const char *) memchr (data + at, '\n', len - at);
        size_t line = eol ? (size_t) (eol - data) - at + 1 : len - at;
        fwrite_unlocked (prefix, 1, (size_t) plen, stdout);
        fwrite_unlocked (data + at, 1, line, stdout);
        at += line;
    } while (at < len);
    if (newline)
        fputc_unlocked ('\n', stdout);
}

static void
s_output (output_t *out, const dp_result_t *r)
{
    if (out->stdout_tty)
        s_bar_clear (out);
    if (r->status == DP_OK) {
        s_write (out, r->index, (const char *) r->data, r->len, true);
        return;
    }
    out->failed++;
    const char *text = (const char *) r->data;
    size_t text_len = strnlen (text, r->len);
    //  the kind, unless the message already starts with it ("worker died: ...")
    const char *kind = dp_status_name (r->status);
    bool named = strncmp (text, kind, strnlen (kind, 64)) == 0;
    if (out->on_error == ON_ERROR_EMPTY)
        s_write (out, r->index, "", 0, true);
    else
    if (out->on_error == ON_ERROR_TEXT) {
        //  one line, whatever the message holds
        char line [DP_LINE_MAX];
        int len = snprintf (line, sizeof line, "dpool: %s%s%.*s", named ? "" : kind,
                            named ? "" : ": ", (int) text_len, text);
        len = len < 0 ? 0 : len >= (int) sizeof line ? (int) sizeof line - 1 : len;
        for (int i = 0; i < len; i++)
            if (line [i] == '\n' || line [i] == '\r' || line [i] == 0)
                line [i] = ' ';
        s_write (out, r->index, line, (size_t) len, true);
    }
    fflush (stdout);
    s_bar_clear (out);
    fprintf (stderr, "dpool: item %llu (line %llu): %s%s%.*s\n", (unsigned long long) r->index,
             (unsigned long long) r->index + 1, named ? "" : kind, named ? "" : ": ",
             (int) text_len, text);
}

//  Take every result of the job and print it. Returns 0 at the end, -1 on
//  a pool error (reason on stderr), 1 when interrupted by a signal, 2 when
//  stdout fails.
static int
s_run_job (dp_iter_t *it, output_t *out)
{
    while (true) {
        dp_result_t r;
        int rc = dp_iter_next (it, &r, out->progress ? PROGRESS_MS : 500);
        if (s_interrupted) {
            s_bar_clear (out);
            return 1;
        }
        if (rc == 1) {
            s_output (out, &r);
            if (ferror_unlocked (stdout))
                return 2;           //  e.g. a closed pipe: stop the job
        }
        else
        if (rc != DP_TIMEOUT) {
            if (out->progress && rc == 0)
                s_bar_draw (out, it, true);
            s_bar_clear (out);
            if (rc < 0)
                fprintf (stderr, "dpool: %s\n", dp_strerror_last ());
            return rc < 0 ? -1 : 0;
        }
        if (out->progress && s_now_ms () >= out->next_draw_ms)
            s_bar_draw (out, it, false);
    }
}

//  --------------------------------------------------------------------------
//  Main

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: dpool map [OPTION]... TASK\n"
        "       dpool run [OPTION]... [COMMAND [ARG]...] [::: ARGS]...  (dpool run --help)\n"
        "       dpool status [-b EP] [--json]                        (dpool status --help)\n"
        "\n"
        "  map TASK      apply TASK (from a task module) to every input line; results\n"
        "                go to stdout one per line, in input order\n"
        "  run COMMAND   GNU parallel's interface: run COMMAND per input\n"
        "  status        show a broker's nodes, workers, jobs and counters\n"
        "  keygen PATH   write a CURVE key pair: PATH (public) and PATH_secret\n"
        "\n"
        "Options of dpool map:\n"
        "  -b, --broker EP      use the broker at EP (default: $DPOOL_BROKER, else the\n"
        "                       running broker of the server directory, else an\n"
        "                       embedded pool with local workers; with -j or -m the\n"
        "                       pool is embedded even when $DPOOL_BROKER is set)\n"
        "  -j, --jobs N         embedded pool: worker processes (default or 0: one per\n"
        "                       usable CPU: affinity mask and cgroup quota, as nproc)\n"
        "  -m, --module MODULE  embedded pool: task module (path, or NAME for\n"
        "                       libdpool_NAME.so); repeatable\n"
        "  -0, --null           items are separated by NUL bytes, not newlines\n"
        "  -u, --unordered      print results as they arrive, not in input order\n"
        "      --index          prefix each output line with its item's 0-based\n"
        "                       index and a tab\n"
        "      --on-error MODE  map: what stdout gets for a failed item (its reason\n"
        "                       goes to stderr in every mode): skip (the default:\n"
        "                       no line), empty (an empty line) or error-text (the\n"
        "                       line \"dpool: KIND: MESSAGE\"); empty and error-text\n"
        "                       keep output line N for input line N\n"
        "      --progress       draw a progress bar (rate, ETA) on stderr; the\n"
        "                       default when stderr is a terminal\n"
        "      --no-progress    no progress bar\n"
        "      --chunksize N    items per chunk (default: automatic)\n"
        "      --max-attempts N times an item may kill a worker before it fails (3)\n"
        "      --task-timeout T kill an item running longer than T seconds (e.g. 2.5),\n"
        "                       or T%% of the median item time (e.g. 300%%); it fails\n"
        "                       \"timed out after T s\"\n"
        "      --mem-limit MB   embedded pool: each worker's address-space limit\n"
        "      --max-tasks-per-child N  embedded pool: replace a worker after N items\n"
        "      --init ARGS      embedded pool: arguments for the modules' initializers\n"
        "      --broker-timeout MS  broker silence before giving up (default 3000;\n"
        "                       --timeout is an old name of it)\n"
        "      --curve-secret FILE  our secret key file (PATH_secret of dpool keygen)\n"
        "      --broker-key FILE    the broker's public key file: with --curve-secret,\n"
        "                       CURVE authentication and encryption. Without both,\n"
        "                       the server directory's keys ($DPOOL_SERVER_DIR, default\n"
        "                       ~/.dpool/server) when it lists the broker's endpoint\n"
        "  -h, --help           show this help and exit\n"
        "  -V, --version        show the version and exit\n"
        "\n"
        "Exit status: 0 all items succeeded, 1 some failed (reasons on stderr),\n"
        "2 the pool failed (unknown task, broker unreachable), 64 usage error,\n"
        "130 interrupted (Ctrl-C: the job is cancelled).\n");
}

//  --task-timeout: seconds ("2.5", 0.001 to 1000000) or a percentage of
//  the median ("300%", 1% to 1000000%). Returns 0 or -1.
static int
s_task_timeout (const char *arg, dp_job_opts_t *opts)
{
    char number [64];
    size_t len = strlen (arg);
    bool pct = len > 0 && arg [len - 1] == '%';
    if (pct) {
        if (len - 1 >= sizeof number)
            return -1;
        memcpy (number, arg, len - 1);
        number [len - 1] = 0;
    }
    double value;
    if (dp_opt_decimal (pct ? number : arg, pct ? 1 : 0.001, 1e6, &value))
        return -1;
    if (pct)
        opts->timeout_pct = (uint32_t) value;
    else
        opts->timeout_ms = (uint32_t) (value * 1000 + 0.5);
    return 0;
}

//  dpool keygen PATH: a new CURVE key pair in PATH and PATH_secret.
static int
s_keygen (int argc, char *argv [])
{
    if (argc == 2 && (!strcmp (argv [1], "-h") || !strcmp (argv [1], "--help"))) {
        printf ("Usage: dpool keygen PATH\n"
                "Write a new CURVE key pair: PATH (the public key, to give to the broker's\n"
                "allow-list directory or to its peers) and PATH_secret (both keys, mode\n"
                "0600, for --curve-secret). CZMQ certificate format; existing files are\n"
                "not overwritten.\n");
        return 0;
    }
    if (argc != 2 || argv [1][0] == '-') {
        fprintf (stderr, "dpool keygen: expected one PATH (dpool keygen PATH)\n");
        return EXIT_USAGE;
    }
    char err [512];
    if (dp_curve_keygen (argv [1], err, sizeof err)) {
        fprintf (stderr, "dpool keygen: %s\n", err);
        return EXIT_POOL_ERROR;
    }
    return 0;
}

//  A whole-number option value in [min, max] (dp_opt.h), or a usage error.
static long
s_number (const char *arg, const char *what, long min, long max)
{
    uint64_t value;
    if (dp_opt_uint (arg, (uint64_t) min, (uint64_t) max, &value)) {
        fprintf (stderr, "dpool: invalid %s '%s' (a whole number, %ld..%ld)\n", what, arg, min, max);
        exit (EXIT_USAGE);
    }
    return (long) value;
}

int
main (int argc, char *argv [])
{
    static const struct option longopts [] = {
        { "broker", required_argument, NULL, 'b' },
        { "jobs", required_argument, NULL, 'j' },
        { "module", required_argument, NULL, 'm' },
        { "null", no_argument, NULL, '0' },
        { "chunksize", required_argument, NULL, 'C' },
        { "max-attempts", required_argument, NULL, 'A' },
        { "timeout", required_argument, NULL, 'T' },
        { "broker-timeout", required_argument, NULL, 'T' },
        { "task-timeout", required_argument, NULL, 'K' },
        { "mem-limit", required_argument, NULL, 'M' },
        { "max-tasks-per-child", required_argument, NULL, 'X' },
        { "init", required_argument, NULL, 'G' },
        { "unordered", no_argument, NULL, 'u' },
        { "index", no_argument, NULL, 'I' },
        { "on-error", required_argument, NULL, 'E' },
        { "progress", no_argument, NULL, 'P' },
        { "no-progress", no_argument, NULL, 'N' },
        { "curve-secret", required_argument, NULL, 'S' },
        { "broker-key", required_argument, NULL, 'B' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    if (argc < 2) {
        s_usage (stderr);
        return EXIT_USAGE;
    }
    if (!strcmp (argv [1], "-h") || !strcmp (argv [1], "--help")) {
        s_usage (stdout);
        return 0;
    }
    if (!strcmp (argv [1], "-V") || !strcmp (argv [1], "--version")) {
        printf ("dpool %s\n", DPOOL_VERSION_STRING);
        return 0;
    }
    if (!strcmp (argv [1], "status"))
        return dp_status_main (argc - 1, argv + 1);
    if (!strcmp (argv [1], "keygen"))
        return s_keygen (argc - 1, argv + 1);
    if (!strcmp (argv [1], "run"))
        return run_main (argc - 1, argv + 1);
    if (strcmp (argv [1], "map")) {
        fprintf (stderr, "dpool: unknown command '%s' (map, run or status; see dpool --help)\n", argv [1]);
        return EXIT_USAGE;
    }
    dp_pool_opts_t popts = { 0 };
    dp_job_opts_t jopts = { 0 };
    const char *modules [MAX_MODULES];
    char delim = '\n';
    int progress = -1;          //  -1: when stderr is a terminal
    bool unordered = false, index = false;
    on_error_t on_error = ON_ERROR_SKIP;
    int c;
    optind = 2;
    while ((c = getopt_long (argc, argv, "+b:j:m:0uhV", longopts, NULL)) != -1) {
        switch (c) {
            case 'b': popts.endpoint = optarg; break;
            case 'j': popts.workers = (int) s_number (optarg, "worker count", 0, 1000);
                      popts.mode = DP_POOL_EMBEDDED; break;
            case 'm':
                if (popts.nmodules == MAX_MODULES) {
                    fprintf (stderr, "%s: more than %d modules\n", "dpool", MAX_MODULES);
                    return EXIT_USAGE;
                }
                modules [popts.nmodules++] = optarg;
                break;
            case '0': delim = 0; break;
            case 'C': jopts.chunksize = (uint32_t) s_number (optarg, "chunk size", 1, 65536); break;
            case 'A': jopts.max_attempts = (uint32_t) s_number (optarg, "attempts", 1, 1000); break;
            case 'T': popts.timeout_ms = (int) s_number (optarg, "timeout", 100, 86400000); break;
            case 'K':
                if (s_task_timeout (optarg, &jopts) != 0) {
                    fprintf (stderr, "dpool: invalid --task-timeout '%s' (seconds 0.001..1000000, "
                             "or a percentage of the median 1%%..1000000%%)\n", optarg);
                    return EXIT_USAGE;
                }
                break;
            case 'M': popts.mem_limit_mb = (uint32_t) s_number (optarg, "memory limit", 16, 1 << 22); break;
            case 'X': popts.max_tasks_per_child = (uint32_t) s_number (optarg, "tasks per child", 1, 2000000000); break;
            case 'G': popts.init_args = optarg; break;
            case 'S': popts.curve_secret = optarg; break;
            case 'B': popts.broker_key = optarg; break;
            case 'u': unordered = true; break;
            case 'I': index = true; break;
            case 'E':
                if (!strcmp (optarg, "skip"))
                    on_error = ON_ERROR_SKIP;
                else
                if (!strcmp (optarg, "empty"))
                    on_error = ON_ERROR_EMPTY;
                else
                if (!strcmp (optarg, "error-text"))
                    on_error = ON_ERROR_TEXT;
                else {
                    fprintf (stderr, "dpool: invalid --on-error '%s' (skip, empty or error-text)\n", optarg);
                    return EXIT_USAGE;
                }
                break;
            case 'P': progress = 1; break;
            case 'N': progress = 0; break;
            case 'h': s_usage (stdout); return 0;
            case 'V': printf ("dpool %s\n", DPOOL_VERSION_STRING); return 0;
            default: s_usage (stderr); return EXIT_USAGE;
        }
    }
    if (!popts.curve_secret != !popts.broker_key) {
        fprintf (stderr, "dpool: --curve-secret and --broker-key go together\n");
        return EXIT_USAGE;
    }
    popts.modules = modules;
    if (popts.nmodules)
        popts.mode = DP_POOL_EMBEDDED;  //  -m / -j: never sent to $DPOOL_BROKER
    if (popts.endpoint)
        popts.mode = DP_POOL_REMOTE;    //  -b: the broker named
    cli_t cli = { .out = { .index = index, .on_error = on_error,
                           .progress = progress < 0 ? isatty (2) : progress,
                           .stdout_tty = isatty (1) && isatty (2) } };
    input_t in = cli.in;
    const char *task;
    if (argc - optind != 1) {
        fprintf (stderr, "dpool map: expected one TASK name (see dpool --help)\n");
        return EXIT_USAGE;
    }
    task = argv [optind];
    if (dp_records_init (&in.records, 0, delim)) {
        fprintf (stderr, "dpool: out of memory\n");
        return EXIT_POOL_ERROR;
    }
    cli.in = in;
    fcntl (0, F_SETFL, fcntl (0, F_GETFL) | O_NONBLOCK);
    jopts.has_input_fd = true;
    jopts.input_fd = 0;
    signal (SIGINT, s_on_signal);
    signal (SIGTERM, s_on_signal);
    signal (SIGPIPE, SIG_IGN);

    dp_pool_t *pool = dp_pool_open (&popts);
    if (!pool) {
        fprintf (stderr, "dpool: %s\n", dp_strerror_last ());
        fcntl (0, F_SETFL, fcntl (0, F_GETFL) & ~O_NONBLOCK);
        dp_records_destroy (&cli.in.records);
        return s_interrupted ? EXIT_INTERRUPTED : EXIT_POOL_ERROR;
    }
    dp_input_fn *input = s_map_input;
    dp_iter_t *it = unordered ? dp_imap_unordered (pool, task, &jopts, input, &cli)
                              : dp_imap (pool, task, &jopts, input, &cli);
    int rc = -1;
    if (it)
        rc = s_run_job (it, &cli.out);
    else
        fprintf (stderr, "dpool: %s\n", dp_strerror_last ());
    //  Interrupted or stdout gone: closing the pool says BYE, which cancels
    //  the job at the broker (nothing more is dispatched) in one message
    if (rc == 1)
        fprintf (stderr, "dpool: interrupted: job cancelled\n");
    dp_pool_close (&pool);
    dp_iter_destroy (&it);
    fcntl (0, F_SETFL, fcntl (0, F_GETFL) & ~O_NONBLOCK);
    if (fflush (stdout) != 0 || ferror (stdout)) {
        if (!s_interrupted)
            fprintf (stderr, "dpool: writing output: %s\n", strerror (errno));
        rc = -1;
    }
    dp_records_destroy (&cli.in.records);
    if (s_interrupted)
        return EXIT_INTERRUPTED;
    return rc < 0 ? EXIT_POOL_ERROR : cli.out.failed > 0 ? EXIT_FAILED_ITEMS : 0;
}
