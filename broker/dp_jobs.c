/*  =========================================================================
    dp_jobs - jobs and chunks: queueing, dispatch, retries, reordering

    A job's items arrive in BATCHes; each batch becomes one chunk, a
    contiguous range of item indices kept as the client's two frames (lens,
    data). The broker never decodes or copies items on the normal path:
    dispatch sends the frames (refcounted zmq_msg copies) to a worker, the
    worker's RESULT frames are kept on the chunk and moved into RESULTS for
    the client. So all bookkeeping is per chunk — O(1) however many items
    a chunk holds — and only a worker's death falls back to per-item work:
    the dead worker's multi-item chunks are split into 1-item chunks so the
    item that kills workers is found without blaming the others. A worker
    that dies with one chunk in flight was killed by that chunk: a 1-item
    chunk is charged an attempt, a bigger one is split in halves. A worker
    that dies with several chunks in flight leaves the culprit unknown (its
    last RESULTs may have died with it): they all become suspects. A suspect
    chunk only runs alone on a worker, so its fate is its own; bisection
    finds a poison item in log2(n) deaths, and an innocent chunk on a killed
    worker costs one isolated re-run, never an attempt of its items.

    Each job keeps two lists: `chunks` (every unanswered chunk in index
    order: the reorder buffer) and `pending` (chunks waiting for a worker).
    Jobs with pending chunks sit in the broker's `ready` ring, and dispatch
    takes one chunk per job in turn: round-robin fair share between jobs.
    Memory is bounded by the client's window (WELCOME.window items).
    =========================================================================
*/
#include "dp_broker_internal.h"

#include <signal.h>
#include <string.h>

#define SPECULATE_MIN_MS 100
#define QUEUE_NS         1000000     //  work to keep queued at a worker

//  --------------------------------------------------------------------------
//  Chunks

static chunk_t *
s_chunk_new (job_t *job, uint64_t first, uint32_t n)
{
    chunk_t *self = (chunk_t *) zmalloc (sizeof (chunk_t));
    self->job = job;
    self->first = first;
    self->n = n;
    zmq_msg_init (&self->lens);
    zmq_msg_init (&self->data);
    zmq_msg_init (&self->rlens);
    zmq_msg_init (&self->rdata);
    zmq_msg_init (&self->rstatus);
    link_init (&self->order);
    link_init (&self->queue);
    return self;
}

//  Free a chunk; unlinks it from whatever lists it is on.
static void
s_chunk_destroy (chunk_t **self_p)
{
    chunk_t *self = *self_p;
    if (!self)
        return;
    if (self->backup)
        self->backup->primary = NULL;
    if (self->primary)
        self->primary->backup = NULL;
    link_remove (&self->order);
    link_remove (&self->queue);
    zmq_msg_close (&self->lens);
    zmq_msg_close (&self->data);
    zmq_msg_close (&self->rlens);
    zmq_msg_close (&self->rdata);
    zmq_msg_close (&self->rstatus);
    free (self);
    *self_p = NULL;
}

//  Answer every item of a chunk with the same failure status and message.
static void
s_chunk_fail (chunk_t *self, uint8_t status, const char *message)
{
    dp_batch_t batch;
    dp_batch_init (&batch);
    size_t len = strlen (message);
    for (uint32_t i = 0; i < self->n; i++) {
        size_t start = batch.size;
        void *p = dp_batch_reserve (&batch, len);
        if (p)
            memcpy (p, message, len);
        dp_batch_set_size (&batch, start + (p ? len : 0));
        dp_batch_commit (&batch, start, status);
    }
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_RESULT);
    if (dp_batch_attach (&batch, &msg, true) == 0) {
        zmq_msg_move (&self->rlens, &msg.frame [0]);
        zmq_msg_move (&self->rdata, &msg.frame [1]);
        zmq_msg_move (&self->rstatus, &msg.frame [2]);
        msg.nframes = 0;
    }
    dp_msg_reset (&msg);
    dp_batch_clear (&batch);
    self->done = true;
}

