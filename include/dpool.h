/*  =========================================================================
    dpool.h - libdpool, the client API

    Open a pool, map a task over items, read results in input order, close:

        dp_pool_t *pool = dp_pool_open (NULL);          //  embedded pool
        dp_item_t items [3] = {{"1", 1}, {"2", 1}, {"3", 1}};
        dp_results_t *res;
        if (dp_map (pool, "square", items, 3, NULL, &res) >= 0) {
            for (size_t i = 0; i < 3; i++) {
                size_t len;
                const char *r = dp_results_data (res, i, &len);
                printf ("%.*s\n", (int) len, r);
            }
            dp_results_destroy (&res);
        }
        dp_pool_close (&pool);

    A pool is one connection to one broker: a remote one (an endpoint, or
    DPOOL_BROKER from the environment) or an embedded one — a broker thread
    inside the calling process with local worker processes it starts.
    A pool object is not thread-safe: use it from one thread at a time.

    Several jobs may run at once on one pool — iterators (dp_imap), futures
    (dp_submit, dp_map_async), callback jobs (dp_job_start) and blocking
    maps — and share the broker's window fairly. A pool makes progress
    (sends input, takes results, runs callbacks) only inside the calls
    that wait on it: dp_map, dp_map_stream, dp_starmap, dp_iter_next,
    dp_future_wait, dp_future_done, dp_job_wait and dp_pool_poll. Its
    session stays alive in between: libzmq's I/O thread answers the
    broker's ZMTP heartbeats, so a program may compute for minutes between
    calls and keep its jobs (their results wait in the socket).

    Callbacks (input, output, dp_future_on_done) run inside those calls.
    From a callback you may start jobs, submit, cancel, read progress and
    destroy futures, but not wait: a waiting call made from a callback
    returns an error ("called from inside a callback").
    =========================================================================
*/
#ifndef DPOOL_H_INCLUDED
#define DPOOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  DP_EXPORT marks the public functions: libdpool is built with hidden
//  visibility (-fvisibility=hidden), so only these leave the library.
#ifndef DP_EXPORT
#   define DP_EXPORT __attribute__ ((visibility ("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define DPOOL_VERSION_MAJOR 0
#define DPOOL_VERSION_MINOR 1
#define DPOOL_VERSION_PATCH 0
#define DPOOL_VERSION_STRING "0.1.0"

typedef struct dp_pool dp_pool_t;
typedef struct dp_results dp_results_t;
typedef struct dp_job dp_job_t;
typedef struct dp_iter dp_iter_t;
typedef struct dp_future dp_future_t;

//  Status of one item: its kind of failure. A failed item's data is a
//  message ("item is fail", "worker died: SIGSEGV, 3 attempts", ...).
typedef enum {
    DP_OK           = 0,    //  the task's result
    DP_ERR_TASK     = 1,    //  the task failed; the message says why
    DP_ERR_DIED     = 2,    //  it killed its worker max_attempts times
                            //  (the message names the signal)
    DP_ERR_TIMEOUT  = 3,    //  it outlived the job's timeout
    DP_ERR_CANCELLED= 4,    //  the job was cancelled before it ran
    DP_ERR_NOWORKER = 5,    //  no worker has the task
    DP_ERR_POOL     = 6,    //  the pool failed first (broker lost, pool
                            //  closed): never sent by a broker
    DP_PENDING      = 7     //  not answered yet (futures)
} dp_status_t;

//  Returned by the waiting calls (dp_iter_next, dp_job_wait) when their
//  timeout passed, or a signal interrupted the wait, before the answer.
#define DP_TIMEOUT  (-2)

