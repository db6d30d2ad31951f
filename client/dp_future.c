/*  =========================================================================
    dp_future - futures: one call (dp_submit) or a whole map (dp_map_async)

    A future owns an unordered job with an array input and a results
    array filled by index. dp_submit sends JOB, BATCH and END at once
    without waiting for the broker, so thousands of submits are
    pipelined; the pool's window and fair share apply as to any job.

    When the job ends, the future takes its outcome, frees the job and
    runs its on_done callback. The callback may destroy the future: while
    a future is in use inside one of its own calls (a wait, a callback),
    destruction is deferred to the end of that call.
    =========================================================================
*/
#include "dp_client.h"

#include <string.h>

struct dp_future {
    dp_job_t *job;              //  while not done
    bool done, cancelled;
    dp_status_t status;
    dp_results_t *results;      //  NULL when the job failed as a whole
    char *message;              //  the job's failure, or NULL
    void *copy;                 //  dp_submit: the item's bytes
    dp_item_t item;
    dp_future_fn *fn;
    void *fn_arg;
    dp_progress_t final;        //  progress when it ended
    int busy;                   //  inside one of its own calls
    bool destroy_pending;
};

static void
s_free (dp_future_t *self)
{
    if (self->job)
        cjob_release (&self->job);
    dp_results_destroy (&self->results);
    free (self->message);
    free (self->copy);
    free (self);
}

//  Leave one of the future's own calls; frees a future destroyed meanwhile.
//  Returns true if it was freed.
static bool
s_leave (dp_future_t *self)
{
    if (--self->busy == 0 && self->destroy_pending) {
        s_free (self);
        return true;
    }
    return false;
}

//  The future is done: run its callback (last thing touching it).
static void
s_complete (dp_future_t *self)
{
    self->done = true;
    dp_future_fn *fn = self->fn;
    self->fn = NULL;
    if (fn) {
        self->busy++;
        fn (self, self->fn_arg);
        s_leave (self);
    }
}

//  Status of a finished map: DP_OK, or the first failed item's.
static dp_status_t
s_results_status (dp_results_t *results)
{
    long first = dp_results_first_failure (results, NULL);
    return first < 0 ? DP_OK : dp_results_status (results, (size_t) first);
}

//  The job's end hook: take its outcome, free it, complete the future.
static void
s_on_end (dp_job_t *job, void *owner)
{
    dp_future_t *self = (dp_future_t *) owner;
    cjob_progress (job, &self->final);
    if (job->state == JOB_FAILED) {
        self->status = job->error_status;
        self->message = strdup (job->error);
        dp_results_destroy (&self->results);
    }
    else
        self->status = s_results_status (self->results);
    cjob_release (&self->job);
    s_complete (self);
}

static dp_future_t *
s_future_new (dp_pool_t *pool, const char *task, const dp_item_t *items, size_t n,
              const dp_job_opts_t *opts, const void *copy_data, size_t copy_len)
{
    dp_job_t *job = cjob_new (pool, task, opts);
    if (!job)
        return NULL;
    dp_future_t *self = (dp_future_t *) zmalloc (sizeof (dp_future_t));
    self->status = DP_PENDING;
    self->results = cresults_new (n);
    if (copy_data) {
        self->copy = malloc (copy_len + 1);
        if (self->copy)
            memcpy (self->copy, copy_data, copy_len);
        self->item = (dp_item_t) { self->copy, copy_len };
        items = &self->item;
    }
    self->job = job;
    if (!self->results || (copy_data && !self->copy)) {
        client_set_error ("out of memory");
        s_free (self);
        return NULL;
    }
    job->opts.unordered = true;     //  results go by index
    job->items = items;
    job->nitems = n;
    job->output = cresults_output;
    job->output_arg = self->results;
    if (cjob_start (job) != 0) {
        s_free (self);
        return NULL;
    }
    job->on_end = s_on_end;         //  after the start: no hook while we build
    job->owner = self;
    return self;
}

dp_future_t *
dp_submit (dp_pool_t *pool, const char *task, const void *data, size_t len,
           const dp_job_opts_t *opts)
{
    if (len && !data) {
        client_set_error ("invalid arguments");
        return NULL;
    }
    return s_future_new (pool, task, NULL, 1, opts, data ? data : "", len);
}

dp_future_t *
dp_map_async (dp_pool_t *pool, const char *task, const dp_item_t *items, size_t n,
              const dp_job_opts_t *opts)
{
    if (n && !items) {
        client_set_error ("invalid arguments");
        return NULL;
    }
    return s_future_new (pool, task, items, n, opts, NULL, 0);
}

int
dp_future_wait (dp_future_t *self, int timeout_ms)
{
    if (!self) {
        client_set_error ("invalid arguments");
        return -1;
    }
    if (self->done)
        return 0;
    dp_pool_t *pool = self->job->pool;
    if (!cpool_check_caller (pool))
        return -1;
    int64_t deadline = cpool_deadline (timeout_ms);
    int rc = 1;
    self->busy++;
    while (true) {
        cpool_pump (pool, cpool_wait_left (deadline));
        if (self->done) {
            rc = 0;
            break;
        }
        if ((deadline >= 0 && zclock_mono () >= deadline) || pool->interrupted)
            break;
    }
    s_leave (self);                 //  the callback may have destroyed it
    return rc;
}

bool
dp_future_done (dp_future_t *self)
{
    if (!self)
        return false;
    if (!self->done && !self->job->pool->pumping) {
        self->busy++;
        cpool_pump (self->job->pool, 0);
        bool done = self->done;
        return s_leave (self) ? true : done;
    }
    return self->done;
}

dp_status_t
dp_future_status (const dp_future_t *self)
{
    return self ? self->status : DP_ERR_POOL;
}

const void *
dp_future_data (const dp_future_t *self, size_t *len)
{
    const char *data = "";
    size_t size = 0;
    if (self && self->done && self->message) {
        data = self->message;
        size = strlen (data);
    }
    else
    if (self && self->done && self->results) {
        long first = dp_results_first_failure (self->results, NULL);
        if (first >= 0 || dp_results_count (self->results) == 1)
            data = (const char *) dp_results_data (self->results, first >= 0 ? (size_t) first : 0, &size);
    }
    if (len)
        *len = size;
    return data;
}

const dp_results_t *
dp_future_results (const dp_future_t *self)
{
    return self && self->done ? self->results : NULL;
}

int
dp_future_cancel (dp_future_t *self)
{
    if (!self || self->done)
        return -1;
    cjob_progress (self->job, &self->final);
    cjob_release (&self->job);       //  the broker gets CANCEL
    if (self->results)
        cresults_settle (self->results, DP_ERR_CANCELLED, "cancelled");
    self->status = DP_ERR_CANCELLED;
    self->cancelled = true;
    self->final.finished = true;
    s_complete (self);
    return 0;
}

int
dp_future_on_done (dp_future_t *self, dp_future_fn *fn, void *arg)
{
    if (!self)
        return -1;
    self->fn = fn;
    self->fn_arg = arg;
    if (self->done && fn) {
        self->busy++;
        s_complete (self);
        s_leave (self);
    }
    return 0;
}

int
dp_future_progress (const dp_future_t *self, dp_progress_t *progress)
{
    if (!self || !progress)
        return -1;
    if (self->job)
        cjob_progress (self->job, progress);
    else
        *progress = self->final;
    return 0;
}

void
dp_future_destroy (dp_future_t **self_p)
{
    dp_future_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    *self_p = NULL;
    if (self->busy) {
        self->destroy_pending = true;
        self->fn = NULL;
        return;
    }
    s_free (self);
}
