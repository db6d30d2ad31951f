/*  =========================================================================
    dp_jobs - jobs and chunks: queueing, results, retries, reordering

    A job's items arrive in BATCHes; each batch becomes one chunk, or
    several of BATCH.csize items, each a contiguous range of item indices.
    A chunk holds a span of the batch's frames (dp_span.c): the broker
    never decodes items, and copies them only to pack several small
    chunks into one CHUNK (a whole batch goes out as its own frames,
    refcounted). A RESULT's frames become a block shared by the chunks it
    answers, and go to the client the same way: whole when they make up
    the block, merged into one RESULTS when small. So all bookkeeping is
    per chunk, O(1) however many items a chunk holds, and per message for
    the tiny chunks of a chunk size of 1. Only a worker's death falls back
    to per-item work: the dead worker's multi-item chunks are split so the
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
    (dp_dispatch.c) takes one job's turn at a time: a fair share between
    jobs by measured work time. Memory is bounded by the client's window (WELCOME.window items).
    =========================================================================
*/
#include "dp_broker_internal.h"
#include "dp_guard.h"

#include <errno.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Chunks

chunk_t *
chunk_new (job_t *job, uint64_t first, uint32_t n)
{
    chunk_t *self = (chunk_t *) zmalloc (sizeof (chunk_t));
    self->job = job;
    self->first = first;
    self->n = n;
    link_init (&self->order);
    link_init (&self->queue);
    return self;
}

//  Free a chunk; unlinks it from whatever lists it is on.
void
chunk_destroy (chunk_t **self_p)
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
    span_release (&self->in);
    span_release (&self->out);
    free (self->avoid);
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
    span_release (&self->out);
    if (span_from_batch (&self->out, &batch, true) != 0) {
        zsys_error ("dpool-broker: out of memory");     //  as zmalloc does
        abort ();
    }
    dp_batch_clear (&batch);
    self->done = true;
}

//  Failed items in a chunk's answer (status bytes that are not OK).
static uint32_t
s_chunk_failures (chunk_t *self)
{
    uint32_t failures = 0;
    for (uint32_t i = 0; i < self->out.n; i++)
        failures += span_status (&self->out, i) != DP_ST_OK;
    return failures;
}

//  --------------------------------------------------------------------------
//  Jobs

//  A client's jobs by id: a hash keyed by the id itself (plus one: a key
//  is never NULL), so thousands of one-item jobs cost O(1) per message.
static size_t
s_id_hash (const void *key)
{
    uint64_t x = (uintptr_t) key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    return (size_t) (x ^ (x >> 33));
}

static int
s_id_compare (const void *a, const void *b)
{
    return (uintptr_t) a < (uintptr_t) b ? -1 : (uintptr_t) a > (uintptr_t) b;
}

zhashx_t *
job_index_new (void)
{
    zhashx_t *index = zhashx_new ();
    zhashx_set_key_hasher (index, s_id_hash);
    zhashx_set_key_comparator (index, s_id_compare);
    zhashx_set_key_duplicator (index, NULL);
    zhashx_set_key_destructor (index, NULL);
    return index;
}

static void *
s_id_key (uint32_t id)
{
    return (void *) ((uintptr_t) id + 1);
}

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
    self->no_spec = msg->spec == DP_SPEC_OFF;
    self->parts = msg->parts;
    self->deficit_ns = (int64_t) QUANTUM_NS * self->weight;
    self->created_ms = broker->now_ms;
    link_init (&self->chunks);
    link_init (&self->pending);
    link_init (&self->ready);
    link_init (&self->answers);
    link_insert_before (&client->jobs, &self->by_client);
    zhashx_insert (client->job_index, s_id_key (self->id), self);
    client->njobs++;
    broker->guard.njobs++;
    return self;
}

job_t *
job_lookup (client_t *client, uint32_t id)
{
    return (job_t *) zhashx_lookup (client->job_index, s_id_key (id));
}

//  Orphaned chunks to abort, gathered so that the chunks of one CHUNK
//  (consecutive ids on one worker) go in one ABORT: a worker remembers
//  only its last few ABORTs.
typedef struct {
    worker_t *worker;
    uint64_t first;
    uint32_t k;
} aborts_t;

