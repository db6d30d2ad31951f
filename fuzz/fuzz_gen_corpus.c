/*  fuzz_gen_corpus - write the fuzz targets' seed corpus from real encoders

    Usage: fuzz_gen_corpus DIR      (writes DIR/TARGET/NAME files)

    Every message seed is what dp_msg_encode writes for a command with
    typical fields (and batches built with dp_batch), as frames separated
    by FUZZ_SEP; for a target of one conversation the command byte is the
    command's index in that target's list (fuzz_common.h). Report seeds
    are dp_report_encode bodies; unpack seeds dp_pack output; record seeds
    are typical inputs of `dpool map`. The output is deterministic, so the
    committed corpus can be checked against a fresh run.  */
#include "fuzz_common.h"
#include "dp_report.h"
#include "dpool_pack.h"
#include "dp_exec_msg.h"

#include <errno.h>
#include <sys/stat.h>

static const char *s_dir;

static void
s_write (const char *target, const char *name, const void *data, size_t size)
{
    char path [512];
    snprintf (path, sizeof path, "%s/%s", s_dir, target);
    if (mkdir (path, 0755) && errno != EEXIST) {
        perror (path);
        exit (1);
    }
    snprintf (path, sizeof path, "%s/%s/%s", s_dir, target, name);
    FILE *file = fopen (path, "wb");
    if (!file || fwrite (data, 1, size, file) != size || fclose (file)) {
        perror (path);
        exit (1);
    }
}

//  Encode msg into frames joined by FUZZ_SEP, frame 1 (the command) made
//  `cmd_byte` unless that is -1. Returns a malloc'd buffer, its size in *size.
static uint8_t *
s_msg_bytes (const char *name, dp_msg_t *msg, int cmd_byte, size_t *size)
{
    zmq_msg_t frames [3 + DP_MAX_PAYLOAD];
    size_t nframes;
    int rc = dp_msg_encode (msg, frames, &nframes);
    if (rc) {
        fprintf (stderr, "fuzz_gen_corpus: %s: %s\n", name, dp_proto_strerror (rc));
        exit (1);
    }
    size_t total = 0;
    for (size_t i = 0; i < nframes; i++)
        total += zmq_msg_size (&frames [i]) + FUZZ_SEP_LEN;
    uint8_t *buf = (uint8_t *) malloc (total), *at = buf;
    for (size_t i = 0; i < nframes; i++) {
        if (i) {
            memcpy (at, FUZZ_SEP, FUZZ_SEP_LEN);
            at += FUZZ_SEP_LEN;
        }
        const uint8_t *data = (const uint8_t *) zmq_msg_data (&frames [i]);
        size_t len = zmq_msg_size (&frames [i]);
        for (size_t j = 0; j + FUZZ_SEP_LEN <= len; j++)
            if (memcmp (data + j, FUZZ_SEP, FUZZ_SEP_LEN) == 0
            ||  memcmp (data + j, FUZZ_MSG_SEP, FUZZ_SEP_LEN) == 0) {
                fprintf (stderr, "fuzz_gen_corpus: %s holds a separator\n", name);
                exit (1);
            }
        memcpy (at, data, len);
        if (i == 1 && cmd_byte >= 0)
            *at = (uint8_t) cmd_byte;
        at += len;
    }
    fuzz_close (frames, nframes);
    *size = (size_t) (at - buf);
    return buf;
}

//  Encode msg; write it for `target` with the command byte `cmd_byte`.
static void
s_write_msg (const char *target, const char *name, dp_msg_t *msg, int cmd_byte)
{
    size_t size;
    uint8_t *buf = s_msg_bytes (name, msg, cmd_byte, &size);
    s_write (target, name, buf, size);
    free (buf);
}

typedef struct {
    const char *target;
    const uint8_t *cmds;
    size_t ncmds;
} s_target_t;

