/*  =========================================================================
    dp_run - `dpool run`: the run loop

    Jobs from the generator (dp_run_input.c) go to the pool's built-in exec
    task as exec items (proto/dp_exec_msg.h): the shell command line, the
    shell (dp_run_shell.c: GNU parallel's choice), the client's working
    directory, the --env variables, the --pipe block as stdin, --timeout,
    {#} and {%}. Replies carry the exit status, stdout and stderr.

    Results are taken as they arrive (dp_imap_unordered) and kept in a ring
    in job order; the ring's head is printed as soon as it is complete, so
    output is always in input order (GNU parallel's -k) while a failed job
    can be sent again (--retries) without holding the pool's order up. The
    joblog gets a line when a job is final, in completion order as GNU
    parallel writes it, written out per batch of results and synced to disk
    every second.

    A job's output over 1 MiB streams from its worker in parts ahead of
    its reply (the pool's on_part). The parts of the job due next (the
    ring's head) go straight to stdout / stderr; those of a later job are
    appended to one temporary file (made under $TMPDIR and unlinked at
    once, so nothing is left behind) and written out when the job comes
    due, after which its parts go straight through too. So memory stays
    bounded however much a job prints, and the order is kept. With -u,
    parts are written as they come; with --line-buffer, their whole lines
    are, the unfinished last line waiting in the file. With --retries the
    job due keeps its parts in the file too, until it is final, so that a
    failed run's output is dropped and only the last run's is printed, as
    GNU parallel does (with -u and --line-buffer, as there, each run's
    output is printed as it comes). A job whose parts came from two runs
    of its command (its worker died while it printed and the pool ran it
    again) starts over if nothing of it went out yet; otherwise it fails:
    what it printed cannot be taken back, so it is not printed twice.
    --results keeps the whole output in memory (it writes files per job):
    its jobs do not stream.

    The input callback may have nothing to give for a while (stdin has no
    complete record yet, or the input has ended but a failure may still be
    retried): it then returns 2 and the pool waits on fd 0. Once fd 0 is no
    longer read, it is replaced with the read end of a private pipe that is
    written to when the callback has news (a retry, or the end), so the
    pool neither spins nor sleeps.
    =========================================================================
*/
#include "dp_run.h"
#include "dpool.h"
#include "dp_client.h"
#include "dp_exec_msg.h"

#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_TICK_MS   200
//  The joblog is written (fflush) after each batch of results, which is
//  what survives the client's own death; it is synced to disk (against a
//  crash of the machine) at most this often. Every 50 ms cost 15% and
//  more of the rate of 5,000 short jobs on a busy 2-core VM (an ext4
//  fdatasync is a journal commit that the next appends wait for; on a
//  thread of its own it cost as much); every second costs 1-2% (README).
#define S_SYNC_MS   1000

static volatile int s_interrupted = 0;

static void
s_on_signal (int sig)
{
    (void) sig;
    s_interrupted = 1;
}

//  Part of a job's output kept in the spill file until the job is due
typedef struct {
    uint64_t off;
    uint32_t len;
    int fd;                     //  1 stdout, 2 stderr
} s_seg_t;

//  One job in the ring, from its first send until it is printed
typedef struct {
    uint64_t seq;
    char *cmd;
    size_t cmd_len;
    char *tag;
    run_offs_t slot_at;         //  where {%} goes in cmd: the slot that ran it
    run_offs_t tag_slot_at;     //  and in tag
    char *input;                //  --pipe block, kept only for --retries
    size_t input_len;
    char *results;              //  --results: the job's directory
    bool results_files;         //  or (a name with replacement strings) its file name
    int attempts;
    uint32_t slot;              //  the job slot the client gave it (own_slots), 0: none
    uint64_t avoid [DP_MAX_AVOID];  //  --retries: tags of the nodes it failed on
    uint32_t navoid;
    bool done;
    bool failed;
    bool logged;                //  its joblog line is written
    dp_exec_reply_t reply;
    char *message;              //  the pool's reason when no reply came
    //  streamed output
    uint64_t attempt;           //  run whose parts came (0: none yet)
    uint64_t nparts;            //  parts taken from it
    bool broken;                //  parts of two runs, or out of sequence
    bool direct;                //  due: parts go straight out
    bool printed;               //  -u / --line-buffer: printed when it ended
    bool cmd_shown;             //  -v: its command went to stdout
    bool mid_line [2];          //  --tag: the last byte written to fd 1 / 2 was no newline
    s_seg_t *segs;              //  parts in the spill file, in order
    size_t nsegs, seg_cap;
} s_ent_t;

//  A joblog entry read back for --resume
typedef struct {
    uint64_t seq;
    bool ok;
    char *cmd;
} s_logged_t;

typedef struct {
    run_opts_t *o;
    run_gen_t *gen;
    dp_iter_t *it;              //  the job (set once started)
    //  the ring of jobs in order: positions [head, tail)
    s_ent_t *ring;
    size_t cap;
    uint64_t head, tail;
    uint64_t *index_pos;        //  pool item index -> ring position
    size_t nindex, index_cap;
    //  retries waiting to be sent: ring positions
    uint64_t *retry;
    size_t nretry, retry_cap;
    size_t in_flight;
    //  --delay: when the next job may start, and the delay now (ms)
    int64_t next_start_ms;
    double delay_ms;
    //  {%} in a local pool: the client hands out the job slots as GNU
    //  parallel does (the lowest free one), with no more jobs out than slots
    bool own_slots;
    bool *slot_busy;
    bool flush;                 //  -u, --line-buffer: output in PARTs as it comes
    bool input_ended;           //  the generator has no more jobs
    bool halting;               //  --halt: send no more
    bool halt_now;
    int halt_status;            //  exit status once halted (-1: by count)
    int wake [2];               //  the private pipe on fd 0
    bool fd0_swapped;
    //  the item being sent
    msgpack_sbuffer item;
    char *shell, *cwd;
    char **env;
    //  resume
    zhashx_t *done_seq;         //  seq -> 1 (skip)
    zhashx_t *done_cmd;         //  command -> times done (skip)
    s_logged_t *retry_list;     //  --retry-failed: the failed jobs
    size_t nretry_list, retry_at;
    //  joblog
    FILE *joblog;
    int64_t last_sync_ms;
    bool embedded;
    //  counts
    uint64_t started, finished, failed, succeeded;
    double runtime_sum;
    int64_t start_ms, next_draw_ms;
    bool bar_shown;
    bool stdout_broken;
    uint64_t skipped;
    //  the spill file for early parts (unlinked), its size, and the jobs
    //  holding segments in it (at 0 it is emptied)
    int spill;
    uint64_t spill_size;
    size_t spill_jobs;
    //  commands run without a shell (s_plain_argv)
    char *plain_name;
    bool plain_ok;
    char *plain_text;
    char *plain_words [1024];
} s_run_t;

