/*  =========================================================================
    dp_job - the client's job engine

    A job streams its items to the broker in BATCHes, reading its input (a
    callback, or an array) lazily, and takes the RESULTS as they come: to
    an output callback per item, or into a queue for an iterator.

    Window. The broker grants the client WELCOME.window items in flight
    over all its jobs. The client is stricter, so that memory stays bounded
    end to end: an item is "held" from the moment it is sent until its
    result has been taken by the caller (an iterator's queue counts), and
    the bytes held (input in flight, results queued) are bounded too. Jobs
    that still have input share three quarters of the window by weight;
    the last quarter is headroom, so a job that starts while a long one
    runs can send its first items at once instead of waiting for the long
    one to drain. A job that holds nothing may always send one batch
    within the broker's window: no job starves behind results another
    job's caller has not taken.

    Chunk size: a chunk is the unit a worker runs, so its size decides
    both overhead and load balance. Unless the job fixes it, a BATCH is
    one chunk: a job sends single items until the broker reports task
    times (RESULTS.ns), then sizes batches for about CHUNK_TARGET_NS of
    work each: tiny tasks go in big batches, long tasks one by one. A job
    with a fixed chunk size packs up to PACK_CHUNKS small chunks in one
    BATCH (BATCH.csize), which the broker cuts apart again.

    Open jobs. At most MAX_OPEN_JOBS jobs of a pool are open at the broker
    at once; more wait their turn in the pool (FIFO) and are started by
    the pump as others end. Thousands of submits then cost the broker a
    bounded job table, and the work in flight is still far more than the
    workers take at once.

    Endings. A job ends when the broker says DONE (every item answered) or
    fails: an ERROR for it, the pool lost or closed, an abort by a
    callback, or its owner letting go. The owner's on_end hook runs last,
    and may free the job.
    =========================================================================
*/
#include "dp_client.h"

#include <string.h>

#define MAX_CHUNKS_OUT      512     //  chunks of one job unanswered at once
#define PACK_CHUNKS         64      //  fixed-size chunks sent in one BATCH at most
#define PACK_BYTES          65536   //  ... while the BATCH is smaller than this
#define TAIL_SHARE          8       //  tail chunks: at most 1/8 of the items left
#define CHUNK_TARGET_NS     5000000     //  5 ms of work per chunk
#define BATCH_MAX_BYTES     (4u << 20)
#define PROBE_BATCHES       8           //  single-item batches before a measure
#define CLIENT_MAX_BYTES    (32ull << 20)   //  bytes a pool holds at most
#define SAMPLE_MS           250         //  progress samples, 8 kept
#define NSAMPLES            8
#define MAX_OPEN_JOBS       256         //  jobs of a pool open at the broker
#define FEED_MAX            256         //  batches sent per pump at most

//  --------------------------------------------------------------------------
//  Window accounting

//  Change what the job (and so its pool) holds.
void
cjob_hold (dp_job_t *self, int64_t items, int64_t bytes)
{
    self->held_items += (uint64_t) items;
    self->held_bytes += (uint64_t) bytes;
    if (self->pool) {
        self->pool->held_items += (uint64_t) items;
        self->pool->held_bytes += (uint64_t) bytes;
    }
}

static uint64_t
s_byte_budget (dp_pool_t *pool)
{
    return pool->wbytes < CLIENT_MAX_BYTES ? pool->wbytes : CLIENT_MAX_BYTES;
}

//  The job's share of `total` (items or bytes) among the jobs with input.
static uint64_t
s_share (dp_pool_t *pool, uint64_t total, dp_job_t *job)
{
    uint64_t weights = pool->feed_weight ? pool->feed_weight : 1;
    uint64_t share = (total - total / 4) / weights * job->weight;
    return share ? share : 1;
}

static void
s_feed_add (dp_job_t *self)
{
    link_append (&self->pool->feed, &self->feed);
    self->pool->nfeed++;
    self->pool->feed_weight += self->weight;
}

static void
s_feed_remove (dp_job_t *self)
{
    if (link_linked (&self->feed)) {
        link_remove (&self->feed);
        self->pool->nfeed--;
        self->pool->feed_weight -= self->weight;
    }
}