static const uint8_t s_client [] = FUZZ_CMDS_CLIENT;
static const uint8_t s_worker [] = FUZZ_CMDS_WORKER;
static const uint8_t s_node [] = FUZZ_CMDS_NODE;
static const uint8_t s_broker [] = FUZZ_CMDS_BROKER;
static const s_target_t s_targets [] = {
    { "proto_client", s_client, sizeof s_client },
    { "proto_worker", s_worker, sizeof s_worker },
    { "proto_node", s_node, sizeof s_node },
    { "proto_broker", s_broker, sizeof s_broker },
};

//  Fill a payload of n items: lengths 0, 1, 5, 20, ... (with statuses).
static void
s_payload (dp_msg_t *msg, uint32_t n, bool with_status)
{
    dp_batch_t batch;
    dp_batch_init (&batch);
    for (uint32_t i = 0; i < n; i++) {
        char item [64];
        int len = snprintf (item, sizeof item, "%s%u", i % 3 == 0 ? "" : "item-", i * 7);
        size_t start = batch.size;
        char *p = (char *) dp_batch_reserve (&batch, (size_t) len);
        memcpy (p, item, (size_t) len);
        dp_batch_commit (&batch, start, with_status ? (uint8_t) (i % (DP_ST_MAX + 1)) : DP_ST_OK);
    }
    dp_batch_attach (&batch, msg, with_status);
    dp_batch_clear (&batch);
}

