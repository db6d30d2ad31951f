/*  =========================================================================
    dp_pool - libdpool's client: pools, the broker connection, the pump

    A pool is a DEALER socket to a broker's client endpoint, or to the
    inproc endpoint of an embedded broker actor running in this process.
    Any number of jobs run on it at once (dp_job.c); messages from the
    broker are routed to them by job id through a CZMQ hash (zhashx), as
    the broker's own job index.

    The pump is the pool's one engine step, run by every call that waits:
    feed the jobs' input into the window (round-robin between jobs), wait
    for the broker (or for an input fd), then take every message that is
    there. No thread of our own: the socket belongs to the caller's thread.

    Heartbeats ride on the pump. Broker silence is an error only while
    jobs are open (the broker forgets a client that stays away for 3 hb,
    so an idle pool says HELLO again before its next job).
    =========================================================================
*/
#include "dp_client.h"
#include "dp_broker.h"
#include "dp_forkserver.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS  3000
#define DEFAULT_HB_MS       1000
#define MAX_INPUT_FDS       16      //  distinct input fds watched at once
#define DRAIN_MAX           256     //  messages taken per pump

static __thread char s_error [1024];

void
client_set_error (const char *format, ...)
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
        case DP_ERR_POOL:      return "pool error";
        case DP_PENDING:       return "pending";
    }
    return "unknown status";
}

//  --------------------------------------------------------------------------
//  Talking to the broker

//  Send a message (its payload frames are consumed). Returns 0 or -1.
int
cpool_send (dp_pool_t *self, dp_msg_t *msg)
{
    self->last_send_ms = zclock_mono ();
    int rc = dp_msg_send (msg, self->handle, NULL);
    dp_msg_reset (msg);
    return rc == 0 ? 0 : -1;
}

int
cpool_send_simple (dp_pool_t *self, uint8_t cmd, uint32_t job)
{
    dp_msg_t msg;
    dp_msg_init (&msg, cmd);
    msg.job = job;
    return cpool_send (self, &msg);
}

//  Take one message that is already there into self->msg, without
//  waiting. Returns 1, or 0 when there is none. Malformed messages from
//  the broker are dropped (and logged).
static int
s_try_recv (dp_pool_t *self)
{
    char err [256];
    while (true) {
        dp_msg_reset (&self->msg);
        int rc = dp_msg_recv (&self->msg, self->handle, NULL, ZMQ_DONTWAIT, err, sizeof err);
        if (rc == 0) {
            self->last_recv_ms = zclock_mono ();
            return 1;
        }
        if (rc == DP_PROTO_ESOCKET)
            return 0;               //  nothing there (EAGAIN), or a closing context
        self->last_recv_ms = zclock_mono ();    //  still a sign of life
        zsys_warning ("dpool: dropped a malformed message from the broker: %s", err);
    }
}

//  Wait up to `wait_ms` (< 0: one heartbeat interval) for one message into
//  self->msg, or for one of `fds` to become readable. Returns 1 when a
//  message arrived, 0 otherwise, -1 when the broker is lost while jobs
//  are open (self->broken says why). A signal ends the wait early and
//  sets self->interrupted.
static int
s_recv (dp_pool_t *self, int wait_ms, const int *fds, int nfds)
{
    zmq_pollitem_t items [1 + MAX_INPUT_FDS];
    items [0] = (zmq_pollitem_t) { self->handle, 0, ZMQ_POLLIN, 0 };
    for (int i = 0; i < nfds; i++)
        items [1 + i] = (zmq_pollitem_t) { NULL, fds [i], ZMQ_POLLIN, 0 };
    int64_t now = zclock_mono ();
    if (now - self->last_send_ms >= self->hb_ms)
        cpool_send_simple (self, DP_CMD_HEARTBEAT, 0);
    if (wait_ms < 0 || wait_ms > self->hb_ms)
        wait_ms = self->hb_ms;
    bool watch = self->nopen > 0;
    if (watch) {
        int64_t silent_left = self->last_recv_ms + self->timeout_ms - now;
        if (wait_ms > silent_left)
            wait_ms = silent_left > 0 ? (int) silent_left : 0;
    }
    int rc = zmq_poll (items, 1 + nfds, wait_ms);
    if (rc < 0 && errno == EINTR)
        self->interrupted = true;
    if (rc > 0 && (items [0].revents & ZMQ_POLLIN) && s_try_recv (self))
        return 1;
    now = zclock_mono ();
    if (!watch)
        self->last_recv_ms = now;   //  silence matters only with open jobs
    else
    if (now - self->last_recv_ms >= self->timeout_ms) {
        snprintf (self->broken, sizeof self->broken,
                  "broker at %s not responding (no message for %d ms)",
                  self->endpoint, self->timeout_ms);
        return -1;
    }
    return 0;
}