static void
s_aborts_flush (broker_t *broker, aborts_t *self)
{
    if (self->k == 0)
        return;
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_ABORT);
    msg.chunk = self->first;
    msg.k = self->k;
    broker_send_worker (broker, self->worker, &msg);
    self->k = 0;
}

//  Tell the worker running an orphaned chunk to stop it (with the ones
//  gathered before it if they run there next to it): the worker answers
//  the rest as cancelled between items, and its supervisor kills it if
//  one item runs on.
static void
s_aborts_add (broker_t *broker, aborts_t *self, chunk_t *chunk)
{
    if (self->k && self->worker == chunk->worker && self->first + self->k == chunk->id) {
        self->k++;
        return;
    }
    s_aborts_flush (broker, self);
    *self = (aborts_t) { chunk->worker, chunk->id, 1 };
}

static void
s_abort (broker_t *broker, chunk_t *chunk)
{
    aborts_t one = { NULL, 0, 0 };
    s_aborts_add (broker, &one, chunk);
    s_aborts_flush (broker, &one);
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
    aborts_t aborts = { NULL, 0, 0 };
    while (!link_empty (&self->chunks)) {
        chunk_t *chunk = link_entry (self->chunks.next, chunk_t, order);
        link_remove (&chunk->order);
        s_drop_backup (broker, chunk);
        if (chunk->worker) {
            chunk->job = NULL;
            s_aborts_add (broker, &aborts, chunk);
        }
        else
            chunk_destroy (&chunk);
    }
    s_aborts_flush (broker, &aborts);
    self->client->outstanding -= self->next_first - self->answered;
    self->client->outstanding_bytes -= self->in_bytes;
    link_remove (&self->ready);
    link_remove (&self->answers);
    link_remove (&self->by_client);
    zhashx_delete (self->client->job_index, s_id_key (self->id));
    self->client->njobs--;
    broker->guard.njobs--;
    free (self);
    *job_p = NULL;
}

//  Queue a chunk for dispatch; at the front for retries (they are the
//  oldest, and an ordered job waits for them). A job that joins the ready
//  ring brings at most one turn's share: waiting earns nothing.
void
job_queue (broker_t *broker, job_t *self, chunk_t *chunk, bool front)
{
    link_insert_before (front ? self->pending.next : &self->pending, &chunk->queue);
    if (link_empty (&self->ready)) {
        link_insert_before (&broker->ready, &self->ready);
        int64_t share = (int64_t) QUANTUM_NS * self->weight;
        self->deficit_ns = self->deficit_ns < share ? self->deficit_ns : share;
    }
}

static void s_job_deliver (broker_t *broker, job_t *self);

//  Add a BATCH as new chunks of `csize` items (the whole batch if 0): the
//  chunks share the batch's frames; a `big` BATCH (an item over the size
//  limit, not sent) is failed at once. Returns 0, or -1 with a reason in err.
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
    span_t whole;
    if (span_take (&whole, msg) != 0) {
        snprintf (err, errlen, "job %u: out of memory", self->id);
        return -1;
    }
    if (msg->big) {
        //  an item over the size limit, never sent: it fails alone, the
        //  rest of the job goes on (its data frame must be empty)
        if (msg->n != 1 || whole.size != 0) {
            span_release (&whole);
            snprintf (err, errlen, "job %u: BATCH big with n=%u and %zu bytes, expected 1 and 0",
                      self->id, msg->n, whole.size);
            return -1;
        }
        chunk_t *chunk = chunk_new (self, msg->first, 1);
        span_copy (&chunk->in, &whole);
        span_release (&whole);
        link_insert_before (&self->chunks, &chunk->order);
        char message [128];
        snprintf (message, sizeof message, "item of %llu bytes is over the size limit of %u MiB",
                  (unsigned long long) msg->big, DP_MAX_FRAME / 2 >> 20);
        s_chunk_fail (chunk, DP_ST_TASK, message);
        self->next_first += 1;
        self->client->outstanding += 1;
        s_job_deliver (broker, self);
        return 0;
    }
    uint32_t csize = msg->csize && msg->csize < msg->n ? msg->csize : msg->n;
    size_t offset = 0;
    for (uint32_t from = 0; from < msg->n; from += csize) {
        uint32_t count = msg->n - from < csize ? msg->n - from : csize;
        chunk_t *chunk = chunk_new (self, msg->first + from, count);
        if (count == msg->n)
            span_copy (&chunk->in, &whole);
        else
            span_at (&chunk->in, &whole, from, offset, count);
        offset += chunk->in.size;
        if (msg->navoid) {
            //  a retry: its items failed on these nodes (dp_dispatch.c)
            chunk->avoid = (uint64_t *) zmalloc (msg->navoid * sizeof (uint64_t));
            memcpy (chunk->avoid, msg->avoid, msg->navoid * sizeof (uint64_t));
            chunk->navoid = msg->navoid;
        }
        link_insert_before (&self->chunks, &chunk->order);
        job_queue (broker, self, chunk, false);
    }
    self->in_bytes += whole.size;
    self->client->outstanding_bytes += whole.size;
    span_release (&whole);
    self->next_first += msg->n;
    self->client->outstanding += msg->n;
    return 0;
}

