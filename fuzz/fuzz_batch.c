/*  fuzz_batch - libFuzzer target: building item batches (proto/dp_batch.c)
    and reading them back through the codec

    The input is a program: each op byte adds an item (dp_batch_add), or
    builds one in place (dp_batch_reserve, dp_batch_set_size,
    dp_batch_commit with a status, sometimes a wrong start or status that
    must be refused), or sends the batch: dp_batch_attach to a BATCH,
    CHUNK, RESULT or RESULTS, encode, decode, and every item, length and
    status must be what was added. The batch is re-used after each send,
    as the client and the worker do.  */
#include "fuzz_common.h"

#define MAX_ITEMS 512

typedef struct {
    const uint8_t *p, *end;
} s_input_t;

static uint8_t
s_byte (s_input_t *in)
{
    return in->p < in->end ? *in->p++ : 0;
}

//  What the batch should hold: items' offsets, lengths and statuses.
typedef struct {
    uint8_t *data;
    size_t size;
    uint32_t len [MAX_ITEMS];
    uint8_t status [MAX_ITEMS];
    size_t n;
} s_shadow_t;

static void
s_shadow_add (s_shadow_t *s, const void *data, size_t len, uint8_t status)
{
    s->data = (uint8_t *) realloc (s->data, s->size + len + 1);
    FUZZ_ASSERT (s->data);
    if (len)
        memcpy (s->data + s->size, data, len);
    s->size += len;
    s->len [s->n] = (uint32_t) len;
    s->status [s->n++] = status;
}

//  Send the batch in a message of `cmd` and check what the receiver reads.
static void
s_send (dp_batch_t *batch, s_shadow_t *s, uint8_t cmd)
{
    bool with_status = cmd == DP_CMD_RESULT || cmd == DP_CMD_RESULTS;
    dp_msg_t msg;
    dp_msg_init (&msg, cmd);
    msg.job = 7;
    msg.chunk = 9;
    strcpy (msg.task, "t");
    FUZZ_ASSERT (dp_batch_attach (batch, &msg, with_status) == 0);
    FUZZ_ASSERT (msg.n == s->n && batch->n == 0 && batch->size == 0);
    //  a second attach to a message that has frames is refused
    FUZZ_ASSERT (dp_batch_attach (batch, &msg, with_status) == -1);
    zmq_msg_t frames [3 + DP_MAX_PAYLOAD];
    size_t nframes;
    FUZZ_ASSERT (dp_msg_encode (&msg, frames, &nframes) == 0);
    dp_msg_t in;
    char err [256];
    int rc = dp_msg_decode (&in, frames, nframes, err, sizeof err);
    if (rc)
        fprintf (stderr, "decode: %s\n", err);
    FUZZ_ASSERT (rc == 0);
    fuzz_close (frames, nframes);
    fuzz_check_invariants (&in);
    FUZZ_ASSERT (in.n == s->n);
    size_t at = 0;
    for (uint32_t i = 0; i < in.n; i++) {
        FUZZ_ASSERT (dp_msg_len (&in, i) == s->len [i]);
        FUZZ_ASSERT (memcmp (dp_msg_data (&in) + at, s->data + at, s->len [i]) == 0);
        if (with_status)
            FUZZ_ASSERT (dp_msg_status (&in, i) == s->status [i]);
        at += s->len [i];
    }
    FUZZ_ASSERT (at == s->size);
    dp_msg_reset (&in);
    dp_msg_reset (&msg);
    s->n = s->size = 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static const uint8_t cmds [] = { DP_CMD_BATCH, DP_CMD_CHUNK, DP_CMD_RESULT, DP_CMD_RESULTS };
    s_input_t in = { data, data + size };
    dp_batch_t batch;
    dp_batch_init (&batch);
    s_shadow_t shadow = { 0 };
    uint8_t item [256 * 16];
    while (in.p < in.end) {
        uint8_t op = s_byte (&in);
        if (shadow.n == MAX_ITEMS)
            op = 4;                     //  full: send
        switch (op % 5) {
            case 0: case 1: {           //  add a copy of the next bytes
                size_t len = s_byte (&in) * (op % 5 == 1 ? 16u : 1u);
                for (size_t i = 0; i < len; i++)
                    item [i] = (uint8_t) (i * 31 + op);
                FUZZ_ASSERT (dp_batch_add (&batch, item, len) == 0);
                s_shadow_add (&shadow, item, len, DP_ST_OK);
                break;
            }
            case 2: {                   //  build in place
                size_t want = s_byte (&in) * 8u;
                size_t keep = want ? s_byte (&in) % (want + 1) : 0;
                uint8_t status = s_byte (&in) % (DP_ST_MAX + 3);
                size_t start = batch.size;
                uint8_t *p = (uint8_t *) dp_batch_reserve (&batch, want);
                FUZZ_ASSERT (p);
                FUZZ_ASSERT (batch.size == start + want);
                for (size_t i = 0; i < keep; i++)
                    p [i] = (uint8_t) (i ^ status);
                dp_batch_set_size (&batch, start + keep);
                dp_batch_set_size (&batch, start + keep + 1000);   //  larger: ignored
                FUZZ_ASSERT (batch.size == start + keep);
                if (status > DP_ST_MAX) {
                    FUZZ_ASSERT (dp_batch_commit (&batch, start, status) == -1);
                    dp_batch_set_size (&batch, start);      //  drop the item
                    break;
                }
                //  a start past the end is refused
                FUZZ_ASSERT (dp_batch_commit (&batch, batch.size + 1, status) == -1);
                FUZZ_ASSERT (dp_batch_commit (&batch, start, status) == 0);
                s_shadow_add (&shadow, batch.data + start, keep, status);
                break;
            }
            default:
                s_send (&batch, &shadow, cmds [s_byte (&in) % 4]);
                break;
        }
    }
    s_send (&batch, &shadow, cmds [size % 4]);
    dp_batch_clear (&batch);
    free (shadow.data);
    return 0;
}
