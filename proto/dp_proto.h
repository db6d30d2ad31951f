/*  =========================================================================
    dp_proto - the dpool wire codec

    The only code in dpool that knows frame layout or msgpack. Every message
    on either conversation (client <-> broker, worker <-> broker) is:

        [routing id]            (ROUTER side only; not part of the message)
        frame 0  signature      4 bytes: 'D' 'P' 'L' version
        frame 1  command        1 byte (dp_cmd_t)
        frame 2  header         msgpack map, string keys, <= DP_MAX_HEADER bytes
        frame 3+ payload        0..3 frames, per command (see PROTOCOL.md)

    Item batches (BATCH, CHUNK, RESULT, RESULTS) carry their items in two
    payload frames: `lens` (n little-endian uint32 lengths) and `data` (the
    items concatenated). Result batches add a third frame `status` (n bytes,
    dp_status values). Payload frames are moved between sockets as zmq_msg_t,
    never re-encoded, so a broker forwards batches without decoding items
    (it copies only small ones, to pack several chunks in one message).

    The decoder validates everything and never asserts on peer input: it
    returns a negative DP_PROTO_E* code and a message describing the fault.
    See proto/PROTOCOL.md for the normative specification.
    =========================================================================
*/
#ifndef DP_PROTO_H_INCLUDED
#define DP_PROTO_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DP_PROTO_SIGNATURE  "DPL"       //  3 bytes, then the version byte
#define DP_PROTO_VERSION    1

//  Limits (PROTOCOL.md "Limits"); peers that exceed them are refused.
#define DP_MAX_FRAME        (256u << 20)  //  bytes in any one frame
#define DP_MAX_HEADER       4096        //  bytes in the msgpack header frame
#define DP_MAX_DEPTH        4           //  msgpack nesting in a header
#define DP_MAX_BATCH        65536       //  items in one batch
#define DP_MAX_NAME         128         //  task / host name length
#define DP_MAX_TEXT         1024        //  error message length
#define DP_MAX_TASKS        256         //  task names in one READY
#define DP_MAX_PAYLOAD      3           //  payload frames in one message
#define DP_MAX_REPORT       (2u << 20)  //  bytes in a REPORT body (dp_report.h)
#define DP_MAX_AVOID        8           //  node tags in one BATCH.avoid
#define DP_MAX_PART         (4u << 20)  //  bytes in one PART / WPART (output stream)
#define DP_PART_WINDOW      4           //  PARTs of one stream sent, not yet acknowledged

typedef enum {
    //  client <-> broker
    DP_CMD_HELLO     = 0x01,    //  C->B  {hb, host (client name)}
    DP_CMD_WELCOME   = 0x02,    //  B->C  {hb, window, wbytes, batch}
    DP_CMD_JOB       = 0x03,    //  C->B  {job, task, ordered, attempts, chunksize,
                                //         timeout, tpct, weight, spec}
    DP_CMD_BATCH     = 0x04,    //  C->B  {job, first, n, csize, last, big, avoid}  lens data
    DP_CMD_END       = 0x05,    //  C->B  {job, total}
    DP_CMD_CANCEL    = 0x06,    //  C->B  {job}
    DP_CMD_RESULTS   = 0x07,    //  B->C  {job, first, n, ns, done, ok, failed, backups}  lens data status
    DP_CMD_DONE      = 0x08,    //  B->C  {job, ok, failed, backups}
    DP_CMD_STATUS    = 0x0C,    //  C->B  {}  (no session needed)
    DP_CMD_REPORT    = 0x0D,    //  B->C  {}  body (msgpack map, dp_report.h)
    DP_CMD_PART      = 0x0E,    //  B->C  {job, first, chunk, seq, fd}  data (an item's output)
    DP_CMD_ACK       = 0x0F,    //  C->B  {job, first, chunk, seq}  (PARTs taken: seq)
    //  both conversations
    DP_CMD_ERROR     = 0x09,    //  any   {code, text, job?}
    DP_CMD_HEARTBEAT = 0x0A,    //  any   {}
    DP_CMD_BYE       = 0x0B,    //  any   {}
    //  worker <-> broker
    DP_CMD_READY     = 0x10,    //  W->B  {tasks, credit, pid, host, slots, hb, node}
    DP_CMD_CHUNK     = 0x11,    //  B->W  {chunk, task, n, timeout, k}  lens data
    DP_CMD_RESULT    = 0x12,    //  W->B  {chunk, n, ns, k}  lens data status
    DP_CMD_NODE      = 0x13,    //  N->B  {node, host, pid, slots, hb}
    DP_CMD_DEATH     = 0x14,    //  N->B  {pid, chunk, item, code, text}
    DP_CMD_ABORT     = 0x15,    //  B->W  {chunk, k}
    DP_CMD_WPART     = 0x16,    //  W->B  {chunk, item, seq, fd}  data (an item's output)
    DP_CMD_WACK      = 0x17,    //  B->W  {chunk, item, seq}  (PARTs taken: seq)
} dp_cmd_t;

