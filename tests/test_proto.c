/*  test_proto - the wire codec: round trips, batches, hostile input, sockets,
    and a deterministic fuzz loop. Every rejection is checked for its code
    and must not crash or leak (run under ASan/UBSan).
*/
#include "dp_proto.h"
#include "dp_report.h"
#include "testutil.h"

#include <errno.h>
#include <msgpack.h>
#include <pthread.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Helpers: raw frames and hand-made headers

typedef struct {
    const void *data;
    size_t size;
} part_t;

static const char s_sig [4] = { 'D', 'P', 'L', DP_PROTO_VERSION };

//  Decode a message built from raw parts; returns the decoder's code.
//  On success msg holds the message (caller resets).
static int
s_decode_parts (dp_msg_t *msg, const part_t *parts, size_t n, char *err, size_t errlen)
{
    zmq_msg_t frames [16];
    REQUIRE (n <= 16);
    for (size_t i = 0; i < n; i++) {
        REQUIRE (zmq_msg_init_size (&frames [i], parts [i].size) == 0);
        if (parts [i].size)
            memcpy (zmq_msg_data (&frames [i]), parts [i].data, parts [i].size);
    }
    int rc = dp_msg_decode (msg, frames, n, err, errlen);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close (&frames [i]);
    return rc;
}

//  Decode sig, cmd, header and up to 4 payload parts; resets msg on success.
static int
s_decode_cmd (uint8_t cmd, const void *hdr, size_t hdrlen, const part_t *payload,
              size_t npayload, char *err, size_t errlen)
{
    part_t parts [8] = {{ s_sig, 4 }, { &cmd, 1 }, { hdr, hdrlen }};
    for (size_t i = 0; i < npayload; i++)
        parts [3 + i] = payload [i];
    dp_msg_t msg;
    int rc = s_decode_parts (&msg, parts, 3 + npayload, err, errlen);
    dp_msg_reset (&msg);
    return rc;
}

//  A test-side msgpack writer for hostile or hand-made headers.
static msgpack_sbuffer s_sb;
static msgpack_packer s_pk;

static void
h_map (uint32_t n)
{
    msgpack_sbuffer_clear (&s_sb);
    msgpack_pack_map (&s_pk, n);
}

static void
h_key (const char *key)
{
    msgpack_pack_str_with_body (&s_pk, key, strlen (key));
}

static void
h_u (const char *key, uint64_t value)
{
    h_key (key);
    msgpack_pack_uint64 (&s_pk, value);
}

static void
h_s (const char *key, const char *value)
{
    h_key (key);
    msgpack_pack_str_with_body (&s_pk, value, strlen (value));
}

//  Little-endian lens frame from an array of lengths.
static void
s_lens (uint8_t *out, const uint32_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++)
            out [4 * i + (size_t) b] = (uint8_t) (lens [i] >> (8 * b));
}

//  Encode msg, decode the frames into out; returns decode's code.
static int
s_round_trip (dp_msg_t *msg, dp_msg_t *out)
{
    zmq_msg_t frames [3 + DP_MAX_PAYLOAD];
    size_t n = 0;
    int rc = dp_msg_encode (msg, frames, &n);
    CHECK (rc == 0);
    if (rc)
        return rc;
    char err [256];
    rc = dp_msg_decode (out, frames, n, err, sizeof err);
    if (rc)
        fprintf (stderr, "decode: %s\n", err);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close (&frames [i]);
    return rc;
}


//  ---------------------------------------------------------------------
//  Round trips of every command

static void
test_roundtrip_session (void)
{
    dp_msg_t msg, out;
    dp_msg_init (&msg, DP_CMD_HELLO);
    msg.hb = 1500;
    strcpy (msg.host, "client-7");
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.cmd == DP_CMD_HELLO && out.version == DP_PROTO_VERSION);
    CHECK (out.hb == 1500 && strcmp (out.host, "client-7") == 0);
    dp_msg_reset (&out);

    dp_msg_init (&msg, DP_CMD_WELCOME);
    msg.hb = 1000; msg.window = 100000; msg.wbytes = 1ull << 40; msg.batch = 4096;
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.cmd == DP_CMD_WELCOME && out.hb == 1000 && out.window == 100000);
    CHECK (out.wbytes == 1ull << 40 && out.batch == 4096);
    dp_msg_reset (&out);

    dp_msg_init (&msg, DP_CMD_JOB);
    msg.job = 0xfffffffe; msg.ordered = true; msg.attempts = 5; msg.chunksize = 77;
    strcpy (msg.task, "square");
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.job == 0xfffffffe && out.ordered && out.attempts == 5 && out.chunksize == 77);
    CHECK (strcmp (out.task, "square") == 0);
    dp_msg_reset (&out);

    dp_msg_init (&msg, DP_CMD_END);
    msg.job = 3; msg.total = 1ull << 33;
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.cmd == DP_CMD_END && out.job == 3 && out.total == 1ull << 33);
    dp_msg_reset (&out);

    dp_msg_init (&msg, DP_CMD_CANCEL);
    msg.job = 9;
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.cmd == DP_CMD_CANCEL && out.job == 9);
    dp_msg_reset (&out);

    dp_msg_init (&msg, DP_CMD_DONE);
    msg.job = 4; msg.ok = 10; msg.failed = UINT64_MAX;
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.job == 4 && out.ok == 10 && out.failed == UINT64_MAX);
    dp_msg_reset (&out);

    int cmds [] = { DP_CMD_HEARTBEAT, DP_CMD_BYE };
    for (int i = 0; i < 2; i++) {
        dp_msg_init (&msg, (uint8_t) cmds [i]);
        CHECK (s_round_trip (&msg, &out) == 0);
        CHECK (out.cmd == cmds [i] && out.nframes == 0);
        dp_msg_reset (&out);
    }
}

static void
test_roundtrip_error (void)
{
    dp_msg_t msg, out;
    dp_msg_init (&msg, DP_CMD_ERROR);
    msg.code = DP_PROTO_ENOTREADY;
    strcpy (msg.text, "who are you?");
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.code == DP_PROTO_ENOTREADY && !out.has_job);
    CHECK (strcmp (out.text, "who are you?") == 0);
    dp_msg_reset (&out);

    dp_msg_init (&msg, DP_CMD_ERROR);
    msg.code = INT32_MIN; msg.has_job = true; msg.job = 12;
    memset (msg.text, 'x', DP_MAX_TEXT);        //  the longest text
    msg.text [DP_MAX_TEXT] = 0;
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.code == INT32_MIN && out.has_job && out.job == 12);
    CHECK (strlen (out.text) == DP_MAX_TEXT);
    dp_msg_reset (&out);

    msg.code = INT32_MAX;
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.code == INT32_MAX);
    dp_msg_reset (&out);
}

static void
test_roundtrip_ready (void)
{
    dp_msg_t msg, out;
    dp_msg_init (&msg, DP_CMD_READY);
    char *names [] = { "square", "exec", "sleep" };
    msg.tasks = names;
    msg.ntasks = 3;
    msg.credit = 4; msg.pid = 4242; msg.slots = 8; msg.hb = 250;
    strcpy (msg.host, "node-b");
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.cmd == DP_CMD_READY && out.ntasks == 3);
    CHECK (out.credit == 4 && out.pid == 4242 && out.slots == 8 && out.hb == 250);
    CHECK (strcmp (out.host, "node-b") == 0);
    for (uint32_t i = 0; i < 3 && i < out.ntasks; i++)
        CHECK (strcmp (out.tasks [i], names [i]) == 0);
    dp_msg_reset (&out);
    CHECK (out.tasks == NULL && out.ntasks == 0);

    msg.ntasks = 0;                 //  a worker with nothing to run
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (out.ntasks == 0);
    dp_msg_reset (&out);
}