typedef struct {
    const char *endpoint;   //  broker endpoint; NULL: $DPOOL_BROKER, else embedded
    int workers;            //  embedded: local worker processes; <= 0: one per
                            //  usable CPU (affinity mask, cgroup quota: as nproc)
    const char *const *modules;    //  embedded: task modules (paths or names)
    size_t nmodules;
    int timeout_ms;         //  broker silence before an error (0: 3000)
    int heartbeat_ms;       //  heartbeat interval (0: 1000, or timeout_ms / 3 if less)
    const char *init_args;  //  embedded: arguments for the modules' initializers,
                            //  run once in each worker process (NULL: "")
    uint32_t max_tasks_per_child;   //  embedded: replace a worker process after
                                    //  this many items (0: never); it finishes
                                    //  the CHUNK that reaches the count (one
                                    //  chunk, or a group of ~0.5 ms of tiny ones)
    uint32_t mem_limit_mb;  //  embedded: address-space limit of each worker
                            //  process; an item that exhausts it fails
                            //  "out of memory" (0: none)
    int mode;               //  which pool: DP_POOL_AUTO (0): `endpoint` if
                            //  set; else embedded when workers > 0 or modules
                            //  are given (never silently sent to
                            //  $DPOOL_BROKER); else $DPOOL_BROKER if set; else
                            //  embedded. DP_POOL_EMBEDDED: always embedded
                            //  (endpoint and $DPOOL_BROKER ignored).
                            //  DP_POOL_REMOTE: `endpoint`, else $DPOOL_BROKER,
                            //  else the running broker of the server
                            //  directory, else dp_pool_open fails.
                            //  DP_POOL_AUTO with none of these asked for
                            //  also uses the server directory's running
                            //  broker before an embedded pool.
    const char *curve_secret;   //  remote: our secret key file (PATH_secret of
                                //  `dpool keygen PATH`) and the broker's public
    const char *broker_key;     //  key file: CURVE authentication and
                                //  encryption (both or neither). Neither: the
                                //  server directory's keys ($DPOOL_SERVER_DIR,
                                //  else ~/.dpool/server) when it lists the
                                //  endpoint; else plaintext
} dp_pool_opts_t;

#define DP_POOL_AUTO        0
#define DP_POOL_EMBEDDED    1
#define DP_POOL_REMOTE      2

typedef struct {
    const void *data;
    size_t len;
} dp_item_t;

//  A part of one item's output, streamed ahead of its result (only the
//  built-in "exec" task streams, and only what is over 1 MiB): `index` is
//  the item, `attempt` names the run that printed it (a retried item's
//  new run has another), `seq` counts the parts of that run from 0, `fd`
//  is 1 (stdout) or 2 (stderr); `data` is valid during the call only. The
//  result's "parts" says how many parts came before it. The pool takes
//  the next part only once the call has returned, so a slow callback
//  slows the command down instead of filling memory.
typedef void (dp_part_fn) (void *arg, uint64_t index, uint64_t attempt, uint64_t seq,
                           int fd, const void *data, size_t len);

//  Options of one job; all zero is the default. Fields may be added at the
//  end: initialise with `= { 0 }` or designated initialisers.
typedef struct {
    uint32_t chunksize;     //  items per chunk: the unit a worker runs, is
                            //  timed, retried and blamed as; 0: automatic
                            //  (~5 ms of work each, smaller at the tail).
                            //  Small chunks still travel many per message
    uint32_t max_attempts;  //  per item, counted when it kills a worker; 0: 3
    bool unordered;         //  deliver results as they arrive
    bool has_input_fd;      //  lazy input: when input returns 2, also wait
    int input_fd;           //  for this fd to become readable
    volatile int *cancel;   //  if set, the job is cancelled once *cancel != 0
                            //  (seen at the next pool call), as by
                            //  dp_job_cancel: every item already sent is still
                            //  answered once (DP_ERR_CANCELLED if it did not
                            //  run), then the job ends failed ("job cancelled")
    uint32_t timeout_ms;    //  per-item task timeout: the process running an
                            //  item that outlives it is killed and the item
                            //  fails DP_ERR_TIMEOUT; 0: none
    uint32_t timeout_pct;   //  or, when timeout_ms is 0: a timeout of this
                            //  percentage of the job's median item time, once
                            //  3 items are timed (GNU parallel's --timeout N%)
    uint32_t weight;        //  share of the workers and of the pool's window
                            //  against the other jobs; 0: 1
    uint32_t speculate;     //  backup copies: near the end of the job, an idle
                            //  worker may run a copy of a chunk held by a
                            //  straggling worker (one whose running chunk took
                            //  over 4x the job's median item time, at least
                            //  100 ms); the first answer wins, so the item may
                            //  run twice. DP_SPECULATE_AUTO (0): on, except for
                            //  the built-in "exec" task (commands may have side
                            //  effects); DP_SPECULATE_ON; DP_SPECULATE_OFF: no
                            //  item of the job ever runs twice
    dp_part_fn *on_part;    //  take big output in parts (dp_part_fn), called
    void *part_arg;         //  inside pool calls as results are; NULL: none,
                            //  an exec item's output is then whole in its
                            //  result, at most 128 MiB
} dp_job_opts_t;

