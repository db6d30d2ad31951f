/*  Limits a real dpool-broker enforces on peers, over real sockets, with
    raw DEALERs for the peers that misbehave:

    window   WELCOME's wbytes and item window: a BATCH beyond them gets
             ERROR EWINDOW and is not kept
    noread   a client that sends items and reads nothing: the broker's RSS
             stays bounded (its answers wait, its window stays closed)
    caps     --max-clients, --max-workers, --max-jobs answered ELIMIT
    evict    --max-workers 3 filled by raw READYs that then sit (two silent
             with an hour's heartbeat, one heartbeating with a task nobody
             runs): a real dpool-worker still gets in (an idle one that
             never worked is evicted) and a map through it completes
    frames   the bound on one message (PROTOCOL.md §9.1): 10 frames are
             refused EFRAMES and drained (the next message is read whole);
             a worker node drops a connection that sends it a 100 KiB
             frame (its MAXMSGSIZE), not one of 1 KiB
    backlog  a client that reads nothing while its answers fill its pipe,
             then asks things that are answered ERROR or REPORT, then
             reads: every item answered exactly once, and every ERROR and
             the REPORT arrive (they wait at the broker, never dropped)
    fds      under a file descriptor limit of 256, hundreds of idle
             connections, then a local worker restart: the broker lives,
             and a real job runs
    bigitems, multipart: measurements (not in the suite), see README

    `test_broker_limits` runs the suite's parts; `test_broker_limits PART
    [SIZE]` one part, SIZE scaling the measurements (MiB, or connections). */
#include "testpeer.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void *s_ctx;
static pid_t s_broker;
static const char *s_broker_err;    //  the next broker's stderr, or NULL
static int s_rcvbuf;                //  SO_RCVBUF of the next DEALERs (0: the kernel's)

static void
s_kill_broker (void)
{
    if (s_broker > 0)
        kill (s_broker, SIGKILL);
}

//  Start a broker with these extra arguments, file descriptors limited to
//  `nofile` (0: as we are). Endpoints written to clients, workers.
static pid_t
s_start_broker (char *clients, char *workers, const char *jobs, char *const *extra, int nofile)
{
    snprintf (clients, 64, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, 64, "tcp://127.0.0.1:%d", tu_free_port ());
    char *argv [32] = { (char *) tu_bin ("dpool-broker"), "-c", clients, "-w", workers,
                        "-j", (char *) jobs, "-m", (char *) tu_lib ("libdpool_testtasks.so"),
                        "--task-wait", "60000", "--no-curve" };
    int argc = 12;          //  raw sockets below: plaintext on loopback
    for (int i = 0; extra && extra [i] && argc < 31; i++)
        argv [argc++] = extra [i];
    argv [argc] = NULL;
    fflush (stdout);
    pid_t pid = fork ();
    if (pid == 0) {
        if (nofile) {
            struct rlimit limit = { (rlim_t) nofile, (rlim_t) nofile };
            setrlimit (RLIMIT_NOFILE, &limit);
        }
        //  CZMQ logs to stdout
        if (s_broker_err && (!freopen (s_broker_err, "w", stdout) || dup2 (1, 2) < 0))
            _exit (126);
        execv (argv [0], argv);
        _exit (127);
    }
    REQUIRE (pid > 0);
    s_broker = pid;
    return pid;
}

static void
s_stop_broker (pid_t pid)
{
    CHECK (tu_alive (pid));
    kill (pid, SIGTERM);
    int status = tu_wait (pid, 10000);
    CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    s_broker = 0;
}

//  A DEALER that retries a refused connection once a second.
static void *
s_dealer (const char *endpoint, int rcvhwm)
{
    void *sock = tu_dealer_new (s_ctx);
    int ivl = 1000;
    zmq_setsockopt (sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    if (rcvhwm)
        zmq_setsockopt (sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    if (s_rcvbuf)
        zmq_setsockopt (sock, ZMQ_RCVBUF, &s_rcvbuf, sizeof s_rcvbuf);
    REQUIRE (zmq_connect (sock, endpoint) == 0);
    return sock;
}

//  A raw client: HELLO, WELCOME (copied to *welcome if given).
static void *
s_client (const char *clients, int rcvhwm, dp_msg_t *welcome)
{
    void *sock = s_dealer (clients, rcvhwm);
    dp_msg_t msg;
    CHECK (tu_hello (sock, &msg) == DP_CMD_WELCOME);
    if (welcome)
        *welcome = msg;
    dp_msg_reset (&msg);
    return sock;
}

static void
s_job (void *sock, uint32_t job, const char *task)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_JOB);
    msg.job = job;
    snprintf (msg.task, sizeof msg.task, "%s", task);
    tu_send_try (sock, &msg);
}

//  BATCH of n items of `size` bytes each.
static int
s_batch (void *sock, uint32_t job, uint64_t first, uint32_t n, size_t size, int flags)
{
    dp_batch_t batch;
    dp_batch_init (&batch);
    for (uint32_t i = 0; i < n; i++) {
        size_t start = batch.size;
        void *p = dp_batch_reserve (&batch, size);
        REQUIRE (p);
        memset (p, 'a' + (int) (i % 26), size);
        dp_batch_set_size (&batch, start + size);
        dp_batch_commit (&batch, start, 0);
    }
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_BATCH);
    msg.job = job;
    msg.first = first;
    REQUIRE (dp_batch_attach (&batch, &msg, false) == 0);
    dp_batch_clear (&batch);
    (void) flags;
    return tu_send_try (sock, &msg);
}

