/*  =========================================================================
    dp_run_args - `dpool run`'s command line, GNU parallel's syntax

    GNU parallel reads its options with Perl's Getopt::Long ("bundling",
    "require_order"): short options bundle (-kj2), long ones take their
    value as --name=V or --name V, and the first word that is not an option
    starts the command. This parser follows those rules. Every option name
    GNU parallel knows is in one of two tables: implemented here (with GNU
    parallel's meaning), or refused with exit status 255 and one line, so
    that a command line meant for GNU parallel never runs with a different
    meaning. dpool's own options (--broker, --broker-timeout, --resume-by,
    --max-attempts) use names GNU parallel does not have.
    =========================================================================
*/
#include "dp_run.h"
#include "dp_exec_msg.h"
#include "dp_cpus.h"
#include "dpool.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    O_ARG_FILE = 1, O_NULL, O_DELIM, O_COLSEP, O_HEADER, O_TRIM, O_NORUN, O_EOF,
    O_SKIPFIRST, O_MAXARGS, O_MAXREPL, O_X, O_M, O_XARGS, O_MAXCHARS, O_QUOTE, O_I, O_ER,
    O_BNR, O_DNR, O_BNER, O_SEQR, O_SLOTR, O_JOBS, O_KEEP, O_NOKEEP, O_GROUP,
    O_UNGROUP, O_LB, O_TAG, O_TAGSTR, O_DRY, O_SHELLQUOTE, O_HALT, O_TIMEOUT, O_RETRIES,
    O_JOBLOG, O_RESUME, O_RESUMEF, O_RETRYF, O_RESUMEBY, O_RESULTS, O_PIPE,
    O_BLOCK, O_RECSTART, O_RECEND, O_RRS, O_NICE, O_SLOTVAR, O_DELAY, O_TEE, O_TERMSEQ, O_PIPEPART, O_PROFILE, O_PLAIN, O_TMPDIR, O_REGEXP, O_SSHLOGIN, O_MAXLINE, O_NCPU_PRINT, O_CPU_UNIT, O_MAXLINES, O_BAR, O_ETA, O_PROGRESS, O_ENV,
    O_WD, O_VERBOSE, O_V, O_WILLCITE, O_SILENT, O_GNU, O_LINK, O_PLUS, O_ARGSEP, O_ARGFILESEP,
    O_HELP, O_VERSION, O_BROKER, O_BROKER_TIMEOUT, O_MAX_ATTEMPTS,
    O_CURVE_SECRET, O_BROKER_KEY
};

typedef struct {
    const char *names;          //  "|"-separated; one letter: a short option
    int id;
    bool arg;                   //  takes a value
} s_opt_t;

static const s_opt_t s_options [] = {
    { "a|arg-file|argfile", O_ARG_FILE, true },
    { "0|null", O_NULL, false },
    { "d|delimiter", O_DELIM, true },
    { "C|colsep|col-sep", O_COLSEP, true },
    { "header", O_HEADER, true },
    { "trim", O_TRIM, true },
    { "r|no-run-if-empty|norunifempty", O_NORUN, false },
    { "E", O_EOF, true },
    { "skip-first-line|skipfirstline", O_SKIPFIRST, false },
    { "n|max-args|maxargs", O_MAXARGS, true },
    { "N|max-replace-args|maxreplaceargs", O_MAXREPL, true },
    { "X", O_X, false },
    { "m", O_M, false },
    { "xargs", O_XARGS, false },
    { "s|max-chars|maxchars", O_MAXCHARS, true },
    { "q|quote", O_QUOTE, false },
    { "I", O_I, true },
    { "U|er|extensionreplace", O_ER, true },
    { "bnr|basenamereplace", O_BNR, true },
    { "dnr|dirnamereplace", O_DNR, true },
    { "bner|basenameextensionreplace", O_BNER, true },
    { "seqreplace", O_SEQR, true },
    { "slotreplace", O_SLOTR, true },
    { "j|P|jobs|max-procs|maxprocs", O_JOBS, true },
    { "k|keep-order|keeporder", O_KEEP, false },
    { "nok|no-k|no-keep-order|nokeeporder", O_NOKEEP, false },
    { "g|group", O_GROUP, false },
    { "u|ungroup", O_UNGROUP, false },
    { "lb|line-buffer|line-buffered|linebuffer|linebuffered", O_LB, false },
    { "tag", O_TAG, false },
    { "tagstring|tag-string", O_TAGSTR, true },
    { "dry-run|dryrun|dr", O_DRY, false },
    { "shellquote|shell-quote|shell_quote", O_SHELLQUOTE, false },
    { "halt|halt-on-error", O_HALT, true },
    { "timeout", O_TIMEOUT, true },
    { "delay", O_DELAY, true },
    { "termseq|term-seq", O_TERMSEQ, true },
    { "J|profile", O_PROFILE, true },
    { "plain", O_PLAIN, false },
    { "retries", O_RETRIES, true },
    { "joblog|jl", O_JOBLOG, true },
    { "resume", O_RESUME, false },
    { "resume-failed|resumefailed", O_RESUMEF, false },
    { "retry-failed|retryfailed", O_RETRYF, false },
    { "resume-by", O_RESUMEBY, true },
    { "results|result|res", O_RESULTS, true },
    { "pipe|spreadstdin", O_PIPE, false },
    { "pipe-part|pipepart", O_PIPEPART, false },
    { "tee", O_TEE, false },
    { "block|block-size|blocksize", O_BLOCK, true },
    { "recstart", O_RECSTART, true },
    { "recend", O_RECEND, true },
    { "rrs|remove-rec-sep|removerecsep", O_RRS, false },
    { "nice", O_NICE, true },
    { "process-slot-var|processslotvar", O_SLOTVAR, true },
    { "tmpdir|tempdir", O_TMPDIR, true },
    { "regexp|regex", O_REGEXP, false },
    { "S|sshlogin", O_SSHLOGIN, true },
    { "max-line-length-allowed|maxlinelengthallowed", O_MAXLINE, false },
    { "number-of-sockets|numberofsockets|number-of-cores|numberofcores|number-of-cpus"
      "|numberofcpus|number-of-threads|numberofthreads", O_NCPU_PRINT, false },
    { "use-sockets-instead-of-threads|usesocketsinsteadofthreads|use-cores-instead-of-threads"
      "|usecoresinsteadofthreads|use-cpus-instead-of-cores|usecpusinsteadofcores", O_CPU_UNIT, false },
    { "L", O_MAXLINES, true },
    { "bar", O_BAR, false },
    { "eta", O_ETA, false },
    { "progress", O_PROGRESS, false },
    { "env", O_ENV, true },
    { "W|wd|workdir|work-dir", O_WD, true },
    { "t|verbose", O_VERBOSE, false },
    { "v", O_V, false },
    { "will-cite|willcite|nn|nonotice|no-notice", O_WILLCITE, false },
    { "silent", O_SILENT, false },
    { "gnu", O_GNU, false },
    { "link|xapply", O_LINK, false },
    { "plus", O_PLUS, false },
    { "arg-sep|argsep", O_ARGSEP, true },
    { "arg-file-sep|argfilesep", O_ARGFILESEP, true },
    { "h|help", O_HELP, false },
    { "V|version", O_VERSION, false },
    //  dpool's own
    { "b|broker", O_BROKER, true },
    { "broker-timeout", O_BROKER_TIMEOUT, true },
    { "max-attempts", O_MAX_ATTEMPTS, true },
    { "curve-secret", O_CURVE_SECRET, true },
    { "broker-key", O_BROKER_KEY, true },
    { NULL, 0, false }
};