//  JOB.spec: may the broker run backup copies of the job's straggling
//  chunks (speculation)?
enum {
    DP_SPEC_DEFAULT = 0,        //  the broker's setting (on unless --no-speculation)
    DP_SPEC_ON      = 1,        //  yes, unless the broker never speculates
    DP_SPEC_OFF     = 2         //  never: no item of the job runs twice
};

//  Per-item status, one byte each in a `status` frame. Also the public
//  dp_status_t values (include/dpool.h repeats them).
enum {
    DP_ST_OK        = 0,        //  data is the task's result
    DP_ST_TASK      = 1,        //  task returned a failure; data is its message
    DP_ST_DIED      = 2,        //  worker died running it max_attempts times
    DP_ST_TIMEOUT   = 3,        //  task outlived its timeout
    DP_ST_CANCELLED = 4,        //  job cancelled before it ran
    DP_ST_NOWORKER  = 5,        //  no worker has the task
    DP_ST_MAX       = 5
};

//  Decoder error codes (negative returns).
enum {
    DP_PROTO_ETRUNC    = -1,    //  fewer frames than the command needs
    DP_PROTO_ESIG      = -2,    //  bad signature frame
    DP_PROTO_EVERSION  = -3,    //  signature ok, unsupported version
    DP_PROTO_ECMD      = -4,    //  unknown command
    DP_PROTO_EHEADER   = -5,    //  header not valid msgpack / wrong types / missing key
    DP_PROTO_ELIMIT    = -6,    //  a limit exceeded (size, depth, count, length)
    DP_PROTO_EPAYLOAD  = -7,    //  payload frames inconsistent with header
    DP_PROTO_EFRAMES   = -8,    //  too many frames
    DP_PROTO_ESOCKET   = -9,    //  zmq error (errno set); EAGAIN = nothing to read
    DP_PROTO_ENOTREADY = -10,   //  ERROR code: peer unknown, send HELLO/READY again
    DP_PROTO_EWINDOW   = -11,   //  ERROR code: client exceeded its window
    DP_PROTO_EJOB      = -12,   //  ERROR code: bad job (unknown id, bad range, ...)
};