//  Build the example message of a command (variant v: 0 typical, 1 edge).
static void
s_example (dp_msg_t *msg, uint8_t cmd, int v)
{
    dp_msg_init (msg, cmd);
    switch (cmd) {
        case DP_CMD_HELLO: msg->hb = 1000; strcpy (msg->host, v ? "" : "client@host"); break;
        case DP_CMD_WELCOME: msg->hb = 1000; msg->window = 4096; msg->wbytes = 256u << 20;
                             msg->batch = 512; break;
        case DP_CMD_JOB:
            msg->job = v ? UINT32_MAX : 1;
            strcpy (msg->task, v ? "exec" : "square");
            msg->ordered = !v;
            msg->attempts = 3;
            msg->chunksize = v ? 65536 : 0;
            msg->timeout = v ? 2500 : 0;
            msg->tpct = v ? 300 : 0;
            msg->weight = 2;
            msg->spec = (uint32_t) (v ? DP_SPEC_OFF : DP_SPEC_ON);
            msg->parts = v;
            break;
        case DP_CMD_BATCH:
            msg->job = 1; msg->first = v ? 1ull << 40 : 0; msg->csize = v ? 4 : 0; msg->last = v;
            msg->navoid = v ? 2 : 0;
            msg->avoid [0] = 0x0123456789abcdefull; msg->avoid [1] = 7;
            s_payload (msg, v ? 8 : 3, false);
            break;
        case DP_CMD_END: msg->job = 1; msg->total = v ? 0 : 1000; break;
        case DP_CMD_CANCEL: msg->job = 1; break;
        case DP_CMD_RESULTS:
            msg->job = 1; msg->first = 10; msg->ns = 123456789; msg->done = v;
            msg->ok = 9; msg->failed = 1; msg->backups = v;
            s_payload (msg, v ? 6 : 2, true);
            break;
        case DP_CMD_DONE: msg->job = 1; msg->ok = 999; msg->failed = 1; msg->backups = 2; break;
        case DP_CMD_ERROR:
            msg->code = v ? DP_PROTO_EJOB : DP_PROTO_ENOTREADY;
            strcpy (msg->text, v ? "bad job: unknown id 7" : "unknown client: send HELLO");
            msg->job = 7; msg->has_job = v;
            break;
        case DP_CMD_READY: {
            static char *tasks [] = { "square", "exec", "sleep_ms", "crash_if" };
            msg->tasks = tasks; msg->ntasks = v ? 4 : 1;
            msg->credit = 2; msg->pid = 4242; strcpy (msg->host, "node1");
            msg->slots = v ? 16 : 0; msg->hb = 1000; msg->node = v ? 0x123456789abcdefull : 0;
            break;
        }
        case DP_CMD_CHUNK:
            msg->chunk = 77; strcpy (msg->task, "square"); msg->timeout = v ? 1000 : 0;
            msg->parts = v;
            msg->k = v ? 2 : 1;
            s_payload (msg, v ? 6 : 3, false);
            break;
        case DP_CMD_RESULT:
            msg->chunk = 77; msg->ns = 5000; msg->k = v ? 3 : 1;
            s_payload (msg, v ? 6 : 1, true);
            break;
        case DP_CMD_NODE: msg->node = 0xfeedfacecafebeefull; strcpy (msg->host, "node1");
                          msg->pid = 100; msg->slots = 8; msg->hb = 1000; break;
        case DP_CMD_DEATH: msg->pid = 4243; msg->chunk = 77; msg->item = v ? UINT32_MAX : 2;
                           msg->code = 9; strcpy (msg->text, "SIGKILL"); break;
        case DP_CMD_ABORT: msg->chunk = 77; msg->k = v ? 4 : 1; break;
        case DP_CMD_PART: case DP_CMD_WPART:
            msg->job = 1; msg->first = v ? 12 : 0; msg->chunk = 77; msg->item = v ? 3 : 0;
            msg->seq = v ? 41 : 0; msg->fd = v ? 2 : 1;
            zmq_msg_init_size (&msg->frame [0], v ? 0 : 16);
            memcpy (zmq_msg_data (&msg->frame [0]), "line one\nline t", v ? 0 : 16);
            msg->nframes = 1;
            break;
        case DP_CMD_ACK: case DP_CMD_WACK:
            msg->job = 1; msg->first = v ? 12 : 0; msg->chunk = 77; msg->item = v ? 3 : 0;
            msg->seq = v ? 42 : 1;
            break;
        case DP_CMD_REPORT: {
            dp_report_t report;
            dp_report_init (&report);
            strcpy (report.broker.host, "broker");
            report.broker.pid = 1;
            dp_report_node_t *node = dp_report_add_node (&report);
            node->local = true; node->slots = 2; node->workers = 2;
            dp_report_worker_t *worker = dp_report_add_worker (&report);
            worker->node = 0; worker->pid = 2;
            dp_report_encode (&report, msg);
            dp_report_clear (&report);
            break;
        }
        default: break;         //  STATUS, HEARTBEAT, BYE: no fields
    }
    //  the messages keep pointers to static task names: nothing to free
}

//  dp_msg_reset would free READY's static names: forget them first.
static void
s_done (dp_msg_t *msg)
{
    msg->tasks = NULL;
    msg->ntasks = 0;
    dp_msg_reset (msg);
}

static void
s_messages (void)
{
    static const uint8_t all [] = {
        DP_CMD_HELLO, DP_CMD_WELCOME, DP_CMD_JOB, DP_CMD_BATCH, DP_CMD_END, DP_CMD_CANCEL,
        DP_CMD_RESULTS, DP_CMD_DONE, DP_CMD_ERROR, DP_CMD_HEARTBEAT, DP_CMD_BYE,
        DP_CMD_STATUS, DP_CMD_REPORT, DP_CMD_READY, DP_CMD_CHUNK, DP_CMD_RESULT,
        DP_CMD_NODE, DP_CMD_DEATH, DP_CMD_ABORT, DP_CMD_PART, DP_CMD_ACK, DP_CMD_WPART,
        DP_CMD_WACK };
    for (size_t c = 0; c < sizeof all; c++)
        for (int v = 0; v < 2; v++) {
            char name [64];
            snprintf (name, sizeof name, "%s-%d", dp_cmd_name (all [c]), v);
            dp_msg_t msg;
            s_example (&msg, all [c], v);
            s_write_msg ("proto_any", name, &msg, -1);
            s_done (&msg);
            for (size_t t = 0; t < sizeof s_targets / sizeof s_targets [0]; t++)
                for (size_t i = 0; i < s_targets [t].ncmds; i++)
                    if (s_targets [t].cmds [i] == all [c]) {
                        s_example (&msg, all [c], v);
                        s_write_msg (s_targets [t].target, name, &msg, (int) i);
                        s_done (&msg);
                    }
        }
}