//  HELLO / WELCOME. Only called with no open job: other messages that
//  arrive meanwhile are dropped. Returns 0 or -1 (error set).
static int
s_handshake (dp_pool_t *self)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_HELLO);
    msg.hb = (uint32_t) self->hb_ms;
    char host [64] = "";
    gethostname (host, sizeof host - 1);
    snprintf (msg.host, sizeof msg.host, "%d@%s", (int) getpid (), host);
    cpool_send (self, &msg);
    int64_t deadline = zclock_mono () + self->timeout_ms;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        const char *why = dp_curve_watch_why (self->watch, self->curve.on);
        if (why) {
            client_set_error ("cannot reach the broker at %s: %s", self->endpoint, why);
            return -1;
        }
        if (left <= 0) {
            client_set_error ("cannot reach the broker at %s: no answer within %d ms",
                              self->endpoint, self->timeout_ms);
            return -1;
        }
        if (self->watch && left > 100)
            left = 100;         //  look at the handshakes now and then
        int rc = s_recv (self, (int) left, NULL, 0);
        if (rc == 1 && self->msg.cmd == DP_CMD_WELCOME) {
            self->window = self->msg.window ? self->msg.window : 1024;
            self->wbytes = self->msg.wbytes ? self->msg.wbytes : (64u << 20);
            self->batch_max = self->msg.batch ? self->msg.batch : 1024;
            if (self->batch_max > DP_MAX_BATCH)
                self->batch_max = DP_MAX_BATCH;
            self->broken [0] = 0;
            self->welcomed = true;
            self->inflight = 0;     //  a new session: the broker holds nothing of ours
            return 0;
        }
    }
}

//  Before a new job: say HELLO again if the broker was lost or may have
//  forgotten an idle client. Returns 0 or -1 (error set).
int
cpool_ready_for_job (dp_pool_t *self)
{
    if (self->broken [0] || (self->nopen == 0 && self->nwaiting == 0
                             && zclock_mono () - self->last_send_ms >= 2 * self->hb_ms))
        return s_handshake (self);
    return 0;
}

//  --------------------------------------------------------------------------
//  Pools

//  Is `endpoint` one a broker can have: tcp://HOST:PORT (PORT 1..65535),
//  ipc://PATH or inproc://NAME? libzmq refuses the others too, but only
//  after a socket exists; this says why in words. Returns 0, or -1 with
//  the reason in `why`.
static int
s_check_endpoint (const char *endpoint, char *why, size_t size)
{
    const char *sep = strstr (endpoint, "://");
    if (!sep) {
        snprintf (why, size, "not an endpoint (expected tcp://HOST:PORT, ipc://PATH or inproc://NAME)");
        return -1;
    }
    size_t scheme = (size_t) (sep - endpoint);
    const char *rest = sep + 3;
    if ((scheme == 3 && memcmp (endpoint, "ipc", 3) == 0)
    ||  (scheme == 6 && memcmp (endpoint, "inproc", 6) == 0)) {
        if (*rest)
            return 0;
        snprintf (why, size, "no %s after '://'", scheme == 3 ? "path" : "name");
        return -1;
    }
    if (!(scheme == 3 && memcmp (endpoint, "tcp", 3) == 0)) {
        snprintf (why, size, "unknown transport '%.*s' (expected tcp, ipc or inproc)",
                  (int) (scheme > 16 ? 16 : scheme), endpoint);
        return -1;
    }
    const char *colon = strrchr (rest, ':');
    if (!colon || colon == rest || (rest [0] == '[' && colon [-1] != ']')) {
        snprintf (why, size, "no port (expected tcp://HOST:PORT)");
        return -1;
    }
    char *end;
    errno = 0;
    long port = strtol (colon + 1, &end, 10);
    if (colon [1] < '0' || colon [1] > '9' || *end || errno || port < 1 || port > 65535) {
        snprintf (why, size, "bad port '%s' (expected 1 to 65535)", colon + 1);
        return -1;
    }
    return 0;
}

