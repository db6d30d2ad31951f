/*  test_exec - the built-in `exec` task through dp_map on an embedded pool

    Items and replies are the msgpack maps of dp_exec_msg.h. Checked: exit
    status and signal, stdout and stderr apart, cwd, env, PARALLEL_SEQ /
    PARALLEL_JOBSLOT, stdin, a bash function exported with `export -f`, a
    timeout that kills a command's whole process group (grandchild
    included), 50 MB of output returned exactly, output over the limit,
    and no orphan left when the worker is SIGKILLed, or killed by its
    supervisor for the job's timeout, while its command runs.

    Commands carry a marker argument (a sleep of an odd length) that is
    looked for in /proc to see whether they still run.
*/
#include "testutil.h"
#include "dpool.h"
#include "dp_exec_msg.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static dp_pool_t *s_pool;

//  Wait `ms` between two looks at a condition (polling with a deadline).
static void
s_nap (int ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep (&ts, NULL);
}

//  Encode an item; the buffer is kept in `buf` (destroy it).
static dp_item_t
s_item (const dp_exec_item_t *item, msgpack_sbuffer *buf)
{
    msgpack_sbuffer_init (buf);
    REQUIRE (dp_exec_item_encode (item, buf) == 0);
    return (dp_item_t) { buf->data, buf->size };
}

//  Run one item on `pool`; 0 with *reply decoded, or the failure status
//  with its message in why.
static int
s_run_on (dp_pool_t *pool, const dp_exec_item_t *item, const dp_job_opts_t *opts,
          dp_exec_reply_t *reply, char *why, size_t whylen)
{
    msgpack_sbuffer buf;
    dp_item_t it = s_item (item, &buf);
    dp_results_t *res = NULL;
    memset (reply, 0, sizeof *reply);
    long rc = dp_map (pool, "exec", &it, 1, opts, &res);
    msgpack_sbuffer_destroy (&buf);
    if (rc < 0) {
        //  the job failed as a whole (cancelled)
        snprintf (why, whylen, "%s", dp_strerror_last ());
        return -1;
    }
    int status = dp_results_status (res, 0);
    size_t len;
    const void *data = dp_results_data (res, 0, &len);
    if (status == DP_OK) {
        char err [256];
        if (dp_exec_reply_decode (data, len, reply, err, sizeof err)) {
            fprintf (stderr, "bad reply: %s\n", err);
            tu_failures++;
        }
    }
    else
        snprintf (why, whylen, "%s", (const char *) data);
    dp_results_destroy (&res);
    return status;
}

static int
s_run (const dp_exec_item_t *item, dp_exec_reply_t *reply, char *why, size_t whylen)
{
    return s_run_on (s_pool, item, NULL, reply, why, whylen);
}

static bool
s_out_is (const dp_exec_reply_t *reply, const char *text)
{
    return reply->out_size == strlen (text) && memcmp (reply->out, text, reply->out_size) == 0;
}

//  Pids of live processes whose command line holds `marker` (zombies have
//  none); up to `max` of them in pids. Returns how many.
static int
s_find (const char *marker, pid_t *pids, int max)
{
    DIR *dir = opendir ("/proc");
    REQUIRE (dir);
    int found = 0;
    struct dirent *e;
    while ((e = readdir (dir))) {
        pid_t pid = (pid_t) atoi (e->d_name);
        if (pid <= 0 || pid == getpid ())
            continue;
        char path [64], line [4096];
        snprintf (path, sizeof path, "/proc/%d/cmdline", (int) pid);
        FILE *f = fopen (path, "r");
        if (!f)
            continue;
        size_t n = fread (line, 1, sizeof line - 1, f);
        fclose (f);
        for (size_t i = 0; i < n; i++)
            if (line [i] == 0)
                line [i] = ' ';
        line [n] = 0;
        if (strstr (line, marker)) {
            if (found < max)
                pids [found] = pid;
            found++;
        }
    }
    closedir (dir);
    return found;
}

