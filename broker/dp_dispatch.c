/*  =========================================================================
    dp_dispatch - handing chunks to workers, and backup copies of stragglers

    Jobs with pending chunks sit in the broker's `ready` ring; workers with
    credit left in its `available` list. Dispatch takes one job's turn at a
    time (deficit round-robin by measured work time, weighted), gives the
    first free worker that has the task (an idle one first while the job's
    item time is not measured yet) the job's next chunk, or a group
    of its next chunks when they are tiny (one CHUNK, PROTOCOL.md rule 6),
    and keeps about QUEUE_NS of work queued at each worker. Near the end of a job, idle
    workers run backup copies of the chunks that straggling workers hold.
    =========================================================================
*/
#include "dp_broker_internal.h"
#include "dp_guard.h"

#include <string.h>

#define SPECULATE_MIN_MS 100

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
//  chunk, a worker with nothing in flight. A worker that frees credit goes
//  to the front of `available` (new workers join at the back): work goes to
//  the workers already running, whose caches are warm, and tiny chunks
//  gather in big groups on a few workers rather than thin ones on all 200.
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

//  The worker for a job's next chunk. A worker's queue depth comes from
//  its history (worker_limit): one that just ran another job's tiny items
//  would take a long queue of this job's chunks, which may be long ones,
//  while other workers idle (4 items of 1 s on 2 workers took 4 s after a
//  job of tiny items). So while the job's item time is not measured yet,
//  its chunk goes to an idle worker first, else to one with fewer than 2
//  chunks in flight (the depth of a worker with no measure), else waits
//  for one; measured jobs and suspects keep the first-free-worker rule.
static worker_t *
s_worker_for (broker_t *broker, job_t *job, chunk_t *chunk)
{
    if (chunk->suspect || job->nsamples >= 3)
        return s_find_worker (broker, job->task, chunk->suspect);
    worker_t *shallow = NULL;
    for (link_t *l = broker->available.next; l != &broker->available; l = l->next) {
        worker_t *worker = link_entry (l, worker_t, available);
        if (!zhashx_lookup (worker->tasks, job->task))
            continue;
        if (worker->inflight_count == 0)
            return worker;
        if (!shallow && worker->inflight_count < 2)
            shallow = worker;
    }
    //  a local worker still starting will be idle in a moment: the chunk
    //  waits for it rather than queue behind a running one (`dpool run -j2`
    //  of 3 jobs ran the 2nd after the 1st on one worker while the other
    //  was still starting, not beside it as GNU parallel does)
    for (int i = 0; shallow && i < broker->nlocal; i++)
        if (!broker->local [i])
            return NULL;
    return shallow;
}

//  Does the chunk avoid the worker's node (BATCH.avoid: a retry of items
//  that failed there)?
static bool
s_avoids (const chunk_t *chunk, const worker_t *worker)
{
    for (uint32_t i = 0; i < chunk->navoid; i++)
        if (worker->tag && chunk->avoid [i] == worker->tag)
            return true;
    return false;
}

//  Is there a worker for the chunk's task on a node it does not avoid,
//  free or busy (not gone, not benched)? O(workers): asked only for
//  chunks that avoid some node, which are rare (retries).
static bool
s_elsewhere (broker_t *broker, chunk_t *chunk)
{
    for (worker_t *w = (worker_t *) zhashx_first (broker->workers); w;
         w = (worker_t *) zhashx_next (broker->workers))
        if (!w->is_node && !w->gone && !w->benched && !s_avoids (chunk, w)
        &&  zhashx_lookup (w->tasks, chunk->job->task))
            return true;
    return false;
}

//  A free worker for a chunk that avoids some nodes: the first with credit
//  and the task, not on those nodes (an idle one for a suspect), or NULL.
static worker_t *
s_worker_avoiding (broker_t *broker, chunk_t *chunk)
{
    for (link_t *l = broker->available.next; l != &broker->available; l = l->next) {
        worker_t *worker = link_entry (l, worker_t, available);
        if ((!chunk->suspect || worker->inflight_count == 0) && !s_avoids (chunk, worker)
        &&  zhashx_lookup (worker->tasks, chunk->job->task))
            return worker;
    }
    return NULL;
}

#define AVOID_SCAN  64          //  pending chunks looked at past waiting retries

