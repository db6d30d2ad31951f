/*  =========================================================================
    dp_client - libdpool's client internals, shared by the client sources

    dp_pool.c     pools: the socket, the handshake, the job table, the pump
    dp_job.c      the job engine: feeding input in the window, results,
                  DONE/ERROR, cancel, progress; dp_job_*, dp_map_stream
    dp_map.c      results arrays: dp_map, dp_results_*
    dp_iter.c     iterators (imap, imap_unordered)
    dp_future.c   futures (submit, map_async)
    dp_pack.c     msgpack items: builders, readers, dp_starmap

    Ownership: every job has one owner (an iterator, a future, a dp_job_t
    handle, or a blocking call on the stack) that frees it with
    cjob_release. A job let go of before it has finished is abandoned: the
    pool sends CANCEL and forgets it at once. That is safe for the window
    because a DEALER's messages arrive in order: the broker handles the
    CANCEL (and so frees the job's items) before any BATCH sent after it,
    and whatever it still says about the job is ignored. Everything here
    runs in the caller's thread: no locks.
    =========================================================================
*/
#ifndef DP_CLIENT_H_INCLUDED
#define DP_CLIENT_H_INCLUDED

#include "dpool.h"
#include "dp_link.h"
#include "dp_proto.h"
#include "dp_curve.h"
#include "dp_broker.h"

#include <czmq.h>


//  One RESULTS message kept for an iterator until its items are taken.
typedef struct rbatch rbatch_t;
struct rbatch {
    rbatch_t *next;
    uint64_t first;             //  index of item 0
    uint32_t n, at;             //  items, and the next one to take
    size_t offset;              //  data offset of item `at`
    zmq_msg_t lens, data, status;
};

typedef enum {
    JOB_NEW,                    //  made, not started by its owner yet
    JOB_WAITING,                //  started, JOB not sent: too many jobs open
    JOB_RUNNING,                //  the broker has it (cancelled or not)
    JOB_DONE,                   //  DONE: every item answered
    JOB_FAILED                  //  ended by an ERROR, the pool, or an abort
} job_state_t;

//  The message of an item answered cancelled after dp_pool_terminate.
#define DP_TERMINATED_TEXT  "terminated"

typedef void (job_end_fn) (dp_job_t *job, void *owner);

struct dp_job {
    dp_pool_t *pool;            //  NULL once the pool is closed
    uint32_t id;
    char task [DP_MAX_NAME + 1];
    dp_job_opts_t opts;
    uint32_t weight;            //  opts.weight, at least 1
    //  input: a callback, or an array (not copied)
    dp_input_fn *input;
    void *input_arg;
    const dp_item_t *items;
    size_t nitems, next_item;
    //  output: a callback per item; else RESULTS queued for an iterator
    dp_output_fn *output;
    void *output_arg;
    rbatch_t *head, *tail;
    //  counters
    uint64_t sent, answered, consumed, failed;
    uint64_t backups;           //  backup copies the broker ran (RESULTS, DONE)
    uint64_t held_items;        //  sent, not yet answered and taken
    uint64_t held_bytes;        //  input bytes in flight + results queued
    uint64_t bytes_out;         //  input bytes in flight
    job_state_t state;
    bool input_done, input_later, end_sent, cancel_sent;
    bool cancel_flagged;        //  cancelled through opts.cancel: ends failed
    bool terminated;            //  stopped by dp_pool_terminate: its cancelled
                                //  items say "terminated", it ends failed
    dp_status_t error_status;   //  JOB_FAILED: why, as an item status
    char error [DP_MAX_TEXT + 64];
    //  chunk sizing from measured task time
    uint32_t probes;            //  single-item batches unanswered before a measure
    double ns_per_item;
    //  input bytes in flight: a FIFO of batch sizes, popped as answered
    uint64_t *fifo_bytes;
    uint32_t *fifo_n;
    size_t fifo_head, fifo_tail, fifo_cap;
    uint64_t fifo_answered;
    dp_batch_t batch;
    //  node tags the item the input callback is returning should not run
    //  on (citer_avoid, BATCH.avoid): that item goes alone in its BATCH
    uint64_t avoid [DP_MAX_AVOID];
    uint32_t navoid;
    //  progress: (time, answered) samples, the oldest is the rate's base
    int64_t started_ms, ended_ms;
    int64_t sample_ms [8];
    uint64_t sample_done [8];
    unsigned nsamples;
    //  the owner's hook, called last when the job ends (DONE or failure)
    job_end_fn *on_end;
    void *owner;
    //  links in the pool
    link_t all;                //  every job not yet freed
    link_t open;               //  in pool->open while JOB_RUNNING, in
                                //  pool->waiting while JOB_WAITING
    link_t feed;               //  while it has input to send
};