//  Failed items in a chunk's answer (status bytes that are not OK).
static uint32_t
s_chunk_failures (chunk_t *self)
{
    const uint8_t *status = (const uint8_t *) zmq_msg_data (&self->rstatus);
    size_t size = zmq_msg_size (&self->rstatus);
    uint32_t failures = 0;
    for (size_t i = 0; i < size; i++)
        failures += status [i] != DP_ST_OK;
    return failures;
}

//  --------------------------------------------------------------------------
//  Jobs

//  Create a job from a JOB message. Returns NULL if the id is taken.
job_t *
job_new (broker_t *broker, client_t *client, dp_msg_t *msg)
{
    if (job_lookup (client, msg->job))
        return NULL;
    job_t *self = (job_t *) zmalloc (sizeof (job_t));
    self->client = client;
    self->id = msg->job;
    snprintf (self->task, sizeof self->task, "%s", msg->task);
    self->ordered = msg->ordered;
    self->max_attempts = msg->attempts ? msg->attempts : broker->opts.max_attempts;
    self->timeout_ms = msg->timeout;
    self->tpct = msg->tpct;
    self->weight = msg->weight ? msg->weight : 1;
    self->created_ms = broker->now_ms;
    link_init (&self->chunks);
    link_init (&self->pending);
    link_init (&self->ready);
    link_insert_before (&client->jobs, &self->by_client);
    client->njobs++;
    return self;
}

job_t *
job_lookup (client_t *client, uint32_t id)
{
    for (link_t *l = client->jobs.next; l != &client->jobs; l = l->next) {
        job_t *job = link_entry (l, job_t, by_client);
        if (job->id == id)
            return job;
    }
    return NULL;
}

//  Tell the worker running an orphaned chunk to stop it: the worker answers
//  the rest as cancelled between items, and its supervisor kills it if one
//  item runs on.
static void
s_abort (broker_t *broker, chunk_t *chunk)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_ABORT);
    msg.chunk = chunk->id;
    broker_send_worker (broker, chunk->worker, &msg);
}

//  A chunk no longer races its backup copy: the copy becomes an orphan,
//  aborted on its worker and freed when its answer (or its worker) goes.
static void
s_drop_backup (broker_t *broker, chunk_t *chunk)
{
    chunk_t *twin = chunk->backup;
    if (!twin)
        return;
    chunk->backup = NULL;
    twin->primary = NULL;
    if (twin->worker && twin->job && twin->job->inflight)
        twin->job->inflight--;
    twin->job = NULL;
    if (twin->worker)
        s_abort (broker, twin);
}

//  Destroy a job. Chunks in flight stay with their workers as orphans, are
//  aborted there, and are freed when their RESULT arrives (or the worker is
//  lost).
void
job_destroy (broker_t *broker, job_t **job_p)
{
    job_t *self = *job_p;
    if (!self)
        return;
    while (!link_empty (&self->chunks)) {
        chunk_t *chunk = link_entry (self->chunks.next, chunk_t, order);
        link_remove (&chunk->order);
        s_drop_backup (broker, chunk);
        if (chunk->worker) {
            chunk->job = NULL;
            s_abort (broker, chunk);
        }
        else
            s_chunk_destroy (&chunk);
    }
    self->client->outstanding -= self->next_first - self->answered;
    link_remove (&self->ready);
    link_remove (&self->by_client);
    self->client->njobs--;
    free (self);
    *job_p = NULL;
}

//  Queue a chunk for dispatch; at the front for retries (they are the
//  oldest, and an ordered job waits for them).
static void
s_job_queue (broker_t *broker, job_t *self, chunk_t *chunk, bool front)
{
    link_insert_before (front ? self->pending.next : &self->pending, &chunk->queue);
    if (link_empty (&self->ready))
        link_insert_before (&broker->ready, &self->ready);
}