static int
s_open_embedded (dp_pool_t *self, const dp_pool_opts_t *opts)
{
    //  The embedded broker's log (a worker that died before registering,
    //  ...) goes to stderr: CZMQ logs to stdout, the program's own output
    //  (dpool map's results)
    zsys_set_logstream (stderr);
    dp_broker_opts_t bopts = { 0 };
    bopts.local_workers = opts && opts->workers > 0 ? opts->workers : -1;
    bopts.modules = opts ? opts->modules : NULL;
    bopts.nmodules = opts ? opts->nmodules : 0;
    bopts.heartbeat_ms = (uint32_t) self->hb_ms;
    bopts.init_args = opts ? opts->init_args : NULL;
    bopts.max_tasks = opts ? opts->max_tasks_per_child : 0;
    bopts.mem_limit_mb = opts ? opts->mem_limit_mb : 0;
    bopts.allow_exec = true;        //  our own workers: the caller's commands
    //  host tasks (dp_register_task): the workers come from the fork server
    if (client_has_host_tasks () && !dp_forkserver_running ()) {
        client_set_error ("cannot start the embedded pool: tasks are registered with "
                          "dp_register_task but the fork server is not running: call "
                          "dp_forkserver_start () at the top of main, before any thread "
                          "or pool exists");
        return -1;
    }
    bopts.forkserver = dp_forkserver_running ();
    if (bopts.forkserver)
        bopts.worker_program = DP_FORKSERVER_PROGRAM;
    char err [512];
    self->broker = dp_broker_new (&bopts, self->endpoint, sizeof self->endpoint, err, sizeof err);
    if (!self->broker) {
        client_set_error ("cannot start the embedded pool: %s", err);
        return -1;
    }
    return 0;
}

//  Which broker: sets *endpoint to the remote one, or NULL for an
//  embedded pool (see dp_pool_opts_t.mode). Returns 0, or -1 (error set).
static int
s_choose_endpoint (const dp_pool_opts_t *opts, const char **endpoint)
{
    int mode = opts ? opts->mode : DP_POOL_AUTO;
    const char *given = opts && opts->endpoint && *opts->endpoint ? opts->endpoint : NULL;
    const char *env = getenv ("DPOOL_BROKER");
    if (env && !*env)
        env = NULL;
    //  the server directory's running broker stands in for $DPOOL_BROKER
    static __thread char found [256];
    char dir [4096];
    if (!env && dp_curve_server_dir (NULL, dir, sizeof dir)
    &&  dp_curve_server_endpoint (dir, "clients", found, sizeof found) == 0)
        env = found;
    bool embedded_asked = opts && (opts->workers > 0 || opts->nmodules > 0);
    *endpoint = NULL;
    switch (mode) {
        case DP_POOL_EMBEDDED:
            return 0;
        case DP_POOL_REMOTE:
            *endpoint = given ? given : env;
            if (!*endpoint) {
                client_set_error ("a remote pool was asked for (DP_POOL_REMOTE) but there is "
                                  "no endpoint and $DPOOL_BROKER is not set");
                return -1;
            }
            return 0;
        case DP_POOL_AUTO:
            *endpoint = given ? given : embedded_asked ? NULL : env;
            return 0;
    }
    client_set_error ("bad pool mode %d (DP_POOL_AUTO, DP_POOL_EMBEDDED or DP_POOL_REMOTE)", mode);
    return -1;
}