#define DP_SPECULATE_AUTO   0
#define DP_SPECULATE_ON     1
#define DP_SPECULATE_OFF    2

//  Open a pool: a remote one (opts->endpoint, or $DPOOL_BROKER) or an
//  embedded broker with local workers, as opts->mode says (opts NULL: all
//  defaults, so $DPOOL_BROKER if set, else embedded). A malformed endpoint
//  fails at once. Returns NULL on failure; dp_strerror_last() says why.
DP_EXPORT dp_pool_t *dp_pool_open (const dp_pool_opts_t *opts);

//  Close the pool (stops an embedded broker and its workers) and null the
//  caller's pointer. Jobs still running fail with DP_ERR_POOL "pool closed"
//  (their futures' on_done callbacks run here); iterators, futures and jobs
//  of the pool must still be destroyed by their owner, before or after.
DP_EXPORT void dp_pool_close (dp_pool_t **self_p);

//  Make progress on every job of the pool: send input the window allows,
//  take results, run callbacks. Waits up to timeout_ms for a message from
//  the broker (0: take what is there and return; -1: up to one heartbeat
//  interval).
//  Returns 0, or -1 if the pool failed (its jobs then failed with
//  DP_ERR_POOL) or when called from inside a callback.
DP_EXPORT int dp_pool_poll (dp_pool_t *self, int timeout_ms);

//  Jobs of the pool not finished yet: open at the broker (at most 256 at
//  once; more wait their turn in the pool, FIFO), or waiting to open.
DP_EXPORT size_t dp_pool_jobs (const dp_pool_t *self);

//  Python's Pool.close, .join and .terminate (dp_pool_close frees the pool:
//  it is Pool.__exit__, which terminates).
//
//  Seal the pool: from now on no new job may start on it (dp_map, dp_imap,
//  dp_submit, ... fail with "the pool takes no new jobs"); jobs already
//  started run to their end. Returns 0, or -1 if self is NULL.
DP_EXPORT int dp_pool_seal (dp_pool_t *self);

//  Wait up to timeout_ms (-1: no limit) until every job of the pool has
//  finished (jobs that callbacks start meanwhile too; seal the pool first
//  to wait only for those already started). Callbacks run as in any wait.
//  An iterator's job advances only as its results are taken: join does
//  not take them. Returns 0, DP_TIMEOUT (or a signal cut the wait), or -1
//  if the pool failed (its jobs then failed with DP_ERR_POOL) or when
//  called from inside a callback.
DP_EXPORT int dp_pool_join (dp_pool_t *self, int timeout_ms);

//  Stop every job of the pool at once and seal it. Items running are
//  aborted on their workers (a worker still in the item is killed), and
//  every item sent and not yet answered is answered DP_ERR_CANCELLED with
//  the message "terminated"; each job then ends failed, DP_ERR_CANCELLED
//  "pool terminated" (futures are done, iterators end with -1, dp_map
//  returns -1). The answers take one round trip to the broker and are
//  taken here (called from a callback: by the pool call running it).
//  Returns 0, or -1 if self is NULL.
DP_EXPORT int dp_pool_terminate (dp_pool_t *self);

//  Reason for the last failure of a dpool call in this thread (never NULL).
DP_EXPORT const char *dp_strerror_last (void);

//  Name of a status ("ok", "task failed", ...).
DP_EXPORT const char *dp_status_name (dp_status_t status);


//  --------------------------------------------------------------------------
//  Blocking map over an array