//  GNU parallel options that dpool run does not implement (all names)
static const char *s_refused =
    "|D|debug|sql|sql-master|sqlmaster|sql-worker|sqlworker|sql-and-worker|sqlandworker"
    "|latest-line|latestline|ll|tmux|tmux-pane|tmuxpane|parens"
    "|i|replace|e|eof|ssh-delay|sshdelay|load|noswap"
    "|ctag|ctag-string|ctagstring|color|colour|color-failed"
    "|colour-failed|colorfailed|colourfailed|color-fail|colour-fail|colorfail|colourfail|cf"
    "|onall|nonall|filter-hosts|filterhosts|filter-host|sshloginfile|slf"
    "|controlmaster|M|ssh|transfer-file|transferfile|transfer-files|transferfiles|tf|return"
    "|trc|transfer|cleanup|basefile|bf|template|tmpl|B|ctrl-c|ctrlc|no-ctrl-c|no-ctrlc"
    "|noctrlc|rsync-opts|rsyncopts|use-compress-program|compress-program"
    "|usecompressprogram|compressprogram|use-decompress-program|decompress-program"
    "|usedecompressprogram|decompressprogram|compress|open-tty|o|tty|T|H|total-jobs"
    "|totaljobs|total|shuf|recordenv|record-env|tollef|linkinputsource"
    "|xapplyinputsource|bibtex|citation|memfree|memsuspend"
    "|csv|l|max-lines|maxlines|p|interactive"
    "|show-limits|showlimits|x|exit|semaphore|semaphore-timeout|semaphoretimeout|st"
    "|semaphore-name|semaphorename|id|fg|bg|wait|shebang|hashbang|Y|bug|round-robin"
    "|roundrobin|round|output-as-files"
    "|outputasfiles|files|block-timeout|blocktimeout|bt|cat|fifo"
    "|shard|bin|group-by|groupby|hgrp|hostgrp|hostgroup|hostgroups|embed|sem|w|z|Z|f|c|y"
    "|_pipe-means-argfiles|";

int
run_usage_error (const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    fputs ("dpool run: ", stderr);
    vfprintf (stderr, fmt, args);
    fputs ("; Try --help\n", stderr);
    va_end (args);
    return RUN_EXIT_ERROR;
}

void
run_usage (FILE *out)
{
    fprintf (out,
"Usage: dpool run [OPTION]... [COMMAND [ARG]...] [::: ARGS | :::: FILES]...\n"
"Run COMMAND once per input, GNU parallel style, on a dpool pool (local\n"
"workers, or a broker's nodes). Options have GNU parallel's meaning; GNU\n"
"parallel options not listed here are refused (exit 255). See docs/parallel.md.\n"
"\n"
"Input:  stdin lines, -a FILE, ::: ARGS, :::: FILES ('-': stdin); several\n"
"        sources: all combinations; :::+ / ::::+ / --link: linked\n"
"  -a, --arg-file FILE  -0, --null  -d, --delimiter D  -C, --colsep REGEXP\n"
"  --header :  --trim n|l|r|lr|rl  -r, --no-run-if-empty  -E EOF_STR\n"
"  --skip-first-line  --arg-sep S  --arg-file-sep S  --link\n"
"Replacement strings: {} {.} {/} {//} {/.} {#} {%%} {N} {N.} {N/} {N//} {N/.}\n"
"        {-N}, {colname} with --header; -I, --er, --bnr, --dnr, --bner,\n"
"        --seqreplace, --slotreplace STR. No replacement string: the\n"
"        arguments are appended. Substituted arguments are shell-quoted;\n"
"        -q, --quote quotes the command words too. No command: each input\n"
"        is a command line.\n"
"Arguments per job: -n, --max-args N  -N, --max-replace-args N  -m  -X  --xargs\n"
"        (-m, -X, --xargs: as many as fit in a command line, -s CHARS)\n"
"Running:\n"
"  -j, --jobs N|N%%|+N|-N|0  job slots (default or 0: one per usable CPU:\n"
"                       affinity mask and cgroup quota, as nproc)\n"
"  --use-cores-instead-of-threads, --use-sockets-instead-of-threads\n"
"                       -j's 100%% counts cores or sockets (--number-of-cores,\n"
"                       --number-of-sockets, --number-of-threads print them)\n"
"  -k, --keep-order     output in input order (always, but with -u and\n"
"                       --line-buffer)\n"
"  -g, --group          output per job, in input order (default); a job's\n"
"                       output over 1 MiB streams: written as it comes\n"
"                       while the job is the next due, else kept in a\n"
"                       temporary file under $TMPDIR until it is\n"
"  -u, --ungroup        write every job's output as it comes\n"
"  --line-buffer        write it in whole lines as they come (with -k: -g)\n"
"  --timeout S|N%%       kill a job after S seconds (or N%% of the median)\n"
"  --termseq SIG,MS,... signals (and waits) that kill it (TERM,200,TERM,100,\n"
"                       TERM,50,KILL,25)\n"
"  --retries N          run a failing job up to N times in all\n"
"  --delay S[auto]      start no job within S seconds of the last (auto: S\n"
"                       grows 30%% at each failure, shrinks 10%% at a success)\n"
"  --halt now|soon,fail|success|done=N|N%%  stop early\n"
"  --env NAME           pass $NAME to the jobs  --wd DIR  run jobs in DIR\n"
"  --nice N             run the jobs under nice -n N\n"
"  --process-slot-var NAME  set $NAME to the job slot less one ({%%} - 1)\n"
"  --pipe, --block SIZE, -N RECORDS, -L LINES, --recstart S, --recend S\n"
"        --regexp, --rrs, --header N|REGEXP\n"
"                       stdin cut into blocks of whole records, one per job\n"
"  --pipepart -a FILE [--block SIZE|-N]  FILE cut so, read a part at a time\n"
"  --pipe --tee ::: ARGS  all of stdin (up to 128 MiB) to each job\n"
"Output (each job's stdout, then its stderr on stderr, in input order):\n"
"  --tag  --tagstring STR  --dry-run  --shellquote  -t, --verbose  -v\n"
"  --bar  --eta  --progress  --plus (its replacement strings)\n"
"  --joblog FILE  --resume  --resume-failed  --retry-failed\n"
"  --tmpdir DIR         where later jobs' big output waits (default $TMPDIR)\n"
"dpool's own:\n"
"  -b, --broker EP      use the broker at EP (default: $DPOOL_BROKER, else\n"
"                       local workers; -j makes the pool local)\n"
"  --broker-timeout MS  broker silence before giving up (default 3000)\n"
"  --resume-by seq|content  with --resume: a job is done when its seq\n"
"                       (GNU parallel's) or its command text is in the joblog\n"
"  --max-attempts N     times a job may kill a worker before it fails (3)\n"
"  --curve-secret FILE  our CURVE secret key file (PATH_secret of dpool keygen)\n"
"  --broker-key FILE    the broker's public key file (with --curve-secret;\n"
"                       without both: the local server directory's keys)\n"
"  -h, --help  -V, --version\n"
"\n"
"Options are read first from GNU parallel's config files (~/.parallel/config,\n"
"~/.parallelrc, ...) or the --profile (-J) NAME files, then $PARALLEL;\n"
"--plain reads none.\n"
"Commands run with $PARALLEL_SHELL, else the shell dpool run was started\n"
"from (its nearest ancestor that is a shell), else $SHELL, else /bin/sh.\n"
"Exit status: 0 all jobs succeeded; 1-100 that many jobs failed; 101 more\n"
"than 100 failed; with --halt ...,fail=1 the failing job's status;\n"
"255 other errors (usage, pool); 130 interrupted.\n");
}