//  The DEALER to the broker, with the CURVE keys if any, connected.
//  Returns 0 or -1 (error set).
static int
s_open_socket (dp_pool_t *self)
{
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock) {
        client_set_error ("cannot create a socket: %s", zmq_strerror (errno));
        return -1;
    }
    self->handle = zsock_resolve (self->sock);
    zsock_set_linger (self->sock, 0);
    zsock_set_sndhwm (self->sock, 0);
    zsock_set_rcvhwm (self->sock, 0);
    zsock_set_maxmsgsize (self->sock, DP_MAX_FRAME);
    if (dp_curve_client_apply (self->handle, &self->curve) != 0) {
        client_set_error ("cannot set CURVE keys: %s", zmq_strerror (errno));
        return -1;
    }
    if (!self->broker)
        self->watch = dp_curve_watch_new (NULL, self->handle);
    if (zmq_connect (self->handle, self->endpoint) != 0) {
        client_set_error ("cannot connect to %s: %s", self->endpoint, zmq_strerror (errno));
        return -1;
    }
    return 0;
}

dp_pool_t *
dp_pool_open (const dp_pool_opts_t *opts)
{
    zsys_handler_set (NULL);        //  a library must not take the host's signals
    char why_keys [1024];
    dp_pool_t *self = (dp_pool_t *) zmalloc (sizeof (dp_pool_t));
    self->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    self->hb_ms = opts && opts->heartbeat_ms > 0 ? opts->heartbeat_ms : DEFAULT_HB_MS;
    //  An embedded broker must say something within the client's timeout
    //  even while a slow worker starts: without an explicit interval, its
    //  heartbeat fits three times into the timeout
    if (!(opts && opts->heartbeat_ms > 0) && self->hb_ms * 3 > self->timeout_ms)
        self->hb_ms = self->timeout_ms / 3 > 20 ? self->timeout_ms / 3 : 20;
    dp_msg_init (&self->msg, 0);
    link_init (&self->all);
    link_init (&self->open);
    link_init (&self->feed);
    link_init (&self->waiting);
    const char *endpoint = NULL;
    if (s_choose_endpoint (opts, &endpoint) != 0) {
        dp_pool_close (&self);
        return NULL;
    }
    if (endpoint) {
        const char *from = opts && opts->endpoint ? "endpoint" : "$DPOOL_BROKER";
        char why [1024];
        if (s_check_endpoint (endpoint, why, sizeof why) != 0) {
            client_set_error ("bad broker %s '%s': %s", from, endpoint, why);
            dp_pool_close (&self);
            return NULL;
        }
        snprintf (self->endpoint, sizeof self->endpoint, "%s", endpoint);
        if (dp_curve_client_keys (opts ? opts->curve_secret : NULL, opts ? opts->broker_key : NULL,
                                  "client", endpoint, &self->curve, why, sizeof why)) {
            client_set_error ("%s", why);
            dp_pool_close (&self);
            return NULL;
        }
    }
    else
    if (s_open_embedded (self, opts) != 0) {
        dp_pool_close (&self);
        return NULL;
    }
    if (s_open_socket (self) != 0) {
        dp_pool_close (&self);
        return NULL;
    }
    int rc = s_handshake (self);
    //  a broker that started with us: its server directory may list the
    //  endpoint only now (it writes it before it binds), so a handshake
    //  that failed without keys is tried once more with them
    if (rc != 0 && !self->broker && !self->curve.on && !(opts && opts->curve_secret)
    &&  dp_curve_client_keys (NULL, NULL, "client", self->endpoint, &self->curve,
                              why_keys, sizeof why_keys) == 0 && self->curve.on) {
        dp_curve_watch_destroy (&self->watch);
        zsock_destroy (&self->sock);
        rc = s_open_socket (self) == 0 ? s_handshake (self) : -1;
    }
    if (rc != 0) {
        dp_pool_close (&self);
        return NULL;
    }
    return self;
}