//  Add a BATCH as a new chunk. Returns 0, or -1 with a reason in err.
int
job_add_batch (broker_t *broker, job_t *self, dp_msg_t *msg, char *err, size_t errlen)
{
    if (self->ended) {
        snprintf (err, errlen, "job %u: BATCH after END", self->id);
        return -1;
    }
    if (msg->first != self->next_first || msg->n == 0) {
        snprintf (err, errlen, "job %u: BATCH first=%llu n=%u, expected first=%llu n>0",
                  self->id, (unsigned long long) msg->first, msg->n,
                  (unsigned long long) self->next_first);
        return -1;
    }
    chunk_t *chunk = s_chunk_new (self, msg->first, msg->n);
    zmq_msg_move (&chunk->lens, &msg->frame [0]);
    zmq_msg_move (&chunk->data, &msg->frame [1]);
    self->next_first += msg->n;
    self->client->outstanding += msg->n;
    link_insert_before (&self->chunks, &chunk->order);
    s_job_queue (broker, self, chunk, false);
    return 0;
}

//  Send DONE and destroy the job once every item has been answered.
static void
s_job_finish_if_done (broker_t *broker, job_t **job_p)
{
    job_t *self = *job_p;
    if (!self->ended || self->answered < self->total)
        return;
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_DONE);
    msg.job = self->id;
    msg.ok = self->answered - self->failed;
    msg.failed = self->failed;
    broker_send_client (broker, self->client, &msg);
    job_destroy (broker, job_p);
}

void
job_end (broker_t *broker, job_t *self, uint64_t total)
{
    self->ended = true;
    self->total = total;
    s_job_finish_if_done (broker, &self);
}

//  Send one answered chunk to the client and free it.
static void
s_send_results (broker_t *broker, job_t *self, chunk_t *chunk)
{
    uint32_t failures = s_chunk_failures (chunk);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_RESULTS);
    msg.job = self->id;
    msg.first = chunk->first;
    msg.n = chunk->n;
    msg.ns = chunk->ns;
    zmq_msg_init (&msg.frame [0]);
    zmq_msg_init (&msg.frame [1]);
    zmq_msg_init (&msg.frame [2]);
    zmq_msg_move (&msg.frame [0], &chunk->rlens);
    zmq_msg_move (&msg.frame [1], &chunk->rdata);
    zmq_msg_move (&msg.frame [2], &chunk->rstatus);
    msg.nframes = 3;
    broker_send_client (broker, self->client, &msg);
    self->answered += chunk->n;
    self->failed += failures;
    self->client->outstanding -= chunk->n;
    s_chunk_destroy (&chunk);
}

//  A chunk of the job has its answer: deliver what can be delivered (in
//  index order for ordered jobs), then finish the job if it is complete.
//  With chunk NULL, delivers every answered chunk (after job_fail_all).
static void
s_job_deliver (broker_t *broker, job_t *self, chunk_t *chunk)
{
    if (!self->ordered && chunk)
        s_send_results (broker, self, chunk);
    else {
        link_t *l = self->chunks.next;
        while (l != &self->chunks) {
            chunk_t *next = link_entry (l, chunk_t, order);
            l = l->next;
            if (next->done)
                s_send_results (broker, self, next);
            else
            if (self->ordered)
                break;
        }
    }
    s_job_finish_if_done (broker, &self);
}

//  Fail every unanswered item of a job with one status and message, in
//  order (cancellation, no worker for the task).
void
job_fail_all (broker_t *broker, job_t *self, uint8_t status, const char *message)
{
    link_t *l = self->chunks.next;
    while (l != &self->chunks) {
        chunk_t *chunk = link_entry (l, chunk_t, order);
        l = l->next;
        if (chunk->done)
            continue;
        if (!chunk->worker)
            link_remove (&chunk->queue);    //  out of the pending queue
        s_drop_backup (broker, chunk);
        if (chunk->worker) {
            //  leave the running copy as an orphan, answer a twin here
            chunk_t *twin = s_chunk_new (self, chunk->first, chunk->n);
            link_insert_before (&chunk->order, &twin->order);
            link_remove (&chunk->order);
            chunk->job = NULL;
            self->inflight--;
            s_abort (broker, chunk);
            chunk = twin;
        }
        s_chunk_fail (chunk, status, message);
    }
    link_remove (&self->ready);
    s_job_deliver (broker, self, NULL);
}

