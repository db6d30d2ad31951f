/*  =========================================================================
    dp_executor - runs a worker's chunks: their items, timing and results

    A CHUNK's items run in order through the task registry into a result
    batch, which becomes the RESULT (dp_worker_internal.h has the whole
    picture). Chunks run on the executor thread, handed over by the main
    thread through an inproc PAIR socket, or, when the executor is idle and
    the task's recent pace says the chunk is very short, inline on the main
    thread while the watchdog thread heartbeats for it. Items of an aborted
    chunk are answered as cancelled; a chunk whose session ended is
    dropped.
    =========================================================================
*/
#include "dp_worker_internal.h"
#include "dp_exec.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define S_STOP_GRACE_MS 250         //  wait for the executor on exit
#define INLINE_MAX_NS   200000      //  chunks expected shorter run on the main thread


//  --------------------------------------------------------------------------
//  Running a chunk (either thread)

//  Answer every item of a chunk with NOWORKER: this worker lacks its task.

static int
s_fail_chunk (dp_msg_t *chunk, dp_batch_t *batch)
{
    char msg [DP_MAX_NAME + 64];
    int len = snprintf (msg, sizeof msg, "worker has no task '%s'", chunk->task);
    for (uint32_t i = 0; i < chunk->n; i++) {
        size_t start = batch->size;
        void *dest = dp_batch_reserve (batch, (size_t) len);
        if (!dest)
            return -1;
        memcpy (dest, msg, (size_t) len);
        if (dp_batch_commit (batch, start, DP_ST_NOWORKER))
            return -1;
    }
    return 0;
}

//  Did the broker abort this chunk?

static bool
s_aborted (wk_worker_t *self, uint64_t chunk)
{
    for (int i = 0; i < 4; i++)
        if (dp_abort_has (&self->abort_chunk [i], &self->abort_count [i], chunk))
            return true;
    return false;
}

//  Answer `count` items as cancelled.
static void
s_cancel_items (uint32_t count, dp_batch_t *batch)
{
    for (uint32_t i = 0; i < count; i++) {
        size_t start = batch->size;
        void *dest = dp_batch_reserve (batch, 7);
        if (dest)
            memcpy (dest, "aborted", 7);
        else
            dp_batch_set_size (batch, start);
        dp_batch_commit (batch, start, DP_ST_CANCELLED);
    }
}

//  --------------------------------------------------------------------------
//  Output streams (dp_exec_stream_t for the executor thread)

static void
s_stream_wake (wk_worker_t *self)
{
    uint64_t one = 1;
    if (self->stream.wake >= 0 && write (self->stream.wake, &one, sizeof one) < 0) {
        //  the counter is full: the executor is woken anyway
    }
}

//  Executor: hand a part to the main thread, which sends it.
static int
s_part_send (void *arg, int fd, const void *data, size_t len)
{
    wk_worker_t *self = (wk_worker_t *) arg;
    wk_part_t *part = (wk_part_t *) malloc (sizeof *part);
    if (!part)
        return -1;
    dp_msg_init (&part->msg, DP_CMD_WPART);
    part->msg.chunk = atomic_load (&self->stream.chunk);
    part->msg.item = atomic_load (&self->stream.item);
    part->msg.seq = atomic_load (&self->stream.sent);
    part->msg.fd = (uint32_t) fd;
    part->gen = self->stream.gen;
    if (zmq_msg_init_size (&part->msg.frame [0], len)) {
        free (part);
        return -1;
    }
    memcpy (zmq_msg_data (&part->msg.frame [0]), data, len);
    part->msg.nframes = 1;
    //  counted before it leaves: its WACK may come back before this
    //  thread runs again, and is only taken for a part counted as sent
    atomic_fetch_add (&self->stream.sent, 1);
    void *record [2] = { NULL, part };
    while (zmq_send (self->exec_pipe, record, sizeof record, 0) < 0) {
        if (errno != EINTR) {
            atomic_fetch_sub (&self->stream.sent, 1);
            dp_msg_reset (&part->msg);
            free (part);
            return -1;
        }
    }
    return 0;
}

static bool
s_part_room (void *arg)
{
    wk_worker_t *self = (wk_worker_t *) arg;
    return atomic_load (&self->stream.sent) - atomic_load (&self->stream.acked) < DP_PART_WINDOW;
}

static bool
s_part_drained (void *arg)
{
    wk_worker_t *self = (wk_worker_t *) arg;
    return atomic_load (&self->stream.acked) >= atomic_load (&self->stream.sent);
}

static bool
s_part_cut (void *arg)
{
    wk_worker_t *self = (wk_worker_t *) arg;
    return atomic_load (&self->stream.cut);
}

