/*  =========================================================================
    dp_broker - the broker actor: event loop, peers, heartbeats

    One thread, one zmq_poll loop, no locks. The loop waits on the actor
    pipe, the client ROUTER (frontend), the worker ROUTER (backend) and one
    pidfd per local worker process, and wakes at least every tick to run
    timers: heartbeats, dead peers, worker restarts, jobs without a worker.

    Peers are keyed by their ROUTER routing id (hex). A peer that speaks
    before saying HELLO/READY is told ENOTREADY (the broker restarted);
    a malformed message is dropped, counted and logged, and the peer gets
    an ERROR: nothing a peer sends can stop the loop. Flow control is the
    protocol's (client window, worker credit), so the ROUTERs have no high
    water marks: the broker never blocks on a send and never drops one.
    Both ROUTERs set ROUTER_MANDATORY, so a send to a peer that is gone
    fails at once (EHOSTUNREACH) and the broker treats the peer as lost
    instead of queueing into the void.
    =========================================================================
*/
#include "dp_broker_internal.h"
#include "dp_guard.h"
#include "dp_cpus.h"

#include <pthread.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TICK_MS          100    //  timer resolution of the loop
#define LIVENESS         3      //  heartbeats missed before a peer is dead
#define CLIENT_WINDOW    (1u << 17)         //  items in flight per client (default)
#define CLIENT_WBYTES    (256ull << 20)     //  bytes in flight per client (default)
#define CLIENT_BATCH     8192               //  items per BATCH
#define CLIENT_MAX_JOBS  1024               //  open jobs per client (libdpool opens 256)
#define CLIENT_ZMTP_MS   60000  //  ZMTP timeout on the frontend, at least (s_router)
#define WORKER_ZMTP_MS   30000  //  and on the backend

//  A peer's routing id as hex, the key of the peer tables.
static void
s_key (const zmq_msg_t *rid, char *key, size_t size)
{
    static const char hex [] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *) zmq_msg_data ((zmq_msg_t *) rid);
    size_t n = zmq_msg_size ((zmq_msg_t *) rid);
    size_t at = 0;
    for (size_t i = 0; i < n && at + 3 <= size; i++) {
        key [at++] = hex [p [i] >> 4];
        key [at++] = hex [p [i] & 15];
    }
    key [at] = 0;
}

static void
s_log (broker_t *self, const char *format, ...)
{
    if (!self->opts.verbose)
        return;
    va_list args;
    va_start (args, format);
    char line [1024];
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    zsys_info ("dpool-broker: %s", line);
}

//  --------------------------------------------------------------------------
//  Sending

int64_t
broker_now (broker_t *self)
{
    return self->clock ? self->clock () : zclock_mono ();
}

static int
s_send (broker_t *self, void *socket, zmq_msg_t *rid, dp_msg_t *msg)
{
    int rc = self->sender ? self->sender (self, socket, rid, msg) : dp_msg_send (msg, socket, rid);
    int saved = errno;
    if (rc == 0) {
        self->stats.msgs_out++;
        self->stats.bytes_out += msg->bytes;
    }
    dp_msg_reset (msg);
    errno = saved;
    return rc == 0 ? 0 : -1;
}

//  Send to a peer known only by its routing id (a STATUS from anyone).
int
broker_send_to (broker_t *self, void *socket, zmq_msg_t *rid, dp_msg_t *msg)
{
    return s_send (self, socket, rid, msg);
}

//  RESULTS and DONE go at once or fail with EAGAIN (the job keeps them and
//  they are retried); they also wait while the client's backlog holds
//  older messages. Anything else must not be lost: dp_guard.c holds it.
int
broker_send_client (broker_t *self, client_t *client, dp_msg_t *msg)
{
    if (msg->cmd != DP_CMD_RESULTS && msg->cmd != DP_CMD_DONE)
        return guard_client_send (self, client, msg, msg->cmd == DP_CMD_ERROR);
    if (guard_client_backlogged (client)) {
        dp_msg_reset (msg);
        errno = EAGAIN;
        return -1;
    }
    client->last_send_ms = self->now_ms;
    return s_send (self, self->frontend, &client->rid, msg);
}

int
broker_send_worker (broker_t *self, worker_t *worker, dp_msg_t *msg)
{
    worker->last_send_ms = self->now_ms;
    return s_send (self, self->backend, &worker->rid, msg);
}

//  An ERROR with this code, job (NULL: none) and text.
static void
s_error_msg (dp_msg_t *msg, int code, const uint32_t *job, const char *text)
{
    dp_msg_init (msg, DP_CMD_ERROR);
    msg->code = code;
    if (job) {
        msg->has_job = true;
        msg->job = *job;
    }
    snprintf (msg->text, sizeof msg->text, "%s", text);
}

//  Reply ERROR to a peer we may not know (only its routing id). To a
//  client without a session, an ERROR that finds its pipe full is dropped
//  and counted (guard_undelivered), and so is one to a worker that has
//  GUARD_WORKER_SNDHWM messages waiting (it reads nothing).
static void
s_send_error (broker_t *self, void *socket, zmq_msg_t *rid, int code,
              const uint32_t *job, const char *text)
{
    dp_msg_t msg;
    s_error_msg (&msg, code, job, text);
    if (s_send (self, socket, rid, &msg) != 0 && errno == EAGAIN) {
        char key [32];
        s_key (rid, key, sizeof key);
        guard_undelivered (self, key, DP_CMD_ERROR, socket == self->frontend);
    }
}

//  Reply ERROR to a client with a session: it waits if its pipe is full
//  (guard_client_send). `ends_job`: the broker ended that job.
static void
s_client_error (broker_t *self, client_t *client, int code, const uint32_t *job,
                const char *text, bool ends_job)
{
    dp_msg_t msg;
    s_error_msg (&msg, code, job, text);
    guard_client_send (self, client, &msg, ends_job);
}

//  --------------------------------------------------------------------------
//  Clients

static client_t *
s_client_new (broker_t *self, zmq_msg_t *rid, const char *key, uint32_t hb)
{
    client_t *client = (client_t *) zmalloc (sizeof (client_t));
    snprintf (client->key, sizeof client->key, "%s", key);
    zmq_msg_init (&client->rid);
    zmq_msg_copy (&client->rid, rid);
    client->hb = hb ? hb : self->opts.heartbeat_ms;
    client->expiry_ms = self->now_ms + LIVENESS * client->hb;
    link_init (&client->jobs);
    link_init (&client->backlog);
    client->job_index = job_index_new ();
    zhashx_insert (self->clients, key, client);
    return client;
}