//  --------------------------------------------------------------------------
//  Task times and timeouts

static int
s_cmp_u32 (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

//  Record a chunk's mean item time; refresh the median now and then (a
//  sort of at most 64 values every 8 results: O(1) per chunk).
static void
s_job_sample (job_t *self, uint64_t ns, uint32_t n)
{
    if (!n || !ns)
        return;
    uint64_t us = ns / n / 1000;
    self->samples [self->nsamples++ % 64] = us > UINT32_MAX ? UINT32_MAX : (uint32_t) (us ? us : 1);
    if (self->nsamples % 8 == 0 || self->nsamples == 3) {
        uint32_t sorted [64];
        uint32_t count = self->nsamples < 64 ? self->nsamples : 64;
        memcpy (sorted, self->samples, count * sizeof (uint32_t));
        qsort (sorted, count, sizeof (uint32_t), s_cmp_u32);
        self->median_us = sorted [count / 2];
    }
}

//  The per-item timeout for the job's next chunk, in ms (0: none): the
//  absolute one, or N% of the median item time once 3 are known (as GNU
//  parallel's --timeout N%), at least 10 ms.
static uint32_t
s_job_timeout (job_t *self)
{
    if (self->timeout_ms)
        return self->timeout_ms;
    if (!self->tpct || self->nsamples < 3)
        return 0;
    uint64_t ms = (uint64_t) self->median_us * self->tpct / 100 / 1000;
    return ms < 10 ? 10 : ms > UINT32_MAX ? UINT32_MAX : (uint32_t) ms;
}

//  --------------------------------------------------------------------------
//  Dispatch

//  First worker with credit left that has the task, or NULL; for a suspect
//  chunk, a worker with nothing in flight. Workers are kept in `available`
//  least-recently-used first.
static worker_t *
s_find_worker (broker_t *broker, const char *task, bool alone)
{
    for (link_t *l = broker->available.next; l != &broker->available; l = l->next) {
        worker_t *worker = link_entry (l, worker_t, available);
        if ((!alone || worker->inflight_count == 0) && zhashx_lookup (worker->tasks, task))
            return worker;
    }
    return NULL;
}

//  How many chunks to keep in flight at a worker: enough queued work to
//  cover a round trip (QUEUE_NS) however small its chunks are, but no more
//  than two long chunks, so a long task never holds work others could run;
//  never more than the worker's credit.
static uint32_t
s_worker_limit (worker_t *worker)
{
    uint64_t limit = worker->chunk_ns ? 1 + QUEUE_NS / worker->chunk_ns : 2;
    limit = limit < 2 ? 2 : limit;
    return limit < worker->credit ? (uint32_t) limit : worker->credit;
}

//  Send a chunk to a worker. Returns 0, or -1 if the worker is unreachable
//  (the chunk is then back at the front of its job's queue).
static int
s_dispatch_chunk (broker_t *broker, worker_t *worker, chunk_t *chunk)
{
    job_t *job = chunk->job;
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_CHUNK);
    msg.chunk = ++broker->next_chunk_id;
    msg.n = chunk->n;
    msg.timeout = s_job_timeout (job);
    memcpy (msg.task, job->task, sizeof msg.task);
    zmq_msg_init (&msg.frame [0]);
    zmq_msg_init (&msg.frame [1]);
    zmq_msg_copy (&msg.frame [0], &chunk->lens);
    zmq_msg_copy (&msg.frame [1], &chunk->data);
    msg.nframes = 2;
    link_remove (&chunk->queue);
    if (broker_send_worker (broker, worker, &msg) != 0) {
        if (!chunk->primary)
            s_job_queue (broker, job, chunk, true);
        return -1;
    }
    chunk->id = msg.chunk;
    chunk->worker = worker;
    chunk->dispatched_ms = broker->now_ms;
    job->inflight++;
    link_insert_before (&worker->inflight, &chunk->queue);
    if (++worker->inflight_count >= s_worker_limit (worker) || chunk->suspect)
        link_remove (&worker->available);
    return 0;
}