//  Input bytes in flight: a FIFO of batch sizes, popped as the job's
//  items are answered (in count, which is exact for ordered jobs and
//  close enough for unordered ones).
static void
s_fifo_push (dp_job_t *self, uint32_t n, uint64_t bytes)
{
    if (self->fifo_tail - self->fifo_head == self->fifo_cap) {
        size_t cap = self->fifo_cap ? self->fifo_cap * 2 : 64;
        uint64_t *b = (uint64_t *) zmalloc (cap * sizeof (uint64_t));
        uint32_t *c = (uint32_t *) zmalloc (cap * sizeof (uint32_t));
        for (size_t i = self->fifo_head; i < self->fifo_tail; i++) {
            b [i - self->fifo_head] = self->fifo_bytes [i % self->fifo_cap];
            c [i - self->fifo_head] = self->fifo_n [i % self->fifo_cap];
        }
        self->fifo_tail -= self->fifo_head;
        self->fifo_head = 0;
        free (self->fifo_bytes);
        free (self->fifo_n);
        self->fifo_bytes = b;
        self->fifo_n = c;
        self->fifo_cap = cap;
    }
    self->fifo_bytes [self->fifo_tail % self->fifo_cap] = bytes;
    self->fifo_n [self->fifo_tail % self->fifo_cap] = n;
    self->fifo_tail++;
    self->bytes_out += bytes;
    cjob_hold (self, 0, (int64_t) bytes);
}

static void
s_fifo_pop (dp_job_t *self)
{
    while (self->fifo_head < self->fifo_tail) {
        size_t at = self->fifo_head % self->fifo_cap;
        if (self->fifo_answered + self->fifo_n [at] > self->answered)
            break;
        self->fifo_answered += self->fifo_n [at];
        self->bytes_out -= self->fifo_bytes [at];
        cjob_hold (self, 0, -(int64_t) self->fifo_bytes [at]);
        self->fifo_head++;
    }
}

//  --------------------------------------------------------------------------
//  Ending a job

//  End a running job: DONE, or a failure with a status and a reason. With
//  `tell`, the broker may still have the job and gets a CANCEL. The job
//  leaves the pool's lists, its unanswered items are written off, and the
//  owner's hook runs last (it may free the job).
static void
s_job_end (dp_job_t *self, job_state_t state, dp_status_t status, const char *text, bool tell)
{
    dp_pool_t *pool = self->pool;
    if (self->state == JOB_WAITING) {
        //  never sent: nothing to tell or to write off
        link_remove (&self->open);
        pool->nwaiting--;
        tell = false;
    }
    else
    if (self->state != JOB_RUNNING)
        return;
    else
    if (pool) {
        s_feed_remove (self);
        link_remove (&self->open);
        pool->nopen--;
        pool->ncancel -= self->opts.cancel != NULL;
        cpool_table_remove (pool, self);
        uint64_t unanswered = self->sent - self->answered;
        pool->inflight -= unanswered;
        cjob_hold (self, -(int64_t) unanswered, -(int64_t) self->bytes_out);
    }
    if (tell && pool && !pool->broken [0] && !pool->closing && !self->cancel_sent)
        cpool_send_simple (pool, DP_CMD_CANCEL, self->id);
    self->state = state;
    self->ended_ms = zclock_mono ();
    if (state == JOB_FAILED) {
        self->error_status = status;
        snprintf (self->error, sizeof self->error, "%s", text);
    }
    self->bytes_out = 0;
    self->fifo_head = self->fifo_tail;
    if (self->on_end)
        self->on_end (self, self->owner);
}

void
cjob_fail (dp_job_t *self, dp_status_t status, const char *text)
{
    s_job_end (self, JOB_FAILED, status, text, true);
}

//  --------------------------------------------------------------------------
//  Sending input

static uint32_t
s_chunk_size (dp_job_t *self)
{
    dp_pool_t *pool = self->pool;
    uint32_t n = self->opts.chunksize;
    if (!n) {
        if (self->ns_per_item <= 0)
            n = 1;
        else {
            //  rounded to the nearest, so chunks are about CHUNK_TARGET_NS
            //  long (1.9 items of 1 ms must be 2, not 1); the broker shares
            //  its workers by measured work time (deficit round-robin,
            //  dp_dispatch.c), but until a job is measured each of its
            //  chunks pays a whole turn
            double want = CHUNK_TARGET_NS / self->ns_per_item + 0.5;
            n = want < 1 ? 1 : want > pool->batch_max ? pool->batch_max : (uint32_t) want;
        }
        //  near the end of an input of known length, smaller chunks (an
        //  eighth of what is left: guided self-scheduling), so no worker
        //  idles at the tail while another finishes a big chunk
        if (!self->input && self->nitems) {
            size_t left = self->nitems - self->next_item;
            size_t cap = left / TAIL_SHARE ? left / TAIL_SHARE : 1;
            n = n > cap ? (uint32_t) cap : n;
        }
    }
    return n > pool->batch_max ? pool->batch_max : n;
}

//  Chunks of the job sent and not answered: a batch is one chunk, or
//  several of the job's fixed chunk size (packed, see s_send_batch).
static uint64_t
s_chunks_out (dp_job_t *self)
{
    uint32_t size = self->opts.chunksize;
    return size ? (self->sent - self->answered + size - 1) / size
                : self->fifo_tail - self->fifo_head;
}