static void
s_reports (void)
{
    for (int v = 0; v < 3; v++) {
        dp_report_t report;
        dp_report_init (&report);
        strcpy (report.broker.host, "broker.example");
        report.broker.pid = 31337;
        report.broker.uptime_ms = 123456;
        report.broker.msgs_in = 1000; report.broker.bytes_in = 1u << 20;
        report.broker.clients = (uint32_t) v;
        report.broker.metrics_port = v ? 9090 : 0;
        for (int i = 0; i < v; i++) {
            dp_report_node_t *node = dp_report_add_node (&report);
            snprintf (node->host, sizeof node->host, "node%d", i);
            node->pid = 100u + (uint32_t) i; node->local = i == 0; node->slots = 4;
            node->workers = 3; node->busy = 1; node->done = 500; node->failed = 2;
            node->restarts = 1;
        }
        for (int i = 0; i < 2 * v; i++) {
            dp_report_worker_t *worker = dp_report_add_worker (&report);
            snprintf (worker->host, sizeof worker->host, "node%d", i / 2);
            worker->pid = 1000u + (uint32_t) i; worker->node = i == 3 ? -1 : i / 2;
            worker->inflight = 1; worker->credit = 2; worker->done = 40;
        }
        for (int i = 0; i < v; i++) {
            dp_report_job_t *job = dp_report_add_job (&report);
            snprintf (job->client, sizeof job->client, "client%d@host", i);
            job->job = 1u + (uint32_t) i; strcpy (job->task, "square");
            job->sent = 100; job->total = 100; job->ended = true; job->done = 60;
            job->age_ms = 5000;
        }
        report.truncated = v == 2;
        dp_msg_t msg;
        dp_msg_init (&msg, DP_CMD_REPORT);
        if (dp_report_encode (&report, &msg)) {
            fprintf (stderr, "fuzz_gen_corpus: dp_report_encode failed\n");
            exit (1);
        }
        char name [32];
        snprintf (name, sizeof name, "report-%d", v);
        s_write ("report", name, zmq_msg_data (&msg.frame [0]), zmq_msg_size (&msg.frame [0]));
        dp_msg_reset (&msg);
        dp_report_clear (&report);
    }
}

//  fuzz_batch programs: op bytes (fuzz_batch.c)
static void
s_batches (void)
{
    static const uint8_t p0 [] = { 0, 5, 0, 0, 2, 4, 3, 1, 4, 0 };
    static const uint8_t p1 [] = { 1, 200, 2, 255, 255, 2, 0, 9, 4, 2, 4, 3, 0, 1, 4, 1 };
    static const uint8_t p2 [] = { 2, 10, 5, 6, 2, 1, 0, 0, 4, 3, 2, 0, 0, 0, 0, 0 };
    s_write ("batch", "small", p0, sizeof p0);
    s_write ("batch", "large-reuse", p1, sizeof p1);
    s_write ("batch", "statuses", p2, sizeof p2);
}