//  Forget a client and cancel its jobs (their items stop being dispatched).
static void
s_client_destroy (broker_t *self, client_t **client_p)
{
    client_t *client = *client_p;
    while (!link_empty (&client->jobs)) {
        job_t *job = link_entry (client->jobs.next, job_t, by_client);
        job_destroy (self, &job);
    }
    stream_client_gone (self, client);
    guard_client_forget (self, client);
    zhashx_delete (self->clients, client->key);
    zhashx_destroy (&client->job_index);
    zmq_msg_close (&client->rid);
    free (client);
    *client_p = NULL;
}

static void
s_client_welcome (broker_t *self, client_t *client)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_WELCOME);
    msg.hb = self->opts.heartbeat_ms;
    msg.window = self->opts.window;
    msg.wbytes = self->opts.wbytes;
    msg.batch = CLIENT_BATCH;
    broker_send_client (self, client, &msg);
}

//  A job-level request from a known client. Returns 0, or an ERROR code
//  (DP_PROTO_EJOB, EWINDOW, ELIMIT) with a reason for the reply; *ended
//  is set when the broker ended the job for it.
static int
s_client_job_request (broker_t *self, client_t *client, dp_msg_t *msg, char *err, size_t errlen,
                      bool *ended)
{
    job_t *job = job_lookup (client, msg->job);
    if (msg->cmd == DP_CMD_JOB) {
        if (job || !msg->task [0]) {
            snprintf (err, errlen, job ? "job %u already exists" : "job %u: empty task name", msg->job);
            return -1;
        }
        //  an ERROR that ended a job and waits for the client to read
        //  still holds the job's slot: so such ERRORs are bounded too
        if (client->njobs + client->held >= CLIENT_MAX_JOBS) {
            snprintf (err, errlen, "job %u: more than %d open jobs", msg->job, CLIENT_MAX_JOBS);
            return -1;
        }
        if (self->guard.njobs >= self->opts.max_jobs) {
            snprintf (err, errlen, "job %u: the broker has %u open jobs, its limit (--max-jobs)",
                      msg->job, self->opts.max_jobs);
            return DP_PROTO_ELIMIT;
        }
        job_new (self, client, msg);
        return 0;
    }
    if (!job) {
        snprintf (err, errlen, "no job %u", msg->job);
        return -1;
    }
    if (msg->cmd == DP_CMD_BATCH) {
        //  over the window: refused before it is kept, and the job ends.
        //  Bytes: a BATCH may start while less than wbytes is outstanding
        //  (one item may be as big as a frame), so a client holds at most
        //  wbytes plus one BATCH here
        uint64_t bytes = msg->nframes > 1 ? zmq_msg_size (&msg->frame [1]) : 0;
        if (client->outstanding + msg->n > self->opts.window || msg->n > CLIENT_BATCH
        ||  client->outstanding_bytes >= self->opts.wbytes) {
            snprintf (err, errlen, "job %u: window exceeded: %llu items, %llu bytes outstanding "
                      "+ %u items, %llu bytes; the window is %u items, %llu bytes, %u a batch",
                      msg->job, (unsigned long long) client->outstanding,
                      (unsigned long long) client->outstanding_bytes, msg->n,
                      (unsigned long long) bytes, self->opts.window,
                      (unsigned long long) self->opts.wbytes, CLIENT_BATCH);
            job_destroy (self, &job);
            *ended = true;
            return DP_PROTO_EWINDOW;
        }
        if (job_add_batch (self, job, msg, err, errlen) != 0)
            return -1;
        if (msg->last)              //  the job's last batch: END with it
            job_end (self, job, job->next_first);
        return 0;
    }
    if (msg->cmd == DP_CMD_END) {
        if (job->ended || msg->total != job->next_first) {
            snprintf (err, errlen, "job %u: END total=%llu, sent %llu", msg->job,
                      (unsigned long long) msg->total, (unsigned long long) job->next_first);
            return -1;
        }
        job_end (self, job, msg->total);
        return 0;
    }
    //  CANCEL: answer what is left as cancelled, then DONE
    job->ended = true;
    job->total = job->next_first;
    job_fail_all (self, job, DP_ST_CANCELLED, "cancelled");
    return 0;
}

//  As PROTOCOL.md §7 says, an EJOB about a job the broker has (a duplicate
//  JOB, a BATCH out of order, a wrong END total) ends that job: the client
//  fails it on that ERROR, so the broker must not keep running its items
//  and holding its window
static int
s_client_job_command (broker_t *self, client_t *client, dp_msg_t *msg, char *err, size_t errlen,
                      bool *ended)
{
    int code = s_client_job_request (self, client, msg, err, errlen, ended);
    job_t *job;
    if (code == -1 && !*ended && (job = job_lookup (client, msg->job))) {
        job_destroy (self, &job);
        *ended = true;
    }
    return code;
}