//  May the job send a batch now?
static bool
s_can_send (dp_job_t *self)
{
    dp_pool_t *pool = self->pool;
    if (self->input_done || self->input_later || self->cancel_sent)
        return false;
    if (!self->opts.chunksize && self->ns_per_item <= 0 && self->probes >= PROBE_BATCHES)
        return false;               //  wait for the first measure (or the probes' answers)
    if (pool->inflight >= pool->window)
        return false;
    //  tiny chunks: a few hundred in flight keep every worker fed; more
    //  would only queue up as chunks at the broker
    if (s_chunks_out (self) >= MAX_CHUNKS_OUT)
        return false;
    if (self->held_items == 0)
        return true;
    //  Wait for room for a whole chunk (or half the share): sending
    //  whatever room the last result freed would cut the stream into ever
    //  smaller batches (silly window syndrome), since results come back
    //  in the sizes the batches went out
    uint64_t share = s_share (pool, pool->window, self);
    uint64_t room = share > self->held_items ? share - self->held_items : 0;
    if (room > pool->window - pool->inflight)
        room = pool->window - pool->inflight;
    uint64_t least = s_chunk_size (self);
    if (least > share / 2)
        least = share / 2 ? share / 2 : 1;
    uint64_t budget = s_byte_budget (pool);
    return room >= least
        && self->held_bytes < s_share (pool, budget, self)
        && pool->held_items < pool->window && pool->held_bytes < budget;
}

//  Next item of the input: 1 with *data/*len set, 0 at the end, 2 not
//  ready yet, -1 abort.
static int
s_next_input (dp_job_t *self, const void **data, size_t *len)
{
    if (self->input)
        return self->input (self->input_arg, data, len);
    if (self->next_item == self->nitems)
        return 0;
    *data = self->items [self->next_item].data;
    *len = self->items [self->next_item].len;
    self->next_item++;
    return 1;
}

static int
s_send_end (dp_job_t *self)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_END);
    msg.job = self->id;
    msg.total = self->sent;
    self->end_sent = true;
    s_feed_remove (self);
    return cpool_send (self->pool, &msg);
}

//  One item alone in a BATCH: an item over the size limit (DP_MAX_FRAME /
//  2, `big` its length) is not sent: an empty item with `big` set stands
//  for it, and the broker answers it failed, so it fails alone and the job
//  goes on; an item that avoids some nodes (citer_avoid) names them.
//  Returns 0, or -1 if the job ended (out of memory).
static int
s_send_alone (dp_job_t *self, const void *data, size_t len, uint64_t big, bool avoiding)
{
    dp_pool_t *pool = self->pool;
    dp_batch_t batch;
    dp_batch_init (&batch);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_BATCH);
    msg.job = self->id;
    msg.first = self->sent;
    msg.big = big;
    if (avoiding) {
        memcpy (msg.avoid, self->avoid, sizeof msg.avoid);
        msg.navoid = self->navoid;
        self->navoid = 0;
    }
    if (dp_batch_add (&batch, data, len) != 0 || dp_batch_attach (&batch, &msg, false) != 0) {
        dp_batch_clear (&batch);
        dp_msg_reset (&msg);
        s_job_end (self, JOB_FAILED, DP_ERR_POOL, "out of memory", true);
        return -1;
    }
    dp_batch_clear (&batch);
    self->sent += 1;
    pool->inflight += 1;
    cjob_hold (self, 1, 0);
    s_fifo_push (self, 1, len);
    cpool_send (pool, &msg);
    return 0;
}