//  The next ERROR within `ms` (other messages skipped): its code, or 0.
static int
s_error (void *sock, int ms, uint32_t *job)
{
    dp_msg_t msg;
    dp_msg_init (&msg, 0);
    int64_t deadline = tu_now_ms () + ms;
    int code = 0;
    while (!code && tu_now_ms () < deadline) {
        int cmd = tu_recv (sock, &msg, (int) (deadline - tu_now_ms ()));
        if (cmd == DP_CMD_ERROR) {
            code = msg.code;
            if (job)
                *job = msg.job;
            printf ("  ERROR %d: %s\n", msg.code, msg.text);
        }
        dp_msg_reset (&msg);
    }
    return code;
}

//  --------------------------------------------------------------------------

static void
s_test_window (void)
{
    char clients [64], workers [64];
    char *extra [] = { "--window-bytes", "4", "--window", "100", NULL };
    pid_t broker = s_start_broker (clients, workers, "none", extra, 0);
    dp_msg_t welcome;
    void *sock = s_client (clients, 0, &welcome);
    printf ("window: WELCOME window %u wbytes %llu batch %u\n", welcome.window,
            (unsigned long long) welcome.wbytes, welcome.batch);
    CHECK (welcome.window == 100 && welcome.wbytes == 4u << 20);
    //  no worker has the task: nothing is answered, everything stays out
    s_job (sock, 1, "echo");
    s_batch (sock, 1, 0, 3, 1 << 20, 0);        //  3 MiB out: fine
    s_batch (sock, 1, 3, 3, 1 << 20, 0);        //  started under 4 MiB: fine
    CHECK (s_error (sock, 500, NULL) == 0);
    s_batch (sock, 1, 6, 1, 10, 0);             //  6 MiB out: over
    uint32_t job = 0;
    CHECK (s_error (sock, 3000, &job) == DP_PROTO_EWINDOW && job == 1);
    //  the job's bytes are released with it: a new job may send again
    s_job (sock, 2, "echo");
    s_batch (sock, 2, 0, 50, 100, 0);
    CHECK (s_error (sock, 500, NULL) == 0);
    s_batch (sock, 2, 50, 51, 100, 0);          //  101 items out: over
    CHECK (s_error (sock, 3000, &job) == DP_PROTO_EWINDOW && job == 2);
    zmq_close (sock);
    s_stop_broker (broker);
}

//  A client sends `mib` MiB of 1 MiB items to an echo worker and reads
//  nothing (its receive queue holds one message). Returns the broker's
//  peak RSS in KiB.
static long
s_noread (int mib, int window_mb)
{
    char clients [64], workers [64], wmb [16];
    snprintf (wmb, sizeof wmb, "%d", window_mb);
    char *extra [] = { "--window-bytes", wmb, NULL };
    pid_t broker = s_start_broker (clients, workers, "2", extra, 0);
    void *sock = s_client (clients, 1, NULL);
    long base = tu_status_kb (broker, "VmRSS"), peak = base;
    uint32_t job = 1;
    s_job (sock, job, "echo");
    uint64_t first = 0;
    int sent = 0;
    int64_t deadline = tu_now_ms () + 120000;
    while (sent < mib && tu_now_ms () < deadline) {
        zmq_pollitem_t item = { sock, 0, ZMQ_POLLOUT, 0 };
        if (zmq_poll (&item, 1, 10000) <= 0)
            break;                  //  our own queue stays full: TCP pushes back
        if (s_batch (sock, job, first, 1, 1 << 20, ZMQ_DONTWAIT) != 0)
            break;
        first++;
        sent++;
        if (sent % 64 == 0) {
            //  a job refused with EWINDOW is gone: the next BATCHes get
            //  EJOB; a new job keeps the pressure on
            s_job (sock, ++job, "echo");
            first = 0;
            long rss = tu_status_kb (broker, "VmRSS");
            peak = rss > peak ? rss : peak;
        }
    }
    for (int i = 0; i < 20; i++) {
        long rss = tu_status_kb (broker, "VmRSS");
        peak = rss > peak ? rss : peak;
        usleep (50000);
    }
    printf ("noread: sent %d MiB in 1 MiB items without reading; broker RSS %ld MiB at start, "
            "%ld MiB at most (window %d MiB)\n", sent, base / 1024, peak / 1024, window_mb);
    zmq_close (sock);
    s_stop_broker (broker);
    return peak;
}