//  Is `name` an executable program in $PATH (or a path to one)?
static bool
s_in_path (const char *name)
{
    if (strchr (name, '/'))
        return access (name, X_OK) == 0;
    const char *path = getenv ("PATH");
    if (!path)
        return false;
    char *copy = strdup (path), *save = NULL;
    bool found = false;
    for (char *dir = strtok_r (copy, ":", &save); dir && !found; dir = strtok_r (NULL, ":", &save)) {
        char full [4096];
        snprintf (full, sizeof full, "%s/%s", *dir ? dir : ".", name);
        struct stat st;
        found = stat (full, &st) == 0 && S_ISREG (st.st_mode) && access (full, X_OK) == 0;
    }
    free (copy);
    return found;
}

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *
s_alloc (void *p, size_t size)
{
    void *q = realloc (p, size ? size : 1);
    if (!q) {
        fprintf (stderr, "dpool run: out of memory\n");
        exit (RUN_EXIT_ERROR);
    }
    return q;
}

//  A copy of `from` (NULL: none) into `to`
static void
s_offs_copy (run_offs_t *to, const run_offs_t *from)
{
    memset (to, 0, sizeof *to);
    if (!from || !from->n)
        return;
    to->at = (size_t *) s_alloc (NULL, from->n * sizeof (size_t));
    memcpy (to->at, from->at, from->n * sizeof (size_t));
    to->n = to->cap = from->n;
}

//  The slot a job would have if jobs took turns: told to a worker that has
//  no slot of its own (one started without a supervisor), and --dry-run's
static uint64_t
s_turn_slot (const run_opts_t *o, uint64_t seq)
{
    return (seq - 1) % (uint64_t) (o->jobslots > 0 ? o->jobslots : 1) + 1;
}

//  --------------------------------------------------------------------------
//  The joblog

//  Read an existing joblog for --resume / --resume-failed / --retry-failed.
//  Lines that do not parse (a torn last line) are ignored. Returns 0, or
//  -1 (printed) when the file cannot be read.
static int
s_joblog_read (s_run_t *self)
{
    run_opts_t *o = self->o;
    self->done_seq = zhashx_new ();
    self->done_cmd = zhashx_new ();
    FILE *f = fopen (o->joblog, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    //  the last line of a seq wins (a retried job is logged again)
    zhashx_t *by_seq = zhashx_new ();
    zhashx_set_destructor (by_seq, NULL);
    s_logged_t *list = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline (&line, &lcap, f)) > 0) {
        if (line [len - 1] != '\n')
            break;                          //  torn: written half when killed
        line [len - 1] = 0;
        char *field [9];
        int nf = 0;
        char *p = line;
        field [nf++] = p;
        while (nf < 9 && (p = strchr (p, '\t'))) {
            *p++ = 0;
            field [nf++] = p;
        }
        char *end;
        unsigned long long seq = strtoull (field [0], &end, 10);
        if (nf < 9 || *end || end == field [0] || seq == 0)
            continue;                       //  the header, or garbage
        long exitval = strtol (field [6], &end, 10);
        long sig = strtol (field [7], NULL, 10);
        char key [24];
        snprintf (key, sizeof key, "%llu", seq);
        void *at = zhashx_lookup (by_seq, key);
        size_t i;
        if (at)
            i = (size_t) (uintptr_t) at - 1;
        else {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                list = (s_logged_t *) s_alloc (list, cap * sizeof *list);
            }
            i = n++;
            list [i].cmd = NULL;
            zhashx_insert (by_seq, key, (void *) (uintptr_t) (i + 1));
        }
        free (list [i].cmd);
        list [i] = (s_logged_t) { .seq = seq, .ok = exitval == 0 && sig == 0,
                                  .cmd = strdup (field [8]) };
    }
    free (line);
    fclose (f);
    zhashx_destroy (&by_seq);
    for (size_t i = 0; i < n; i++) {
        bool skip = o->resume_failed || o->retry_failed ? list [i].ok : true;
        if (o->retry_failed && !list [i].ok) {
            list [self->nretry_list++] = list [i];
            continue;
        }
        if (skip) {
            char key [24];
            snprintf (key, sizeof key, "%llu", (unsigned long long) list [i].seq);
            zhashx_update (self->done_seq, key, (void *) 1);
            uintptr_t count = (uintptr_t) zhashx_lookup (self->done_cmd, list [i].cmd);
            zhashx_update (self->done_cmd, list [i].cmd, (void *) (count + 1));
        }
        free (list [i].cmd);
    }
    if (o->retry_failed)
        self->retry_list = list;
    else
        free (list);
    return 0;
}

#define S_JOBLOG_HEADER "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"

//  Open the joblog for appending (header when new; a torn last line is
//  ended first so the next line starts clean). Returns 0 or -1.
static int
s_joblog_open (s_run_t *self)
{
    const char *path = self->o->joblog;
    if (!strcmp (path, "-")) {          //  GNU parallel's --joblog -: on stdout
        self->joblog = stdout;
        fputs (S_JOBLOG_HEADER, stdout);
        return 0;
    }
    int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0)
        return -1;
    struct stat st;
    bool fresh = fstat (fd, &st) == 0 && st.st_size == 0;
    self->joblog = fdopen (fd, "a");
    if (!self->joblog) {
        close (fd);
        return -1;
    }
    if (fresh)
        fputs (S_JOBLOG_HEADER, self->joblog);
    else {
        int rfd = open (path, O_RDONLY | O_CLOEXEC);
        char last = '\n';
        if (rfd >= 0 && pread (rfd, &last, 1, st.st_size - 1) == 1 && last != '\n')
            fputc ('\n', self->joblog);
        if (rfd >= 0)
            close (rfd);
    }
    fflush (self->joblog);
    return 0;
}

static void
s_joblog_line (s_run_t *self, s_ent_t *e)
{
    if (!self->joblog || e->logged)
        return;
    e->logged = true;
    const dp_exec_reply_t *r = &e->reply;
    const char *host = self->embedded || !r->host || !*r->host ? ":" : r->host;
    int exitval = e->message ? -1 : r->timedout ? -1 : r->signal ? 0 : r->status;
    int sig = e->message ? 0 : r->timedout ? 15 : r->signal;
    //  commands are one line in the log, as GNU parallel writes them
    fprintf (self->joblog, "%llu\t%s\t%.3f\t%10.3f\t%zu\t%zu\t%d\t%d\t",
             (unsigned long long) e->seq, host, r->start, r->runtime, e->input_len,
             r->out_size + r->err_size, exitval, sig);
    const char *cmd = e->cmd;
    size_t len = e->cmd_len;
    run_str_t filled = { 0 };
    if (e->slot_at.n) {
        //  {%}: the command as it ran, in its worker's slot
        run_slot_fill (&filled, e->cmd, e->cmd_len, &e->slot_at,
                       r->slot ? r->slot : s_turn_slot (self->o, e->seq));
        cmd = filled.p;
        len = filled.len;
    }
    for (size_t i = 0; i < len; i++)
        fputc (cmd [i] == '\n' ? ' ' : cmd [i], self->joblog);
    fputc ('\n', self->joblog);
    free (filled.p);
}

//  Write the joblog out; sync it to disk at most every S_SYNC_MS (and at
//  the end)
static void
s_joblog_sync (s_run_t *self, bool force)
{
    if (!self->joblog)
        return;
    fflush (self->joblog);
    int64_t now = s_now_ms ();
    if (force || now - self->last_sync_ms >= S_SYNC_MS) {
        fdatasync (fileno (self->joblog));
        self->last_sync_ms = now;
    }
}

