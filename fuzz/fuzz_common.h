/*  =========================================================================
    fuzz_common.h - what the libFuzzer targets share

    A fuzz input for a message target is the message's frames, separated by
    FUZZ_SEP (4 bytes no encoder writes in our seeds): signature, command,
    header, payload... (tools/fuzz_gen_corpus writes seeds in this form).
    Targets that fuzz one conversation replace the command byte with one of
    that conversation's commands, so no input is wasted on the others.

    After a successful decode, fuzz_check_msg holds the decoder to its
    promises (dp_proto.h): strings terminated within their buffers, payload
    frames consistent with n, statuses in range, k dividing n; it reads every
    item as a receiver would, then encodes the message again, decodes that,
    and requires the same message back.

    FUZZ_ASSERT aborts (a crash for libFuzzer) with the condition's text.
    =========================================================================
*/
#ifndef FUZZ_COMMON_H_INCLUDED
#define FUZZ_COMMON_H_INCLUDED

#include "dp_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_SEP        "\xfe\xff" "FR"
#define FUZZ_SEP_LEN    4
#define FUZZ_MSG_SEP    "\xfe\xff" "MS"  //  between messages (fuzz_broker)
#define FUZZ_MAX_FRAMES 8           //  more than DP_MAX_FRAMES: EFRAMES is reached

//  The commands of each conversation, for the targets that fuzz one: the
//  command byte of an input is an index into its list (mod its length).
//  Client -> broker:
#define FUZZ_CMDS_CLIENT { DP_CMD_HELLO, DP_CMD_JOB, DP_CMD_BATCH, DP_CMD_END, DP_CMD_CANCEL, \
    DP_CMD_STATUS, DP_CMD_ERROR, DP_CMD_HEARTBEAT, DP_CMD_BYE, DP_CMD_ACK }
//  Worker -> broker:
#define FUZZ_CMDS_WORKER { DP_CMD_READY, DP_CMD_RESULT, DP_CMD_ERROR, DP_CMD_HEARTBEAT, DP_CMD_BYE, \
    DP_CMD_WPART }
//  Worker node (supervisor) -> broker:
#define FUZZ_CMDS_NODE { DP_CMD_NODE, DP_CMD_DEATH, DP_CMD_HEARTBEAT, DP_CMD_BYE, DP_CMD_ERROR }
//  Broker -> client and broker -> worker:
#define FUZZ_CMDS_BROKER { DP_CMD_WELCOME, DP_CMD_RESULTS, DP_CMD_DONE, DP_CMD_REPORT, DP_CMD_ERROR, \
    DP_CMD_HEARTBEAT, DP_CMD_BYE, DP_CMD_CHUNK, DP_CMD_ABORT, DP_CMD_PART, DP_CMD_WACK }

#define FUZZ_ASSERT(cond) do { if (!(cond)) { \
    fprintf (stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
    abort (); } } while (0)

//  Split data at each FUZZ_SEP into at most `max` frames (the last takes
//  the rest, separators included). Returns the frame count (>= 1).
static inline size_t
fuzz_split (const uint8_t *data, size_t size, zmq_msg_t *frames, size_t max)
{
    size_t count = 0, start = 0;
    for (size_t i = 0; count + 1 < max && i + FUZZ_SEP_LEN <= size; i++) {
        if (memcmp (data + i, FUZZ_SEP, FUZZ_SEP_LEN) == 0) {
            zmq_msg_init_size (&frames [count], i - start);
            memcpy (zmq_msg_data (&frames [count]), data + start, i - start);
            count++;
            start = i + FUZZ_SEP_LEN;
            i = start - 1;
        }
    }
    zmq_msg_init_size (&frames [count], size - start);
    memcpy (zmq_msg_data (&frames [count]), data + start, size - start);
    return count + 1;
}

static inline void
fuzz_close (zmq_msg_t *frames, size_t count)
{
    for (size_t i = 0; i < count; i++)
        zmq_msg_close (&frames [i]);
}

//  Make frame 1 (if it is one byte) one of `cmds`, chosen by its value.
static inline void
fuzz_pick_command (zmq_msg_t *frames, size_t count, const uint8_t *cmds, size_t ncmds)
{
    if (count >= 2 && zmq_msg_size (&frames [1]) == 1) {
        uint8_t *cmd = (uint8_t *) zmq_msg_data (&frames [1]);
        *cmd = cmds [*cmd % ncmds];
    }
}

//  Touch every byte of [data, data + size) so that ASan checks it.
static volatile uint8_t fuzz_sink;
static inline void
fuzz_touch (const void *data, size_t size)
{
    uint8_t x = 0;
    for (size_t i = 0; i < size; i++)
        x ^= ((const uint8_t *) data) [i];
    fuzz_sink = x;
}

