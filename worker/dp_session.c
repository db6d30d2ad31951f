/*  =========================================================================
    dp_session - a worker's conversation with its broker (main thread)

    Opens the DEALER socket and announces the worker (READY), takes
    WELCOME, CHUNK (within credit, else ERROR EWINDOW), ABORT, ERROR and
    BYE, hands chunks to the executor and sends their RESULTs back,
    heartbeats, notices a silent broker and reconnects after a capped,
    jittered exponential backoff (a local worker exits instead). One event
    loop polls the broker, the executor's pipe and the signal self-pipe;
    the sessions are numbered so stale chunks' results are dropped
    (dp_worker_internal.h has the whole picture). Faults in what the broker
    sends are logged, rate-limited, and the message dropped.
    =========================================================================
*/
#include "dp_worker_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_POLL_MAX_MS   100         //  longest wait before checking signals
#define S_RECV_BURST    64          //  messages read per wake-up
#define S_BACKOFF_MAX   32000       //  reconnect backoff cap, ms (from WK_BACKOFF_MIN)
#define S_LIVENESS      3           //  broker intervals of silence = dead
#define S_FAULTS_PER_S  5           //  peer faults logged per second


//  --------------------------------------------------------------------------
//  Logs

//  Log a line to stderr when verbosity is at least `level` (0: always).

void
wk_log (wk_worker_t *self, int level, const char *format, ...)
{
    if (self->opts->verbose < level)
        return;
    char line [DP_MAX_TEXT + 256];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    fprintf (stderr, "dpool-worker[%d]: %s\n", (int) getpid (), line);
}

//  Log a fault in what the broker sent, at most S_FAULTS_PER_S a second,
//  so a broken peer cannot flood the log.

static void
s_fault (wk_worker_t *self, const char *what, const char *detail)
{
    int64_t now = wk_now_ms ();
    if (now - self->fault_window >= 1000) {
        if (self->faults_hidden)
            wk_log (self, 0, "(%u more faulty messages not logged)", self->faults_hidden);
        self->fault_window = now;
        self->faults_logged = self->faults_hidden = 0;
    }
    if (self->faults_logged++ < S_FAULTS_PER_S)
        wk_log (self, 0, "dropped message from broker: %s%s%s", what,
                detail && *detail ? ": " : "", detail ? detail : "");
    else
        self->faults_hidden++;
}


//  --------------------------------------------------------------------------
//  Work records (main thread only)

static wk_work_t *
s_work_get (wk_worker_t *self)
{
    wk_work_t *work = self->free_works;
    if (work)
        self->free_works = work->next;
    else
        work = (wk_work_t *) malloc (sizeof *work);
    if (work) {
        dp_msg_init (&work->chunk, 0);
        dp_msg_init (&work->result, DP_CMD_RESULT);
        work->ran = false;
    }
    return work;
}

static void
s_work_put (wk_worker_t *self, wk_work_t *work)
{
    dp_msg_reset (&work->chunk);
    dp_msg_reset (&work->result);
    work->next = self->free_works;
    self->free_works = work;
}


//  --------------------------------------------------------------------------
//  Broker session

//  Send a message to the broker; any failure ends the session (the broker
//  would wait forever for a lost RESULT). Returns 0 or -1.

static void s_disconnect (wk_worker_t *self);

static int
s_send (wk_worker_t *self, dp_msg_t *msg)
{
    if (dp_msg_send (msg, self->broker, NULL)) {
        const char *why = dp_curve_watch_why (self->watch, self->curve.on);
        wk_log (self, 0, "cannot send %s to broker: %s", dp_cmd_name (msg->cmd),
                why ? why : zmq_strerror (errno));
        s_disconnect (self);
        return -1;
    }
    self->last_sent = wk_now_ms ();
    return 0;
}

//  Send a header-only command (HEARTBEAT).