static void
s_test_caps (void)
{
    char clients [64], workers [64];
    //  (the jobs wait for their workers as long as this test may take on a
    //  loaded machine: the broker's 3 s task wait failed job 1 once there)
    char *extra [] = { "--max-clients", "3", "--max-workers", "2", "--max-jobs", "2",
                       "--task-wait", "60000", NULL };
    pid_t broker = s_start_broker (clients, workers, "none", extra, 0);
    void *c [4];
    for (int i = 0; i < 3; i++)
        c [i] = s_client (clients, 0, NULL);
    c [3] = s_dealer (clients, 0);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_HELLO);
    msg.hb = 1000;
    tu_send_try (c [3], &msg);
    CHECK (s_error (c [3], 3000, NULL) == DP_PROTO_ELIMIT);
    s_job (c [0], 1, "echo");
    s_job (c [1], 1, "echo");
    s_job (c [2], 7, "echo");
    uint32_t job = 0;
    CHECK (s_error (c [2], 3000, &job) == DP_PROTO_ELIMIT && job == 7);
    //  at the worker limit an idle worker that never worked makes room:
    //  w2 gets in, w0 is evicted; once w1 and w2 each hold a chunk, w3 is
    //  refused
    void *w [4];
    char *tasks [1] = { "echo" };
    for (int i = 0; i < 4; i++) {
        w [i] = s_dealer (workers, 0);
        dp_msg_init (&msg, DP_CMD_READY);
        msg.tasks = tasks;
        msg.ntasks = 1;
        msg.credit = 1;
        msg.hb = 1000;
        REQUIRE (dp_msg_send (&msg, w [i], NULL) == 0);
        msg.tasks = NULL;
        dp_msg_init (&msg, 0);
        if (i < 3)
            CHECK (tu_recv (w [i], &msg, 3000) == DP_CMD_WELCOME);
        dp_msg_reset (&msg);
        if (i == 2) {
            CHECK (s_error (w [0], 3000, NULL) == DP_PROTO_ELIMIT);
            dp_msg_init (&msg, DP_CMD_BATCH);       //  two chunks of job 1
            dp_batch_t batch;
            dp_batch_init (&batch);
            dp_batch_add (&batch, "a", 1);
            dp_batch_add (&batch, "b", 1);
            msg.job = 1;
            msg.csize = 1;
            REQUIRE (dp_batch_attach (&batch, &msg, false) == 0);
            dp_batch_clear (&batch);
            tu_send_try (c [0], &msg);
            dp_msg_init (&msg, 0);
            CHECK (tu_recv (w [1], &msg, 3000) == DP_CMD_CHUNK);
            CHECK (tu_recv (w [2], &msg, 3000) == DP_CMD_CHUNK);
            dp_msg_reset (&msg);
        }
    }
    CHECK (s_error (w [3], 3000, NULL) == DP_PROTO_ELIMIT);
    for (int i = 0; i < 4; i++)
        zmq_close (c [i]);
    for (int i = 0; i < 4; i++)
        zmq_close (w [i]);
    s_stop_broker (broker);
}

//  A flood of malformed messages writes a bounded log: at most 10 lines a
//  second plus a count.
static void
s_test_log (void)
{
    char clients [64], workers [64];
    char err [] = "/tmp/dpool-limits-log-XXXXXX";
    close (mkstemp (err));
    s_broker_err = err;
    pid_t broker = s_start_broker (clients, workers, "none", NULL, 0);
    s_broker_err = NULL;
    void *sock = s_client (clients, 0, NULL);
    int64_t start = tu_now_ms ();
    const int flood = 5000;
    for (int i = 0; i < flood; i++) {
        //  the right signature, an unknown command: ECMD, answered and logged
        zmq_send (sock, "DPL\x01", 4, ZMQ_SNDMORE);
        zmq_send (sock, "\x7f", 1, ZMQ_SNDMORE);
        zmq_send (sock, "\x80", 1, 0);
        if (i % 1000 == 0) {
            dp_msg_t msg;
            dp_msg_init (&msg, 0);
            while (tu_recv (sock, &msg, 1) != -1)
                dp_msg_reset (&msg);
        }
    }
    //  the broker has read them all when it answers a STATUS after them
    //  (after the ERRORs that waited for room in our queue: at most 64 of
    //  them, the rest were dropped and counted)
    dp_msg_t msg;
    dp_msg_init (&msg, 0);
    while (tu_recv (sock, &msg, 500) != -1)
        dp_msg_reset (&msg);
    dp_msg_init (&msg, DP_CMD_STATUS);
    tu_send_try (sock, &msg);
    dp_msg_init (&msg, 0);
    int64_t deadline = tu_now_ms () + 30000;
    int cmd = -1;
    while (cmd != DP_CMD_REPORT && tu_now_ms () < deadline)
        if ((cmd = tu_recv (sock, &msg, 1000)) != -1)
            dp_msg_reset (&msg);
    CHECK (cmd == DP_CMD_REPORT);
    usleep (1200000);               //  the last second's summary
    double seconds = (double) (tu_now_ms () - start) / 1000;
    zmq_close (sock);
    s_stop_broker (broker);
    FILE *f = fopen (err, "r");
    int lines = 0, summaries = 0;
    char line [2048];
    while (f && fgets (line, sizeof line, f)) {
        lines++;
        summaries += strstr (line, "bad-input warnings not logged") != NULL;
    }
    if (f)
        fclose (f);
    unlink (err);
    printf ("log: %d malformed messages in %.1f s wrote %d log lines (%d summaries)\n",
            flood, seconds, lines, summaries);
    CHECK (summaries > 0);
    CHECK (lines <= (int) (seconds + 2) * 11 + 5);
}

//  Run `dpool map -b clients square` over 0..n-1; true if exact.
static bool
s_real_job (const char *clients, int n)
{
    tu_files_t files;
    tu_files_make (&files, "limits");
    FILE *f = fopen (files.in, "w");
    for (int i = 0; f && i < n; i++)
        fprintf (f, "%d\n", i);
    if (f)
        fclose (f);
    char *argv [] = { (char *) tu_bin ("dpool"), "map", "-b", (char *) clients, "square", NULL };
    pid_t cli = tu_spawn_io (argv, files.in, files.out, NULL);
    int status = cli > 0 ? tu_wait (cli, 30000) : -1;
    f = fopen (files.out, "r");
    int lines = 0, wrong = 0;
    char line [64];
    while (f && fgets (line, sizeof line, f)) {
        wrong += atoll (line) != (long long) lines * lines;
        lines++;
    }
    if (f)
        fclose (f);
    tu_files_remove (&files);
    return status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0 && lines == n && !wrong;
}

