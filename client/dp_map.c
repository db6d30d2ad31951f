/*  =========================================================================
    dp_map - results arrays and the blocking map

    A results array holds one status and one NUL-terminated byte string
    per item, in an arena that grows by doubling; an output callback fills
    it by index, so it serves ordered and unordered jobs alike (dp_map,
    futures). Items not answered yet have status DP_PENDING.
    =========================================================================
*/
#include "dp_client.h"

#include <string.h>

struct dp_results {
    size_t n;
    uint64_t *offset;
    uint32_t *len;
    uint8_t *status;
    size_t failed;
    char *arena;
    size_t size, cap;
};

//  Results for n items, all pending.
dp_results_t *
cresults_new (size_t n)
{
    dp_results_t *self = (dp_results_t *) zmalloc (sizeof (dp_results_t));
    self->n = n;
    self->offset = (uint64_t *) zmalloc ((n + 1) * sizeof (uint64_t));
    self->len = (uint32_t *) zmalloc ((n + 1) * sizeof (uint32_t));
    self->status = (uint8_t *) malloc (n + 1);
    if (self->status)
        memset (self->status, DP_PENDING, n + 1);
    if (!self->offset || !self->len || !self->status)
        dp_results_destroy (&self);
    return self;
}

//  Append bytes and a NUL to the arena; returns their offset, or -1.
static int64_t
s_append (dp_results_t *self, const void *data, size_t len)
{
    if (self->size + len + 1 > self->cap) {
        size_t cap = self->cap ? self->cap : 4096;
        while (cap < self->size + len + 1)
            cap *= 2;
        char *arena = (char *) realloc (self->arena, cap);
        if (!arena)
            return -1;
        self->arena = arena;
        self->cap = cap;
    }
    memcpy (self->arena + self->size, data, len);
    self->arena [self->size + len] = 0;
    int64_t at = (int64_t) self->size;
    self->size += len + 1;
    return at;
}

//  dp_output_fn that stores an item's result; `arg` is the results.
//  Refuses (aborting the job) an index out of range or answered twice.
int
cresults_output (void *arg, uint64_t index, dp_status_t status, const void *data, size_t len)
{
    dp_results_t *self = (dp_results_t *) arg;
    if (index >= self->n || self->status [index] != DP_PENDING)
        return -1;
    int64_t at = s_append (self, data, len);
    if (at < 0)
        return -1;
    self->offset [index] = (uint64_t) at;
    self->len [index] = (uint32_t) len;
    self->status [index] = (uint8_t) status;
    self->failed += status != DP_OK;
    return 0;
}

//  Give every pending item a status and message (a cancelled future).
//  Returns 0 or -1 (out of memory).
int
cresults_settle (dp_results_t *self, dp_status_t status, const char *message)
{
    int64_t at = -1;
    for (size_t i = 0; i < self->n; i++)
        if (self->status [i] == DP_PENDING) {
            if (at < 0 && (at = s_append (self, message, strlen (message))) < 0)
                return -1;
            self->offset [i] = (uint64_t) at;
            self->len [i] = (uint32_t) strlen (message);
            self->status [i] = (uint8_t) status;
            self->failed += status != DP_OK;
        }
    return 0;
}

long
dp_map (dp_pool_t *self, const char *task, const dp_item_t *items, size_t n,
        const dp_job_opts_t *opts, dp_results_t **results)
{
    if (!results || (n && !items)) {
        client_set_error ("invalid arguments");
        return -1;
    }
    *results = NULL;
    if (self && !cpool_check_caller (self))
        return -1;
    dp_results_t *r = cresults_new (n);
    if (!r) {
        client_set_error ("out of memory");
        return -1;
    }
    dp_job_t *job = cjob_new (self, task, opts);
    if (!job) {
        dp_results_destroy (&r);
        return -1;
    }
    job->items = items;
    job->nitems = n;
    job->output = cresults_output;
    job->output_arg = r;
    long rc = cjob_start (job) == 0 ? dp_job_wait (job, -1) : -1;
    while (rc == DP_TIMEOUT)        //  a signal: keep waiting
        rc = dp_job_wait (job, -1);
    cjob_release (&job);
    if (rc < 0)
        dp_results_destroy (&r);
    *results = r;
    return rc;
}

int
dp_apply (dp_pool_t *self, const char *task, const void *data, size_t len,
          const dp_job_opts_t *opts, dp_results_t **result)
{
    if (!result || (len && !data)) {
        client_set_error ("invalid arguments");
        if (result)
            *result = NULL;
        return -1;
    }
    dp_item_t item = { data ? data : "", len };
    if (dp_map (self, task, &item, 1, opts, result) < 0)
        return -1;
    return (int) dp_results_status (*result, 0);
}

size_t
dp_results_count (const dp_results_t *self)
{
    return self ? self->n : 0;
}

dp_status_t
dp_results_status (const dp_results_t *self, size_t index)
{
    return self && index < self->n ? (dp_status_t) self->status [index] : DP_ERR_NOWORKER;
}

const void *
dp_results_data (const dp_results_t *self, size_t index, size_t *len)
{
    if (!self || index >= self->n || !self->arena || self->status [index] == DP_PENDING) {
        if (len)
            *len = 0;
        return "";
    }
    if (len)
        *len = self->len [index];
    return self->arena + self->offset [index];
}

long
dp_results_first_failure (const dp_results_t *self, const char **reason)
{
    for (size_t i = 0; self && self->failed && i < self->n; i++)
        if (self->status [i] != DP_OK && self->status [i] != DP_PENDING) {
            if (reason)
                *reason = (const char *) dp_results_data (self, i, NULL);
            return (long) i;
        }
    return -1;
}

size_t
dp_results_failed (const dp_results_t *self)
{
    return self ? self->failed : 0;
}

void
dp_results_destroy (dp_results_t **self_p)
{
    dp_results_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    free (self->offset);
    free (self->len);
    free (self->status);
    free (self->arena);
    free (self);
    *self_p = NULL;
}