//  Read items into one batch within the job's share and send it; send
//  END once the input has ended. Returns 1 if a batch went out, 0 if not,
//  -1 if the job ended (an abort: the caller must not touch it again).
static int
s_send_batch (dp_job_t *self)
{
    dp_pool_t *pool = self->pool;
    uint64_t want = s_chunk_size (self);
    //  A fixed chunk size (chunksize 1: no batching) still sends several
    //  chunks in one BATCH when they are small (csize tells the broker
    //  where to cut): one message for many chunks, each of which the
    //  broker dispatches on its own
    uint32_t csize = self->opts.chunksize < pool->batch_max ? self->opts.chunksize : 0;
    if (csize) {
        uint64_t out = s_chunks_out (self);
        uint64_t chunks = out < MAX_CHUNKS_OUT ? MAX_CHUNKS_OUT - out : 1;
        want = (uint64_t) csize * (chunks < PACK_CHUNKS ? chunks : PACK_CHUNKS);
        if (want > pool->batch_max)
            want = pool->batch_max / csize * csize;
    }
    if (want > pool->window - pool->inflight)
        want = pool->window - pool->inflight;
    uint64_t share = s_share (pool, pool->window, self);
    uint64_t left = share > self->held_items ? share - self->held_items : 1;
    if (want > left)
        want = left;
    if (csize && want > csize)
        want -= want % csize;           //  whole chunks
    const char *abort = NULL;
    uint64_t big = 0;               //  length of an item over the size limit
    const void *alone = NULL;       //  an item that avoids some nodes
    size_t alone_len = 0;
    bool has_alone = false;
    while (self->batch.n < want && self->batch.size < BATCH_MAX_BYTES
       &&  !(csize && self->batch.n % csize == 0 && self->batch.size >= PACK_BYTES)) {
        const void *data = NULL;
        size_t len = 0;
        self->navoid = 0;
        int rc = s_next_input (self, &data, &len);
        if (rc == 1 && len > DP_MAX_FRAME / 2)
            big = len;              //  sent after the batch, failed alone
        else
        if (rc == 1 && self->navoid) {
            alone = data;           //  sent after the batch, in its own
            alone_len = len;
            has_alone = true;
        }
        else
        if (rc == 1 && dp_batch_add (&self->batch, data, len) != 0)
            abort = "out of memory";
        else
        if (rc == 1)
            continue;
        else
        if (rc == 0)
            self->input_done = true;
        else
        if (rc == 2)
            self->input_later = true;
        else
            abort = "job aborted by its input";
        break;
    }
    if (!self->input && self->next_item == self->nitems)
        self->input_done = true;
    if (abort) {
        dp_batch_clear (&self->batch);
        s_job_end (self, JOB_FAILED, DP_ERR_CANCELLED, abort, true);
        return -1;
    }
    int sent = 0;
    if (self->batch.n > 0) {
        dp_msg_t msg;
        dp_msg_init (&msg, DP_CMD_BATCH);
        msg.job = self->id;
        msg.first = self->sent;
        msg.csize = csize && self->batch.n > csize ? csize : 0;
        //  the input's end goes with its last batch: no END message
        msg.last = self->input_done && !self->end_sent && !self->cancel_sent;
        uint64_t bytes = self->batch.size;
        if (dp_batch_attach (&self->batch, &msg, false) != 0) {
            s_job_end (self, JOB_FAILED, DP_ERR_POOL, "out of memory", true);
            return -1;
        }
        self->sent += msg.n;
        pool->inflight += msg.n;
        cjob_hold (self, msg.n, 0);
        s_fifo_push (self, msg.n, bytes);
        if (msg.n == 1 && self->ns_per_item <= 0)
            self->probes++;
        if (msg.last) {
            self->end_sent = true;
            s_feed_remove (self);
        }
        cpool_send (pool, &msg);
        sent = 1;
    }
    if (big && s_send_alone (self, "", 0, big, false) != 0)
        return -1;
    sent |= big != 0;
    if (has_alone && s_send_alone (self, alone, alone_len, 0, true) != 0)
        return -1;
    sent |= has_alone;
    if (self->input_done && !self->end_sent && !self->cancel_sent)
        s_send_end (self);
    return sent;
}

//  Feed every job that has input, one batch per job in turn, until a
//  whole turn sends nothing or FEED_MAX batches went out (so that a pump
//  stays short when chunks are single items; the next pump goes on).
//  Input callbacks run here: a job is moved to the tail before it is fed
//  and the head read again, so callbacks may start or cancel other jobs.
void
cjob_feed_all (dp_pool_t *pool)
{
    for (link_t *l = pool->feed.next; l != &pool->feed; l = l->next)
        link_entry (l, dp_job_t, feed)->input_later = false;
    size_t idle = 0, sent = 0;
    while (!link_empty (&pool->feed) && idle < pool->nfeed && sent < FEED_MAX) {
        dp_job_t *job = link_entry (pool->feed.next, dp_job_t, feed);
        link_remove (&job->feed);
        link_append (&pool->feed, &job->feed);
        int rc = s_can_send (job) ? s_send_batch (job) : 0;
        idle = rc == 0 ? idle + 1 : 0;
        sent += rc != 0;
    }
}

//  Does a job wait for input that is not ready? Collects the fds to watch
//  (at most max); returns true if one has no fd (ask again soon).
bool
cjob_has_input_later (dp_pool_t *pool, int *fds, int *nfds, int max)
{
    bool no_fd = false;
    for (link_t *l = pool->feed.next; l != &pool->feed; l = l->next) {
        dp_job_t *job = link_entry (l, dp_job_t, feed);
        if (!job->input_later)
            continue;
        if (!job->opts.has_input_fd) {
            no_fd = true;
            continue;
        }
        int i = 0;
        while (i < *nfds && fds [i] != job->opts.input_fd)
            i++;
        if (i == *nfds && *nfds < max)
            fds [(*nfds)++] = job->opts.input_fd;
        else
        if (i == *nfds)
            no_fd = true;
    }
    return no_fd;
}