void
dp_pool_close (dp_pool_t **self_p)
{
    dp_pool_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    //  open jobs fail (their owners' hooks run); the owners keep their
    //  handles, which no longer point here
    self->pumping++;
    self->closing = true;           //  the BYE below cancels them at the broker
    cpool_fail_all (self, DP_ERR_POOL, "pool closed");
    while (!link_empty (&self->all)) {
        dp_job_t *job = link_entry (self->all.next, dp_job_t, all);
        link_remove (&job->all);
        job->pool = NULL;
    }
    //  BYE only to a broker that welcomed us: a DEALER with no connection
    //  (a refused endpoint) would block on the send for good
    if (self->sock && self->welcomed && !self->broken [0])
        cpool_send_simple (self, DP_CMD_BYE, 0);
    dp_curve_watch_destroy (&self->watch);
    zsock_destroy (&self->sock);
    dp_broker_destroy (&self->broker);
    dp_msg_reset (&self->msg);
    zhashx_destroy (&self->table);
    free (self);
    *self_p = NULL;
}

size_t
dp_pool_jobs (const dp_pool_t *self)
{
    return self ? self->nopen + self->nwaiting : 0;
}

//  --------------------------------------------------------------------------
//  Open jobs by id: a zhashx keyed by the id itself (plus one: a key is
//  never NULL), made on the first job

static size_t
s_id_hash (const void *key)
{
    uint64_t x = (uintptr_t) key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    return (size_t) (x ^ (x >> 33));
}

static int
s_id_compare (const void *a, const void *b)
{
    return (uintptr_t) a < (uintptr_t) b ? -1 : (uintptr_t) a > (uintptr_t) b;
}

static void *
s_id_key (uint32_t id)
{
    return (void *) ((uintptr_t) id + 1);
}

void
cpool_table_insert (dp_pool_t *self, dp_job_t *job)
{
    if (!self->table) {
        self->table = zhashx_new ();
        zhashx_set_key_hasher (self->table, s_id_hash);
        zhashx_set_key_comparator (self->table, s_id_compare);
        zhashx_set_key_duplicator (self->table, NULL);
        zhashx_set_key_destructor (self->table, NULL);
    }
    zhashx_insert (self->table, s_id_key (job->id), job);
}

dp_job_t *
cpool_table_lookup (dp_pool_t *self, uint32_t id)
{
    return self->table ? (dp_job_t *) zhashx_lookup (self->table, s_id_key (id)) : NULL;
}

void
cpool_table_remove (dp_pool_t *self, dp_job_t *job)
{
    if (self->table && zhashx_lookup (self->table, s_id_key (job->id)) == job)
        zhashx_delete (self->table, s_id_key (job->id));
}

//  --------------------------------------------------------------------------
//  The pump

//  Fail every open job (the broker is lost, or the pool closes). Each job
//  leaves the open list before its owner's hook runs, and the hook may
//  free it, so always take the head again.
void
cpool_fail_all (dp_pool_t *self, dp_status_t status, const char *text)
{
    while (!link_empty (&self->open)) {
        dp_job_t *job = link_entry (self->open.next, dp_job_t, open);
        cjob_fail (job, status, text);
    }
    while (!link_empty (&self->waiting)) {
        dp_job_t *job = link_entry (self->waiting.next, dp_job_t, open);
        cjob_fail (job, status, text);
    }
}

//  Cancel flags set by the caller (dp_job_opts_t.cancel): such a job is
//  cancelled as by dp_job_cancel: no more input, and the broker answers
//  every item already sent (those not run as DP_ERR_CANCELLED), so the
//  output callback sees each sent item exactly once before the job ends.
static void
s_check_cancel_flags (dp_pool_t *self)
{
    if (self->ncancel == 0)
        return;                     //  the common case: no list walk
    link_t *l = self->open.next;
    while (l != &self->open) {
        dp_job_t *job = link_entry (l, dp_job_t, open);
        l = l->next;
        if (job->opts.cancel && *job->opts.cancel && !job->cancel_sent) {
            job->cancel_flagged = true;
            cjob_cancel (job);
        }
    }
}

