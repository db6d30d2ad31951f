/*  fuzz_broker - libFuzzer target: a live broker actor fed messages from
    three fake peers (a client, a worker, a worker node)

    The other targets fuzz the decoders; this one fuzzes what the broker
    does with what decodes: sessions, jobs, batches, chunks, results,
    deaths, in any order and with any values. One broker (no local
    workers, in this process, over inproc) lives for the whole run, so
    state carries from one input to the next, as it does on a network.

    Input: messages separated by FUZZ_MSG_SEP; a message's first byte
    picks the peer (and the command byte is an index into that peer's list,
    fuzz_common.h), the rest is its frames separated by FUZZ_SEP; a first
    byte of 3 (mod 4) is no message but sets how the fake worker answers
    the CHUNKs it gets (s_answer: not, honestly, with one item too many,
    with bad statuses). After the messages, what the broker sent is read
    (CHUNKs answered, the rest dropped), then a probe
    socket asks STATUS: the broker must answer a REPORT that decodes within
    5 s, or the broker has hung (a crash anywhere aborts the process).
    Run it with -detect_leaks=0: the broker thread allocates while an
    input runs, so libFuzzer's per-input leak check would only report the
    broker's live state (the other targets keep it).  */
#include "fuzz_common.h"
#include "dp_broker.h"
#include "dp_report.h"

#include <czmq.h>
#include <unistd.h>

#define MAX_MESSAGES        32

static dp_broker_t *s_broker;
static zsock_t *s_peer [3];         //  client, worker, node
static zsock_t *s_probe;            //  asks STATUS after each input
static uint8_t s_policy;            //  how the fake worker answers CHUNKs (s_answer)
static char s_frontend [64], s_backend [64];
static const uint8_t s_client [] = FUZZ_CMDS_CLIENT;
static const uint8_t s_worker [] = FUZZ_CMDS_WORKER;
static const uint8_t s_node [] = FUZZ_CMDS_NODE;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    zsys_init ();
    zsys_set_logstream (NULL);          //  the broker's warnings: not wanted here
    snprintf (s_backend, sizeof s_backend, "inproc://fuzz-workers-%d", (int) getpid ());
    dp_broker_opts_t opts = { 0 };
    opts.workers = s_backend;
    opts.local_workers = 0;
    opts.heartbeat_ms = 1000;
    opts.task_wait_ms = 200;
    char err [256];
    s_broker = dp_broker_new (&opts, s_frontend, sizeof s_frontend, err, sizeof err);
    if (!s_broker) {
        fprintf (stderr, "fuzz_broker: %s\n", err);
        exit (1);
    }
    s_peer [0] = zsock_new_dealer (s_frontend);
    s_peer [1] = zsock_new_dealer (s_backend);
    s_peer [2] = zsock_new_dealer (s_backend);
    s_probe = zsock_new_dealer (s_frontend);
    for (int i = 0; i < 3; i++)
        if (!s_peer [i] || !s_probe) {
            fprintf (stderr, "fuzz_broker: cannot connect\n");
            exit (1);
        }
    return 0;
}

