/*  =========================================================================
    dp_worker - one dpool worker process: connects to a broker, runs chunks

    Three threads. The main thread owns the DEALER socket to the broker.
    The executor thread runs chunks. The main thread itself runs a chunk
    only when the executor is idle and the chunk is expected to be very
    short (INLINE_MAX_NS, from the task's recent pace): no hand-over then.
    A guess can be wrong (3,000 items of 1 us, then one of 5 s), so while
    the main thread runs a chunk the watchdog thread takes the socket over
    (under inline_lock: ZeroMQ sockets may move between threads with a
    full memory barrier) and sends the HEARTBEATs: a worker heartbeats
    while any item runs, however long. They talk over an inproc PAIR socket by
    passing pointers to work records: the main thread receives a CHUNK into
    a record and sends the record's address to the executor, which runs the
    items into a result batch, attaches the batch to the record's RESULT
    (the buffers move into zmq frames, no copy) and sends the address back.
    Records are recycled through a free list owned by the main thread, so
    nothing is allocated per item and only a few buffers per chunk.

    Broker sessions are numbered (`gen`). A chunk carries the number of the
    session it came on; when the session ends (broker silent, BYE, ERROR
    ENOTREADY after a broker restart) the number moves on, the executor
    skips the stale chunks still queued to it (even in the middle of a
    chunk), and their results are dropped: the broker has already given
    those items back to its queue, and a restarted broker may reuse the
    chunk ids.

    Liveness follows PROTOCOL.md (Paranoid Pirate): the worker sends a
    HEARTBEAT when it has sent nothing for its own interval; the broker is
    dead after 3 of its intervals without a message. A remote worker then
    opens a new socket after a capped, jittered exponential backoff; a
    local one (started by a broker) exits.
    =========================================================================
*/
#include "dp_worker.h"
#include "dp_task_internal.h"
#include "dp_exec.h"
#include "dp_progress.h"
#include "dp_wake.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define S_POLL_MAX_MS   100         //  longest wait before checking signals
#define S_RECV_BURST    64          //  messages read per wake-up
#define S_BACKOFF_MIN   1000        //  reconnect backoff, ms
#define S_BACKOFF_MAX   32000
#define S_LIVENESS      3           //  broker intervals of silence = dead
#define S_STOP_GRACE_MS 250         //  wait for the executor on exit
#define S_BYE_LINGER_MS 200         //  time to deliver BYE on exit
#define S_FAULTS_PER_S  5           //  peer faults logged per second
#define S_GO            (-1)        //  "keep running" (not an exit code)
#define INLINE_MAX_NS   200000      //  chunks expected shorter run on the main thread


//  One chunk on its way through the executor and back
typedef struct s_work {
    dp_msg_t chunk;                 //  CHUNK as received
    dp_msg_t result;                //  RESULT built by the executor
    uint64_t gen;                   //  session the chunk came on
    bool ran;                       //  result holds the chunk's answers
    struct s_work *next;            //  free list
} s_work_t;

typedef struct {
    const dp_worker_opts_t *opts;
    dp_registry_t *registry;        //  read-only once loaded: shared
    dp_curve_keys_t curve;          //  CURVE keys for the broker (on: false, plaintext)
    dp_curve_watch_t *watch;        //  its handshakes, to say why it does not answer
    void *ctx;
    void *broker;                   //  DEALER, NULL while backing off
    void *pipe;                     //  main side of the executor PAIR
    void *exec_pipe;                //  executor side (the thread's)
    pthread_t executor;
    bool executor_started;
    atomic_uint_fast64_t gen;       //  broker session number
    uint32_t credit, hb_ms;
    uint32_t broker_hb;             //  broker's interval (WELCOME)
    uint32_t inflight;              //  current-session chunks not answered
    uint32_t outstanding;           //  records at the executor, any session
    bool welcomed;
    int64_t last_sent, last_recv;   //  ms, coarse clock
    int64_t reconnect_at;
    uint32_t backoff;
    unsigned seed;                  //  for backoff jitter
    s_work_t *free_works;
    dp_progress_page_t *progress;   //  shared with our supervisor, or NULL
    _Atomic uint64_t abort_chunk [4];   //  chunks the broker aborted lately:
    _Atomic uint32_t abort_count [4];   //  ids abort_chunk .. + count - 1
    unsigned abort_next;
    uint64_t node;                  //  node token ($DPOOL_NODE), 0 if none
    uint64_t items_done;            //  items answered (main thread)
    bool recycle;                   //  max_tasks reached: exit when idle
    struct {                        //  recent time per item of each task
        dp_task_fn *fn;
        uint64_t ns;                //  0: not measured yet
    } pace [16];
    dp_batch_t inline_batch;        //  for chunks run by the main thread
    pthread_mutex_t inline_lock;    //  guards the socket while inline_running
    pthread_cond_t inline_cond;     //  wakes the watchdog to stop
    bool inline_running;            //  the main thread runs a chunk: the
                                    //  watchdog owns the socket
    bool watchdog_stop;
    pthread_t watchdog;
    bool watchdog_started;
    int64_t fault_window;           //  rate limit for peer-fault logs
    unsigned faults_logged, faults_hidden;
    char inproc [64];
} s_worker_t;