//  Hand out pending chunks while there are workers with credit: one chunk
//  per job in turn. Stops when a full turn of the ready ring dispatched
//  nothing (the remaining jobs' tasks have no free worker).
void
jobs_dispatch (broker_t *broker)
{
    size_t idle_turns = 0;
    while (!link_empty (&broker->ready) && !link_empty (&broker->available)) {
        //  round-robin, but a job with fewer chunks running goes before
        //  the next one: a small job that arrives beside a big one takes
        //  the slots the big one frees until both run alike
        job_t *job = link_entry (broker->ready.next, job_t, ready);
        if (broker->ready.next->next != &broker->ready) {
            job_t *second = link_entry (broker->ready.next->next, job_t, ready);
            if (second->inflight < job->inflight)
                job = second;
        }
        link_remove (&job->ready);
        chunk_t *chunk = link_entry (job->pending.next, chunk_t, queue);
        worker_t *worker = s_find_worker (broker, job->task, chunk->suspect);
        if (worker) {
            if (s_dispatch_chunk (broker, worker, chunk) != 0) {
                link_remove (&job->ready);
                //  a local worker's death is known from its pidfd, with
                //  its cause; a remote one has disconnected
                worker->gone = true;
                link_remove (&worker->available);
                if (worker->slot < 0)
                    broker_worker_lost (broker, worker, "disconnected");
            }
            idle_turns = 0;
        }
        else
            idle_turns++;
        if (!link_empty (&job->pending) && link_empty (&job->ready)) {
            //  a job of weight w keeps its turn for w chunks
            if (worker && ++job->turn < job->weight)
                link_insert_before (broker->ready.next, &job->ready);
            else {
                job->turn = 0;
                link_insert_before (&broker->ready, &job->ready);
            }
        }
        //  count the ring once: a full turn without progress ends it
        size_t ring = 0;
        for (link_t *l = broker->ready.next; l != &broker->ready && ring <= idle_turns; l = l->next)
            ring++;
        if (idle_turns && idle_turns >= ring)
            break;
    }
}

//  --------------------------------------------------------------------------
//  Results and failures

//  Take a chunk off its worker, giving the worker its credit back.
static void
s_unassign (broker_t *broker, chunk_t *chunk)
{
    worker_t *worker = chunk->worker;
    link_remove (&chunk->queue);
    chunk->worker = NULL;
    chunk->id = 0;
    if (chunk->job && chunk->job->inflight)
        chunk->job->inflight--;
    worker->inflight_count--;
    if (link_empty (&worker->available) && !worker->gone
    &&  worker->inflight_count < s_worker_limit (worker))
        link_insert_before (&broker->available, &worker->available);
}

//  Leave a running chunk's current run to its worker as an orphan (aborted
//  there), so the chunk itself is free to be answered by another run.
static void
s_orphan_running (broker_t *broker, chunk_t *chunk)
{
    chunk_t *ghost = s_chunk_new (NULL, chunk->first, chunk->n);
    ghost->id = chunk->id;
    ghost->worker = chunk->worker;
    link_insert_before (&chunk->queue, &ghost->queue);
    link_remove (&chunk->queue);
    chunk->worker = NULL;
    chunk->id = 0;
    if (chunk->job && chunk->job->inflight)
        chunk->job->inflight--;
    s_abort (broker, ghost);
}

