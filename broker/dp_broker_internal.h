/*  =========================================================================
    dp_broker_internal - the broker's tables, shared by its three files

    dp_broker.c   event loop, sockets, peers (clients, workers), heartbeats
    dp_jobs.c     jobs and chunks: queueing, results, retries, reordering
    dp_dispatch.c handing chunks to workers, speculation
    dp_spawn.c    supervisor of the local worker processes
    dp_span.c     payload blocks shared by chunks, and spans of them
    dp_metrics.c  status reports and Prometheus metrics
    dp_guard.c    what is enforced on untrusted peers: strikes, stalls, limits
    dp_stream.c   items' output parts: worker -> client, acknowledgements back

    Everything here is owned by the one broker thread: no locks.
    =========================================================================
*/
#ifndef DP_BROKER_INTERNAL_H_INCLUDED
#define DP_BROKER_INTERNAL_H_INCLUDED

#include "dp_broker.h"
#include "dp_link.h"
#include "dp_proto.h"
#include "dp_super.h"
#include "dp_progress.h"

typedef struct broker broker_t;
typedef struct client client_t;
typedef struct worker worker_t;
typedef struct job job_t;
typedef struct chunk chunk_t;
typedef struct block block_t;
typedef struct pending pending_t;

//  Items [item, item + n) of a received payload block (dp_span.c); holds a
//  reference on the block. A span with block NULL holds nothing.
typedef struct {
    block_t *block;
    uint32_t item;              //  first item, within the block
    uint32_t n;                 //  items
    size_t offset;              //  bytes of the block's data before them
    size_t size;                //  their bytes
} span_t;


//  A contiguous range of one job's items: the unit of dispatch, timing,
//  retry and blame (one CHUNK message may carry several).
struct chunk {
    job_t *job;                 //  NULL once the job is gone (orphan in flight)
    uint64_t first;
    uint32_t n;
    uint64_t id;                //  id of the current dispatch (0: not in flight)
    uint32_t attempts;          //  times it killed a worker (1-item chunks)
    worker_t *worker;           //  worker running it, or NULL
    span_t in;                  //  the items, kept until answered
    span_t out;                 //  the answers, once done
    uint64_t ns;                //  task time reported by the worker
    bool done;
    bool suspect;               //  was on a worker that died: runs alone
    int64_t dispatched_ms;      //  when it went to its worker
    uint32_t timeout_ms;        //  the per-item timeout it went with (0: none)
    chunk_t *backup;            //  speculative copy running elsewhere
    chunk_t *primary;           //  for a backup copy: the chunk it races
    uint64_t *avoid;            //  BATCH.avoid: node tags not to run on, or NULL
    uint32_t navoid;
    link_t order;               //  in job->chunks, index order
    link_t queue;               //  in job->pending, or worker->inflight
};

struct job {
    client_t *client;
    uint32_t id;
    char task [DP_MAX_NAME + 1];
    bool ordered;
    uint32_t max_attempts;
    uint64_t next_first;        //  index the next BATCH must start at
    uint64_t total;             //  set by END
    bool ended;
    bool done_sent;             //  the last RESULTS said done: no DONE
    uint64_t answered;          //  items sent back to the client
    uint64_t failed;
    int64_t created_ms;
    bool noworker;              //  failed for want of a worker with the task
    uint32_t timeout_ms;        //  per item, absolute (0: none)
    uint32_t tpct;              //  per item, % of the median item time (0: none)
    uint32_t weight;            //  its share: weight x QUANTUM_NS of work a turn (>= 1)
    int64_t deficit_ns;         //  work it may still dispatch in its turn (< 0: ahead)
    uint32_t inflight;          //  its chunks on workers now
    uint32_t samples [64];      //  recent per-item task times, µs (ring)
    uint32_t nsamples;
    uint32_t median_us;         //  of samples, refreshed every 8 new ones
    bool no_spec;               //  JOB.spec OFF: never a backup copy
    bool parts;                 //  JOB.parts: its client takes PARTs
    uint64_t backups;           //  backup copies run (told in RESULTS, DONE)
    uint64_t in_bytes;          //  item bytes received, not yet answered (window)
    link_t chunks;              //  chunks not yet sent back, index order
    link_t pending;             //  chunks waiting for a worker
    link_t ready;               //  in broker->ready while pending is not empty
    link_t by_client;           //  in client->jobs
    link_t answers;             //  in broker->answers: results came, not yet delivered
};