//  fuzz_unpack: a mode byte, then the data (fuzz_unpack.c)
static void
s_unpacks (void)
{
    dp_pack_t *pack = dp_pack_new ();
    for (int mode = 0; mode < 2; mode++) {
        const char *what [] = { "ints", "args", "map", "nested" };
        for (int v = 0; v < 4; v++) {
            dp_pack_reset (pack);
            dp_pack_t *p = pack;
            switch (v) {
                case 0: dp_pack_format (p, "[iIuUd]", -5, (int64_t) 1 << 40, 7u,
                                        (uint64_t) UINT64_MAX, 2.5); break;
                case 1: dp_pack_format (p, "[is]", 42, "hello"); break;
                case 2: dp_pack_format (p, "{sIsy}", "a", (int64_t) -1, "b", "\x01\x02", (size_t) 2); break;
                default: dp_pack_format (p, "[s[yn]{sb}]", "x", "yy", (size_t) 2, "k", 1); break;
            }
            size_t len;
            const uint8_t *data = (const uint8_t *) dp_pack_data (p, &len);
            uint8_t buf [256];
            buf [0] = (uint8_t) mode;
            memcpy (buf + 1, data, len);
            char name [32];
            snprintf (name, sizeof name, "mode%d-%s", mode, what [v]);
            s_write ("unpack", name, buf, len + 1);
        }
    }
    dp_pack_destroy (&pack);
    //  mode 2: a format (letters by index into "n*[]{} ,xq"), then data
    static const uint8_t f0 [] = { 2, 2, 0, 0, 3, 4, 0, 1, 5 };     //  "[nn]{n*}"
    s_write ("unpack", "mode2-format", f0, sizeof f0);
    //  mode 3: a packing program
    static const uint8_t r0 [] = { 3, 0, 9, 2, 1, 2, 3, 4, 5, 6, 7, 8, 5, 3, 'a', 'b', 'c',
                                   6, 2, 0, 255, 7, 0, 0, 0, 2, 0, 1, 4, 0x40, 9, 0x21, 0xfb,
                                   0x54, 0x44, 0x2d, 0x18 };
    s_write ("unpack", "mode3-values", r0, sizeof r0);
}

//  fuzz_records: byte 0 delimiter and buffer size, byte 1 read pattern
static void
s_records (void)
{
    static const char lines [] = "\x01\x07" "1\n2\n3\n\nlast without newline";
    static const char nul [] = "\x02\x80" "a\0bb\0\0ccc\0";
    static const char small [] = "\x03\x33" "a line longer than the four byte buffer\nx\n";
    s_write ("records", "lines", lines, sizeof lines - 1);
    s_write ("records", "nul-eio", nul, sizeof nul - 1);
    s_write ("records", "grow", small, sizeof small - 1);
}

//  fuzz_exec_msg: exec items (argv, sh with every field) and replies
static void
s_exec (void)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    char *argv [] = { "printf", "%s\\n", "a b", NULL };
    dp_exec_item_t plain = { .argv = argv };
    dp_exec_item_encode (&plain, &buf);
    s_write ("exec_msg", "item-argv", buf.data, buf.size);
    msgpack_sbuffer_clear (&buf);
    char *env [] = { "A=1", "BASH_FUNC_f%%=() {  echo hi $1\n}", NULL };
    size_t slot_at [] = { 2, 2, 17 };
    dp_exec_item_t full = { .sh = "f {} | tr a-z A-Z", .shell = "/bin/bash", .cwd = "/tmp",
                            .env = env, .input = (uint8_t *) "in\0put", .input_size = 6,
                            .has_input = true, .timeout = 2.5, .seq = 7, .has_seq = true,
                            .slot = 2, .has_slot = true, .slot_at = slot_at, .nslot_at = 3,
                            .has_slot_at = true, .flush = true, .nice = 5, .slotvar = "slot_var",
                            .termseq = { 2, 200, 15, 100, 9, 25 }, .ntermseq = 3 };
    dp_exec_item_encode (&full, &buf);
    s_write ("exec_msg", "item-sh-full", buf.data, buf.size);
    msgpack_sbuffer_clear (&buf);
    dp_exec_reply_t reply = { .status = 143, .signal = 15, .timedout = true,
                              .out = (uint8_t *) "out\n", .out_size = 4,
                              .err = (uint8_t *) "err\n", .err_size = 4,
                              .start = 1764640000.5, .runtime = 2.25, .host = "node-1",
                              .slot = 3, .node = 0xfedcba9876543210ull };
    dp_exec_reply_encode (&reply, &buf);
    s_write ("exec_msg", "reply", buf.data, buf.size);
    msgpack_sbuffer_clear (&buf);
    dp_exec_reply_t ok = { .host = "h" };
    dp_exec_reply_encode (&ok, &buf);
    s_write ("exec_msg", "reply-empty", buf.data, buf.size);
    msgpack_sbuffer_clear (&buf);
    dp_exec_reply_t streamed = { .out = (uint8_t *) "tail", .out_size = 4, .host = "h",
                                 .parts = 300 };
    dp_exec_reply_encode (&streamed, &buf);
    s_write ("exec_msg", "reply-parts", buf.data, buf.size);
    msgpack_sbuffer_destroy (&buf);
}

