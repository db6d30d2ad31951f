/*  =========================================================================
    dp_node - a worker node: `dpool-worker -j N` supervises N workers

    The node starts N worker processes (this same program in --child mode)
    that connect to the broker themselves and carry all the work; the node
    carries none. It keeps its own small connection to the broker to
    announce itself (NODE: host, pid, slots) and to report each worker's
    death with what it was running (DEATH), read from the worker's progress
    page: so the broker charges exactly that item, and a task that outlives
    its timeout is killed here and reported as timed out. Workers die with
    their node (PR_SET_PDEATHSIG and a getppid check); the node restarts a
    dead worker at once, or with a capped backoff if it never ran anything.
    A worker that stops turning its loop (SIGSTOP, a hang) for 1.5 heartbeat
    intervals (at least 500 ms; it turns it at least every 100 ms) is killed
    (SIGKILL) and replaced: the broker would drop it after 3, but the
    process would stay, stopped, for ever.
    The node reconnects to a broker that went away (capped, jittered
    exponential backoff 1 s -> 32 s), like its workers do.
    =========================================================================
*/
#include "dp_wake.h"
#include "dp_worker.h"
#include "dp_super.h"
#include "dp_progress.h"
#include "dp_proto.h"

#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_BACKOFF_MIN   1000
#define S_BACKOFF_MAX   32000
#define S_LIVENESS      3
#define S_STOP_GRACE_MS 2000
#define S_MAXMSG        65536   //  the largest frame the node accepts (ZMQ_MAXMSGSIZE)
#define S_LIVENESS_MIN_MS 500   //  a worker silent this long (at least) is killed
#define INIT_WAIT_MS    10000   //  start-up waits this long for a worker's initializers

typedef struct {
    const dp_worker_opts_t *opts;
    void *ctx, *broker;
    dp_super_t *super;
    uint64_t token;
    uint32_t hb_ms, broker_hb;
    int64_t last_sent, last_recv, reconnect_at;
    int64_t connected_at;           //  when s_connect last ran
    bool welcomed;                  //  the broker answered since then
    uint32_t backoff;
    unsigned seed;
    char host [DP_MAX_NAME + 1];
    dp_curve_keys_t curve;          //  CURVE keys for the broker, or none
} s_node_t;

static volatile sig_atomic_t s_stop;
static int s_wake [2] = { -1, -1 };     //  dp_wake.h: the handler wakes the loop

static void
s_on_signal (int sig)
{
    s_stop = sig;
    dp_wake (s_wake);
}

static int
s_send (s_node_t *self, dp_msg_t *msg)
{
    if (!self->broker)
        return -1;
    self->last_sent = zclock_mono ();
    int rc = dp_msg_send (msg, self->broker, NULL);
    dp_msg_reset (msg);
    return rc;
}

static void
s_send_node (s_node_t *self)
{
    if (!self->super)
        return;                     //  announced once the workers start
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_NODE);
    msg.node = self->token;
    msg.pid = (uint32_t) getpid ();
    msg.slots = (uint32_t) dp_super_size (self->super);
    msg.hb = self->hb_ms;
    snprintf (msg.host, sizeof msg.host, "%s", self->host);
    s_send (self, &msg);
}

//  A worker died: tell the broker what it was running.
static void
s_on_death (void *owner, const dp_death_t *death)
{
    s_node_t *self = (s_node_t *) owner;
    if (self->opts->verbose)
        fprintf (stderr, "dpool-worker: node: worker %d died: %s\n", (int) death->pid, death->reason);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_DEATH);
    msg.pid = (uint32_t) death->pid;
    msg.chunk = death->chunk;
    msg.item = death->item;
    msg.code = death->clean ? DP_ST_OK : death->code;
    snprintf (msg.text, sizeof msg.text, "%s", death->reason);
    s_send (self, &msg);
}

