/*  Rogue workers and nodes against a real dpool-broker, over real sockets
    (raw DEALERs speaking the protocol through the codec):

    - a worker that answers with wrong counts or for chunks it was never
      sent gets strikes, its items go back uncharged, and after 3 strikes
      it gets no more work; an honest worker then finishes the job exact;
    - a worker that registered with no task forges RESULTs for another
      worker's chunks: nothing it says reaches the client;
    - NODE with token 0 is refused; a rogue node's forged DEATHs for an
      honest worker's pid fail no item;
    - a black-hole worker (heartbeats, never answers) does not stall a
      20,000-item ordered job: its chunks get backup copies elsewhere;
    - output parts: a WPART for a chunk the worker does not hold, or
      beyond the window of unacknowledged parts, is a strike and reaches
      no client; good ones reach the job's client as PARTs, in order, and
      its ACKs come back as WACKs. */
#include "testpeer.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *s_ctx;
static pid_t s_pids [8];
static int s_npids;

static void
s_kill_all (void)
{
    for (int i = 0; i < s_npids; i++)
        if (s_pids [i] > 0)
            kill (s_pids [i], SIGKILL);
}

static pid_t
s_start (char *const argv [], const char *err)
{
    pid_t pid = tu_spawn (argv, NULL, err);
    REQUIRE (pid > 0);
    s_pids [s_npids++] = pid;
    return pid;
}

static void
s_stop (pid_t pid)
{
    kill (pid, SIGTERM);
    int status = tu_wait (pid, 5000);
    CHECK (status != -1);
    for (int i = 0; i < s_npids; i++)
        if (s_pids [i] == pid)
            s_pids [i] = 0;
}

//  A raw worker: READY with `task` (NULL: no task at all), WELCOME.
static void *
s_rogue_worker (const char *workers, const char *task, uint32_t credit)
{
    void *sock = tu_dealer (s_ctx, workers);
    CHECK (tu_ready (sock, task, credit) == DP_CMD_WELCOME);
    return sock;
}

//  `dpool map -b clients [--chunksize 1] task` over lines prefix + i
//  in the background, stdout to `out`, stderr to `err`.
static pid_t
s_cli (const char *clients, const char *task, int n, const char *prefix,
       const char *in, const char *out, const char *err, bool chunk1)
{
    FILE *f = fopen (in, "w");
    REQUIRE (f);
    for (int i = 0; i < n; i++) {
        fprintf (f, "%s%d\n", prefix, i);
    }
    fclose (f);
    char *cargv [] = { (char *) tu_bin ("dpool"), "map", "-b", (char *) clients,
                       "--chunksize", "1", (char *) task, NULL };
    if (!chunk1) {
        cargv [4] = (char *) task;
        cargv [5] = NULL;
    }
    pid_t cli = tu_spawn_io (cargv, in, out, err);
    REQUIRE (cli > 0);
    return cli;
}

//  Lines of `out` that are not prefix + i in order; -1 if unreadable.
//  `lines` gets the line count.
static int
s_wrong_lines (const char *out, const char *prefix, int *lines)
{
    FILE *f = fopen (out, "r");
    if (!f)
        return -1;
    char line [256], want [256];
    int wrong = 0;
    *lines = 0;
    while (fgets (line, sizeof line, f)) {
        line [strcspn (line, "\n")] = 0;
        snprintf (want, sizeof want, "%s%d", prefix, *lines);
        wrong += strcmp (line, want) != 0;
        (*lines)++;
    }
    fclose (f);
    return wrong;
}

static pid_t
s_honest_worker (const char *workers, const char *jobs)
{
    char *argv [] = { (char *) tu_bin ("dpool-worker"), "-c", (char *) workers, "-m",
                      (char *) tu_lib ("libdpool_testtasks.so"), jobs ? "-j" : NULL,
                      (char *) jobs, NULL };
    return s_start (argv, NULL);
}