static void
s_client_message (broker_t *self, zmq_msg_t *rid, dp_msg_t *msg)
{
    char key [32], err [256];
    s_key (rid, key, sizeof key);
    client_t *client = (client_t *) zhashx_lookup (self->clients, key);
    if (msg->cmd == DP_CMD_HELLO) {
        if (client)     //  same peer, new session: its old jobs are gone
            s_client_destroy (self, &client);
        else
        if (zhashx_size (self->clients) >= self->opts.max_clients) {
            snprintf (err, sizeof err, "the broker has %u clients, its limit (--max-clients)",
                      self->opts.max_clients);
            guard_log (self, "client %s refused: %s", key, err);
            s_send_error (self, self->frontend, rid, DP_PROTO_ELIMIT, NULL, err);
            return;
        }
        client = s_client_new (self, rid, key, msg->hb);
        snprintf (client->name, sizeof client->name, "%s", msg->host);
        s_log (self, "client %s (%s) connected", key, msg->host);
        s_client_welcome (self, client);
        return;
    }
    if (msg->cmd == DP_CMD_STATUS) {    //  anyone may ask; no session needed
        if (client) {
            //  a client's REPORT waits, like its other answers, if its
            //  pipe is full (built when it goes)
            client->expiry_ms = self->now_ms + LIVENESS * client->hb;
            dp_msg_t report;
            dp_msg_init (&report, DP_CMD_REPORT);
            guard_client_send (self, client, &report, false);
        }
        else
        if (metrics_status (self, rid) != 0 && errno == EAGAIN)
            guard_undelivered (self, key, DP_CMD_REPORT, true);
        return;
    }
    if (!client) {
        if (msg->cmd != DP_CMD_BYE)
            s_send_error (self, self->frontend, rid, DP_PROTO_ENOTREADY, NULL, "unknown client: send HELLO");
        return;
    }
    client->expiry_ms = self->now_ms + LIVENESS * client->hb;
    switch (msg->cmd) {
        case DP_CMD_HEARTBEAT:
            break;
        case DP_CMD_BYE:
            s_log (self, "client %s left", key);
            s_client_destroy (self, &client);
            break;
        case DP_CMD_ACK:
            stream_ack (self, client, msg);
            break;
        case DP_CMD_JOB:
        case DP_CMD_BATCH:
        case DP_CMD_END:
        case DP_CMD_CANCEL:
        {
            bool ended = false;
            int code = s_client_job_command (self, client, msg, err, sizeof err, &ended);
            if (code != 0)
                s_client_error (self, client, code == -1 ? DP_PROTO_EJOB : code, &msg->job,
                                err, ended);
        }
            break;
        default:
            snprintf (err, sizeof err, "unexpected %s from a client", dp_cmd_name (msg->cmd));
            s_client_error (self, client, DP_PROTO_ECMD, NULL, err, false);
            self->dropped++;
    }
}

//  --------------------------------------------------------------------------
//  Workers

static void
s_worker_destroy (broker_t *self, worker_t **worker_p)
{
    worker_t *worker = *worker_p;
    metrics_worker_gone (self, worker);
    link_remove (&worker->available);
    zhashx_destroy (&worker->tasks);
    zmq_msg_close (&worker->rid);
    free (worker);
    *worker_p = NULL;
}

//  A worker is gone (died, silent, unreachable, said BYE): its chunks go
//  back to their jobs. `why` NULL is a clean BYE that charges no attempt.
void
broker_worker_lost (broker_t *self, worker_t *worker, const char *why)
{
    s_log (self, "worker %s (pid %d) lost: %s", worker->key, worker->pid, why ? why : "bye");
    if (why)
        self->stats.peers_dropped++;
    if (worker->slot >= 0 && self->local [worker->slot] == worker)
        self->local [worker->slot] = NULL;
    jobs_requeue_worker (self, worker, why);
    zhashx_delete (self->workers, worker->key);
    s_worker_destroy (self, &worker);
}

//  A supervised worker died (a local one, or a node's): its supervisor
//  says which item it was running, so only that item is blamed.
void
broker_worker_died (broker_t *self, worker_t *worker, const dp_death_t *death)
{
    s_log (self, "worker %s (pid %d) died: %s (chunk %llu item %d)", worker->key, worker->pid,
           death->reason, (unsigned long long) death->chunk, (int) death->item);
    if (worker->slot >= 0 && self->local [worker->slot] == worker)
        self->local [worker->slot] = NULL;
    if (worker->node && worker->node == self->local_token)
        self->stats.local_restarts++;
    jobs_requeue_exact (self, worker, death);
    zhashx_delete (self->workers, worker->key);
    s_worker_destroy (self, &worker);
}

bool
broker_any_worker_has (broker_t *self, const char *task)
{
    worker_t *worker = (worker_t *) zhashx_first (self->workers);
    while (worker) {
        if (zhashx_lookup (worker->tasks, task))
            return true;
        worker = (worker_t *) zhashx_next (self->workers);
    }
    return false;
}

//  READY from a worker, or NODE from a worker node (kept as a worker with
//  no tasks and no credit: it heartbeats and reports its workers' deaths).
static void
s_worker_ready (broker_t *self, zmq_msg_t *rid, const char *key, dp_msg_t *msg)
{
    worker_t *old = (worker_t *) zhashx_lookup (self->workers, key);
    uint32_t strikes = old ? old->strikes : 0;      //  a new READY clears no strike
    if (old)
        broker_worker_lost (self, old, NULL);
    worker_t *worker = (worker_t *) zmalloc (sizeof (worker_t));
    worker->strikes = strikes;
    worker->id_base = self->next_chunk_id;
    worker->benched = strikes >= GUARD_STRIKES;
    snprintf (worker->key, sizeof worker->key, "%s", key);
    zmq_msg_init (&worker->rid);
    zmq_msg_copy (&worker->rid, rid);
    worker->tasks = zhashx_new ();
    for (uint32_t i = 0; i < msg->ntasks; i++)
        zhashx_insert (worker->tasks, msg->tasks [i], (void *) 1);
    worker->is_node = msg->cmd == DP_CMD_NODE;
    worker->credit = worker->is_node ? 0 : msg->credit ? msg->credit : 1;
    //  a peer's interval is its own, but one of hours would keep a silent
    //  peer (and its chunks) for hours: liveness takes at most a minute
    uint32_t max_hb = self->opts.heartbeat_ms > GUARD_MAX_HB_MS ? self->opts.heartbeat_ms : GUARD_MAX_HB_MS;
    worker->hb = msg->hb ? msg->hb : self->opts.heartbeat_ms;
    worker->hb = worker->hb < max_hb ? worker->hb : max_hb;
    worker->expiry_ms = self->now_ms + LIVENESS * worker->hb;
    worker->heard_ms = self->now_ms;
    worker->pid = (pid_t) msg->pid;
    worker->slots = msg->slots;
    worker->ready_ms = self->now_ms;
    worker->node = msg->node;
    snprintf (worker->host, sizeof worker->host, "%s", msg->host);
    link_init (&worker->inflight);
    link_init (&worker->available);
    worker->slot = !worker->is_node && msg->node == self->local_token
                 ? spawn_slot_by_pid (self, worker->pid) : -1;
    if (worker->slot >= 0 && self->local [worker->slot])    //  a second READY from one pid
        worker->slot = -1;
    if (worker->slot >= 0)
        self->local [worker->slot] = worker;
    if (!worker->is_node && worker->node == self->local_token && worker->slot < 0)
        worker->node = 0;       //  claims our token but is none of ours
    worker->tag = dp_node_tag (worker->node);
    zhashx_insert (self->workers, key, worker);
    if (!worker->is_node && !worker->benched)
        link_insert_before (&self->available, &worker->available);
    s_log (self, "%s %s ready: host %s pid %d, %u tasks, credit %u, slots %u%s",
           worker->is_node ? "node" : "worker", key, worker->host, worker->pid, msg->ntasks,
           worker->credit, worker->slots, worker->slot >= 0 ? " (local)" : "");
    dp_msg_t reply;
    dp_msg_init (&reply, DP_CMD_WELCOME);
    reply.hb = self->opts.heartbeat_ms;
    broker_send_worker (self, worker, &reply);
}