//  Workers registered at the broker, from `dpool status --json`; -1 if no
//  answer.
static int
s_workers (const char *clients)
{
    char cmd [256];
    snprintf (cmd, sizeof cmd, "%s status -b %s --json 2>/dev/null", tu_bin ("dpool"), clients);
    FILE *p = popen (cmd, "r");
    char text [65536];
    size_t size = p ? fread (text, 1, sizeof text - 1, p) : 0;
    if (p)
        pclose (p);
    text [size] = 0;
    const char *at = strstr (text, "\"workers\":[");
    if (!at)
        return -1;
    int count = 0;
    for (at += 11; *at && *at != ']'; at++)
        count += *at == '{';
    return count;
}

//  `dpool status --json` of the broker into text; false if no answer.
static bool
s_status (const char *clients, char *text, size_t size)
{
    char cmd [256];
    snprintf (cmd, sizeof cmd, "%s status -b %s --json 2>/dev/null", tu_bin ("dpool"), clients);
    FILE *p = popen (cmd, "r");
    size_t got = p ? fread (text, 1, size - 1, p) : 0;
    if (p)
        pclose (p);
    text [got] = 0;
    return strstr (text, "\"jobs\":[") != NULL;
}

//  The unsigned number after `key` in text (from `from` on), or -1.
static long long
s_json_num (const char *text, const char *key)
{
    const char *at = strstr (text, key);
    return at ? atoll (at + strlen (key)) : -1;
}

static void
s_test_backlog (void)
{
    const int total = 600, size = 64 << 10;     //  38 MiB of answers: more than TCP holds
    char clients [64], workers [64];
    char *extra [] = { "--window", "1000", "--task-wait", "300", NULL };
    pid_t broker = s_start_broker (clients, workers, "2", extra, 0);
    int64_t deadline = tu_now_ms () + 10000;
    while (s_workers (clients) < 2 && tu_now_ms () < deadline)
        usleep (100000);
    //  a small TCP receive buffer: else the kernel holds tens of MiB
    s_rcvbuf = 65536;
    void *sock = s_client (clients, 1, NULL);
    s_rcvbuf = 0;
    //  job 1: fail_if over 64 KiB items, every 7th "fail" (a task error)
    s_job (sock, 1, "fail_if");
    char *item = (char *) malloc ((size_t) size);
    REQUIRE (item);
    memset (item, 'x', (size_t) size);
    //  one item a BATCH, so one a RESULTS: the pipe's limit counts messages
    for (int first = 0; first < total; first++) {
        dp_batch_t batch;
        dp_batch_init (&batch);
        for (int i = first; i < first + 1; i++)
            REQUIRE (i % 7 == 0 ? dp_batch_add (&batch, "fail", 4) == 0
                                : dp_batch_add (&batch, item, (size_t) size) == 0);
        dp_msg_t msg;
        dp_msg_init (&msg, DP_CMD_BATCH);
        msg.job = 1;
        msg.first = (uint64_t) first;
        msg.last = first + 1 == total;
        REQUIRE (dp_batch_attach (&batch, &msg, false) == 0);
        dp_batch_clear (&batch);
        REQUIRE (tu_send_try (sock, &msg) == 0);
    }
    //  the workers have answered everything, the client has not: its pipe
    //  is full and the rest of its answers wait at the broker
    char text [65536];
    deadline = tu_now_ms () + 20000;
    bool blocked = false;
    while (!blocked && tu_now_ms () < deadline) {
        blocked = s_status (clients, text, sizeof text)
               && s_json_num (text, "\"items_done\":") >= total
               && s_json_num (text, "\"job\":1,") >= 0
               && s_json_num (strstr (text, "\"job\":1,"), "\"done\":") < total;
        if (!blocked)
            usleep (100000);
    }
    long long delivered = s_json_num (strstr (text, "\"job\":1,") ? strstr (text, "\"job\":1,") : "",
                                      "\"done\":");
    printf ("backlog: %d items done by the workers, %lld delivered to the client's pipe\n",
            total, delivered);
    if (!blocked)
        printf ("%s\n", text);
    CHECK (blocked);
    //  now things that are answered ERROR or REPORT, while the pipe is full
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_END);              //  job 9 does not exist: EJOB
    msg.job = 9;
    tu_send_try (sock, &msg);
    zmq_send (sock, "DPL\x01", 4, ZMQ_SNDMORE);  //  an unknown command: ECMD
    zmq_send (sock, "\x7f", 1, ZMQ_SNDMORE);
    zmq_send (sock, "\x80", 1, 0);
    dp_msg_init (&msg, DP_CMD_STATUS);
    tu_send_try (sock, &msg);
    s_job (sock, 2, "no_such_task");             //  no worker has it: ERROR NOWORKER
    s_job (sock, 3, "echo");                     //  600 + 500 items over the window of 1000
    s_batch (sock, 3, 0, 500, 10, 0);
    //  the broker has read them all once jobs 2 and 3 are gone
    deadline = tu_now_ms () + 10000;
    bool read = false;
    while (!read && tu_now_ms () < deadline) {
        read = s_status (clients, text, sizeof text) && !strstr (text, "\"job\":2,")
            && !strstr (text, "\"job\":3,") && s_json_num (text, "\"clients\":") == 1;
        if (!read)
            usleep (100000);
    }
    CHECK (read);
    //  now read everything
    uint8_t *seen = (uint8_t *) calloc ((size_t) total, 1);
    int answered = 0, twice = 0, wrong = 0, failed = 0, reports = 0;
    bool done = false, noworker = false, ewindow = false, ejob = false, ecmd = false;
    dp_msg_init (&msg, 0);
    deadline = tu_now_ms () + 20000;
    while (!(done && noworker && ewindow && ejob && ecmd && reports) && tu_now_ms () < deadline) {
        int cmd = tu_recv (sock, &msg, 1000);
        if (cmd == DP_CMD_RESULTS && msg.job == 1) {
            size_t offset = 0;
            for (uint32_t i = 0; i < msg.n; i++) {
                uint64_t at = msg.first + i;
                uint32_t len = dp_msg_len (&msg, i);
                uint8_t status = dp_msg_status (&msg, i);
                if (at >= (uint64_t) total || seen [at]++)
                    twice++;
                else
                if (at % 7 == 0 ? status != DP_ST_TASK
                                : status != DP_ST_OK || len != (uint32_t) size
                                  || memcmp (dp_msg_data (&msg) + offset, item, len) != 0)
                    wrong++;
                failed += status != DP_ST_OK;
                answered++;
                offset += len;
            }
            done |= msg.done;
        }
        else
        if (cmd == DP_CMD_DONE && msg.job == 1)
            done = true;
        else
        if (cmd == DP_CMD_REPORT)
            reports++;
        else
        if (cmd == DP_CMD_ERROR) {
            noworker |= msg.has_job && msg.job == 2 && msg.code == DP_ST_NOWORKER;
            ewindow |= msg.has_job && msg.job == 3 && msg.code == DP_PROTO_EWINDOW;
            ejob |= msg.has_job && msg.job == 9 && msg.code == DP_PROTO_EJOB;
            ecmd |= msg.code == DP_PROTO_ECMD;
        }
        dp_msg_reset (&msg);
    }
    printf ("backlog: %d answers (%d failed), %d twice, %d wrong, done %d; ERROR NOWORKER %d, "
            "EWINDOW %d, EJOB %d, ECMD %d; %d REPORT\n", answered, failed, twice, wrong, done,
            noworker, ewindow, ejob, ecmd, reports);
    CHECK (answered == total && !twice && !wrong && done);
    CHECK (failed == (total + 6) / 7);
    CHECK (noworker && ewindow && ejob && ecmd && reports == 1);
    free (seen);
    free (item);
    zmq_close (sock);
    s_stop_broker (broker);
}