struct dp_pool {
    dp_broker_t *broker;        //  embedded broker, or NULL
    zsock_t *sock;
    void *handle;
    char endpoint [256];
    int timeout_ms, hb_ms;
    uint32_t window, batch_max;
    uint64_t wbytes;
    uint32_t next_job;
    int64_t last_send_ms, last_recv_ms;
    char broken [DP_MAX_TEXT + 64];  //  set once the broker is lost
    bool interrupted;           //  the last wait was cut by a signal
    int pumping;                //  > 0 inside the pump (callbacks run)
    bool closing;               //  BYE follows: no CANCEL per job
    bool welcomed;              //  a broker answered HELLO once
    dp_curve_keys_t curve;      //  CURVE keys for the broker (on false: plaintext)
    dp_curve_watch_t *watch;    //  its handshakes, to say why it does not answer
    bool sealed;                //  no new jobs (dp_pool_seal, dp_pool_terminate)
    bool terminated;            //  dp_pool_terminate was called
    dp_msg_t msg;
    //  jobs
    zhashx_t *table;            //  open jobs by id (NULL until the first)
    link_t all, open, feed, waiting;
    size_t nopen, nfeed, nwaiting;
    size_t ncancel;             //  open jobs with a cancel flag to watch
    uint64_t feed_weight;       //  sum of the weights of jobs in `feed`
    uint64_t inflight;          //  items sent, not answered (the broker's view)
    uint64_t held_items, held_bytes;    //  sum over the jobs
};

//  dp_pool.c
void client_set_error (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  Were tasks registered with dp_register_task? (dp_host.c)
bool client_has_host_tasks (void);
int cpool_send (dp_pool_t *self, dp_msg_t *msg);
int cpool_send_simple (dp_pool_t *self, uint8_t cmd, uint32_t job);
int cpool_ready_for_job (dp_pool_t *self);
void cpool_table_insert (dp_pool_t *self, dp_job_t *job);
void cpool_table_remove (dp_pool_t *self, dp_job_t *job);
dp_job_t *cpool_table_lookup (dp_pool_t *self, uint32_t id);
int cpool_pump (dp_pool_t *self, int wait_ms);
bool cpool_check_caller (dp_pool_t *self);
int64_t cpool_deadline (int timeout_ms);
int cpool_wait_left (int64_t deadline);
void cpool_fail_all (dp_pool_t *self, dp_status_t status, const char *text);

//  dp_job.c
dp_job_t *cjob_new (dp_pool_t *pool, const char *task, const dp_job_opts_t *opts);
int cjob_start (dp_job_t *self);
void cjob_start_waiting (dp_pool_t *pool);
void cjob_release (dp_job_t **self_p);
int cjob_cancel (dp_job_t *self);
void cjob_hold (dp_job_t *self, int64_t items, int64_t bytes);
void cjob_feed_all (dp_pool_t *pool);
void cjob_on_message (dp_pool_t *pool, dp_msg_t *msg);
void cjob_fail (dp_job_t *self, dp_status_t status, const char *text);
void cjob_progress (const dp_job_t *self, dp_progress_t *progress);
bool cjob_has_input_later (dp_pool_t *pool, int *fds, int *nfds, int max);
void cjob_terminate (dp_job_t *self);

//  dp_iter.c: called from the iterator's input callback just before it
//  returns an item: that item should not run on the nodes of these tags
//  (dp_node_tag; the exec reply's "node"), where a worker elsewhere has
//  the task (a retry of an item that failed there). At most DP_MAX_AVOID
//  tags are kept.
void citer_avoid (dp_iter_t *it, const uint64_t *tags, size_t ntags);

//  dp_map.c: a results array filled by an output callback
dp_results_t *cresults_new (size_t n);
dp_output_fn cresults_output;
int cresults_settle (dp_results_t *self, dp_status_t status, const char *message);

#endif