//  One engine step: feed input, wait up to wait_ms (< 0: one heartbeat
//  interval) for the broker, take what arrived. Returns 0, or -1 when the
//  pool is broken (every open job has then failed).
int
cpool_pump (dp_pool_t *self, int wait_ms)
{
    if (self->broken [0])
        return -1;
    self->pumping++;
    self->interrupted = false;
    s_check_cancel_flags (self);
    cjob_start_waiting (self);
    cjob_feed_all (self);
    int fds [MAX_INPUT_FDS], nfds = 0;
    if (cjob_has_input_later (self, fds, &nfds, MAX_INPUT_FDS) && (wait_ms < 0 || wait_ms > 1))
        wait_ms = 1;                //  an input with no fd to wait on: ask it again soon
    int rc = s_recv (self, wait_ms, fds, nfds);
    for (int count = 0; rc == 1; count++) {
        cjob_on_message (self, &self->msg);
        rc = count < DRAIN_MAX ? s_try_recv (self) : 0;
    }
    dp_msg_reset (&self->msg);
    if (rc < 0)
        cpool_fail_all (self, DP_ERR_POOL, self->broken);
    self->pumping--;
    return self->broken [0] ? -1 : 0;
}

//  May the caller wait on the pool now? Not from inside a callback.
bool
cpool_check_caller (dp_pool_t *self)
{
    if (self && self->pumping) {
        client_set_error ("dpool: a waiting call was made from inside a callback");
        return false;
    }
    return true;
}

//  Absolute deadline for a timeout in ms (< 0: none).
int64_t
cpool_deadline (int timeout_ms)
{
    return timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
}

//  Milliseconds left until a deadline (-1: no deadline), at least 0.
int
cpool_wait_left (int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - zclock_mono ();
    return left > 0 ? (int) (left > INT32_MAX ? INT32_MAX : left) : 0;
}

int
dp_pool_poll (dp_pool_t *self, int timeout_ms)
{
    if (!self || !cpool_check_caller (self))
        return -1;
    if (self->broken [0] && self->nopen == 0)
        return 0;                   //  nothing to lose; the next job says HELLO
    if (cpool_pump (self, timeout_ms) != 0) {
        client_set_error ("%s", self->broken);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Ending the pool's work: seal, join, terminate (Pool.close, .join,
//  .terminate)

int
dp_pool_seal (dp_pool_t *self)
{
    if (!self) {
        client_set_error ("invalid arguments");
        return -1;
    }
    self->sealed = true;
    return 0;
}

int
dp_pool_join (dp_pool_t *self, int timeout_ms)
{
    if (!self) {
        client_set_error ("invalid arguments");
        return -1;
    }
    if (!cpool_check_caller (self))
        return -1;
    int64_t deadline = cpool_deadline (timeout_ms);
    while (self->nopen + self->nwaiting > 0) {
        if (cpool_pump (self, cpool_wait_left (deadline)) != 0) {
            client_set_error ("%s", self->broken);
            return -1;
        }
        if (self->nopen + self->nwaiting == 0)
            break;
        if ((deadline >= 0 && zclock_mono () >= deadline) || self->interrupted)
            return DP_TIMEOUT;
    }
    return 0;
}

//  Waiting jobs end at once; open ones are cancelled at the broker, which
//  answers what they sent at once (aborting what runs), so that outside a
//  callback the answers are taken here within one round trip. A broker
//  that stays silent fails them as any lost broker does (timeout_ms).
int
dp_pool_terminate (dp_pool_t *self)
{
    if (!self) {
        client_set_error ("invalid arguments");
        return -1;
    }
    self->sealed = true;
    self->terminated = true;
    while (!link_empty (&self->waiting))
        cjob_terminate (link_entry (self->waiting.next, dp_job_t, open));
    for (link_t *l = self->open.next; l != &self->open; l = l->next)
        cjob_terminate (link_entry (l, dp_job_t, open));
    if (self->pumping)
        return 0;                   //  from a callback: the running pump ends them
    int64_t deadline = zclock_mono () + 2 * (int64_t) self->timeout_ms;
    while (self->nopen > 0 && !self->broken [0] && zclock_mono () < deadline)
        cpool_pump (self, cpool_wait_left (deadline));
    if (self->nopen > 0)
        cpool_fail_all (self, DP_ERR_CANCELLED, "pool terminated");
    return 0;
}