//  One message. Header fields are plain members; which ones a command
//  uses is listed in dp_cmd_t above. Payload frames are owned by the
//  message until sent or reset.
typedef struct {
    uint8_t cmd;
    uint8_t version;            //  of a received message
    //  header fields
    uint32_t job;
    uint64_t first;             //  index of the first item in a batch
    uint32_t n;                 //  items in a batch
    uint64_t chunk;             //  broker's chunk id
    uint64_t total;             //  END: items in the job
    uint64_t ok, failed;        //  DONE
    uint64_t ns;                //  RESULT(S): task time spent, nanoseconds
    uint64_t wbytes;            //  WELCOME: window in bytes
    uint32_t hb;                //  heartbeat interval, ms
    uint32_t window;            //  WELCOME: window in items
    uint32_t batch;             //  WELCOME: max items per batch
    uint32_t credit;            //  READY: chunks the worker accepts in flight
    uint32_t pid, slots;        //  READY
    uint32_t attempts;          //  JOB: max attempts per item (0 = default)
    uint32_t chunksize;         //  JOB: items per chunk (0 = automatic)
    int32_t  code;              //  ERROR: a DP_PROTO_E* or DP_ST_* code
    uint32_t timeout;           //  JOB, CHUNK: task timeout in ms (0: none)
    uint32_t tpct;              //  JOB: timeout as % of the median task time
    uint32_t weight;            //  JOB: fair-share weight (0: 1)
    uint32_t spec;              //  JOB: backup copies of stragglers: DP_SPEC_*
    uint64_t backups;           //  RESULTS, DONE: backup copies run for the job so far
    uint64_t big;               //  BATCH: its one item is over the size limit (its
                                //  length; the data is not sent): the broker fails it
    uint32_t item;              //  DEATH: item running in the chunk (UINT32_MAX: none)
    uint64_t node;              //  NODE, READY: node token (0: not on a node)
    uint32_t csize;             //  BATCH: items per chunk (0: the whole batch)
    uint64_t avoid [DP_MAX_AVOID];  //  BATCH: node tags its items should not run on
    uint32_t navoid;            //  (dp_node_tag; encoded only when navoid > 0)
    uint32_t k;                 //  CHUNK, RESULT, ABORT: chunks carried, ids
                                //  chunk .. chunk + k - 1 (>= 1); n / k items each
    uint64_t seq;               //  PART, WPART: the part's number in its stream (from 0);
                                //  ACK, WACK: parts taken (seq of the last + 1)
    uint32_t fd;                //  PART, WPART: 1 stdout, 2 stderr
    uint64_t bytes;             //  wire size, all frames but the routing id: set
                                //  by dp_msg_decode (even on failure) and encode
    bool     ordered;           //  JOB
    bool     last;              //  BATCH: the job's last (no END follows)
    bool     done;              //  RESULTS: the job's last (ok, failed; no DONE follows)
    bool     has_job;           //  ERROR: job field present
    bool     parts;             //  JOB: the client takes PARTs; CHUNK: the worker may send WPARTs
    char task [DP_MAX_NAME + 1];
    char host [DP_MAX_NAME + 1];    //  READY: host; HELLO: client name
    char text [DP_MAX_TEXT + 1];    //  ERROR
    char **tasks;               //  READY: task names (owned: the array and
                                //  each name malloc'd; dp_msg_reset frees)
    uint32_t ntasks;
    //  payload
    zmq_msg_t frame [DP_MAX_PAYLOAD];
    int nframes;
} dp_msg_t;

//  Initialise an empty message with a command. Never fails.
void dp_msg_init (dp_msg_t *self, uint8_t cmd);

//  Release payload frames and task names; the message may be re-used
//  after dp_msg_init.
void dp_msg_reset (dp_msg_t *self);

//  Receive one message. On a ROUTER socket pass `routing_id` (an initialised
//  zmq_msg_t that receives the sender's id); on a DEALER pass NULL. Always
//  drains every frame of the ZeroMQ message, even a malformed one. Returns 0,
//  or a DP_PROTO_E* code with a human-readable reason in err (may be NULL).
//  `flags` is passed to zmq (ZMQ_DONTWAIT for a non-blocking read).
int dp_msg_recv (dp_msg_t *self, void *socket, zmq_msg_t *routing_id,
                 int flags, char *err, size_t errlen);

//  Send a message; on a ROUTER socket pass the destination routing id (it is
//  copied, not consumed). Payload frames are consumed (moved) on success and
//  on failure. Returns 0 or DP_PROTO_ESOCKET (errno set, e.g. EHOSTUNREACH
//  with ROUTER_MANDATORY), or dp_msg_encode's code (errno EINVAL).
int dp_msg_send (dp_msg_t *self, void *socket, const zmq_msg_t *routing_id);

//  Decode a message from raw frames (signature first). Frames stay owned by
//  the caller except payload frames, which are moved into the message.
//  Used by dp_msg_recv and by tests. Returns 0 or a DP_PROTO_E* code.
//  self is initialised here (it must hold nothing); on failure it holds
//  nothing but keeps cmd and version when they could be read.
int dp_msg_decode (dp_msg_t *self, zmq_msg_t *frames, size_t nframes,
                   char *err, size_t errlen);

//  Check that `data` holds exactly one msgpack map, well formed (no length
//  beyond the bytes, nesting at most DP_MAX_DEPTH), nothing after it, so
//  that msgpack_unpack may then decode it without allocating beyond its
//  size. Returns 0 or DP_PROTO_EHEADER / DP_PROTO_ELIMIT with a reason
//  starting with `what` in err. For bodies other codecs decode (dp_exec_msg).
int dp_proto_check_map (const void *data, size_t size, const char *what,
                        char *err, size_t errlen);