//  Wait up to ms for no process to hold the marker. Returns how many remain.
static int
s_wait_gone (const char *marker, int ms)
{
    pid_t pids [8];
    int64_t deadline = tu_now_ms () + ms;
    int left;
    while ((left = s_find (marker, pids, 8)) > 0 && tu_now_ms () < deadline)
        s_nap (20);
    for (int i = 0; i < left && i < 8; i++)
        kill (pids [i], SIGKILL);       //  leave nothing behind either way
    return left;
}

//  The parent pid of a process, or -1.
static pid_t
s_ppid (pid_t pid)
{
    char path [64], buf [512];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    size_t n = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf [n] = 0;
    const char *end = strrchr (buf, ')');
    int ppid = -1;
    char state;
    if (!end || sscanf (end + 1, " %c %d", &state, &ppid) != 2)
        return -1;
    return (pid_t) ppid;
}

static void
test_status (void)
{
    dp_exec_reply_t r;
    char why [512] = "";
    dp_exec_item_t ok = { .argv = (char *[]) { "true", NULL } };
    CHECK (s_run (&ok, &r, why, sizeof why) == DP_OK && r.status == 0 && r.signal == 0);
    CHECK (!r.timedout && r.start > 1.7e9 && r.runtime >= 0 && r.runtime < 30);
    char host [256] = "";
    gethostname (host, sizeof host);
    CHECK (r.host && strcmp (r.host, host) == 0);
    dp_exec_reply_destroy (&r);

    dp_exec_item_t three = { .sh = "echo before; exit 3" };
    CHECK (s_run (&three, &r, why, sizeof why) == DP_OK);
    CHECK (r.status == 3 && r.signal == 0 && s_out_is (&r, "before\n"));
    dp_exec_reply_destroy (&r);

    dp_exec_item_t term = { .sh = "kill -TERM $$; sleep 5" };
    CHECK (s_run (&term, &r, why, sizeof why) == DP_OK);
    CHECK (r.status == 128 + SIGTERM && r.signal == SIGTERM && !r.timedout);
    dp_exec_reply_destroy (&r);

    //  a command that cannot start fails the item
    dp_exec_item_t missing = { .argv = (char *[]) { "/nonexistent/dpool-test", NULL } };
    CHECK (s_run (&missing, &r, why, sizeof why) == DP_ERR_TASK);
    CHECK (strstr (why, "cannot run '/nonexistent/dpool-test'"));
    dp_exec_item_t nopath = { .argv = (char *[]) { "dpool-no-such-command", NULL } };
    CHECK (s_run (&nopath, &r, why, sizeof why) == DP_ERR_TASK && strstr (why, "cannot run"));
    //  so does an item that is not an exec map
    dp_item_t junk = { "sls", 3 };
    dp_results_t *res = NULL;
    CHECK (dp_map (s_pool, "exec", &junk, 1, NULL, &res) == 1);
    CHECK (strstr ((const char *) dp_results_data (res, 0, NULL), "exec item: not a msgpack map"));
    dp_results_destroy (&res);
    printf ("exit status, signal, cannot run, bad item: ok\n");
}

static void
test_streams (void)
{
    dp_exec_reply_t r;
    char why [512] = "";
    dp_exec_item_t both = { .sh = "echo out; echo err >&2; echo out2" };
    CHECK (s_run (&both, &r, why, sizeof why) == DP_OK);
    CHECK (s_out_is (&r, "out\nout2\n"));
    CHECK (r.err_size == 4 && memcmp (r.err, "err\n", 4) == 0);
    dp_exec_reply_destroy (&r);

    //  stdin: binary, larger than a pipe, fed while stdout is read
    size_t n = 3 << 20;
    uint8_t *input = malloc (n);
    REQUIRE (input);
    for (size_t i = 0; i < n; i++)
        input [i] = (uint8_t) (i * 7 + (i >> 12));
    dp_exec_item_t cat = { .argv = (char *[]) { "cat", NULL }, .input = input,
                           .input_size = n, .has_input = true };
    CHECK (s_run (&cat, &r, why, sizeof why) == DP_OK);
    CHECK (r.status == 0 && r.out_size == n && memcmp (r.out, input, n) == 0);
    dp_exec_reply_destroy (&r);
    //  a command that does not read its stdin is not an error
    dp_exec_item_t deaf = { .sh = "exit 0", .input = input, .input_size = n, .has_input = true };
    CHECK (s_run (&deaf, &r, why, sizeof why) == DP_OK && r.status == 0);
    dp_exec_reply_destroy (&r);
    free (input);
    //  no stdin: /dev/null
    dp_exec_item_t none = { .sh = "wc -c" };
    CHECK (s_run (&none, &r, why, sizeof why) == DP_OK && r.out_size >= 2 && r.out [0] == '0');
    dp_exec_reply_destroy (&r);
    printf ("stdout, stderr, stdin: ok\n");
}

