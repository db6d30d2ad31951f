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
    =========================================================================
*/
#ifndef DPOOL_H_INCLUDED
#define DPOOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DPOOL_VERSION_MAJOR 0
#define DPOOL_VERSION_MINOR 1
#define DPOOL_VERSION_PATCH 0
#define DPOOL_VERSION_STRING "0.1.0"

typedef struct dp_pool dp_pool_t;
typedef struct dp_results dp_results_t;

//  Status of one item.
typedef enum {
    DP_OK           = 0,    //  the task's result
    DP_ERR_TASK     = 1,    //  the task failed; the message says why
    DP_ERR_DIED     = 2,    //  it killed its worker max_attempts times
    DP_ERR_TIMEOUT  = 3,    //  it outlived the job's timeout
    DP_ERR_CANCELLED= 4,    //  the job was cancelled before it ran
    DP_ERR_NOWORKER = 5     //  no worker has the task
} dp_status_t;

typedef struct {
    const char *endpoint;   //  broker endpoint; NULL: $DPOOL_BROKER, else embedded
    int workers;            //  embedded: local worker processes; <= 0: one per CPU
    const char *const *modules;    //  embedded: task modules (paths or names)
    size_t nmodules;
    int timeout_ms;         //  broker silence before an error (0: 3000)
    int heartbeat_ms;       //  heartbeat interval (0: 1000)
} dp_pool_opts_t;

typedef struct {
    const void *data;
    size_t len;
} dp_item_t;

typedef struct {
    uint32_t chunksize;     //  items per chunk; 0: automatic
    uint32_t max_attempts;  //  per item, counted when it kills a worker; 0: 3
    bool unordered;         //  deliver results as they arrive
    bool has_input_fd;      //  dp_map_stream: when input returns 2, also wait
    int input_fd;           //  for this fd to become readable
    volatile int *cancel;   //  if set, the job is cancelled once *cancel != 0
} dp_job_opts_t;

//  Open a pool. With opts NULL or opts->endpoint NULL, uses $DPOOL_BROKER if
//  set, else starts an embedded broker with local workers. Returns NULL on
//  failure; dp_strerror_last() then says why.
dp_pool_t *dp_pool_open (const dp_pool_opts_t *opts);

//  Close the pool (stops an embedded broker and its workers) and null the
//  caller's pointer.
void dp_pool_close (dp_pool_t **self_p);

//  Reason for the last failure of dp_pool_open, dp_map or dp_map_stream in
//  this thread (never NULL).
const char *dp_strerror_last (void);

//  Ordered, blocking map. On success *results holds n results (owned by the
//  caller, see dp_results_*) and the return is the number of failed items
//  (0 = all succeeded). Returns -1 on a pool error (broker lost, unknown
//  task with no worker at all, bad arguments): no results then.
long dp_map (dp_pool_t *self, const char *task, const dp_item_t *items,
             size_t n, const dp_job_opts_t *opts, dp_results_t **results);

size_t dp_results_count (const dp_results_t *self);
dp_status_t dp_results_status (const dp_results_t *self, size_t index);
//  Result bytes of an item (for a failed item: its message). Always followed
//  by a NUL byte. Valid until the results are destroyed.
const void *dp_results_data (const dp_results_t *self, size_t index, size_t *len);
//  Index of the first failed item, or -1 if none; its message with *reason.
long dp_results_first_failure (const dp_results_t *self, const char **reason);
void dp_results_destroy (dp_results_t **self_p);

//  Streaming map with lazy input. `input` is called for the next item when
//  the flow-control window has room: it sets *data/*len (the bytes must stay
//  valid until the next call) and returns 1, or returns 0 at the end of the
//  input, or -1 to abort the job, or 2 when no item is ready yet (the pool
//  then waits for results, or for opts->input_fd to become readable, and
//  asks again). `output` is called once per item, in input
//  order (or as results arrive with opts->unordered); `data` is valid during
//  the call only; returning non-zero aborts the job.
//  Returns the number of failed items, or -1 on a pool error or abort.
typedef int (dp_input_fn) (void *arg, const void **data, size_t *len);
typedef int (dp_output_fn) (void *arg, uint64_t index, dp_status_t status,
                            const void *data, size_t len);

long dp_map_stream (dp_pool_t *self, const char *task,
                    const dp_job_opts_t *opts, dp_input_fn *input,
                    dp_output_fn *output, void *arg);

//  Name of a status ("ok", "task failed", ...).
const char *dp_status_name (dp_status_t status);

#ifdef __cplusplus
}
#endif

#endif