//  A raw worker: READY with one task (or none), `hb` ms.
static void *
s_squatter (const char *workers, const char *task, uint32_t hb)
{
    void *sock = s_dealer (workers, 0);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_READY);
    char *tasks [1] = { (char *) task };
    msg.tasks = task ? tasks : NULL;
    msg.ntasks = task ? 1 : 0;
    msg.credit = 1;
    msg.hb = hb;
    msg.pid = 1;
    REQUIRE (dp_msg_send (&msg, sock, NULL) == 0);
    msg.tasks = NULL;
    dp_msg_reset (&msg);
    dp_msg_init (&msg, 0);
    CHECK (tu_recv (sock, &msg, 3000) == DP_CMD_WELCOME);
    dp_msg_reset (&msg);
    return sock;
}

static void
s_test_evict (void)
{
    char clients [64], workers [64];
    char *extra [] = { "--max-workers", "3", NULL };
    pid_t broker = s_start_broker (clients, workers, "none", extra, 0);
    void *silent1 = s_squatter (workers, "square", 3600000);
    void *silent2 = s_squatter (workers, NULL, 3600000);
    //  (its interval is long enough that a loaded machine's slow loop
    //  below does not make it miss 3)
    void *busy = s_squatter (workers, "nobody_runs_this", 5000);
    CHECK (s_workers (clients) == 3);
    //  the real worker: it must get in, and run the job
    char *argv [] = { (char *) tu_bin ("dpool-worker"), "--connect", workers, "-m",
                      (char *) tu_lib ("libdpool_testtasks.so"), getenv ("EVICT_LOG") ? "-v" : NULL, NULL };
    pid_t real = tu_spawn (argv, NULL, getenv ("EVICT_LOG"));
    REQUIRE (real > 0);
    char text [65536], pid [32];
    snprintf (pid, sizeof pid, "\"pid\":%d,", (int) real);
    int64_t start = tu_now_ms (), deadline = start + 15000;
    bool in = false;
    while (!in && tu_now_ms () < deadline) {
        if (zmq_poll (&(zmq_pollitem_t) { busy, 0, ZMQ_POLLIN, 0 }, 1, 0) > 0) {
            dp_msg_t msg;
            dp_msg_init (&msg, 0);
            dp_msg_recv (&msg, busy, NULL, 0, NULL, 0);
            dp_msg_reset (&msg);
        }
        dp_msg_t beat;                              //  the idle one heartbeats
        dp_msg_init (&beat, DP_CMD_HEARTBEAT);
        tu_send_try (busy, &beat);
        in = s_status (clients, text, sizeof text) && strstr (text, pid);
        if (!in)
            usleep (200000);
    }
    int64_t took = tu_now_ms () - start;
    //  `dpool-worker --connect` is a node of one worker: two places, those
    //  of the two silent squatters (heard from least recently); the one
    //  that heartbeats stays
    int code1 = s_error (silent1, 1000, NULL);
    int code2 = s_error (silent2, 1000, NULL);
    int code3 = s_error (busy, 300, NULL);      //  heard recently: it stays
    int64_t t0 = tu_now_ms ();
    bool ok = in && s_real_job (clients, 200);
    printf ("evict: the real worker registered after %lld ms (%s); squatters got ERROR %d, %d, %d; "
            "a 200-item map through it %s in %lld ms\n", (long long) took, in ? "in" : "REFUSED",
            code1, code2, code3, ok ? "exact" : "FAILED", (long long) (tu_now_ms () - t0));
    CHECK (in);
    CHECK (code1 == DP_PROTO_ELIMIT && code2 == DP_PROTO_ELIMIT && code3 == 0);
    CHECK (ok);
    kill (real, SIGTERM);
    CHECK (tu_wait (real, 10000) != -1);
    zmq_close (silent1);
    zmq_close (silent2);
    zmq_close (busy);
    s_stop_broker (broker);
}