//  DEATH from a node: one of its workers died, and the node says what it
//  was running. Deaths of workers the broker does not know are ignored.
static void
s_node_death (broker_t *self, worker_t *node, dp_msg_t *msg)
{
    worker_t *worker = (worker_t *) zhashx_first (self->workers);
    while (worker && !(worker->node == node->node && !worker->is_node
                       && worker->pid == (pid_t) msg->pid))
        worker = (worker_t *) zhashx_next (self->workers);
    if (!worker)
        return;
    node->restarts++;
    dp_death_t death = { .slot = -1, .pid = (pid_t) msg->pid, .chunk = msg->chunk,
                         .item = msg->item, .code = DP_ST_DIED };
    if (msg->code == DP_ST_TIMEOUT || msg->code == DP_ST_CANCELLED)
        death.code = (uint8_t) msg->code;
    death.aborted = msg->code == DP_ST_CANCELLED;
    death.clean = msg->code == DP_ST_OK;
    snprintf (death.reason, sizeof death.reason, "%.80s", msg->text [0] ? msg->text : "died");
    broker_worker_died (self, worker, &death);
}

static void
s_worker_message (broker_t *self, zmq_msg_t *rid, dp_msg_t *msg)
{
    char key [32], err [128];
    s_key (rid, key, sizeof key);
    if (msg->cmd == DP_CMD_NODE && guard_node_check (self, key, msg, err, sizeof err) != 0) {
        guard_log (self, "worker %s: %s", key, err);
        s_send_error (self, self->backend, rid, DP_PROTO_EHEADER, NULL, err);
        self->dropped++;
        return;
    }
    if ((msg->cmd == DP_CMD_READY || msg->cmd == DP_CMD_NODE)
    &&  !zhashx_lookup (self->workers, key) && zhashx_size (self->workers) >= self->opts.max_workers
    &&  !guard_evict_idle (self, key, msg->cmd == DP_CMD_READY ? msg->node : 0)) {
        snprintf (err, sizeof err, "the broker has %u workers, its limit (--max-workers)",
                  self->opts.max_workers);
        guard_log (self, "worker %s refused: %s", key, err);
        s_send_error (self, self->backend, rid, DP_PROTO_ELIMIT, NULL, err);
        return;
    }
    if (msg->cmd == DP_CMD_READY || msg->cmd == DP_CMD_NODE) {
        s_worker_ready (self, rid, key, msg);
        return;
    }
    worker_t *worker = (worker_t *) zhashx_lookup (self->workers, key);
    if (!worker) {
        if (msg->cmd != DP_CMD_BYE)
            s_send_error (self, self->backend, rid, DP_PROTO_ENOTREADY, NULL, "unknown worker: send READY");
        return;
    }
    worker->expiry_ms = self->now_ms + LIVENESS * worker->hb;
    worker->heard_ms = self->now_ms;
    switch (msg->cmd) {
        case DP_CMD_RESULT:
            metrics_result (self, worker, msg);
            jobs_result (self, worker, msg);
            break;
        case DP_CMD_WPART:
            stream_part (self, worker, msg);
            break;
        case DP_CMD_DEATH:
            if (worker->is_node)
                s_node_death (self, worker, msg);
            break;
        case DP_CMD_HEARTBEAT:
            break;
        case DP_CMD_BYE:
            broker_worker_lost (self, worker, NULL);
            break;
        case DP_CMD_ERROR:
            guard_log (self, "worker %s: error %d: %s", key, msg->code, msg->text);
            break;
        default:
            snprintf (err, sizeof err, "unexpected %s from a worker", dp_cmd_name (msg->cmd));
            s_send_error (self, self->backend, rid, DP_PROTO_ECMD, NULL, err);
            self->dropped++;
    }
}

//  --------------------------------------------------------------------------
//  Receiving

//  Read up to `max` messages from one ROUTER without blocking, so that
//  neither side can starve the other. Returns the number read.
static int
s_drain (broker_t *self, void *socket, bool frontend, int max)
{
    zmq_msg_t rid;
    zmq_msg_init (&rid);
    int count = 0;
    char err [256];
    for (; count < max; count++) {
        dp_msg_reset (&self->msg);
        int rc = dp_msg_recv (&self->msg, socket, &rid, ZMQ_DONTWAIT, err, sizeof err);
        if (rc == DP_PROTO_ESOCKET && (errno == EAGAIN || errno == EINTR || errno == ETERM))
            break;
        self->stats.msgs_in++;
        self->stats.bytes_in += self->msg.bytes;
        if (rc != 0) {
            self->dropped++;
            guard_log (self, "dropped a malformed message from a %s: %s",
                       frontend ? "client" : "worker", err);
            if (rc != DP_PROTO_ESIG && zmq_msg_size (&rid) > 0) {
                char key [32];
                s_key (&rid, key, sizeof key);
                client_t *client = frontend ? (client_t *) zhashx_lookup (self->clients, key) : NULL;
                if (client)
                    s_client_error (self, client, rc, NULL, err, false);
                else
                    s_send_error (self, socket, &rid, rc, NULL, err);
            }
            continue;
        }
        if (frontend)
            s_client_message (self, &rid, &self->msg);
        else
            s_worker_message (self, &rid, &self->msg);
    }
    dp_msg_reset (&self->msg);
    zmq_msg_close (&rid);
    return count;
}

//  --------------------------------------------------------------------------
//  Timers

static void
s_heartbeat (broker_t *self, void *socket, zmq_msg_t *rid, int64_t *last_send, uint32_t hb)
{
    if (self->now_ms - *last_send < hb)
        return;
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_HEARTBEAT);
    *last_send = self->now_ms;
    s_send (self, socket, rid, &msg);
}