//  Does the "|"-separated list hold the `len` bytes of `name`?
static bool
s_in_list (const char *list, const char *name, size_t len)
{
    const char *p = list;
    while (p) {
        const char *bar = strchr (p, '|');
        size_t n = bar ? (size_t) (bar - p) : strlen (p);
        if (n == len && len && !strncmp (p, name, len))
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static const s_opt_t *
s_find (const char *name, size_t len)
{
    for (const s_opt_t *o = s_options; o->names; o++)
        if (s_in_list (o->names, name, len))
            return o;
    return NULL;
}

//  Usable CPUs: the affinity mask and the cgroup CPU quota, as nproc, by
//  the helper every program's -j 0 and default use (dp_cpus.h)
static int
s_cpus (void)
{
    return dp_cpu_count ();
}

//  A plain decimal number as GNU parallel takes it: digits with an
//  optional fraction, and a sign where `sign` allows one; strtod's
//  exponents, hex, inf and nan are refused. Returns the value with *end
//  after it, or NAN with *end = arg.
static double
s_number (const char *arg, char **end, bool sign)
{
    const char *p = arg;
    if (sign && (*p == '+' || *p == '-'))
        p++;
    size_t digits = strspn (p, "0123456789");
    if (p [digits] == '.')
        digits += 1 + strspn (p + digits + 1, "0123456789");
    if (digits == 0 || (digits == 1 && *p == '.')) {
        *end = (char *) arg;
        return NAN;
    }
    char *stop;
    double v = strtod (arg, &stop);
    if (stop != p + digits || !isfinite (v)) {
        *end = (char *) arg;            //  (400 digits: out of range)
        return NAN;
    }
    *end = stop;
    return v;
}

//  -j's value against `cpus` job slots for 100%: -1 if bad
static int
s_jobslots (const char *arg, int cpus)
{
    char *end;
    double v = s_number (arg, &end, true);
    if (end == arg || (*end != '%' && v != floor (v)))
        return -1;                  //  (GNU parallel: N, +N, -N or N%)
    int n;
    if (*end == '%' && end [1] == 0)
        n = (int) floor (cpus * v / 100.0);
    else
    if (*end)
        return -1;
    else
    if (arg [0] == '+' || arg [0] == '-')
        n = cpus + (int) v;
    else
    if (v == 0)
        n = cpus;           //  0: one per usable CPU, as -j 0 in every dpool program
    else
        n = (int) v;
    if (n < 1)
        n = 1;
    return n > 1000 ? 1000 : n;
}

//  A duration: seconds, or with s/m/h/d suffixes ("1m30s"). -1 if bad.
static double
s_duration (const char *arg)
{
    double total = 0;
    const char *p = arg;
    if (!*p)
        return -1;
    while (*p) {
        char *end;
        double v = s_number (p, &end, false);
        if (end == p)
            return -1;
        double unit = 1;
        switch (*end) {
            case 0: break;
            case 's': unit = 1; end++; break;
            case 'm': unit = 60; end++; break;
            case 'h': unit = 3600; end++; break;
            case 'd': unit = 86400; end++; break;
            default: return -1;
        }
        total += v * unit;
        p = end;
    }
    return total;
}

//  --termseq SIG,MS,SIG,MS,...: signals by name (TERM, SIGTERM) or
//  number, waits in ms (the last may be left out: 0). Returns 0 or -1.
static int
s_termseq (const char *arg, run_opts_t *o)
{
    static const struct { const char *name; int sig; } names [] = {
        { "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
        { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },
        { "TERM", SIGTERM }, { "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP },
        { "XCPU", SIGXCPU }, { "ABRT", SIGABRT }, { NULL, 0 }
    };
    o->ntermseq = 0;
    const char *p = arg;
    for (int i = 0; *p; i++) {
        size_t len = strcspn (p, ",");
        char word [32];
        if (len == 0 || len >= sizeof word)
            return -1;
        memcpy (word, p, len);
        word [len] = 0;
        char *end;
        long v = strtol (word, &end, 10);
        if (i % 2 == 0) {
            if (o->ntermseq == DP_EXEC_MAX_TERMSEQ)
                return -1;
            const char *name = strncmp (word, "SIG", 3) ? word : word + 3;
            int sig = 0;
            for (int k = 0; names [k].name && !sig; k++)
                if (!strcmp (name, names [k].name))
                    sig = names [k].sig;
            if (!sig && *end == 0 && end != word && v >= 1 && v <= 64)
                sig = (int) v;
            if (!sig)
                return -1;
            o->termseq [2 * o->ntermseq] = (uint32_t) sig;
            o->termseq [2 * o->ntermseq + 1] = 0;
            o->ntermseq++;
        }
        else {
            if (*end || end == word || v < 0 || v > 3600000)
                return -1;
            o->termseq [2 * o->ntermseq - 1] = (uint32_t) v;
        }
        p += len;
        if (*p == ',' && !*++p)
            return -1;              //  a trailing comma
    }
    return o->ntermseq ? 0 : -1;
}

//  A size: bytes, with k m g t (1000s) or K M G T (1024s). 0 if bad.
static size_t
s_size (const char *arg)
{
    char *end;
    double v = s_number (arg, &end, false);
    if (end == arg || v <= 0)
        return 0;
    const char *units = "kmgt", *bigunits = "KMGT";
    if (*end) {
        const char *u = strchr (units, *end), *U = strchr (bigunits, *end);
        if ((!u && !U) || end [1])
            return 0;
        int power = (int) ((u ? u - units : U - bigunits) + 1);
        v *= pow (u ? 1000.0 : 1024.0, power);
    }
    return v > 1e15 ? 0 : (size_t) v;
}

//  -d / --recend values: \n \t \0 \\ \r escapes as GNU parallel's
static char *
s_unescape (const char *arg, size_t *len)
{
    char *out = strdup (arg), *o = out;
    for (const char *p = arg; *p; p++) {
        if (*p == '\\' && p [1]) {
            p++;
            switch (*p) {
                case 'n': *o++ = '\n'; break;
                case 't': *o++ = '\t'; break;
                case 'r': *o++ = '\r'; break;
                case '0': *o++ = 0; break;
                case '\\': *o++ = '\\'; break;
                default: *o++ = '\\'; *o++ = *p; break;
            }
        }
        else
            *o++ = *p;
    }
    *o = 0;
    *len = (size_t) (o - out);
    return out;
}

static int
s_halt (const char *arg, run_opts_t *o)
{
    if (!strcmp (arg, "never") || !strcmp (arg, "0")) {
        o->halt_when = HALT_NEVER;
        return 0;
    }
    //  GNU parallel's old numeric forms
    if (!strcmp (arg, "1") || !strcmp (arg, "2")) {
        o->halt_when = arg [0] == '1' ? HALT_SOON : HALT_NOW;
        o->halt_why = HALT_FAIL;
        o->halt_value = 1;
        return 0;
    }
    const char *comma = strchr (arg, ',');
    if (!comma)
        return -1;
    size_t wlen = (size_t) (comma - arg);
    if (wlen == 3 && !strncmp (arg, "now", 3))
        o->halt_when = HALT_NOW;
    else
    if (wlen == 4 && !strncmp (arg, "soon", 4))
        o->halt_when = HALT_SOON;
    else
        return -1;
    const char *why = comma + 1;
    const char *eq = strchr (why, '=');
    if (!eq)
        return -1;
    size_t ylen = (size_t) (eq - why);
    if (ylen == 4 && !strncmp (why, "fail", 4))
        o->halt_why = HALT_FAIL;
    else
    if (ylen == 7 && !strncmp (why, "success", 7))
        o->halt_why = HALT_SUCCESS;
    else
    if (ylen == 4 && !strncmp (why, "done", 4))
        o->halt_why = HALT_DONE;
    else
        return -1;
    char *end;
    o->halt_value = s_number (eq + 1, &end, false);
    if (end == eq + 1 || o->halt_value <= 0)
        return -1;
    o->halt_pct = *end == '%';
    if (*end && (*end != '%' || end [1]))
        return -1;
    return 0;
}

static long
s_count (const char *arg, const char *name, long min)
{
    char *end;
    long v = strtol (arg, &end, 10);
    if (!*arg || *end || v < min || v > 100000000) {
        run_usage_error ("invalid value '%s' for %s", arg, name);
        return -1;
    }
    return v;
}

//  Apply one option. Returns -1 to go on, else the exit status.
static int
s_apply (run_opts_t *o, const s_opt_t *opt, const char *shown, const char *val)
{
    long n;
    switch (opt->id) {
        case O_ARG_FILE:
            if (o->nsources == RUN_MAX_SOURCES)
                return run_usage_error ("too many input sources");
            o->sources [o->nsources++] = (run_source_t) { .is_file = true, .path = val };
            break;
        case O_NULL: o->delim = 0; break;
        case O_DELIM: {
            size_t len;
            char *d = s_unescape (val, &len);
            if (len != 1) {
                free (d);
                return run_usage_error ("option %s: only a one-byte delimiter is supported", shown);
            }
            o->delim = d [0];
            free (d);
            break;
        }
        case O_COLSEP: o->colsep = val; break;
        case O_HEADER:
            //  (with --pipe: any; else only the first line, checked below)
            o->header = true;
            o->header_re = val;
            break;
        case O_TRIM:
            if (strcmp (val, "n") && strcmp (val, "l") && strcmp (val, "r")
            &&  strcmp (val, "lr") && strcmp (val, "rl"))
                return run_usage_error ("invalid value '%s' for --trim (n l r lr rl)", val);
            o->trim = val;
            break;
        case O_NORUN: o->no_run_if_empty = true; break;
        case O_EOF: o->eof_str = val; break;
        case O_SKIPFIRST: o->skip_first_line = true; break;
        case O_MAXARGS:
        case O_MAXREPL:
            if ((n = s_count (val, shown, 0)) < 0)
                return RUN_EXIT_ERROR;
            o->max_args = (int) n;
            o->max_replace = opt->id == O_MAXREPL || n == 0;   //  -n0 is -N0
            o->pipe_records = (int) n;
            break;
        case O_X: o->multi = 'X'; break;
        case O_M: o->multi = 'm'; break;
        case O_XARGS: o->multi = 'x'; break;
        case O_MAXCHARS:
            if ((n = s_count (val, shown, 1)) < 0)
                return RUN_EXIT_ERROR;
            o->max_chars = (size_t) n;
            break;
        case O_QUOTE: o->quote = true; break;
        case O_I: o->repl [0] = val; break;
        case O_ER: o->repl [1] = val; break;
        case O_BNR: o->repl [2] = val; break;
        case O_DNR: o->repl [3] = val; break;
        case O_BNER: o->repl [4] = val; break;
        case O_SEQR: o->repl [5] = val; break;
        case O_SLOTR: o->repl [6] = val; break;
        case O_JOBS:
            if ((o->jobslots = s_jobslots (val, s_cpus ())) < 0)
                return run_usage_error ("invalid value '%s' for -j (N, N%%, +N, -N or 0)", val);
            o->jobs = val;
            break;
        case O_GROUP: o->output = RUN_OUT_GROUP; break;
        case O_UNGROUP: o->output = RUN_OUT_UNGROUP; break;
        case O_LB: o->output = RUN_OUT_LINE; break;
        case O_KEEP: o->keep_order = true; break;   //  (the default)
        case O_NOKEEP: o->keep_order = false; break;
        case O_WILLCITE: case O_SILENT: case O_GNU:
            break;
        case O_TAG: o->tag = true; break;
        case O_TAGSTR: o->tagstring = val; break;
        case O_DRY: o->dry_run = true; break;
        case O_SHELLQUOTE: o->shellquote++; o->dry_run = true; break;
        case O_HALT:
            if (s_halt (val, o) != 0)
                return run_usage_error ("invalid value '%s' for --halt (now|soon,fail|success|done=N|N%%)", val);
            break;
        case O_TIMEOUT: {
            char *end;
            double v = s_number (val, &end, false);
            if (end != val && *end == '%' && !end [1] && v > 0)
                o->timeout_pct = (uint32_t) v;
            else
            if ((o->timeout_s = s_duration (val)) <= 0)
                return run_usage_error ("invalid value '%s' for --timeout (seconds, or N%%)", val);
            break;
        }
        case O_PROFILE:
        case O_PLAIN:
            break;                  //  read before the options (s_profiles)
        case O_TERMSEQ:
            if (s_termseq (val, o) != 0)
                return run_usage_error ("invalid value '%s' for --termseq (SIGNAL,MS,SIGNAL,MS,...: "
                                        "at most %d signals)", val, DP_EXEC_MAX_TERMSEQ);
            break;
        case O_DELAY: {
            //  GNU parallel: a duration, "auto" after it adapts it
            size_t len = strlen (val);
            char *copy = strdup (val);
            if (!copy)
                return run_usage_error ("out of memory");
            o->delay_auto = len > 4 && strcmp (val + len - 4, "auto") == 0;
            if (o->delay_auto)
                copy [len - 4] = 0;
            o->delay_s = s_duration (copy);
            free (copy);
            if (o->delay_s < 0)
                return run_usage_error ("invalid value '%s' for --delay (seconds, 1m30s, ...auto)", val);
            break;
        }
        case O_RETRIES:
            if ((n = s_count (val, shown, 0)) < 0)
                return RUN_EXIT_ERROR;
            o->retries = (int) n;
            break;
        case O_JOBLOG: o->joblog = val; break;
        case O_RESUME: o->resume = true; break;
        case O_RESUMEF: o->resume_failed = true; break;
        case O_RETRYF: o->retry_failed = true; break;
        case O_RESUMEBY:
            if (strcmp (val, "seq") && strcmp (val, "content"))
                return run_usage_error ("invalid value '%s' for --resume-by (seq or content)", val);
            o->resume_by_content = !strcmp (val, "content");
            break;
        case O_RESULTS: {
            size_t len = strlen (val);
            if (len > 4 && (!strcmp (val + len - 4, ".csv") || !strcmp (val + len - 4, ".tsv")
                            || !strcmp (val + len - 5, ".json")))
                return run_usage_error ("option --results: .csv, .tsv and .json files are "
                                        "not supported");
            o->results = val;
            break;
        }
        case O_PIPE: o->pipe = true; break;
        case O_PIPEPART: o->pipe = o->pipepart = true; break;
        case O_TEE: o->tee = true; break;
        case O_BLOCK:
            //  -N (--pipepart): N parts per job slot
            if (val [0] == '-') {
                size_t parts = s_size (val + 1);
                if (parts == 0 || parts > 1000000)
                    return run_usage_error ("invalid value '%s' for --block (a size: 1M, 500k; "
                                            "-N with --pipepart)", val);
                o->block_parts = (int) parts;
                o->block_text = val;
            }
            else
            if ((o->block_size = s_size (val)) == 0)
                return run_usage_error ("invalid value '%s' for --block (a size: 1M, 500k)", val);
            else
                o->block_parts = 0;
            o->block_given = true;
            break;
        case O_RECSTART:
        case O_RECEND: {
            //  (kept for the whole run: run_opts_free)
            size_t len;
            char *text = s_unescape (val, &len);
            if (strlen (text) != len) {
                free (text);
                return run_usage_error ("option %s: a NUL byte is not supported", shown);
            }
            if (opt->id == O_RECSTART)
                o->recstart = text;
            else
                o->recend = text;
            break;
        }
        case O_MAXLINES:
            if ((n = s_count (val, shown, 1)) < 0)
                return RUN_EXIT_ERROR;
            o->pipe_records = (int) n;
            o->max_args = -1;       //  marks -L: only with --pipe
            break;
        case O_RRS: o->rrs = true; break;
        case O_REGEXP: o->regexp = true; break;
        case O_NICE: {
            char *end;
            long v = strtol (val, &end, 10);
            if (*end || end == val || v < -20 || v > 19)
                return run_usage_error ("invalid value '%s' for --nice (-20..19)", val);
            o->nice = (int) v;
            break;
        }
        case O_SLOTVAR:
            if (!dp_exec_var_name_ok (val))
                return run_usage_error ("invalid variable name '%s' for --process-slot-var", val);
            o->slotvar = val;
            break;
        case O_TMPDIR:
            //  where the spill file of later jobs' big output goes (GNU
            //  parallel: its temporary files)
            struct stat st;
            if (stat (val, &st) != 0 || !S_ISDIR (st.st_mode) || access (val, W_OK | X_OK) != 0)
                return run_usage_error ("--tmpdir '%s' is not a writable directory", val);
            o->tmpdir = val;
            break;
        case O_SSHLOGIN:
            //  ':' is the local machine; other hosts: a broker's nodes instead
            if (strcmp (val, ":"))
                return run_usage_error ("option -S is not supported but for ':' (use a "
                                        "broker and dpool-worker nodes)");
            break;
        case O_MAXLINE:
            //  GNU parallel's longest command line on Linux (RUN_MAX_LINE)
            printf ("130329\n");
            return 0;
        case O_NCPU_PRINT: {
            //  GNU parallel's counts (--number-of-cpus is its old name for cores)
            int sockets, cores, threads;
            dp_cpu_topology ("/sys/devices/system/cpu", 0, &sockets, &cores, &threads);
            printf ("%d\n", strstr (shown, "socket") ? sockets : strstr (shown, "thread") ? threads : cores);
            return 0;
        }
        case O_CPU_UNIT:
            //  what 100% of -j (and its default) counts
            o->cpu_unit = strstr (shown, "socket") ? 's' : 'c';
            break;
        case O_BAR: o->bar = true; break;
        case O_ETA: o->eta = true; break;
        case O_PROGRESS: o->progress = true; break;
        case O_ENV:
            if (!strcmp (val, "_"))
                return run_usage_error ("option --env _ (all variables) is not supported");
            if (o->nenv == RUN_MAX_ENV)
                return run_usage_error ("more than %d --env", RUN_MAX_ENV);
            o->env [o->nenv++] = val;
            break;
        case O_WD: o->workdir = val; break;
        case O_VERBOSE: o->verbose = true; break;
        case O_V: o->verbose_out = true; break;
        case O_LINK: o->link_all = true; break;
        case O_PLUS: o->plus = true; break;
        case O_HELP: run_usage (stdout); return 0;
        case O_VERSION: printf ("dpool %s\n", DPOOL_VERSION_STRING); return 0;
        case O_BROKER: o->broker = val; break;
        case O_BROKER_TIMEOUT:
            if ((n = s_count (val, shown, 100)) < 0)
                return RUN_EXIT_ERROR;
            o->broker_timeout_ms = (int) n;
            break;
        case O_MAX_ATTEMPTS:
            if ((n = s_count (val, shown, 1)) < 0)
                return RUN_EXIT_ERROR;
            o->max_attempts = (uint32_t) n;
            break;
        case O_CURVE_SECRET: o->curve_secret = val; break;
        case O_BROKER_KEY: o->broker_key = val; break;
        default: break;
    }
    return -1;
}

//  An option name nobody knows, or a GNU parallel option not implemented
static int
s_refuse (const char *dashes, const char *name, size_t len)
{
    if (s_in_list (s_refused, name, len))
        return run_usage_error ("option %s%.*s is not supported", dashes, (int) len, name);
    return run_usage_error ("unknown option %s%.*s", dashes, (int) len, name);
}

//  The separators: ::: :::+ :::: ::::+ (or --arg-sep / --arg-file-sep)
static int
s_separator (const char *word, const char *argsep, const char *filesep, bool *linked)
{
    size_t a = strlen (argsep), f = strlen (filesep);
    *linked = false;
    if (!strcmp (word, argsep))
        return 1;
    if (!strcmp (word, filesep))
        return 2;
    if (!strncmp (word, argsep, a) && word [a] == '+' && !word [a + 1]) {
        *linked = true;
        return 1;
    }
    if (!strncmp (word, filesep, f) && word [f] == '+' && !word [f + 1]) {
        *linked = true;
        return 2;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Profiles and $PARALLEL: options read before the command line's, as GNU
//  parallel reads them (its read_options): /etc/parallel/config, each
//  config folder's config and ~/.parallelrc, or the --profile (-J) files
//  instead; then $PARALLEL. --plain reads none.

//  Split a line into words as Perl's shellwords: blanks separate, '...'
//  is literal, "..." and a bare backslash escape one character. Returns 0,
//  or -1 for an unbalanced quote.
static int
s_shell_words (const char *line, run_strv_t *out)
{
    run_str_t word = { 0 };
    const char *p = line;
    int rc = 0;
    while (rc == 0) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        word.len = 0;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            if (*p == '\'') {
                const char *close = strchr (p + 1, '\'');
                if (!close) {
                    rc = -1;
                    break;
                }
                run_str_add (&word, p + 1, (size_t) (close - p - 1));
                p = close + 1;
            }
            else
            if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p [1])
                        p++;
                    run_str_add (&word, p++, 1);
                }
                if (*p != '"') {
                    rc = -1;
                    break;
                }
                p++;
            }
            else {
                if (*p == '\\' && p [1])
                    p++;
                run_str_add (&word, p++, 1);
            }
        }
        if (rc == 0)
            run_strv_add (out, word.p ? word.p : "", word.len);
    }
    free (word.p);
    return rc;
}

//  The option words of a profile file (comment lines skipped) onto `out`.
//  Returns 0, or -1 (printed).
static int
s_profile_read (const char *path, run_strv_t *out)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    while (rc == 0 && getline (&line, &cap, file) >= 0) {
        const char *p = line + strspn (line, " \t");
        if (*p == '#')
            continue;
        if (s_shell_words (line, out) != 0) {
            run_usage_error ("profile %s: a quote is not closed", path);
            rc = -1;
        }
    }
    free (line);
    fclose (file);
    return rc;
}