//  Send DONE and destroy the job once every item has been answered.
static void
s_job_finish_if_done (broker_t *broker, job_t **job_p)
{
    job_t *self = *job_p;
    if (!self->ended || self->answered < self->total)
        return;
    if (!self->done_sent) {
        dp_msg_t msg;
        dp_msg_init (&msg, DP_CMD_DONE);
        msg.job = self->id;
        msg.ok = self->answered - self->failed;
        msg.failed = self->failed;
        msg.backups = self->backups;
        if (broker_send_client (broker, self->client, &msg) != 0 && errno == EAGAIN) {
            guard_blocked (broker, self->client);   //  its pipe is full: later
            return;
        }
    }
    job_destroy (broker, job_p);
}

void
job_end (broker_t *broker, job_t *self, uint64_t total)
{
    self->ended = true;
    self->total = total;
    s_job_finish_if_done (broker, &self);
}

//  Send `count` answered chunks, consecutive in the job's order from
//  `chunk`, to the client as one RESULTS, and free them.
static bool
s_send_run (broker_t *broker, job_t *self, chunk_t *chunk, size_t count)
{
    span_t *local [64];
    span_t **spans = count <= 64 ? local : (span_t **) zmalloc (count * sizeof (span_t *));
    chunk_t *c = chunk;
    uint64_t ns = 0, bytes = 0;
    uint32_t failures = 0;
    for (size_t i = 0; i < count; i++) {
        spans [i] = &c->out;
        ns += c->ns;
        bytes += c->in.size;
        failures += s_chunk_failures (c);
        c = link_entry (c->order.next, chunk_t, order);
    }
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_RESULTS);
    msg.job = self->id;
    msg.first = chunk->first;
    msg.ns = ns;
    msg.backups = self->backups;
    if (span_gather (spans, count, &msg, true) != 0) {
        zsys_error ("dpool-broker: out of memory");     //  as zmalloc does
        abort ();
    }
    if (spans != local)
        free (spans);
    uint32_t n = msg.n;
    bool done = self->ended && self->answered + n == self->total;
    if (done) {
        //  the job's last answers: they say it is done (no DONE follows)
        msg.done = true;
        msg.failed = self->failed + failures;
        msg.ok = self->total - msg.failed;
    }
    //  the window is released when the answers are delivered, not when
    //  they are ready: a client that reads nothing fills its pipe (the
    //  frontend's SNDHWM), its answers wait here, and its window stays
    //  closed (PROTOCOL.md §8)
    if (broker_send_client (broker, self->client, &msg) != 0 && errno == EAGAIN) {
        guard_blocked (broker, self->client);
        return false;
    }
    self->done_sent |= done;
    bytes = bytes < self->in_bytes ? bytes : self->in_bytes;
    self->in_bytes -= bytes;
    self->client->outstanding_bytes -= bytes;
    self->answered += n;
    self->failed += failures;
    self->client->outstanding -= n;
    for (size_t i = 0; i < count; i++) {
        c = link_entry (chunk->order.next, chunk_t, order);
        chunk_destroy (&chunk);
        chunk = c;
    }
    return true;
}

