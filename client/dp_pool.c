/*  =========================================================================
    dp_pool - libdpool's client: pools, jobs, results

    A pool is a DEALER socket to a broker's client endpoint, or to the
    inproc endpoint of an embedded broker actor running in this process.
    A job streams its items in BATCHes within the broker's window (items
    and bytes sent but not answered), reading input lazily, and hands the
    RESULTS to the caller as they come (the broker already orders them).

    Chunk size: a BATCH is the unit a worker runs, so its size decides
    both overhead and load balance. Unless the job fixes it, the pool
    sends single items until the broker reports task times (RESULTS.ns),
    then sizes batches for about CHUNK_TARGET_NS of work each: tiny tasks
    go in big batches, long tasks one by one.
    =========================================================================
*/
#include "dpool.h"
#include "dp_broker.h"
#include "dp_proto.h"

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS  3000
#define DEFAULT_HB_MS       1000
#define CHUNK_TARGET_NS     2000000     //  2 ms of work per chunk
#define BATCH_MAX_BYTES     (4u << 20)
#define PROBE_BATCHES       16          //  single-item batches before a measure

struct dp_pool {
    zactor_t *broker;           //  embedded broker, or NULL
    zsock_t *sock;
    void *handle;
    char endpoint [256];
    int timeout_ms, hb_ms;
    uint32_t window, batch_max;
    uint64_t wbytes;
    uint32_t next_job;
    int64_t last_send_ms, last_recv_ms;
    char broken [DP_MAX_TEXT + 64];  //  set once the broker is lost
    dp_msg_t msg;
};

static __thread char s_error [1024];

static void
s_set_error (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (s_error, sizeof s_error, format, args);
    va_end (args);
}

const char *
dp_strerror_last (void)
{
    return s_error;
}

const char *
dp_status_name (dp_status_t status)
{
    switch (status) {
        case DP_OK:            return "ok";
        case DP_ERR_TASK:      return "task failed";
        case DP_ERR_DIED:      return "worker died";
        case DP_ERR_TIMEOUT:   return "timed out";
        case DP_ERR_CANCELLED: return "cancelled";
        case DP_ERR_NOWORKER:  return "no worker";
    }
    return "unknown status";
}

//  --------------------------------------------------------------------------
//  Talking to the broker

static int
s_send (dp_pool_t *self, dp_msg_t *msg)
{
    self->last_send_ms = zclock_mono ();
    int rc = dp_msg_send (msg, self->handle, NULL);
    dp_msg_reset (msg);
    return rc;
}

static int
s_send_simple (dp_pool_t *self, uint8_t cmd, uint32_t job)
{
    dp_msg_t msg;
    dp_msg_init (&msg, cmd);
    msg.job = job;
    return s_send (self, &msg);
}

//  Wait up to `wait_ms` for one message into self->msg. Returns 1 when one
//  arrived, 0 on timeout, -1 when the broker is lost (self->broken says why).
//  Malformed messages from the broker are dropped.
static int
s_recv (dp_pool_t *self, int wait_ms, int extra_fd)
{
    zmq_pollitem_t items [2] = {
        { self->handle, 0, ZMQ_POLLIN, 0 }, { NULL, extra_fd, ZMQ_POLLIN, 0 }
    };
    int64_t now = zclock_mono ();
    if (now - self->last_send_ms >= self->hb_ms)
        s_send_simple (self, DP_CMD_HEARTBEAT, 0);
    int64_t silent_left = self->last_recv_ms + self->timeout_ms - now;
    if (wait_ms > silent_left)
        wait_ms = silent_left > 0 ? (int) silent_left : 0;
    if (wait_ms > self->hb_ms)
        wait_ms = self->hb_ms;
    int rc = zmq_poll (items, extra_fd >= 0 ? 2 : 1, wait_ms);
    now = zclock_mono ();
    if (rc > 0 && (items [0].revents & ZMQ_POLLIN)) {
        char err [256];
        dp_msg_reset (&self->msg);
        if (dp_msg_recv (&self->msg, self->handle, NULL, ZMQ_DONTWAIT, err, sizeof err) == 0) {
            self->last_recv_ms = now;
            return 1;
        }
        if (errno != EAGAIN)
            zsys_warning ("dpool: dropped a malformed message from the broker: %s", err);
    }
    if (now - self->last_recv_ms >= self->timeout_ms) {
        snprintf (self->broken, sizeof self->broken,
                  "broker at %s not responding (no message for %d ms)",
                  self->endpoint, self->timeout_ms);
        return -1;
    }
    return 0;
}