struct client {
    char key [32];              //  hex routing id
    zmq_msg_t rid;
    int64_t expiry_ms;
    int64_t last_send_ms;
    uint32_t hb;
    uint64_t outstanding;       //  items received, not yet answered
    uint64_t outstanding_bytes;
    uint32_t njobs;             //  open jobs (bounded: CLIENT_MAX_JOBS)
    bool blocked;               //  a RESULTS or DONE found its pipe full: retry
    link_t backlog;             //  messages waiting for room in its pipe (dp_guard.c)
    uint32_t backlog_notes;     //  of them, not job-ending ERRORs (bounded)
    uint32_t backlog_reports;   //  of them, REPORTs (bounded)
    uint32_t held;              //  of them, ERRORs that ended a job: hold a job slot
    pending_t *parts_head, *parts_tail;     //  PARTs waiting for its pipe (dp_stream.c)
    link_t jobs;
    zhashx_t *job_index;        //  job id -> job_t (job_index_new)
    char name [DP_MAX_NAME + 1];    //  HELLO.host, for status
};

struct worker {
    char key [32];
    zmq_msg_t rid;
    zhashx_t *tasks;            //  task name -> (void *) 1
    uint32_t credit;            //  the most chunks it accepts (READY)
    uint32_t inflight_count;
    uint64_t chunk_ns;          //  recent task time per chunk (EWMA; 0: none yet)
    link_t inflight;            //  chunks, via chunk->queue
    link_t available;           //  in broker->available while credit is left
    int64_t expiry_ms;
    int64_t heard_ms;           //  its last message
    int64_t last_send_ms;
    uint32_t hb;                //  its interval for liveness (at most GUARD_MAX_HB_MS)
    pid_t pid;
    int slot;                   //  local worker slot, or -1 for remote
    uint64_t node;              //  node token of a node's worker (0: none)
    uint64_t tag;               //  its public tag (dp_node_tag; 0: none)
    bool is_node;               //  a worker node (NODE), not a worker
    uint32_t slots;
    int64_t ready_ms;           //  when its READY (NODE) came
    char host [DP_MAX_NAME + 1];
    uint64_t chunks_done;
    int64_t last_result_ms;     //  its last RESULT: its head chunk ran from then on
    uint64_t items_done;        //  items it answered (a node: of its workers gone)
    uint64_t items_failed;      //  of them, not OK
    uint32_t restarts;          //  a node: its workers that died (DEATH)
    bool gone;                  //  known dead, loss not yet handled: no dispatch
    uint32_t strikes;           //  protocol errors (dp_guard.c); quarantined at GUARD_STRIKES
    bool benched;               //  no dispatch: stalled or quarantined (dp_guard.c)
    uint64_t id_lo, id_hi;      //  chunk ids it was sent this session (0: none)
    uint64_t id_base;           //  the last chunk id issued before its session began
    struct {                    //  the item whose output it streams (dp_stream.c)
        uint64_t chunk;         //  0: none yet
        uint32_t item;
        uint64_t next;          //  parts received (the next seq)
        uint64_t acked;         //  parts the client took
    } stream;
};