//  fuzz_broker: conversations. Each step: peer (0 client, 1 worker, 2
//  node; 3: the fake worker's policy, v), command, variant, and a field
//  patch to make the flow consistent.
typedef struct {
    int peer;
    uint8_t cmd;
    int v;
    uint32_t job, n;
    uint64_t chunk, total;
} s_step_t;

static void
s_conversation (const char *name, const s_step_t *steps, size_t nsteps)
{
    static const uint8_t *lists [3] = { s_client, s_worker, s_node };
    static const size_t sizes [3] = { sizeof s_client, sizeof s_worker, sizeof s_node };
    uint8_t *out = NULL;
    size_t size = 0;
    for (size_t s = 0; s < nsteps; s++) {
        const s_step_t *step = &steps [s];
        if (step->peer == 3) {          //  the fake worker's policy: v
            out = (uint8_t *) realloc (out, size + 2 + FUZZ_SEP_LEN);
            if (s) {
                memcpy (out + size, FUZZ_MSG_SEP, FUZZ_SEP_LEN);
                size += FUZZ_SEP_LEN;
            }
            out [size++] = 3;
            out [size++] = (uint8_t) step->v;
            continue;
        }
        int index = -1;
        for (size_t i = 0; i < sizes [step->peer]; i++)
            if (lists [step->peer][i] == step->cmd)
                index = (int) i;
        dp_msg_t msg;
        s_example (&msg, step->cmd, step->v);
        if (step->job)
            msg.job = step->job;
        if (step->chunk)
            msg.chunk = step->chunk;
        if (step->total)
            msg.total = step->total;
        size_t len;
        uint8_t *bytes = s_msg_bytes (name, &msg, index, &len);
        s_done (&msg);
        out = (uint8_t *) realloc (out, size + len + 2 * FUZZ_SEP_LEN);
        if (s) {
            memcpy (out + size, FUZZ_MSG_SEP, FUZZ_SEP_LEN);
            size += FUZZ_SEP_LEN;
        }
        out [size++] = (uint8_t) step->peer;
        memcpy (out + size, bytes, len);
        size += len;
        free (bytes);
    }
    s_write ("broker", name, out, size);
    free (out);
}