//  Ordered, blocking map. On success *results holds n results (owned by the
//  caller, see dp_results_*) and the return is the number of failed items
//  (0 = all succeeded): like Pool.map raising its first exception, see
//  dp_results_first_failure for the first failed item, its kind and
//  message. Returns -1 on a pool error (broker lost, unknown task with no
//  worker at all, bad arguments): no results then.
DP_EXPORT long dp_map (dp_pool_t *self, const char *task, const dp_item_t *items,
             size_t n, const dp_job_opts_t *opts, dp_results_t **results);

//  Blocking single call (Pool.apply): runs `task` on one item and waits.
//  Returns DP_OK (0) with the result in *result, or the failure's kind
//  (DP_ERR_TASK, DP_ERR_DIED, ...: > 0) with its message there; read it
//  with dp_results_data (*result, 0, &len), free it with
//  dp_results_destroy. Returns -1 on a pool error: *result is NULL then.
DP_EXPORT int dp_apply (dp_pool_t *self, const char *task, const void *data, size_t len,
              const dp_job_opts_t *opts, dp_results_t **result);

DP_EXPORT size_t dp_results_count (const dp_results_t *self);
DP_EXPORT dp_status_t dp_results_status (const dp_results_t *self, size_t index);
//  Result bytes of an item (for a failed item: its message). Always followed
//  by a NUL byte. Valid until the results are destroyed.
DP_EXPORT const void *dp_results_data (const dp_results_t *self, size_t index, size_t *len);
//  Index of the first failed item, or -1 if none; its message with *reason.
DP_EXPORT long dp_results_first_failure (const dp_results_t *self, const char **reason);
//  Number of failed items (status other than DP_OK).
DP_EXPORT size_t dp_results_failed (const dp_results_t *self);
DP_EXPORT void dp_results_destroy (dp_results_t **self_p);


//  --------------------------------------------------------------------------
//  Streaming map with callbacks

//  Lazy input: `input` is called for the next item only when the pool's
//  window has room: it sets *data/*len (the bytes must stay valid until the
//  next call) and returns 1, or returns 0 at the end of the input, or -1 to
//  abort the job, or 2 when no item is ready yet (the pool then waits for
//  results, or for opts->input_fd to become readable, and asks again).
//  `output` is called once per item, in input order (or as results arrive
//  with opts->unordered); `data` is valid during the call only (a NUL byte
//  follows it); returning non-zero aborts the job.
typedef int (dp_input_fn) (void *arg, const void **data, size_t *len);
typedef int (dp_output_fn) (void *arg, uint64_t index, dp_status_t status,
                            const void *data, size_t len);

//  Blocking streaming map. Returns the number of failed items, or -1 on a
//  pool error, a cancel (opts->cancel) or an abort by a callback.
DP_EXPORT long dp_map_stream (dp_pool_t *self, const char *task,
                    const dp_job_opts_t *opts, dp_input_fn *input,
                    dp_output_fn *output, void *arg);

//  The same job, started without waiting: the callbacks run inside later
//  pool calls (dp_job_wait, dp_pool_poll, or waits on other jobs). Returns
//  NULL on a pool error (dp_strerror_last says why).
DP_EXPORT dp_job_t *dp_job_start (dp_pool_t *pool, const char *task,
                        const dp_job_opts_t *opts, dp_input_fn *input,
                        dp_output_fn *output, void *arg);

//  Wait up to timeout_ms (-1: no limit) for the job to finish. Returns what
//  dp_map_stream returns (failed items >= 0, or -1 with dp_strerror_last
//  set) once it has finished, or DP_TIMEOUT.
DP_EXPORT long dp_job_wait (dp_job_t *job, int timeout_ms);

//  Cancel the job: no more input is read or dispatched; items not yet run
//  are answered DP_ERR_CANCELLED through the output callback, then the job
//  finishes. Returns 0, or -1 if it had already finished.
DP_EXPORT int dp_job_cancel (dp_job_t *job);