//  GNU parallel's config folders that exist: $PARALLEL_HOME,
//  $XDG_CONFIG_HOME/parallel, each of $XDG_CONFIG_DIRS/parallel,
//  ~/.parallel
static void
s_config_dirs (run_strv_t *dirs)
{
    char path [4096];
    struct stat st;
    const char *env = getenv ("PARALLEL_HOME");
    if (env && *env && stat (env, &st) == 0 && S_ISDIR (st.st_mode))
        run_strv_add (dirs, env, strlen (env));
    env = getenv ("XDG_CONFIG_HOME");
    if (env && *env) {
        snprintf (path, sizeof path, "%s/parallel", env);
        if (stat (path, &st) == 0 && S_ISDIR (st.st_mode))
            run_strv_add (dirs, path, strlen (path));
    }
    env = getenv ("XDG_CONFIG_DIRS");
    for (const char *p = env ? env : ""; *p; ) {
        size_t len = strcspn (p, ":");
        snprintf (path, sizeof path, "%.*s/parallel", (int) len, p);
        if (len && stat (path, &st) == 0 && S_ISDIR (st.st_mode))
            run_strv_add (dirs, path, strlen (path));
        p += len + (p [len] == ':');
    }
    env = getenv ("HOME");
    if (env && *env) {
        snprintf (path, sizeof path, "%s/.parallel", env);
        if (stat (path, &st) == 0 && S_ISDIR (st.st_mode))
            run_strv_add (dirs, path, strlen (path));
    }
}