//  --------------------------------------------------------------------------
//  Messages from the broker

static void
s_sample (dp_job_t *self, int64_t now)
{
    unsigned last = (self->nsamples + NSAMPLES - 1) % NSAMPLES;
    if (self->nsamples && now - self->sample_ms [last] < SAMPLE_MS)
        return;
    self->sample_ms [self->nsamples % NSAMPLES] = now;
    self->sample_done [self->nsamples % NSAMPLES] = self->answered;
    self->nsamples++;
}

//  Hand a RESULTS message to the output callback, item by item. Returns 0,
//  or -1 if the callback aborted the job (which may be gone then).
static int
s_deliver (dp_job_t *self, dp_msg_t *msg)
{
    const uint8_t *data = dp_msg_data (msg);
    size_t offset = 0;
    for (uint32_t i = 0; i < msg->n; i++) {
        uint32_t len = dp_msg_len (msg, i);
        uint8_t status = dp_msg_status (msg, i);
        self->failed += status != DP_ST_OK;
        const void *item = data + offset;
        size_t item_len = len;
        if (self->terminated && status == DP_ST_CANCELLED) {
            item = DP_TERMINATED_TEXT;
            item_len = strlen (DP_TERMINATED_TEXT);
        }
        if (self->output (self->output_arg, msg->first + i, (dp_status_t) status,
                          item, item_len) != 0) {
            self->consumed += i + 1;
            cjob_hold (self, -(int64_t) (i + 1), 0);
            s_job_end (self, JOB_FAILED, DP_ERR_CANCELLED, "job aborted by its output", true);
            return -1;
        }
        offset += len;
    }
    self->consumed += msg->n;
    cjob_hold (self, -(int64_t) msg->n, 0);
    return 0;
}

//  Keep a RESULTS message for an iterator (its frames move, no copy).
static void
s_enqueue (dp_job_t *self, dp_msg_t *msg)
{
    rbatch_t *batch = (rbatch_t *) zmalloc (sizeof (rbatch_t));
    batch->first = msg->first;
    batch->n = msg->n;
    zmq_msg_init (&batch->lens);
    zmq_msg_init (&batch->data);
    zmq_msg_init (&batch->status);
    zmq_msg_move (&batch->lens, &msg->frame [0]);
    zmq_msg_move (&batch->data, &msg->frame [1]);
    zmq_msg_move (&batch->status, &msg->frame [2]);
    const uint8_t *status = (const uint8_t *) zmq_msg_data (&batch->status);
    for (uint32_t i = 0; i < batch->n; i++)
        self->failed += status [i] != DP_ST_OK;
    if (self->tail)
        self->tail->next = batch;
    else
        self->head = batch;
    self->tail = batch;
    cjob_hold (self, 0, (int64_t) zmq_msg_size (&batch->data));
}

static void s_on_done (dp_job_t *self);

//  RESULTS for a job: checked against what was sent (never trust a peer),
//  counted, then delivered or queued; the job's last ones say it is done.
static void
s_on_results (dp_job_t *self, dp_msg_t *msg)
{
    dp_pool_t *pool = self->pool;
    if (msg->first > self->sent || msg->n > self->sent - msg->first
    ||  msg->n > self->sent - self->answered
    ||  (!self->opts.unordered && msg->first != self->answered)) {
        s_job_end (self, JOB_FAILED, DP_ERR_POOL, "the broker sent results out of range", true);
        return;
    }
    self->answered += msg->n;
    pool->inflight -= msg->n;
    s_fifo_pop (self);
    if (msg->ns > 0 && msg->n > 0) {
        double per = (double) msg->ns / msg->n;
        self->ns_per_item = self->ns_per_item > 0 ? 0.7 * self->ns_per_item + 0.3 * per : per;
    }
    else
    if (self->ns_per_item <= 0)
        //  answered without a timing (failed, timed out, worker died):
        //  the probe is over all the same, so the next may go; else a job
        //  whose first PROBE_BATCHES items fail would wait for good
        self->probes = self->probes > msg->n ? self->probes - msg->n : 0;
    s_sample (self, zclock_mono ());
    if (self->output && s_deliver (self, msg) != 0)
        return;
    if (!self->output)
        s_enqueue (self, msg);
    if (msg->done)
        s_on_done (self);
}

static void
s_on_done (dp_job_t *self)
{
    if (self->answered != self->sent || (!self->end_sent && !self->cancel_sent))
        s_job_end (self, JOB_FAILED, DP_ERR_POOL, "the broker ended the job early", false);
    else
    if (self->cancel_flagged)       //  every sent item answered; the job says why it ended
        s_job_end (self, JOB_FAILED, DP_ERR_CANCELLED,
                   self->terminated ? "pool terminated" : "job cancelled", false);
    else
        s_job_end (self, JOB_DONE, DP_OK, "", false);
}