static void
s_tick (broker_t *self)
{
    zlistx_t *dead = zlistx_new ();
    for (client_t *c = (client_t *) zhashx_first (self->clients); c;
         c = (client_t *) zhashx_next (self->clients)) {
        if (self->now_ms > c->expiry_ms) {
            //  A silent client is dead only if its connection is gone: a
            //  program computing between pool calls, reading a long input
            //  line, or sending a large item over a slow link says nothing
            //  for a while, but its ZeroMQ I/O thread still answers the
            //  ZMTP PINGs, so its pipe lives. A dead or stopped host's
            //  connection is closed by those heartbeats, and ROUTER_MANDATORY
            //  then refuses this send (an inproc pipe lives as long as its
            //  socket). See PROTOCOL.md, client liveness.
            dp_msg_t msg;
            dp_msg_init (&msg, DP_CMD_HEARTBEAT);
            c->last_send_ms = self->now_ms;
            if (s_send (self, self->frontend, &c->rid, &msg) != 0 && errno == EHOSTUNREACH)
                zlistx_add_end (dead, c);
            else
                c->expiry_ms = self->now_ms + LIVENESS * c->hb;
        }
        else
            s_heartbeat (self, self->frontend, &c->rid, &c->last_send_ms, self->opts.heartbeat_ms);
    }
    for (client_t *c = (client_t *) zlistx_first (dead); c; c = (client_t *) zlistx_next (dead)) {
        s_log (self, "client %s gone: its jobs are cancelled", c->key);
        self->stats.peers_dropped++;
        s_client_destroy (self, &c);
    }
    zlistx_purge (dead);
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers)) {
        if (self->now_ms > w->expiry_ms)
            zlistx_add_end (dead, w);
        else
            s_heartbeat (self, self->backend, &w->rid, &w->last_send_ms, self->opts.heartbeat_ms);
    }
    for (worker_t *w = (worker_t *) zlistx_first (dead); w; w = (worker_t *) zlistx_next (dead)) {
        //  a local worker that stopped heartbeating (SIGSTOP, stuck) is
        //  killed, so that its supervisor starts a new one in its slot
        int slot = w->slot >= 0 && self->local [w->slot] == w ? w->slot : -1;
        broker_worker_lost (self, w, "no heartbeat");
        if (slot >= 0)
            spawn_kill_slot (self, slot, "no heartbeat");
    }
    zlistx_destroy (&dead);
    jobs_check_noworker (self);
    jobs_speculate (self);
    jobs_overrun (self);
    guard_tick (self);
    metrics_publish (self);
}

//  --------------------------------------------------------------------------
//  Set-up and teardown

//  A broker ROUTER. The options are deliberate:
//  - no send high-water mark here: flow control is the protocol's (window,
//    credit); s_start sets the limits for peers that ignore it (a client
//    that reads nothing, a worker that floods and reads nothing), and a
//    send never blocks;
//  - ROUTER_MANDATORY: a send to a peer that is gone fails at once
//    (EHOSTUNREACH) instead of vanishing, so the peer is handled as lost;
//  - ROUTER_HANDOVER off: peers use the routing ids ZeroMQ gives them, so a
//    second connection can never take over a live peer's session;
//  - HANDSHAKE_IVL: a connection that does not finish the ZMTP handshake in
//    3 s (a port scanner, a stuck peer) is closed rather than kept;
//  - ZMTP heartbeats (PING/PONG) on TCP at the application heartbeat
//    interval: a dead host or a cut link closes the connection even while
//    the peer's application is busy; application heartbeats still decide
//    liveness (any message counts, dead after 3 silent intervals). A PONG
//    (or any frame) cannot pass a frame being sent, and libzmq's timeout
//    counts only whole frames: a client sending a 4 MiB batch or a large
//    item over a slow link says nothing until it is through, so on the
//    frontend the ZMTP timeout and TTL are at least CLIENT_ZMTP_MS, and
//    the PINGs go every CLIENT_ZMTP_MS / 6 at the most often (a dead
//    client host is seen within 70 s): libzmq 4.3's timer cancel is a
//    linear scan, so PINGs to every connection every second cost the
//    I/O thread O(connections^2) a second; at 5,000 idle connections it
//    ran at 100% and handshakes missed their 3 s (tests/test_torture.c).
//    On the backend, worker liveness is the application heartbeats' (a
//    silent worker is lost after 3 intervals whatever ZMTP says), and the
//    ZMTP heartbeat only closes a dead host's connection: its timeout is
//    at least WORKER_ZMTP_MS and its PINGs go every 5 s at the most often,
//    so many worker connections cost the I/O thread little as well;
//  - MAXMSGSIZE: a frame over DP_MAX_FRAME drops the connection before it
//    is ever buffered.
static void *
s_router (broker_t *self, zsock_t **sock_p, int zmtp_min_ms)
{
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    if (!sock)
        return NULL;
    int hb = (int) self->opts.heartbeat_ms;
    int timeout = 3 * hb > zmtp_min_ms ? 3 * hb : zmtp_min_ms;
    int ivl = hb > zmtp_min_ms / 6 ? hb : zmtp_min_ms / 6;
    zsock_set_sndhwm (sock, 0);
    zsock_set_rcvhwm (sock, GUARD_PEER_RCVHWM);
    zsock_set_linger (sock, 0);
    zsock_set_router_mandatory (sock, 1);
    zsock_set_router_handover (sock, 0);
    zsock_set_handshake_ivl (sock, 3000);
    zsock_set_heartbeat_ivl (sock, ivl);
    zsock_set_heartbeat_timeout (sock, timeout);
    zsock_set_heartbeat_ttl (sock, timeout);
    zsock_set_maxmsgsize (sock, DP_MAX_FRAME);
    *sock_p = sock;
    return zsock_resolve (sock);
}

static int
s_bind (zsock_t *sock, const char *endpoint, char *err, size_t errlen)
{
    if (zmq_bind (zsock_resolve (sock), endpoint) != 0) {
        snprintf (err, errlen, "cannot bind %s: %s", endpoint, zmq_strerror (errno));
        return -1;
    }
    return 0;
}