//  --plain and the --profile names among the command line's options
//  (a light scan: values are skipped, nothing is applied)
static void
s_profile_scan (int argc, char *argv [], bool *plain, run_strv_t *names)
{
    for (int i = 1; i < argc; i++) {
        const char *word = argv [i];
        bool linked;
        if (word [0] != '-' || !word [1] || !strcmp (word, "--")
        ||  s_separator (word, ":::", "::::", &linked))
            return;
        if (word [1] == '-') {
            const char *name = word + 2, *eq = strchr (name, '=');
            size_t len = eq ? (size_t) (eq - name) : strlen (name);
            const s_opt_t *opt = s_find (name, len);
            if (!opt)
                return;
            const char *val = opt->arg ? (eq ? eq + 1 : i + 1 < argc ? argv [++i] : NULL) : NULL;
            if (opt->id == O_PLAIN)
                *plain = true;
            if (opt->id == O_PROFILE && val)
                run_strv_add (names, val, strlen (val));
            continue;
        }
        for (const char *p = word + 1; *p; p++) {
            const s_opt_t *opt = s_find (p, 1);
            if (!opt)
                return;
            if (opt->arg) {
                const char *val = p [1] ? p + 1 : i + 1 < argc ? argv [++i] : NULL;
                if (opt->id == O_PROFILE && val)
                    run_strv_add (names, val, strlen (val));
                break;
            }
        }
    }
}

