/*  Bad input from a peer, sent to a real dpool-broker through a raw
    DEALER socket: each bad message is answered with an ERROR or dropped,
    the broker lives on, and a real job through it still works. */
#include "testpeer.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *s_ctx, *s_sock;
static pid_t s_broker;

//  A failed REQUIRE exits: take the broker along.
static void
s_kill_broker (void)
{
    if (s_broker > 0)
        kill (s_broker, SIGKILL);
}

//  Send raw frames.
static void
s_send_raw (const void *const *frames, const size_t *sizes, int n)
{
    for (int i = 0; i < n; i++)
        zmq_send (s_sock, frames [i], sizes [i], i < n - 1 ? ZMQ_SNDMORE : 0);
}

static int
s_expect_error (const char *what)
{
    dp_msg_t msg;
    dp_msg_init (&msg, 0);
    int cmd = tu_recv (s_sock, &msg, 3000);
    int code = cmd == DP_CMD_ERROR ? msg.code : 0;
    if (cmd != DP_CMD_ERROR)
        fprintf (stderr, "%s: expected ERROR, got %d\n", what, cmd);
    else
        printf ("%s: ERROR %d %s\n", what, msg.code, msg.text);
    dp_msg_reset (&msg);
    return code;
}

//  Run `dpool map -b clients --chunksize 1 echo` over the lines 0..n-1 in
//  the background; its output goes to `out`. Returns its pid.
static pid_t
s_cli_echo (const char *clients, int n, const char *in, const char *out)
{
    FILE *f = fopen (in, "w");
    REQUIRE (f);
    for (int i = 0; i < n; i++)
        fprintf (f, "%d\n", i);
    fclose (f);
    char *cargv [] = { (char *) tu_bin ("dpool"), "map", "-b", (char *) clients,
                       "--chunksize", "1", "echo", NULL };
    pid_t cli = tu_spawn_io (cargv, in, out, NULL);
    REQUIRE (cli > 0);
    return cli;
}

//  A worker that lies: it registers, takes a CHUNK, answers it first with
//  ids it was never sent (dropped), then with the wrong number of items
//  (the broker drops the worker). A client's job running meanwhile loses
//  nothing: the broker's local worker runs every item, once.
static void
s_test_lying_worker (const char *clients, const char *workers)
{
    void *client_sock = s_sock;
    s_sock = tu_dealer (s_ctx, workers);
    CHECK (tu_ready (s_sock, "echo", 8) == DP_CMD_WELCOME);
    dp_msg_t msg;
    dp_msg_init (&msg, 0);

    const int n = 5000;
    tu_files_t files;
    tu_files_make (&files, "lying");
    pid_t cli = s_cli_echo (clients, n, files.in, files.out);
    int cmd = tu_recv (s_sock, &msg, 3000);
    CHECK (cmd == DP_CMD_CHUNK);
    if (cmd == DP_CMD_CHUNK) {
        printf ("lying worker: got CHUNK %llu, %u chunks, %u items\n",
                (unsigned long long) msg.chunk, msg.k, msg.n);
        uint64_t chunk = msg.chunk;
        uint32_t k = msg.k, count = msg.n;
        dp_msg_reset (&msg);            //  the CHUNK's frames
        //  ids it does not hold: dropped, the worker stays
        tu_forge_result (s_sock, chunk + 1000000, k, count);
        //  one item too many per chunk: a broken worker, dropped
        tu_forge_result (s_sock, chunk, k, count + k);
    }
    int status = tu_wait (cli, 30000);
    CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    FILE *f = fopen (files.out, "r");
    int lines = 0, wrong = 0;
    char line [64];
    while (f && fgets (line, sizeof line, f))
        wrong += atoi (line) != lines++ || strstr (line, "FORGED") != NULL;
    if (f)
        fclose (f);
    printf ("lying worker: the job gave %d lines, %d wrong\n", lines, wrong);
    CHECK (lines == n && wrong == 0);
    tu_files_remove (&files);
    dp_msg_reset (&msg);
    zmq_close (s_sock);
    s_sock = client_sock;
}