static inline bool
fuzz_terminated (const char *text, size_t size)
{
    return strnlen (text, size) < size;
}

static inline int
fuzz_payload_frames (uint8_t cmd)
{
    switch (cmd) {
        case DP_CMD_BATCH: case DP_CMD_CHUNK: return 2;
        case DP_CMD_RESULTS: case DP_CMD_RESULT: return 3;
        case DP_CMD_REPORT: case DP_CMD_PART: case DP_CMD_WPART: return 1;
        default: return 0;
    }
}

//  A decoded message keeps the promises of dp_proto.h.
static inline void
fuzz_check_invariants (dp_msg_t *msg)
{
    FUZZ_ASSERT (strcmp (dp_cmd_name (msg->cmd), "?") != 0);
    FUZZ_ASSERT (msg->version == DP_PROTO_VERSION);
    FUZZ_ASSERT (fuzz_terminated (msg->task, sizeof msg->task));
    FUZZ_ASSERT (fuzz_terminated (msg->host, sizeof msg->host));
    FUZZ_ASSERT (fuzz_terminated (msg->text, sizeof msg->text));
    FUZZ_ASSERT (msg->ntasks <= DP_MAX_TASKS);
    FUZZ_ASSERT ((msg->ntasks == 0) || msg->tasks);
    for (uint32_t i = 0; i < msg->ntasks; i++)
        FUZZ_ASSERT (msg->tasks [i] && msg->tasks [i][0]
                     && strlen (msg->tasks [i]) <= DP_MAX_NAME);
    if (msg->cmd == DP_CMD_JOB || msg->cmd == DP_CMD_CHUNK)
        FUZZ_ASSERT (msg->task [0]);
    FUZZ_ASSERT (msg->k >= 1);
    FUZZ_ASSERT (msg->nframes == fuzz_payload_frames (msg->cmd));
    if (msg->nframes >= 2) {
        FUZZ_ASSERT (msg->n <= DP_MAX_BATCH);
        FUZZ_ASSERT (zmq_msg_size (&msg->frame [0]) == 4 * (size_t) msg->n);
        if (msg->cmd == DP_CMD_CHUNK || msg->cmd == DP_CMD_RESULT)
            FUZZ_ASSERT (msg->n % msg->k == 0 || msg->k == 1);
        //  read the items as a receiver does: each length, then its bytes
        const uint8_t *data = dp_msg_data (msg);
        size_t at = 0, size = zmq_msg_size (&msg->frame [1]);
        for (uint32_t i = 0; i < msg->n; i++) {
            uint32_t len = dp_msg_len (msg, i);
            FUZZ_ASSERT (len <= size - at);
            fuzz_touch (data + at, len);
            at += len;
            if (msg->nframes == 3)
                FUZZ_ASSERT (dp_msg_status (msg, i) <= DP_ST_MAX);
        }
        FUZZ_ASSERT (at == size);
        if (msg->nframes == 3)
            FUZZ_ASSERT (zmq_msg_size (&msg->frame [2]) == msg->n);
    }
    if (msg->nframes == 1)
        FUZZ_ASSERT (zmq_msg_size (&msg->frame [0])
                     <= (msg->cmd == DP_CMD_REPORT ? DP_MAX_REPORT : DP_MAX_PART));
    if (msg->cmd == DP_CMD_PART || msg->cmd == DP_CMD_WPART)
        FUZZ_ASSERT (msg->fd == 1 || msg->fd == 2);
}

//  The header members of two messages are equal (all but bytes and frames).
static inline void
fuzz_check_same (const dp_msg_t *a, const dp_msg_t *b)
{
    FUZZ_ASSERT (a->cmd == b->cmd);
    FUZZ_ASSERT (a->job == b->job && a->first == b->first && a->n == b->n);
    FUZZ_ASSERT (a->chunk == b->chunk && a->total == b->total);
    FUZZ_ASSERT (a->ok == b->ok && a->failed == b->failed && a->ns == b->ns);
    FUZZ_ASSERT (a->wbytes == b->wbytes && a->hb == b->hb && a->window == b->window);
    FUZZ_ASSERT (a->batch == b->batch && a->credit == b->credit);
    FUZZ_ASSERT (a->pid == b->pid && a->slots == b->slots && a->attempts == b->attempts);
    FUZZ_ASSERT (a->chunksize == b->chunksize && a->code == b->code);
    FUZZ_ASSERT (a->timeout == b->timeout && a->tpct == b->tpct && a->weight == b->weight);
    FUZZ_ASSERT (a->spec == b->spec && a->backups == b->backups && a->item == b->item);
    FUZZ_ASSERT (a->node == b->node && a->csize == b->csize && a->k == b->k);
    FUZZ_ASSERT (a->ordered == b->ordered && a->last == b->last && a->done == b->done);
    FUZZ_ASSERT (a->has_job == b->has_job);
    FUZZ_ASSERT (a->seq == b->seq && a->fd == b->fd && a->parts == b->parts);
    FUZZ_ASSERT (strcmp (a->task, b->task) == 0);
    FUZZ_ASSERT (strcmp (a->host, b->host) == 0);
    FUZZ_ASSERT (strcmp (a->text, b->text) == 0);
    FUZZ_ASSERT (a->ntasks == b->ntasks);
    for (uint32_t i = 0; i < a->ntasks; i++)
        FUZZ_ASSERT (strcmp (a->tasks [i], b->tasks [i]) == 0);
}