//  The profiles' words onto o->profile_words; *nprofile of them are the
//  profiles', the rest $PARALLEL's. Returns 0, or -1 (printed).
static int
s_profiles (int argc, char *argv [], run_opts_t *o, size_t *nprofile)
{
    bool plain = false;
    run_strv_t names = { 0 }, dirs = { 0 };
    s_profile_scan (argc, argv, &plain, &names);
    int rc = 0;
    *nprofile = 0;
    if (!plain) {
        s_config_dirs (&dirs);
        char path [4200];
        if (names.n == 0) {
            rc |= s_profile_read ("/etc/parallel/config", &o->profile_words);
            for (size_t d = 0; d < dirs.n && rc == 0; d++) {
                snprintf (path, sizeof path, "%s/config", dirs.v [d]);
                rc |= s_profile_read (path, &o->profile_words);
            }
            const char *home = getenv ("HOME");
            if (home && *home && rc == 0) {
                snprintf (path, sizeof path, "%s/.parallelrc", home);
                rc |= s_profile_read (path, &o->profile_words);
            }
        }
        for (size_t n = 0; n < names.n && rc == 0; n++) {
            //  ./NAME and /NAME as they are, else in each config folder;
            //  one not found is passed over (GNU parallel's rule), said
            bool found = false;
            const char *name = names.v [n];
            if (name [0] == '/' || !strncmp (name, "./", 2)) {
                found = access (name, R_OK) == 0;
                if (found)
                    rc |= s_profile_read (name, &o->profile_words);
            }
            else
                for (size_t d = 0; d < dirs.n && rc == 0; d++) {
                    snprintf (path, sizeof path, "%s/%s", dirs.v [d], name);
                    if (access (path, R_OK) == 0) {
                        found = true;
                        rc |= s_profile_read (path, &o->profile_words);
                    }
                }
            if (!found)
                fprintf (stderr, "dpool run: warning: profile %s not found (passed over, "
                         "as GNU parallel does)\n", name);
        }
        *nprofile = o->profile_words.n;
        const char *env = getenv ("PARALLEL");
        if (rc == 0 && env && *env && s_shell_words (env, &o->profile_words) != 0) {
            run_usage_error ("$PARALLEL: a quote is not closed");
            rc = -1;
        }
    }
    run_strv_free (&names);
    run_strv_free (&dirs);
    return rc;
}