//  DISCONNECTED events on the monitor within `ms`.
static int
s_disconnects (void *monitor, int ms)
{
    int count = 0;
    int64_t deadline = tu_now_ms () + ms;
    while (tu_now_ms () < deadline) {
        zmq_pollitem_t item = { monitor, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 50) <= 0)
            continue;
        zmq_msg_t event;
        zmq_msg_init (&event);
        if (zmq_msg_recv (&event, monitor, 0) >= 0 && zmq_msg_size (&event) == 6) {
            uint16_t id;
            memcpy (&id, zmq_msg_data (&event), 2);
            count += id == ZMQ_EVENT_DISCONNECTED;
        }
        while (zmq_msg_more (&event) && zmq_msg_recv (&event, monitor, 0) >= 0)
            ;
        zmq_msg_close (&event);
    }
    return count;
}

static void
s_test_frames (void)
{
    //  the broker: 10 frames are EFRAMES, and the next message is whole
    char clients [64], workers [64];
    pid_t broker = s_start_broker (clients, workers, "none", NULL, 0);
    void *sock = s_dealer (clients, 0);
    zmq_send (sock, "DPL\x01", 4, ZMQ_SNDMORE);
    zmq_send (sock, "\x01", 1, ZMQ_SNDMORE);
    zmq_send (sock, "\x81\xa2hb\x10", 5, ZMQ_SNDMORE);
    for (int i = 0; i < 7; i++)
        zmq_send (sock, "junk", 4, i < 6 ? ZMQ_SNDMORE : 0);
    CHECK (s_error (sock, 3000, NULL) == DP_PROTO_EFRAMES);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_HELLO);
    msg.hb = 1000;
    tu_send_try (sock, &msg);
    dp_msg_init (&msg, 0);
    CHECK (tu_recv (sock, &msg, 3000) == DP_CMD_WELCOME);
    dp_msg_reset (&msg);
    zmq_close (sock);
    s_stop_broker (broker);

    //  a worker node, connected to a fake broker: a frame over its 64 KiB
    //  MAXMSGSIZE closes the connection; one of 1 KiB does not
    void *router = zmq_socket (s_ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt (router, ZMQ_LINGER, &linger, sizeof linger);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", tu_free_port ());
    REQUIRE (zmq_bind (router, endpoint) == 0);
    REQUIRE (zmq_socket_monitor (router, "inproc://limits-frames-mon", ZMQ_EVENT_DISCONNECTED) == 0);
    void *monitor = zmq_socket (s_ctx, ZMQ_PAIR);
    REQUIRE (zmq_connect (monitor, "inproc://limits-frames-mon") == 0);
    //  a long heartbeat: its worker, never welcomed, stays connected meanwhile
    char *argv [] = { (char *) tu_bin ("dpool-worker"), "--connect", endpoint, "-j", "1",
                      "--heartbeat", "20000", "-m", (char *) tu_lib ("libdpool_testtasks.so"), NULL };
    pid_t node = tu_spawn (argv, NULL, NULL);
    REQUIRE (node > 0);
    zmq_msg_t rid;
    zmq_msg_init (&rid);
    bool got = false;
    int64_t deadline = tu_now_ms () + 10000;
    while (!got && tu_now_ms () < deadline) {
        zmq_pollitem_t item = { router, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 100) <= 0)
            continue;
        dp_msg_init (&msg, 0);
        if (dp_msg_recv (&msg, router, &rid, 0, NULL, 0) == 0 && msg.cmd == DP_CMD_NODE)
            got = true;
        dp_msg_reset (&msg);
    }
    CHECK (got);
    size_t big = 100 << 10;
    char *frame = (char *) calloc (1, big);
    int small_drops = -1, big_drops = -1;
    if (got) {
        zmq_msg_t copy;
        for (int pass = 0; pass < 2; pass++) {
            zmq_msg_init (&copy);
            zmq_msg_copy (&copy, &rid);
            zmq_msg_send (&copy, router, ZMQ_SNDMORE);
            zmq_send (router, "DPL\x01", 4, ZMQ_SNDMORE);
            zmq_send (router, "\x0a", 1, ZMQ_SNDMORE);
            zmq_send (router, frame, pass ? big : 1024, 0);
            if (pass)
                big_drops = s_disconnects (monitor, 3000);
            else
                small_drops = s_disconnects (monitor, 1000);
        }
    }
    printf ("frames: 10 frames refused EFRAMES, the next message read whole; a node's connection "
            "closed by a 1 KiB frame %d times, by a 100 KiB frame %d times\n", small_drops, big_drops);
    CHECK (small_drops == 0 && big_drops == 1);
    free (frame);
    zmq_msg_close (&rid);
    kill (node, SIGKILL);           //  its worker dies with it (PDEATHSIG)
    tu_wait (node, 10000);
    zmq_socket_monitor (router, NULL, 0);
    zmq_close (monitor);
    zmq_close (router);
}