//  Encode the decoded message again, decode the result: the same message,
//  the same payload bytes. `header_size` is the received header's size: a
//  header near DP_MAX_HEADER may grow past it when the encoder writes the
//  keys the sender left out, and is then refused (ELIMIT), as documented.
static inline void
fuzz_check_roundtrip (dp_msg_t *msg, size_t header_size)
{
    //  keep copies of the payload: encoding moves the frames out
    zmq_msg_t saved [DP_MAX_PAYLOAD];
    int nsaved = msg->nframes;
    for (int i = 0; i < nsaved; i++) {
        zmq_msg_init (&saved [i]);
        FUZZ_ASSERT (zmq_msg_copy (&saved [i], &msg->frame [i]) == 0);
    }
    zmq_msg_t frames [3 + DP_MAX_PAYLOAD];
    size_t nframes = 0;
    int rc = dp_msg_encode (msg, frames, &nframes);
    if (rc == DP_PROTO_ELIMIT && header_size > DP_MAX_HEADER - 512) {
        fuzz_close (saved, (size_t) nsaved);
        return;
    }
    if (rc != 0)
        fprintf (stderr, "re-encoding %s failed: %s\n", dp_cmd_name (msg->cmd),
                 dp_proto_strerror (rc));
    FUZZ_ASSERT (rc == 0);
    FUZZ_ASSERT (msg->nframes == 0);
    dp_msg_t again;
    char err [256];
    rc = dp_msg_decode (&again, frames, nframes, err, sizeof err);
    if (rc != 0)
        fprintf (stderr, "decoding re-encoded %s failed: %s\n", dp_cmd_name (msg->cmd), err);
    FUZZ_ASSERT (rc == 0);
    fuzz_check_same (msg, &again);
    FUZZ_ASSERT (again.nframes == nsaved);
    for (int i = 0; i < nsaved; i++) {
        FUZZ_ASSERT (zmq_msg_size (&again.frame [i]) == zmq_msg_size (&saved [i]));
        FUZZ_ASSERT (memcmp (zmq_msg_data (&again.frame [i]), zmq_msg_data (&saved [i]),
                             zmq_msg_size (&saved [i])) == 0);
    }
    dp_msg_reset (&again);
    fuzz_close (frames, nframes);
    fuzz_close (saved, (size_t) nsaved);
}

//  The whole check of a message target: split, optionally restrict the
//  command, decode; on success check the message and its round trip. The
//  decoder must leave nothing allocated on failure (LeakSanitizer checks).
static inline int
fuzz_message (const uint8_t *data, size_t size, const uint8_t *cmds, size_t ncmds)
{
    zmq_msg_t frames [FUZZ_MAX_FRAMES];
    size_t nframes = fuzz_split (data, size, frames, FUZZ_MAX_FRAMES);
    if (cmds)
        fuzz_pick_command (frames, nframes, cmds, ncmds);
    size_t header_size = nframes > 2 ? zmq_msg_size (&frames [2]) : 0;
    dp_msg_t msg;
    char err [256];
    int rc = dp_msg_decode (&msg, frames, nframes, err, sizeof err);
    if (rc == 0) {
        fuzz_check_invariants (&msg);
        fuzz_check_roundtrip (&msg, header_size);
        dp_msg_reset (&msg);
    }
    else {
        FUZZ_ASSERT (rc < 0 && rc >= DP_PROTO_EJOB);
        FUZZ_ASSERT (fuzz_terminated (err, sizeof err) && err [0]);
        FUZZ_ASSERT (msg.nframes == 0 && msg.tasks == NULL);
        FUZZ_ASSERT (dp_proto_strerror (rc) != NULL);
    }
    fuzz_close (frames, nframes);
    return 0;
}

#endif