//  Fill a batch with `n` items "item-<i>" (every 7th empty).
static void
s_fill (dp_batch_t *batch, uint32_t n, bool results)
{
    for (uint32_t i = 0; i < n; i++) {
        char item [32];
        int len = i % 7 == 3? 0: snprintf (item, sizeof item, "item-%u", i);
        if (results) {
            size_t start = batch->size;
            char *p = (char *) dp_batch_reserve (batch, 64);
            REQUIRE (p);
            memcpy (p, item, (size_t) len);
            dp_batch_set_size (batch, start + (size_t) len);
            REQUIRE (dp_batch_commit (batch, start, (uint8_t) (i % (DP_ST_MAX + 1))) == 0);
        }
        else
            REQUIRE (dp_batch_add (batch, item, (size_t) len) == 0);
    }
}

//  Check a decoded batch against s_fill's items.
static void
s_check_items (dp_msg_t *msg, uint32_t n, bool results)
{
    CHECK (msg->n == n && msg->nframes == (results? 3: 2));
    const uint8_t *data = dp_msg_data (msg);
    size_t offset = 0;
    for (uint32_t i = 0; i < n && i < msg->n; i++) {
        char item [32];
        int len = i % 7 == 3? 0: snprintf (item, sizeof item, "item-%u", i);
        CHECK (dp_msg_len (msg, i) == (uint32_t) len);
        CHECK (memcmp (data + offset, item, (size_t) len) == 0);
        if (results)
            CHECK (dp_msg_status (msg, i) == i % (DP_ST_MAX + 1));
        offset += dp_msg_len (msg, i);
    }
    CHECK (offset == zmq_msg_size (&msg->frame [1]));
}

//  Build, encode and decode one batch command with n items.
static void
s_batch_trip (uint8_t cmd, uint32_t n)
{
    bool results = cmd == DP_CMD_RESULTS || cmd == DP_CMD_RESULT;
    dp_batch_t batch;
    dp_batch_init (&batch);
    s_fill (&batch, n, results);
    dp_msg_t msg, out;
    dp_msg_init (&msg, cmd);
    msg.job = 77; msg.first = 1ull << 35; msg.chunk = 1ull << 50; msg.ns = 123456789;
    msg.csize = 3;
    msg.k = n % 7 == 0 && n ? 7 : 1;
    msg.last = msg.done = true;
    msg.ok = 5;
    msg.failed = 2;
    strcpy (msg.task, "t");
    REQUIRE (dp_batch_attach (&batch, &msg, results) == 0);
    CHECK (batch.n == 0 && batch.size == 0);
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (msg.nframes == 0);           //  payload moved out by encode
    CHECK (out.cmd == cmd);
    if (cmd == DP_CMD_BATCH || cmd == DP_CMD_RESULTS)
        CHECK (out.job == 77 && out.first == 1ull << 35);
    if (cmd == DP_CMD_BATCH)
        CHECK (out.csize == 3 && out.last);
    if (cmd == DP_CMD_RESULTS)
        CHECK (out.done && out.ok == 5 && out.failed == 2);
    if (cmd == DP_CMD_CHUNK || cmd == DP_CMD_RESULT)
        CHECK (!out.last && !out.done);     //  keys these commands do not carry
    if (cmd == DP_CMD_CHUNK || cmd == DP_CMD_RESULT)
        CHECK (out.chunk == 1ull << 50 && out.k == msg.k);
    if (results)
        CHECK (out.ns == 123456789);
    if (cmd == DP_CMD_CHUNK)
        CHECK (strcmp (out.task, "t") == 0);
    s_check_items (&out, n, results);
    dp_msg_reset (&out);
    //  The batch is reusable after attach.
    s_fill (&batch, 3, results);
    CHECK (batch.n == 3);
    dp_batch_clear (&batch);
}

static void
test_roundtrip_batches (void)
{
    uint8_t cmds [] = { DP_CMD_BATCH, DP_CMD_CHUNK, DP_CMD_RESULTS, DP_CMD_RESULT };
    uint32_t sizes [] = { 0, 1, 7, 1000, DP_MAX_BATCH };
    for (size_t c = 0; c < 4; c++)
        for (size_t s = 0; s < 5; s++)
            s_batch_trip (cmds [c], sizes [s]);
}


//  ---------------------------------------------------------------------
//  Batches

static void
test_batch_basics (void)
{
    dp_batch_t batch;
    dp_batch_init (&batch);
    //  Zero-length items only: an empty data frame, lens of zeros.
    for (int i = 0; i < 5; i++)
        CHECK (dp_batch_add (&batch, NULL, 0) == 0);
    CHECK (batch.n == 5 && batch.size == 0);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_BATCH);
    CHECK (dp_batch_attach (&batch, &msg, false) == 0);
    CHECK (msg.n == 5 && msg.nframes == 2);
    CHECK (zmq_msg_size (&msg.frame [0]) == 20 && zmq_msg_size (&msg.frame [1]) == 0);
    for (uint32_t i = 0; i < 5; i++)
        CHECK (dp_msg_len (&msg, i) == 0);
    //  A message that already has payload refuses a second attach.
    CHECK (dp_batch_add (&batch, "x", 1) == 0);
    CHECK (dp_batch_attach (&batch, &msg, false) == -1);
    dp_msg_reset (&msg);

    //  Lens are little-endian on the wire.
    dp_batch_clear (&batch);
    char big [300];
    memset (big, 'b', sizeof big);
    CHECK (dp_batch_add (&batch, big, sizeof big) == 0);
    dp_msg_init (&msg, DP_CMD_BATCH);
    CHECK (dp_batch_attach (&batch, &msg, true) == 0);
    const uint8_t *lens = (const uint8_t *) zmq_msg_data (&msg.frame [0]);
    CHECK (lens [0] == 0x2c && lens [1] == 0x01 && lens [2] == 0 && lens [3] == 0);
    CHECK (dp_msg_status (&msg, 0) == DP_ST_OK);
    dp_msg_reset (&msg);

    //  commit: bad start and bad status are refused.
    CHECK (dp_batch_commit (&batch, batch.size + 1, DP_ST_OK) == -1);
    CHECK (dp_batch_commit (&batch, batch.size, DP_ST_MAX + 1) == -1);
    CHECK (dp_batch_commit (&batch, batch.size, DP_ST_TASK) == 0);
    CHECK (batch.n == 1);
    dp_batch_set_size (&batch, batch.size + 10);     //  growing is ignored
    CHECK (batch.size == 0);
    dp_batch_clear (&batch);
    dp_batch_clear (&batch);                            //  twice is fine
}