int
wk_send_cmd (wk_worker_t *self, uint8_t cmd)
{
    dp_msg_t msg;
    dp_msg_init (&msg, cmd);
    int rc = s_send (self, &msg);
    dp_msg_reset (&msg);
    return rc;
}

//  Send ERROR with a code and a reason (PROTOCOL.md §7).

static void
s_send_error (wk_worker_t *self, int code, const char *text)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_ERROR);
    msg.code = code;
    snprintf (msg.text, sizeof msg.text, "%s", text);
    s_send (self, &msg);
    dp_msg_reset (&msg);
}

//  Start a new session on the current socket: forget chunks of the old
//  one and announce ourselves. Returns 0 or -1.

static int
s_send_ready (wk_worker_t *self)
{
    atomic_fetch_add (&self->gen, 1);
    wk_stream_cut (self, 0, 0);
    self->inflight = 0;
    self->welcomed = false;
    self->last_recv = wk_now_ms ();
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_READY);
    size_t ntasks = dp_registry_count (self->registry);
    msg.tasks = (char **) calloc (ntasks, sizeof (char *));
    for (size_t i = 0; msg.tasks && i < ntasks; i++)
        if ((msg.tasks [msg.ntasks] = strdup (dp_registry_name (self->registry, i))))
            msg.ntasks++;
    msg.credit = self->credit;
    msg.pid = (uint32_t) getpid ();
    msg.slots = 1;
    msg.node = self->node;
    msg.hb = self->hb_ms;
    char host [HOST_NAME_MAX + 1] = "";
    gethostname (host, sizeof host - 1);
    snprintf (msg.host, sizeof msg.host, "%s", host);
    wk_log (self, 1, "READY to %s (%u tasks, credit %u)", self->opts->endpoint,
            msg.ntasks, msg.credit);
    int rc = s_send (self, &msg);
    dp_msg_reset (&msg);
    return rc;
}

//  Open a socket to the broker and send READY. Returns 0, or -1 when the
//  socket cannot be made or the endpoint is bad (a failed send only ends
//  the session, as any failed send does).

