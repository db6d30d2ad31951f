/*  =========================================================================
    dpool - the command line: `dpool map` and `dpool run`

    dpool map [-b EP] [-j N] [-m MODULE]... [-0] TASK
        items are the lines of stdin (NUL-separated with -0); results go to
        stdout one per line, in input order; a failed item's reason goes to
        stderr, the other results still come, and the exit status is 1.
    dpool run [-b EP] [-j N] [-0] -- COMMAND ARGS...
        runs COMMAND once per input line with {} replaced by the line (the
        line is appended when there is no {}), GNU parallel style, and
        prints each job's stdout in input order.

    Input is read lazily from a non-blocking buffer: the pool asks for
    items only while its window has room, so memory stays bounded however
    long the input stream is.
    =========================================================================
*/
#include "dpool.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_FAILED_ITEMS   1
#define EXIT_POOL_ERROR     2
#define EXIT_USAGE          64

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
    int fd;
    char delim;
    char *buf;
    size_t cap, start, end;     //  unread bytes are buf [start, end)
    bool eof;
    uint64_t items;
    //  `dpool run`: the command template
    char **argv;
    int argc;
    bool shell;
} input_t;

//  Next delimited record, or NULL when none is complete yet (*later set) or
//  at the end of input. The record stays valid until the next call.
static const char *
s_next_record (input_t *in, size_t *len, bool *later)
{
    *later = false;
    while (true) {
        char *at = (char *) memchr (in->buf + in->start, in->delim, in->end - in->start);
        if (at) {
            const char *record = in->buf + in->start;
            *len = (size_t) (at - record);
            in->start += *len + 1;
            return record;
        }
        if (in->eof) {
            if (in->start == in->end)
                return NULL;
            //  a last record without its delimiter
            const char *record = in->buf + in->start;
            *len = in->end - in->start;
            in->start = in->end;
            return record;
        }
        if (in->start > 0) {
            memmove (in->buf, in->buf + in->start, in->end - in->start);
            in->end -= in->start;
            in->start = 0;
        }
        if (in->end == in->cap) {
            in->cap *= 2;
            in->buf = (char *) realloc (in->buf, in->cap);
            if (!in->buf) {
                fprintf (stderr, "dpool: out of memory reading input\n");
                exit (EXIT_POOL_ERROR);
            }
        }
        ssize_t n = read (in->fd, in->buf + in->end, in->cap - in->end);
        if (n > 0)
            in->end += (size_t) n;
        else
        if (n == 0)
            in->eof = true;
        else
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *later = true;
            return NULL;
        }
        else
        if (errno != EINTR) {
            fprintf (stderr, "dpool: reading input: %s\n", strerror (errno));
            in->eof = true;
        }
    }
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
//  `dpool run`: commands for the built-in exec task

//  Does a template word need a shell (anything but plain words and {})?
static bool
s_needs_shell (const char *text)
{
    for (const char *p = text; *p; p++) {
        if (p [0] == '{' && p [1] == '}')
            p++;
        else
        if (strchr ("|&;<>()$`\\\"'*?[]#~!{}\n", *p))
            return true;
    }
    return false;
}

typedef struct {
    char *p;
    size_t len, cap;
} str_t;

static void
s_str_add (str_t *s, const char *data, size_t len)
{
    if (s->len + len + 1 > s->cap) {
        s->cap = (s->len + len + 1) * 2;
        s->p = (char *) realloc (s->p, s->cap);
        if (!s->p) {
            fprintf (stderr, "dpool: out of memory\n");
            exit (EXIT_POOL_ERROR);
        }
    }
    memcpy (s->p + s->len, data, len);
    s->len += len;
    s->p [s->len] = 0;
}

//  Can the line stand in a shell command without quotes?
static bool
s_shell_safe (const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isalnum ((unsigned char) line [i]) && !strchr ("_./:,+@^=-", line [i]))
            return false;
    return len > 0;
}

//  Append text with every {} replaced by `line` (quoted for the shell when
//  `quote`). Returns whether a {} was found.
static bool
s_substitute (str_t *out, const char *text, const char *line, size_t len, bool quote)
{
    bool found = false;
    const char *at;
    while ((at = strstr (text, "{}"))) {
        s_str_add (out, text, (size_t) (at - text));
        if (quote && !s_shell_safe (line, len)) {
            //  like GNU parallel, quote only a line that needs it
            s_str_add (out, "'", 1);
            for (size_t i = 0; i < len; i++)
                if (line [i] == '\'')
                    s_str_add (out, "'\\''", 4);
                else
                    s_str_add (out, line + i, 1);
            s_str_add (out, "'", 1);
        }
        else
            s_str_add (out, line, len);
        text = at + 2;
        found = true;
    }
    s_str_add (out, text, strlen (text));
    return found;
}