//  An ERROR: for one job, it ends that job (the broker has dropped it);
//  without a job, ENOTREADY or EVERSION means the session is gone, and
//  anything else fails the open jobs (we sent something it refused).
static void
s_on_error (dp_pool_t *pool, dp_msg_t *msg)
{
    const char *text = msg->text [0] ? msg->text : dp_proto_strerror (msg->code);
    if (msg->has_job) {
        dp_job_t *job = cpool_table_lookup (pool, msg->job);
        dp_status_t status = msg->code >= DP_ST_TASK && msg->code <= DP_ST_MAX
                           ? (dp_status_t) msg->code : DP_ERR_POOL;
        if (job)                    //  else about a job we no longer have
            s_job_end (job, JOB_FAILED, status, text, false);
        return;
    }
    if (msg->code == DP_PROTO_ENOTREADY || msg->code == DP_PROTO_EVERSION)
        snprintf (pool->broken, sizeof pool->broken, "broker at %.200s: %.800s", pool->endpoint, text);
    cpool_fail_all (pool, DP_ERR_POOL, pool->broken [0] ? pool->broken : text);
}

//  A PART of an item's output: to the job's callback if the item is one
//  sent and not yet answered, then acknowledged whatever it was (so the
//  worker never waits on a part nobody takes).
static void
s_on_part (dp_pool_t *pool, dp_msg_t *msg)
{
    dp_job_t *job = cpool_table_lookup (pool, msg->job);
    if (job && job->opts.on_part && msg->first < job->sent
    &&  (job->opts.unordered || msg->first >= job->answered))
        job->opts.on_part (job->opts.part_arg, msg->first, msg->chunk, msg->seq, (int) msg->fd,
                           zmq_msg_data (&msg->frame [0]), zmq_msg_size (&msg->frame [0]));
    dp_msg_t ack;
    dp_msg_init (&ack, DP_CMD_ACK);
    ack.job = msg->job;
    ack.first = msg->first;
    ack.chunk = msg->chunk;
    ack.seq = msg->seq + 1;
    cpool_send (pool, &ack);
}

void
cjob_on_message (dp_pool_t *pool, dp_msg_t *msg)
{
    dp_job_t *job;
    switch (msg->cmd) {
        case DP_CMD_PART:
            s_on_part (pool, msg);
            break;
        case DP_CMD_RESULTS:
            if ((job = cpool_table_lookup (pool, msg->job))) {
                if (msg->backups > job->backups)
                    job->backups = msg->backups;
                s_on_results (job, msg);
            }
            break;
        case DP_CMD_DONE:
            if ((job = cpool_table_lookup (pool, msg->job))) {
                if (msg->backups > job->backups)
                    job->backups = msg->backups;
                s_on_done (job);
            }
            break;
        case DP_CMD_ERROR:
            s_on_error (pool, msg);
            break;
        default:
            break;                  //  heartbeats; nothing else is for us
    }
}

//  --------------------------------------------------------------------------
//  Life cycle

//  A new job on the pool, not started: the owner sets its input and output
//  then calls cjob_start. Returns NULL with the error set.
dp_job_t *
cjob_new (dp_pool_t *pool, const char *task, const dp_job_opts_t *opts)
{
    if (!pool || !task || !*task || strlen (task) > DP_MAX_NAME) {
        client_set_error ("invalid arguments (task name must be 1..%d characters)", DP_MAX_NAME);
        return NULL;
    }
    if (pool->sealed) {
        client_set_error ("the pool takes no new jobs: %s was called",
                          pool->terminated ? "dp_pool_terminate" : "dp_pool_seal");
        return NULL;
    }
    if (cpool_ready_for_job (pool) != 0)
        return NULL;
    dp_job_t *self = (dp_job_t *) zmalloc (sizeof (dp_job_t));
    self->pool = pool;
    snprintf (self->task, sizeof self->task, "%s", task);
    if (opts)
        self->opts = *opts;
    self->weight = self->opts.weight ? self->opts.weight : 1;
    self->state = JOB_NEW;
    dp_batch_init (&self->batch);
    link_init (&self->open);
    link_init (&self->feed);
    link_append (&pool->all, &self->all);
    return self;
}