//  Progress of a job, filled by dp_job_progress, dp_iter_progress and
//  dp_future_progress. Never fails on a valid handle (returns 0).
typedef struct {
    uint64_t sent;          //  items read from the input and sent
    uint64_t done;          //  items answered (ok or failed)
    uint64_t failed;        //  of which failed
    uint64_t total;         //  items in the job once known, else 0
    bool total_known;       //  the input has ended (or was an array)
    bool finished;          //  every item answered, or the job failed
    double elapsed_s;       //  since the job started
    double rate;            //  items answered per second, recently
    double eta_s;           //  seconds left at that rate; -1: unknown
    uint64_t backups;       //  backup copies of straggling chunks the broker
                            //  ran for the job (see dp_job_opts_t.speculate)
} dp_progress_t;

DP_EXPORT int dp_job_progress (const dp_job_t *job, dp_progress_t *progress);

//  Destroy the job handle and null the pointer; an unfinished job is
//  cancelled first (its output callback is not called again).
DP_EXPORT void dp_job_destroy (dp_job_t **job_p);


//  --------------------------------------------------------------------------
//  Iterators: imap and imap_unordered

//  One result of an iterator. `data` (followed by a NUL byte) stays valid
//  until the next dp_iter_next or dp_iter_destroy.
typedef struct {
    uint64_t index;         //  0-based index of the item in the input
    dp_status_t status;     //  DP_OK, or the kind of failure
    const void *data;       //  result bytes, or the failure's message
    size_t len;
} dp_result_t;

//  Start a job over lazy input (see dp_input_fn; `arg` is its argument) and
//  return an iterator over its results, in input order (dp_imap) or as they
//  arrive (dp_imap_unordered). Results are buffered only up to the pool's
//  window: the input is read as the caller takes results. Returns NULL on a
//  pool error (dp_strerror_last says why).
DP_EXPORT dp_iter_t *dp_imap (dp_pool_t *pool, const char *task, const dp_job_opts_t *opts,
                    dp_input_fn *input, void *arg);
DP_EXPORT dp_iter_t *dp_imap_unordered (dp_pool_t *pool, const char *task,
                              const dp_job_opts_t *opts, dp_input_fn *input, void *arg);

//  The same over an array of n items (not copied: they must stay valid
//  until the iterator has ended or is destroyed).
DP_EXPORT dp_iter_t *dp_imap_items (dp_pool_t *pool, const char *task, const dp_item_t *items,
                          size_t n, const dp_job_opts_t *opts);

//  Next result, waiting up to timeout_ms (-1: no limit). Returns 1 with a
//  result in *out, 0 at the end (every item was delivered), DP_TIMEOUT,
//  or -1 if the job failed as a whole (broker lost, no worker has the
//  task, input aborted; dp_strerror_last says why).
DP_EXPORT int dp_iter_next (dp_iter_t *self, dp_result_t *out, int timeout_ms);

//  Cancel: no more input is read or dispatched; dp_iter_next goes on
//  with the results that come back, items not run as DP_ERR_CANCELLED,
//  then 0. Returns 0, or -1 if the job had already finished.
DP_EXPORT int dp_iter_cancel (dp_iter_t *self);

DP_EXPORT int dp_iter_progress (const dp_iter_t *self, dp_progress_t *progress);

//  Destroy the iterator and null the pointer; an unfinished job is
//  cancelled (the pool drops its remaining results).
DP_EXPORT void dp_iter_destroy (dp_iter_t **self_p);


//  --------------------------------------------------------------------------
//  Futures: one call, or a whole map, running while the caller goes on

//  Submit one call of `task` on the item (copied). Messages are pipelined:
//  a submit does not wait for the broker. Returns NULL on a pool error.
DP_EXPORT dp_future_t *dp_submit (dp_pool_t *pool, const char *task, const void *data,
                        size_t len, const dp_job_opts_t *opts);

//  Submit a map of task over n items (not copied: they must stay valid
//  until the future is done or destroyed). Returns NULL on a pool error.
DP_EXPORT dp_future_t *dp_map_async (dp_pool_t *pool, const char *task,
                           const dp_item_t *items, size_t n, const dp_job_opts_t *opts);

//  Wait up to timeout_ms (-1: no limit; 0: just look) for the future.
//  Returns 0 when it is done (successfully or not: see dp_future_status),
//  1 on timeout (or a signal interrupted the wait), -1 when called from
//  inside a callback.
DP_EXPORT int dp_future_wait (dp_future_t *self, int timeout_ms);