//  Send one message's frames from its peer.
static void
s_send (const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    int peer = data [0] % 4;
    if (peer == 3) {                    //  not a message: the worker's policy
        s_policy = size > 1 ? data [1] : 0;
        return;
    }
    zmq_msg_t frames [FUZZ_MAX_FRAMES];
    size_t nframes = fuzz_split (data + 1, size - 1, frames, FUZZ_MAX_FRAMES);
    if (peer == 0) fuzz_pick_command (frames, nframes, s_client, sizeof s_client);
    if (peer == 1) fuzz_pick_command (frames, nframes, s_worker, sizeof s_worker);
    if (peer == 2) fuzz_pick_command (frames, nframes, s_node, sizeof s_node);
    void *sock = zsock_resolve (s_peer [peer]);
    for (size_t i = 0; i < nframes; i++)
        if (zmq_msg_send (&frames [i], sock, (i + 1 < nframes ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
            break;
    fuzz_close (frames, nframes);
}

//  The fake worker's answer to a CHUNK, by policy (low 2 bits): 0 none,
//  1 every item echoed OK, 2 one item too many, 3 statuses from the
//  policy's other bits (some out of range: refused by the decoder).
static void
s_answer (dp_msg_t *chunk)
{
    int how = s_policy & 3;
    if (how == 0)
        return;
    dp_batch_t batch;
    dp_batch_init (&batch);
    uint32_t n = chunk->n + (how == 2);
    for (uint32_t i = 0, at = 0; i < n; i++) {
        uint32_t len = i < chunk->n ? dp_msg_len (chunk, i) : 0;
        size_t start = batch.size;
        void *p = dp_batch_reserve (&batch, len);
        if (len)
            memcpy (p, dp_msg_data (chunk) + at, len);
        at += len;
        uint8_t status = how == 3 ? (uint8_t) ((s_policy >> 2) + i) % (DP_ST_MAX + 1) : DP_ST_OK;
        dp_batch_commit (&batch, start, status);
    }
    dp_msg_t result;
    dp_msg_init (&result, DP_CMD_RESULT);
    result.chunk = chunk->chunk;
    result.k = chunk->k;
    result.ns = 1000;
    if (dp_batch_attach (&batch, &result, true) == 0)
        dp_msg_send (&result, zsock_resolve (s_peer [1]), NULL);     //  may be refused: fine
    dp_msg_reset (&result);
    dp_batch_clear (&batch);
}

//  Read what the broker sent the peers: CHUNKs to the worker are answered
//  by policy, the rest dropped.
static void
s_drain (void)
{
    for (int i = 0; i < 3; i++) {
        void *sock = zsock_resolve (s_peer [i]);
        dp_msg_t msg;
        int rc;
        while ((rc = dp_msg_recv (&msg, sock, NULL, ZMQ_DONTWAIT, NULL, 0)) != DP_PROTO_ESOCKET) {
            if (rc == 0 && i == 1 && msg.cmd == DP_CMD_CHUNK)
                s_answer (&msg);
            if (rc == 0)
                dp_msg_reset (&msg);
        }
    }
}

//  STATUS from the probe: a REPORT must come back and decode.
static void
s_alive (void)
{
    zsock_t *probe = s_probe;
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_STATUS);
    FUZZ_ASSERT (dp_msg_send (&msg, zsock_resolve (probe), NULL) == 0);
    int64_t deadline = zclock_mono () + 5000;
    bool answered = false;
    while (!answered && zclock_mono () < deadline) {
        zmq_pollitem_t item = { zsock_resolve (probe), 0, ZMQ_POLLIN, 0 };
        s_drain ();
        if (zmq_poll (&item, 1, 50) <= 0)
            continue;
        char err [256];
        if (dp_msg_recv (&msg, zsock_resolve (probe), NULL, 0, err, sizeof err) != 0)
            continue;
        if (msg.cmd == DP_CMD_REPORT) {
            dp_report_t report;
            FUZZ_ASSERT (dp_report_decode (&report, &msg, err, sizeof err) == 0);
            dp_report_clear (&report);
            answered = true;
        }
        dp_msg_reset (&msg);
    }
    if (!answered)
        fprintf (stderr, "fuzz_broker: no REPORT within 5 s: the broker hangs\n");
    FUZZ_ASSERT (answered);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    size_t start = 0, count = 0;
    for (size_t i = 0; i + FUZZ_SEP_LEN <= size && count < MAX_MESSAGES; i++)
        if (memcmp (data + i, FUZZ_MSG_SEP, FUZZ_SEP_LEN) == 0) {
            s_send (data + start, i - start);
            count++;
            start = i + FUZZ_SEP_LEN;
            i = start - 1;
        }
    if (count < MAX_MESSAGES)
        s_send (data + start, size - start);
    s_alive ();
    return 0;
}