struct broker {
    dp_broker_opts_t opts;
    char **modules;             //  owned copies
    zsock_t *pipe;
    void *frontend, *backend;   //  raw libzmq handles of the ROUTER sockets
    zsock_t *frontend_sock, *backend_sock;
    void *monitor [2];          //  PAIRs receiving DISCONNECTED events (front, back)
    int64_t reprobe_at [2];     //  when to probe the peers again after one (0: no)
    int reprobes [2];
    char inproc [64];
    char ipc [160];             //  local workers' endpoint, or ""
    char ipc_path [128];
    bool bound [2];             //  opts.clients, opts.workers were bound (ipc files to remove)
    dp_curve_keys_t curve;      //  copy of *opts.curve (curve.on false: plaintext)
    char zap_domain [2][64];    //  ZAP domains of the client and worker sockets, or ""
    char worker_program [4096];
    zhashx_t *clients;          //  key -> client_t
    zhashx_t *workers;          //  key -> worker_t
    link_t ready;               //  jobs with pending chunks, deficit round-robin
    link_t answers;             //  ordered jobs with results to deliver (jobs_deliver)
    link_t available;           //  workers with credit left
    uint64_t next_chunk_id;
    dp_super_t *super;          //  local worker processes
    worker_t **local;           //  per supervisor slot: its registered worker
    int nlocal;
    uint64_t local_token;       //  node token of the local workers
    int64_t now_ms;             //  the one clock of scheduling: set from broker_now
    int64_t (*clock) (void);    //  broker_now's source, NULL: zclock_mono (tests inject one)
    //  where messages go instead of the sockets, NULL: the sockets (tests
    //  inject one); it may read the message, which is reset after it
    int (*sender) (broker_t *self, void *socket, zmq_msg_t *rid, dp_msg_t *msg);
    bool terminated;
    uint64_t dropped;           //  malformed messages dropped
    dp_msg_t msg;               //  scratch message for receiving
    struct {                    //  dp_guard.c
        int64_t log_second;     //  the second bad-input lines are counted in
        uint32_t log_lines;     //  lines logged in it
        uint64_t log_suppressed;    //  lines not logged since the last summary
        uint64_t strikes, quarantined, benched;     //  counters
        uint32_t njobs;         //  open jobs, all clients
        bool blocked;           //  some client is blocked (client->blocked)
        int64_t retry_ms;       //  when to retry blocked deliveries
        int64_t retry_ivl;      //  the next retry's wait (grows while blocked)
        int64_t conns;          //  connections open (accepted - disconnected)
        int64_t max_conns;      //  budget: the fd limit less a reserve
        uint64_t refused;       //  connections shut down over the budget
        uint64_t held;          //  messages that waited in a client's backlog
        uint64_t evicted;       //  idle workers evicted at --max-workers
        uint64_t undelivered;   //  ERROR/REPORT/WELCOME dropped: no room, no session
        //  the memory ceiling (--max-rss): the TCP connections accepted,
        //  their bytes received at the last sample, and cuts made
        int *fds;
        uint64_t *rx;
        size_t nfds, fds_cap;
        bool sampled;           //  rx holds the last tick's sample
        int64_t cut_ms;         //  when a connection was last cut
        uint64_t cuts;
    } guard;
    struct {                    //  counters for status and metrics (dp_metrics.c)
        uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
        uint64_t peers_dropped;
        uint64_t items_done, items_failed;
        uint64_t local_done, local_failed;  //  of local workers that are gone
        uint32_t local_restarts;
        int64_t started_ms;
    } stats;
};

//  dp_broker.c: the clock (monotonic ms), and sending to peers (messages
//  are consumed)
int64_t broker_now (broker_t *self);
int broker_send_client (broker_t *self, client_t *client, dp_msg_t *msg);
int broker_send_worker (broker_t *self, worker_t *worker, dp_msg_t *msg);
void broker_worker_lost (broker_t *self, worker_t *worker, const char *why);
void broker_worker_died (broker_t *self, worker_t *worker, const dp_death_t *death);
bool broker_any_worker_has (broker_t *self, const char *task);
int broker_send_to (broker_t *self, void *socket, zmq_msg_t *rid, dp_msg_t *msg);