//  A RESULT from a worker. Unknown chunk ids (late answers to chunks that
//  were requeued or cancelled) are dropped; a wrong item count is a broken
//  worker, which is dropped.
void
jobs_result (broker_t *broker, worker_t *worker, dp_msg_t *msg)
{
    chunk_t *chunk = NULL;
    for (link_t *l = worker->inflight.next; l != &worker->inflight; l = l->next) {
        chunk_t *c = link_entry (l, chunk_t, queue);
        if (c->id == msg->chunk) {
            chunk = c;
            break;
        }
    }
    if (!chunk) {
        broker->dropped++;
        return;
    }
    if (msg->n != chunk->n) {
        zsys_warning ("dpool-broker: worker %s answered %u items for a chunk of %u; dropping it",
                      worker->key, msg->n, chunk->n);
        broker_worker_lost (broker, worker, "protocol error");
        return;
    }
    worker->chunk_ns = worker->chunk_ns ? (worker->chunk_ns * 7 + msg->ns) / 8 : msg->ns + 1;
    s_unassign (broker, chunk);
    worker->chunks_done++;
    job_t *job = chunk->job;
    if (chunk->primary) {
        //  a backup copy won the race: its answer goes to the primary
        chunk_t *twin = chunk;
        chunk = twin->primary;
        s_chunk_destroy (&twin);
        if (chunk->worker)
            s_orphan_running (broker, chunk);
    }
    else
        s_drop_backup (broker, chunk);
    if (!job) {
        s_chunk_destroy (&chunk);
        return;
    }
    zmq_msg_move (&chunk->rlens, &msg->frame [0]);
    zmq_msg_move (&chunk->rdata, &msg->frame [1]);
    zmq_msg_move (&chunk->rstatus, &msg->frame [2]);
    chunk->ns = msg->ns;
    chunk->done = true;
    s_job_sample (job, msg->ns, msg->n);
    s_job_deliver (broker, job, chunk);
}

//  Split a chunk that killed a worker into two suspect halves, in place in
//  the job's order list and at the front of its queue. Returns 0 or -1 (out
//  of memory: the chunk is then requeued whole).
static int
s_split (broker_t *broker, chunk_t *chunk)
{
    job_t *job = chunk->job;
    link_t *queue_at = job->pending.next;
    uint32_t half = chunk->n / 2;
    uint32_t from [2] = { 0, half }, count [2] = { half, chunk->n - half };
    for (int i = 0; i < 2; i++) {
        chunk_t *part = s_chunk_new (job, chunk->first + from [i], count [i]);
        if (dp_batch_slice (&chunk->lens, &chunk->data, from [i], count [i],
                            &part->lens, &part->data) != 0) {
            s_chunk_destroy (&part);
            return -1;
        }
        part->suspect = true;
        link_insert_before (&chunk->order, &part->order);
        link_insert_before (queue_at, &part->queue);
    }
    if (link_empty (&job->ready))
        link_insert_before (&broker->ready, &job->ready);
    return 0;
}

//  The chunk killed its worker: charge it (1 item) or split it.
static void
s_blame (broker_t *broker, chunk_t *chunk, const char *reason)
{
    job_t *job = chunk->job;
    if (chunk->n > 1) {
        if (s_split (broker, chunk) == 0)
            s_chunk_destroy (&chunk);
        else
            s_job_queue (broker, job, chunk, true);
    }
    else
    if (++chunk->attempts >= job->max_attempts) {
        char message [200];
        snprintf (message, sizeof message, "worker died: %s, %u attempts",
                  reason, chunk->attempts);
        s_chunk_fail (chunk, DP_ST_DIED, message);
        s_job_deliver (broker, job, chunk);
    }
    else {
        chunk->suspect = true;
        s_job_queue (broker, job, chunk, true);
    }
}

//  Give a lost worker's chunks back. `reason` names the cause ("SIGSEGV",
//  "no heartbeat"); NULL means a clean goodbye, which blames no one.
void
jobs_requeue_worker (broker_t *broker, worker_t *worker, const char *reason)
{
    bool alone = worker->inflight_count == 1;
    worker->gone = true;
    while (!link_empty (&worker->inflight)) {
        chunk_t *chunk = link_entry (worker->inflight.prev, chunk_t, queue);
        s_unassign (broker, chunk);
        s_drop_backup (broker, chunk);
        if (!chunk->job || chunk->primary)
            s_chunk_destroy (&chunk);   //  an orphan, or a backup copy: its primary runs on
        else
        if (reason && alone)
            s_blame (broker, chunk, reason);
        else {
            chunk->suspect |= reason != NULL;
            s_job_queue (broker, chunk->job, chunk, true);
        }
    }
}