//  Executor: the item `at` of chunk `id` may stream from now on.
static void
s_stream_open (wk_worker_t *self, wk_work_t *work, uint64_t id, uint32_t at)
{
    wk_stream_t *st = &self->stream;
    //  acks for the last one are ignored from now on (a wake-up it left
    //  in the eventfd costs the next item one spare loop, no syscall here)
    atomic_store (&st->chunk, 0);
    atomic_store (&st->sent, 0);
    atomic_store (&st->acked, 0);
    atomic_store (&st->cut, work->gen != atomic_load (&self->gen));
    st->gen = work->gen;
    atomic_store (&st->item, at);
    atomic_store (&st->chunk, id);
}

//  Main thread: a WACK moves the running stream's acknowledged count.
void
wk_stream_ack (wk_worker_t *self, const dp_msg_t *msg)
{
    wk_stream_t *st = &self->stream;
    if (msg->chunk == 0 || msg->chunk != atomic_load (&st->chunk)
    ||  msg->item != atomic_load (&st->item))
        return;                         //  a stream that has ended
    uint64_t acked = atomic_load (&st->acked);
    if (msg->seq > acked && msg->seq <= atomic_load (&st->sent)) {
        atomic_store (&st->acked, msg->seq);
        s_stream_wake (self);
    }
}

//  Main thread: cut the stream (all with k 0, else if its chunk is one of
//  chunk .. chunk + k - 1).
void
wk_stream_cut (wk_worker_t *self, uint64_t chunk, uint32_t k)
{
    wk_stream_t *st = &self->stream;
    uint64_t id = atomic_load (&st->chunk);
    if (id == 0 || (k && (id < chunk || id - chunk >= k)))
        return;
    atomic_store (&st->cut, true);
    s_stream_wake (self);
}

//  Run the items of a CHUNK in order into batch: its k chunks one after
//  the other (ids chunk, chunk + 1, ...; n / k items each), each under its
//  own id on the progress page and for ABORT. Returns 0, or -1 if the
//  chunk went stale (its session ended) before it was done.
static int
s_run_items (wk_worker_t *self, wk_work_t *work, dp_task_fn *fn, dp_batch_t *batch,
             bool stream)
{
    static const dp_exec_stream_t ops_proto = {
        s_part_send, s_part_room, s_part_drained, s_part_cut, -1, NULL
    };
    dp_exec_stream_t ops = ops_proto;
    ops.wake_fd = self->stream.wake;
    ops.arg = self;
    stream = stream && work->chunk.parts && self->stream.wake >= 0;
    dp_msg_t *chunk = &work->chunk;
    if (chunk->n == 0)
        return 0;
    const uint8_t *data = dp_msg_data (chunk);
    //  Results are often as big as items: size the buffer once
    if (dp_batch_reserve (batch, zmq_msg_size (&chunk->frame [1])))
        dp_batch_set_size (batch, 0);
    size_t offset = 0;
    dp_progress_page_t *p = self->progress;
    if (p)
        atomic_store_explicit (&p->timeout_ms, chunk->timeout, memory_order_relaxed);
    uint32_t per = chunk->n / chunk->k;
    int rc = 0;
    for (uint32_t i = 0; i < chunk->n && rc == 0; i++) {
        uint32_t at = i % per;              //  item within its chunk
        uint64_t id = chunk->chunk + i / per;
        if (at == 0 && p)
            atomic_store_explicit (&p->chunk, id, memory_order_relaxed);
        if (atomic_load_explicit (&self->gen, memory_order_relaxed) != work->gen) {
            rc = -1;
            break;
        }
        if (s_aborted (self, id)) {
            //  aborted by the broker: answer the rest of this chunk as
            //  cancelled, so the RESULT still comes and gives the broker
            //  its credit back
            uint32_t rest = per - at;
            s_cancel_items (rest, batch);
            for (uint32_t j = 0; j < rest; j++)
                offset += dp_msg_len (chunk, i + j);
            i += rest - 1;
            continue;
        }
        uint32_t len = dp_msg_len (chunk, i);
        if (p) {
            //  what we are running, for our supervisor (exact blame, timeouts)
            if (chunk->timeout)
                atomic_store_explicit (&p->started_ns, (int64_t) wk_now_ns (), memory_order_relaxed);
            atomic_store_explicit (&p->item, at, memory_order_release);
        }
        if (stream) {
            s_stream_open (self, work, id, at);
            dp_exec_stream_set (&ops);
        }
        dp_task_run (fn, data + offset, len, batch);
        if (stream) {
            dp_exec_stream_set (NULL);
            atomic_store (&self->stream.chunk, 0);
        }
        offset += len;
    }
    if (p) {
        atomic_store_explicit (&p->item, DP_PROGRESS_NONE, memory_order_release);
        atomic_store_explicit (&p->chunk, 0, memory_order_relaxed);
        atomic_fetch_add_explicit (&p->items_done, chunk->n, memory_order_relaxed);
    }
    return rc;
}