//  How many answered chunks from `chunk` on, in the job's order, go in
//  one RESULTS: runs within one block go whole (sent without a copy when
//  they make up the block), small answers of different blocks are merged
//  up to MERGE_BYTES.
static size_t
s_run_length (job_t *self, chunk_t *chunk)
{
    size_t count = 1, bytes = chunk->out.size;
    uint32_t n = chunk->n;
    for (link_t *l = chunk->order.next; l != &self->chunks; l = l->next) {
        chunk_t *next = link_entry (l, chunk_t, order);
        chunk_t *prev = link_entry (l->prev, chunk_t, order);
        //  contiguous items only: an unordered job's list has gaps where
        //  chunks were delivered before their neighbours
        if (!next->done || next->first != prev->first + prev->n || n + next->n > DP_MAX_BATCH
        ||  (next->out.block != prev->out.block && bytes + next->out.size > MERGE_BYTES))
            break;
        count++;
        bytes += next->out.size;
        n += next->n;
    }
    return count;
}

//  Send the answered chunks from `chunk` on, up to the first unanswered
//  one, in as few RESULTS as s_run_length allows.
static bool
s_deliver_from (broker_t *broker, job_t *self, chunk_t *chunk)
{
    while (true) {
        size_t count = s_run_length (self, chunk);
        link_t *after = &chunk->order;
        for (size_t i = 0; i < count; i++)
            after = after->next;
        if (!s_send_run (broker, self, chunk, count))
            return false;
        if (after == &self->chunks || !link_entry (after, chunk_t, order)->done)
            return true;
        chunk = link_entry (after, chunk_t, order);
    }
}

//  Deliver what can be delivered (for an ordered job, the answered chunks
//  at the head of its order; for an unordered one, every answered chunk),
//  then finish the job if it is complete. The job may be gone on return.
//  Unordered jobs deliver at once, so the walk over all their chunks is
//  only taken on the rare paths (failures); jobs_result delivers runs.
static void
s_job_deliver (broker_t *broker, job_t *self)
{
    link_t *l = self->chunks.next;
    while (l != &self->chunks) {
        chunk_t *chunk = link_entry (l, chunk_t, order);
        if (!chunk->done) {
            if (self->ordered)
                break;
            l = l->next;
            continue;
        }
        //  the run ends before an unanswered chunk or at the list's end
        while (l != &self->chunks && link_entry (l, chunk_t, order)->done)
            l = l->next;
        if (!s_deliver_from (broker, self, chunk))
            return;         //  the client's pipe is full: retried later
    }
    s_job_finish_if_done (broker, &self);
}

//  Deliver the ordered jobs' answers that came since the last call (the
//  loop calls it after each read of the worker socket)
void
jobs_deliver (broker_t *broker)
{
    while (!link_empty (&broker->answers)) {
        job_t *job = link_entry (broker->answers.next, job_t, answers);
        link_remove (&job->answers);
        s_job_deliver (broker, job);        //  (may end the job)
    }
}

//  A chunk that runs on its worker leaves its job as an orphan (to be
//  aborted there, freed when its answer or its worker goes); a twin that
//  holds its items takes its place in the job's order. Returns the twin.
static chunk_t *
s_twin (chunk_t *chunk)
{
    job_t *job = chunk->job;
    chunk_t *twin = chunk_new (job, chunk->first, chunk->n);
    twin->in = chunk->in;               //  (its bytes count in the window until answered)
    chunk->in = (span_t) { 0 };
    link_insert_before (&chunk->order, &twin->order);
    link_remove (&chunk->order);
    chunk->job = NULL;
    job->inflight--;
    return twin;
}