static void
s_test_fds (int conns)
{
    //  we hold `conns` connections ourselves: room for them
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    if (limit.rlim_max < (rlim_t) conns + 256) {
        printf ("fds: the hard fd limit %llu is too low for this test\n",
                (unsigned long long) limit.rlim_max);
        exit (77);
    }
    limit.rlim_cur = limit.rlim_max;
    setrlimit (RLIMIT_NOFILE, &limit);
    zmq_ctx_set (s_ctx, ZMQ_MAX_SOCKETS, conns + 64);
    char clients [64], workers [64];
    pid_t broker = s_start_broker (clients, workers, "2", NULL, 256);
    int64_t deadline = tu_now_ms () + 10000;
    while (s_workers (clients) < 2 && tu_now_ms () < deadline)
        usleep (100000);
    CHECK (s_workers (clients) == 2);
    void **idle = (void **) calloc ((size_t) conns, sizeof (void *));
    for (int i = 0; i < conns; i++)
        idle [i] = s_dealer (i % 2 ? workers : clients, 0);
    //  let them connect (and the ones over budget be refused), then kill
    //  a local worker: its replacement must get in
    usleep (1500000);
    pid_t kids [8];
    int nkids = tu_children (broker, kids, 8);
    CHECK (nkids >= 2);
    if (nkids > 0)
        kill (kids [0], SIGKILL);
    usleep (1500000);
    CHECK (tu_alive (broker));
    for (int i = 0; i < conns; i++)
        zmq_close (idle [i]);
    free (idle);
    deadline = tu_now_ms () + 15000;
    int registered = -1;
    while ((registered = s_workers (clients)) < 2 && tu_now_ms () < deadline)
        usleep (200000);
    printf ("fds: %d idle connections under an fd limit of 256, a local worker killed: "
            "broker alive, %d local workers registered\n", conns, registered);
    CHECK (registered == 2);
    CHECK (s_real_job (clients, 1000));
    s_stop_broker (broker);
}

//  Measurement: `conns` idle connections (half to each endpoint) held
//  while a real job runs; the broker's RSS and CPU.
static void
s_measure_idle (int conns)
{
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit (RLIMIT_NOFILE, &limit);
    zmq_ctx_set (s_ctx, ZMQ_MAX_SOCKETS, conns + 64);
    char clients [64], workers [64];
    pid_t broker = s_start_broker (clients, workers, "2", NULL, 0);
    usleep (500000);
    long base = tu_status_kb (broker, "VmRSS");
    void **idle = (void **) calloc ((size_t) conns, sizeof (void *));
    for (int i = 0; i < conns; i++)
        idle [i] = s_dealer (i % 2 ? workers : clients, 0);
    usleep (5000000);
    double cpu0 = tu_cpu_s (broker);
    usleep (5000000);
    double cpu1 = tu_cpu_s (broker);
    int64_t start = tu_now_ms ();
    bool ok = s_real_job (clients, 10000);
    int64_t took = tu_now_ms () - start;
    printf ("idle: %d idle connections: broker RSS %ld MiB (%ld MiB before), CPU %.0f%% while "
            "idle, a 10,000-item job %s in %lld ms, alive %d\n", conns, tu_status_kb (broker, "VmRSS") / 1024,
            base / 1024, (cpu1 - cpu0) / 5 * 100, ok ? "exact" : "FAILED", (long long) took,
            tu_alive (broker));
    CHECK (ok);
    for (int i = 0; i < conns; i++)
        zmq_close (idle [i]);
    free (idle);
    s_stop_broker (broker);
}

//  Measurements (not in the suite): N items of `mib` MiB each through the
//  echo task by a normal client, and one multipart message of 30 frames.
static void
s_measure_bigitems (int mib, int count)
{
    char clients [64], workers [64];
    pid_t broker = s_start_broker (clients, workers, "2", NULL, 0);
    void *sock = s_client (clients, 0, NULL);
    s_job (sock, 1, "len");
    long peak = 0;
    int refused = 0;
    for (int i = 0; i < count; i++) {
        if (s_batch (sock, 1, (uint64_t) i, 1, (size_t) mib << 20, 0) != 0)
            break;
        long rss = tu_status_kb (broker, "VmRSS");
        peak = rss > peak ? rss : peak;
    }
    dp_msg_t msg;
    dp_msg_init (&msg, 0);
    int64_t deadline = tu_now_ms () + 60000;
    int answered = 0;
    while (tu_now_ms () < deadline && answered + refused < count) {
        int cmd = tu_recv (sock, &msg, 1000);
        if (cmd == DP_CMD_RESULTS)
            answered += (int) msg.n;
        if (cmd == DP_CMD_ERROR) {
            refused = count - answered;
            printf ("  ERROR %d %s\n", msg.code, msg.text);
        }
        dp_msg_reset (&msg);
        long rss = tu_status_kb (broker, "VmRSS");
        peak = rss > peak ? rss : peak;
    }
    printf ("bigitems: %d x %d MiB: %d answered, %d refused; broker RSS at most %ld MiB\n",
            count, mib, answered, refused, peak / 1024);
    zmq_close (sock);
    s_stop_broker (broker);
}