//  Apply the options at the start of argv [i..argc) (require_order: up to
//  the first word that is not one, or after "--"); *next is that word's
//  index. Returns -1 to go on, else an exit status (an error, or --help).
static int
s_parse_options (int argc, char *argv [], int i, run_opts_t *o,
                 const char **argsep_p, const char **filesep_p, int *next)
{
    const char *argsep = *argsep_p, *filesep = *filesep_p;
    while (i < argc) {
        const char *word = argv [i];
        bool linked;
        if (word [0] != '-' || !word [1])
            break;
        if (s_separator (word, argsep, filesep, &linked))
            break;
        i++;
        if (!strcmp (word, "--"))
            break;
        if (word [1] == '-') {
            const char *name = word + 2;
            const char *eq = strchr (name, '=');
            size_t len = eq ? (size_t) (eq - name) : strlen (name);
            const s_opt_t *opt = s_find (name, len);
            if (!opt || len == 1)
                return s_refuse ("--", name, len);
            const char *val = NULL;
            if (opt->arg) {
                if (eq)
                    val = eq + 1;
                else
                if (i < argc)
                    val = argv [i++];
                else
                    return run_usage_error ("option --%.*s needs a value", (int) len, name);
            }
            else
            if (eq)
                return run_usage_error ("option --%.*s takes no value", (int) len, name);
            if (opt->id == O_ARGSEP)
                argsep = val;
            else
            if (opt->id == O_ARGFILESEP)
                filesep = val;
            char shown [64];
            snprintf (shown, sizeof shown, "--%.*s", (int) len, name);
            int rc = s_apply (o, opt, shown, val);
            if (rc >= 0)
                return rc;
            continue;
        }
        //  bundled short options: -kj2, -j 2
        for (const char *p = word + 1; *p; p++) {
            const s_opt_t *opt = s_find (p, 1);
            if (!opt)
                return s_refuse ("-", p, 1);
            const char *val = NULL;
            if (opt->arg) {
                if (p [1])
                    val = p + 1;
                else
                if (i < argc)
                    val = argv [i++];
                else
                    return run_usage_error ("option -%c needs a value", *p);
            }
            char shown [4] = { '-', *p, 0 };
            int rc = s_apply (o, opt, shown, val);
            if (rc >= 0)
                return rc;
            if (val)
                break;
        }
    }
    *argsep_p = argsep;
    *filesep_p = filesep;
    *next = i;
    return -1;
}