//  A sub-range of a chunk as a new chunk, placed before it in the job's
//  order list and before `queue_at` in its queue. NULL if out of memory.
static chunk_t *
s_carve (chunk_t *chunk, uint32_t from, uint32_t count, link_t *queue_at)
{
    chunk_t *part = s_chunk_new (chunk->job, chunk->first + from, count);
    if (dp_batch_slice (&chunk->lens, &chunk->data, from, count, &part->lens, &part->data) != 0) {
        s_chunk_destroy (&part);
        return NULL;
    }
    link_insert_before (&chunk->order, &part->order);
    link_insert_before (queue_at, &part->queue);
    return part;
}

//  The worker died running item `k` of this chunk: the items before and
//  after it go back to the queue as they are; item k is charged an attempt
//  (or failed as timed out) on its own.
static void
s_blame_item (broker_t *broker, chunk_t *chunk, const dp_death_t *death)
{
    job_t *job = chunk->job;
    uint32_t k = death->item;
    chunk_t *culprit = chunk;
    if (chunk->n > 1) {
        link_t *at = job->pending.next;
        bool ok = (k == 0 || s_carve (chunk, 0, k, at))
               && (culprit = s_carve (chunk, k, 1, at)) != NULL
               && (k + 1 == chunk->n || s_carve (chunk, k + 1, chunk->n - k - 1, at));
        if (!ok) {      //  out of memory: keep what was carved, requeue the rest whole
            s_job_queue (broker, job, chunk, true);
            return;
        }
        link_remove (&culprit->queue);
        s_chunk_destroy (&chunk);
    }
    culprit->attempts++;
    if (link_empty (&job->ready) && !link_empty (&job->pending))
        link_insert_before (&broker->ready, &job->ready);
    char message [200];
    if (death->code == DP_ST_TIMEOUT) {
        s_chunk_fail (culprit, DP_ST_TIMEOUT, death->reason);
        s_job_deliver (broker, job, culprit);       //  may end the job
    }
    else
    if (culprit->attempts >= job->max_attempts) {
        snprintf (message, sizeof message, "worker died: %s, %u attempts",
                  death->reason, culprit->attempts);
        s_chunk_fail (culprit, DP_ST_DIED, message);
        s_job_deliver (broker, job, culprit);       //  may end the job
    }
    else
        s_job_queue (broker, job, culprit, true);
}

//  Give a supervised worker's chunks back, blaming exactly the item its
//  supervisor saw running (none if it died between items, exited cleanly
//  or was killed because its chunk was aborted).
void
jobs_requeue_exact (broker_t *broker, worker_t *worker, const dp_death_t *death)
{
    bool blame = !death->clean && !death->aborted && death->chunk && death->item != DP_PROGRESS_NONE;
    if (!blame && !death->clean && !death->aborted) {
        //  it died outside any item: fall back to isolating suspects
        jobs_requeue_worker (broker, worker, death->reason);
        return;
    }
    worker->gone = true;
    chunk_t *culprit = NULL;
    while (!link_empty (&worker->inflight)) {
        chunk_t *chunk = link_entry (worker->inflight.prev, chunk_t, queue);
        bool guilty = blame && chunk->id == death->chunk && death->item < chunk->n;
        s_unassign (broker, chunk);
        s_drop_backup (broker, chunk);
        if (!chunk->job || chunk->primary)
            s_chunk_destroy (&chunk);
        else
        if (guilty)
            culprit = chunk;
        else
            s_job_queue (broker, chunk->job, chunk, true);
    }
    if (culprit)
        s_blame_item (broker, culprit, death);
}

//  Fail jobs whose task no worker has: at once when the pool is local only
//  and every local worker has registered, else after task_wait_ms.
void
jobs_check_noworker (broker_t *broker)
{
    bool local_only = !broker->opts.workers && spawn_all_registered (broker);
    client_t *client = (client_t *) zhashx_first (broker->clients);
    while (client) {
        link_t *l = client->jobs.next;
        while (l != &client->jobs) {
            job_t *job = link_entry (l, job_t, by_client);
            l = l->next;
            if (broker_any_worker_has (broker, job->task))
                job->created_ms = broker->now_ms;   //  restart the wait
            else
            if (local_only || broker->now_ms - job->created_ms >= broker->opts.task_wait_ms) {
                dp_msg_t msg;
                dp_msg_init (&msg, DP_CMD_ERROR);
                msg.has_job = true;
                msg.job = job->id;
                msg.code = DP_ST_NOWORKER;
                snprintf (msg.text, sizeof msg.text, "no worker has task '%s'", job->task);
                broker_send_client (broker, client, &msg);
                job_destroy (broker, &job);
            }
        }
        client = (client_t *) zhashx_next (broker->clients);
    }
}