//  Watch a ROUTER's DISCONNECTED events through an inproc PAIR.
static void *
s_monitor (broker_t *self, void *router, const char *name)
{
    char endpoint [96];
    snprintf (endpoint, sizeof endpoint, "%s-%s-monitor", self->inproc, name);
    if (zmq_socket_monitor (router, endpoint, ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_ACCEPTED) != 0)
        return NULL;
    void *pair = zmq_socket (zsys_init (), ZMQ_PAIR);
    int linger = 0;
    zmq_setsockopt (pair, ZMQ_LINGER, &linger, sizeof linger);
    if (pair && zmq_connect (pair, endpoint) != 0) {
        zmq_close (pair);
        pair = NULL;
    }
    return pair;
}

//  Remove ipc files that brokers killed with SIGKILL left behind
//  (dpool-PID-*.ipc of a PID that no longer runs).
static void
s_remove_stale_ipc (const char *dir)
{
    DIR *d = opendir (dir);
    struct dirent *e;
    while (d && (e = readdir (d))) {
        int pid;
        if (sscanf (e->d_name, "dpool-%d-", &pid) != 1 || !strstr (e->d_name, ".ipc")
        ||  pid <= 0 || kill (pid, 0) == 0 || errno != ESRCH)
            continue;
        char path [512];
        snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
        unlink (path);
    }
    if (d)
        closedir (d);
}

static int
s_setup (broker_t *self, char *err, size_t errlen)
{
    self->frontend = s_router (self, &self->frontend_sock, CLIENT_ZMTP_MS);
    self->backend = s_router (self, &self->backend_sock, WORKER_ZMTP_MS);
    if (self->frontend) {
        //  a client that reads nothing fills this much, then its answers
        //  wait at the broker (a send never blocks: EAGAIN) and its window
        //  stays closed
        zsock_set_sndhwm (self->frontend_sock, GUARD_CLIENT_SNDHWM);
        zsock_set_sndtimeo (self->frontend_sock, 0);
    }
    if (self->backend) {
        //  the credit bounds what an honest worker is sent; a peer that
        //  floods bad messages and reads nothing would have its ERRORs
        //  queued without end: past this many, sends to it fail at once
        zsock_set_sndhwm (self->backend_sock, GUARD_WORKER_SNDHWM);
        zsock_set_sndtimeo (self->backend_sock, 0);
    }
    if (!self->frontend || !self->backend) {
        snprintf (err, errlen, "cannot create sockets: %s", zmq_strerror (errno));
        return -1;
    }
    guard_budget (self, 64 + 4 * self->nlocal);
    self->monitor [0] = s_monitor (self, self->frontend, "front");
    self->monitor [1] = s_monitor (self, self->backend, "back");
    if (!self->monitor [0] || !self->monitor [1]) {
        snprintf (err, errlen, "cannot monitor sockets: %s", zmq_strerror (errno));
        return -1;
    }
    const char *tmp = getenv ("TMPDIR");
    s_remove_stale_ipc (tmp && *tmp && strlen (tmp) < 60 ? tmp : "/tmp");
    if (s_bind (self->frontend_sock, self->inproc, err, errlen))
        return -1;
    //  the local workers' ipc endpoint is bound before CURVE is set: options
    //  apply to the binds made after them. Only its owner may connect to it.
    if (self->nlocal > 0) {
        snprintf (self->ipc_path, sizeof self->ipc_path, "%s/dpool-%d-%lx.ipc",
                  tmp && *tmp && strlen (tmp) < 60 ? tmp : "/tmp", (int) getpid (),
                  (unsigned long) ((uintptr_t) self & 0xffffff));
        snprintf (self->ipc, sizeof self->ipc, "ipc://%s", self->ipc_path);
        if (s_bind (self->backend_sock, self->ipc, err, errlen))
            return -1;
        if (chmod (self->ipc_path, 0600) != 0) {
            snprintf (err, errlen, "cannot make %s private: %s", self->ipc_path, strerror (errno));
            return -1;
        }
    }
    for (int which = 0; which < 2; which++) {
        const char *endpoint = which ? self->opts.workers : self->opts.clients;
        if (!endpoint)
            continue;
        if (!self->curve.on && !self->opts.insecure && !dp_curve_endpoint_is_local (endpoint)) {
            snprintf (err, errlen, "refusing to bind %s without CURVE: anyone who reaches it "
                      "could run tasks (give keys, or --insecure on a trusted network)", endpoint);
            return -1;
        }
        zsock_t *sock = which ? self->backend_sock : self->frontend_sock;
        if (self->curve.on) {
            const char *allow = which ? self->opts.allow_workers : self->opts.allow_clients;
            snprintf (self->zap_domain [which], sizeof self->zap_domain [which],
                      "dpool-%s-%s", self->inproc + 22, which ? "workers" : "clients");
            if (dp_curve_server_apply (zsock_resolve (sock), &self->curve, self->zap_domain [which],
                                       allow, err, errlen)) {
                self->zap_domain [which][0] = 0;
                return -1;
            }
        }
        if (s_bind (sock, endpoint, err, errlen))
            return -1;
        self->bound [which] = true;
        //  a real handshake with a key no allow-list has must be refused
        if (self->curve.on) {
            char last [512] = "";
            size_t size = sizeof last;
            zmq_getsockopt (zsock_resolve (sock), ZMQ_LAST_ENDPOINT, last, &size);
            if (dp_curve_self_check (last, &self->curve, err, errlen))
                return -1;
        }
    }
    if (self->nlocal > 0 && spawn_start (self, err, errlen))
        return -1;
    return 0;
}

static void
s_teardown (broker_t *self)
{
    //  say goodbye to workers (remote ones will come back to a new broker)
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers)) {
        dp_msg_t msg;
        dp_msg_init (&msg, DP_CMD_BYE);
        broker_send_worker (self, w, &msg);
    }
    for (client_t *c = (client_t *) zhashx_first (self->clients); c;
         c = (client_t *) zhashx_next (self->clients))
        if (!link_empty (&c->jobs))
            s_send_error (self, self->frontend, &c->rid, DP_PROTO_ENOTREADY, NULL, "broker shutting down");
    spawn_stop (self);
    client_t *client;
    while ((client = (client_t *) zhashx_first (self->clients)))
        s_client_destroy (self, &client);
    worker_t *worker;
    while ((worker = (worker_t *) zhashx_first (self->workers)))
        broker_worker_lost (self, worker, NULL);
    for (int which = 0; which < 2; which++)
        if (self->monitor [which]) {
            zmq_socket_monitor (which ? self->backend : self->frontend, NULL, 0);
            zmq_close (self->monitor [which]);
        }
    zsock_destroy (&self->frontend_sock);
    zsock_destroy (&self->backend_sock);
    for (int which = 0; which < 2; which++)
        if (self->zap_domain [which][0])
            dp_curve_server_release (self->zap_domain [which]);
    if (self->ipc_path [0])
        unlink (self->ipc_path);
    //  and the ipc files of the endpoints we bound (libzmq leaves them)
    for (int which = 0; which < 2; which++) {
        const char *endpoint = which ? self->opts.workers : self->opts.clients;
        if (self->bound [which] && strncmp (endpoint, "ipc://", 6) == 0 && endpoint [6] != '@')
            unlink (endpoint + 6);
    }
}