static volatile sig_atomic_t s_interrupted;

//  Self-pipe: the signal handler writes a byte, the event loop polls it,
//  so a signal that lands just before zmq_poll still wakes it at once
static int s_wake [2] = { -1, -1 };

//  A worker whose executor was still in a task when it stopped: the thread
//  goes on using it until the process exits, so it must stay allocated.
static s_worker_t *s_abandoned;


//  --------------------------------------------------------------------------
//  Small helpers: clock, logs

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t
s_now_ns (void)
{
    return (uint64_t) dp_progress_now_ns ();
}

//  Log a line to stderr when verbosity is at least `level` (0: always).

static void
s_log (s_worker_t *self, int level, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_log (s_worker_t *self, int level, const char *format, ...)
{
    if (self->opts->verbose < level)
        return;
    char line [DP_MAX_TEXT + 256];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    fprintf (stderr, "dpool-worker[%d]: %s\n", (int) getpid (), line);
}

//  Log a fault in what the broker sent, at most S_FAULTS_PER_S a second,
//  so a broken peer cannot flood the log.

static void
s_fault (s_worker_t *self, const char *what, const char *detail)
{
    int64_t now = s_now_ms ();
    if (now - self->fault_window >= 1000) {
        if (self->faults_hidden)
            s_log (self, 0, "(%u more faulty messages not logged)", self->faults_hidden);
        self->fault_window = now;
        self->faults_logged = self->faults_hidden = 0;
    }
    if (self->faults_logged++ < S_FAULTS_PER_S)
        s_log (self, 0, "dropped message from broker: %s%s%s", what,
               detail && *detail ? ": " : "", detail ? detail : "");
    else
        self->faults_hidden++;
}


//  --------------------------------------------------------------------------
//  Executor thread

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
s_aborted (s_worker_t *self, uint64_t chunk)
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

//  Run the items of a CHUNK in order into batch: its k chunks one after
//  the other (ids chunk, chunk + 1, ...; n / k items each), each under its
//  own id on the progress page and for ABORT. Returns 0, or -1 if the
//  chunk went stale (its session ended) before it was done.
static int
s_run_items (s_worker_t *self, s_work_t *work, dp_task_fn *fn, dp_batch_t *batch)
{
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
                atomic_store_explicit (&p->started_ns, (int64_t) s_now_ns (), memory_order_relaxed);
            atomic_store_explicit (&p->item, at, memory_order_release);
        }
        dp_task_run (fn, data + offset, len, batch);
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
s_pace_record (s_worker_t *self, dp_task_fn *fn, uint64_t ns)
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
s_pace_expect (s_worker_t *self, dp_task_fn *fn, uint32_t n)
{
    for (int i = 0; i < 16 && self->pace [i].fn; i++)
        if (self->pace [i].fn == fn)
            return self->pace [i].ns * n;
    return UINT64_MAX;
}

//  Run one chunk and build its RESULT in work->result (work->ran).

static void
s_run_chunk (s_worker_t *self, s_work_t *work, dp_batch_t *batch)
{
    dp_msg_t *chunk = &work->chunk;
    dp_task_fn *fn = dp_registry_find (self->registry, chunk->task);
    uint64_t start = s_now_ns ();
    int rc = fn ? s_run_items (self, work, fn, batch) : s_fail_chunk (chunk, batch);
    uint64_t ns = s_now_ns () - start;
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

//  The executor: run each record that arrives, send it back; a NULL
//  record means stop.

static void *
s_executor (void *arg)
{
    s_worker_t *self = (s_worker_t *) arg;
    dp_batch_t batch;
    dp_batch_init (&batch);
    while (true) {
        s_work_t *work;
        int rc = zmq_recv (self->exec_pipe, &work, sizeof work, 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc != (int) sizeof work || !work)
            break;
        if (work->gen == atomic_load (&self->gen))
            s_run_chunk (self, work, &batch);
        while (zmq_send (self->exec_pipe, &work, sizeof work, 0) < 0 && errno == EINTR)
            ;
    }
    dp_batch_clear (&batch);
    zmq_close (self->exec_pipe);
    return NULL;
}

//  Create the PAIR pipe and start the executor with SIGTERM/SIGINT blocked,
//  so the signals reach the main thread's poll. Returns 0 or -1.

static int
s_executor_start (s_worker_t *self)
{
    snprintf (self->inproc, sizeof self->inproc, "inproc://dpool-executor-%p", (void *) self);
    self->pipe = zmq_socket (self->ctx, ZMQ_PAIR);
    self->exec_pipe = zmq_socket (self->ctx, ZMQ_PAIR);
    if (!self->pipe || !self->exec_pipe
    ||  zmq_bind (self->pipe, self->inproc) || zmq_connect (self->exec_pipe, self->inproc))
        return -1;
    sigset_t block, old;
    sigemptyset (&block);
    sigaddset (&block, SIGTERM);
    sigaddset (&block, SIGINT);
    pthread_sigmask (SIG_BLOCK, &block, &old);
    int rc = pthread_create (&self->executor, NULL, s_executor, self);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc)
        return -1;
    self->executor_started = true;
    return 0;
}

//  The watchdog: twice per heartbeat interval, if the main thread is
//  running a chunk (and so neither polls nor sends), send the HEARTBEAT
//  it would have sent. The lock keeps the main thread off the socket
//  meanwhile. A failed send is left for the main thread to find on its
//  next send.

static void *
s_watchdog (void *arg)
{
    s_worker_t *self = (s_worker_t *) arg;
    pthread_mutex_lock (&self->inline_lock);
    while (!self->watchdog_stop) {
        int64_t now = s_now_ms ();
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

static int
s_watchdog_start (s_worker_t *self)
{
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init (&self->inline_cond, &attr);
    pthread_condattr_destroy (&attr);
    if (rc || pthread_mutex_init (&self->inline_lock, NULL))
        return -1;
    sigset_t block, old;
    sigemptyset (&block);
    sigaddset (&block, SIGTERM);
    sigaddset (&block, SIGINT);
    pthread_sigmask (SIG_BLOCK, &block, &old);
    rc = pthread_create (&self->watchdog, NULL, s_watchdog, self);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc)
        return -1;
    self->watchdog_started = true;
    return 0;
}

static void
s_watchdog_stop (s_worker_t *self)
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


//  --------------------------------------------------------------------------
//  Work records (main thread only)

static s_work_t *
s_work_get (s_worker_t *self)
{
    s_work_t *work = self->free_works;
    if (work)
        self->free_works = work->next;
    else
        work = (s_work_t *) malloc (sizeof *work);
    if (work) {
        dp_msg_init (&work->chunk, 0);
        dp_msg_init (&work->result, DP_CMD_RESULT);
        work->ran = false;
    }
    return work;
}

static void
s_work_put (s_worker_t *self, s_work_t *work)
{
    dp_msg_reset (&work->chunk);
    dp_msg_reset (&work->result);
    work->next = self->free_works;
    self->free_works = work;
}


//  --------------------------------------------------------------------------
//  Broker session

//  Send a message to the broker; any failure ends the session (the broker
//  would wait forever for a lost RESULT). Returns 0 or -1.

static void s_disconnect (s_worker_t *self);

static int
s_send (s_worker_t *self, dp_msg_t *msg)
{
    if (dp_msg_send (msg, self->broker, NULL)) {
        const char *why = dp_curve_watch_why (self->watch, self->curve.on);
        s_log (self, 0, "cannot send %s to broker: %s", dp_cmd_name (msg->cmd),
               why ? why : zmq_strerror (errno));
        s_disconnect (self);
        return -1;
    }
    self->last_sent = s_now_ms ();
    return 0;
}

//  Send a header-only command (HEARTBEAT).

static int
s_send_cmd (s_worker_t *self, uint8_t cmd)
{
    dp_msg_t msg;
    dp_msg_init (&msg, cmd);
    int rc = s_send (self, &msg);
    dp_msg_reset (&msg);
    return rc;
}

//  Send ERROR with a code and a reason (PROTOCOL.md §7).

static void
s_send_error (s_worker_t *self, int code, const char *text)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_ERROR);
    msg.code = code;
    snprintf (msg.text, sizeof msg.text, "%s", text);
    s_send (self, &msg);
    dp_msg_reset (&msg);
}