int
wk_connect (wk_worker_t *self)
{
    self->broker = zmq_socket (self->ctx, ZMQ_DEALER);
    if (!self->broker)
        return -1;
    int linger = 0, ivl = (int) self->hb_ms, timeout = S_LIVENESS * (int) self->hb_ms;
    int reconnect = 100, reconnect_max = WK_BACKOFF_MIN;
    int sndtimeo = S_LIVENESS * (int) self->hb_ms;
    int64_t maxmsg = DP_MAX_FRAME;      //  libzmq drops bigger frames unread
    zmq_setsockopt (self->broker, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->broker, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt (self->broker, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
    zmq_setsockopt (self->broker, ZMQ_RECONNECT_IVL, &reconnect, sizeof reconnect);
    zmq_setsockopt (self->broker, ZMQ_RECONNECT_IVL_MAX, &reconnect_max, sizeof reconnect_max);
    zmq_setsockopt (self->broker, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    zmq_setsockopt (self->broker, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    //  the server directory is read again at every session: a broker that
    //  started with us may have written its endpoints since
    char why [1024];
    if (!self->opts->local && !self->opts->curve_secret
    &&  dp_curve_client_keys (NULL, NULL, "worker", self->opts->endpoint, &self->curve,
                              why, sizeof why))
        wk_log (self, 0, "%s", why);
    if (!self->opts->local)
        self->watch = dp_curve_watch_new (self->ctx, self->broker);
    if (dp_curve_client_apply (self->broker, &self->curve)
    ||  zmq_connect (self->broker, self->opts->endpoint)) {
        wk_log (self, 0, "cannot connect to %s: %s", self->opts->endpoint,
                zmq_strerror (errno));
        dp_curve_watch_destroy (&self->watch);
        zmq_close (self->broker);
        self->broker = NULL;
        return -1;
    }
    self->connected_at = wk_now_ms ();
    s_send_ready (self);
    return 0;
}

//  End the session: close the socket, drop its chunks, and schedule a
//  reconnect after the backoff (jittered +-25 %), which then doubles.

static void
s_disconnect (wk_worker_t *self)
{
    dp_curve_watch_destroy (&self->watch);
    if (self->broker)
        zmq_close (self->broker);
    self->broker = NULL;
    atomic_fetch_add (&self->gen, 1);
    wk_stream_cut (self, 0, 0);
    self->inflight = 0;
    self->welcomed = false;
    uint32_t delay = self->backoff * 3 / 4 + (uint32_t) rand_r (&self->seed) % (self->backoff / 2 + 1);
    self->reconnect_at = wk_now_ms () + delay;
    wk_log (self, 1, "reconnecting to %s in %u ms", self->opts->endpoint, delay);
    self->backoff = self->backoff * 2 > S_BACKOFF_MAX ? S_BACKOFF_MAX : self->backoff * 2;
}


//  --------------------------------------------------------------------------
//  Main thread: messages from the broker and the executor

//  A CHUNK: hand it to the executor if within credit, else refuse it with
//  EWINDOW. Returns 0 if the record was passed on, -1 if the caller keeps it.

static int
s_on_chunk (wk_worker_t *self, wk_work_t *work)
{
    if (self->inflight + work->chunk.k > self->credit) {
        char detail [128];
        snprintf (detail, sizeof detail, "CHUNK %llu (%u chunks) beyond credit: %u chunks "
                  "in flight, credit %u", (unsigned long long) work->chunk.chunk,
                  work->chunk.k, self->inflight, self->credit);
        s_fault (self, "over credit", detail);
        s_send_error (self, DP_PROTO_EWINDOW, detail);
        return -1;
    }
    work->gen = atomic_load (&self->gen);
    //  a very short chunk runs here, on the main thread
    if (wk_run_inline (self, work)) {
        if (work->ran && self->broker) {
            self->items_done += work->result.n;
            s_send (self, &work->result);
        }
        if (self->opts->max_tasks && self->items_done >= self->opts->max_tasks)
            self->recycle = true;
        s_work_put (self, work);
        return 0;
    }
    if (zmq_send (self->pipe, &work, sizeof work, 0) != (int) sizeof work)
        return -1;
    self->inflight += work->chunk.k;
    self->outstanding++;
    wk_log (self, 3, "CHUNK %llu: %u items of '%s'",
            (unsigned long long) work->chunk.chunk, work->chunk.n, work->chunk.task);
    return 0;
}

//  A message other than CHUNK. Returns WK_GO or an exit code.

static int
s_on_command (wk_worker_t *self, dp_msg_t *msg)
{
    switch (msg->cmd) {
        case DP_CMD_WELCOME:
            self->welcomed = true;
            self->broker_hb = msg->hb >= 10 && msg->hb <= 3600000 ? msg->hb : self->hb_ms;
            self->backoff = WK_BACKOFF_MIN;
            wk_log (self, 1, "WELCOME from %s (heartbeat %u ms)",
                    self->opts->endpoint, msg->hb);
            break;
        case DP_CMD_HEARTBEAT:
            break;
        case DP_CMD_ABORT:
            //  the executor stops between items; a supervisor kills us if
            //  an item of it runs on
            if (self->progress) {
                unsigned at = self->abort_next % 4;
                atomic_store (&self->progress->abort_ns [at], (int64_t) wk_now_ns ());
                dp_abort_set (&self->progress->abort_chunk [at], &self->progress->abort_count [at],
                              msg->chunk, msg->k);
            }
            dp_abort_set (&self->abort_chunk [self->abort_next % 4],
                          &self->abort_count [self->abort_next % 4], msg->chunk, msg->k);
            self->abort_next++;
            wk_stream_cut (self, msg->chunk, msg->k ? msg->k : 1);
            break;
        case DP_CMD_WACK:
            wk_stream_ack (self, msg);
            break;
        case DP_CMD_ERROR:
            wk_log (self, 1, "ERROR from broker: %d %s", msg->code, msg->text);
            //  Before WELCOME our READY is already on its way: the error
            //  answers something we sent before it
            if (msg->code == DP_PROTO_ENOTREADY && self->welcomed)
                s_send_ready (self);
            else
            if (msg->code != DP_PROTO_ENOTREADY)
                wk_log (self, 0, "broker error %d: %s", msg->code, msg->text);
            //  refused or evicted at the broker's worker limit: try again
            //  later (backoff), else a refused READY is never sent again
            if (msg->code == DP_PROTO_ELIMIT && !msg->has_job) {
                if (self->opts->local)
                    return DP_WORKER_EXIT_OK;
                s_disconnect (self);
            }
            break;
        case DP_CMD_BYE:
            wk_log (self, 1, "BYE from broker");
            if (self->opts->local)
                return DP_WORKER_EXIT_OK;
            self->backoff = WK_BACKOFF_MIN;
            s_disconnect (self);
            break;
        default:
            s_fault (self, "unexpected command", dp_cmd_name (msg->cmd));
            break;
    }
    return WK_GO;
}

//  Read what the broker sent, up to a burst. Returns WK_GO or an exit code.

static int
s_from_broker (wk_worker_t *self)
{
    for (int i = 0; i < S_RECV_BURST && self->broker && !self->recycle; i++) {
        wk_work_t *work = s_work_get (self);
        if (!work)
            return WK_GO;                //  try again on the next wake-up
        char err [256] = "";
        int rc = dp_msg_recv (&work->chunk, self->broker, NULL, ZMQ_DONTWAIT, err, sizeof err);
        if (rc == DP_PROTO_ESOCKET) {
            if (errno != EAGAIN && errno != EINTR)
                wk_log (self, 0, "receive failed: %s", zmq_strerror (errno));
            s_work_put (self, work);
            return WK_GO;
        }
        self->last_recv = wk_now_ms ();  //  anything at all is a sign of life
        if (rc < 0) {
            s_fault (self, dp_proto_strerror (rc), strcmp (err, dp_proto_strerror (rc)) ? err : NULL);
            //  Another version is answered, unless it is an ERROR itself
            if (rc == DP_PROTO_EVERSION && work->chunk.cmd != DP_CMD_ERROR)
                s_send_error (self, DP_PROTO_EVERSION, err);
        }
        else
        if (work->chunk.cmd == DP_CMD_CHUNK && s_on_chunk (self, work) == 0)
            continue;                   //  the executor owns it now
        else
        if (work->chunk.cmd != DP_CMD_CHUNK) {
            int code = s_on_command (self, &work->chunk);
            if (code != WK_GO) {
                s_work_put (self, work);
                return code;
            }
        }
        s_work_put (self, work);
    }
    return WK_GO;
}

//  Take finished records back from the executor and send their RESULTs
//  if their session is still the current one.

void
wk_from_executor (wk_worker_t *self)
{
    void *record [2];
    int rc;
    while ((rc = zmq_recv (self->pipe, record, sizeof record, ZMQ_DONTWAIT)) >= (int) sizeof record [0]) {
        if (rc == (int) sizeof record) {
            //  a part of the running item's output
            wk_part_t *part = (wk_part_t *) record [1];
            if (part->gen == atomic_load (&self->gen) && self->broker)
                s_send (self, &part->msg);
            dp_msg_reset (&part->msg);
            free (part);
            continue;
        }
        wk_work_t *work = (wk_work_t *) record [0];
        self->outstanding--;
        if (work->gen == atomic_load (&self->gen)) {
            self->inflight -= work->chunk.k;
            if (work->ran && self->broker) {
                wk_log (self, 3, "RESULT %llu: %u items",
                        (unsigned long long) work->result.chunk, work->result.n);
                self->items_done += work->result.n;
                s_send (self, &work->result);
            }
            if (self->opts->max_tasks && self->items_done >= self->opts->max_tasks)
                self->recycle = true;
        }
        s_work_put (self, work);
    }
}

//  Timers: heartbeat, broker liveness, reconnect. Returns WK_GO or an
//  exit code.

static int
s_tick (wk_worker_t *self)
{
    int64_t now = wk_now_ms ();
    if (self->recycle) {
        wk_log (self, 1, "recycled after %llu items", (unsigned long long) self->items_done);
        return DP_WORKER_EXIT_OK;
    }
    if (!self->broker) {
        if (now >= self->reconnect_at && wk_connect (self))
            s_disconnect (self);
        return WK_GO;
    }
    //  connected without CURVE because the server directory had no keys
    //  for the endpoint yet (started just before the broker): once they are
    //  there, connect again at once rather than after the liveness check
    if (!self->welcomed && !self->opts->local && !self->curve.on && !self->opts->curve_secret
    &&  now - self->connected_at >= 200
    &&  dp_curve_keys_appeared ("worker", self->opts->endpoint)) {
        wk_log (self, 1, "the server directory lists %s now: connecting with its keys",
                self->opts->endpoint);
        s_disconnect (self);
        self->reconnect_at = now;
        self->backoff = WK_BACKOFF_MIN;
        return WK_GO;
    }
    uint32_t hb = self->welcomed ? self->broker_hb : self->hb_ms;
    if (now - self->last_recv > (int64_t) S_LIVENESS * hb) {
        const char *why = dp_curve_watch_why (self->watch, self->curve.on);
        wk_log (self, self->opts->local || why ? 0 : 1, "broker silent for %lld ms%s%s",
                (long long) (now - self->last_recv), why ? ": " : "", why ? why : "");
        if (self->opts->local)
            return DP_WORKER_EXIT_OK;
        s_disconnect (self);
    }
    else
    if (now - self->last_sent >= self->hb_ms)
        wk_send_cmd (self, DP_CMD_HEARTBEAT);
    return WK_GO;
}

//  How long zmq_poll may sleep: until the next timer, at most S_POLL_MAX_MS.

static long
s_poll_timeout (wk_worker_t *self)
{
    int64_t now = wk_now_ms ();
    int64_t due = now + S_POLL_MAX_MS;
    if (!self->broker)
        due = self->reconnect_at < due ? self->reconnect_at : due;
    else {
        int64_t beat = self->last_sent + self->hb_ms;
        due = beat < due ? beat : due;
    }
    return due > now ? (long) (due - now) : 0;
}

//  The event loop. Returns an exit code.

int
wk_loop (wk_worker_t *self)
{
    while (!wk_interrupted) {
        //  a sign of life for our supervisor, every turn (at least every
        //  S_POLL_MAX_MS): a stopped or hung worker is killed and replaced
        if (self->progress)
            atomic_store_explicit (&self->progress->alive_ns, (int64_t) wk_now_ns (),
                                   memory_order_relaxed);
        zmq_pollitem_t items [3] = {
            { self->pipe, 0, ZMQ_POLLIN, 0 },
            { NULL, wk_wake [0], ZMQ_POLLIN, 0 },
            { self->broker, 0, ZMQ_POLLIN, 0 }
        };
        int nitems = self->broker ? 3 : 2;
        if (zmq_poll (items, nitems, s_poll_timeout (self)) < 0) {
            if (errno == EINTR)
                continue;
            wk_log (self, 0, "poll failed: %s", zmq_strerror (errno));
            return 1;
        }
        if (items [0].revents & ZMQ_POLLIN)
            wk_from_executor (self);
        int code = WK_GO;
        if (nitems == 3 && (items [2].revents & ZMQ_POLLIN))
            code = s_from_broker (self);
        if (code == WK_GO)
            code = s_tick (self);
        if (code != WK_GO)
            return code;
    }
    wk_log (self, 1, "%s: stopping", strsignal (wk_interrupted));
    return DP_WORKER_EXIT_OK;
}