static void
test_environment (void)
{
    dp_exec_reply_t r;
    char why [512] = "";
    char dir [] = "/tmp/dpool-exec-XXXXXX";
    REQUIRE (mkdtemp (dir));
    dp_exec_item_t cwd = { .sh = "pwd", .cwd = dir };
    CHECK (s_run (&cwd, &r, why, sizeof why) == DP_OK);
    char want [600];
    snprintf (want, sizeof want, "%s\n", dir);
    CHECK (s_out_is (&r, want));
    dp_exec_reply_destroy (&r);
    rmdir (dir);
    //  a cwd that does not exist on the node: the worker's, silently
    char here [512];
    REQUIRE (getcwd (here, sizeof here));
    dp_exec_item_t gone = { .sh = "pwd", .cwd = dir };
    CHECK (s_run (&gone, &r, why, sizeof why) == DP_OK && r.status == 0);
    snprintf (want, sizeof want, "%s\n", here);
    CHECK (s_out_is (&r, want) && r.err_size == 0);
    dp_exec_reply_destroy (&r);

    char *env [] = { "DP_TEST_A=two words", "DP_TEST_B=", "HOME=/elsewhere", NULL };
    dp_exec_item_t vars = { .sh = "echo \"$DP_TEST_A|${DP_TEST_B-unset}|$HOME|$PARALLEL_SEQ|$PARALLEL_JOBSLOT\"",
                            .env = env, .seq = 42, .has_seq = true, .slot = 3, .has_slot = true };
    CHECK (s_run (&vars, &r, why, sizeof why) == DP_OK);
    CHECK (s_out_is (&r, "two words||/elsewhere|42|3\n"));
    dp_exec_reply_destroy (&r);
    //  argv: no shell at all
    dp_exec_item_t argv = { .argv = (char *[]) { "printf", "[%s]", "a b", "$HOME", NULL } };
    CHECK (s_run (&argv, &r, why, sizeof why) == DP_OK && s_out_is (&r, "[a b][$HOME]"));
    dp_exec_reply_destroy (&r);

    //  "shell": a bash function exported with export -f, as $PARALLEL_SHELL
    //  / $SHELL would carry it
    if (access ("/bin/bash", X_OK) == 0) {
        FILE *f = popen ("bash -c 'f(){ echo hi $1; }; export -f f; env -0 | grep -z ^BASH_FUNC_f'", "r");
        REQUIRE (f);
        char func [1024];
        size_t n = fread (func, 1, sizeof func - 1, f);
        pclose (f);
        func [n] = 0;
        CHECK (strncmp (func, "BASH_FUNC_f%%=", 14) == 0);
        char *fenv [] = { func, NULL };
        dp_exec_item_t bash = { .sh = "f there", .shell = "/bin/bash", .env = fenv };
        CHECK (s_run (&bash, &r, why, sizeof why) == DP_OK && s_out_is (&r, "hi there\n"));
        dp_exec_reply_destroy (&r);
        dp_exec_item_t byname = { .sh = "echo $BASH_VERSION | cut -c1", .shell = "bash" };
        CHECK (s_run (&byname, &r, why, sizeof why) == DP_OK && r.out_size == 2);
        dp_exec_reply_destroy (&r);
    }
    else
        printf ("no /bin/bash: export -f not checked\n");
    printf ("cwd, env, seq/slot, shell: ok\n");
}