//  No-shell mode: split the template's words on blanks ("echo {}" given as
//  one argument is two words), so each becomes one argv entry.
static void
s_split_words (input_t *in)
{
    char **words = (char **) calloc (1, sizeof (char *));
    int count = 0;
    for (int i = 0; i < in->argc; i++) {
        char *copy = strdup (in->argv [i]), *save = NULL;
        for (char *w = strtok_r (copy, " \t", &save); w; w = strtok_r (NULL, " \t", &save)) {
            words = (char **) realloc (words, sizeof (char *) * (size_t) (count + 2));
            words [count++] = w;
        }
    }
    in->argv = words;
    in->argc = count;
}

static int
s_run_input (void *arg, const void **data, size_t *len)
{
    input_t *in = (input_t *) arg;     //  the first member of cli_t
    static str_t item;
    size_t line_len;
    bool later;
    const char *line = s_next_record (in, &line_len, &later);
    if (!line)
        return later ? 2 : 0;
    item.len = 0;
    bool found = false;
    if (in->shell) {
        s_str_add (&item, "s", 1);
        for (int i = 0; i < in->argc; i++) {
            if (i)
                s_str_add (&item, " ", 1);
            found |= s_substitute (&item, in->argv [i], line, line_len, true);
        }
        if (!found) {
            s_str_add (&item, " ", 1);
            s_substitute (&item, "{}", line, line_len, true);
        }
    }
    else {
        s_str_add (&item, "a", 1);
        for (int i = 0; i < in->argc; i++) {
            if (i)
                s_str_add (&item, "", 1);   //  the NUL separator
            found |= s_substitute (&item, in->argv [i], line, line_len, false);
        }
        if (!found) {
            s_str_add (&item, "", 1);
            s_str_add (&item, line, line_len);
        }
    }
    *data = item.p;
    *len = item.len;
    in->items++;
    return 1;
}

//  --------------------------------------------------------------------------
//  Output

typedef struct {
    bool run;                   //  exec results: stdout after the message
    uint64_t failed;
} output_t;

//  The one context both callbacks get.
typedef struct {
    input_t in;
    output_t out;
} cli_t;

static int
s_output (void *arg, uint64_t index, dp_status_t status, const void *data, size_t len)
{
    output_t *out = &((cli_t *) arg)->out;
    if (status == DP_OK) {
        fwrite (data, 1, len, stdout);
        if (!out->run)
            fputc ('\n', stdout);
        return 0;
    }
    out->failed++;
    const char *text = (const char *) data;
    size_t text_len = strnlen (text, len);
    if (out->run && status == DP_ERR_TASK && text_len < len)
        fwrite (text + text_len + 1, 1, len - text_len - 1, stdout);
    fflush (stdout);
    fprintf (stderr, "dpool: item %llu (line %llu): %s: %.*s\n", (unsigned long long) index,
             (unsigned long long) index + 1, dp_status_name (status), (int) text_len, text);
    return 0;
}

//  --------------------------------------------------------------------------
//  Main

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: dpool map [OPTION]... TASK\n"
        "       dpool run [OPTION]... -- COMMAND [ARG]...\n"
        "Parallel map over the lines of standard input, multiprocessing.Pool style.\n"
        "\n"
        "  map TASK      apply TASK (from a task module) to every input line; results\n"
        "                go to stdout one per line, in input order\n"
        "  run COMMAND   run COMMAND per input line, {} replaced by the line (appended\n"
        "                if there is no {}); each job's stdout is printed in input order.\n"
        "                Commands without shell syntax run without a shell.\n"
        "\n"
        "Options:\n"
        "  -b, --broker EP      use the broker at EP (default: $DPOOL_BROKER, else an\n"
        "                       embedded pool with local workers)\n"
        "  -j, --jobs N         embedded pool: worker processes (default: CPUs)\n"
        "  -m, --module MODULE  embedded pool: task module (path, or NAME for\n"
        "                       libdpool_NAME.so); repeatable\n"
        "  -0, --null           items are separated by NUL bytes, not newlines\n"
        "      --chunksize N    items per chunk (default: automatic)\n"
        "      --max-attempts N times an item may kill a worker before it fails (3)\n"
        "      --timeout MS     broker silence before giving up (default 3000)\n"
        "  -h, --help           show this help and exit\n"
        "  -V, --version        show the version and exit\n"
        "\n"
        "Exit status: 0 all items succeeded, 1 some failed (reasons on stderr),\n"
        "2 the pool failed (unknown task, broker unreachable), 64 usage error.\n");
}