//  Send JOB and open the job; an array input is fed at once (so a submit
//  is JOB, BATCH, END in one go). Returns 0, or -1 with the error set
//  (the job may then have failed).
static int
s_job_open (dp_job_t *self)
{
    dp_pool_t *pool = self->pool;
    if (++pool->next_job == 0)
        pool->next_job = 1;
    self->id = pool->next_job;
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_JOB);
    msg.job = self->id;
    snprintf (msg.task, sizeof msg.task, "%s", self->task);
    msg.ordered = !self->opts.unordered;
    msg.attempts = self->opts.max_attempts;
    msg.chunksize = self->opts.chunksize;
    msg.timeout = self->opts.timeout_ms;
    msg.tpct = self->opts.timeout_pct;
    msg.weight = self->opts.weight;
    //  backup copies run an item twice: not for commands with side effects
    //  (the built-in exec) unless the caller asks
    uint32_t spec = self->opts.speculate;
    if (spec == DP_SPECULATE_AUTO)
        spec = strcmp (self->task, "exec") == 0 ? DP_SPECULATE_OFF : DP_SPECULATE_ON;
    msg.spec = spec == DP_SPECULATE_OFF ? DP_SPEC_OFF : DP_SPEC_ON;
    msg.parts = self->opts.on_part != NULL;
    if (cpool_send (pool, &msg) != 0) {
        client_set_error ("cannot send to the broker: %s", zmq_strerror (errno));
        return -1;
    }
    self->state = JOB_RUNNING;
    self->started_ms = zclock_mono ();
    s_sample (self, self->started_ms);
    cpool_table_insert (pool, self);
    link_append (&pool->open, &self->open);
    pool->nopen++;
    pool->ncancel += self->opts.cancel != NULL;
    s_feed_add (self);
    if (!self->input)
        while (self->state == JOB_RUNNING && s_can_send (self) && s_send_batch (self) > 0)
            ;
    if (self->state != JOB_RUNNING) {
        client_set_error ("%s", self->error);
        return -1;
    }
    return 0;
}

//  Start a new job: open it now, or queue it while MAX_OPEN_JOBS are open.
//  Returns 0, or -1 with the error set (the owner releases the job).
int
cjob_start (dp_job_t *self)
{
    dp_pool_t *pool = self->pool;
    if (pool->nopen < MAX_OPEN_JOBS && pool->nwaiting == 0)
        return s_job_open (self);
    self->state = JOB_WAITING;
    link_append (&pool->waiting, &self->open);
    pool->nwaiting++;
    return 0;
}

//  Open waiting jobs while there is room (from the pump). A job that fails
//  to open ends as failed, through its owner's hook.
void
cjob_start_waiting (dp_pool_t *pool)
{
    while (pool->nwaiting && pool->nopen < MAX_OPEN_JOBS && !pool->broken [0]) {
        dp_job_t *job = link_entry (pool->waiting.next, dp_job_t, open);
        link_remove (&job->open);
        pool->nwaiting--;
        job->state = JOB_NEW;
        if (s_job_open (job) != 0 && job->state == JOB_NEW) {
            job->state = JOB_RUNNING;       //  so that it can end
            link_append (&pool->open, &job->open);
            pool->nopen++;
            s_job_end (job, JOB_FAILED, DP_ERR_POOL, dp_strerror_last (), false);
        }
    }
}

//  Cancel: no more input; the broker answers what is left as cancelled,
//  then DONE. Returns 0, or -1 if the job is not running.
int
cjob_cancel (dp_job_t *self)
{
    if (self && self->state == JOB_WAITING) {
        s_job_end (self, JOB_DONE, DP_OK, "", false);   //  nothing was sent
        return 0;
    }
    if (!self || self->state != JOB_RUNNING || !self->pool)
        return -1;
    if (!self->cancel_sent) {
        cpool_send_simple (self->pool, DP_CMD_CANCEL, self->id);
        self->cancel_sent = true;
        s_feed_remove (self);
    }
    return 0;
}

//  Stop a job for dp_pool_terminate. A waiting one ends at once (nothing
//  was sent). A running one is cancelled as by opts.cancel: the broker
//  answers every item sent, aborting those that run (their workers stop
//  them, or are killed), the answers say "terminated", and the job ends
//  failed "pool terminated".
void
cjob_terminate (dp_job_t *self)
{
    if (self->state == JOB_WAITING)
        s_job_end (self, JOB_FAILED, DP_ERR_CANCELLED, "pool terminated", false);
    else
    if (self->state == JOB_RUNNING && self->pool) {
        self->terminated = true;
        self->cancel_flagged = true;
        cjob_cancel (self);
    }
}

//  Free a job and null the pointer; a running one is abandoned (CANCEL)
//  without calling its owner's hook.
void
cjob_release (dp_job_t **self_p)
{
    dp_job_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    self->on_end = NULL;
    if (self->state == JOB_RUNNING || self->state == JOB_WAITING)
        s_job_end (self, JOB_FAILED, DP_ERR_CANCELLED, "job destroyed", true);
    cjob_hold (self, -(int64_t) self->held_items, -(int64_t) self->held_bytes);
    if (self->pool)
        link_remove (&self->all);
    while (self->head) {
        rbatch_t *batch = self->head;
        self->head = batch->next;
        zmq_msg_close (&batch->lens);
        zmq_msg_close (&batch->data);
        zmq_msg_close (&batch->status);
        free (batch);
    }
    free (self->fifo_bytes);
    free (self->fifo_n);
    dp_batch_clear (&self->batch);
    free (self);
}