static void
s_measure_multipart (int mib, int frames)
{
    char clients [64], workers [64];
    pid_t broker = s_start_broker (clients, workers, "none", NULL, 0);
    void *sock = s_dealer (clients, 0);
    char *frame = (char *) malloc ((size_t) mib << 20);
    REQUIRE (frame);
    memset (frame, 'x', (size_t) mib << 20);
    zmq_send (sock, "DPL\x01", 4, ZMQ_SNDMORE);
    long peak = 0;
    for (int i = 0; i < frames; i++) {
        zmq_send (sock, frame, (size_t) mib << 20, i + 1 < frames ? ZMQ_SNDMORE : 0);
        long rss = tu_status_kb (broker, "VmRSS");
        peak = rss > peak ? rss : peak;
    }
    //  until the broker's RSS has not grown for 5 s (the frames take a
    //  while over loopback), at most 90 s
    int64_t still = tu_now_ms (), deadline = tu_now_ms () + 90000;
    while (tu_now_ms () - still < 5000 && tu_now_ms () < deadline) {
        long rss = tu_status_kb (broker, "VmRSS");
        if (rss > peak + 1024)
            still = tu_now_ms ();
        peak = rss > peak ? rss : peak;
        usleep (100000);
    }
    printf ("multipart: %d frames of %d MiB: broker RSS at most %ld MiB, alive %d\n", frames, mib,
            peak / 1024, tu_alive (broker));
    free (frame);
    zmq_close (sock);
    s_stop_broker (broker);
}

//  One multipart message of many large frames: libzmq holds it whole
//  before the broker sees it. The broker's memory ceiling (--max-rss)
//  cuts the connection that brings it, and goes on serving. The frames
//  are sent without copies (one buffer), so only the broker holds them.
static void
s_test_multipart (int mib, int frames)
{
    char clients [64], workers [64], log [64] = "/tmp/dpool-limits-mp-XXXXXX";
    int fd = mkstemp (log);
    REQUIRE (fd >= 0);
    close (fd);
    s_broker_err = log;
    char *extra [] = { "--max-rss", "256", "-v", NULL };
    pid_t broker = s_start_broker (clients, workers, "1", extra, 0);
    s_broker_err = NULL;
    void *sock = s_dealer (clients, 0);
    size_t size = (size_t) mib << 20;
    char *frame = (char *) malloc (size);
    REQUIRE (frame);
    memset (frame, 'x', size);
    zmq_send (sock, "DPL\x01", 4, ZMQ_SNDMORE);
    zmq_send (sock, "\x05", 1, ZMQ_SNDMORE);
    for (int i = 0; i < frames; i++) {
        zmq_msg_t msg;
        zmq_msg_init_data (&msg, frame, size, NULL, NULL);
        zmq_msg_send (&msg, sock, i + 1 < frames ? ZMQ_SNDMORE : 0);
    }
    //  until the connection is cut (in the log) or the broker's RSS has not
    //  grown for 5 s, at most 60 s
    long peak = 0;
    bool cut = false;
    int64_t still = tu_now_ms (), deadline = tu_now_ms () + 60000;
    while (!cut && tu_now_ms () - still < 5000 && tu_now_ms () < deadline) {
        long rss = tu_status_kb (broker, "VmRSS");
        if (rss > peak + 1024)
            still = tu_now_ms ();
        peak = rss > peak ? rss : peak;
        cut = tu_file_has (log, "(--max-rss)");
        usleep (20000);
    }
    for (int i = 0; i < 10; i++) {      //  (what it held is let go)
        long rss = tu_status_kb (broker, "VmRSS");
        peak = rss > peak ? rss : peak;
        usleep (20000);
    }
    long after = tu_status_kb (broker, "VmRSS");
    printf ("multipart: %d frames of %d MiB (%d MiB) against --max-rss 256: connection cut %d, "
            "broker RSS at most %ld MiB, %ld MiB after\n", frames, mib, frames * mib, cut,
            peak / 1024, after / 1024);
    CHECK (cut);
#ifndef __SANITIZE_ADDRESS__
    //  the ceiling, and what can arrive in the two ticks before the cut
    CHECK (peak > 0 && peak < 768 * 1024);
#endif
    zmq_close (sock);
    free (frame);               //  (closed with linger 0: nothing refers to it)
    //  the broker still serves a real job
    CHECK (s_real_job (clients, 1000));
    s_stop_broker (broker);
    unlink (log);
}

int
main (int argc, char *argv [])
{
    atexit (s_kill_broker);
    s_ctx = zmq_ctx_new ();
    const char *part = argc > 1 ? argv [1] : "";
    int size = argc > 2 ? atoi (argv [2]) : 0;
    if (!*part || !strcmp (part, "window"))
        s_test_window ();
    if (!*part || !strcmp (part, "noread")) {
        long peak = s_noread (size ? size : 400, argc > 3 ? atoi (argv [3]) : 8);
        //  bound: base + window + the frontend's queue to the client
        //  (64 answers of 1 MiB) + the workers' credit; generous for CI
        CHECK (peak > 0 && (argc > 3 || peak < 400 * 1024));
    }
    if (!*part || !strcmp (part, "caps"))
        s_test_caps ();
    if (!*part || !strcmp (part, "evict"))
        s_test_evict ();
    if (!*part || !strcmp (part, "frames"))
        s_test_frames ();
    if (!*part || !strcmp (part, "backlog"))
        s_test_backlog ();
    if (!*part || !strcmp (part, "log"))
        s_test_log ();
    if (!*part || !strcmp (part, "fds"))
        s_test_fds (size ? size : 400);
    if (!*part || !strcmp (part, "ceiling"))
        s_test_multipart (size ? size : 32, argc > 3 ? atoi (argv [3]) : 40);
    if (!strcmp (part, "bigitems"))
        s_measure_bigitems (size ? size : 100, 20);
    if (!strcmp (part, "idle"))
        s_measure_idle (size ? size : 8000);
    if (!strcmp (part, "multipart"))
        s_measure_multipart (size ? size : 200, 30);
    zmq_ctx_term (s_ctx);
    return tu_done ("test_broker_limits");
}