//  Encode a message into raw frames (signature, command, header, payload
//  moved). `frames` must hold 3 + DP_MAX_PAYLOAD entries; *nframes is set.
//  Returns 0, or DP_PROTO_ELIMIT when a field is over a limit (other codes:
//  ECMD unknown command, EHEADER empty task name, EPAYLOAD payload frames
//  that do not fit the command or n, ESOCKET out of memory). On failure
//  nothing is moved.
int dp_msg_encode (dp_msg_t *self, zmq_msg_t *frames, size_t *nframes);

//  Name of a command for logs ("BATCH"), or "?" if unknown.
const char *dp_cmd_name (int cmd);

//  The public tag of a node token (READY.node, $DPOOL_NODE): the first 8
//  bytes of a SHA-1 of it, never 0 (0: no node). A tag names a node to
//  clients (the exec reply's "node", BATCH.avoid) without giving its token
//  away; the broker computes the tag of each worker's token to compare.
uint64_t dp_node_tag (uint64_t token);

//  Text for a DP_PROTO_E* code.
const char *dp_proto_strerror (int code);


//  ----------------------------------------------------------------------
//  Item batches: building and reading lens/data(/status) payload frames

typedef struct {
    uint32_t *lens;     size_t n, lens_cap;     //  entries little-endian
    uint8_t  *data;     size_t size, data_cap;
    uint8_t  *status;   size_t status_cap;
} dp_batch_t;

//  Empty batch; dp_batch_clear frees buffers.
void dp_batch_init (dp_batch_t *self);
void dp_batch_clear (dp_batch_t *self);

//  Append one item (copied). Returns 0, or -1 if out of memory.
int dp_batch_add (dp_batch_t *self, const void *data, size_t len);

//  Reserve `len` writable bytes at the end of data for the item being
//  built; returns a pointer valid until the next call, or NULL. The bytes
//  count in self->size at once; cut back unused ones with dp_batch_set_size.
//      size_t start = b->size;
//      char *p = dp_batch_reserve (b, 100);    //  write k <= 100 bytes
//      dp_batch_set_size (b, start + k);
//      dp_batch_commit (b, start, DP_ST_OK);
void *dp_batch_reserve (dp_batch_t *self, size_t len);

//  Shrink data to `size` bytes (<= self->size; a larger value is ignored).
void dp_batch_set_size (dp_batch_t *self, size_t size);

//  Close the item being built with its final length and status (results).
//  Its bytes start at data + start, where start is the size before the
//  item began; its length is self->size - start. Returns 0 or -1 (out of
//  memory, start > size, status > DP_ST_MAX). dp_batch_add gives DP_ST_OK.
int dp_batch_commit (dp_batch_t *self, size_t start, uint8_t status);

//  Move the batch's buffers into the message's payload frames (lens, data,
//  and status if `with_status`), without copying (buffers of 2 KiB or less
//  are copied instead and kept for re-use), and set msg->n. The batch
//  is left empty and re-usable. Returns 0, or -1 if msg already has payload
//  frames, or if out of memory (the batch is then cleared).
int dp_batch_attach (dp_batch_t *self, dp_msg_t *msg, bool with_status);

//  Reading a received batch: the decoder has already checked that lens
//  has n entries, that they sum to the data frame's size, and that status
//  values are in range.
static inline const uint8_t *
dp_msg_data (dp_msg_t *self)
{
    return (const uint8_t *) zmq_msg_data (&self->frame [1]);
}

static inline uint32_t
dp_msg_len (dp_msg_t *self, uint32_t i)
{
    const uint8_t *p = (const uint8_t *) zmq_msg_data (&self->frame [0]) + 4 * (size_t) i;
    return (uint32_t) p [0] | (uint32_t) p [1] << 8 | (uint32_t) p [2] << 16 | (uint32_t) p [3] << 24;
}

static inline uint8_t
dp_msg_status (dp_msg_t *self, uint32_t i)
{
    return ((const uint8_t *) zmq_msg_data (&self->frame [2])) [i];
}

#ifdef __cplusplus
}
#endif

#endif