static void
s_conversations (void)
{
    static const s_step_t job [] = {
        { 0, DP_CMD_HELLO, 0, 0, 0, 0, 0 }, { 0, DP_CMD_JOB, 0, 1, 0, 0, 0 },
        { 0, DP_CMD_BATCH, 0, 1, 0, 0, 0 }, { 0, DP_CMD_END, 0, 1, 0, 0, 3 } };
    static const s_step_t worker [] = {
        { 1, DP_CMD_READY, 1, 0, 0, 0, 0 }, { 1, DP_CMD_RESULT, 0, 0, 0, 1, 0 },
        { 1, DP_CMD_HEARTBEAT, 0, 0, 0, 0, 0 } };
    static const s_step_t node [] = {
        { 2, DP_CMD_NODE, 0, 0, 0, 0, 0 }, { 2, DP_CMD_DEATH, 0, 0, 0, 1, 0 },
        { 2, DP_CMD_BYE, 0, 0, 0, 0, 0 } };
    static const s_step_t all [] = {
        { 1, DP_CMD_READY, 1, 0, 0, 0, 0 }, { 2, DP_CMD_NODE, 0, 0, 0, 0, 0 },
        { 0, DP_CMD_HELLO, 0, 0, 0, 0, 0 }, { 0, DP_CMD_JOB, 0, 2, 0, 0, 0 },
        { 0, DP_CMD_BATCH, 1, 2, 0, 0, 0 }, { 1, DP_CMD_RESULT, 1, 0, 0, 1, 0 },
        { 2, DP_CMD_DEATH, 0, 0, 0, 2, 0 }, { 0, DP_CMD_CANCEL, 0, 2, 0, 0, 0 },
        { 0, DP_CMD_STATUS, 0, 0, 0, 0, 0 }, { 1, DP_CMD_BYE, 0, 0, 0, 0, 0 },
        { 0, DP_CMD_BYE, 0, 0, 0, 0, 0 } };
    //  a job the fake worker runs: answered honestly, with an extra item,
    //  with failures
    static const s_step_t answered [] = {
        { 3, 0, 1, 0, 0, 0, 0 }, { 1, DP_CMD_READY, 1, 0, 0, 0, 0 },
        { 0, DP_CMD_HELLO, 0, 0, 0, 0, 0 }, { 0, DP_CMD_JOB, 0, 5, 0, 0, 0 },
        { 0, DP_CMD_BATCH, 1, 5, 0, 0, 0 }, { 0, DP_CMD_END, 0, 5, 0, 0, 8 } };
    static const s_step_t extra [] = {
        { 3, 0, 2, 0, 0, 0, 0 }, { 1, DP_CMD_READY, 1, 0, 0, 0, 0 },
        { 0, DP_CMD_HELLO, 0, 0, 0, 0, 0 }, { 0, DP_CMD_JOB, 0, 6, 0, 0, 0 },
        { 0, DP_CMD_BATCH, 0, 6, 0, 0, 0 }, { 0, DP_CMD_END, 0, 6, 0, 0, 3 } };
    static const s_step_t failing [] = {
        { 3, 0, 7, 0, 0, 0, 0 }, { 1, DP_CMD_READY, 1, 0, 0, 0, 0 },
        { 0, DP_CMD_HELLO, 0, 0, 0, 0, 0 }, { 0, DP_CMD_JOB, 1, 7, 0, 0, 0 },
        { 0, DP_CMD_BATCH, 1, 7, 0, 0, 0 }, { 0, DP_CMD_END, 0, 7, 0, 0, 8 } };
    s_conversation ("answered", answered, sizeof answered / sizeof answered [0]);
    s_conversation ("answered-extra", extra, sizeof extra / sizeof extra [0]);
    s_conversation ("answered-failing", failing, sizeof failing / sizeof failing [0]);
    s_conversation ("client-job", job, sizeof job / sizeof job [0]);
    s_conversation ("worker", worker, sizeof worker / sizeof worker [0]);
    s_conversation ("node", node, sizeof node / sizeof node [0]);
    s_conversation ("all", all, sizeof all / sizeof all [0]);
}

int
main (int argc, char *argv [])
{
    if (argc != 2) {
        fprintf (stderr, "Usage: fuzz_gen_corpus DIR\n");
        return 64;
    }
    s_dir = argv [1];
    if (mkdir (s_dir, 0755) && errno != EEXIST) {
        perror (s_dir);
        return 1;
    }
    s_messages ();
    s_reports ();
    s_batches ();
    s_unpacks ();
    s_records ();
    s_conversations ();
    s_exec ();
    return 0;
}
