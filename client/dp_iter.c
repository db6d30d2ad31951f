/*  =========================================================================
    dp_iter - iterators over a job's results: imap and imap_unordered

    An iterator owns a job whose RESULTS are queued as they arrive (the
    frames are kept, not copied) and taken one item at a time. Items stay
    held in the pool's window until taken, so a slow reader slows the input
    down instead of growing the queue. Each time a queued RESULTS message
    is used up, the pool is pumped without waiting, so new input goes out
    while the reader works through what is there.
    =========================================================================
*/
#include "dp_client.h"

#include <string.h>

struct dp_iter {
    dp_job_t *job;
    char *scratch;              //  the current result, NUL-terminated
    size_t scratch_cap;
};

static dp_iter_t *
s_iter_new (dp_pool_t *pool, const char *task, const dp_job_opts_t *opts, bool unordered,
            dp_input_fn *input, void *arg, const dp_item_t *items, size_t n)
{
    if (pool && !cpool_check_caller (pool))
        return NULL;
    dp_job_t *job = cjob_new (pool, task, opts);
    if (!job)
        return NULL;
    job->opts.unordered |= unordered;
    job->input = input;
    job->input_arg = arg;
    job->items = items;
    job->nitems = n;
    if (cjob_start (job) != 0) {
        cjob_release (&job);
        return NULL;
    }
    dp_iter_t *self = (dp_iter_t *) zmalloc (sizeof (dp_iter_t));
    self->job = job;
    return self;
}

void
citer_avoid (dp_iter_t *it, const uint64_t *tags, size_t ntags)
{
    dp_job_t *job = it ? it->job : NULL;
    if (!job)
        return;
    job->navoid = 0;
    for (size_t i = 0; i < ntags && job->navoid < DP_MAX_AVOID; i++)
        if (tags [i])
            job->avoid [job->navoid++] = tags [i];
}

dp_iter_t *
dp_imap (dp_pool_t *pool, const char *task, const dp_job_opts_t *opts,
         dp_input_fn *input, void *arg)
{
    if (!input) {
        client_set_error ("invalid arguments (no input callback)");
        return NULL;
    }
    return s_iter_new (pool, task, opts, false, input, arg, NULL, 0);
}

dp_iter_t *
dp_imap_unordered (dp_pool_t *pool, const char *task, const dp_job_opts_t *opts,
                   dp_input_fn *input, void *arg)
{
    if (!input) {
        client_set_error ("invalid arguments (no input callback)");
        return NULL;
    }
    return s_iter_new (pool, task, opts, true, input, arg, NULL, 0);
}

dp_iter_t *
dp_imap_items (dp_pool_t *pool, const char *task, const dp_item_t *items, size_t n,
               const dp_job_opts_t *opts)
{
    if (n && !items) {
        client_set_error ("invalid arguments");
        return NULL;
    }
    return s_iter_new (pool, task, opts, false, NULL, NULL, items, n);
}

//  Take the next queued item into *out. Returns 0, or -1 if out of memory.
static int
s_take (dp_iter_t *self, dp_result_t *out)
{
    dp_job_t *job = self->job;
    rbatch_t *batch = job->head;
    const uint8_t *lens = (const uint8_t *) zmq_msg_data (&batch->lens) + 4 * (size_t) batch->at;
    size_t len = (size_t) lens [0] | (size_t) lens [1] << 8 | (size_t) lens [2] << 16
               | (size_t) lens [3] << 24;
    if (len + 1 > self->scratch_cap) {
        size_t cap = self->scratch_cap ? self->scratch_cap : 256;
        while (cap < len + 1)
            cap *= 2;
        char *scratch = (char *) realloc (self->scratch, cap);
        if (!scratch) {
            client_set_error ("out of memory");
            return -1;
        }
        self->scratch = scratch;
        self->scratch_cap = cap;
    }
    memcpy (self->scratch, (const char *) zmq_msg_data (&batch->data) + batch->offset, len);
    self->scratch [len] = 0;
    out->index = batch->first + batch->at;
    out->status = (dp_status_t) ((const uint8_t *) zmq_msg_data (&batch->status)) [batch->at];
    out->data = self->scratch;
    out->len = len;
    if (job->terminated && out->status == DP_ERR_CANCELLED) {
        out->data = DP_TERMINATED_TEXT;
        out->len = strlen (DP_TERMINATED_TEXT);
    }
    batch->offset += len;
    batch->at++;
    job->consumed++;
    cjob_hold (job, -1, 0);
    if (batch->at == batch->n) {
        job->head = batch->next;
        if (!job->head)
            job->tail = NULL;
        cjob_hold (job, 0, -(int64_t) zmq_msg_size (&batch->data));
        zmq_msg_close (&batch->lens);
        zmq_msg_close (&batch->data);
        zmq_msg_close (&batch->status);
        free (batch);
        //  room freed: let new input go out while the reader works
        if (job->state == JOB_RUNNING && job->pool)
            cpool_pump (job->pool, 0);
    }
    return 0;
}

int
dp_iter_next (dp_iter_t *self, dp_result_t *out, int timeout_ms)
{
    if (!self || !out) {
        client_set_error ("invalid arguments");
        return -1;
    }
    dp_job_t *job = self->job;
    dp_pool_t *pool = job->pool;
    if (pool && !cpool_check_caller (pool))
        return -1;
    if (job->head)                  //  the common case: no clock, no pump
        return s_take (self, out) == 0 ? 1 : -1;
    int64_t deadline = cpool_deadline (timeout_ms);
    while (true) {
        if (job->head)
            return s_take (self, out) == 0 ? 1 : -1;
        if (job->state == JOB_DONE)
            return 0;
        if (job->state == JOB_FAILED || !pool) {
            client_set_error ("%s", job->state == JOB_FAILED ? job->error : "pool closed");
            return -1;
        }
        cpool_pump (pool, cpool_wait_left (deadline));
        if (job->head || job->state == JOB_DONE || job->state == JOB_FAILED)
            continue;
        if ((deadline >= 0 && zclock_mono () >= deadline) || pool->interrupted)
            return DP_TIMEOUT;
    }
}

int
dp_iter_cancel (dp_iter_t *self)
{
    return self ? cjob_cancel (self->job) : -1;
}

int
dp_iter_progress (const dp_iter_t *self, dp_progress_t *progress)
{
    if (!self || !progress)
        return -1;
    cjob_progress (self->job, progress);
    return 0;
}

void
dp_iter_destroy (dp_iter_t **self_p)
{
    dp_iter_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    cjob_release (&self->job);
    free (self->scratch);
    free (self);
    *self_p = NULL;
}