static void
test_reject_envelope (void)
{
    char err [256];
    dp_msg_t msg;
    uint8_t cmd = DP_CMD_HEARTBEAT, empty_map = 0x80;
    part_t ok [3] = {{ s_sig, 4 }, { &cmd, 1 }, { &empty_map, 1 }};
    CHECK (s_decode_parts (&msg, ok, 3, err, sizeof err) == 0);

    //  Truncated: too few frames.
    CHECK (s_decode_parts (&msg, ok, 0, err, sizeof err) == DP_PROTO_ETRUNC);
    CHECK (s_decode_parts (&msg, ok, 1, err, sizeof err) == DP_PROTO_ETRUNC);
    CHECK (s_decode_parts (&msg, ok, 2, err, sizeof err) == DP_PROTO_ETRUNC);
    //  Signatures and versions.
    part_t bad [3] = {{ "XPL\1", 4 }, { &cmd, 1 }, { &empty_map, 1 }};
    CHECK (s_decode_parts (&msg, bad, 3, err, sizeof err) == DP_PROTO_ESIG);
    bad [0].size = 3;
    CHECK (s_decode_parts (&msg, bad, 3, err, sizeof err) == DP_PROTO_ESIG);
    bad [0] = (part_t) { "DPL\1\1", 5 };
    CHECK (s_decode_parts (&msg, bad, 3, err, sizeof err) == DP_PROTO_ESIG);
    bad [0] = (part_t) { "DPL\2", 4 };
    CHECK (s_decode_parts (&msg, bad, 3, err, sizeof err) == DP_PROTO_EVERSION);
    CHECK (msg.version == 2);
    bad [0] = (part_t) { "DPL\0", 4 };
    CHECK (s_decode_parts (&msg, bad, 1, err, sizeof err) == DP_PROTO_EVERSION);
    //  Commands.
    uint8_t unknown = 0x7f;
    bad [0] = ok [0];
    bad [1] = (part_t) { &unknown, 1 };
    CHECK (s_decode_parts (&msg, bad, 3, err, sizeof err) == DP_PROTO_ECMD);
    unknown = 0;
    CHECK (s_decode_parts (&msg, bad, 3, err, sizeof err) == DP_PROTO_ECMD);
    bad [1] = (part_t) { "\x0a\x0a", 2 };
    CHECK (s_decode_parts (&msg, bad, 3, err, sizeof err) == DP_PROTO_ECMD);
    bad [1] = (part_t) { "", 0 };
    CHECK (s_decode_parts (&msg, bad, 3, err, sizeof err) == DP_PROTO_ECMD);
    //  Too many frames: a payload on HEARTBEAT, or more than 6 in all.
    part_t many [8] = {{ s_sig, 4 }, { &cmd, 1 }, { &empty_map, 1 }, { "", 0 },
                       { "", 0 }, { "", 0 }, { "", 0 }, { "", 0 }};
    CHECK (s_decode_parts (&msg, many, 4, err, sizeof err) == DP_PROTO_EFRAMES);
    CHECK (s_decode_parts (&msg, many, 8, err, sizeof err) == DP_PROTO_EFRAMES);
}

static void
test_reject_frames (void)
{
    char err [256];
    //  BATCH with too few / too many payload frames.
    h_map (3); h_u ("job", 1); h_u ("first", 0); h_u ("n", 1);
    uint8_t lens [4] = { 1, 0, 0, 0 };
    part_t pay [4] = {{ lens, 4 }, { "a", 1 }, { "", 0 }, { "", 0 }};
    CHECK (s_decode_cmd (DP_CMD_BATCH, s_sb.data, s_sb.size, pay, 2, err, sizeof err) == 0);
    CHECK (s_decode_cmd (DP_CMD_BATCH, s_sb.data, s_sb.size, pay, 1, err, sizeof err) == DP_PROTO_ETRUNC);
    CHECK (s_decode_cmd (DP_CMD_BATCH, s_sb.data, s_sb.size, pay, 0, err, sizeof err) == DP_PROTO_ETRUNC);
    CHECK (s_decode_cmd (DP_CMD_BATCH, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == DP_PROTO_EFRAMES);
    CHECK (s_decode_cmd (DP_CMD_RESULT, s_sb.data, s_sb.size, pay, 2, err, sizeof err) == DP_PROTO_ETRUNC);

    //  A frame over DP_MAX_FRAME is refused by its size alone (never read).
    static char dummy [1];
    zmq_msg_t frames [5];
    uint8_t cmd = DP_CMD_BATCH;
    zmq_msg_init_data (&frames [0], (void *) s_sig, 4, NULL, NULL);
    zmq_msg_init_data (&frames [1], &cmd, 1, NULL, NULL);
    zmq_msg_init_data (&frames [2], s_sb.data, s_sb.size, NULL, NULL);
    zmq_msg_init_data (&frames [3], lens, 4, NULL, NULL);
    zmq_msg_init_data (&frames [4], dummy, (size_t) DP_MAX_FRAME + 1, NULL, NULL);
    dp_msg_t msg;
    CHECK (dp_msg_decode (&msg, frames, 5, err, sizeof err) == DP_PROTO_ELIMIT);
    for (int i = 0; i < 5; i++)
        zmq_msg_close (&frames [i]);

    //  Oversized header.
    char *huge = (char *) calloc (1, DP_MAX_HEADER + 1);
    REQUIRE (huge);
    huge [0] = (char) 0x80;
    CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, huge, DP_MAX_HEADER + 1, NULL, 0, err, sizeof err) == DP_PROTO_ELIMIT);
    free (huge);
}

//  A map with one key "x" whose value is `depth` nested arrays around 1.
static void
s_nested (int depth)
{
    h_map (1);
    h_key ("x");
    for (int i = 0; i < depth; i++)
        msgpack_pack_array (&s_pk, 1);
    msgpack_pack_uint8 (&s_pk, 1);
}

static void
test_reject_msgpack (void)
{
    char err [256];
    //  Depth: the top map is level 1; 3 arrays inside it make 4 (allowed).
    s_nested (DP_MAX_DEPTH - 1);
    CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == 0);
    s_nested (DP_MAX_DEPTH);
    CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_ELIMIT);
    s_nested (100);
    CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_ELIMIT);
    CHECK (strstr (err, "nesting") != NULL);

    //  Lengths that claim more than the header holds: never allocated.
    static const uint8_t lies [][8] = {
        { 0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff },   //  array32
        { 0x81, 0xa1, 'x', 0xdf, 0xff, 0xff, 0xff, 0xff },   //  map32
        { 0x81, 0xa1, 'x', 0xdb, 0xff, 0xff, 0xff, 0xff },   //  str32
        { 0x81, 0xa1, 'x', 0xc6, 0xff, 0xff, 0xff, 0xff },   //  bin32
        { 0x81, 0xa1, 'x', 0xc9, 0xff, 0xff, 0xff, 0xff },   //  ext32
        { 0x81, 0xa1, 'x', 0xdc, 0xff, 0xff, 0xc0, 0xc0 },   //  array16
        { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'x', 0xc0 },   //  top map32
        { 0x81, 0xa1, 'x', 0xcf, 0x01, 0x02, 0x03, 0x04 },   //  uint64 cut off
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies [0]; i++) {
        CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, lies [i], 8, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
        CHECK (strstr (err, "declared") || strstr (err, "exceeds") || strstr (err, "bad msgpack"));
    }

    //  Trailing garbage, not a map, empty, the never-used byte 0xc1.
    CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, "\x80\xc0", 2, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    CHECK (strstr (err, "trailing") != NULL);
    CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, "\x90", 1, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, "", 0, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, "\x81\xa1x\xc1", 4, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, "\x81\x01\x02", 3, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);

    //  Every other msgpack type is skipped fine as an unknown key's value.
    static const uint8_t fine [] = { 0x8a, 0xa1, 'a', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0,
        0xa1, 'b', 0xd4, 1, 2,  0xa1, 'c', 0xc7, 2, 9, 1, 2,  0xa1, 'd', 0xc4, 1, 7,
        0xa1, 'e', 0xc0,  0xa1, 'f', 0xe0,  0xa1, 'g', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1,
        0xa1, 'h', 0x82, 1, 2, 3, 4,  0xa1, 'i', 0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0xa1, 'j', 0xca, 0, 0, 0, 0 };
    CHECK (s_decode_cmd (DP_CMD_HEARTBEAT, fine, sizeof fine, NULL, 0, err, sizeof err) == 0);
}