static void
test_timeout (void)
{
    dp_exec_reply_t r;
    char why [512] = "";
    const char *marker = "31.4159";
    dp_exec_item_t slow = { .sh = "sleep 31.4159 & echo $!; sleep 31.4159", .timeout = 0.5 };
    int64_t start = tu_now_ms ();
    CHECK (s_run (&slow, &r, why, sizeof why) == DP_OK);
    int64_t took = tu_now_ms () - start;
    CHECK (r.timedout && r.signal == SIGTERM && r.status == 128 + SIGTERM);
    CHECK (took < 3000 && r.runtime >= 0.5 && r.runtime < 3);
    int grandchild = atoi ((const char *) (r.out ? r.out : (uint8_t *) "0"));
    CHECK (grandchild > 0);
    dp_exec_reply_destroy (&r);
    CHECK (s_wait_gone (marker, 3000) == 0);
    //  one that ignores SIGTERM gets SIGKILL after GNU parallel's termseq
    dp_exec_item_t stubborn = { .sh = "trap '' TERM; sleep 29.7 & sleep 29.7", .timeout = 0.3 };
    CHECK (s_run (&stubborn, &r, why, sizeof why) == DP_OK);
    CHECK (r.timedout && r.signal == SIGKILL && r.runtime < 3);
    dp_exec_reply_destroy (&r);
    CHECK (s_wait_gone ("29.7", 3000) == 0);
    //  a background process left when the command exits goes with it
    dp_exec_item_t bg = { .sh = "sleep 28.3 >/dev/null 2>&1 & echo started" };
    CHECK (s_run (&bg, &r, why, sizeof why) == DP_OK && r.status == 0 && s_out_is (&r, "started\n"));
    dp_exec_reply_destroy (&r);
    CHECK (s_wait_gone ("28.3", 3000) == 0);
    printf ("timeout: group killed in %lld ms, grandchild %d gone\n", (long long) took, grandchild);
}

static void
test_big (void)
{
    dp_exec_reply_t r;
    char why [512] = "";
    //  1 MB of stderr first (more than a pipe holds: stderr must be read
    //  while stdout is not done), then 50 MB of stdout
    size_t n = 50000000;
    dp_exec_item_t big = { .sh = "head -c 1000000 /dev/zero >&2; "
                                 "yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM | head -c 50000000" };
    int64_t start = tu_now_ms ();
    CHECK (s_run (&big, &r, why, sizeof why) == DP_OK);
    int64_t took = tu_now_ms () - start;
    CHECK (r.status == 0 && r.out_size == n && r.err_size == 1000000);
    const char *line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM\n";
    size_t bad = 0;
    for (size_t i = 0; r.out && i < r.out_size; i++)
        bad += r.out [i] != (uint8_t) line [i % 50];
    CHECK (bad == 0);
    dp_exec_reply_destroy (&r);
    printf ("50 MB of stdout + 1 MB of stderr: exact, %lld ms\n", (long long) took);

    dp_exec_item_t huge = { .sh = "head -c 140000000 /dev/zero; sleep 26.5" };
    CHECK (s_run (&huge, &r, why, sizeof why) == DP_ERR_TASK);
    CHECK (strstr (why, "output over 134217728 bytes"));
    CHECK (s_wait_gone ("26.5", 3000) == 0);
    printf ("output over the limit: %s\n", why);
}

//  A job on its own thread, so that the main thread can kill its worker.
typedef struct {
    dp_pool_t *pool;
    const char *sh;
    uint32_t timeout_ms;
    volatile int *cancel;
    int status;
    char why [512];
} s_job_t;

static void *
s_job_thread (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    dp_exec_item_t item = { .sh = (char *) job->sh };
    dp_job_opts_t opts = { .max_attempts = 1, .timeout_ms = job->timeout_ms,
                           .cancel = job->cancel };
    dp_exec_reply_t reply;
    job->status = s_run_on (job->pool, &item, &opts, &reply, job->why, sizeof job->why);
    dp_exec_reply_destroy (&reply);
    return NULL;
}