//  The job's chunk to send next, and its worker in *worker_p (NULL: none
//  free). The head of the job's queue, unless it is a retry that avoids
//  the nodes where its items failed (GNU parallel's --retries: "on another
//  computer on which it has not failed") and no free worker is elsewhere
//  while a busy one is: it then waits for that one, and the chunks behind
//  it go first. Where every worker with the task is on an avoided node,
//  the retry runs on any (as GNU parallel re-uses all computers).
static chunk_t *
s_next_chunk (broker_t *broker, job_t *job, worker_t **worker_p)
{
    chunk_t *head = link_entry (job->pending.next, chunk_t, queue);
    int scanned = 0;
    for (link_t *l = job->pending.next; l != &job->pending && scanned < AVOID_SCAN;
         l = l->next, scanned++) {
        chunk_t *chunk = link_entry (l, chunk_t, queue);
        if (!chunk->navoid) {
            *worker_p = s_worker_for (broker, job, chunk);
            return chunk;
        }
        worker_t *worker = s_worker_avoiding (broker, chunk);
        if (worker) {
            *worker_p = worker;
            return chunk;
        }
        if (!s_elsewhere (broker, chunk)) {
            *worker_p = s_worker_for (broker, job, chunk);
            return chunk;
        }
    }
    *worker_p = NULL;
    return head;
}

//  How many chunks to keep in flight at a worker: enough queued work to
//  cover a round trip (QUEUE_NS) however small its chunks are, but no more
//  than two long chunks, so a long task never holds work others could run;
//  never more than the worker's credit.
uint32_t
worker_limit (worker_t *worker)
{
    uint64_t limit = worker->chunk_ns ? 1 + QUEUE_NS / worker->chunk_ns : 2;
    limit = limit < 2 ? 2 : limit;
    return limit < worker->credit ? (uint32_t) limit : worker->credit;
}

//  How many of the job's pending chunks, from the head of its queue, go
//  to the worker in one CHUNK. Several only when the job's chunks are
//  known to run in well under QUEUE_NS (from the median item time of the
//  job, not the worker's history: a job's first items may be long where
//  the last job's were short); the group then takes at most half of
//  that. Only alike chunks (same item count, not suspects) whose
//  items are small enough to copy; at most half the worker's limit, so
//  it has the next CHUNK queued while it runs one; and within the job's
//  turn if other jobs wait. A RESULT then answers the whole group, and
//  the client gets it as one RESULTS: one message per hop for many tiny
//  chunks, each still dispatched, timed, retried and blamed on its own.
static uint32_t
s_group_size (broker_t *broker, worker_t *worker, job_t *job, chunk_t *first)
{
    uint64_t chunk_ns = (uint64_t) job->median_us * 1000 * first->n;
    if (first->suspect || first->navoid || job->nsamples < 3 || chunk_ns > QUEUE_NS / 4)
        return 1;
    //  a worker that has answered nothing yet has no measure of its own:
    //  the job's stands in, so a fresh worker gets groups at once
    uint32_t limit = worker_limit (worker);
    if (!worker->chunk_ns)
        limit = 1 + QUEUE_NS / chunk_ns < worker->credit
              ? (uint32_t) (1 + QUEUE_NS / chunk_ns) : worker->credit;
    uint64_t room = limit > worker->inflight_count ? limit - worker->inflight_count : 1;
    uint64_t most = limit / 2 < room ? limit / 2 : room;
    if (most > QUEUE_NS / 2 / chunk_ns)
        most = QUEUE_NS / 2 / chunk_ns;
    if (!link_empty (&broker->ready) && most > (uint64_t) job->deficit_ns / chunk_ns + 1)
        most = (uint64_t) job->deficit_ns / chunk_ns + 1;      //  within its turn
    if (most > GROUP_MAX)
        most = GROUP_MAX;
    uint32_t count = 1;
    size_t bytes = first->in.size;
    for (link_t *l = first->queue.next; l != &job->pending && count < most; l = l->next) {
        chunk_t *c = link_entry (l, chunk_t, queue);
        if (c->suspect || c->navoid || c->n != first->n || bytes + c->in.size > MERGE_BYTES
        ||  (uint64_t) first->n * (count + 1) > DP_MAX_BATCH)
            break;
        bytes += c->in.size;
        count++;
    }
    return count;
}