int
run_parse_args (int argc, char *argv [], run_opts_t *o)
{
    o->delim = '\n';
    o->block_size = 1 << 20;
    o->retries = 1;
    o->keep_order = true;           //  dpool run's output is in order unless --nok
    const char *argsep = ":::", *filesep = "::::";
    //  the profiles' options, $PARALLEL's, the command line's; the words
    //  after each one's options start the command, in that order
    size_t nprofile;
    if (s_profiles (argc, argv, o, &nprofile) != 0)
        return RUN_EXIT_ERROR;
    int i, rc, pnext = 0, enext = (int) nprofile;
    char **words = o->profile_words.v;
    size_t nwords = o->profile_words.n;
    if (nwords) {
        //  (s_parse_options reads from index 1 of its array onwards)
        char **pv = (char **) malloc ((nwords + 2) * sizeof (char *));
        if (!pv)
            return run_usage_error ("out of memory");
        pv [0] = argv [0];
        memcpy (pv + 1, words, nprofile * sizeof (char *));
        rc = s_parse_options ((int) nprofile + 1, pv, 1, o, &argsep, &filesep, &pnext);
        pnext--;
        if (rc < 0) {
            memcpy (pv + 1, words + nprofile, (nwords - nprofile) * sizeof (char *));
            rc = s_parse_options ((int) (nwords - nprofile) + 1, pv, 1, o, &argsep, &filesep, &enext);
            enext += (int) nprofile - 1;
        }
        free (pv);
        if (rc >= 0)
            return rc;
    }
    if ((rc = s_parse_options (argc, argv, 1, o, &argsep, &filesep, &i)) >= 0)
        return rc;
    if (nwords && (pnext < (int) nprofile || enext < (int) nwords)) {
        //  words left in a profile or $PARALLEL (a command such as `nice`)
        //  go before the command line's
        size_t extra = (nprofile - (size_t) pnext) + (nwords - (size_t) enext);
        size_t n = extra + (size_t) (argc - i);
        o->argv_built = (char **) calloc (n + 1, sizeof (char *));
        if (!o->argv_built)
            return run_usage_error ("out of memory");
        size_t at = 0;
        for (int k = pnext; k < (int) nprofile; k++)
            o->argv_built [at++] = words [k];
        for (int k = enext; k < (int) nwords; k++)
            o->argv_built [at++] = words [k];
        memcpy (o->argv_built + at, argv + i, (size_t) (argc - i) * sizeof (char *));
        argv = o->argv_built;
        argc = (int) n;
        i = 0;
    }
    //  the command: words up to the first separator
    o->command = argv + i;
    while (i < argc) {
        bool linked;
        if (s_separator (argv [i], argsep, filesep, &linked))
            break;
        i++;
    }
    o->ncommand = (int) (argv + i - o->command);
    //  the sources
    run_source_t *source = NULL;
    while (i < argc) {
        bool linked;
        int kind = s_separator (argv [i], argsep, filesep, &linked);
        if (kind) {
            if (o->nsources == RUN_MAX_SOURCES)
                return run_usage_error ("too many input sources");
            source = NULL;
            if (kind == 1) {
                source = &o->sources [o->nsources++];
                *source = (run_source_t) { .linked = linked && o->nsources > 1 };
            }
            else
                o->sources [o->nsources].linked = linked;   //  for the first file
            i++;
            //  `:::: f1 f2`: each file is a source (`::::+ f1 f2`: each
            //  linked to the one before); an empty ::: list is one
            if (kind == 2) {
                bool plus = linked;
                while (i < argc && !s_separator (argv [i], argsep, filesep, &linked)) {
                    if (o->nsources == RUN_MAX_SOURCES)
                        return run_usage_error ("too many input sources");
                    run_source_t *file = &o->sources [o->nsources];
                    *file = (run_source_t) { .is_file = true, .path = argv [i++],
                                             .linked = plus && o->nsources > 0 };
                    o->nsources++;
                }
            }
            continue;
        }
        if (source)
            run_strv_add (&source->values, argv [i], strlen (argv [i]));
        i++;
    }
    //  checks GNU parallel makes, and combinations dpool run does not have
    if (o->max_args == -1 && !o->pipe)
        return run_usage_error ("option -L is only supported with --pipe");
    if (o->header && !o->pipe && strcmp (o->header_re, ":") && strcmp (o->header_re, ".*\\n")
    &&  strcmp (o->header_re, "^.*\\n") && strcmp (o->header_re, ".*"))
        return run_usage_error ("option --header: only ':' (the first line) is supported "
                                "without --pipe");
    if (o->output == RUN_OUT_UNGROUP)
        o->tag = false, o->tagstring = NULL;    //  GNU parallel: -u disables --tag
    if (o->regexp && !o->pipe)
        return run_usage_error ("option --regexp is only supported with --pipe");
    if (o->max_chars && (!o->multi || o->pipe))
        return run_usage_error ("option -s is only supported with -m, -X or --xargs");
    if (o->tee) {
        //  --pipe --tee: all of stdin to every job, one job per argument
        if (!o->pipe || o->pipepart)
            return run_usage_error ("--tee is only supported with --pipe");
        if (o->nsources == 0)
            return run_usage_error ("--tee needs the jobs' arguments: ::: or -a FILE");
        for (int s = 0; s < o->nsources; s++)
            if (o->sources [s].is_file && !strcmp (o->sources [s].path, "-"))
                return run_usage_error ("--tee gives stdin to every job: the arguments cannot "
                                        "come from stdin");
        if (o->header || o->regexp || o->rrs || o->pipe_records || o->block_given
        ||  o->recstart || o->recend)
            return run_usage_error ("--block, --header, --recstart, --recend, --regexp, --rrs, "
                                    "-N and -L are not supported with --tee");
        o->pipe = false;            //  jobs are made from the arguments
    }
    if (o->pipe && !o->pipepart && (o->nsources > 0))
        return run_usage_error ("--pipe reads stdin: ::: / :::: / -a are not supported with it");
    if (o->block_parts && !o->pipepart)
        return run_usage_error ("invalid value '%s' for --block: -N (parts per job slot) is "
                                "only supported with --pipepart", o->block_text);
    if (o->pipepart) {
        //  the -a (::::) files are cut; what GNU parallel also does there
        //  and dpool run does not is refused
        if (o->nsources == 0)
            return run_usage_error ("--pipepart needs its files: -a FILE");
        for (int s = 0; s < o->nsources; s++)
            if (!o->sources [s].is_file || !strcmp (o->sources [s].path, "-"))
                return run_usage_error ("--pipepart cuts files (-a FILE): ::: values and stdin "
                                        "are not supported with it");
        if (o->header || o->regexp || o->rrs || o->skip_first_line || o->pipe_records)
            return run_usage_error ("--header, --regexp, --rrs, --skip-first-line, -N and -L "
                                    "are not supported with --pipepart");
    }
    if ((o->resume || o->resume_failed || o->retry_failed) && !o->joblog)
        return run_usage_error ("--resume, --resume-failed and --retry-failed need --joblog FILE");
    if (!o->curve_secret != !o->broker_key)
        return run_usage_error ("--curve-secret and --broker-key go together");
    if (o->header && o->colsep == NULL && o->nsources == 0)
        o->header = true;
    if (o->retries < 1)
        o->retries = 1;
    //  -j against the CPUs, or the cores or sockets (--use-...-instead-of-...)
    int cpus = s_cpus ();
    if (o->cpu_unit) {
        int sockets, cores, threads;
        dp_cpu_topology ("/sys/devices/system/cpu", 0, &sockets, &cores, &threads);
        int unit = o->cpu_unit == 's' ? sockets : cores;
        cpus = unit < cpus ? unit : cpus;
    }
    o->jobslots = o->jobs ? s_jobslots (o->jobs, cpus) : cpus;
    return -1;
}

void
run_opts_free (run_opts_t *o)
{
    for (int i = 0; i < o->nsources && i < RUN_MAX_SOURCES; i++)
        run_strv_free (&o->sources [i].values);
    free ((char *) o->recstart);
    free ((char *) o->recend);
    o->recstart = o->recend = NULL;
    free (o->argv_built);
    o->argv_built = NULL;
    run_strv_free (&o->profile_words);
    o->nsources = 0;
}