//  HELLO / WELCOME. Returns 0 or -1 (error set).
static int
s_handshake (dp_pool_t *self)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_HELLO);
    msg.hb = (uint32_t) self->hb_ms;
    char host [64] = "";
    gethostname (host, sizeof host - 1);
    snprintf (msg.host, sizeof msg.host, "%d@%s", (int) getpid (), host);
    s_send (self, &msg);
    self->last_recv_ms = zclock_mono ();
    while (true) {
        int rc = s_recv (self, self->timeout_ms, -1);
        if (rc < 0) {
            s_set_error ("cannot reach the broker at %s: no answer within %d ms",
                         self->endpoint, self->timeout_ms);
            return -1;
        }
        if (rc == 1 && self->msg.cmd == DP_CMD_WELCOME) {
            self->window = self->msg.window ? self->msg.window : 1024;
            self->wbytes = self->msg.wbytes ? self->msg.wbytes : (64u << 20);
            self->batch_max = self->msg.batch ? self->msg.batch : 1024;
            if (self->batch_max > DP_MAX_BATCH)
                self->batch_max = DP_MAX_BATCH;
            self->broken [0] = 0;
            return 0;
        }
    }
}

//  --------------------------------------------------------------------------
//  Pools

static int
s_open_embedded (dp_pool_t *self, const dp_pool_opts_t *opts)
{
    dp_broker_opts_t bopts = { 0 };
    bopts.local_workers = opts && opts->workers > 0 ? opts->workers : -1;
    bopts.modules = opts ? opts->modules : NULL;
    bopts.nmodules = opts ? opts->nmodules : 0;
    bopts.heartbeat_ms = (uint32_t) self->hb_ms;
    char err [512];
    self->broker = dp_broker_new (&bopts, self->endpoint, sizeof self->endpoint, err, sizeof err);
    if (!self->broker) {
        s_set_error ("cannot start the embedded pool: %s", err);
        return -1;
    }
    return 0;
}

dp_pool_t *
dp_pool_open (const dp_pool_opts_t *opts)
{
    zsys_handler_set (NULL);        //  a library must not take the host's signals
    dp_pool_t *self = (dp_pool_t *) zmalloc (sizeof (dp_pool_t));
    self->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    self->hb_ms = opts && opts->heartbeat_ms > 0 ? opts->heartbeat_ms : DEFAULT_HB_MS;
    dp_msg_init (&self->msg, 0);
    const char *endpoint = opts && opts->endpoint ? opts->endpoint : getenv ("DPOOL_BROKER");
    if (endpoint && *endpoint)
        snprintf (self->endpoint, sizeof self->endpoint, "%s", endpoint);
    else
    if (s_open_embedded (self, opts) != 0) {
        dp_pool_close (&self);
        return NULL;
    }
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock) {
        s_set_error ("cannot create a socket: %s", zmq_strerror (errno));
        dp_pool_close (&self);
        return NULL;
    }
    self->handle = zsock_resolve (self->sock);
    zsock_set_linger (self->sock, 0);
    zsock_set_sndhwm (self->sock, 0);
    zsock_set_rcvhwm (self->sock, 0);
    zsock_set_maxmsgsize (self->sock, DP_MAX_FRAME);
    if (zmq_connect (self->handle, self->endpoint) != 0) {
        s_set_error ("cannot connect to %s: %s", self->endpoint, zmq_strerror (errno));
        dp_pool_close (&self);
        return NULL;
    }
    if (s_handshake (self) != 0) {
        dp_pool_close (&self);
        return NULL;
    }
    return self;
}