//  Answer a chunk that runs on its worker with a failure now, and stop it
//  there: its running copy becomes an orphan (aborted, freed when its
//  answer or its worker goes), a twin that holds its items takes its place
//  in the job. The job may be gone on return.
void
job_chunk_fail (broker_t *broker, chunk_t *chunk, uint8_t status, const char *message)
{
    job_t *job = chunk->job;
    chunk_t *twin = s_twin (chunk);
    s_abort (broker, chunk);
    s_chunk_fail (twin, status, message);
    s_job_deliver (broker, job);
}

//  Deliver what a job can deliver now (a blocked client's retry). The job
//  may be gone on return.
void
job_deliver (broker_t *broker, job_t *job)
{
    s_job_deliver (broker, job);
}

//  Fail every unanswered item of a job with one status and message, in
//  order (cancellation, no worker for the task).
void
job_fail_all (broker_t *broker, job_t *self, uint8_t status, const char *message)
{
    aborts_t aborts = { NULL, 0, 0 };
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
            chunk_t *orphan = chunk;
            chunk = s_twin (orphan);
            s_aborts_add (broker, &aborts, orphan);
        }
        s_chunk_fail (chunk, status, message);
    }
    s_aborts_flush (broker, &aborts);
    link_remove (&self->ready);
    s_job_deliver (broker, self);
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
    &&  worker->inflight_count < worker_limit (worker))
        link_insert_before (broker->available.next, &worker->available);
}