//  Strikes: wrong counts, ids never sent, wrong counts again: then no more
//  work for it, and no item was charged.
static void
s_test_strikes (const char *clients, const char *workers)
{
    void *rogue = s_rogue_worker (workers, "echo", 8);
    const int n = 200;
    tu_files_t f;
    tu_files_make (&f, "trust");
    pid_t cli = s_cli (clients, "echo", n, "", f.in, f.out, f.err, true);
    int strikes = 0;
    dp_msg_t msg;
    dp_msg_init (&msg, 0);
    int64_t deadline = tu_now_ms () + 10000;
    while (strikes < 3 && tu_now_ms () < deadline) {
        if (tu_recv (rogue, &msg, 500) != DP_CMD_CHUNK)
            continue;
        uint64_t chunk = msg.chunk;
        uint32_t k = msg.k, count = msg.n;
        dp_msg_reset (&msg);
        if (strikes == 1)
            tu_forge_result (rogue, chunk + 5000000, k, count);     //  never sent
        else
            tu_forge_result (rogue, chunk, k, count + k);            //  wrong count
        strikes++;
    }
    CHECK (strikes == 3);
    //  what was on its way before the third strike, then nothing more
    while (tu_recv (rogue, &msg, 1000) != -1)
        dp_msg_reset (&msg);
    pid_t honest = s_honest_worker (workers, NULL);
    int after = 0;
    int64_t until = tu_now_ms () + 3000;
    while (tu_now_ms () < until) {
        int cmd = tu_recv (rogue, &msg, 200);
        if (cmd == DP_CMD_CHUNK) {
            after++;
            tu_forge_result (rogue, msg.chunk, msg.k, msg.n);    //  would be a lie
        }
        dp_msg_reset (&msg);
        tu_heartbeat (rogue);
    }
    printf ("strikes: the quarantined worker got %d chunks after its third strike\n", after);
    CHECK (after == 0);
    int status = tu_wait (cli, 30000);
    CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    int lines = 0, wrong = s_wrong_lines (f.out, "", &lines);
    printf ("strikes: the job gave %d lines, %d wrong\n", lines, wrong);
    CHECK (lines == n && wrong == 0);
    CHECK (!tu_file_has (f.err, "died"));
    s_stop (honest);
    zmq_close (rogue);
    tu_files_remove (&f);
}

//  A worker with no task forges answers for every chunk id the broker may
//  have handed out, while an honest worker runs the job.
static void
s_test_forged_results (const char *clients, const char *workers)
{
    pid_t honest = s_honest_worker (workers, NULL);
    void *rogue = s_rogue_worker (workers, NULL, 64);
    const int n = 3000;
    tu_files_t f;
    tu_files_make (&f, "trust");
    pid_t cli = s_cli (clients, "echo", n, "", f.in, f.out, f.err, true);
    int status = -1;
    for (uint64_t id = 1; id < 20000; id++) {
        tu_forge_result (rogue, id, 1, 1);
        if (id % 500 == 0) {
            tu_heartbeat (rogue);
            if (waitpid (cli, &status, WNOHANG) == cli)
                break;
            status = -1;
            usleep (2000);
        }
    }
    if (status == -1)
        status = tu_wait (cli, 30000);
    CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    int lines = 0, wrong = s_wrong_lines (f.out, "", &lines);
    printf ("forged results: the job gave %d lines, %d wrong\n", lines, wrong);
    CHECK (lines == n && wrong == 0);
    s_stop (honest);
    zmq_close (rogue);
    tu_files_remove (&f);
}

//  A rogue node: token 0 refused; with its own token, DEATHs for the honest
//  worker's pid are ignored.
static void
s_test_forged_death (const char *clients, const char *workers)
{
    pid_t honest = s_honest_worker (workers, NULL);
    void *rogue = tu_dealer (s_ctx, workers);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_NODE);
    msg.node = 0;
    msg.slots = 1;
    msg.hb = 1000;
    tu_send (rogue, &msg);
    dp_msg_init (&msg, 0);
    int cmd = tu_recv (rogue, &msg, 5000);
    printf ("node token 0: %s %d %s\n", dp_cmd_name (cmd > 0 ? cmd : 0), msg.code, msg.text);
    CHECK (cmd == DP_CMD_ERROR && msg.code == DP_PROTO_EHEADER);
    dp_msg_reset (&msg);
    dp_msg_init (&msg, DP_CMD_NODE);
    msg.node = 0x1234567887654321ull;
    msg.slots = 1;
    msg.hb = 1000;
    tu_send (rogue, &msg);
    dp_msg_init (&msg, 0);
    CHECK (tu_recv (rogue, &msg, 5000) == DP_CMD_WELCOME);
    dp_msg_reset (&msg);
    //  another connection cannot take that token over
    void *thief = tu_dealer (s_ctx, workers);
    dp_msg_init (&msg, DP_CMD_NODE);
    msg.node = 0x1234567887654321ull;
    msg.slots = 1;
    msg.hb = 1000;
    tu_send (thief, &msg);
    dp_msg_init (&msg, 0);
    cmd = tu_recv (thief, &msg, 5000);
    printf ("node token of another connection: %s %d %s\n", dp_cmd_name (cmd > 0 ? cmd : 0),
            msg.code, msg.text);
    CHECK (cmd == DP_CMD_ERROR && msg.code == DP_PROTO_EHEADER);
    dp_msg_reset (&msg);
    zmq_close (thief);

    const int n = 400;
    tu_files_t f;
    tu_files_make (&f, "trust");
    pid_t cli = s_cli (clients, "nap_echo", n, "2000:", f.in, f.out, f.err, true);
    int status = -1;
    for (uint64_t id = 1; status == -1; id++) {
        dp_msg_init (&msg, DP_CMD_DEATH);
        msg.pid = (uint32_t) honest;
        msg.code = DP_ST_DIED;
        msg.chunk = id;
        msg.item = 0;
        snprintf (msg.text, sizeof msg.text, "SIGFORGED");
        tu_send (rogue, &msg);
        if (id % 50 == 0) {
            tu_heartbeat (rogue);
            usleep (5000);
            if (waitpid (cli, &status, WNOHANG) != cli)
                status = -1;
            if (id > 200000)
                break;
        }
    }
    if (status == -1)
        status = tu_wait (cli, 30000);
    CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    int lines = 0, wrong = s_wrong_lines (f.out, "2000:", &lines);
    printf ("forged deaths: the job gave %d lines, %d wrong\n", lines, wrong);
    CHECK (lines == n && wrong == 0);
    CHECK (!tu_file_has (f.err, "SIGFORGED"));
    CHECK (tu_alive (honest));
    s_stop (honest);
    zmq_close (rogue);
    tu_files_remove (&f);
}

