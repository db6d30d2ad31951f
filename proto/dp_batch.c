/*  =========================================================================
    dp_batch - building the lens / data (/ status) payload frames of item
    batches (BATCH, CHUNK, RESULT, RESULTS); see dp_proto.h

    A batch grows its three buffers geometrically and hands them to zmq
    frames without copying when it is sent (dp_batch_attach); frames of
    S_COPY_MAX bytes or less are copied instead, and the buffers kept for
    the next batch, since a small zmq message costs no allocation at all.
    =========================================================================
*/
#include "dp_proto.h"

#include <stdlib.h>
#include <string.h>

#define S_COPY_MAX    2048      //  batch frames up to this size are copied, not moved

static inline void
s_put_le32 (uint8_t *p, uint32_t v)
{
    p [0] = (uint8_t) v;
    p [1] = (uint8_t) (v >> 8);
    p [2] = (uint8_t) (v >> 16);
    p [3] = (uint8_t) (v >> 24);
}

void
dp_batch_init (dp_batch_t *self)
{
    memset (self, 0, sizeof *self);
}

void
dp_batch_clear (dp_batch_t *self)
{
    free (self->lens);
    free (self->data);
    free (self->status);
    memset (self, 0, sizeof *self);
}

//  Grow buf (cap elements of `size` bytes) geometrically to hold `need`.
//  Returns the new buffer (cap updated), or NULL with buf untouched.
static void *
s_grow (void *buf, size_t *cap, size_t need, size_t size)
{
    size_t new_cap = *cap? *cap: 64;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 2 / size)
            return NULL;
        new_cap *= 2;
    }
    void *grown = realloc (buf, new_cap * size);
    if (grown)
        *cap = new_cap;
    return grown;
}

//  Make room for `items` more items and `bytes` more data bytes.
static int
s_batch_room (dp_batch_t *self, size_t items, size_t bytes)
{
    if (bytes > SIZE_MAX - self->size)
        return -1;
    size_t n = self->n + items, size = self->size + bytes;
    if (n > self->lens_cap || !self->lens) {
        uint32_t *lens = (uint32_t *) s_grow (self->lens, &self->lens_cap, n, 4);
        if (!lens) return -1;
        self->lens = lens;
    }
    if (n > self->status_cap || !self->status) {
        uint8_t *status = (uint8_t *) s_grow (self->status, &self->status_cap, n, 1);
        if (!status) return -1;
        self->status = status;
    }
    if (size > self->data_cap || !self->data) {
        uint8_t *data = (uint8_t *) s_grow (self->data, &self->data_cap, size, 1);
        if (!data) return -1;
        self->data = data;
    }
    return 0;
}

//  Record one item of `len` bytes ending at self->size.
static void
s_batch_push (dp_batch_t *self, uint32_t len, uint8_t status)
{
    s_put_le32 ((uint8_t *) self->lens + 4 * self->n, len);
    self->status [self->n] = status;
    self->n++;
}

int
dp_batch_add (dp_batch_t *self, const void *data, size_t len)
{
    if (len > UINT32_MAX || s_batch_room (self, 1, len))
        return -1;
    if (len)
        memcpy (self->data + self->size, data, len);
    self->size += len;
    s_batch_push (self, (uint32_t) len, DP_ST_OK);
    return 0;
}

//  Reserve len bytes after the data and count them in self->size; the
//  caller writes its item there, shrinks with dp_batch_set_size, then
//  calls dp_batch_commit.
void *
dp_batch_reserve (dp_batch_t *self, size_t len)
{
    if (s_batch_room (self, 0, len))
        return NULL;
    void *p = self->data + self->size;
    self->size += len;
    return p;
}

//  Cut the data back to `size` bytes (<= the current size; a larger value
//  is a programmer error and is ignored).
void
dp_batch_set_size (dp_batch_t *self, size_t size)
{
    if (size <= self->size)
        self->size = size;
}

int
dp_batch_commit (dp_batch_t *self, size_t start, uint8_t status)
{
    if (start > self->size || self->size - start > UINT32_MAX
    ||  status > DP_ST_MAX || s_batch_room (self, 1, 0))
        return -1;
    s_batch_push (self, (uint32_t) (self->size - start), status);
    return 0;
}

static void
s_free (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  Make frame own buf (size bytes); an empty frame leaves buf with the
//  caller. Returns 1 if buf changed hands, 0 if it did not (size 0), or
//  -1 on failure (buf still the caller's).
static int
s_frame_take (zmq_msg_t *frame, void *buf, size_t size)
{
    if (size == 0)
        return zmq_msg_init (frame) == 0? 0: -1;
    if (size <= S_COPY_MAX) {
        //  small: a copy is cheaper than handing the buffer over (which
        //  costs the batch a new buffer, and ZeroMQ a content block); up to
        //  33 bytes ZeroMQ keeps it inside the message, with no allocation
        if (zmq_msg_init_size (frame, size) != 0)
            return -1;
        memcpy (zmq_msg_data (frame), buf, size);
        return 0;
    }
    return zmq_msg_init_data (frame, buf, size, s_free, NULL) == 0? 1: -1;
}

//  Move the batch's buffers into msg's payload frames (see dp_proto.h).
//  msg must carry no payload yet. On failure (out of memory) the batch is
//  cleared and msg keeps no frames.
int
dp_batch_attach (dp_batch_t *self, dp_msg_t *msg, bool with_status)
{
    if (msg->nframes != 0 || self->n > UINT32_MAX)
        return -1;
    int rc = s_frame_take (&msg->frame [0], self->lens, 4 * self->n);
    if (rc == 1) { self->lens = NULL; self->lens_cap = 0; }
    if (rc >= 0) {
        msg->nframes = 1;
        rc = s_frame_take (&msg->frame [1], self->data, self->size);
        if (rc == 1) { self->data = NULL; self->data_cap = 0; }
    }
    if (rc >= 0 && with_status) {
        msg->nframes = 2;
        rc = s_frame_take (&msg->frame [2], self->status, self->n);
        if (rc == 1) { self->status = NULL; self->status_cap = 0; }
    }
    if (rc < 0) {
        for (int i = 0; i < msg->nframes; i++)
            zmq_msg_close (&msg->frame [i]);
        msg->nframes = 0;
        dp_batch_clear (self);
        return -1;
    }
    msg->nframes = with_status? 3: 2;
    msg->n = (uint32_t) self->n;
    self->n = self->size = 0;
    return 0;
}