//  Send `k` chunks, `first` and the ones after it in its queue, to a worker
//  in one CHUNK (ids consecutive). Returns 0, or -1 if the worker is
//  unreachable (the chunks are then back at the front of their job's queue).
static int
s_dispatch (broker_t *broker, worker_t *worker, chunk_t *first, uint32_t k)
{
    job_t *job = first->job;
    chunk_t *chunks [GROUP_MAX];
    span_t *spans [GROUP_MAX];
    chunk_t *c = first;
    for (uint32_t i = 0; i < k; i++) {
        chunks [i] = c;
        spans [i] = &c->in;
        c = link_entry (c->queue.next, chunk_t, queue);
    }
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_CHUNK);
    msg.chunk = broker->next_chunk_id + 1;
    msg.k = k;
    msg.timeout = s_job_timeout (job);
    msg.parts = job->parts;
    memcpy (msg.task, job->task, sizeof msg.task);
    if (span_gather (spans, k, &msg, false) != 0) {
        zsys_error ("dpool-broker: out of memory");     //  as zmalloc does
        abort ();
    }
    for (uint32_t i = 0; i < k; i++)
        link_remove (&chunks [i]->queue);
    if (broker_send_worker (broker, worker, &msg) != 0) {
        for (uint32_t i = k; i-- > 0; )
            if (!chunks [i]->primary)
                job_queue (broker, job, chunks [i], true);
        return -1;
    }
    broker->next_chunk_id += k;
    guard_sent (worker, msg.chunk, k);
    for (uint32_t i = 0; i < k; i++) {
        c = chunks [i];
        c->id = msg.chunk + i;
        c->worker = worker;
        c->dispatched_ms = broker->now_ms;
        c->timeout_ms = msg.timeout;
        link_insert_before (&worker->inflight, &c->queue);
    }
    job->inflight += k;
    worker->inflight_count += k;
    if (worker->inflight_count >= worker_limit (worker) || first->suspect)
        link_remove (&worker->available);
    return 0;
}

//  What a chunk of the job is expected to cost a worker: its items times
//  the job's median item time; a job not measured yet pays a whole turn
//  for each chunk (one chunk a turn, as a plain round-robin would give).
static int64_t
s_chunk_cost (job_t *job, chunk_t *chunk)
{
    if (job->nsamples < 3)
        return QUANTUM_NS;
    return (int64_t) job->median_us * 1000 * chunk->n;
}

#define DEBT_MAX    (100 * (int64_t) QUANTUM_NS)    //  most a job can run ahead