void
dp_pool_close (dp_pool_t **self_p)
{
    dp_pool_t *self = *self_p;
    if (!self)
        return;
    if (self->sock && !self->broken [0])
        s_send_simple (self, DP_CMD_BYE, 0);
    zsock_destroy (&self->sock);
    dp_broker_destroy (&self->broker);
    dp_msg_reset (&self->msg);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Jobs

//  State of one running job.
typedef struct {
    dp_pool_t *pool;
    const dp_job_opts_t *opts;
    uint32_t id;
    dp_input_fn *input;
    dp_output_fn *output;
    void *arg;
    uint64_t sent, answered, failed;
    bool input_done, input_later, end_sent, aborted, done;
    uint32_t probes;            //  single-item batches sent before a measure
    double ns_per_item;         //  measured task time per item (0: none yet)
    //  bytes in flight: a FIFO of batch sizes, popped as items are answered
    uint64_t *fifo_bytes; uint32_t *fifo_n; size_t fifo_head, fifo_tail, fifo_cap;
    uint64_t bytes_out, fifo_answered;
    dp_batch_t batch;
} job_t;

static uint32_t
s_chunk_size (job_t *job)
{
    dp_pool_t *pool = job->pool;
    uint32_t n = job->opts->chunksize;
    if (!n) {
        if (job->ns_per_item <= 0)
            n = 1;
        else {
            double want = CHUNK_TARGET_NS / job->ns_per_item;
            n = want < 1 ? 1 : want > pool->batch_max ? pool->batch_max : (uint32_t) want;
        }
    }
    return n > pool->batch_max ? pool->batch_max : n;
}

static void
s_fifo_push (job_t *job, uint32_t n, uint64_t bytes)
{
    if (job->fifo_tail - job->fifo_head == job->fifo_cap) {
        size_t cap = job->fifo_cap ? job->fifo_cap * 2 : 64;
        uint64_t *b = (uint64_t *) zmalloc (cap * sizeof (uint64_t));
        uint32_t *c = (uint32_t *) zmalloc (cap * sizeof (uint32_t));
        for (size_t i = job->fifo_head; i < job->fifo_tail; i++) {
            b [i - job->fifo_head] = job->fifo_bytes [i % job->fifo_cap];
            c [i - job->fifo_head] = job->fifo_n [i % job->fifo_cap];
        }
        job->fifo_tail -= job->fifo_head;
        job->fifo_head = 0;
        free (job->fifo_bytes);
        free (job->fifo_n);
        job->fifo_bytes = b;
        job->fifo_n = c;
        job->fifo_cap = cap;
    }
    job->fifo_bytes [job->fifo_tail % job->fifo_cap] = bytes;
    job->fifo_n [job->fifo_tail % job->fifo_cap] = n;
    job->fifo_tail++;
    job->bytes_out += bytes;
}

//  Items answered: release the bytes of the batches they complete.
static void
s_fifo_pop (job_t *job)
{
    while (job->fifo_head < job->fifo_tail) {
        size_t at = job->fifo_head % job->fifo_cap;
        if (job->fifo_answered + job->fifo_n [at] > job->answered)
            break;
        job->fifo_answered += job->fifo_n [at];
        job->bytes_out -= job->fifo_bytes [at];
        job->fifo_head++;
    }
}

//  Read items into one batch and send it, within the window. Returns 0, or
//  -1 when the input callback aborted.
static int
s_send_batch (job_t *job)
{
    dp_pool_t *pool = job->pool;
    uint64_t room = pool->window - (job->sent - job->answered);
    uint32_t want = s_chunk_size (job);
    if (want > room)
        want = (uint32_t) room;
    while (job->batch.n < want && job->batch.size < BATCH_MAX_BYTES) {
        const void *data = NULL;
        size_t len = 0;
        int rc = job->input (job->arg, &data, &len);
        if (rc == 1 && len > DP_MAX_FRAME / 2) {
            s_set_error ("item %llu is %zu bytes, over the limit of %u",
                         (unsigned long long) (job->sent + job->batch.n), len, DP_MAX_FRAME / 2);
            return -1;
        }
        if (rc == 1 && dp_batch_add (&job->batch, data, len) == 0)
            continue;
        if (rc == 0)
            job->input_done = true;
        else
        if (rc == 2)
            job->input_later = true;
        else {
            if (rc == 1)
                s_set_error ("out of memory");
            else
                s_set_error ("job aborted by its input");
            return -1;
        }
        break;
    }
    if (job->batch.n == 0)
        return 0;
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_BATCH);
    msg.job = job->id;
    msg.first = job->sent;
    uint64_t bytes = job->batch.size;
    if (dp_batch_attach (&job->batch, &msg, false) != 0) {
        s_set_error ("out of memory");
        return -1;
    }
    job->sent += msg.n;
    s_fifo_push (job, msg.n, bytes);
    if (msg.n == 1 && job->ns_per_item <= 0)
        job->probes++;
    s_send (pool, &msg);
    return 0;
}