//  Returns 0, or -1 if the endpoint is refused (bad syntax, unknown
//  transport); the caller tries again after a backoff.
static int
s_connect (s_node_t *self)
{
    self->broker = zmq_socket (self->ctx, ZMQ_DEALER);
    int linger = 0, ivl = (int) self->hb_ms, ttl = (int) (S_LIVENESS * self->hb_ms);
    zmq_setsockopt (self->broker, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->broker, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt (self->broker, ZMQ_HEARTBEAT_TIMEOUT, &ttl, sizeof ttl);
    //  a node is sent only header-only messages (WELCOME, HEARTBEAT, ERROR,
    //  BYE): a bigger frame closes the connection before it is buffered
    int64_t maxmsg = S_MAXMSG;
    zmq_setsockopt (self->broker, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    //  never block on a send for long: a DEALER whose only pipe went away
    //  (the broker gone, a CURVE handshake refused) blocks until a peer
    //  comes, and the node would not see SIGTERM meanwhile. A message that
    //  cannot go within a heartbeat is dropped; the liveness check
    //  reconnects and NODE says it all again. (Not 0: NODE, sent right
    //  after the connect, would be lost.)
    zmq_setsockopt (self->broker, ZMQ_SNDTIMEO, &ivl, sizeof ivl);
    char why [1024];
    if (!self->opts->curve_secret
    &&  dp_curve_client_keys (NULL, NULL, "worker", self->opts->endpoint, &self->curve,
                              why, sizeof why))
        fprintf (stderr, "dpool-worker: %s\n", why);
    if (dp_curve_client_apply (self->broker, &self->curve) != 0
    ||  zmq_connect (self->broker, self->opts->endpoint) != 0) {
        fprintf (stderr, "dpool-worker: cannot connect to %s: %s\n", self->opts->endpoint,
                 zmq_strerror (errno));
        zmq_close (self->broker);
        self->broker = NULL;
        return -1;
    }
    self->last_recv = self->connected_at = zclock_mono ();
    self->welcomed = false;
    s_send_node (self);
    return 0;
}

//  The broker is silent: drop the socket, try again after a backoff.
static void
s_disconnect (s_node_t *self)
{
    if (self->broker)
        zmq_close (self->broker);
    self->broker = NULL;
    uint32_t jitter = (uint32_t) rand_r (&self->seed) % (self->backoff / 4 + 1);
    self->reconnect_at = zclock_mono () + self->backoff + jitter;
    self->backoff = self->backoff * 2 > S_BACKOFF_MAX ? S_BACKOFF_MAX : self->backoff * 2;
}

static void
s_from_broker (s_node_t *self)
{
    dp_msg_t msg;
    dp_msg_init (&msg, 0);
    char err [256];
    while (self->broker) {
        int rc = dp_msg_recv (&msg, self->broker, NULL, ZMQ_DONTWAIT, err, sizeof err);
        if (rc == DP_PROTO_ESOCKET)
            break;
        self->last_recv = zclock_mono ();
        if (rc == 0 && msg.cmd == DP_CMD_WELCOME) {
            self->welcomed = true;
            self->broker_hb = msg.hb ? msg.hb : self->hb_ms;
            self->backoff = S_BACKOFF_MIN;
        }
        else
        if (rc == 0 && msg.cmd == DP_CMD_ERROR && msg.code == DP_PROTO_ENOTREADY)
            s_send_node (self);     //  the broker restarted: announce again
        else
        if (rc == 0 && msg.cmd == DP_CMD_BYE)
            s_disconnect (self);
        dp_msg_reset (&msg);
    }
    dp_msg_reset (&msg);
}

static void
s_tick (s_node_t *self)
{
    int64_t now = zclock_mono ();
    if (!self->broker) {
        if (now >= self->reconnect_at && s_connect (self))
            s_disconnect (self);
        return;
    }
    if (now - self->last_recv > (int64_t) S_LIVENESS * self->broker_hb)
        s_disconnect (self);
    else
    //  connected without CURVE because the server directory had no keys
    //  for the endpoint yet: once they are there, connect again at once
    if (!self->welcomed && !self->curve.on && !self->opts->curve_secret
    &&  now - self->connected_at >= 200
    &&  dp_curve_keys_appeared ("worker", self->opts->endpoint)) {
        zmq_close (self->broker);
        self->broker = NULL;
        if (s_connect (self))
            s_disconnect (self);
    }
    else
    if (now - self->last_sent >= self->hb_ms) {
        dp_msg_t msg;
        dp_msg_init (&msg, DP_CMD_HEARTBEAT);
        s_send (self, &msg);
    }
}

//  The children's command line: this program in --child mode.
static const char **
s_child_args (const dp_worker_opts_t *opts, char numbers [4][16], size_t *n)
{
    const char **args = (const char **) calloc (2 * opts->nmodules + 28, sizeof (char *));
    size_t at = 0;
    args [at++] = "--connect";
    args [at++] = opts->endpoint;
    args [at++] = "--child";
    snprintf (numbers [0], 16, "%u", opts->heartbeat_ms ? opts->heartbeat_ms : 1000);
    args [at++] = "--heartbeat";
    args [at++] = numbers [0];
    if (opts->credit) {
        snprintf (numbers [1], 16, "%u", opts->credit);
        args [at++] = "--credit";
        args [at++] = numbers [1];
    }
    if (opts->max_tasks) {
        snprintf (numbers [2], 16, "%u", opts->max_tasks);
        args [at++] = "--max-tasks-per-child";
        args [at++] = numbers [2];
    }
    if (opts->mem_limit_mb) {
        snprintf (numbers [3], 16, "%u", opts->mem_limit_mb);
        args [at++] = "--mem-limit";
        args [at++] = numbers [3];
    }
    if (opts->init_args) {
        args [at++] = "--init";
        args [at++] = opts->init_args;
    }
    if (opts->allow_exec)
        args [at++] = "--allow-exec";
    if (opts->curve_secret && opts->broker_key) {
        args [at++] = "--curve-secret";
        args [at++] = opts->curve_secret;
        args [at++] = "--broker-key";
        args [at++] = opts->broker_key;
    }
    for (int i = 0; i < opts->verbose && i < 3; i++)
        args [at++] = "-v";
    for (size_t i = 0; i < opts->nmodules; i++) {
        args [at++] = "-m";
        args [at++] = opts->modules [i];
    }
    *n = at;
    return args;
}

//  Start the node's workers. Returns 0 or an exit code.
static int
s_start_workers (s_node_t *self, int jobs)
{
    char program [4096], err [512];
    ssize_t len = readlink ("/proc/self/exe", program, sizeof program - 1);
    if (len <= 0) {
        fprintf (stderr, "dpool-worker: cannot find my own program\n");
        return 1;
    }
    program [len] = 0;
    if (dp_super_check_modules (program, self->opts->modules, self->opts->nmodules,
                                err, sizeof err)) {
        fprintf (stderr, "%s\n", err);
        return DP_WORKER_EXIT_CONFIG;
    }
    char numbers [4][16], token [48];
    size_t nargs;
    const char **args = s_child_args (self->opts, numbers, &nargs);
    snprintf (token, sizeof token, "DPOOL_NODE=%llu", (unsigned long long) self->token);
    const char *env [] = { token };
    dp_super_opts_t sopts = {
        .program = program, .args = args, .nargs = nargs, .env = env, .nenv = 1,
        .children = jobs, .mem_limit_mb = self->opts->mem_limit_mb,
        .on_death = s_on_death, .owner = self,
        //  a worker that stops (SIGSTOP) or hangs is killed and replaced
        //  before the broker's 3 missed heartbeats, so that the item it ran
        //  is the one blamed (DEATH) rather than its whole chunk
        .liveness_ms = 3 * self->hb_ms / 2 > S_LIVENESS_MIN_MS ? 3 * self->hb_ms / 2 : S_LIVENESS_MIN_MS
    };
    self->super = dp_super_new (&sopts);
    free (args);
    if (dp_super_start (self->super, err, sizeof err)) {
        fprintf (stderr, "dpool-worker: %s\n", err);
        return 1;
    }
    if (self->opts->init_args && dp_super_wait_init (self->super, INIT_WAIT_MS, err, sizeof err)) {
        fprintf (stderr, "dpool-worker: %s\n", err);
        return DP_WORKER_EXIT_CONFIG;
    }
    return 0;
}

static void
s_loop (s_node_t *self)
{
    zmq_pollitem_t items [1 + 4096];
    while (!s_stop) {
        int count = 0;
        items [count++] = (zmq_pollitem_t) { NULL, s_wake [0], ZMQ_POLLIN, 0 };
        int at_broker = count;
        if (self->broker)
            items [count++] = (zmq_pollitem_t) { self->broker, 0, ZMQ_POLLIN, 0 };
        int first_child = count;
        dp_super_poll_items (self->super, items, &count, (int) (sizeof items / sizeof items [0]));
        int64_t now = zclock_mono ();
        int64_t wake = dp_super_next_event (self->super, now + 100);
        if (zmq_poll (items, count, wake > now ? (long) (wake - now) : 0) < 0 && errno != EINTR)
            break;
        if (first_child > at_broker && (items [at_broker].revents & ZMQ_POLLIN))
            s_from_broker (self);
        dp_super_handle (self->super, items + first_child, count - first_child);
        dp_super_tick (self->super);
        s_tick (self);
    }
}

int
dp_node_run (const dp_worker_opts_t *opts, int jobs)
{
    s_node_t node = { .opts = opts, .backoff = S_BACKOFF_MIN };
    s_node_t *self = &node;
    self->hb_ms = self->broker_hb = opts->heartbeat_ms ? opts->heartbeat_ms : 1000;
    self->seed = (unsigned) getpid () ^ (unsigned) zclock_mono ();
    gethostname (self->host, sizeof self->host - 1);
    FILE *random = fopen ("/dev/urandom", "r");
    while (!self->token)
        if (!random || fread (&self->token, sizeof self->token, 1, random) != 1)
            self->token = ((uint64_t) getpid () << 32) ^ (uint64_t) zclock_mono ();
    if (random)
        fclose (random);
    char why [1024];
    if (dp_curve_client_keys (opts->curve_secret, opts->broker_key, "worker", opts->endpoint,
                              &self->curve, why, sizeof why)) {
        fprintf (stderr, "dpool-worker: %s\n", why);
        return DP_WORKER_EXIT_USAGE;
    }
    dp_wake_open (s_wake);
    struct sigaction action = { .sa_handler = s_on_signal };
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    //  A bad endpoint is a usage error, found before any worker starts
    self->ctx = zmq_ctx_new ();
    int code = !self->ctx ? 1 : s_connect (self) ? DP_WORKER_EXIT_USAGE : 0;
    if (code == 0)
        code = s_start_workers (self, jobs);
    if (code == 0) {
        s_send_node (self);
        if (self->opts->verbose)
            fprintf (stderr, "dpool-worker: node of %d workers for %s\n", jobs, opts->endpoint);
        s_loop (self);
    }
    if (self->super)
        dp_super_stop (self->super, S_STOP_GRACE_MS);
    dp_super_destroy (&self->super);
    if (self->broker && code == 0) {
        dp_msg_t bye;
        dp_msg_init (&bye, DP_CMD_BYE);
        s_send (self, &bye);
    }
    if (self->broker)
        zmq_close (self->broker);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    return code;
}