//  --------------------------------------------------------------------------
//  The actor

//  A connection closed (a TCP peer's process died, its host went away): a
//  heartbeat to every peer of that socket finds who it was at once, as
//  ROUTER_MANDATORY refuses a send to a routing id that is gone. So a
//  killed client's jobs are cancelled, and a dead worker's chunks
//  requeued, without waiting for 3 missed heartbeats. O(peers) per event.
static void
s_probe (broker_t *self, int which)
{
    zlistx_t *gone = zlistx_new ();
    zhashx_t *table = which == 0 ? self->clients : self->workers;
    for (void *peer = zhashx_first (table); peer; peer = zhashx_next (table)) {
        dp_msg_t msg;
        dp_msg_init (&msg, DP_CMD_HEARTBEAT);
        zmq_msg_t *rid = which == 0 ? &((client_t *) peer)->rid : &((worker_t *) peer)->rid;
        if (s_send (self, which == 0 ? self->frontend : self->backend, rid, &msg) != 0
        &&  errno == EHOSTUNREACH)
            zlistx_add_end (gone, peer);
    }
    for (void *peer = zlistx_first (gone); peer; peer = zlistx_next (gone)) {
        if (which == 0) {
            client_t *client = (client_t *) peer;
            s_log (self, "client %s disconnected: its jobs are cancelled", client->key);
            self->stats.peers_dropped++;
            s_client_destroy (self, &client);
        }
        else {
            //  a supervised worker's death comes from its supervisor, with
            //  the item it was running; only the others are lost here
            worker_t *worker = (worker_t *) peer;
            if (worker->slot < 0 && !worker->node)
                broker_worker_lost (self, worker, "disconnected");
        }
    }
    zlistx_destroy (&gone);
}

//  Read a monitor's events and probe that socket's peers, now and twice
//  more shortly after (the socket may learn of the closed pipe a moment
//  after the event).
static void
s_on_disconnect (broker_t *self, int which)
{
    zmq_msg_t event;
    zmq_msg_init (&event);
    bool disconnected = false;
    while (zmq_msg_recv (&event, self->monitor [which], ZMQ_DONTWAIT) >= 0)
        if (zmq_msg_more (&event) && zmq_msg_size (&event) == 6) {
            //  the event's first frame: uint16 event, uint32 value (the fd)
            uint16_t id;
            uint32_t value;
            memcpy (&id, zmq_msg_data (&event), 2);
            memcpy (&value, (uint8_t *) zmq_msg_data (&event) + 2, 4);
            disconnected |= id == ZMQ_EVENT_DISCONNECTED;
            guard_connection (self, id == ZMQ_EVENT_ACCEPTED, (int) value);
        }
    zmq_msg_close (&event);
    if (!disconnected)
        return;
    s_probe (self, which);
    self->reprobes [which] = 2;
    self->reprobe_at [which] = self->now_ms + 20;
}

//  Due re-probes.
static void
s_reprobe (broker_t *self)
{
    for (int which = 0; which < 2; which++)
        if (self->reprobes [which] && self->now_ms >= self->reprobe_at [which]) {
            s_probe (self, which);
            self->reprobe_at [which] = self->now_ms + 200;
            self->reprobes [which]--;
        }
}

static void
s_loop (broker_t *self)
{
    zmq_pollitem_t items [5 + 1024];
    int64_t next_tick = broker_now (self) + TICK_MS;
    while (!self->terminated) {
        items [0] = (zmq_pollitem_t) { zsock_resolve (self->pipe), 0, ZMQ_POLLIN, 0 };
        items [1] = (zmq_pollitem_t) { self->frontend, 0, ZMQ_POLLIN, 0 };
        items [2] = (zmq_pollitem_t) { self->backend, 0, ZMQ_POLLIN, 0 };
        items [3] = (zmq_pollitem_t) { self->monitor [0], 0, ZMQ_POLLIN, 0 };
        items [4] = (zmq_pollitem_t) { self->monitor [1], 0, ZMQ_POLLIN, 0 };
        int count = 5;
        if (self->super)
            dp_super_poll_items (self->super, items, &count, (int) (sizeof items / sizeof items [0]));
        int64_t wake = self->super ? dp_super_next_event (self->super, next_tick) : next_tick;
        for (int which = 0; which < 2; which++)
            if (self->reprobes [which] && self->reprobe_at [which] < wake)
                wake = self->reprobe_at [which];
        guard_retry (self, &wake);
        int64_t wait = wake - broker_now (self);
        if (zmq_poll (items, count, wait > 0 ? wait : 0) < 0 && errno != EINTR)
            break;
        self->now_ms = broker_now (self);
        if (items [0].revents & ZMQ_POLLIN) {
            char *command = zstr_recv (self->pipe);
            if (!command || streq (command, "$TERM"))
                self->terminated = true;
            zstr_free (&command);
        }
        if (self->super)
            dp_super_handle (self->super, items + 5, count - 5);
        guard_retry (self, &wake);
        bool busy = true;
        while (busy && !self->terminated) {
            //  backend first: results free credit for dispatch
            busy = s_drain (self, self->backend, false, 256) > 0;
            jobs_deliver (self);
            busy |= s_drain (self, self->frontend, true, 256) > 0;
            jobs_dispatch (self);
        }
        //  after the drain: a dead worker's last words have been read
        if (self->super)
            dp_super_tick (self->super);
        for (int which = 0; which < 2; which++)
            if (items [3 + which].revents & ZMQ_POLLIN)
                s_on_disconnect (self, which);
        s_reprobe (self);
        jobs_dispatch (self);
        if (self->now_ms >= next_tick) {
            s_tick (self);
            jobs_dispatch (self);
            next_tick = self->now_ms + TICK_MS;
        }
    }
}