//  Start a new session on the current socket: forget chunks of the old
//  one and announce ourselves. Returns 0 or -1.

static int
s_send_ready (s_worker_t *self)
{
    atomic_fetch_add (&self->gen, 1);
    self->inflight = 0;
    self->welcomed = false;
    self->last_recv = s_now_ms ();
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_READY);
    size_t ntasks = dp_registry_count (self->registry);
    msg.tasks = (char **) calloc (ntasks, sizeof (char *));
    for (size_t i = 0; msg.tasks && i < ntasks; i++)
        if ((msg.tasks [msg.ntasks] = strdup (dp_registry_name (self->registry, i))))
            msg.ntasks++;
    msg.credit = self->credit;
    msg.pid = (uint32_t) getpid ();
    msg.slots = 1;
    msg.node = self->node;
    msg.hb = self->hb_ms;
    char host [HOST_NAME_MAX + 1] = "";
    gethostname (host, sizeof host - 1);
    snprintf (msg.host, sizeof msg.host, "%s", host);
    s_log (self, 1, "READY to %s (%u tasks, credit %u)", self->opts->endpoint,
           msg.ntasks, msg.credit);
    int rc = s_send (self, &msg);
    dp_msg_reset (&msg);
    return rc;
}

//  Open a socket to the broker and send READY. Returns 0, or -1 when the
//  socket cannot be made or the endpoint is bad (a failed send only ends
//  the session, as any failed send does).