//  A worker that takes chunks and never answers, while heartbeating.
static void
s_test_black_hole (const char *clients, const char *workers)
{
    pid_t honest = s_honest_worker (workers, "2");
    void *rogue = s_rogue_worker (workers, "square", 64);
    const int n = 20000;
    tu_files_t f;
    tu_files_make (&f, "trust");
    int64_t start = tu_now_ms ();
    pid_t cli = s_cli (clients, "square", n, "", f.in, f.out, f.err, false);
    int status = -1, swallowed = 0;
    dp_msg_t msg;
    dp_msg_init (&msg, 0);
    while (tu_now_ms () - start < 40000) {
        int cmd = tu_recv (rogue, &msg, 200);
        swallowed += cmd == DP_CMD_CHUNK;
        dp_msg_reset (&msg);
        tu_heartbeat (rogue);
        if (waitpid (cli, &status, WNOHANG) == cli)
            break;
        status = -1;
    }
    if (status == -1)
        status = tu_wait (cli, 1000);
    printf ("black hole: it swallowed %d CHUNKs; the job took %lld ms\n", swallowed,
            (long long) (tu_now_ms () - start));
    CHECK (swallowed > 0);
    CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    FILE *file = fopen (f.out, "r");
    int lines = 0, wrong = 0;
    char line [64];
    while (file && fgets (line, sizeof line, file)) {
        wrong += atoll (line) != (long long) lines * lines;
        lines++;
    }
    if (file)
        fclose (file);
    printf ("black hole: the job gave %d lines, %d wrong\n", lines, wrong);
    CHECK (lines == n && wrong == 0);
    s_stop (honest);
    zmq_close (rogue);
    tu_files_remove (&f);
}

//  WPART from `sock` for item 0 of `chunk`, part `seq`, 10 bytes "part-SEQ".
static void
s_wpart (void *sock, uint64_t chunk, uint64_t seq)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_WPART);
    msg.chunk = chunk;
    msg.item = 0;
    msg.seq = seq;
    msg.fd = 1;
    char data [16];
    snprintf (data, sizeof data, "part-%05llu", (unsigned long long) seq);
    zmq_msg_init_size (&msg.frame [0], 10);
    memcpy (zmq_msg_data (&msg.frame [0]), data, 10);
    msg.nframes = 1;
    tu_send (sock, &msg);
}

//  The PARTs `client` gets within `ms`: their seqs in order into seqs
//  (at most max); each checked for job 1, item 0 and its data. Returns
//  the count, or -1 if one was wrong.
static int
s_parts (void *client, uint64_t *seqs, int max, int ms)
{
    dp_msg_t msg;
    dp_msg_init (&msg, 0);
    int count = 0;
    while (tu_recv (client, &msg, ms) == DP_CMD_PART && count < max) {
        char want [16];
        snprintf (want, sizeof want, "part-%05llu", (unsigned long long) msg.seq);
        if (msg.job != 1 || msg.first != 0 || msg.fd != 1 || zmq_msg_size (&msg.frame [0]) != 10
        ||  memcmp (zmq_msg_data (&msg.frame [0]), want, 10) != 0)
            count = -1000;
        seqs [count < 0 ? 0 : count] = msg.seq;
        count++;
        dp_msg_reset (&msg);
    }
    dp_msg_reset (&msg);
    return count < 0 ? -1 : count;
}