int
main (void)
{
    char clients [64], workers [64];
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", tu_free_port ());
    char *argv [] = { (char *) tu_bin ("dpool-broker"), "-c", clients, "-w", workers, "-j", "1", "--no-curve",
                      "-m", (char *) tu_lib ("libdpool_testtasks.so"), NULL };
    pid_t broker = tu_spawn (argv, NULL, NULL);
    REQUIRE (broker > 0);
    s_broker = broker;
    atexit (s_kill_broker);
    s_ctx = zmq_ctx_new ();
    s_sock = tu_dealer (s_ctx, clients);

    //  a command before HELLO: ENOTREADY (the broker may still be starting)
    int code = 0;
    for (int tries = 0; tries < 10 && code != DP_PROTO_ENOTREADY; tries++) {
        dp_msg_t msg;
        dp_msg_init (&msg, DP_CMD_JOB);
        msg.job = 1;
        snprintf (msg.task, sizeof msg.task, "echo");
        tu_send (s_sock, &msg);
        code = s_expect_error ("JOB before HELLO");
    }
    CHECK (code == DP_PROTO_ENOTREADY);

    //  garbage: a wrong signature is dropped silently; a wrong version answered
    const void *junk [] = { "xyz", "\x01", "\x80" };
    size_t junk_sizes [] = { 3, 1, 1 };
    s_send_raw (junk, junk_sizes, 3);
    const void *v9 [] = { "DPL\x09", "\x01", "\x80" };
    size_t v9_sizes [] = { 4, 1, 1 };
    s_send_raw (v9, v9_sizes, 3);
    CHECK (s_expect_error ("version 9") == DP_PROTO_EVERSION);
    //  a header declaring a 4-billion-element array, and 100 nested arrays
    uint8_t huge [] = { 0x81, 0xa2, 'h', 'b', 0xdd, 0xff, 0xff, 0xff, 0xff };
    uint8_t deep [105] = { 0x81, 0xa2, 'h', 'b' };     //  {"hb": [[[...]]]}
    memset (deep + 4, 0x91, 100);
    deep [104] = 0xc0;
    const void *h1 [] = { "DPL\x01", "\x01", huge };
    size_t h1_sizes [] = { 4, 1, sizeof huge };
    s_send_raw (h1, h1_sizes, 3);
    CHECK (s_expect_error ("huge array") != 0);
    const void *h2 [] = { "DPL\x01", "\x01", deep };
    size_t h2_sizes [] = { 4, 1, sizeof deep };
    s_send_raw (h2, h2_sizes, 3);
    CHECK (s_expect_error ("deep nesting") != 0);

    //  a session, then protocol mistakes within it
    CHECK (tu_hello (s_sock, NULL) == DP_CMD_WELCOME);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_END);
    msg.job = 77;
    msg.total = 0;
    tu_send (s_sock, &msg);
    CHECK (s_expect_error ("END of no job") == DP_PROTO_EJOB);
    dp_msg_init (&msg, DP_CMD_JOB);
    msg.job = 1;
    snprintf (msg.task, sizeof msg.task, "echo");
    tu_send (s_sock, &msg);
    dp_batch_t batch;
    dp_batch_init (&batch);
    dp_batch_add (&batch, "x", 1);
    dp_msg_init (&msg, DP_CMD_BATCH);
    msg.job = 1;
    msg.first = 5;                  //  must be 0
    REQUIRE (dp_batch_attach (&batch, &msg, false) == 0);
    tu_send (s_sock, &msg);
    CHECK (s_expect_error ("BATCH out of order") == DP_PROTO_EJOB);
    //  that EJOB ended job 1 (PROTOCOL.md §7): its id is free again, and
    //  a new empty job 1 is done at once
    dp_msg_init (&msg, DP_CMD_JOB);
    msg.job = 1;
    snprintf (msg.task, sizeof msg.task, "echo");
    tu_send (s_sock, &msg);
    dp_msg_init (&msg, DP_CMD_END);
    msg.job = 1;
    msg.total = 0;
    tu_send (s_sock, &msg);
    dp_msg_init (&msg, 0);
    int cmd = tu_recv (s_sock, &msg, 3000);
    printf ("job 1 again after its EJOB: %s %s\n", dp_cmd_name (cmd), cmd == DP_CMD_ERROR ? msg.text : "");
    CHECK (cmd == DP_CMD_DONE && msg.job == 1);
    dp_msg_reset (&msg);
    dp_msg_init (&msg, DP_CMD_WELCOME);    //  the broker's command, from a client
    tu_send (s_sock, &msg);
    CHECK (s_expect_error ("WELCOME from a client") == DP_PROTO_ECMD);
    //  more open jobs than the broker allows: refused, not allocated
    int refused = 0;
    for (uint32_t j = 2; j < 1100 && !refused; j++) {
        dp_msg_init (&msg, DP_CMD_JOB);
        msg.job = j;
        snprintf (msg.task, sizeof msg.task, "echo");
        tu_send (s_sock, &msg);
        if (j > 1020) {
            zmq_pollitem_t item = { s_sock, 0, ZMQ_POLLIN, 0 };
            while (zmq_poll (&item, 1, j > 1030 ? 200 : 0) > 0 && !refused) {
                dp_msg_init (&msg, 0);
                if (dp_msg_recv (&msg, s_sock, NULL, 0, NULL, 0) == 0 && msg.cmd == DP_CMD_ERROR
                &&  strstr (msg.text, "open jobs"))
                    refused = 1;
                dp_msg_reset (&msg);
            }
        }
    }
    CHECK (refused);
    dp_msg_init (&msg, DP_CMD_BYE);
    tu_send (s_sock, &msg);
    dp_batch_clear (&batch);
    s_test_lying_worker (clients, workers);
    zmq_close (s_sock);
    zmq_ctx_term (s_ctx);

    //  the broker is alive and serves a real job
    CHECK (tu_alive (broker));
    char *cargv [] = { (char *) tu_bin ("dpool"), "map", "-b", clients, "square", NULL };
    char in [] = "/tmp/dpool-test-input-XXXXXX";
    int fd = mkstemp (in);
    REQUIRE (fd >= 0);
    REQUIRE (write (fd, "3\n4\n", 4) == 4);
    close (fd);
    pid_t cli = tu_spawn_io (cargv, in, "/dev/null", NULL);
    int status = cli > 0 ? tu_wait (cli, 20000) : -1;
    CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    unlink (in);
    kill (broker, SIGTERM);
    status = tu_wait (broker, 5000);
    CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    s_broker = 0;
    return tu_done ("test_broker_input");
}