static int
s_connect (s_worker_t *self)
{
    self->broker = zmq_socket (self->ctx, ZMQ_DEALER);
    if (!self->broker)
        return -1;
    int linger = 0, ivl = (int) self->hb_ms, timeout = S_LIVENESS * (int) self->hb_ms;
    int reconnect = 100, reconnect_max = S_BACKOFF_MIN;
    int sndtimeo = S_LIVENESS * (int) self->hb_ms;
    int64_t maxmsg = DP_MAX_FRAME;      //  libzmq drops bigger frames unread
    zmq_setsockopt (self->broker, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->broker, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt (self->broker, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
    zmq_setsockopt (self->broker, ZMQ_RECONNECT_IVL, &reconnect, sizeof reconnect);
    zmq_setsockopt (self->broker, ZMQ_RECONNECT_IVL_MAX, &reconnect_max, sizeof reconnect_max);
    zmq_setsockopt (self->broker, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    zmq_setsockopt (self->broker, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    //  the server directory is read again at every session: a broker that
    //  started with us may have written its endpoints since
    char why [1024];
    if (!self->opts->local && !self->opts->curve_secret
    &&  dp_curve_client_keys (NULL, NULL, "worker", self->opts->endpoint, &self->curve,
                              why, sizeof why))
        s_log (self, 0, "%s", why);
    if (!self->opts->local)
        self->watch = dp_curve_watch_new (self->ctx, self->broker);
    if (dp_curve_client_apply (self->broker, &self->curve)
    ||  zmq_connect (self->broker, self->opts->endpoint)) {
        s_log (self, 0, "cannot connect to %s: %s", self->opts->endpoint,
               zmq_strerror (errno));
        dp_curve_watch_destroy (&self->watch);
        zmq_close (self->broker);
        self->broker = NULL;
        return -1;
    }
    s_send_ready (self);
    return 0;
}

//  End the session: close the socket, drop its chunks, and schedule a
//  reconnect after the backoff (jittered +-25 %), which then doubles.

static void
s_disconnect (s_worker_t *self)
{
    dp_curve_watch_destroy (&self->watch);
    if (self->broker)
        zmq_close (self->broker);
    self->broker = NULL;
    atomic_fetch_add (&self->gen, 1);
    self->inflight = 0;
    self->welcomed = false;
    uint32_t delay = self->backoff * 3 / 4 + (uint32_t) rand_r (&self->seed) % (self->backoff / 2 + 1);
    self->reconnect_at = s_now_ms () + delay;
    s_log (self, 1, "reconnecting to %s in %u ms", self->opts->endpoint, delay);
    self->backoff = self->backoff * 2 > S_BACKOFF_MAX ? S_BACKOFF_MAX : self->backoff * 2;
}


//  --------------------------------------------------------------------------
//  Main thread: messages from the broker and the executor

//  A CHUNK: hand it to the executor if within credit, else refuse it with
//  EWINDOW. Returns 0 if the record was passed on, -1 if the caller keeps it.

static int
s_on_chunk (s_worker_t *self, s_work_t *work)
{
    if (self->inflight + work->chunk.k > self->credit) {
        char detail [128];
        snprintf (detail, sizeof detail, "CHUNK %llu (%u chunks) beyond credit: %u chunks "
                  "in flight, credit %u", (unsigned long long) work->chunk.chunk,
                  work->chunk.k, self->inflight, self->credit);
        s_fault (self, "over credit", detail);
        s_send_error (self, DP_PROTO_EWINDOW, detail);
        return -1;
    }
    work->gen = atomic_load (&self->gen);
    //  A short chunk of a task already timed, with the executor idle, runs
    //  here: no hand-over, no thread wake-ups. Should it run long after
    //  all, the watchdog heartbeats meanwhile. Anything else goes to the
    //  executor.
    dp_task_fn *fn = dp_registry_find (self->registry, work->chunk.task);
    if (self->outstanding == 0 && fn && self->watchdog_started
    &&  s_pace_expect (self, fn, work->chunk.n) < INLINE_MAX_NS) {
        pthread_mutex_lock (&self->inline_lock);
        self->inline_running = true;
        pthread_mutex_unlock (&self->inline_lock);
        s_run_chunk (self, work, &self->inline_batch);
        pthread_mutex_lock (&self->inline_lock);
        self->inline_running = false;
        pthread_mutex_unlock (&self->inline_lock);
        if (work->ran && self->broker) {
            self->items_done += work->result.n;
            s_send (self, &work->result);
        }
        if (self->opts->max_tasks && self->items_done >= self->opts->max_tasks)
            self->recycle = true;
        s_work_put (self, work);
        return 0;
    }
    if (zmq_send (self->pipe, &work, sizeof work, 0) != (int) sizeof work)
        return -1;
    self->inflight += work->chunk.k;
    self->outstanding++;
    s_log (self, 3, "CHUNK %llu: %u items of '%s'",
           (unsigned long long) work->chunk.chunk, work->chunk.n, work->chunk.task);
    return 0;
}

//  A message other than CHUNK. Returns S_GO or an exit code.

static int
s_on_command (s_worker_t *self, dp_msg_t *msg)
{
    switch (msg->cmd) {
        case DP_CMD_WELCOME:
            self->welcomed = true;
            self->broker_hb = msg->hb >= 10 && msg->hb <= 3600000 ? msg->hb : self->hb_ms;
            self->backoff = S_BACKOFF_MIN;
            s_log (self, 1, "WELCOME from %s (heartbeat %u ms)",
                   self->opts->endpoint, msg->hb);
            break;
        case DP_CMD_HEARTBEAT:
            break;
        case DP_CMD_ABORT:
            //  the executor stops between items; a supervisor kills us if
            //  an item of it runs on
            if (self->progress) {
                unsigned at = self->abort_next % 4;
                atomic_store (&self->progress->abort_ns [at], (int64_t) s_now_ns ());
                dp_abort_set (&self->progress->abort_chunk [at], &self->progress->abort_count [at],
                              msg->chunk, msg->k);
            }
            dp_abort_set (&self->abort_chunk [self->abort_next % 4],
                          &self->abort_count [self->abort_next % 4], msg->chunk, msg->k);
            self->abort_next++;
            break;
        case DP_CMD_ERROR:
            s_log (self, 1, "ERROR from broker: %d %s", msg->code, msg->text);
            //  Before WELCOME our READY is already on its way: the error
            //  answers something we sent before it
            if (msg->code == DP_PROTO_ENOTREADY && self->welcomed)
                s_send_ready (self);
            else
            if (msg->code != DP_PROTO_ENOTREADY)
                s_log (self, 0, "broker error %d: %s", msg->code, msg->text);
            break;
        case DP_CMD_BYE:
            s_log (self, 1, "BYE from broker");
            if (self->opts->local)
                return DP_WORKER_EXIT_OK;
            self->backoff = S_BACKOFF_MIN;
            s_disconnect (self);
            break;
        default:
            s_fault (self, "unexpected command", dp_cmd_name (msg->cmd));
            break;
    }
    return S_GO;
}

//  Read what the broker sent, up to a burst. Returns S_GO or an exit code.

static int
s_from_broker (s_worker_t *self)
{
    for (int i = 0; i < S_RECV_BURST && self->broker && !self->recycle; i++) {
        s_work_t *work = s_work_get (self);
        if (!work)
            return S_GO;                //  try again on the next wake-up
        char err [256] = "";
        int rc = dp_msg_recv (&work->chunk, self->broker, NULL, ZMQ_DONTWAIT, err, sizeof err);
        if (rc == DP_PROTO_ESOCKET) {
            if (errno != EAGAIN && errno != EINTR)
                s_log (self, 0, "receive failed: %s", zmq_strerror (errno));
            s_work_put (self, work);
            return S_GO;
        }
        self->last_recv = s_now_ms ();  //  anything at all is a sign of life
        if (rc < 0) {
            s_fault (self, dp_proto_strerror (rc), strcmp (err, dp_proto_strerror (rc)) ? err : NULL);
            //  Another version is answered, unless it is an ERROR itself
            if (rc == DP_PROTO_EVERSION && work->chunk.cmd != DP_CMD_ERROR)
                s_send_error (self, DP_PROTO_EVERSION, err);
        }
        else
        if (work->chunk.cmd == DP_CMD_CHUNK && s_on_chunk (self, work) == 0)
            continue;                   //  the executor owns it now
        else
        if (work->chunk.cmd != DP_CMD_CHUNK) {
            int code = s_on_command (self, &work->chunk);
            if (code != S_GO) {
                s_work_put (self, work);
                return code;
            }
        }
        s_work_put (self, work);
    }
    return S_GO;
}

//  Take finished records back from the executor and send their RESULTs
//  if their session is still the current one.

static void
s_from_executor (s_worker_t *self)
{
    s_work_t *work;
    while (zmq_recv (self->pipe, &work, sizeof work, ZMQ_DONTWAIT) == (int) sizeof work) {
        self->outstanding--;
        if (work->gen == atomic_load (&self->gen)) {
            self->inflight -= work->chunk.k;
            if (work->ran && self->broker) {
                s_log (self, 3, "RESULT %llu: %u items",
                       (unsigned long long) work->result.chunk, work->result.n);
                self->items_done += work->result.n;
                s_send (self, &work->result);
            }
            if (self->opts->max_tasks && self->items_done >= self->opts->max_tasks)
                self->recycle = true;
        }
        s_work_put (self, work);
    }
}

//  Timers: heartbeat, broker liveness, reconnect. Returns S_GO or an
//  exit code.

static int
s_tick (s_worker_t *self)
{
    int64_t now = s_now_ms ();
    if (self->recycle) {
        s_log (self, 1, "recycled after %llu items", (unsigned long long) self->items_done);
        return DP_WORKER_EXIT_OK;
    }
    if (!self->broker) {
        if (now >= self->reconnect_at && s_connect (self))
            s_disconnect (self);
        return S_GO;
    }
    uint32_t hb = self->welcomed ? self->broker_hb : self->hb_ms;
    if (now - self->last_recv > (int64_t) S_LIVENESS * hb) {
        const char *why = dp_curve_watch_why (self->watch, self->curve.on);
        s_log (self, self->opts->local || why ? 0 : 1, "broker silent for %lld ms%s%s",
               (long long) (now - self->last_recv), why ? ": " : "", why ? why : "");
        if (self->opts->local)
            return DP_WORKER_EXIT_OK;
        s_disconnect (self);
    }
    else
    if (now - self->last_sent >= self->hb_ms)
        s_send_cmd (self, DP_CMD_HEARTBEAT);
    return S_GO;
}

//  How long zmq_poll may sleep: until the next timer, at most S_POLL_MAX_MS.

static long
s_poll_timeout (s_worker_t *self)
{
    int64_t now = s_now_ms ();
    int64_t due = now + S_POLL_MAX_MS;
    if (!self->broker)
        due = self->reconnect_at < due ? self->reconnect_at : due;
    else {
        int64_t beat = self->last_sent + self->hb_ms;
        due = beat < due ? beat : due;
    }
    return due > now ? (long) (due - now) : 0;
}

//  The event loop. Returns an exit code.

static int
s_loop (s_worker_t *self)
{
    while (!s_interrupted) {
        zmq_pollitem_t items [3] = {
            { self->pipe, 0, ZMQ_POLLIN, 0 },
            { NULL, s_wake [0], ZMQ_POLLIN, 0 },
            { self->broker, 0, ZMQ_POLLIN, 0 }
        };
        int nitems = self->broker ? 3 : 2;
        if (zmq_poll (items, nitems, s_poll_timeout (self)) < 0) {
            if (errno == EINTR)
                continue;
            s_log (self, 0, "poll failed: %s", zmq_strerror (errno));
            return 1;
        }
        if (items [0].revents & ZMQ_POLLIN)
            s_from_executor (self);
        int code = S_GO;
        if (nitems == 3 && (items [2].revents & ZMQ_POLLIN))
            code = s_from_broker (self);
        if (code == S_GO)
            code = s_tick (self);
        if (code != S_GO)
            return code;
    }
    s_log (self, 1, "%s: stopping", strsignal (s_interrupted));
    return DP_WORKER_EXIT_OK;
}


//  --------------------------------------------------------------------------
//  Start and stop

static void
s_signal_handler (int sig)
{
    s_interrupted = sig;
    dp_wake (s_wake);
}

//  SIGTERM/SIGINT set a flag (no SA_RESTART: blocking calls return EINTR);
//  SIGCHLD back to default so the exec task can wait for its children.

static void
s_signals_install (void)
{
    dp_wake_open (s_wake);
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_signal_handler;
    sigemptyset (&action.sa_mask);
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    signal (SIGCHLD, SIG_DFL);
}

//  Stop the executor: ask it to stop and take its records back for up to
//  S_STOP_GRACE_MS. Returns 0 if it stopped (joined), -1 if it is still
//  running a task (the process is about to exit anyway).

static int
s_executor_stop (s_worker_t *self)
{
    atomic_fetch_add (&self->gen, 1);       //  skip whatever is queued
    dp_task_kill_child (SIGTERM);
    s_work_t *stop = NULL;
    if (zmq_send (self->pipe, &stop, sizeof stop, 0) != (int) sizeof stop)
        return -1;
    int64_t deadline = s_now_ms () + S_STOP_GRACE_MS;
    while (self->outstanding > 0 && s_now_ms () < deadline) {
        zmq_pollitem_t item = { self->pipe, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 50) > 0)
            s_from_executor (self);
    }
    if (self->outstanding > 0)
        return -1;
    pthread_join (self->executor, NULL);
    self->executor_started = false;
    return 0;
}

//  Release everything and null the caller's pointer; with `bye`, tell the
//  broker first so it re-queues our chunks at once. When the executor
//  could not be stopped, leave the worker (the thread reads it), the
//  context and the registry (its code may be running) to process exit.

static void
s_shutdown (s_worker_t **self_p, bool bye)
{
    s_worker_t *self = *self_p;
    *self_p = NULL;
    //  A local worker's broker learns of its exit from its pidfd, and one
    //  not yet welcomed has nothing to give back: no BYE, so no linger
    //  (a BYE on a connection still being made would hold exit 200 ms)
    bye = bye && self->welcomed && !self->opts->local;
    if (self->broker && bye && s_send_cmd (self, DP_CMD_BYE) == 0) {
        int linger = S_BYE_LINGER_MS;   //  let zmq_ctx_term flush it
        zmq_setsockopt (self->broker, ZMQ_LINGER, &linger, sizeof linger);
    }
    dp_curve_watch_destroy (&self->watch);
    s_watchdog_stop (self);
    if (self->broker)
        zmq_close (self->broker);
    self->broker = NULL;
    if (self->executor_started && s_executor_stop (self)) {
        s_log (self, 1, "a task is still running: exiting without waiting for it");
        s_abandoned = self;
        return;
    }
    if (!self->executor_started && self->exec_pipe)
        zmq_close (self->exec_pipe);
    if (self->pipe)
        zmq_close (self->pipe);
    while (self->free_works) {
        s_work_t *work = self->free_works;
        self->free_works = work->next;
        free (work);
    }
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    dp_registry_destroy (&self->registry);
    dp_batch_clear (&self->inline_batch);
    free (self);
}

//  Add the host tasks (if any) and load every module into a new registry.
//  Returns it, or NULL with the error printed to stderr.

static dp_registry_t *
s_registry_load (const dp_task_def_t *tasks, size_t ntasks,
                 const char *const *modules, size_t nmodules)
{
    dp_registry_t *registry = dp_registry_new ();
    if (!registry) {
        fprintf (stderr, "dpool-worker: out of memory\n");
        return NULL;
    }
    for (size_t i = 0; i < ntasks; i++) {
        char err [DP_MAX_NAME * 2 + 128];
        if (dp_registry_add_task (registry, tasks [i].name, tasks [i].fn, "(host program)",
                                  err, sizeof err)) {
            fprintf (stderr, "dpool-worker: %s\n", err);
            dp_registry_destroy (&registry);
            return NULL;
        }
    }
    for (size_t i = 0; i < nmodules; i++) {
        char err [1024];
        if (dp_registry_load (registry, modules [i], err, sizeof err)) {
            fprintf (stderr, "dpool-worker: %s\n", err);
            dp_registry_destroy (&registry);
            return NULL;
        }
    }
    return registry;
}

int
dp_worker_check (const char *const *modules, size_t nmodules)
{
    dp_registry_t *registry = s_registry_load (NULL, 0, modules, nmodules);
    if (!registry)
        return DP_WORKER_EXIT_CONFIG;
    for (size_t i = 0; i < dp_registry_count (registry); i++)
        printf ("%s\n", dp_registry_name (registry, i));
    fflush (stdout);
    dp_registry_destroy (&registry);
    return DP_WORKER_EXIT_OK;
}

//  A local worker dies with the process that started it: the kernel kills
//  it when its parent goes, and it exits at once if the parent is already
//  gone (re-parented before prctl). Returns true if it should exit now.

static bool
s_orphaned (void)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    const char *parent = getenv ("DPOOL_PARENT_PID");
    return parent && *parent && getppid () != (pid_t) strtol (parent, NULL, 10);
}

//  --------------------------------------------------------------------------
//  Memory limit

static size_t s_probe_size;

//  A crash under a memory limit: if the address space is (nearly) used up,
//  say so on the progress page, so the supervisor reports "out of memory"
//  rather than the signal. Only async-signal-safe calls.
static void
s_crash_handler (int sig)
{
    dp_progress_page_t *p = dp_progress_child ();
    void *probe = mmap (NULL, s_probe_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe == MAP_FAILED) {
        if (p)
            atomic_store (&p->oom, 1);
    }
    else
        munmap (probe, s_probe_size);
    signal (sig, SIG_DFL);
    raise (sig);
}

//  Limit the address space (RLIMIT_AS) and watch for crashes it causes.
//  Returns 0 or -1.
static int
s_mem_limit (uint32_t mb)
{
    dp_progress_child ();               //  map it now, not in the handler
    struct rlimit limit = { (rlim_t) mb << 20, (rlim_t) mb << 20 };
    if (setrlimit (RLIMIT_AS, &limit) != 0) {
        fprintf (stderr, "dpool-worker: cannot limit memory to %u MiB: %s\n", mb, strerror (errno));
        return -1;
    }
    s_probe_size = 4u << 20;           //  less than this left: out of memory
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_crash_handler;
    sigaction (SIGSEGV, &action, NULL);
    sigaction (SIGBUS, &action, NULL);
    sigaction (SIGABRT, &action, NULL);
    return 0;
}

int
dp_worker_run (const dp_worker_opts_t *opts)
{
    if ((opts->local || opts->supervised) && s_orphaned ())
        return DP_WORKER_EXIT_OK;
    if (!opts->endpoint || !*opts->endpoint) {
        fprintf (stderr, "dpool-worker: no broker endpoint\n");
        return DP_WORKER_EXIT_USAGE;
    }
    s_worker_t *self = (s_worker_t *) calloc (1, sizeof *self);
    if (!self) {
        fprintf (stderr, "dpool-worker: out of memory\n");
        return 1;
    }
    self->opts = opts;
    self->credit = opts->credit ? opts->credit : 64;
    self->hb_ms = opts->heartbeat_ms ? opts->heartbeat_ms : 1000;
    self->broker_hb = self->hb_ms;
    self->backoff = S_BACKOFF_MIN;
    self->seed = (unsigned) getpid () ^ (unsigned) s_now_ns ();
    self->registry = s_registry_load (opts->tasks, opts->ntasks, opts->modules, opts->nmodules);
    self->progress = dp_progress_child ();
    if (self->registry && !opts->allow_exec)
        dp_registry_remove (self->registry, "exec");
    char why [1024];
    //  local workers use the broker's private ipc endpoint, never CURVE
    if (!opts->local && dp_curve_client_keys (opts->curve_secret, opts->broker_key, "worker",
                                              opts->endpoint, &self->curve, why, sizeof why)) {
        fprintf (stderr, "dpool-worker: %s\n", why);
        dp_registry_destroy (&self->registry);
        free (self);
        return DP_WORKER_EXIT_USAGE;
    }
    //  the initializers run here, in a process that takes items, and
    //  nowhere else; the page tells the supervisor how they went (it
    //  waits for the first worker's at start-up)
    if (self->registry && dp_registry_init (self->registry, opts->init_args, why, sizeof why)) {
        fprintf (stderr, "dpool-worker: %s\n", why);
        dp_registry_destroy (&self->registry);
        if (self->progress) {
            snprintf (self->progress->init_error, sizeof self->progress->init_error, "%.255s", why);
            atomic_store (&self->progress->init_state, DP_INIT_FAILED);
        }
    }
    if (!self->registry) {
        free (self);
        return DP_WORKER_EXIT_CONFIG;
    }
    if (self->progress)
        atomic_store (&self->progress->init_state, DP_INIT_DONE);
    const char *node = getenv ("DPOOL_NODE");
    self->node = node ? strtoull (node, NULL, 10) : 0;
    s_interrupted = 0;
    s_signals_install ();
    int code = S_GO;
    self->ctx = zmq_ctx_new ();
    if (!self->ctx || s_executor_start (self) || s_watchdog_start (self)) {
        s_log (self, 0, "cannot start: %s", zmq_strerror (errno));
        code = 1;
    }
    else
    if (s_connect (self))
        code = DP_WORKER_EXIT_USAGE;    //  the endpoint itself is bad
    if (code == S_GO && opts->mem_limit_mb && s_mem_limit (opts->mem_limit_mb))
        code = 1;
    if (code == S_GO)
        code = s_loop (self);
    s_shutdown (&self, s_interrupted != 0 || (self && self->recycle));
    return code;
}
