/*  =========================================================================
    dp_run - `dpool run`, a drop-in for GNU parallel: shared declarations

    Three files, one direction of use:
      dp_run_args.c   the command line -> run_opts_t (every GNU parallel
                      option is known: implemented, or refused with 255)
      dp_run_input.c  input sources, replacement strings and quoting ->
                      one shell command per job (run_gen_t)
      dp_run.c        the run loop: jobs out to the pool's exec task,
                      replies printed in input order, joblog, halt, retries
    =========================================================================
*/
#ifndef DP_RUN_H_INCLUDED
#define DP_RUN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

//  GNU parallel's exit status for errors other than failed jobs
#define RUN_EXIT_ERROR      255
#define RUN_MAX_SOURCES     64
#define RUN_MAX_ENV         64
//  GNU parallel's usable command line length (-m, -X, --xargs) on Linux
#define RUN_MAX_LINE        63664

//  A growable list of owned strings
//  How a job's output is written
#define RUN_OUT_GROUP   0           //  -g: per job, in input order (the job
                                    //  due next streams what is over 1 MiB)
#define RUN_OUT_UNGROUP 1           //  -u: as it comes
#define RUN_OUT_LINE    2           //  --line-buffer: in whole lines as they come

typedef struct {
    char **v;
    size_t *len;                //  lengths (strings may hold NUL with -0)
    size_t n, cap;
} run_strv_t;

void run_strv_add (run_strv_t *self, const char *s, size_t len);
void run_strv_free (run_strv_t *self);

//  A growable byte string
typedef struct {
    char *p;
    size_t len, cap;
} run_str_t;

void run_str_add (run_str_t *self, const char *data, size_t len);
void run_str_adds (run_str_t *self, const char *s);

//  Byte offsets in a command (or tag) where the job slot goes ({%}): it is
//  known only once a worker runs the job (its slot: dp_exec_msg.h "slotat")
typedef struct {
    size_t *at;
    size_t n, cap;
} run_offs_t;

//  `text` with `slot` written in decimal at each offset, into out (reset)
void run_slot_fill (run_str_t *out, const char *text, size_t len, const run_offs_t *offs,
                    uint64_t slot);

//  One input source: a ::: list, or a file (:::: FILE, -a FILE; "-" is stdin)
typedef struct {
    bool is_file;
    const char *path;           //  file sources
    run_strv_t values;          //  list sources (and files once read)
    bool linked;                //  :::+ / ::::+ : linked to the source before
} run_source_t;

typedef enum { HALT_NEVER, HALT_NOW, HALT_SOON } run_halt_when_t;
typedef enum { HALT_FAIL, HALT_SUCCESS, HALT_DONE } run_halt_why_t;

typedef struct {
    //  command and replacement strings
    char **command;             //  the command words (argv slice), may be 0
    int ncommand;
    bool quote;                 //  -q
    const char *repl [7];       //  {} {.} {/} {//} {/.} {#} {%} (or -I ...)
    bool plus;                  //  --plus: its replacement strings too
    //  input
    run_source_t sources [RUN_MAX_SOURCES];
    int nsources;
    bool link_all;              //  --link / --xapply
    char delim;                 //  record delimiter ('\n', 0 with -0, -d)
    const char *colsep;         //  --colsep REGEXP (NULL: none)
    bool header;                //  --header :
    const char *header_re;      //  its value: with --pipe, ':' a line, N lines, or a
                                //  regexp (Perl's, as POSIX ERE) matched at the start
    const char *trim;           //  --trim n|l|r|lr|rl
    bool no_run_if_empty;       //  -r
    const char *eof_str;        //  -E
    bool skip_first_line;
    //  arguments per job
    int max_args;               //  -n (0: one input record per job)
    bool max_replace;           //  -N: -n without appending when no {}
    int multi;                  //  0, 'm' (-m), 'X' (-X), 'x' (--xargs)
    size_t max_chars;           //  -s: command line length for them (0: RUN_MAX_LINE)
    //  running
    const char *jobs;           //  -j value as given (NULL: CPUs)
    int jobslots;               //  resolved
    run_strv_t profile_words;   //  the profiles' and $PARALLEL's words (owned)
    char **argv_built;          //  their leftover words + the command line's (owned)
    char cpu_unit;              //  what -j's 100% counts: 0 CPUs, 'c' cores, 's' sockets
    uint32_t max_attempts;      //  --max-attempts (0: the pool's 3)
    const char *broker;         //  -b / --broker
    int broker_timeout_ms;
    const char *curve_secret;   //  --curve-secret FILE
    const char *broker_key;     //  --broker-key FILE
    double timeout_s;           //  --timeout S (0: none)
    uint32_t termseq [32];      //  --termseq: signal, ms, ... (ntermseq pairs; 0: the default)
    size_t ntermseq;
    double delay_s;             //  --delay S: no job starts within S of the last (0: none)
    bool delay_auto;            //  --delay Sauto: S grows 30% at a failure, shrinks 10% at a success
    uint32_t timeout_pct;       //  --timeout N%
    int retries;                //  --retries N (times a job is tried)
    run_halt_when_t halt_when;
    run_halt_why_t halt_why;
    double halt_value;          //  count, or percentage when halt_pct
    bool halt_pct;
    const char *env [RUN_MAX_ENV];
    int nenv;
    const char *workdir;        //  --wd DIR
    int nice;                   //  --nice N (0: none)
    const char *slotvar;        //  --process-slot-var NAME (NULL: none)
    //  output
    bool dry_run;
    int shellquote;             //  --shellquote (times given): print each command
                                //  shell-quoted that often, run nothing
    int output;                 //  RUN_OUT_*: -g (default), -u, --line-buffer
    bool keep_order;            //  true but with --nok: output in input order (with
                                //  --line-buffer too: GNU parallel's -k --lb)
    bool tag;
    const char *tagstring;
    bool verbose;               //  -t: commands to stderr
    bool verbose_out;           //  -v: each command on stdout, before its output
    bool bar, eta, progress;
    const char *joblog;
    const char *tmpdir;         //  --tmpdir: the spill file's folder (NULL: $TMPDIR, /tmp)
    bool resume, resume_failed, retry_failed;
    bool resume_by_content;     //  --resume-by content (dpool extension)
    const char *results;        //  --results DIR
    //  --pipe
    bool pipe;
    bool pipepart;              //  --pipepart: the -a files cut in parts (dp_run_part.c)
    bool tee;                   //  --pipe --tee: all of stdin to every job (pipe is then
                                //  false: the jobs come from the arguments)
    size_t block_size;
    bool block_given;           //  --block was given
    int block_parts;            //  --block -N: N parts per job slot (--pipepart)
    const char *block_text;     //  its value as given
    const char *recstart, *recend;
    bool rrs;                   //  --rrs: the separators taken out of each block
    bool regexp;                //  --regexp: --recstart / --recend are regexps
                                //  (Perl's, as POSIX ERE)
    int pipe_records;           //  -N with --pipe / -L: records per block
} run_opts_t;

