/*  =========================================================================
    dp_worker_internal - one worker process's state, shared by its files

    dp_worker.c    process set-up: signals, memory limit, parent death,
                   module loading and initializers, start and shutdown
    dp_session.c   the session loop: the conversation with the broker
                   (READY, WELCOME, CHUNK, RESULT, ABORT, ERROR, BYE,
                   heartbeats), reconnects, the main thread's event loop
    dp_executor.c  running a chunk's items (on the executor thread, or
                   inline on the main thread under the watchdog), their
                   timing and results

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

    An exec item of a CHUNK that allows parts streams its big output
    (dp_exec.c): the executor hands each part to the main thread over the
    same pipe (a two-pointer message: NULL, then the part), which sends it
    as WPART if its session is current; WACKs from the broker move the
    stream's acknowledged count and wake the executor through an eventfd.
    A session's end or an ABORT of the chunk cuts the stream.

    Liveness follows PROTOCOL.md (Paranoid Pirate): the worker sends a
    HEARTBEAT when it has sent nothing for its own interval; the broker is
    dead after 3 of its intervals without a message. A remote worker then
    opens a new socket after a capped, jittered exponential backoff; a
    local one (started by a broker) exits.

    Internal names carry the prefix wk_; nothing here leaves libdpool.
    =========================================================================
*/
#ifndef DP_WORKER_INTERNAL_H_INCLUDED
#define DP_WORKER_INTERNAL_H_INCLUDED

#include "dp_worker.h"
#include "dp_task_internal.h"
#include "dp_progress.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define WK_BACKOFF_MIN  1000        //  reconnect backoff, ms
#define WK_GO           (-1)        //  "keep running" (not an exit code)


//  One chunk on its way through the executor and back
typedef struct wk_work {
    dp_msg_t chunk;                 //  CHUNK as received
    dp_msg_t result;                //  RESULT built by the executor
    uint64_t gen;                   //  session the chunk came on
    bool ran;                       //  result holds the chunk's answers
    struct wk_work *next;           //  free list
} wk_work_t;

//  A part of an item's output on its way from the executor to the broker
typedef struct {
    dp_msg_t msg;                   //  WPART
    uint64_t gen;                   //  session of its chunk
} wk_part_t;

//  The item whose output streams now (one at a time: the executor's)
typedef struct {
    _Atomic uint64_t chunk;         //  its chunk id (0: no stream)
    _Atomic uint32_t item;          //  its index in that chunk
    _Atomic uint64_t sent;          //  parts sent (executor)
    _Atomic uint64_t acked;         //  parts acknowledged (main thread)
    _Atomic bool cut;               //  the session ended or the chunk was aborted
    uint64_t gen;                   //  session of its chunk
    int wake;                       //  eventfd: main -> executor
} wk_stream_t;

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
    int64_t connected_at;           //  ms, when this session's socket connected
    int64_t reconnect_at;
    uint32_t backoff;
    unsigned seed;                  //  for backoff jitter
    wk_work_t *free_works;
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
    wk_stream_t stream;             //  the output stream of the running item
    char inproc [64];
} wk_worker_t;

//  Set by SIGTERM/SIGINT (dp_worker.c); the session loop ends when set.
extern volatile sig_atomic_t wk_interrupted;

//  Self-pipe: the signal handler writes a byte, the event loop polls it,
//  so a signal that lands just before zmq_poll still wakes it at once
extern int wk_wake [2];


//  --------------------------------------------------------------------------
//  Clock

static inline int64_t
wk_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline uint64_t
wk_now_ns (void)
{
    return (uint64_t) dp_progress_now_ns ();
}


//  --------------------------------------------------------------------------
//  Session (dp_session.c), main thread

//  Log a line to stderr when verbosity is at least `level` (0: always).
void wk_log (wk_worker_t *self, int level, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Open a socket to the broker and send READY. Returns 0, or -1 when the
//  socket cannot be made or the endpoint is bad.
int wk_connect (wk_worker_t *self);

//  Send a header-only command (HEARTBEAT, BYE); a failure ends the
//  session. Returns 0 or -1.
int wk_send_cmd (wk_worker_t *self, uint8_t cmd);

//  Take finished records back from the executor and send their RESULTs
//  if their session is still the current one.
void wk_from_executor (wk_worker_t *self);

//  The event loop, until a signal, BYE (local) or recycling. Returns an
//  exit code.
int wk_loop (wk_worker_t *self);


//  --------------------------------------------------------------------------
//  Executor (dp_executor.c)

//  Create the PAIR pipe and start the executor thread, signals blocked.
//  Returns 0 or -1.
int wk_executor_start (wk_worker_t *self);

//  Stop the executor, waiting a little for its records. Returns 0 if it
//  stopped (joined), -1 if it is still running a task.
int wk_executor_stop (wk_worker_t *self);

//  Start and stop the watchdog that heartbeats while the main thread runs
//  a chunk inline. Start returns 0 or -1.
int wk_watchdog_start (wk_worker_t *self);
void wk_watchdog_stop (wk_worker_t *self);

//  Main thread: an acknowledgement (WACK) for the running stream; cut the
//  stream (a session ended: all; an ABORT: if its chunk is in [chunk,
//  chunk + k), k 0 = any).
void wk_stream_ack (wk_worker_t *self, const dp_msg_t *msg);
void wk_stream_cut (wk_worker_t *self, uint64_t chunk, uint32_t k);

//  Run a CHUNK on the main thread when the executor is idle and its task's
//  recent pace says it is very short: builds work->result (work->ran).
//  Returns true if it ran it, false if it belongs to the executor.
bool wk_run_inline (wk_worker_t *self, wk_work_t *work);

#endif