//  Remember a task's recent time per item (racy between the two threads on
//  purpose: it is only a hint for where to run the next chunk).
static void
s_pace_record (wk_worker_t *self, dp_task_fn *fn, uint64_t ns)
{
    for (int i = 0; i < 16; i++)
        if (self->pace [i].fn == fn || !self->pace [i].fn) {
            self->pace [i].fn = fn;
            self->pace [i].ns = self->pace [i].ns ? (self->pace [i].ns * 3 + ns) / 4 : ns;
            return;
        }
}

//  Expected time of a chunk, or UINT64_MAX when its task was never timed.
static uint64_t
s_pace_expect (wk_worker_t *self, dp_task_fn *fn, uint32_t n)
{
    for (int i = 0; i < 16 && self->pace [i].fn; i++)
        if (self->pace [i].fn == fn)
            return self->pace [i].ns * n;
    return UINT64_MAX;
}

//  Run one chunk and build its RESULT in work->result (work->ran).

static void
s_run_chunk (wk_worker_t *self, wk_work_t *work, dp_batch_t *batch, bool stream)
{
    dp_msg_t *chunk = &work->chunk;
    dp_task_fn *fn = dp_registry_find (self->registry, chunk->task);
    uint64_t start = wk_now_ns ();
    int rc = fn ? s_run_items (self, work, fn, batch, stream) : s_fail_chunk (chunk, batch);
    uint64_t ns = wk_now_ns () - start;
    if (fn && rc == 0 && chunk->n)
        s_pace_record (self, fn, ns / chunk->n + 1);
    if (rc) {
        if (fn) {                       //  stale: forget what it produced
            dp_batch_clear (batch);
            dp_batch_init (batch);
            return;
        }
        fprintf (stderr, "dpool-worker: out of memory building a result\n");
        abort ();
    }
    dp_msg_init (&work->result, DP_CMD_RESULT);
    work->result.chunk = chunk->chunk;
    work->result.k = chunk->k;
    work->result.ns = ns;
    if (dp_batch_attach (batch, &work->result, true)) {
        //  The broker re-runs the chunk elsewhere once this process is gone
        fprintf (stderr, "dpool-worker: out of memory sending a result\n");
        abort ();
    }
    work->ran = true;
}

//  --------------------------------------------------------------------------
//  Executor thread

//  The executor: run each record that arrives, send it back; a NULL
//  record means stop.

static void *
s_executor (void *arg)
{
    wk_worker_t *self = (wk_worker_t *) arg;
    dp_batch_t batch;
    dp_batch_init (&batch);
    while (true) {
        wk_work_t *work;
        int rc = zmq_recv (self->exec_pipe, &work, sizeof work, 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc != (int) sizeof work || !work)
            break;
        if (work->gen == atomic_load (&self->gen))
            s_run_chunk (self, work, &batch, true);
        while (zmq_send (self->exec_pipe, &work, sizeof work, 0) < 0 && errno == EINTR)
            ;
    }
    dp_batch_clear (&batch);
    zmq_close (self->exec_pipe);
    return NULL;
}

//  Start a thread with SIGTERM/SIGINT blocked, so the signals reach the
//  main thread's poll. Returns 0 or -1.

static int
s_thread_start (pthread_t *thread, void *(*fn) (void *), void *arg)
{
    sigset_t block, old;
    sigemptyset (&block);
    sigaddset (&block, SIGTERM);
    sigaddset (&block, SIGINT);
    pthread_sigmask (SIG_BLOCK, &block, &old);
    int rc = pthread_create (thread, NULL, fn, arg);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    return rc ? -1 : 0;
}

//  Create the PAIR pipe and start the executor. Returns 0 or -1.

int
wk_executor_start (wk_worker_t *self)
{
    //  without it, items run with no stream (their output is bounded)
    self->stream.wake = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    snprintf (self->inproc, sizeof self->inproc, "inproc://dpool-executor-%p", (void *) self);
    self->pipe = zmq_socket (self->ctx, ZMQ_PAIR);
    self->exec_pipe = zmq_socket (self->ctx, ZMQ_PAIR);
    if (!self->pipe || !self->exec_pipe
    ||  zmq_bind (self->pipe, self->inproc) || zmq_connect (self->exec_pipe, self->inproc))
        return -1;
    if (s_thread_start (&self->executor, s_executor, self))
        return -1;
    self->executor_started = true;
    return 0;
}