//  --------------------------------------------------------------------------
//  Speculation: backup copies of stragglers

//  How long a chunk of this job may run before a backup copy is worth it:
//  four times its expected time from the median item time, at least
//  SPECULATE_MIN_MS; a second without any measure.
static int64_t
s_straggler_ms (job_t *job, chunk_t *chunk)
{
    if (job->nsamples < 3)
        return 1000;
    int64_t expect = (int64_t) job->median_us * chunk->n / 1000;
    return expect * 4 > SPECULATE_MIN_MS ? expect * 4 : SPECULATE_MIN_MS;
}

//  Is the chunk a candidate for a backup copy?
static bool
s_speculable (broker_t *broker, chunk_t *c)
{
    job_t *job = c->job;
    return job && !c->primary && !c->backup && job->ended && link_empty (&job->pending);
}

//  The chunk of a straggling worker most worth a backup copy: the last
//  one queued on it (it starts only after the others), once the worker's
//  running chunk has run past its straggler threshold. NULL if none.
static chunk_t *
s_straggler (broker_t *broker, worker_t *worker)
{
    if (link_empty (&worker->inflight))
        return NULL;
    chunk_t *head = link_entry (worker->inflight.next, chunk_t, queue);
    if (!head->job || broker->now_ms - head->dispatched_ms <= s_straggler_ms (head->job, head))
        return NULL;
    for (link_t *l = worker->inflight.prev; l != &worker->inflight; l = l->prev) {
        chunk_t *c = link_entry (l, chunk_t, queue);
        if (s_speculable (broker, c))
            return c;
    }
    return NULL;
}

//  Near the end of a job (all its items in, none waiting), idle workers run
//  backup copies of the chunks held by straggling workers, as MapReduce's
//  backup tasks: the first answer wins, the other run is aborted, and the
//  client never sees two. Runs on the timer: O(workers x credit) per tick.
void
jobs_speculate (broker_t *broker)
{
    if (broker->opts.no_speculation)
        return;
    for (int round = 0; round < 16; round++) {
        chunk_t *best = NULL;
        int64_t best_age = 0;
        worker_t *worker = (worker_t *) zhashx_first (broker->workers);
        for (; worker; worker = (worker_t *) zhashx_next (broker->workers)) {
            chunk_t *c = s_straggler (broker, worker);
            chunk_t *head = c ? link_entry (worker->inflight.next, chunk_t, queue) : NULL;
            if (c && broker->now_ms - head->dispatched_ms > best_age) {
                best = c;
                best_age = broker->now_ms - head->dispatched_ms;
            }
        }
        if (!best)
            return;
        worker_t *idle = s_find_worker (broker, best->job->task, true);
        if (!idle || idle == best->worker)
            return;
        chunk_t *twin = s_chunk_new (best->job, best->first, best->n);
        zmq_msg_copy (&twin->lens, &best->lens);
        zmq_msg_copy (&twin->data, &best->data);
        twin->primary = best;
        best->backup = twin;
        twin->suspect = true;       //  alone on its worker, like a suspect
        if (s_dispatch_chunk (broker, idle, twin) != 0) {
            link_remove (&twin->queue);
            s_chunk_destroy (&twin);
            return;
        }
        if (broker->opts.verbose)
            zsys_info ("dpool-broker: job %u: backup copy of items %llu..%llu on worker %s "
                       "(worker %s straggling for %lld ms)", best->job->id,
                       (unsigned long long) best->first,
                       (unsigned long long) (best->first + best->n - 1), idle->key,
                       best->worker->key, (long long) best_age);
    }
}