static void
s_test_parts (const char *clients, const char *workers)
{
    void *rogue = s_rogue_worker (workers, "exec", 1);
    //  a raw client: one exec job of one item that takes parts
    void *client = tu_dealer (s_ctx, clients);
    CHECK (tu_hello (client, NULL) == DP_CMD_WELCOME);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_JOB);
    msg.job = 1;
    strcpy (msg.task, "exec");
    msg.parts = true;
    msg.spec = DP_SPEC_OFF;
    tu_send (client, &msg);
    dp_batch_t batch;
    dp_batch_init (&batch);
    dp_batch_add (&batch, "item", 4);
    dp_msg_init (&msg, DP_CMD_BATCH);
    msg.job = 1;
    msg.last = true;
    REQUIRE (dp_batch_attach (&batch, &msg, false) == 0);
    tu_send (client, &msg);
    dp_batch_clear (&batch);
    //  the CHUNK says the job takes parts
    dp_msg_init (&msg, 0);
    CHECK (tu_recv (rogue, &msg, 5000) == DP_CMD_CHUNK);
    CHECK (msg.parts);
    uint64_t chunk = msg.chunk;
    dp_msg_reset (&msg);
    //  a part for a chunk it does not hold: a strike, nothing forwarded;
    //  the chunk comes back under a new id
    s_wpart (rogue, chunk + 1000000, 0);
    CHECK (tu_recv (rogue, &msg, 5000) == DP_CMD_CHUNK);
    CHECK (msg.chunk != chunk);
    chunk = msg.chunk;
    dp_msg_reset (&msg);
    uint64_t seqs [16];
    CHECK (s_parts (client, seqs, 16, 300) == 0);
    //  part 0, taken by the client: its ACK comes back as WACK 1
    s_wpart (rogue, chunk, 0);
    CHECK (s_parts (client, seqs, 16, 1000) == 1 && seqs [0] == 0);
    dp_msg_init (&msg, DP_CMD_ACK);
    msg.job = 1;
    msg.first = 0;
    msg.chunk = chunk;
    msg.seq = 1;
    tu_send (client, &msg);
    dp_msg_init (&msg, 0);
    CHECK (tu_recv (rogue, &msg, 5000) == DP_CMD_WACK);
    CHECK (msg.chunk == chunk && msg.item == 0 && msg.seq == 1);
    dp_msg_reset (&msg);
    //  parts 1..4 fill the window; part 5 is beyond it: a strike
    for (uint64_t seq = 1; seq <= 5; seq++)
        s_wpart (rogue, chunk, seq);
    int got = s_parts (client, seqs, 16, 1000);
    printf ("parts: the client got %d of parts 1..5 sent without ACK\n", got);
    CHECK (got == 4 && seqs [0] == 1 && seqs [3] == 4);
    CHECK (tu_recv (rogue, &msg, 5000) == DP_CMD_CHUNK);     //  requeued after the strike
    dp_msg_reset (&msg);
    zmq_close (rogue);
    zmq_close (client);
}

int
main (int argc, char *argv [])
{
    char clients [64], workers [64];
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", tu_free_port ());
    char *bargv [] = { (char *) tu_bin ("dpool-broker"), "-c", clients, "-w", workers, "-j", "none",
                       "--task-wait", "60000", "--no-curve", NULL };   //  raw sockets
    atexit (s_kill_all);
    pid_t broker = s_start (bargv, NULL);
    s_ctx = zmq_ctx_new ();
    const char *only = argc > 1 ? argv [1] : "";
    if (!*only || !strcmp (only, "strikes"))
        s_test_strikes (clients, workers);
    if (!*only || !strcmp (only, "forged"))
        s_test_forged_results (clients, workers);
    if (!*only || !strcmp (only, "death"))
        s_test_forged_death (clients, workers);
    if (!*only || !strcmp (only, "blackhole"))
        s_test_black_hole (clients, workers);
    if (!*only || !strcmp (only, "parts"))
        s_test_parts (clients, workers);
    zmq_ctx_term (s_ctx);
    CHECK (tu_alive (broker));
    s_stop (broker);
    return tu_done ("test_broker_trust");
}