static void
test_reject_keys (void)
{
    char err [256];
    uint8_t lens [4] = { 1, 0, 0, 0 };
    part_t pay [2] = {{ lens, 4 }, { "a", 1 }};

    //  Missing required key, named precisely.
    h_map (2); h_u ("first", 0); h_u ("n", 1);
    CHECK (s_decode_cmd (DP_CMD_BATCH, s_sb.data, s_sb.size, pay, 2, err, sizeof err) == DP_PROTO_EHEADER);
    CHECK (strcmp (err, "BATCH: missing 'job'") == 0);
    //  Wrong types and ranges.
    h_map (3); h_s ("job", "1"); h_u ("first", 0); h_u ("n", 1);
    CHECK (s_decode_cmd (DP_CMD_BATCH, s_sb.data, s_sb.size, pay, 2, err, sizeof err) == DP_PROTO_EHEADER);
    h_map (3); h_u ("job", 1ull << 32); h_u ("first", 0); h_u ("n", 1);
    CHECK (s_decode_cmd (DP_CMD_BATCH, s_sb.data, s_sb.size, pay, 2, err, sizeof err) == DP_PROTO_EHEADER);
    h_map (3); h_key ("job"); msgpack_pack_int8 (&s_pk, -1); h_u ("first", 0); h_u ("n", 1);
    CHECK (s_decode_cmd (DP_CMD_BATCH, s_sb.data, s_sb.size, pay, 2, err, sizeof err) == DP_PROTO_EHEADER);
    h_map (3); h_u ("job", 1); h_u ("task", 1); h_key ("ordered"); msgpack_pack_true (&s_pk);
    CHECK (s_decode_cmd (DP_CMD_JOB, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    h_map (3); h_u ("job", 1); h_s ("task", "t"); h_u ("ordered", 1);
    CHECK (s_decode_cmd (DP_CMD_JOB, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    h_map (2); h_u ("job", 1); h_s ("task", "");
    CHECK (s_decode_cmd (DP_CMD_JOB, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    h_map (1); h_u ("code", 1ull << 31);
    CHECK (s_decode_cmd (DP_CMD_ERROR, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    h_map (1); h_key ("code"); msgpack_pack_int64 (&s_pk, INT64_MIN);
    CHECK (s_decode_cmd (DP_CMD_ERROR, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    //  Duplicate and non-string keys.
    h_map (4); h_u ("job", 1); h_u ("job", 2); h_u ("first", 0); h_u ("n", 1);
    CHECK (s_decode_cmd (DP_CMD_BATCH, s_sb.data, s_sb.size, pay, 2, err, sizeof err) == DP_PROTO_EHEADER);
    h_map (1); msgpack_pack_uint8 (&s_pk, 1); msgpack_pack_uint8 (&s_pk, 1);
    CHECK (s_decode_cmd (DP_CMD_BYE, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    //  Unknown keys and keys of other commands are ignored.
    h_map (5); h_u ("job", 1); h_u ("first", 0); h_u ("n", 1); h_u ("future", 9);
    h_key ("task"); msgpack_pack_array (&s_pk, 0);
    CHECK (s_decode_cmd (DP_CMD_BATCH, s_sb.data, s_sb.size, pay, 2, err, sizeof err) == 0);
    //  Strings over their buffers.
    char name [DP_MAX_NAME + 2];
    memset (name, 'n', DP_MAX_NAME + 1);
    name [DP_MAX_NAME + 1] = 0;
    h_map (2); h_u ("hb", 1); h_s ("host", name);
    CHECK (s_decode_cmd (DP_CMD_HELLO, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_ELIMIT);
    name [DP_MAX_NAME] = 0;
    h_map (2); h_u ("hb", 1); h_s ("host", name);
    CHECK (s_decode_cmd (DP_CMD_HELLO, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == 0);
    h_map (2); h_u ("hb", 1); h_key ("host"); msgpack_pack_str_with_body (&s_pk, "a\0b", 3);
    CHECK (s_decode_cmd (DP_CMD_HELLO, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
}

//  Decode a READY whose tasks are n copies of `name` (or n integers).
static int
s_ready (uint32_t n, const char *name, bool as_int, char *err, size_t errlen)
{
    h_map (3); h_u ("credit", 1); h_u ("hb", 1000);
    h_key ("tasks");
    msgpack_pack_array (&s_pk, n);
    for (uint32_t i = 0; i < n; i++) {
        if (as_int)
            msgpack_pack_uint8 (&s_pk, 1);
        else
            msgpack_pack_str_with_body (&s_pk, name, strlen (name));
    }
    return s_decode_cmd (DP_CMD_READY, s_sb.data, s_sb.size, NULL, 0, err, errlen);
}

static void
test_reject_ready (void)
{
    char err [256];
    CHECK (s_ready (DP_MAX_TASKS, "t", false, err, sizeof err) == 0);
    CHECK (s_ready (DP_MAX_TASKS + 1, "t", false, err, sizeof err) == DP_PROTO_ELIMIT);
    CHECK (s_ready (2, "", false, err, sizeof err) == DP_PROTO_EHEADER);
    CHECK (s_ready (2, "", true, err, sizeof err) == DP_PROTO_EHEADER);
    char name [DP_MAX_NAME + 2];
    memset (name, 'n', DP_MAX_NAME + 1);
    name [DP_MAX_NAME + 1] = 0;
    CHECK (s_ready (1, name, false, err, sizeof err) == DP_PROTO_ELIMIT);
    h_map (3); h_u ("credit", 1); h_u ("hb", 1000); h_s ("tasks", "square");
    CHECK (s_decode_cmd (DP_CMD_READY, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    h_map (2); h_u ("credit", 1); h_u ("hb", 1000);
    CHECK (s_decode_cmd (DP_CMD_READY, s_sb.data, s_sb.size, NULL, 0, err, sizeof err) == DP_PROTO_EHEADER);
    CHECK (strcmp (err, "READY: missing 'tasks'") == 0);
}

//  RESULTS header for n items.
static void
s_results_header (uint64_t n)
{
    h_map (4); h_u ("job", 1); h_u ("first", 0); h_u ("n", n); h_u ("ns", 5);
}

static void
test_reject_payload (void)
{
    char err [256];
    uint32_t l3 [3] = { 2, 0, 3 };
    uint8_t lens [12], st [3] = { DP_ST_OK, DP_ST_TASK, DP_ST_MAX };
    s_lens (lens, l3, 3);
    part_t pay [3] = {{ lens, 12 }, { "ab" "cde", 5 }, { st, 3 }};
    s_results_header (3);
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == 0);

    //  lens / data / status mismatches.
    pay [1].size = 4;
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == DP_PROTO_EPAYLOAD);
    pay [1].size = 5;
    pay [0].size = 8;
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == DP_PROTO_EPAYLOAD);
    pay [0].size = 12;
    pay [2].size = 2;
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == DP_PROTO_EPAYLOAD);
    pay [2].size = 3;
    st [1] = DP_ST_MAX + 1;
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == DP_PROTO_EPAYLOAD);
    st [1] = 0xff;
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == DP_PROTO_EPAYLOAD);
    st [1] = DP_ST_OK;
    //  Lengths whose 32-bit sum wraps to the data size are still refused.
    uint32_t wrap [3] = { 0xffffffffu, 3, 3 };
    s_lens (lens, wrap, 3);
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == DP_PROTO_EPAYLOAD);

    //  n over DP_MAX_BATCH (checked before the payload is looked at).
    s_results_header ((uint64_t) DP_MAX_BATCH + 1);
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == DP_PROTO_ELIMIT);
    //  n missing.
    h_map (2); h_u ("chunk", 1); h_s ("task", "t");
    CHECK (s_decode_cmd (DP_CMD_CHUNK, s_sb.data, s_sb.size, pay, 2, err, sizeof err) == DP_PROTO_EHEADER);
    CHECK (strcmp (err, "CHUNK: missing 'n'") == 0);

    //  Several chunks in one RESULT: k must split n evenly (PROTOCOL §4).
    s_lens (lens, l3, 3);
    h_map (4); h_u ("chunk", 9); h_u ("n", 3); h_u ("k", 3); h_u ("ns", 5);
    CHECK (s_decode_cmd (DP_CMD_RESULT, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == 0);
    h_map (4); h_u ("chunk", 9); h_u ("n", 3); h_u ("k", 2); h_u ("ns", 5);
    CHECK (s_decode_cmd (DP_CMD_RESULT, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == DP_PROTO_EHEADER);
    CHECK (strstr (err, "k=2") != NULL);
    h_map (4); h_u ("chunk", 9); h_u ("n", 3); h_u ("k", 6); h_u ("ns", 5);
    CHECK (s_decode_cmd (DP_CMD_RESULT, s_sb.data, s_sb.size, pay, 3, err, sizeof err) == DP_PROTO_EHEADER);
    part_t none [3] = {{ "", 0 }, { "", 0 }, { "", 0 }};
    h_map (4); h_u ("chunk", 9); h_u ("n", 0); h_u ("k", 2); h_u ("ns", 5);
    CHECK (s_decode_cmd (DP_CMD_RESULT, s_sb.data, s_sb.size, none, 3, err, sizeof err) == DP_PROTO_EHEADER);
}

//  Longer batches: faults inside the blocked (vectorised) checks.
static void
test_reject_payload_long (void)
{
    char err [256];
    uint32_t l37 [37];
    uint8_t lens37 [4 * 37], st37 [37];
    for (int i = 0; i < 37; i++)
        l37 [i] = 1;
    l37 [9] = 0xffffffffu;                  //  64-bit sum: 2^32 + 35
    s_lens (lens37, l37, 37);
    memset (st37, DP_ST_OK, sizeof st37);
    char data37 [36];
    memset (data37, 'd', sizeof data37);
    part_t pay37 [3] = {{ lens37, sizeof lens37 }, { data37, 35 }, { st37, 37 }};
    s_results_header (37);
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay37, 3, err, sizeof err) == DP_PROTO_EPAYLOAD);
    l37 [9] = 0;
    s_lens (lens37, l37, 37);
    pay37 [1].size = 36;
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay37, 3, err, sizeof err) == 0);
    st37 [20] = DP_ST_MAX + 1;
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay37, 3, err, sizeof err) == DP_PROTO_EPAYLOAD);
    CHECK (strstr (err, "item 20 ") != NULL);
    st37 [20] = DP_ST_OK;
    st37 [36] = 0x80;
    CHECK (s_decode_cmd (DP_CMD_RESULTS, s_sb.data, s_sb.size, pay37, 3, err, sizeof err) == DP_PROTO_EPAYLOAD);
    CHECK (strstr (err, "item 36 ") != NULL);
}

static void
test_reject_encode (void)
{
    zmq_msg_t frames [3 + DP_MAX_PAYLOAD];
    size_t n;
    dp_msg_t msg;
    dp_msg_init (&msg, 0x55);
    CHECK (dp_msg_encode (&msg, frames, &n) == DP_PROTO_ECMD);
    dp_msg_init (&msg, DP_CMD_BATCH);       //  no payload attached
    CHECK (dp_msg_encode (&msg, frames, &n) == DP_PROTO_EPAYLOAD);
    dp_batch_t batch;
    dp_batch_init (&batch);
    dp_batch_add (&batch, "x", 1);
    dp_batch_attach (&batch, &msg, false);
    msg.n = DP_MAX_BATCH + 1;
    CHECK (dp_msg_encode (&msg, frames, &n) == DP_PROTO_ELIMIT);
    msg.n = 2;
    CHECK (dp_msg_encode (&msg, frames, &n) == DP_PROTO_EPAYLOAD);
    CHECK (msg.nframes == 2);               //  nothing moved on failure
    msg.cmd = DP_CMD_CHUNK;                 //  CHUNK needs a task name
    msg.n = 1;
    CHECK (dp_msg_encode (&msg, frames, &n) == DP_PROTO_EHEADER);
    dp_msg_reset (&msg);
    dp_batch_clear (&batch);

    dp_msg_init (&msg, DP_CMD_HELLO);       //  unterminated string
    memset (msg.host, 'h', sizeof msg.host);
    CHECK (dp_msg_encode (&msg, frames, &n) == DP_PROTO_ELIMIT);
    //  READY whose header would pass DP_MAX_HEADER.
    dp_msg_init (&msg, DP_CMD_READY);
    char name [101];
    memset (name, 'n', 100);
    name [100] = 0;
    char *names [DP_MAX_TASKS + 1];
    for (int i = 0; i <= DP_MAX_TASKS; i++)
        names [i] = name;
    msg.tasks = names;
    msg.ntasks = 60;
    CHECK (dp_msg_encode (&msg, frames, &n) == DP_PROTO_ELIMIT);
    msg.ntasks = DP_MAX_TASKS + 1;
    CHECK (dp_msg_encode (&msg, frames, &n) == DP_PROTO_ELIMIT);
    names [0] = "";
    msg.ntasks = 1;
    CHECK (dp_msg_encode (&msg, frames, &n) == DP_PROTO_EHEADER);

    //  Names and texts.
    CHECK (strcmp (dp_cmd_name (DP_CMD_RESULTS), "RESULTS") == 0);
    CHECK (strcmp (dp_cmd_name (0x55), "?") == 0);
    CHECK (strcmp (dp_cmd_name (-1), "?") == 0);
    for (int code = 0; code >= DP_PROTO_EJOB; code--)
        CHECK (strcmp (dp_proto_strerror (code), "unknown error") != 0);
    CHECK (strcmp (dp_proto_strerror (-99), "unknown error") == 0);
}


//  Decode on another thread: its unpack zone is freed when it exits
//  (LeakSanitizer would report it otherwise).
static void *
s_decoder_thread (void *arg)
{
    char err [256];
    h_map (2); h_u ("job", 1); h_u ("total", 2);
    *(int *) arg = s_decode_cmd (DP_CMD_END, s_sb.data, s_sb.size, NULL, 0, err, sizeof err);
    return NULL;
}

static void
test_thread (void)
{
    for (int i = 0; i < 3; i++) {
        pthread_t thread;
        int rc = -1;
        REQUIRE (pthread_create (&thread, NULL, s_decoder_thread, &rc) == 0);
        pthread_join (thread, NULL);
        CHECK (rc == 0);
    }
}


//  ---------------------------------------------------------------------
//  Real sockets

//  Send raw frames from a socket.
static void
s_send_raw (void *socket, const part_t *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        REQUIRE (zmq_send (socket, parts [i].data, parts [i].size,
                           i + 1 < n? ZMQ_SNDMORE: 0) >= 0);
}

//  DEALER sends a BATCH, ROUTER answers RESULTS to its routing id.
static void
s_socket_exchange (void *router, void *dealer)
{
    dp_batch_t batch;
    dp_batch_init (&batch);
    s_fill (&batch, 50, false);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_BATCH);
    msg.job = 5; msg.first = 100;
    REQUIRE (dp_batch_attach (&batch, &msg, false) == 0);
    CHECK (dp_msg_send (&msg, dealer, NULL) == 0);

    zmq_msg_t id;
    zmq_msg_init (&id);
    char err [256];
    dp_msg_t in;
    CHECK (dp_msg_recv (&in, router, &id, 0, err, sizeof err) == 0);
    CHECK (in.cmd == DP_CMD_BATCH && in.job == 5 && in.first == 100);
    s_check_items (&in, 50, false);
    CHECK (zmq_msg_size (&id) > 0);
    dp_msg_reset (&in);

    s_fill (&batch, 50, true);
    dp_msg_init (&msg, DP_CMD_RESULTS);
    msg.job = 5; msg.first = 100; msg.ns = 42;
    REQUIRE (dp_batch_attach (&batch, &msg, true) == 0);
    CHECK (dp_msg_send (&msg, router, &id) == 0);
    CHECK (zmq_msg_size (&id) > 0);             //  copied, not consumed
    CHECK (dp_msg_recv (&in, dealer, NULL, 0, err, sizeof err) == 0);
    CHECK (in.cmd == DP_CMD_RESULTS && in.ns == 42);
    s_check_items (&in, 50, true);
    dp_msg_reset (&in);
    zmq_msg_close (&id);
    dp_batch_clear (&batch);
}

//  DEALER sends garbage; ROUTER refuses each message and still reads the
//  good one after them.
static void
s_socket_garbage (void *router, void *dealer)
{
    uint8_t hb = DP_CMD_HEARTBEAT, batch_cmd = DP_CMD_BATCH, empty_map = 0x80;
    part_t junk [] = {{ "junk", 4 }};
    part_t many [10] = {{ s_sig, 4 }, { &hb, 1 }, { &empty_map, 1 }};
    for (int i = 3; i < 10; i++)
        many [i] = (part_t) { "z", 1 };
    part_t trunc [] = {{ s_sig, 4 }, { &batch_cmd, 1 }, { "\x83\xa3job\x01\xa5""first\x00\xa1n\x00", 16 }};
    part_t v2 [] = {{ "DPL\x02", 4 }, { &hb, 1 }, { &empty_map, 1 }};
    part_t deep [] = {{ s_sig, 4 }, { &hb, 1 }, { "\x81\xa1x\x91\x91\x91\x91\x91\x01", 9 }};
    s_send_raw (dealer, junk, 1);
    s_send_raw (dealer, many, 10);
    s_send_raw (dealer, trunc, 3);
    s_send_raw (dealer, v2, 3);
    s_send_raw (dealer, deep, 3);
    s_send_raw (dealer, many, 3);           //  a good HEARTBEAT

    int expect [] = { DP_PROTO_ESIG, DP_PROTO_EFRAMES, DP_PROTO_ETRUNC,
                      DP_PROTO_EVERSION, DP_PROTO_ELIMIT, 0 };
    zmq_msg_t id;
    zmq_msg_init (&id);
    char err [256];
    for (size_t i = 0; i < sizeof expect / sizeof expect [0]; i++) {
        dp_msg_t in;
        int rc = dp_msg_recv (&in, router, &id, 0, err, sizeof err);
        CHECK (rc == expect [i]);
        if (rc != expect [i])
            fprintf (stderr, "  message %zu: %d (%s)\n", i, rc, err);
        CHECK (zmq_msg_size (&id) > 0);
        if (rc == 0)
            CHECK (in.cmd == DP_CMD_HEARTBEAT);
        dp_msg_reset (&in);
    }
    zmq_msg_close (&id);
}

//  Non-blocking read of an empty socket; ROUTER_MANDATORY to a gone peer.
static void
s_socket_errors (void *router)
{
    char err [64] = "unchanged";
    zmq_msg_t id;
    zmq_msg_init (&id);
    dp_msg_t in;
    CHECK (dp_msg_recv (&in, router, &id, ZMQ_DONTWAIT, err, sizeof err) == DP_PROTO_ESOCKET);
    CHECK (errno == EAGAIN && err [0] == 0);
    zmq_msg_close (&id);

    int on = 1;
    REQUIRE (zmq_setsockopt (router, ZMQ_ROUTER_MANDATORY, &on, sizeof on) == 0);
    zmq_msg_init_size (&id, 5);
    memcpy (zmq_msg_data (&id), "ghost", 5);
    dp_batch_t batch;
    dp_batch_init (&batch);
    s_fill (&batch, 10, true);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_RESULT);
    msg.chunk = 1;
    REQUIRE (dp_batch_attach (&batch, &msg, true) == 0);
    CHECK (dp_msg_send (&msg, router, &id) == DP_PROTO_ESOCKET);
    CHECK (errno == EHOSTUNREACH);
    CHECK (msg.nframes == 0);               //  payload consumed even so
    zmq_msg_close (&id);
    dp_batch_clear (&batch);
}

static void
test_sockets (void)
{
    void *ctx = zmq_ctx_new ();
    void *router = zmq_socket (ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket (ctx, ZMQ_DEALER);
    REQUIRE (ctx && router && dealer);
    REQUIRE (zmq_bind (router, "inproc://test_proto") == 0);
    REQUIRE (zmq_connect (dealer, "inproc://test_proto") == 0);
    s_socket_exchange (router, dealer);
    s_socket_garbage (router, dealer);
    s_socket_errors (router);
    int linger = 0;
    zmq_setsockopt (router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (dealer);
    zmq_close (router);
    zmq_ctx_term (ctx);
}


//  ---------------------------------------------------------------------
//  Fuzz: random mutations of valid messages, decoded without crash

typedef struct {
    uint8_t *data [3 + DP_MAX_PAYLOAD + 2];
    size_t size [3 + DP_MAX_PAYLOAD + 2];
    size_t n;
} corpus_t;

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint32_t
s_rand (void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t) (s_rng >> 16);
}

//  Encode msg and keep its frames' bytes as a fuzz seed.
static void
s_seed (corpus_t *seed, dp_msg_t *msg)
{
    zmq_msg_t frames [3 + DP_MAX_PAYLOAD];
    REQUIRE (dp_msg_encode (msg, frames, &seed->n) == 0);
    for (size_t i = 0; i < seed->n; i++) {
        seed->size [i] = zmq_msg_size (&frames [i]);
        seed->data [i] = (uint8_t *) malloc (seed->size [i] + 1);
        memcpy (seed->data [i], zmq_msg_data (&frames [i]), seed->size [i]);
        zmq_msg_close (&frames [i]);
    }
    msg->tasks = NULL;                  //  not owned: never freed here
    msg->ntasks = 0;
}

//  Apply one random mutation to a copy of seed's frames.
static size_t
s_mutate (const corpus_t *seed, zmq_msg_t *frames)
{
    size_t n = seed->n, target = s_rand () % n;
    uint32_t kind = s_rand () % 6;
    if (kind == 4 && n > 1) n--;                    //  drop the last frame
    if (kind == 5) n++;                             //  add a frame
    for (size_t i = 0; i < n; i++) {
        size_t size = i < seed->n? seed->size [i]: s_rand () % 8;
        if (i == target && kind == 2 && size) size = s_rand () % size;   //  truncate
        if (i == target && kind == 3) size += s_rand () % 8;              //  extend
        zmq_msg_init_size (&frames [i], size);
        uint8_t *p = (uint8_t *) zmq_msg_data (&frames [i]);
        for (size_t b = 0; b < size; b++)
            p [b] = i < seed->n && b < seed->size [i]? seed->data [i][b]: (uint8_t) s_rand ();
        if (i == target && size && kind <= 1) {     //  flip bytes
            int flips = 1 + (int) (s_rand () % 4);
            for (int f = 0; f < flips; f++) {
                size_t at = s_rand () % size;
                if (kind == 0)
                    p [at] ^= (uint8_t) (1u << (s_rand () % 8));
                else
                    p [at] = (uint8_t) s_rand ();
            }
        }
    }
    return n;
}

//  Build one seed per command.
static size_t
s_seeds (corpus_t *seeds)
{
    uint8_t cmds [] = { DP_CMD_HELLO, DP_CMD_WELCOME, DP_CMD_JOB, DP_CMD_BATCH, DP_CMD_END,
                        DP_CMD_CANCEL, DP_CMD_RESULTS, DP_CMD_DONE, DP_CMD_ERROR,
                        DP_CMD_HEARTBEAT, DP_CMD_BYE, DP_CMD_READY, DP_CMD_CHUNK, DP_CMD_RESULT };
    char *names [] = { "alpha", "beta" };
    size_t count = sizeof cmds / sizeof cmds [0];
    for (size_t c = 0; c < count; c++) {
        dp_msg_t msg;
        dp_msg_init (&msg, cmds [c]);
        msg.job = 3; msg.hb = 1000; msg.n = 0; msg.has_job = true; msg.code = -5;
        strcpy (msg.task, "sq"); strcpy (msg.host, "h"); strcpy (msg.text, "oops");
        msg.tasks = names; msg.ntasks = 2;
        uint8_t cmd = cmds [c];
        if (cmd == DP_CMD_BATCH || cmd == DP_CMD_CHUNK || cmd == DP_CMD_RESULTS || cmd == DP_CMD_RESULT) {
            dp_batch_t batch;
            dp_batch_init (&batch);
            s_fill (&batch, 5, true);
            dp_batch_attach (&batch, &msg, cmd == DP_CMD_RESULTS || cmd == DP_CMD_RESULT);
            dp_batch_clear (&batch);
        }
        msg.tasks = cmd == DP_CMD_READY? names: NULL;
        s_seed (&seeds [c], &msg);
    }
    return count;
}

static void
test_fuzz (void)
{
    corpus_t seeds [16];
    size_t nseeds = s_seeds (seeds);
    int decoded = 0, refused = 0;
    for (int round = 0; round < 20000; round++) {
        const corpus_t *seed = &seeds [s_rand () % nseeds];
        zmq_msg_t frames [3 + DP_MAX_PAYLOAD + 2];
        size_t n = s_mutate (seed, frames);
        dp_msg_t msg;
        char err [256];
        int rc = dp_msg_decode (&msg, frames, n, err, sizeof err);
        CHECK (rc <= 0 && rc >= DP_PROTO_EFRAMES);
        if (rc == 0 && msg.nframes >= 2) {
            //  A decoded batch is internally consistent.
            uint64_t sum = 0;
            for (uint32_t i = 0; i < msg.n; i++)
                sum += dp_msg_len (&msg, i);
            CHECK (sum == zmq_msg_size (&msg.frame [1]));
        }
        if (rc == 0) decoded++; else refused++;
        dp_msg_reset (&msg);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close (&frames [i]);
    }
    printf ("fuzz: 20000 mutations, %d decoded, %d refused\n", decoded, refused);
    CHECK (decoded > 0 && refused > 0);
    for (size_t s = 0; s < nseeds; s++)
        for (size_t i = 0; i < seeds [s].n; i++)
            free (seeds [s].data [i]);
}

//  ---------------------------------------------------------------------
//  STATUS and REPORT (the report body: dp_report.c)

//  A REPORT message whose body frame is the given bytes; returns the codes
//  of dp_msg_decode and (when that passes) dp_report_decode.
static int
s_report_body (const void *body, size_t size, int *decode_rc)
{
    uint8_t cmd = DP_CMD_REPORT;
    static const uint8_t empty [] = { 0x80 };
    part_t parts [4] = {{ s_sig, 4 }, { &cmd, 1 }, { empty, 1 }, { body, size }};
    dp_msg_t msg;
    char err [256];
    int rc = s_decode_parts (&msg, parts, 4, err, sizeof err);
    *decode_rc = rc;
    if (rc)
        return rc;
    dp_report_t report;
    rc = dp_report_decode (&report, &msg, err, sizeof err);
    CHECK (rc != 0 || report.nnodes <= DP_REPORT_MAX_ROWS);
    dp_report_clear (&report);
    dp_msg_reset (&msg);
    return rc;
}

static void
test_report_roundtrip (void)
{
    //  STATUS: no keys, no payload
    dp_msg_t msg, out;
    dp_msg_init (&msg, DP_CMD_STATUS);
    CHECK (s_round_trip (&msg, &out) == 0 && out.cmd == DP_CMD_STATUS && out.nframes == 0);
    dp_msg_reset (&out);
    CHECK (strcmp (dp_cmd_name (DP_CMD_STATUS), "STATUS") == 0);
    CHECK (strcmp (dp_cmd_name (DP_CMD_REPORT), "REPORT") == 0);

    dp_report_t report;
    dp_report_init (&report);
    strcpy (report.broker.host, "head \"1\"");
    report.broker.pid = 4242;
    report.broker.msgs_in = 1ull << 40;
    report.broker.bad_messages = 7;
    report.broker.metrics_port = 9100;
    dp_report_node_t *node = dp_report_add_node (&report);
    REQUIRE (node);
    strcpy (node->host, "head");
    node->local = true;
    node->slots = 4;
    node->restarts = 2;
    node = dp_report_add_node (&report);
    REQUIRE (node);
    strcpy (node->host, "n2");
    node->done = 99;
    for (int i = 0; i < 3; i++) {
        dp_report_worker_t *w = dp_report_add_worker (&report);
        REQUIRE (w);
        snprintf (w->host, sizeof w->host, "w%d", i);
        w->pid = (uint32_t) (100 + i);
        w->node = i - 1;
        w->inflight = (uint32_t) i;
        w->done = 1000u * (uint32_t) i;
    }
    dp_report_job_t *job = dp_report_add_job (&report);
    REQUIRE (job);
    strcpy (job->client, "cli");
    strcpy (job->task, "square");
    job->job = 3;
    job->total = job->sent = 10000;
    job->ended = true;
    job->done = 2500;
    job->age_ms = 1234;

    dp_msg_init (&msg, DP_CMD_REPORT);
    REQUIRE (dp_report_encode (&report, &msg) == 0);
    CHECK (s_round_trip (&msg, &out) == 0 && out.cmd == DP_CMD_REPORT && out.nframes == 1);
    dp_report_t back;
    char err [256];
    CHECK (dp_report_decode (&back, &out, err, sizeof err) == 0);
    dp_msg_reset (&out);
    CHECK (strcmp (back.broker.host, "head \"1\"") == 0 && back.broker.pid == 4242);
    CHECK (back.broker.msgs_in == 1ull << 40 && back.broker.bad_messages == 7);
    CHECK (back.broker.metrics_port == 9100);
    CHECK (back.nnodes == 2 && back.nodes [0].local && back.nodes [0].slots == 4);
    CHECK (back.nodes [0].restarts == 2 && !back.nodes [1].local && back.nodes [1].done == 99);
    CHECK (back.nworkers == 3 && back.workers [0].node == -1 && back.workers [2].node == 1);
    CHECK (back.workers [2].inflight == 2 && back.workers [2].done == 2000);
    CHECK (strcmp (back.workers [1].host, "w1") == 0 && back.workers [1].pid == 101);
    CHECK (back.njobs == 1 && back.jobs [0].job == 3 && back.jobs [0].ended);
    CHECK (strcmp (back.jobs [0].task, "square") == 0 && back.jobs [0].done == 2500);
    CHECK (back.jobs [0].total == 10000 && back.jobs [0].age_ms == 1234 && !back.truncated);
    dp_report_clear (&back);

    //  rows are bounded: the 4097th is refused and the report says so
    dp_report_clear (&report);
    for (int i = 0; i < DP_REPORT_MAX_ROWS; i++)
        REQUIRE (dp_report_add_job (&report));
    CHECK (dp_report_add_job (&report) == NULL && report.truncated);
    dp_msg_init (&msg, DP_CMD_REPORT);
    REQUIRE (dp_report_encode (&report, &msg) == 0);
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (dp_report_decode (&back, &out, err, sizeof err) == 0);
    CHECK (back.njobs == DP_REPORT_MAX_ROWS && back.truncated);
    dp_report_clear (&back);
    dp_msg_reset (&out);
    dp_report_clear (&report);

    //  full rows with the longest names are over DP_MAX_REPORT (found by
    //  reading fuzz_report's round trip): the body is cut to fit, all
    //  nodes kept, and says it is truncated, instead of no report at all
    for (int i = 0; i < DP_REPORT_MAX_ROWS; i++) {
        dp_report_node_t *n = dp_report_add_node (&report);
        dp_report_worker_t *w = dp_report_add_worker (&report);
        dp_report_job_t *j = dp_report_add_job (&report);
        REQUIRE (n && w && j);
        memset (n->host, 'n', DP_MAX_NAME);
        memset (w->host, 'w', DP_MAX_NAME);
        memset (j->client, 'c', DP_MAX_NAME);
        memset (j->task, 't', DP_MAX_NAME);
        n->done = w->done = j->done = j->sent = j->total = j->age_ms = UINT64_MAX;
        w->node = i;
    }
    dp_msg_init (&msg, DP_CMD_REPORT);
    REQUIRE (dp_report_encode (&report, &msg) == 0);
    CHECK (zmq_msg_size (&msg.frame [0]) <= DP_MAX_REPORT);
    CHECK (s_round_trip (&msg, &out) == 0);
    CHECK (dp_report_decode (&back, &out, err, sizeof err) == 0);
    CHECK (back.truncated && back.nnodes == DP_REPORT_MAX_ROWS);
    CHECK (back.nworkers > 0 && back.nworkers < DP_REPORT_MAX_ROWS);
    CHECK (back.njobs > 0 && back.njobs < DP_REPORT_MAX_ROWS);
    CHECK (back.nworkers == 0 || strlen (back.workers [0].host) == DP_MAX_NAME);
    dp_report_clear (&back);
    dp_msg_reset (&out);
    dp_report_clear (&report);
}

static void
test_report_reject (void)
{
    char err [256];
    int drc;
    //  frames: STATUS carries nothing, REPORT exactly one body
    static const uint8_t empty [] = { 0x80 };
    part_t body = { empty, 1 };
    CHECK (s_decode_cmd (DP_CMD_STATUS, empty, 1, &body, 1, err, sizeof err) == DP_PROTO_EFRAMES);
    CHECK (s_decode_cmd (DP_CMD_REPORT, empty, 1, NULL, 0, err, sizeof err) == DP_PROTO_ETRUNC);
    CHECK (s_decode_cmd (DP_CMD_REPORT, empty, 1, &body, 1, err, sizeof err) == 0);

    //  raw validation of the body, before anything is unpacked
    static const uint8_t not_map [] = { 0x91, 0x01 };
    CHECK (s_report_body (not_map, sizeof not_map, &drc) == DP_PROTO_EPAYLOAD);
    static const uint8_t huge [] = { 0x81, 0xa5, 'n', 'o', 'd', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff };
    CHECK (s_report_body (huge, sizeof huge, &drc) == DP_PROTO_EPAYLOAD && drc == DP_PROTO_EPAYLOAD);
    static const uint8_t deep [] = { 0x81, 0xa1, 'a', 0x91, 0x91, 0x91, 0x90 };
    CHECK (s_report_body (deep, sizeof deep, &drc) == DP_PROTO_ELIMIT);
    static const uint8_t trailing [] = { 0x80, 0x00 };
    CHECK (s_report_body (trailing, sizeof trailing, &drc) == DP_PROTO_EPAYLOAD);
    CHECK (s_report_body ("", 0, &drc) == DP_PROTO_EPAYLOAD);
    size_t big = DP_MAX_REPORT + 1;
    uint8_t *large = (uint8_t *) calloc (1, big);
    REQUIRE (large);
    large [0] = 0x80;
    CHECK (s_report_body (large, big, &drc) == DP_PROTO_ELIMIT);
    free (large);

    //  values: checked by dp_report_decode after a clean walk
    h_map (1); h_key ("broker"); msgpack_pack_map (&s_pk, 1); h_s ("pid", "12");
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_EPAYLOAD && drc == 0);
    h_map (1); h_key ("broker"); msgpack_pack_map (&s_pk, 1); h_key ("pid"); msgpack_pack_int64 (&s_pk, -1);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_EPAYLOAD);
    h_map (1); h_key ("broker"); msgpack_pack_map (&s_pk, 2); h_u ("pid", 1); h_u ("pid", 2);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_EPAYLOAD);
    h_map (2); h_key ("jobs"); msgpack_pack_array (&s_pk, 0); h_key ("jobs"); msgpack_pack_array (&s_pk, 0);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_EPAYLOAD);
    char name [DP_MAX_NAME + 2];
    memset (name, 'x', sizeof name - 1);
    name [sizeof name - 1] = 0;
    h_map (1); h_key ("broker"); msgpack_pack_map (&s_pk, 1); h_s ("host", name);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_EPAYLOAD);
    h_map (1); h_key ("broker"); msgpack_pack_map (&s_pk, 1); h_key ("host");
    msgpack_pack_str_with_body (&s_pk, "a\0b", 3);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_EPAYLOAD);
    //  a worker that names a node the report does not have
    h_map (2); h_key ("nodes"); msgpack_pack_array (&s_pk, 1); msgpack_pack_map (&s_pk, 0);
    h_key ("workers"); msgpack_pack_array (&s_pk, 1); msgpack_pack_map (&s_pk, 1);
    h_u ("node", 1);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_EPAYLOAD);
    h_map (1); h_key ("workers"); msgpack_pack_array (&s_pk, 1); msgpack_pack_map (&s_pk, 1);
    h_key ("node"); msgpack_pack_int32 (&s_pk, -2);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_EPAYLOAD);
    //  rows: not maps, too many
    h_map (1); h_key ("jobs"); msgpack_pack_array (&s_pk, 1); msgpack_pack_uint32 (&s_pk, 1);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_EPAYLOAD);
    h_map (1); h_key ("jobs"); msgpack_pack_array (&s_pk, DP_REPORT_MAX_ROWS + 1);
    for (int i = 0; i <= DP_REPORT_MAX_ROWS; i++)
        msgpack_pack_map (&s_pk, 0);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_ELIMIT && drc == 0);
    //  keys it does not know are ignored, whatever their type
    h_map (3); h_key ("future"); msgpack_pack_nil (&s_pk);
    h_key ("broker"); msgpack_pack_map (&s_pk, 2); h_u ("pid", 5); h_key ("x"); msgpack_pack_double (&s_pk, 1.5);
    h_key ("truncated"); msgpack_pack_true (&s_pk);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == 0);
    h_map (1); h_key ("truncated"); msgpack_pack_uint32 (&s_pk, 1);
    CHECK (s_report_body (s_sb.data, s_sb.size, &drc) == DP_PROTO_EPAYLOAD);
    //  a message that is not a REPORT
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_STATUS);
    dp_report_t report;
    CHECK (dp_report_decode (&report, &msg, err, sizeof err) == DP_PROTO_EPAYLOAD);
    //  a fuzz of the body: random bytes after a map byte never crash
    uint32_t seed = 12345;
    uint8_t junk [64];
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + (size_t) (round % 63);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            junk [i] = (uint8_t) (seed >> 16);
        }
        junk [0] = (uint8_t) (0x80 | (junk [0] & 0x0f));
        s_report_body (junk, n, &drc);
    }
}


int
main (void)
{
    msgpack_sbuffer_init (&s_sb);
    msgpack_packer_init (&s_pk, &s_sb, msgpack_sbuffer_write);

    test_roundtrip_session ();
    test_roundtrip_error ();
    test_roundtrip_ready ();
    test_roundtrip_batches ();
    test_batch_basics ();
    test_reject_envelope ();
    test_reject_frames ();
    test_reject_msgpack ();
    test_reject_keys ();
    test_reject_ready ();
    test_reject_payload ();
    test_reject_payload_long ();
    test_reject_encode ();
    test_thread ();
    test_sockets ();
    test_fuzz ();
    test_report_roundtrip ();
    test_report_reject ();

    msgpack_sbuffer_destroy (&s_sb);
    return tu_done ("test_proto");
}