//  Stop the executor: ask it to stop and take its records back for up to
//  S_STOP_GRACE_MS. Returns 0 if it stopped (joined), -1 if it is still
//  running a task (the process is about to exit anyway).

int
wk_executor_stop (wk_worker_t *self)
{
    atomic_fetch_add (&self->gen, 1);       //  skip whatever is queued
    wk_stream_cut (self, 0, 0);
    dp_task_kill_child (SIGTERM);
    wk_work_t *stop = NULL;
    if (zmq_send (self->pipe, &stop, sizeof stop, 0) != (int) sizeof stop)
        return -1;
    int64_t deadline = wk_now_ms () + S_STOP_GRACE_MS;
    while (self->outstanding > 0 && wk_now_ms () < deadline) {
        zmq_pollitem_t item = { self->pipe, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 50) > 0)
            wk_from_executor (self);
    }
    if (self->outstanding > 0)
        return -1;
    pthread_join (self->executor, NULL);
    self->executor_started = false;
    return 0;
}

//  --------------------------------------------------------------------------
//  Inline runs and their watchdog

//  The watchdog: twice per heartbeat interval, if the main thread is
//  running a chunk (and so neither polls nor sends), send the HEARTBEAT
//  it would have sent. The lock keeps the main thread off the socket
//  meanwhile. A failed send is left for the main thread to find on its
//  next send.

static void *
s_watchdog (void *arg)
{
    wk_worker_t *self = (wk_worker_t *) arg;
    pthread_mutex_lock (&self->inline_lock);
    while (!self->watchdog_stop) {
        int64_t now = wk_now_ms ();
        //  the main thread runs a chunk and does not turn its loop: the
        //  sign of life for our supervisor is ours to give
        if (self->inline_running && self->progress)
            atomic_store_explicit (&self->progress->alive_ns, (int64_t) wk_now_ns (),
                                   memory_order_relaxed);
        if (self->inline_running && self->broker && now - self->last_sent >= self->hb_ms / 2) {
            dp_msg_t msg;
            dp_msg_init (&msg, DP_CMD_HEARTBEAT);
            if (dp_msg_send (&msg, self->broker, NULL) == 0)
                self->last_sent = now;
            dp_msg_reset (&msg);
        }
        struct timespec until;
        clock_gettime (CLOCK_MONOTONIC, &until);
        uint64_t ns = (uint64_t) until.tv_nsec + (uint64_t) (self->hb_ms / 2 + 1) * 1000000;
        until.tv_sec += (time_t) (ns / 1000000000);
        until.tv_nsec = (long) (ns % 1000000000);
        pthread_cond_timedwait (&self->inline_cond, &self->inline_lock, &until);
    }
    pthread_mutex_unlock (&self->inline_lock);
    return NULL;
}

//  Start the watchdog (signals blocked, as for the executor). Returns 0 or -1.

int
wk_watchdog_start (wk_worker_t *self)
{
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init (&self->inline_cond, &attr);
    pthread_condattr_destroy (&attr);
    if (rc || pthread_mutex_init (&self->inline_lock, NULL))
        return -1;
    if (s_thread_start (&self->watchdog, s_watchdog, self))
        return -1;
    self->watchdog_started = true;
    return 0;
}

void
wk_watchdog_stop (wk_worker_t *self)
{
    if (!self->watchdog_started)
        return;
    pthread_mutex_lock (&self->inline_lock);
    self->watchdog_stop = true;
    pthread_cond_signal (&self->inline_cond);
    pthread_mutex_unlock (&self->inline_lock);
    pthread_join (self->watchdog, NULL);
    pthread_cond_destroy (&self->inline_cond);
    pthread_mutex_destroy (&self->inline_lock);
    self->watchdog_started = false;
}

//  A short chunk of a task already timed, with the executor idle, runs
//  here: no hand-over, no thread wake-ups. Should it run long after
//  all, the watchdog heartbeats meanwhile. Anything else goes to the
//  executor.

bool
wk_run_inline (wk_worker_t *self, wk_work_t *work)
{
    dp_task_fn *fn = dp_registry_find (self->registry, work->chunk.task);
    if (self->outstanding == 0 && fn && self->watchdog_started && !work->chunk.parts
    &&  s_pace_expect (self, fn, work->chunk.n) < INLINE_MAX_NS) {
        pthread_mutex_lock (&self->inline_lock);
        self->inline_running = true;
        pthread_mutex_unlock (&self->inline_lock);
        s_run_chunk (self, work, &self->inline_batch, false);
        pthread_mutex_lock (&self->inline_lock);
        self->inline_running = false;
        pthread_mutex_unlock (&self->inline_lock);
        return true;
    }
    return false;
}