//  --------------------------------------------------------------------------
//  Progress (--bar, --eta, --progress), on stderr

static void
s_progress_clear (s_run_t *self)
{
    if (self->bar_shown) {
        fputs ("\r\033[K", stderr);
        self->bar_shown = false;
    }
}

static void
s_progress_draw (s_run_t *self, bool final)
{
    run_opts_t *o = self->o;
    if (!o->bar && !o->eta && !o->progress)
        return;
    double elapsed = (double) (s_now_ms () - self->start_ms) / 1000.0;
    uint64_t done = self->finished, total = self->tail - self->skipped;
    double avg = done ? elapsed / (double) done : 0;
    uint64_t left = self->input_ended && total > done ? total - done : 0;
    char eta [32] = "?";
    if (self->input_ended && done)
        snprintf (eta, sizeof eta, "%.0fs", avg * (double) left);
    char line [256];
    if (o->bar) {
        int pct = self->input_ended && total ? (int) (100 * done / total) : 0;
        char bar [21];
        for (int i = 0; i < 20; i++)
            bar [i] = i < pct / 5 ? '#' : ' ';
        bar [20] = 0;
        snprintf (line, sizeof line, "%3d%% %llu:%llu=%s [%s]", pct,
                  (unsigned long long) done, (unsigned long long) left, eta, bar);
    }
    else
    if (o->eta)
        snprintf (line, sizeof line, "ETA: %s Left: %llu AVG: %.2fs  local:%zu/%llu",
                  eta, (unsigned long long) left, avg, self->in_flight,
                  (unsigned long long) done);
    else
        snprintf (line, sizeof line, "local:%zu/%llu/%d%%/%.1fs", self->in_flight,
                  (unsigned long long) done,
                  total && self->input_ended ? (int) (100 * done / total) : 0, avg);
    fprintf (stderr, "\r%s\033[K%s", line, final ? "\n" : "");
    self->bar_shown = !final;
    self->next_draw_ms = s_now_ms () + S_TICK_MS;
}

//  --------------------------------------------------------------------------
//  Sending jobs

//  Wake the pool's wait on fd 0 (a retry is queued, or the input ended)
static void
s_wake (s_run_t *self)
{
    //  (a full pipe means a wake is pending anyway)
    if (self->fd0_swapped && write (self->wake [1], "w", 1) < 0)
        return;
}

//  Stop reading stdin: fd 0 becomes the private pipe's read end
static void
s_swap_fd0 (s_run_t *self)
{
    if (self->fd0_swapped)
        return;
    dup2 (self->wake [0], 0);
    self->fd0_swapped = true;
}

static s_ent_t *
s_ent (s_run_t *self, uint64_t pos)
{
    return &self->ring [pos % self->cap];
}

//  A new ring entry at the tail
static s_ent_t *
s_ring_push (s_run_t *self)
{
    if (self->tail - self->head == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 1024;
        s_ent_t *ring = (s_ent_t *) s_alloc (NULL, cap * sizeof *ring);
        for (uint64_t p = self->head; p < self->tail; p++)
            ring [p % cap] = self->ring [p % self->cap];
        free (self->ring);
        self->ring = ring;
        self->cap = cap;
    }
    s_ent_t *e = s_ent (self, self->tail++);
    memset (e, 0, sizeof *e);
    return e;
}

//  A command line of plain words only (no quotes, no shell syntax) whose
//  program is found in $PATH, is neither a shell builtin or keyword nor an
//  exported function: it runs the same without a shell, and faster. `echo`
//  (builtin and /bin/echo agree on plain words without a leading '-'),
//  `true` and `false` qualify. Returns the words (in `words`, a copy) or
//  NULL when a shell is needed.
static char **
s_plain_argv (s_run_t *self, const char *cmd, size_t len)
{
    static const char *builtins =
        "|alias|bg|bind|break|builtin|caller|cd|command|compgen|complete|compopt|continue"
        "|declare|dirs|disown|enable|eval|exec|exit|export|fc|fg|getopts|hash|help|history"
        "|jobs|kill|let|local|logout|mapfile|popd|printf|pushd|pwd|read|readarray|readonly"
        "|return|set|shift|shopt|source|suspend|test|times|trap|type|typeset|ulimit|umask"
        "|unalias|unset|wait|if|then|else|elif|fi|for|while|until|do|done|case|esac|function"
        "|select|time|coproc|[|[[|]]|{|}|!|.|:|";
    if (len == 0 || len > 4096)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (!isalnum ((unsigned char) cmd [i]) && !strchr ("_./+,@%^:- ", cmd [i]))
            return NULL;
    if (cmd [0] == ' ')
        return NULL;
    size_t first = strcspn (cmd, " ");
    char name [256];
    if (first >= sizeof name)
        return NULL;
    memcpy (name, cmd, first);
    name [first] = 0;
    char key [260];
    snprintf (key, sizeof key, "|%s|", name);
    if (strstr (builtins, key))
        return NULL;
    if (!strcmp (name, "echo") && strstr (cmd, " -"))
        return NULL;
    //  the program: looked up once per name
    if (!self->plain_name || strcmp (self->plain_name, name)) {
        free (self->plain_name);
        self->plain_name = strdup (name);
        char fn [300];
        snprintf (fn, sizeof fn, "BASH_FUNC_%s%%%%", name);
        self->plain_ok = !getenv (fn) && s_in_path (name);
    }
    if (!self->plain_ok)
        return NULL;
    free (self->plain_text);
    self->plain_text = strndup (cmd, len);
    size_t n = 0;
    char *save = NULL;
    for (char *w = strtok_r (self->plain_text, " ", &save); w && n < 1023;
         w = strtok_r (NULL, " ", &save))
        self->plain_words [n++] = w;
    self->plain_words [n] = NULL;
    return self->plain_words;
}

_Static_assert (sizeof ((run_opts_t *) 0)->termseq == sizeof ((dp_exec_item_t *) 0)->termseq,
                "--termseq fits the exec item's");

//  Encode the exec item of ring entry `pos`
static int
s_encode (s_run_t *self, uint64_t pos, const char *input, size_t input_len)
{
    s_ent_t *e = s_ent (self, pos);
    run_opts_t *o = self->o;
    //  {%} is written in by the worker (its own slot): a shell command;
    //  or, own_slots, here: the lowest slot no job out holds
    char **argv = e->slot_at.n ? NULL : s_plain_argv (self, e->cmd, e->cmd_len);
    run_str_t filled = { 0 };
    e->slot = 0;
    if (self->own_slots) {
        int k = 0;
        while (k < o->jobslots - 1 && self->slot_busy [k])
            k++;
        self->slot_busy [k] = true;
        e->slot = (uint32_t) k + 1;
        run_slot_fill (&filled, e->cmd, e->cmd_len, &e->slot_at, e->slot);
    }
    dp_exec_item_t item = {
        .argv = argv, .sh = argv ? NULL : filled.p ? filled.p : e->cmd,
        .shell = argv ? NULL : self->shell, .cwd = self->cwd, .env = self->env,
        .input = (uint8_t *) input, .input_size = input_len, .has_input = o->pipe || o->tee,
        .timeout = o->timeout_s, .seq = e->seq, .has_seq = true,
        .slot = e->slot ? e->slot : s_turn_slot (o, e->seq), .has_slot = true,
        .slot_at = e->slot_at.at, .nslot_at = e->slot_at.n, .has_slot_at = !self->own_slots,
        //  -u / --line-buffer: its output in PARTs as it comes
        .flush = self->flush, .nice = o->nice, .slotvar = (char *) o->slotvar,
        .ntermseq = o->ntermseq
    };
    memcpy (item.termseq, o->termseq, sizeof item.termseq);
    msgpack_sbuffer_clear (&self->item);
    int rc = dp_exec_item_encode (&item, &self->item);
    free (filled.p);
    if (rc != 0) {
        fprintf (stderr, "dpool run: cannot encode job %llu\n", (unsigned long long) e->seq);
        return -1;
    }
    if (self->nindex == self->index_cap) {
        self->index_cap = self->index_cap ? self->index_cap * 2 : 4096;
        self->index_pos = (uint64_t *) s_alloc (self->index_pos,
                                               self->index_cap * sizeof (uint64_t));
    }
    self->index_pos [self->nindex++] = pos;
    e->attempts++;
    self->in_flight++;
    if (o->verbose && !e->slot_at.n)
        fprintf (stderr, "%s\n", e->cmd);     //  (with {%}: once its slot is known)
    return 0;
}