//  Is the future done? Takes the results already arrived (no waiting).
DP_EXPORT bool dp_future_done (dp_future_t *self);

//  Once done: DP_OK when the call (every item of a map) succeeded; else the
//  kind of failure: of the call, of a map's first failed item, or of the
//  whole job (DP_ERR_NOWORKER, DP_ERR_POOL, DP_ERR_CANCELLED). DP_PENDING
//  while not done.
DP_EXPORT dp_status_t dp_future_status (const dp_future_t *self);

//  Once done: dp_submit's result bytes, or the failure's message (for a map:
//  the first failure's message, "" if none). NUL-terminated, valid until
//  the future is destroyed. "" while not done.
DP_EXPORT const void *dp_future_data (const dp_future_t *self, size_t *len);

//  Once done: the results, one per item (one for dp_submit), owned by the
//  future. NULL while not done, or when the job failed as a whole.
DP_EXPORT const dp_results_t *dp_future_results (const dp_future_t *self);

//  Cancel: the future is done at once with DP_ERR_CANCELLED for every item
//  not answered yet (results already in are kept), and the broker stops
//  dispatching its items. Returns 0, or -1 if it was already done.
DP_EXPORT int dp_future_cancel (dp_future_t *self);

//  Call `fn (future, arg)` once when the future is done. It runs inside the
//  pool call that completes the future: a wait on any job of the pool
//  (dp_future_wait, dp_future_done, dp_iter_next, dp_job_wait, dp_map,
//  dp_pool_poll), dp_future_cancel, or dp_pool_close; or here, before
//  dp_future_on_done returns, if the future is already done. The callback
//  may destroy the future. A second call replaces the callback. Returns 0.
typedef void (dp_future_fn) (dp_future_t *future, void *arg);
DP_EXPORT int dp_future_on_done (dp_future_t *self, dp_future_fn *fn, void *arg);

DP_EXPORT int dp_future_progress (const dp_future_t *self, dp_progress_t *progress);

//  Destroy the future and null the pointer; one not done is cancelled.
DP_EXPORT void dp_future_destroy (dp_future_t **self_p);


//  --------------------------------------------------------------------------
//  Tasks defined in the calling program (a fork server)

//  An embedded pool can run functions of the program itself, with no task
//  module, as the `forkserver` of Python's multiprocessing: at the top of
//  main, dp_forkserver_start forks a small single-threaded copy of the
//  program, and later every local worker (and every re-start after a
//  crash) is forked from that copy, holding the registered tasks (and
//  loading the pool's modules as well). Remote pools ignore host tasks.
//
//  The one rule: register tasks and call dp_forkserver_start at the top
//  of main, before any thread or pool exists.
//
//      static int shout (dp_task_t *t, const void *in, size_t len) {
//          return dp_task_printf (t, "%.*s!", (int) len, (const char *) in);
//      }
//      int main (void) {
//          dp_register_task ("shout", shout);
//          if (dp_forkserver_start ()) return 1;
//          dp_pool_t *pool = dp_pool_open (NULL);     //  embedded
//          ...dp_map (pool, "shout", ...)...
//
//  Workers see the program as it was when the server started (globals,
//  environment, open files): set up what the tasks need before that. Once
//  tasks are registered, an embedded dp_pool_open fails (with that rule in
//  dp_strerror_last) unless the server runs. It ends with the program.
#include "dpool_task.h"

//  Register a task of this program under `name` (1 to 128 bytes; not
//  "exec"). Returns 0, or -1 (bad or duplicate name, server already
//  started; dp_strerror_last says why).
DP_EXPORT int dp_register_task (const char *name, dp_task_fn *fn);

//  Start the fork server. Call it once, at the top of main, after the
//  dp_register_task calls and before any thread or pool exists. Returns 0
//  (also when it runs already), or -1 (threads already run; fork failed).
DP_EXPORT int dp_forkserver_start (void);

//  Stop the fork server now (it stops by itself when the program exits),
//  after the pools that use it are closed: it kills and reaps any worker
//  still running, and is reaped here. Optional.
DP_EXPORT void dp_forkserver_stop (void);

#ifdef __cplusplus
}
#endif

#endif