//  Parse `dpool run`'s arguments (argv [0] is "run"). Returns -1 when the
//  job is to run, else the exit status (help shown: 0; error: 255, one
//  line on stderr already printed).
int run_parse_args (int argc, char *argv [], run_opts_t *opts);
//  Free what run_parse_args allocated (the list sources, --recstart/--recend).
void run_opts_free (run_opts_t *opts);
void run_usage (FILE *out);
//  Print the one-line usage error and return 255.
int run_usage_error (const char *fmt, ...);

//  The jobs of a run, made from the input sources and the template
typedef struct run_gen run_gen_t;

//  One generated job
typedef struct {
    uint64_t seq;               //  {#}, 1-based
    const char *cmd;            //  shell command line
    size_t cmd_len;
    const run_offs_t *slot_at;  //  where {%} goes in cmd (n 0: nowhere)
    const char *tag;            //  --tag / --tagstring text (NULL: none)
    const run_offs_t *tag_slot_at;  //  where {%} goes in the tag
    const char *stdin_data;     //  --pipe block
    size_t stdin_len;
    char **args;                //  the job's arguments (for --results)
    const size_t *arg_lens;
    size_t nargs;
    const run_strv_t *names;    //  --header column names, or empty
    const char *results;        //  --results NAME with replacement strings: NAME
                                //  expanded (NULL: a plain directory)
    bool skipped;               //  --plus {uniq} / {choose_k} skip it: it does
                                //  not run and counts as failed (GNU parallel's
                                //  Exitval -2 in the joblog)
} run_job_t;

//  Check the template (unsupported replacement strings are refused: 255
//  and a line on stderr) and set up the input. Returns NULL after printing
//  why on error. fd 0 is read non-blocking where stdin is a source.
run_gen_t *run_gen_new (run_opts_t *opts);
void run_gen_destroy (run_gen_t **self_p);
//  Next job: 1 with *job set (valid until the next call), 0 at the end,
//  2 when stdin has no complete record yet, -1 on error (printed).
int run_gen_next (run_gen_t *self, run_job_t *job);
//  The number of jobs, where all input is read before the first (0: not known)
uint64_t run_gen_total (run_gen_t *self);
//  --tee: all of stdin (read when the generator starts), else NULL
const char *run_gen_tee (run_gen_t *self, size_t *len);
//  Does the generator read fd 0?
bool run_gen_uses_stdin (run_gen_t *self);
//  Do its commands or tags hold the job slot ({%}, --plus {slot})?
bool run_gen_uses_slot (run_gen_t *self);

//  The shell commands run with, as GNU parallel's: $PARALLEL_SHELL, else
//  the nearest ancestor process that is a shell, else $SHELL, else /bin/sh
//  (malloc'd; dp_run_shell.c)
char *run_shell (void);

//  --pipepart: the parts of the -a files (dp_run_part.c)
#define DP_RUN_PART_MAX (128u << 20)    //  the largest part, bytes
typedef struct {
    int fd;
    int64_t start, end;
} run_part_t;
typedef struct {
    run_part_t *v;
    size_t n, cap, at;
    int *fds;
    size_t nfds;
} run_parts_t;
//  Open the files and find the cuts. Returns 0, or -1 (printed).
int run_parts_find (run_parts_t *self, const run_opts_t *o);
//  The next part into out: 1, 0 when there is none left, -1 (printed).
int run_parts_read (run_parts_t *self, run_str_t *out);
void run_parts_free (run_parts_t *self);

//  GNU parallel's shell quoting of one word (appended to out)
void run_quote (run_str_t *out, const char *s, size_t len);
//  Expand one replacement string's function on an argument (exposed for
//  the unit test): kind 0 {} 1 {.} 2 {/} 3 {//} 4 {/.}
void run_transform (run_str_t *out, int kind, const char *s, size_t len);
//  Build one job's command from `args` (nargs arguments) as the generator
//  does; for the unit test. Returns 0 or -1 (unsupported replacement).
int run_build_command (run_opts_t *opts, const char **args, const size_t *lens,
                       size_t nargs, uint64_t seq, run_str_t *out);

//  The run loop (dp_run.c)
int run_main (int argc, char *argv []);

#endif