//  --results DIR: DIR/1/ARG1/2/ARG2... as GNU parallel names it (a '/' in
//  an argument is written \_, a '\' \\; header names replace numbers)
static char *
s_results_dir (const char *dir, const run_job_t *job)
{
    run_str_t path = { 0 };
    run_str_adds (&path, dir);
    for (size_t i = 0; i < job->nargs; i++) {
        char num [24];
        snprintf (num, sizeof num, "%zu", i + 1);
        run_str_adds (&path, "/");
        if (job->names && i < job->names->n)
            run_str_add (&path, job->names->v [i], job->names->len [i]);
        else
            run_str_adds (&path, num);
        if (job->arg_lens [i])
            run_str_adds (&path, "/");
        for (size_t k = 0; k < job->arg_lens [i]; k++) {
            char c = job->args [i][k];
            run_str_adds (&path, c == '/' ? "\\_" : c == '\\' ? "\\\\" : (char []) { c, 0 });
        }
    }
    return path.p;
}

//  mkdir -p
static int
s_mkdirs (char *path)
{
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir (path, 0777) != 0 && errno != EEXIST) {
                *p = '/';
                return -1;
            }
            *p = '/';
        }
    return mkdir (path, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static int
s_write_file (const char *dir, const char *name, const void *data, size_t len)
{
    char path [4096];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen (path, "w");
    if (!f)
        return -1;
    size_t n = fwrite (data, 1, len, f);
    return fclose (f) == 0 && n == len ? 0 : -1;
}

//  Write a finished job's seq, stdout and stderr under its --results dir
//  (or, for a --results name with replacement strings that does not end
//  in '/', as the files NAME, NAME.err, NAME.seq)
static void
s_results_write (s_ent_t *e)
{
    char seq [24];
    int n = snprintf (seq, sizeof seq, "%llu", (unsigned long long) e->seq);
    size_t rlen = strlen (e->results);
    if (e->results_files && rlen && e->results [rlen - 1] != '/') {
        char *dir = strdup (e->results);
        char *slash = strrchr (dir, '/');
        const char *base = slash ? slash + 1 : dir;
        if (slash)
            *slash = 0;
        char err [4096], sq [4096];
        snprintf (err, sizeof err, "%s.err", base);
        snprintf (sq, sizeof sq, "%s.seq", base);
        const char *in = slash ? dir : ".";
        if ((slash && *dir && s_mkdirs (dir) != 0)
        ||  s_write_file (in, base, e->reply.out, e->reply.out_size) != 0
        ||  s_write_file (in, err, e->reply.err, e->reply.err_size) != 0
        ||  s_write_file (in, sq, seq, (size_t) n) != 0)
            fprintf (stderr, "dpool run: --results %s: %s\n", e->results, strerror (errno));
        free (dir);
        return;
    }
    if (s_mkdirs (e->results) != 0
    ||  s_write_file (e->results, "seq", seq, (size_t) n) != 0
    ||  s_write_file (e->results, "stdout", e->reply.out, e->reply.out_size) != 0
    ||  s_write_file (e->results, "stderr", e->reply.err, e->reply.err_size) != 0)
        fprintf (stderr, "dpool run: --results %s: %s\n", e->results, strerror (errno));
}

//  Is this job done already (--resume)? Consumes one count of its command.
static bool
s_resumed (s_run_t *self, uint64_t seq, const char *cmd)
{
    if (!self->done_seq)
        return false;
    if (self->o->resume_by_content) {
        uintptr_t count = (uintptr_t) zhashx_lookup (self->done_cmd, cmd);
        if (!count)
            return false;
        if (count == 1)
            zhashx_delete (self->done_cmd, cmd);
        else
            zhashx_update (self->done_cmd, cmd, (void *) (count - 1));
        return true;
    }
    char key [24];
    snprintf (key, sizeof key, "%llu", (unsigned long long) seq);
    return zhashx_lookup (self->done_seq, key) != NULL;
}

//  --delay: is a job's start still too close to the last one's? A short
//  wait (up to S_DELAY_STEP) is waited here; a longer one in such steps,
//  the pool taking results between them.
#define S_DELAY_STEP 20
static bool
s_delay_pending (s_run_t *self)
{
    if (self->delay_ms <= 0)
        return false;
    int64_t left = self->next_start_ms - s_now_ms ();
    if (left <= 0)
        return false;
    poll (NULL, 0, (int) (left < S_DELAY_STEP ? left : S_DELAY_STEP));
    return left > S_DELAY_STEP;
}

//  A job goes out now: the next one waits the delay
static void
s_delay_stamp (s_run_t *self)
{
    if (self->delay_ms > 0)
        self->next_start_ms = s_now_ms () + (int64_t) self->delay_ms;
}

//  The pool's input callback
static int
s_input (void *arg, const void **data, size_t *len)
{
    s_run_t *self = (s_run_t *) arg;
    if (self->fd0_swapped) {
        char drain [64];
        while (read (self->wake [0], drain, sizeof drain) > 0)
            ;
    }
    if (self->halting || s_interrupted)
        return 0;
    if (s_delay_pending (self))
        return 2;
    if (self->nretry) {
        uint64_t pos = self->retry [--self->nretry];
        s_ent_t *e = s_ent (self, pos);
        size_t tee_len;
        const char *tee = run_gen_tee (self->gen, &tee_len);     //  (--tee: shared)
        if (s_encode (self, pos, tee ? tee : e->input, e->input_len) != 0)
            return -1;
        //  on another node than those it failed on, where there is one
        citer_avoid (self->it, e->avoid, e->navoid);
        *data = self->item.data;
        *len = self->item.size;
        s_delay_stamp (self);
        return 1;
    }
    //  --halt: no more jobs out than slots, so that none starts after a
    //  halt; own_slots: each job out holds one; --delay: a job sent
    //  starts at once, not queued behind others
    if ((self->o->halt_when != HALT_NEVER || self->own_slots || self->o->output != RUN_OUT_GROUP
         || self->delay_ms > 0)
    &&  self->in_flight >= (size_t) self->o->jobslots)
        return 2;
    while (!self->input_ended) {
        run_job_t job;
        int rc;
        if (self->o->retry_failed) {
            //  --retry-failed: the failed commands of the joblog
            if (self->retry_at == self->nretry_list)
                rc = 0;
            else {
                s_logged_t *l = &self->retry_list [self->retry_at++];
                job = (run_job_t) { .seq = l->seq, .cmd = l->cmd, .cmd_len = strlen (l->cmd) };
                rc = 1;
            }
        }
        else
            rc = run_gen_next (self->gen, &job);
        if (rc == 2)
            return 2;
        if (rc < 0)
            return -1;
        if (rc == 0) {
            self->input_ended = true;
            s_swap_fd0 (self);
            break;
        }
        if (s_resumed (self, job.seq, job.cmd)) {
            self->skipped++;
            continue;
        }
        uint64_t pos = self->tail;
        s_ent_t *e = s_ring_push (self);
        e->seq = job.seq;
        e->cmd = (char *) s_alloc (NULL, job.cmd_len + 1);
        memcpy (e->cmd, job.cmd, job.cmd_len + 1);
        e->cmd_len = job.cmd_len;
        e->tag = job.tag ? strdup (job.tag) : NULL;
        s_offs_copy (&e->slot_at, job.slot_at);
        s_offs_copy (&e->tag_slot_at, job.tag_slot_at);
        e->input_len = job.stdin_len;
        if (job.stdin_data && self->o->retries > 1 && !self->o->tee) {
            e->input = (char *) s_alloc (NULL, job.stdin_len);
            memcpy (e->input, job.stdin_data, job.stdin_len);
        }
        if (job.skipped) {
            //  done at once, failed, printing nothing
            e->done = e->failed = true;
            e->reply.status = -2;
            self->finished++;
            self->failed++;
            s_joblog_line (self, e);
            continue;
        }
        if (job.results) {
            e->results = strdup (job.results);
            e->results_files = true;
        }
        else
        if (self->o->results)
            e->results = s_results_dir (self->o->results, &job);
        self->started++;
        if (s_encode (self, pos, job.stdin_data, job.stdin_len) != 0)
            return -1;
        *data = self->item.data;
        *len = self->item.size;
        s_delay_stamp (self);
        return 1;
    }
    //  the input has ended: a job in flight may still fail and be retried
    if (self->o->retries > 1 && self->in_flight > 0)
        return 2;
    return 0;
}

//  --------------------------------------------------------------------------
//  Results

//  Write a piece of job e's output to fd 1 or 2, with --tag's prefix at
//  the start of each line (a line may continue from the last piece).
static void
s_emit (s_run_t *self, s_ent_t *e, int fd, const uint8_t *data, size_t len)
{
    FILE *out = fd == 2 ? stderr : stdout;
    if (self->stdout_broken)
        return;
    if (self->o->verbose_out && !e->cmd_shown) {
        //  -v: the command first, on stdout (as the job ran it: {%} filled)
        e->cmd_shown = true;
        uint64_t slot = e->slot ? e->slot : e->reply.slot ? e->reply.slot
                      : s_turn_slot (self->o, e->seq);
        run_str_t filled = { 0 };
        run_slot_fill (&filled, e->cmd, e->cmd_len, &e->slot_at, slot);
        run_str_add (&filled, "\n", 1);
        s_emit (self, e, 1, (const uint8_t *) filled.p, filled.len);
        free (filled.p);
    }
    if (len == 0)
        return;
    s_progress_clear (self);
    if (!e->tag)
        fwrite (data, 1, len, out);
    else {
        //  a tag starts every line, and follows every \r too (GNU
        //  parallel's "Tag lines with \r, too": progress lines)
        size_t at = 0;
        while (at < len) {
            size_t n = 0;
            while (at + n < len && data [at + n] != '\n' && data [at + n] != '\r')
                n++;
            bool end = at + n < len;
            if (!e->mid_line [fd - 1]) {
                fputs (e->tag, out);
                fputc ('\t', out);
            }
            fwrite (data + at, 1, n + end, out);
            if (end && data [at + n] == '\r') {
                fputs (e->tag, out);
                fputc ('\t', out);
                e->mid_line [fd - 1] = true;
            }
            else
                e->mid_line [fd - 1] = !end;
            at += n + end;
        }
    }
    if (ferror (stdout))
        self->stdout_broken = true;
}

//  Keep a piece of job e's output in the spill file. Returns 0, or -1
//  (printed) when the file cannot be made or written.
static int
s_spill (s_run_t *self, s_ent_t *e, int fd, const uint8_t *data, size_t len)
{
    if (self->spill < 0) {
        const char *dir = self->o->tmpdir ? self->o->tmpdir : getenv ("TMPDIR");
        char path [4096];
        snprintf (path, sizeof path, "%s/dpool-run-XXXXXX", dir && *dir ? dir : "/tmp");
        self->spill = mkstemp (path);
        if (self->spill < 0) {
            fprintf (stderr, "dpool run: cannot make a spill file %s: %s\n", path, strerror (errno));
            return -1;
        }
        unlink (path);                  //  gone with us, whatever happens
        fcntl (self->spill, F_SETFD, FD_CLOEXEC);
    }
    for (size_t done = 0; done < len; ) {
        ssize_t n = pwrite (self->spill, data + done, len - done, (off_t) (self->spill_size + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf (stderr, "dpool run: cannot write the spill file: %s\n", strerror (errno));
            return -1;
        }
        done += (size_t) n;
    }
    if (e->nsegs == 0)
        self->spill_jobs++;
    if (e->nsegs == e->seg_cap) {
        e->seg_cap = e->seg_cap ? e->seg_cap * 2 : 8;
        e->segs = (s_seg_t *) s_alloc (e->segs, e->seg_cap * sizeof (s_seg_t));
    }
    e->segs [e->nsegs++] = (s_seg_t) { self->spill_size, (uint32_t) len, fd };
    self->spill_size += len;
    return 0;
}

//  Write out what job e has in the spill file, in order, and forget it.
static void
s_unspill (s_run_t *self, s_ent_t *e)
{
    if (e->nsegs == 0)
        return;
    uint8_t *buf = (uint8_t *) s_alloc (NULL, DP_EXEC_PART);
    for (size_t i = 0; i < e->nsegs; i++) {
        s_seg_t *g = &e->segs [i];
        for (uint64_t done = 0; done < g->len; ) {
            size_t want = g->len - done < DP_EXEC_PART ? (size_t) (g->len - done) : DP_EXEC_PART;
            ssize_t n = pread (self->spill, buf, want, (off_t) (g->off + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            s_emit (self, e, g->fd, buf, (size_t) n);
            done += (uint64_t) n;
        }
    }
    free (buf);
    e->nsegs = 0;
    if (--self->spill_jobs == 0) {
        //  nobody holds anything in it: start it again from the beginning
        self->spill_size = 0;
        if (ftruncate (self->spill, 0) != 0) {
            //  only space kept a little longer
        }
    }
}

//  Forget what job e kept in the spill file (a run of it that is over)
static void
s_spill_drop (s_run_t *self, s_ent_t *e)
{
    if (e->nsegs == 0)
        return;
    e->nsegs = 0;
    if (--self->spill_jobs == 0)
        self->spill_size = 0;           //  (its space is reused from the start)
}

//  The due job writes its parts straight out, unless --retries may still
//  drop them (grouped output only: -u and --line-buffer print each run)
static bool
s_direct_ok (s_run_t *self)
{
    return self->o->output == RUN_OUT_GROUP && self->o->retries <= 1;
}

//  Output that goes as it comes is seen at once, even in a file or pipe
static void
s_flush_out (s_run_t *self)
{
    if (fflush (stdout) != 0 || ferror (stdout))
        self->stdout_broken = true;
}

//  The pool's part callback: a piece of a job's output, ahead of its reply.
static void
s_part (void *arg, uint64_t index, uint64_t attempt, uint64_t seq, int fd,
        const void *data, size_t len)
{
    s_run_t *self = (s_run_t *) arg;
    if (index >= self->nindex || (fd != 1 && fd != 2))
        return;
    uint64_t pos = self->index_pos [index];
    s_ent_t *e = s_ent (self, pos);
    if (e->done || e->broken)
        return;
    if (e->nparts == 0 && seq == 0)
        e->attempt = attempt;
    else
    if (seq == 0 && attempt != e->attempt && !e->direct && self->o->output == RUN_OUT_GROUP) {
        s_spill_drop (self, e);         //  a new run of it, and nothing went out: start over
        e->attempt = attempt;
        e->nparts = 0;
    }
    else
    if (attempt != e->attempt || seq != e->nparts) {
        e->broken = true;               //  another run of it: not printed twice
        return;
    }
    e->nparts++;
    const uint8_t *bytes = (const uint8_t *) data;
    run_opts_t *o = self->o;
    //  (--line-buffer: never a part line, even for the job due, since
    //  other jobs' lines go out meanwhile)
    if (o->output == RUN_OUT_UNGROUP || (s_direct_ok (self) && pos == self->head)) {
        s_unspill (self, e);            //  what came before it first
        e->direct = true;
        s_emit (self, e, fd, bytes, len);
        s_flush_out (self);
        return;
    }
    if (o->output == RUN_OUT_LINE) {
        //  whole lines now, after the unfinished line kept before them
        const uint8_t *eol = (const uint8_t *) memrchr (bytes, '\n', len);
        if (eol) {
            size_t whole = (size_t) (eol - bytes) + 1;
            s_unspill (self, e);
            s_emit (self, e, fd, bytes, whole);
            s_flush_out (self);
            bytes += whole;
            len -= whole;
        }
    }
    if (len && s_spill (self, e, fd, bytes, len) != 0)
        e->broken = true;
}

static void
s_ent_free (s_ent_t *e)
{
    free (e->segs);
    free (e->cmd);
    free (e->tag);
    free (e->input);
    free (e->message);
    free (e->results);
    free (e->slot_at.at);
    free (e->tag_slot_at.at);
    dp_exec_reply_destroy (&e->reply);
    memset (e, 0, sizeof *e);
}

//  Print what is left of a finished job's output: what waits in the
//  spill file, then its reply's stdout, then its stderr
static void
s_print_job (s_run_t *self, s_ent_t *e)
{
    s_progress_clear (self);
    s_unspill (self, e);
    s_emit (self, e, 1, e->reply.out, e->reply.out_size);
    if (e->reply.err_size || e->message) {
        fflush (stdout);
        s_emit (self, e, 2, e->reply.err, e->reply.err_size);
        if (e->message)
            fprintf (stderr, "dpool run: job %llu (%s): %s\n",
                     (unsigned long long) e->seq, e->cmd, e->message);
    }
    if (ferror (stdout))
        self->stdout_broken = true;
}

//  Print the finished jobs at the head of the ring, in order
static void
s_print_ready (s_run_t *self, bool all_done)
{
    while (self->head < self->tail) {
        s_ent_t *e = s_ent (self, self->head);
        if (!e->done && !all_done)
            break;
        if (e->done && !self->stdout_broken && !e->results && !e->printed)
            s_print_job (self, e);
        if (e->done)
            s_joblog_line (self, e);    //  (--joblog -: after its output)
        if (e->nsegs && --self->spill_jobs == 0)
            self->spill_size = 0;       //  (not printed: a halt, a closed stdout)
        s_ent_free (e);
        self->head++;
    }
    //  the job due next writes its parts straight out from now on
    if (self->head < self->tail && !self->stdout_broken && s_direct_ok (self)) {
        s_ent_t *e = s_ent (self, self->head);
        if (!e->direct) {
            s_unspill (self, e);
            e->direct = true;
        }
    }
    if (fflush (stdout) != 0 || ferror (stdout))
        self->stdout_broken = true;
}

//  Check --halt after a job ended
static void
s_halt_check (s_run_t *self, s_ent_t *e)
{
    run_opts_t *o = self->o;
    if (o->halt_when == HALT_NEVER || self->halting)
        return;
    double count = o->halt_why == HALT_FAIL ? (double) self->failed
                 : o->halt_why == HALT_SUCCESS ? (double) self->succeeded
                 : (double) self->finished;
    bool hit;
    double total = 0;
    if (o->halt_pct) {
        //  a percentage of all jobs: known from the start where the input
        //  is read whole (GNU parallel counts them first), else once it ended
        uint64_t known = self->gen ? run_gen_total (self->gen) : 0;
        total = known ? (double) known
              : self->input_ended ? (double) (self->tail - self->skipped) : 0;
        hit = total > 0 && count >= total * o->halt_value / 100.0;
    }
    else
        hit = count >= o->halt_value;
    if (!hit)
        return;
    self->halting = true;
    self->halt_now = o->halt_when == HALT_NOW;
    if (o->halt_why == HALT_SUCCESS)
        self->halt_status = 0;
    else
    if (o->halt_pct)        //  GNU parallel: the percentage of jobs that failed
        self->halt_status = (int) ceil (100.0 * (double) self->failed / total);
    else
    if (o->halt_value == 1)
        self->halt_status = e->message ? 255 : e->reply.status;
    else
    if (o->halt_why == HALT_DONE && self->failed == 0)
        self->halt_status = 101;    //  GNU parallel's min(undef, 101) (20221122)
    else
        self->halt_status = (int) (self->failed > 101 ? 101 : self->failed);
}

//  A result from the pool
static void
s_result (s_run_t *self, const dp_result_t *r)
{
    if (r->index >= self->nindex)
        return;                             //  not ours: cannot happen
    uint64_t pos = self->index_pos [r->index];
    s_ent_t *e = s_ent (self, pos);
    self->in_flight--;
    if (e->slot)
        self->slot_busy [e->slot - 1] = false;
    if (e->slot || self->o->output != RUN_OUT_GROUP)
        s_wake (self);                  //  the next job may go out
    dp_exec_reply_destroy (&e->reply);
    free (e->message);
    e->message = NULL;
    bool failed;
    if (r->status == DP_OK) {
        char why [128];
        if (dp_exec_reply_decode (r->data, r->len, &e->reply, why, sizeof why) != 0) {
            e->message = strdup (why);
            failed = true;
        }
        else
            failed = e->reply.status != 0 || e->reply.signal != 0 || e->reply.timedout;
        if (e->slot)
            e->reply.slot = e->slot;
        if (self->o->verbose && e->slot_at.n && !e->message) {
            run_str_t filled = { 0 };
            run_slot_fill (&filled, e->cmd, e->cmd_len, &e->slot_at,
                           e->reply.slot ? e->reply.slot : s_turn_slot (self->o, e->seq));
            s_progress_clear (self);
            fprintf (stderr, "%s\n", filled.p);
            free (filled.p);
        }
        if (e->tag && e->tag_slot_at.n && !e->message && e->reply.slot) {
            //  --tagstring with {%}: its slot, now known (the parts of a
            //  streamed output that went out before it carry the tag unfilled)
            run_str_t filled = { 0 };
            run_slot_fill (&filled, e->tag, strlen (e->tag), &e->tag_slot_at, e->reply.slot);
            free (e->tag);
            e->tag = filled.p;
            e->tag_slot_at.n = 0;
        }
        if (e->broken || e->reply.parts != e->nparts) {
            char text [160];
            if (e->broken)
                snprintf (text, sizeof text, "its output came from two runs of the command "
                          "(a worker was lost while it printed): the rest is not printed");
            else
                snprintf (text, sizeof text, "%llu of its %llu output parts came",
                          (unsigned long long) e->nparts, (unsigned long long) e->reply.parts);
            free (e->message);
            e->message = strdup (text);
            failed = true;
        }
    }
    else {
        const char *kind = dp_status_name (r->status);
        size_t klen = strlen (kind);
        const char *text = (const char *) r->data;
        if (!strncmp (text, kind, klen))
            e->message = strndup (text, r->len);
        else {
            e->message = (char *) s_alloc (NULL, klen + r->len + 3);
            sprintf (e->message, "%s: %.*s", kind, (int) r->len, text);
        }
        failed = true;
    }
    //  --delay ...auto: each run's end adapts the delay, as GNU parallel
    if (self->o->delay_auto)
        self->delay_ms *= failed ? 1.3 : 0.9;
    //  run again: what a grouped job streamed waits in the spill file and
    //  is dropped; -u and --line-buffer have printed it, as GNU parallel does
    if (failed && e->attempts < self->o->retries && !self->halting && !s_interrupted
    &&  r->status != DP_ERR_CANCELLED) {
        if (self->o->output != RUN_OUT_GROUP && !self->stdout_broken) {
            //  -u, --line-buffer: this run's output is printed, the retry's follows
            s_progress_clear (self);
            s_unspill (self, e);
            s_emit (self, e, 1, e->reply.out, e->reply.out_size);
            s_emit (self, e, 2, e->reply.err, e->reply.err_size);
            if (fflush (stdout) != 0 || ferror (stdout))
                self->stdout_broken = true;
        }
        s_spill_drop (self, e);
        e->nparts = 0;
        e->attempt = 0;
        e->broken = false;
        //  GNU parallel retries "on another computer on which it has not
        //  failed": the broker is told the nodes it failed on
        bool known = !e->reply.node;
        for (uint32_t i = 0; i < e->navoid && !known; i++)
            known = e->avoid [i] == e->reply.node;
        if (!known && e->navoid < DP_MAX_AVOID)
            e->avoid [e->navoid++] = e->reply.node;
        if (self->nretry == self->retry_cap) {
            self->retry_cap = self->retry_cap ? self->retry_cap * 2 : 64;
            self->retry = (uint64_t *) s_alloc (self->retry, self->retry_cap * sizeof (uint64_t));
        }
        self->retry [self->nretry++] = pos;
        s_wake (self);
        return;
    }
    e->done = true;
    e->failed = failed;
    self->finished++;
    if (failed)
        self->failed++;
    else
        self->succeeded++;
    self->runtime_sum += e->reply.runtime;
    //  --joblog - (stdout): a job's line follows its output, as GNU
    //  parallel prints it (s_print_ready)
    if (self->joblog != stdout || self->o->output != RUN_OUT_GROUP)
        s_joblog_line (self, e);
    if (e->results)
        s_results_write (e);
    else
    if (self->o->output != RUN_OUT_GROUP && !self->stdout_broken) {
        //  -u / --line-buffer: the rest of its output now, not in order
        s_print_job (self, e);
        e->printed = true;
        fflush (stdout);
    }
    s_halt_check (self, e);
    if ((self->input_ended && self->in_flight == 0) || self->o->halt_when != HALT_NEVER)
        s_wake (self);
}

//  --------------------------------------------------------------------------
//  Main

//  --dry-run: print the commands, run nothing
static int
s_dry_run (s_run_t *self)
{
    while (true) {
        run_job_t job;
        int rc;
        while ((rc = run_gen_next (self->gen, &job)) == 2) {
            struct pollfd in = { .fd = 0, .events = POLLIN };
            poll (&in, 1, -1);              //  stdin has no whole record yet
        }
        if (rc < 0)
            return RUN_EXIT_ERROR;
        if (rc == 0)
            break;
        if (job.skipped || s_resumed (self, job.seq, job.cmd))
            continue;
        run_str_t filled = { 0 };
        run_slot_fill (&filled, job.cmd, job.cmd_len, job.slot_at, s_turn_slot (self->o, job.seq));
        for (int q = 0; q < self->o->shellquote; q++) {
            run_str_t quoted = { 0 };
            run_quote (&quoted, filled.p, filled.len);
            free (filled.p);
            filled = quoted;
        }
        fwrite (filled.p, 1, filled.len, stdout);
        free (filled.p);
        fputc ('\n', stdout);
        if (ferror (stdout))
            break;
    }
    return 0;
}

static int
s_exit_status (s_run_t *self, int rc)
{
    if (rc != 0)
        return rc;
    if (self->halting && self->halt_status >= 0)
        return self->halt_status;
    return self->failed > 101 ? 101 : (int) self->failed;
}

//  Run every job and print the results. Returns the exit status.
static int
s_run (s_run_t *self, dp_iter_t *it)
{
    int rc = 0;
    while (true) {
        dp_result_t r;
        int got = dp_iter_next (it, &r, S_TICK_MS);
        if (s_interrupted) {
            rc = 130;
            break;
        }
        if (self->stdout_broken)
            break;                      //  a part found stdout closed (| head)
        if (got == 1) {
            s_result (self, &r);
            //  the whole batch that has arrived, then print and sync once
            while (!self->halt_now && dp_iter_next (it, &r, 0) == 1)
                s_result (self, &r);
            s_joblog_sync (self, false);
            s_print_ready (self, false);
            if (self->stdout_broken || self->halt_now)
                break;
        }
        else
        if (got == 0)
            break;
        else
        if (got != DP_TIMEOUT) {
            s_progress_clear (self);
            fprintf (stderr, "dpool run: %s\n", dp_strerror_last ());
            rc = RUN_EXIT_ERROR;
            break;
        }
        if (s_now_ms () >= self->next_draw_ms)
            s_progress_draw (self, false);
    }
    s_joblog_sync (self, true);
    s_print_ready (self, true);         //  a halt: what finished is printed
    if (rc == 0 && !self->stdout_broken)
        s_progress_draw (self, true);
    return rc;
}

static int s_run_main (run_opts_t *op);

int
run_main (int argc, char *argv [])
{
    run_opts_t o;
    memset (&o, 0, sizeof o);
    int rc = run_parse_args (argc, argv, &o);
    if (rc < 0)
        rc = s_run_main (&o);
    run_opts_free (&o);
    return rc;
}

static int
s_run_main (run_opts_t *op)
{
    run_opts_t o = *op;         //  (read-only from here; freed by run_main)
    int rc;
    //  --line-buffer -k: GNU parallel prints the lines of the oldest job as
    //  they come and the others' once due: what -g does here, with every
    //  job's output in PARTs as it comes
    bool flush = o.output != RUN_OUT_GROUP && !o.results;
    if (o.output == RUN_OUT_LINE && o.keep_order)
        o.output = RUN_OUT_GROUP;
    s_run_t self = { .o = &o, .wake = { -1, -1 }, .halt_status = -1, .spill = -1,
                     .flush = flush };
    self.start_ms = s_now_ms ();
    if (o.joblog && (o.resume || o.resume_failed || o.retry_failed)
    &&  s_joblog_read (&self) != 0) {
        fprintf (stderr, "dpool run: cannot read joblog '%s': %s\n", o.joblog, strerror (errno));
        return RUN_EXIT_ERROR;
    }
    if (!o.retry_failed) {
        self.gen = run_gen_new (&o);
        if (!self.gen)
            return RUN_EXIT_ERROR;
    }
    if (o.dry_run) {
        rc = o.retry_failed ? 0 : s_dry_run (&self);
        run_gen_destroy (&self.gen);
        return rc;
    }
    if (o.joblog && s_joblog_open (&self) != 0) {
        fprintf (stderr, "dpool run: cannot open joblog '%s': %s\n", o.joblog, strerror (errno));
        run_gen_destroy (&self.gen);
        return RUN_EXIT_ERROR;
    }
    //  what every item carries
    self.shell = run_shell ();
    self.delay_ms = o.delay_s * 1000.0;
    char cwd [4096];
    const char *dir = o.workdir ? o.workdir : getcwd (cwd, sizeof cwd);
    self.cwd = dir ? realpath (dir, NULL) : NULL;
    if (o.workdir && !self.cwd) {
        fprintf (stderr, "dpool run: --wd %s: %s\n", o.workdir, strerror (errno));
        return RUN_EXIT_ERROR;
    }
    if (o.nenv) {
        self.env = (char **) s_alloc (NULL, ((size_t) o.nenv + 1) * sizeof (char *));
        int n = 0;
        for (int i = 0; i < o.nenv; i++) {
            const char *value = getenv (o.env [i]);
            if (!value)
                continue;
            self.env [n] = (char *) s_alloc (NULL, strlen (o.env [i]) + strlen (value) + 2);
            sprintf (self.env [n++], "%s=%s", o.env [i], value);
        }
        self.env [n] = NULL;
    }
    msgpack_sbuffer_init (&self.item);
    if (pipe (self.wake) != 0) {
        fprintf (stderr, "dpool run: pipe: %s\n", strerror (errno));
        return RUN_EXIT_ERROR;
    }
    fcntl (self.wake [0], F_SETFL, O_NONBLOCK);
    fcntl (self.wake [1], F_SETFL, O_NONBLOCK);
    fcntl (self.wake [0], F_SETFD, FD_CLOEXEC);
    fcntl (self.wake [1], F_SETFD, FD_CLOEXEC);

    dp_pool_opts_t popts = { 0 };
    popts.endpoint = o.broker;
    popts.timeout_ms = o.broker_timeout_ms;
    popts.curve_secret = o.curve_secret;
    popts.broker_key = o.broker_key;
    //  no -j and no -b: $DPOOL_BROKER if set (a pool given workers is
    //  always embedded, dp_pool_open), else local workers
    if (o.jobs || (!o.broker && !getenv ("DPOOL_BROKER"))) {
        popts.workers = o.jobslots;
        popts.mode = o.broker ? DP_POOL_REMOTE : DP_POOL_EMBEDDED;
    }
    if (o.broker)
        popts.mode = DP_POOL_REMOTE;
    self.embedded = popts.mode == DP_POOL_EMBEDDED || (!o.broker && !getenv ("DPOOL_BROKER"));
    //  {%} and --process-slot-var are GNU parallel's slot in a local pool
    if (popts.mode == DP_POOL_EMBEDDED && self.gen && (run_gen_uses_slot (self.gen) || o.slotvar)
    &&  o.jobslots > 0) {
        self.own_slots = true;
        self.slot_busy = (bool *) s_alloc (NULL, (size_t) o.jobslots * sizeof (bool));
        memset (self.slot_busy, 0, (size_t) o.jobslots * sizeof (bool));
    }
    signal (SIGINT, s_on_signal);
    signal (SIGTERM, s_on_signal);
    signal (SIGPIPE, SIG_IGN);
    dp_pool_t *pool = dp_pool_open (&popts);
    if (!pool) {
        fprintf (stderr, "dpool run: %s\n", dp_strerror_last ());
        run_gen_destroy (&self.gen);
        return RUN_EXIT_ERROR;
    }
    if (!self.gen || !run_gen_uses_stdin (self.gen))
        s_swap_fd0 (&self);
    dp_job_opts_t jopts = { 0 };
    jopts.has_input_fd = true;
    jopts.input_fd = 0;
    jopts.timeout_pct = o.timeout_pct;
    jopts.max_attempts = o.max_attempts;
    if (!o.results) {                   //  --results writes whole outputs
        jopts.on_part = s_part;
        jopts.part_arg = &self;
    }
    dp_iter_t *it = dp_imap_unordered (pool, "exec", &jopts, s_input, &self);
    self.it = it;
    if (!it) {
        fprintf (stderr, "dpool run: %s\n", dp_strerror_last ());
        rc = RUN_EXIT_ERROR;
    }
    else
        rc = s_run (&self, it);
    //  closing the pool cancels what still runs (a halt, a closed stdout)
    dp_pool_close (&pool);
    dp_iter_destroy (&it);
    if (self.joblog && self.joblog != stdout)
        fclose (self.joblog);
    run_gen_destroy (&self.gen);
    for (uint64_t p = self.head; p < self.tail; p++)
        s_ent_free (s_ent (&self, p));
    free (self.ring);
    free (self.index_pos);
    free (self.retry);
    free (self.slot_busy);
    for (size_t i = 0; i < self.nretry_list; i++)
        free (self.retry_list [i].cmd);
    free (self.retry_list);
    zhashx_destroy (&self.done_seq);
    zhashx_destroy (&self.done_cmd);
    msgpack_sbuffer_destroy (&self.item);
    for (int i = 0; self.env && self.env [i]; i++)
        free (self.env [i]);
    free (self.env);
    free (self.shell);
    free (self.cwd);
    free (self.plain_name);
    free (self.plain_text);
    close (self.wake [0]);
    close (self.wake [1]);
    if (self.spill >= 0)
        close (self.spill);
    if (self.stdout_broken) {
        //  the conventional end of a writer whose reader went away
        signal (SIGPIPE, SIG_DFL);
        raise (SIGPIPE);
        return 141;
    }
    return s_exit_status (&self, rc);
}