//  May the job send another batch now?
static bool
s_can_send (job_t *job)
{
    dp_pool_t *pool = job->pool;
    if (job->input_done || job->input_later || job->aborted)
        return false;
    if (job->sent - job->answered >= pool->window || job->bytes_out >= pool->wbytes)
        return false;
    if (!job->opts->chunksize && job->ns_per_item <= 0 && job->probes >= PROBE_BATCHES)
        return false;
    return true;
}

//  Deliver one RESULTS message to the output callback.
static int
s_on_results (job_t *job, dp_msg_t *msg)
{
    const uint8_t *data = dp_msg_data (msg);
    size_t offset = 0;
    for (uint32_t i = 0; i < msg->n; i++) {
        uint32_t len = dp_msg_len (msg, i);
        uint8_t status = dp_msg_status (msg, i);
        job->failed += status != DP_ST_OK;
        if (!job->aborted
        &&  job->output (job->arg, msg->first + i, (dp_status_t) status, data + offset, len) != 0) {
            s_set_error ("job aborted by its output");
            job->aborted = true;
        }
        offset += len;
    }
    job->answered += msg->n;
    s_fifo_pop (job);
    if (msg->ns > 0 && msg->n > 0) {
        double per = (double) msg->ns / msg->n;
        job->ns_per_item = job->ns_per_item > 0 ? 0.7 * job->ns_per_item + 0.3 * per : per;
    }
    return 0;
}

//  Handle one message for the job. Returns 0, or -1 on a job error.
static int
s_job_message (job_t *job, dp_msg_t *msg)
{
    switch (msg->cmd) {
        case DP_CMD_RESULTS:
            if (msg->job == job->id)
                s_on_results (job, msg);
            return 0;
        case DP_CMD_DONE:
            if (msg->job == job->id)
                job->done = true;
            return 0;
        case DP_CMD_ERROR:
            if (msg->has_job && msg->job != job->id)
                return 0;       //  about an earlier job
            s_set_error ("%s", msg->text);
            if (msg->code == DP_PROTO_ENOTREADY)
                snprintf (job->pool->broken, sizeof job->pool->broken, "%s", msg->text);
            return -1;
        default:
            return 0;
    }
}

//  Cancel the job and wait (bounded) for the broker's DONE, so the next
//  job starts clean.
static void
s_job_cancel (job_t *job)
{
    dp_pool_t *pool = job->pool;
    s_send_simple (pool, DP_CMD_CANCEL, job->id);
    int64_t deadline = zclock_mono () + pool->timeout_ms;
    job->aborted = true;
    while (!job->done && zclock_mono () < deadline) {
        int rc = s_recv (pool, 100, -1);
        if (rc < 0)
            break;
        if (rc == 1 && s_job_message (job, &pool->msg) != 0)
            break;
    }
}

//  The job's main loop: keep the window full, take results, heartbeat.
static long
s_job_run (job_t *job)
{
    dp_pool_t *pool = job->pool;
    while (!job->done) {
        if (job->opts->cancel && *job->opts->cancel) {
            s_set_error ("job cancelled");
            s_job_cancel (job);
            return -1;
        }
        while (s_can_send (job))
            if (s_send_batch (job) != 0) {
                s_job_cancel (job);
                return -1;
            }
        if (job->input_done && !job->end_sent) {
            dp_msg_t msg;
            dp_msg_init (&msg, DP_CMD_END);
            msg.job = job->id;
            msg.total = job->sent;
            s_send (pool, &msg);
            job->end_sent = true;
        }
        int fd = job->input_later && job->opts->has_input_fd ? job->opts->input_fd : -1;
        int wait = job->input_later && fd < 0 ? 1 : pool->hb_ms;
        int rc = s_recv (pool, wait, fd);
        if (rc < 0) {
            s_set_error ("%s", pool->broken);
            return -1;
        }
        if (rc == 1 && s_job_message (job, &pool->msg) != 0)
            return -1;
        if (job->aborted) {
            s_job_cancel (job);
            return -1;
        }
        //  drain what else is there without waiting
        while (!job->done && rc == 1 && (rc = s_recv (pool, 0, -1)) == 1)
            if (s_job_message (job, &pool->msg) != 0)
                return -1;
        job->input_later = false;
    }
    return (long) job->failed;
}