static long
s_number (const char *arg, const char *what, long min, long max)
{
    char *end;
    long value = strtol (arg, &end, 10);
    if (*arg == 0 || *end != 0 || value < min || value > max) {
        fprintf (stderr, "dpool: invalid %s '%s' (%ld..%ld)\n", what, arg, min, max);
        exit (EXIT_USAGE);
    }
    return value;
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
    bool run = !strcmp (argv [1], "run");
    if (!run && strcmp (argv [1], "map")) {
        fprintf (stderr, "dpool: unknown command '%s' (map or run; see dpool --help)\n", argv [1]);
        return EXIT_USAGE;
    }
    dp_pool_opts_t popts = { 0 };
    dp_job_opts_t jopts = { 0 };
    const char **modules = (const char **) calloc ((size_t) argc, sizeof (char *));
    char delim = '\n';
    int c;
    optind = 2;
    while ((c = getopt_long (argc, argv, "+b:j:m:0hV", longopts, NULL)) != -1) {
        switch (c) {
            case 'b': popts.endpoint = optarg; break;
            case 'j': popts.workers = (int) s_number (optarg, "worker count", 1, 1000); break;
            case 'm': modules [popts.nmodules++] = optarg; break;
            case '0': delim = 0; break;
            case 'C': jopts.chunksize = (uint32_t) s_number (optarg, "chunk size", 1, 65536); break;
            case 'A': jopts.max_attempts = (uint32_t) s_number (optarg, "attempts", 1, 1000); break;
            case 'T': popts.timeout_ms = (int) s_number (optarg, "timeout", 100, 86400000); break;
            case 'h': s_usage (stdout); return 0;
            case 'V': printf ("dpool %s\n", DPOOL_VERSION_STRING); return 0;
            default: s_usage (stderr); return EXIT_USAGE;
        }
    }
    popts.modules = modules;
    cli_t cli = { .in = { .fd = 0, .delim = delim, .cap = 1 << 16 }, .out = { .run = run } };
    input_t in = cli.in;
    const char *task = "exec";
    if (run) {
        in.argv = argv + optind;
        in.argc = argc - optind;
        if (in.argc < 1) {
            fprintf (stderr, "dpool run: no command given (dpool run -- COMMAND ARGS...)\n");
            return EXIT_USAGE;
        }
        for (int i = 0; i < in.argc; i++)
            in.shell |= s_needs_shell (in.argv [i]);
        if (!in.shell)
            s_split_words (&in);
    }
    else {
        if (argc - optind != 1) {
            fprintf (stderr, "dpool map: expected one TASK name (see dpool --help)\n");
            return EXIT_USAGE;
        }
        task = argv [optind];
    }
    in.buf = (char *) malloc (in.cap);
    cli.in = in;
    fcntl (0, F_SETFL, fcntl (0, F_GETFL) | O_NONBLOCK);
    jopts.has_input_fd = true;
    jopts.input_fd = 0;
    jopts.cancel = &s_interrupted;
    signal (SIGINT, s_on_signal);
    signal (SIGTERM, s_on_signal);
    signal (SIGPIPE, SIG_IGN);

    dp_pool_t *pool = dp_pool_open (&popts);
    if (!pool) {
        fprintf (stderr, "dpool: %s\n", dp_strerror_last ());
        fcntl (0, F_SETFL, fcntl (0, F_GETFL) & ~O_NONBLOCK);
        return EXIT_POOL_ERROR;
    }
    long rc = dp_map_stream (pool, task, &jopts, run ? s_run_input : s_map_input, s_output, &cli);
    if (rc < 0)
        fprintf (stderr, "dpool: %s\n", dp_strerror_last ());
    dp_pool_close (&pool);
    fcntl (0, F_SETFL, fcntl (0, F_GETFL) & ~O_NONBLOCK);
    if (fflush (stdout) != 0 || ferror (stdout)) {
        fprintf (stderr, "dpool: writing output: %s\n", strerror (errno));
        rc = -1;
    }
    free (cli.in.buf);
    free (modules);
    if (s_interrupted)
        return 130;
    return rc < 0 ? EXIT_POOL_ERROR : rc > 0 ? EXIT_FAILED_ITEMS : 0;
}