#define QUEUE_NS    1000000         //  work to keep queued at a worker, ns
#define QUANTUM_NS  5000000         //  a job's work per turn of the fair share, ns
#define GROUP_MAX   64              //  chunks in one CHUNK at most
#define MERGE_BYTES 65536           //  small payloads copied into one message up to this

//  dp_jobs.c
chunk_t *chunk_new (job_t *job, uint64_t first, uint32_t n);
void chunk_destroy (chunk_t **self_p);
void job_queue (broker_t *broker, job_t *self, chunk_t *chunk, bool front);
job_t *job_new (broker_t *broker, client_t *client, dp_msg_t *msg);
void job_destroy (broker_t *broker, job_t **job_p);
job_t *job_lookup (client_t *client, uint32_t id);
zhashx_t *job_index_new (void);
int job_add_batch (broker_t *broker, job_t *job, dp_msg_t *msg, char *err, size_t errlen);
void job_end (broker_t *broker, job_t *job, uint64_t total);
void jobs_result (broker_t *broker, worker_t *worker, dp_msg_t *msg);
void jobs_requeue_worker (broker_t *broker, worker_t *worker, const char *reason);
void jobs_requeue_exact (broker_t *broker, worker_t *worker, const dp_death_t *death);
void jobs_check_noworker (broker_t *broker);
void job_fail_all (broker_t *broker, job_t *job, uint8_t status, const char *message);
void job_deliver (broker_t *broker, job_t *job);
void jobs_deliver (broker_t *broker);
void job_chunk_fail (broker_t *broker, chunk_t *chunk, uint8_t status, const char *message);

//  dp_dispatch.c
void jobs_dispatch (broker_t *broker);
uint32_t worker_limit (worker_t *worker);
void jobs_speculate (broker_t *broker);
void jobs_overrun (broker_t *broker);
worker_t *jobs_backup (broker_t *broker, chunk_t *chunk, bool idle_only);

//  dp_span.c
int span_take (span_t *whole, dp_msg_t *msg);
int span_from_batch (span_t *whole, dp_batch_t *batch, bool with_status);
void span_sub (span_t *self, const span_t *of, uint32_t from, uint32_t count);
void span_at (span_t *self, const span_t *whole, uint32_t item, size_t offset, uint32_t count);
void span_copy (span_t *self, const span_t *of);
void span_release (span_t *self);
uint32_t span_len (const span_t *self, uint32_t i);
uint8_t span_status (const span_t *self, uint32_t i);
int span_gather (span_t *const *spans, size_t count, dp_msg_t *msg, bool with_status);

//  dp_metrics.c: status replies, counters, Prometheus metrics
void metrics_publish (broker_t *self);
//  metrics_status returns the send's result (0, or -1 with errno)
int metrics_status (broker_t *self, zmq_msg_t *rid);
void metrics_result (broker_t *self, worker_t *worker, dp_msg_t *msg);
void metrics_worker_gone (broker_t *self, worker_t *worker);

//  dp_stream.c: a WPART from a worker (checked, forwarded as PART); an
//  ACK from a client (forwarded as WACK); send a client's waiting PARTs
//  (false: its pipe is still full); free them (the client is gone)
void stream_part (broker_t *broker, worker_t *worker, dp_msg_t *msg);
void stream_ack (broker_t *broker, client_t *client, dp_msg_t *msg);
bool stream_flush (broker_t *broker, client_t *client);
void stream_client_gone (broker_t *broker, client_t *client);

//  dp_spawn.c
int spawn_start (broker_t *self, char *err, size_t errlen);
void spawn_stop (broker_t *self);
int spawn_slot_by_pid (broker_t *self, pid_t pid);
//  Kill a local worker that went silent (stopped, stuck): it is replaced.
void spawn_kill_slot (broker_t *self, int slot, const char *reason);
bool spawn_all_registered (broker_t *self);

#endif