//  Leave a running chunk's current run to its worker as an orphan (aborted
//  there), so the chunk itself is free to be answered by another run.
static void
s_orphan_running (broker_t *broker, chunk_t *chunk)
{
    chunk_t *ghost = chunk_new (NULL, chunk->first, chunk->n);
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

//  The chunk with this id among the worker's, or NULL. `hint` is where to
//  look first: chunks of one CHUNK sit one after the other.
static chunk_t *
s_inflight_find (worker_t *worker, uint64_t id, link_t *hint)
{
    if (hint != &worker->inflight && link_entry (hint, chunk_t, queue)->id == id)
        return link_entry (hint, chunk_t, queue);
    for (link_t *l = worker->inflight.next; l != &worker->inflight; l = l->next)
        if (link_entry (l, chunk_t, queue)->id == id)
            return link_entry (l, chunk_t, queue);
    return NULL;
}

//  One chunk of a RESULT has its answer (`out`, taken). Returns the chunk
//  that now holds it, or NULL if no job waits for it (an orphan's late
//  answer, freed here).
static chunk_t *
s_answered (broker_t *broker, chunk_t *chunk, span_t *out, uint64_t ns)
{
    s_unassign (broker, chunk);
    job_t *job = chunk->job;
    if (chunk->primary) {
        //  a backup copy won the race: its answer goes to the primary
        chunk_t *twin = chunk;
        chunk = twin->primary;
        chunk_destroy (&twin);
        if (chunk->worker)
            s_orphan_running (broker, chunk);
    }
    else
        s_drop_backup (broker, chunk);
    if (!job) {
        span_release (out);
        chunk_destroy (&chunk);
        return NULL;
    }
    span_release (&chunk->out);
    chunk->out = *out;
    chunk->ns = ns;
    chunk->done = true;
    return chunk;
}

//  A RESULT from a worker: answers for k chunks it holds (ids chunk ..
//  chunk + k - 1, n / k items each), all from one CHUNK. Unknown ids (late
//  answers to chunks that were requeued or cancelled) are dropped; a wrong
//  item count, or chunks of different jobs, is a broken worker, which is
//  dropped.
void
jobs_result (broker_t *broker, worker_t *worker, dp_msg_t *msg)
{
    uint32_t k = msg->k, per = msg->n / msg->k;
    if (k > worker->inflight_count) {
        guard_unknown_result (broker, worker, msg);
        return;
    }
    chunk_t *local [GROUP_MAX];
    chunk_t **found = k <= GROUP_MAX ? local : (chunk_t **) zmalloc (k * sizeof (chunk_t *));
    job_t *job = NULL;
    bool broken = false, any = false;
    link_t *hint = worker->inflight.next;
    for (uint32_t i = 0; i < k && !broken; i++) {
        found [i] = s_inflight_find (worker, msg->chunk + i, hint);
        if (!found [i])
            continue;
        hint = found [i]->queue.next;
        broken = found [i]->n != per || (job && found [i]->job && found [i]->job != job);
        job = job ? job : found [i]->job;
        any = true;
    }
    span_t whole = { NULL, 0, 0, 0, 0 };
    if (!broken && any && span_take (&whole, msg) != 0) {
        zsys_error ("dpool-broker: out of memory");     //  as zmalloc does
        abort ();
    }
    if (found != local && (broken || !any))
        free (found);
    if (broken) {
        //  the worker's fault, not its items': they go back uncharged
        char why [160];
        snprintf (why, sizeof why, "%u items for %u chunks from %llu, not as sent",
                  msg->n, k, (unsigned long long) msg->chunk);
        guard_protocol_error (broker, worker, why);
        return;
    }
    if (!any) {
        guard_unknown_result (broker, worker, msg);
        return;
    }
    uint64_t ns = msg->ns / k;
    worker->chunk_ns = worker->chunk_ns ? (worker->chunk_ns * 7 + ns) / 8 : ns + 1;
    worker->chunks_done += k;
    worker->last_result_ms = broker->now_ms;
    guard_answered (broker, worker);
    size_t offset = 0;
    uint32_t nfound = 0;
    for (uint32_t i = 0; i < k; i++) {
        span_t out;
        span_at (&out, &whole, i * per, offset, per);
        offset += out.size;
        if (!found [i])
            span_release (&out);
        else
        if ((found [nfound] = s_answered (broker, found [i], &out, ns)))
            nfound++;
    }
    span_release (&whole);
    if (job && nfound) {
        s_job_sample (job, msg->ns, per * k);
        if (job->ordered) {
            //  delivered once the loop has read the results waiting
            //  (jobs_deliver): with small chunks, one RESULTS then carries
            //  the answers of several workers, not one message per chunk
            if (link_empty (&job->answers))
                link_insert_before (&broker->answers, &job->answers);
        }
        else {
            //  deliver runs of what just came, each from its first chunk
            //  (one whose predecessor is not answered), then the job
            uint32_t starts = 0;
            for (uint32_t i = 0; i < nfound; i++) {
                link_t *prev = found [i]->order.prev;
                if (prev == &job->chunks || !link_entry (prev, chunk_t, order)->done)
                    found [starts++] = found [i];
            }
            bool delivered = true;
            for (uint32_t i = 0; i < starts && delivered; i++)
                delivered = s_deliver_from (broker, job, found [i]);
            if (delivered)
                s_job_finish_if_done (broker, &job);
        }
    }
    if (found != local)
        free (found);
}

//  A sub-range of a chunk as a new chunk sharing its items, placed before
//  it in the job's order list and before `queue_at` in its queue.
static chunk_t *
s_carve (chunk_t *chunk, uint32_t from, uint32_t count, link_t *queue_at)
{
    chunk_t *part = chunk_new (chunk->job, chunk->first + from, count);
    span_sub (&part->in, &chunk->in, from, count);
    link_insert_before (&chunk->order, &part->order);
    link_insert_before (queue_at, &part->queue);
    return part;
}

//  Split a chunk that killed a worker into two suspect halves, in place in
//  the job's order list and at the front of its queue, and free it.
static void
s_split (broker_t *broker, chunk_t *chunk)
{
    job_t *job = chunk->job;
    link_t *queue_at = job->pending.next;
    uint32_t half = chunk->n / 2;
    s_carve (chunk, 0, half, queue_at)->suspect = true;
    s_carve (chunk, half, chunk->n - half, queue_at)->suspect = true;
    chunk_destroy (&chunk);
    if (link_empty (&job->ready))
        link_insert_before (&broker->ready, &job->ready);
}

//  The chunk killed its worker: charge it (1 item) or split it.
static void
s_blame (broker_t *broker, chunk_t *chunk, const char *reason)
{
    job_t *job = chunk->job;
    if (chunk->n > 1)
        s_split (broker, chunk);
    else
    if (++chunk->attempts >= job->max_attempts) {
        char message [200];
        snprintf (message, sizeof message, "worker died: %s, %u attempts",
                  reason, chunk->attempts);
        s_chunk_fail (chunk, DP_ST_DIED, message);
        s_job_deliver (broker, job);
    }
    else {
        chunk->suspect = true;
        job_queue (broker, job, chunk, true);
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
            chunk_destroy (&chunk);   //  an orphan, or a backup copy: its primary runs on
        else
        if (reason && alone)
            s_blame (broker, chunk, reason);
        else {
            chunk->suspect |= reason != NULL;
            job_queue (broker, chunk->job, chunk, true);
        }
    }
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
        if (k > 0)
            s_carve (chunk, 0, k, at);
        culprit = s_carve (chunk, k, 1, at);
        if (k + 1 < chunk->n)
            s_carve (chunk, k + 1, chunk->n - k - 1, at);
        link_remove (&culprit->queue);
        chunk_destroy (&chunk);
    }
    culprit->attempts++;
    if (link_empty (&job->ready) && !link_empty (&job->pending))
        link_insert_before (&broker->ready, &job->ready);
    char message [200];
    if (death->code == DP_ST_TIMEOUT) {
        s_chunk_fail (culprit, DP_ST_TIMEOUT, death->reason);
        s_job_deliver (broker, job);       //  may end the job
    }
    else
    if (culprit->attempts >= job->max_attempts) {
        snprintf (message, sizeof message, "worker died: %s, %u attempts",
                  death->reason, culprit->attempts);
        s_chunk_fail (culprit, DP_ST_DIED, message);
        s_job_deliver (broker, job);       //  may end the job
    }
    else
        job_queue (broker, job, culprit, true);
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
            chunk_destroy (&chunk);
        else
        if (guilty)
            culprit = chunk;
        else
            job_queue (broker, chunk->job, chunk, true);
    }
    if (culprit)
        s_blame_item (broker, culprit, death);
}