//  A worker SIGKILLed while its command runs: the command and its
//  grandchild go. Then the same through the supervisor (job timeout).
static void
test_no_orphans (void)
{
    dp_pool_opts_t popts = { .workers = 1, .mode = DP_POOL_EMBEDDED };
    dp_pool_t *pool = dp_pool_open (&popts);
    REQUIRE (pool);
    s_job_t job = { .pool = pool, .sh = "sleep 27.1828 & sleep 27.1828; echo done" };
    pthread_t thread;
    REQUIRE (pthread_create (&thread, NULL, s_job_thread, &job) == 0);
    pid_t pids [8];
    int64_t deadline = tu_now_ms () + 20000;
    while (s_find ("27.1828", pids, 8) < 3 && tu_now_ms () < deadline)
        s_nap (20);
    //  the shell (its parent is the worker) and its two sleeps
    int found = s_find ("27.1828", pids, 8);
    CHECK (found == 3);
    pid_t worker = -1;
    for (int i = 0; i < found && i < 8; i++) {
        pid_t ppid = s_ppid (pids [i]);
        bool ours = false;
        for (int j = 0; j < found && j < 8; j++)
            ours |= ppid == pids [j];
        if (!ours)
            worker = ppid;              //  the one whose parent is not a marker
    }
    REQUIRE (worker > 1 && worker != getpid ());
    CHECK (kill (worker, SIGKILL) == 0);
    int64_t killed = tu_now_ms ();
    int left = s_wait_gone ("27.1828", 3000);
    CHECK (left == 0);
    printf ("worker %d SIGKILLed: its command group gone in %lld ms (%d left)\n",
            (int) worker, (long long) (tu_now_ms () - killed), left);
    pthread_join (thread, NULL);
    CHECK (job.status == DP_ERR_DIED);

    //  the supervisor kills the worker for the job's timeout
    s_job_t timed = { .pool = pool, .sh = "sleep 23.4567 & sleep 23.4567", .timeout_ms = 500 };
    REQUIRE (pthread_create (&thread, NULL, s_job_thread, &timed) == 0);
    pthread_join (thread, NULL);
    CHECK (timed.status == DP_ERR_TIMEOUT);
    left = s_wait_gone ("23.4567", 3000);
    CHECK (left == 0);
    printf ("job timeout (worker killed by its supervisor): %d of its command group left\n", left);

    //  a cancelled job: the broker aborts the chunk, the supervisor kills
    //  the worker whose item still runs
    volatile int cancel = 0;
    s_job_t cancelled = { .pool = pool, .sh = "sleep 21.0987 & sleep 21.0987", .cancel = &cancel };
    REQUIRE (pthread_create (&thread, NULL, s_job_thread, &cancelled) == 0);
    deadline = tu_now_ms () + 20000;
    while (s_find ("21.0987", pids, 8) < 3 && tu_now_ms () < deadline)
        s_nap (20);
    CHECK (s_find ("21.0987", pids, 8) == 3);
    cancel = 1;
    int64_t asked = tu_now_ms ();
    left = s_wait_gone ("21.0987", 3000);
    CHECK (left == 0);
    pthread_join (thread, NULL);
    CHECK (cancelled.status != DP_OK);
    printf ("job cancelled: command group gone in %lld ms (%d left), item: %s\n",
            (long long) (tu_now_ms () - asked), left, cancelled.why);
    dp_pool_close (&pool);
}

int
main (void)
{
    dp_pool_opts_t opts = { .workers = 2, .mode = DP_POOL_EMBEDDED };
    s_pool = dp_pool_open (&opts);
    if (!s_pool) {
        fprintf (stderr, "cannot open a pool: %s\n", dp_strerror_last ());
        return 1;
    }
    test_status ();
    test_streams ();
    test_environment ();
    test_timeout ();
    test_big ();
    dp_pool_close (&s_pool);
    test_no_orphans ();
    return tu_done ("test_exec");
}