void
cjob_progress (const dp_job_t *self, dp_progress_t *progress)
{
    memset (progress, 0, sizeof *progress);
    progress->backups = self->backups;
    int64_t now = self->state == JOB_DONE || self->state == JOB_FAILED
                ? self->ended_ms : zclock_mono ();
    progress->sent = self->sent;
    progress->done = self->answered;
    progress->failed = self->failed;
    progress->total_known = !self->input || self->input_done || self->cancel_sent
                         || self->state != JOB_RUNNING;
    progress->total = !self->input ? self->nitems : progress->total_known ? self->sent : 0;
    progress->finished = self->state == JOB_DONE || self->state == JOB_FAILED;
    if (!self->started_ms) {
        progress->eta_s = -1;       //  waiting to start
        return;
    }
    int64_t elapsed = self->started_ms ? now - self->started_ms : 0;
    progress->elapsed_s = elapsed / 1000.0;
    //  rate over the last two seconds or so
    unsigned oldest = self->nsamples > NSAMPLES ? self->nsamples % NSAMPLES : 0;
    int64_t span = self->nsamples ? now - self->sample_ms [oldest] : 0;
    if (span >= 100)
        progress->rate = (self->answered - self->sample_done [oldest]) * 1000.0 / span;
    else
    if (elapsed > 0)
        progress->rate = self->answered * 1000.0 / elapsed;
    if (progress->finished)
        progress->eta_s = 0;
    else
    if (progress->total_known && progress->rate > 0)
        progress->eta_s = (progress->total - self->answered) / progress->rate;
    else
        progress->eta_s = -1;
}

//  --------------------------------------------------------------------------
//  Callback jobs and dp_map_stream

dp_job_t *
dp_job_start (dp_pool_t *pool, const char *task, const dp_job_opts_t *opts,
              dp_input_fn *input, dp_output_fn *output, void *arg)
{
    if (!input || !output) {
        client_set_error ("invalid arguments (input and output callbacks are required)");
        return NULL;
    }
    dp_job_t *self = cjob_new (pool, task, opts);
    if (!self)
        return NULL;
    self->input = input;
    self->input_arg = arg;
    self->output = output;
    self->output_arg = arg;
    if (cjob_start (self) != 0) {
        cjob_release (&self);
        return NULL;
    }
    return self;
}

//  Pump the job's pool until the job ends, the deadline passes, or (with
//  stop_on_signal) a signal cuts a wait. Returns failed items, -1 with the
//  error set, or DP_TIMEOUT.
static long
s_job_wait (dp_job_t *self, int timeout_ms, bool stop_on_signal)
{
    if (!self) {
        client_set_error ("invalid arguments");
        return -1;
    }
    dp_pool_t *pool = self->pool;
    if (pool && !cpool_check_caller (pool))
        return -1;
    int64_t deadline = cpool_deadline (timeout_ms);
    while ((self->state == JOB_RUNNING || self->state == JOB_WAITING) && pool) {
        cpool_pump (pool, cpool_wait_left (deadline));
        if (self->state != JOB_RUNNING && self->state != JOB_WAITING)
            break;
        if ((deadline >= 0 && zclock_mono () >= deadline) || (stop_on_signal && pool->interrupted))
            return DP_TIMEOUT;
    }
    if (self->state != JOB_DONE) {
        client_set_error ("%s", self->state == JOB_FAILED ? self->error : "pool closed");
        return -1;
    }
    return (long) self->failed;
}

long
dp_job_wait (dp_job_t *job, int timeout_ms)
{
    return s_job_wait (job, timeout_ms, true);
}

int
dp_job_cancel (dp_job_t *job)
{
    return cjob_cancel (job);
}

int
dp_job_progress (const dp_job_t *job, dp_progress_t *progress)
{
    if (!job || !progress)
        return -1;
    cjob_progress (job, progress);
    return 0;
}

void
dp_job_destroy (dp_job_t **job_p)
{
    if (job_p)
        cjob_release (job_p);
}

long
dp_map_stream (dp_pool_t *self, const char *task, const dp_job_opts_t *opts,
               dp_input_fn *input, dp_output_fn *output, void *arg)
{
    dp_job_t *job = dp_job_start (self, task, opts, input, output, arg);
    if (!job)
        return -1;
    long rc = s_job_wait (job, -1, false);
    cjob_release (&job);
    return rc;
}