//  A worker node that came within NODE_START_MS and has fewer of its
//  workers here than its slots is still starting them (a job whose task
//  no worker has yet waits for them, not only task_wait_ms)
#define NODE_START_MS 60000

static bool
s_nodes_starting (broker_t *broker)
{
    //  the young nodes' tokens and slots, then their workers counted
    size_t n = 0, cap = zhashx_size (broker->workers);
    struct { uint64_t token; uint32_t slots, have; } *young = NULL;
    for (worker_t *w = (worker_t *) zhashx_first (broker->workers); w;
         w = (worker_t *) zhashx_next (broker->workers)) {
        if (!w->is_node || !w->slots || !w->node || broker->now_ms - w->ready_ms >= NODE_START_MS)
            continue;
        if (!young && !(young = calloc (cap, sizeof *young)))
            return false;
        young [n].token = w->node;
        young [n++].slots = w->slots;
    }
    bool starting = false;
    if (n) {
        for (worker_t *w = (worker_t *) zhashx_first (broker->workers); w;
             w = (worker_t *) zhashx_next (broker->workers))
            for (size_t i = 0; i < n && !w->is_node; i++)
                if (young [i].token == w->node)
                    young [i].have++;
        for (size_t i = 0; i < n && !starting; i++)
            starting = young [i].have < young [i].slots;
    }
    free (young);
    return starting;
}

//  Fail jobs whose task no worker has: at once when the pool is local only
//  and every local worker has registered, else after task_wait_ms, while
//  no worker node is still starting its workers.
void
jobs_check_noworker (broker_t *broker)
{
    bool local_only = !broker->opts.workers && spawn_all_registered (broker);
    int starting = -1;              //  s_nodes_starting, found once when needed
    client_t *client = (client_t *) zhashx_first (broker->clients);
    while (client) {
        link_t *l = client->jobs.next;
        while (l != &client->jobs) {
            job_t *job = link_entry (l, job_t, by_client);
            l = l->next;
            if (broker_any_worker_has (broker, job->task))
                job->created_ms = broker->now_ms;   //  restart the wait
            else
            if (local_only
            ||  (broker->now_ms - job->created_ms >= broker->opts.task_wait_ms
                 && !(starting < 0 ? (starting = s_nodes_starting (broker)) : starting))) {
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
