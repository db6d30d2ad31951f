/*  =========================================================================
    dp_span - payload blocks shared by chunks, and spans of them

    A block is the payload of one received message: a BATCH's items (lens,
    data) or a RESULT's answers (lens, data, status), kept as the zmq
    frames they arrived in. Chunks do not own frames; each holds a span,
    a run of items of one block (first item, count, byte offset, bytes),
    and a reference on the block, which is freed with its last span.

    So a BATCH of many one-item chunks is received once and cut into
    chunks without copying, a chunk that must be split (a worker died on
    it) is re-cut the same way, and a speculative copy shares its
    original's items. Sending gathers spans into frames: a run of spans
    that is exactly one whole block goes out as the block's own frames
    (refcounted by libzmq, no copy: big chunks, big results); anything
    else is copied into new frames, which only happens for small pieces
    (several one-item chunks in one CHUNK or RESULTS) or on the rare
    paths (a split chunk's halves).
    =========================================================================
*/
#include "dp_broker_internal.h"

#include <string.h>

struct block {
    uint32_t refs;
    uint32_t n;                 //  items
    int nframes;                //  2 (items) or 3 (answers with status)
    zmq_msg_t frame [3];        //  lens, data, status
};

//  Take a decoded message's payload frames (moved) into a new block;
//  `whole` becomes a span of all of it. Returns 0 or -1 (out of memory;
//  the message keeps its frames).
int
span_take (span_t *whole, dp_msg_t *msg)
{
    block_t *block = (block_t *) malloc (sizeof (block_t));
    if (!block)
        return -1;
    block->refs = 1;
    block->n = msg->n;
    block->nframes = msg->nframes;
    for (int i = 0; i < msg->nframes; i++) {
        zmq_msg_init (&block->frame [i]);
        zmq_msg_move (&block->frame [i], &msg->frame [i]);
    }
    *whole = (span_t) { block, 0, msg->n, 0, zmq_msg_size (&block->frame [1]) };
    return 0;
}

//  Build a block from a batch (answers: with status). Returns 0 or -1.
int
span_from_batch (span_t *whole, dp_batch_t *batch, bool with_status)
{
    dp_msg_t msg;
    dp_msg_init (&msg, with_status ? DP_CMD_RESULT : DP_CMD_CHUNK);
    int rc = dp_batch_attach (batch, &msg, with_status) == 0 ? span_take (whole, &msg) : -1;
    dp_msg_reset (&msg);
    return rc;
}

//  Item i (counted from the span's first) length.
uint32_t
span_len (const span_t *self, uint32_t i)
{
    const uint8_t *p = (const uint8_t *) zmq_msg_data (&self->block->frame [0])
                     + 4 * ((size_t) self->item + i);
    return (uint32_t) p [0] | (uint32_t) p [1] << 8 | (uint32_t) p [2] << 16 | (uint32_t) p [3] << 24;
}

//  Status byte of item i; answers only.
uint8_t
span_status (const span_t *self, uint32_t i)
{
    return ((const uint8_t *) zmq_msg_data (&self->block->frame [2])) [self->item + i];
}

//  A new span of items [from, from + count) of `of`, sharing its block.
//  The caller keeps `of`. Walks the lengths of the items skipped and taken.
void
span_sub (span_t *self, const span_t *of, uint32_t from, uint32_t count)
{
    size_t offset = of->offset, size = 0;
    for (uint32_t i = 0; i < from; i++)
        offset += span_len (of, i);
    for (uint32_t i = 0; i < count; i++)
        size += span_len (of, from + i);
    *self = (span_t) { of->block, of->item + from, count, offset, size };
    of->block->refs++;
}

//  A new span of items [item, item + count) of `whole` (the block's items
//  counted from whole's first) whose data start at byte `offset` of the
//  block, known from the items before it: cutting a block into consecutive
//  spans walks each length once.
void
span_at (span_t *self, const span_t *whole, uint32_t item, size_t offset, uint32_t count)
{
    span_t part = { whole->block, whole->item + item, count, offset, 0 };
    for (uint32_t i = 0; i < count; i++)
        part.size += span_len (&part, i);
    *self = part;
    whole->block->refs++;
}

//  Another reference to the same items.
void
span_copy (span_t *self, const span_t *of)
{
    *self = *of;
    if (self->block)
        self->block->refs++;
}

void
span_release (span_t *self)
{
    block_t *block = self->block;
    if (block && --block->refs == 0) {
        for (int i = 0; i < block->nframes; i++)
            zmq_msg_close (&block->frame [i]);
        free (block);
    }
    self->block = NULL;
}

//  Are the spans, in order, exactly one whole block?
static bool
s_whole_block (span_t *const *spans, size_t count)
{
    block_t *block = spans [0]->block;
    uint32_t next = 0;
    for (size_t i = 0; i < count; i++) {
        if (spans [i]->block != block || spans [i]->item != next)
            return false;
        next += spans [i]->n;
    }
    return next == block->n;
}

//  Put the items of `count` spans, in order, into msg's payload frames
//  (lens, data, and status for answers) and set msg->n. Returns 0 or -1
//  (out of memory, or more than DP_MAX_BATCH items; msg unchanged).
int
span_gather (span_t *const *spans, size_t count, dp_msg_t *msg, bool with_status)
{
    int nframes = with_status ? 3 : 2;
    if (s_whole_block (spans, count)) {
        block_t *block = spans [0]->block;
        for (int i = 0; i < nframes; i++) {
            zmq_msg_init (&msg->frame [i]);
            zmq_msg_copy (&msg->frame [i], &block->frame [i]);
        }
        msg->nframes = nframes;
        msg->n = block->n;
        return 0;
    }
    size_t n = 0, size = 0;
    for (size_t i = 0; i < count; i++) {
        n += spans [i]->n;
        size += spans [i]->size;
    }
    if (n > DP_MAX_BATCH)
        return -1;
    size_t sizes [3] = { 4 * n, size, n };
    for (int i = 0; i < nframes; i++)
        if (zmq_msg_init_size (&msg->frame [i], sizes [i])) {
            while (i-- > 0)
                zmq_msg_close (&msg->frame [i]);
            return -1;
        }
    uint8_t *out [3];
    for (int i = 0; i < nframes; i++)
        out [i] = (uint8_t *) zmq_msg_data (&msg->frame [i]);
    for (size_t i = 0; i < count; i++) {
        const span_t *span = spans [i];
        block_t *block = span->block;
        memcpy (out [0], (uint8_t *) zmq_msg_data (&block->frame [0]) + 4 * (size_t) span->item,
                4 * (size_t) span->n);
        memcpy (out [1], (uint8_t *) zmq_msg_data (&block->frame [1]) + span->offset, span->size);
        out [0] += 4 * (size_t) span->n;
        out [1] += span->size;
        if (with_status) {
            memcpy (out [2], (uint8_t *) zmq_msg_data (&block->frame [2]) + span->item, span->n);
            out [2] += span->n;
        }
    }
    msg->nframes = nframes;
    msg->n = (uint32_t) n;
    return 0;
}