long
dp_map_stream (dp_pool_t *self, const char *task, const dp_job_opts_t *opts,
               dp_input_fn *input, dp_output_fn *output, void *arg)
{
    static const dp_job_opts_t defaults = { 0 };
    if (!self || !task || !input || !output || !*task || strlen (task) > DP_MAX_NAME) {
        s_set_error ("invalid arguments (task name must be 1..%d characters)", DP_MAX_NAME);
        return -1;
    }
    //  after a long idle time the broker has forgotten us: say HELLO again
    if (self->broken [0] || zclock_mono () - self->last_send_ms >= 2 * self->hb_ms)
        if (s_handshake (self) != 0)
            return -1;
    job_t job = { .pool = self, .opts = opts ? opts : &defaults, .id = ++self->next_job,
                  .input = input, .output = output, .arg = arg };
    dp_batch_init (&job.batch);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_JOB);
    msg.job = job.id;
    snprintf (msg.task, sizeof msg.task, "%s", task);
    msg.ordered = !job.opts->unordered;
    msg.attempts = job.opts->max_attempts;
    msg.chunksize = job.opts->chunksize;
    s_send (self, &msg);
    long rc = s_job_run (&job);
    dp_batch_clear (&job.batch);
    free (job.fifo_bytes);
    free (job.fifo_n);
    return rc;
}

//  --------------------------------------------------------------------------
//  Blocking map over an array

struct dp_results {
    size_t n;
    uint64_t *offset;
    uint32_t *len;
    uint8_t *status;
    char *arena;
    size_t size, cap;
};

typedef struct {
    const dp_item_t *items;
    size_t n, next;
    dp_results_t *results;
} map_state_t;

static int
s_map_input (void *arg, const void **data, size_t *len)
{
    map_state_t *state = (map_state_t *) arg;
    if (state->next == state->n)
        return 0;
    *data = state->items [state->next].data;
    *len = state->items [state->next].len;
    state->next++;
    return 1;
}

static int
s_map_output (void *arg, uint64_t index, dp_status_t status, const void *data, size_t len)
{
    dp_results_t *r = ((map_state_t *) arg)->results;
    if (index >= r->n)
        return -1;
    if (r->size + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->size + len + 1)
            cap *= 2;
        char *arena = (char *) realloc (r->arena, cap);
        if (!arena)
            return -1;
        r->arena = arena;
        r->cap = cap;
    }
    memcpy (r->arena + r->size, data, len);
    r->arena [r->size + len] = 0;
    r->offset [index] = r->size;
    r->len [index] = (uint32_t) len;
    r->status [index] = (uint8_t) status;
    r->size += len + 1;
    return 0;
}

long
dp_map (dp_pool_t *self, const char *task, const dp_item_t *items, size_t n,
        const dp_job_opts_t *opts, dp_results_t **results)
{
    if (!results || (n && !items)) {
        s_set_error ("invalid arguments");
        return -1;
    }
    *results = NULL;
    dp_results_t *r = (dp_results_t *) zmalloc (sizeof (dp_results_t));
    r->n = n;
    r->offset = (uint64_t *) zmalloc ((n + 1) * sizeof (uint64_t));
    r->len = (uint32_t *) zmalloc ((n + 1) * sizeof (uint32_t));
    r->status = (uint8_t *) zmalloc (n + 1);
    map_state_t state = { items, n, 0, r };
    long rc = dp_map_stream (self, task, opts, s_map_input, s_map_output, &state);
    if (rc < 0)
        dp_results_destroy (&r);
    *results = r;
    return rc;
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
    if (!self || index >= self->n || !self->arena) {
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
    for (size_t i = 0; self && i < self->n; i++)
        if (self->status [i] != DP_OK) {
            if (reason)
                *reason = (const char *) dp_results_data (self, i, NULL);
            return (long) i;
        }
    return -1;
}

void
dp_results_destroy (dp_results_t **self_p)
{
    dp_results_t *self = *self_p;
    if (!self)
        return;
    free (self->offset);
    free (self->len);
    free (self->status);
    free (self->arena);
    free (self);
    *self_p = NULL;
}