static void
s_broker_free (broker_t **self_p)
{
    broker_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->opts.nmodules; i++)
        free (self->modules [i]);
    free (self->modules);
    free ((char *) self->opts.clients);
    free ((char *) self->opts.init_args);
    free ((char *) self->opts.workers);
    free ((char *) self->opts.allow_clients);
    free ((char *) self->opts.allow_workers);
    free (self->local);
    free (self->guard.fds);
    free (self->guard.rx);
    zhashx_destroy (&self->clients);
    zhashx_destroy (&self->workers);
    free (self);
    *self_p = NULL;
}

static void
s_actor (zsock_t *pipe, void *args)
{
    broker_t *self = (broker_t *) args;
    self->pipe = pipe;
    self->now_ms = broker_now (self);
    self->stats.started_ms = self->now_ms;
    char err [512] = "";
    int rc = s_setup (self, err, sizeof err);
    zstr_send (pipe, rc == 0 ? "OK" : err);
    if (rc == 0)
        s_loop (self);
    s_teardown (self);
    s_broker_free (&self);
}

static char *
s_strdup_or_null (const char *s)
{
    return s ? strdup (s) : NULL;
}

//  The broker's thread, our own rather than a zactor: a zactor's thread
//  closes its end of the pipe after the caller has been told it ended, and
//  a process that exits in between finds a socket open, for which CZMQ's
//  exit handler waits 200 ms. Joining the thread leaves nothing open.
struct _dp_broker_t {
    pthread_t thread;
    zsock_t *pipe;              //  ours; the thread owns the other end
    zsock_t *thread_pipe;
    broker_t *broker;
};

static void *
s_thread (void *arg)
{
    dp_broker_t *handle = (dp_broker_t *) arg;
    s_actor (handle->thread_pipe, handle->broker);
    zsock_destroy (&handle->thread_pipe);
    return NULL;
}

dp_broker_t *
dp_broker_new (const dp_broker_opts_t *opts, char *inproc, size_t inproc_size,
               char *err, size_t errlen)
{
    static uint32_t instances = 0;
    broker_t *self = (broker_t *) zmalloc (sizeof (broker_t));
    self->opts = *opts;
    self->opts.clients = s_strdup_or_null (opts->clients);
    self->opts.init_args = s_strdup_or_null (opts->init_args);
    self->opts.workers = s_strdup_or_null (opts->workers);
    self->modules = (char **) zmalloc (sizeof (char *) * (opts->nmodules + 1));
    for (size_t i = 0; i < opts->nmodules; i++)
        self->modules [i] = strdup (opts->modules [i]);
    self->opts.modules = (const char *const *) self->modules;
    if (opts->curve && opts->curve->on) {
        self->curve = *opts->curve;
        self->opts.allow_clients = s_strdup_or_null (opts->allow_clients);
        self->opts.allow_workers = s_strdup_or_null (opts->allow_workers);
    }
    else
        self->opts.allow_clients = self->opts.allow_workers = NULL;
    self->opts.curve = NULL;
    if (!self->opts.heartbeat_ms)
        self->opts.heartbeat_ms = 1000;
    if (!self->opts.max_attempts)
        self->opts.max_attempts = 3;
    if (!self->opts.task_wait_ms)
        self->opts.task_wait_ms = 3000;
    if (!self->opts.window)
        self->opts.window = CLIENT_WINDOW;
    if (!self->opts.wbytes)
        self->opts.wbytes = CLIENT_WBYTES;
    if (!self->opts.max_clients)
        self->opts.max_clients = 1024;
    if (!self->opts.max_workers)
        self->opts.max_workers = 4096;
    if (!self->opts.max_jobs)
        self->opts.max_jobs = 16384;
    self->nlocal = opts->local_workers < 0 ? dp_cpu_count () : opts->local_workers;
    if (self->nlocal > 1000)
        self->nlocal = 1000;
    self->local = (worker_t **) zmalloc (sizeof (worker_t *) * (self->nlocal + 1));
    self->local_token = guard_token ();
    self->clients = zhashx_new ();
    self->workers = zhashx_new ();
    link_init (&self->ready);
    link_init (&self->answers);
    link_init (&self->available);
    dp_msg_init (&self->msg, 0);
    if (opts->worker_program)
        snprintf (self->worker_program, sizeof self->worker_program, "%s", opts->worker_program);
    else
    if (self->nlocal > 0 && dp_find_worker_program (self->worker_program, sizeof self->worker_program)) {
        snprintf (err, errlen, "cannot find the dpool-worker program (set DPOOL_WORKER)");
        s_broker_free (&self);
        return NULL;
    }
    snprintf (self->inproc, sizeof self->inproc, "inproc://dpool-broker-%d-%u",
              (int) getpid (), __atomic_add_fetch (&instances, 1, __ATOMIC_RELAXED));
    snprintf (inproc, inproc_size, "%s", self->inproc);
    //  from here the thread owns self and frees it when it ends
    dp_broker_t *handle = (dp_broker_t *) zmalloc (sizeof (dp_broker_t));
    handle->broker = self;
    handle->pipe = zsys_create_pipe (&handle->thread_pipe);
    if (!handle->pipe || pthread_create (&handle->thread, NULL, s_thread, handle) != 0) {
        snprintf (err, errlen, "cannot start the broker thread");
        zsock_destroy (&handle->pipe);
        zsock_destroy (&handle->thread_pipe);
        free (handle);
        s_broker_free (&self);
        return NULL;
    }
    char *status = zstr_recv (handle->pipe);
    if (status && streq (status, "OK")) {
        zstr_free (&status);
        return handle;
    }
    snprintf (err, errlen, "%s", status ? status : "the broker thread failed");
    zstr_free (&status);
    dp_broker_destroy (&handle);
    return NULL;
}

void
dp_broker_destroy (dp_broker_t **self_p)
{
    dp_broker_t *self = *self_p;
    if (!self)
        return;
    //  not blocking: a thread that failed to start has already closed its end
    zmq_send (zsock_resolve (self->pipe), "$TERM", 5, ZMQ_DONTWAIT);
    pthread_join (self->thread, NULL);
    zsock_destroy (&self->pipe);
    free (self);
    *self_p = NULL;
}