//  Hand out pending chunks while there are workers with credit. Jobs share
//  the workers by time, not by chunk (deficit round-robin): in its turn a
//  job dispatches chunks worth up to weight x QUANTUM_NS of measured work,
//  so a job of 50 ms items beside one of 1 ms items gets the same worker
//  time, not fifty times as much; a long chunk puts its job behind by what
//  it costs, paid back over the next turns. Stops when a full turn of the
//  ready ring dispatched nothing (the remaining jobs' tasks have no free
//  worker).
void
jobs_dispatch (broker_t *broker)
{
    size_t idle_turns = 0;
    while (!link_empty (&broker->ready) && !link_empty (&broker->available)) {
        //  in turn, but a job with fewer chunks running (and share left)
        //  goes before the next one: a small job that arrives beside a
        //  big one takes the slots the big one frees until both run alike
        job_t *job = link_entry (broker->ready.next, job_t, ready);
        if (broker->ready.next->next != &broker->ready) {
            job_t *second = link_entry (broker->ready.next->next, job_t, ready);
            if (second->inflight < job->inflight && second->deficit_ns > 0)
                job = second;
        }
        link_remove (&job->ready);
        if (job->deficit_ns <= 0)           //  a new turn: a new share
            job->deficit_ns += (int64_t) QUANTUM_NS * job->weight;
        if (job->deficit_ns <= 0) {
            //  still paying for a long chunk: the next job
            link_insert_before (&broker->ready, &job->ready);
            idle_turns = 0;                 //  progress: it gets there
            continue;
        }
        worker_t *worker;
        chunk_t *chunk = s_next_chunk (broker, job, &worker);
        uint32_t k = worker ? s_group_size (broker, worker, job, chunk) : 0;
        if (worker) {
            job->deficit_ns -= s_chunk_cost (job, chunk) * k;
            job->deficit_ns = job->deficit_ns < -DEBT_MAX ? -DEBT_MAX : job->deficit_ns;
            if (s_dispatch (broker, worker, chunk, k) != 0) {
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
            //  it keeps its turn while it has share left
            if (worker && job->deficit_ns > 0)
                link_insert_before (broker->ready.next, &job->ready);
            else
                link_insert_before (&broker->ready, &job->ready);
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
//  Speculation: backup copies of stragglers

//  How long a chunk of this job may run before a backup copy is worth it:
//  four times its expected time from the median item time, at least
//  SPECULATE_MIN_MS. Without 3 measured items there is nothing to compare
//  with, so no chunk is a straggler (-1).
static int64_t
s_straggler_ms (job_t *job, chunk_t *chunk)
{
    if (job->nsamples < 3)
        return -1;
    int64_t expect = (int64_t) job->median_us * chunk->n / 1000;
    return expect * 4 > SPECULATE_MIN_MS ? expect * 4 : SPECULATE_MIN_MS;
}

//  How long the worker's head chunk has been running: since it was sent,
//  or since the worker's last RESULT if that came later (until then it
//  waited in the worker's queue behind the chunk answered, and a queued
//  chunk is not a slow one).
static int64_t
s_running_ms (broker_t *broker, worker_t *worker, chunk_t *head)
{
    int64_t since = head->dispatched_ms > worker->last_result_ms
                  ? head->dispatched_ms : worker->last_result_ms;
    return broker->now_ms - since;
}

//  Is the chunk a candidate for a backup copy?
static bool
s_speculable (broker_t *broker, chunk_t *c)
{
    job_t *job = c->job;
    return job && !job->no_spec && !c->primary && !c->backup && job->ended
        && link_empty (&job->pending);
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
    if (!head->job)
        return NULL;
    int64_t limit = s_straggler_ms (head->job, head);
    if (limit < 0 || s_running_ms (broker, worker, head) <= limit)
        return NULL;
    for (link_t *l = worker->inflight.prev; l != &worker->inflight; l = l->prev) {
        chunk_t *c = link_entry (l, chunk_t, queue);
        if (s_speculable (broker, c))
            return c;
    }
    return NULL;
}

//  Run a backup copy of a chunk (in flight, with a job) on another worker
//  that has credit for its task, an idle one if `idle_only`: the first
//  answer of either copy wins, the other is aborted. Returns the worker it
//  went to, or NULL (none free, or unreachable).
worker_t *
jobs_backup (broker_t *broker, chunk_t *chunk, bool idle_only)
{
    worker_t *to = s_find_worker (broker, chunk->job->task, idle_only);
    if (!to || to == chunk->worker)
        return NULL;
    chunk_t *twin = chunk_new (chunk->job, chunk->first, chunk->n);
    span_copy (&twin->in, &chunk->in);
    twin->primary = chunk;
    chunk->backup = twin;
    twin->suspect = true;       //  alone on its worker, like a suspect
    if (s_dispatch (broker, to, twin, 1) != 0) {
        link_remove (&twin->queue);
        chunk_destroy (&twin);
        return NULL;
    }
    chunk->job->backups++;
    return to;
}

//  Near the end of a job (all its items in, none waiting), idle workers run
//  backup copies of the chunks held by straggling workers, as MapReduce's
//  backup tasks: the first answer wins, the other run is aborted, and the
//  client never sees two. Runs on the timer: O(workers x credit) per tick.
//  --timeout N% (JOB.tpct): a chunk that went out before the job's median
//  item time was known carries no timeout of its own, so once it is known,
//  a head chunk that has run past N% of it (per item) is answered "timed
//  out" here and stopped on its worker, as GNU parallel kills a running
//  job that passes the limit (its tutorial's `--timeout 200%` line)
void
jobs_overrun (broker_t *broker)
{
    for (worker_t *w = (worker_t *) zhashx_first (broker->workers); w;
         w = (worker_t *) zhashx_next (broker->workers)) {
        if (link_empty (&w->inflight))
            continue;
        chunk_t *head = link_entry (w->inflight.next, chunk_t, queue);
        job_t *job = head->job;
        if (!job || !job->tpct || job->timeout_ms || head->timeout_ms || head->backup
        ||  head->primary)
            continue;
        uint32_t per = s_job_timeout (job);
        int64_t ran = s_running_ms (broker, w, head);
        if (!per || ran <= (int64_t) per * head->n)
            continue;
        char why [128];
        snprintf (why, sizeof why, "timed out after %.1f s (--timeout %u%% of the median item "
                  "time, %.3f s)", (double) ran / 1000, job->tpct, (double) job->median_us / 1e6);
        job_chunk_fail (broker, head, DP_ST_TIMEOUT, why);
    }
}

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
            int64_t age = head ? s_running_ms (broker, worker, head) : 0;
            if (c && age > best_age) {
                best = c;
                best_age = age;
            }
        }
        if (!best)
            return;
        worker_t *idle = jobs_backup (broker, best, true);
        if (!idle)
            return;
        if (broker->opts.verbose)
            zsys_info ("dpool-broker: job %u: backup copy of items %llu..%llu on worker %s "
                       "(worker %s straggling for %lld ms)", best->job->id,
                       (unsigned long long) best->first,
                       (unsigned long long) (best->first + best->n - 1), idle->key,
                       best->worker->key, (long long) best_age);
    }
}
