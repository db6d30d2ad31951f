/*  =========================================================================
    dp_metrics - what the broker is doing: STATUS replies and Prometheus
    metrics

    Both views are built from one dp_report_t (proto/dp_report.h) that
    s_report_fill takes from the broker's tables, on the broker's thread:

    - STATUS (from any client, no session needed) is answered at once with
      a REPORT that carries the encoded report.
    - With opts.metrics_fn (dpool-broker --metrics), every tick renders the
      report as Prometheus text into a fresh buffer and hands it over;
      dpool-broker's metrics server (dp_http.c, libmicrohttpd on its own
      thread) swaps it in under a mutex and serves it. The broker's loop
      never waits on HTTP, and libdpool does not link libmicrohttpd.

    The counters themselves (messages, bytes, dropped peers, items) are
    bumped by small hooks in dp_broker.c: a few adds per message.
    =========================================================================
*/
#include "dp_broker_internal.h"
#include "dp_report.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

//  --------------------------------------------------------------------------
//  The report

//  Add a worker's counters to a node row.
static void
s_node_add (dp_report_node_t *row, const worker_t *worker)
{
    row->workers++;
    row->busy += worker->inflight_count > 0;
    row->done += worker->items_done;
    row->failed += worker->items_failed;
}

//  Fill `report` from the broker's tables. O(workers + jobs).
static void
s_report_fill (broker_t *self, dp_report_t *report)
{
    dp_report_broker_t *b = &report->broker;
    gethostname (b->host, sizeof b->host - 1);
    b->pid = (uint32_t) getpid ();
    b->uptime_ms = (uint64_t) (self->now_ms - self->stats.started_ms);
    b->msgs_in = self->stats.msgs_in;
    b->msgs_out = self->stats.msgs_out;
    b->bytes_in = self->stats.bytes_in;
    b->bytes_out = self->stats.bytes_out;
    b->peers_dropped = self->stats.peers_dropped;
    b->bad_messages = self->dropped;
    b->items_done = self->stats.items_done;
    b->items_failed = self->stats.items_failed;
    b->clients = (uint32_t) zhashx_size (self->clients);
    b->metrics_port = self->opts.metrics_port;

    //  nodes first (the local pool, then each NODE), so workers can name them
    int32_t local = -1;
    if (self->nlocal > 0) {
        dp_report_node_t *row = dp_report_add_node (report);
        if (row) {
            local = 0;
            snprintf (row->host, sizeof row->host, "%s", b->host);
            row->pid = b->pid;
            row->local = true;
            row->slots = (uint32_t) self->nlocal;
            row->done = self->stats.local_done;
            row->failed = self->stats.local_failed;
            row->restarts = self->stats.local_restarts;
        }
    }
    zhashx_t *nodes = zhashx_new ();        //  token (hex) -> row index + 1
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers)) {
        if (!w->is_node)
            continue;
        dp_report_node_t *row = dp_report_add_node (report);
        if (!row)
            break;
        snprintf (row->host, sizeof row->host, "%s", w->host);
        row->pid = (uint32_t) w->pid;
        row->slots = w->slots;
        row->done = w->items_done;          //  of its workers that are gone
        row->failed = w->items_failed;
        row->restarts = w->restarts;
        char token [24];
        snprintf (token, sizeof token, "%llx", (unsigned long long) w->node);
        zhashx_update (nodes, token, (void *) (uintptr_t) report->nnodes);
    }
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers)) {
        if (w->is_node)
            continue;
        dp_report_worker_t *row = dp_report_add_worker (report);
        if (!row)
            break;
        snprintf (row->host, sizeof row->host, "%s", w->host);
        row->pid = (uint32_t) w->pid;
        row->inflight = w->inflight_count;
        row->credit = w->credit;
        row->done = w->items_done;
        row->failed = w->items_failed;
        row->node = -1;
        char token [24];
        snprintf (token, sizeof token, "%llx", (unsigned long long) w->node);
        uintptr_t at = w->node ? (uintptr_t) zhashx_lookup (nodes, token) : 0;
        if (w->node && w->node == self->local_token)
            row->node = local;
        else
        if (at)
            row->node = (int32_t) at - 1;
        if (row->node >= 0)
            s_node_add (&report->nodes [row->node], w);
    }
    zhashx_destroy (&nodes);
    for (client_t *c = (client_t *) zhashx_first (self->clients); c;
         c = (client_t *) zhashx_next (self->clients))
        for (link_t *l = c->jobs.next; l != &c->jobs; l = l->next) {
            job_t *job = link_entry (l, job_t, by_client);
            dp_report_job_t *row = dp_report_add_job (report);
            if (!row)
                return;
            snprintf (row->client, sizeof row->client, "%s", c->name [0] ? c->name : c->key);
            row->job = job->id;
            snprintf (row->task, sizeof row->task, "%s", job->task);
            row->sent = job->next_first;
            row->total = job->ended ? job->total : 0;
            row->ended = job->ended;
            row->done = job->answered;
            row->failed = job->failed;
            row->age_ms = (uint64_t) (self->now_ms - job->created_ms);
        }
}

//  Answer STATUS with a REPORT of the broker now.
int
metrics_status (broker_t *self, zmq_msg_t *rid)
{
    dp_report_t report;
    dp_report_init (&report);
    s_report_fill (self, &report);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_REPORT);
    int rc = 0;
    if (dp_report_encode (&report, &msg) == 0)
        rc = broker_send_to (self, self->frontend, rid, &msg);
    else
        zsys_warning ("dpool-broker: cannot encode a status report");
    int saved = errno;
    dp_msg_reset (&msg);
    dp_report_clear (&report);
    errno = saved;
    return rc;
}

//  --------------------------------------------------------------------------
//  Counters

//  A worker's RESULT: its items, and those that did not succeed.
void
metrics_result (broker_t *self, worker_t *worker, dp_msg_t *msg)
{
    if (msg->nframes < 3)
        return;
    const uint8_t *status = (const uint8_t *) zmq_msg_data (&msg->frame [2]);
    uint32_t failed = 0;
    for (uint32_t i = 0; i < msg->n; i++)
        failed += status [i] != DP_ST_OK;
    worker->items_done += msg->n;
    worker->items_failed += failed;
    self->stats.items_done += msg->n;
    self->stats.items_failed += failed;
}

//  A worker record is going away: its counts stay with its node (the local
//  pool, or the NODE that supervised it), so a node's totals survive its
//  workers' restarts.
void
metrics_worker_gone (broker_t *self, worker_t *worker)
{
    if (worker->is_node || !worker->node)
        return;
    if (worker->node == self->local_token) {
        self->stats.local_done += worker->items_done;
        self->stats.local_failed += worker->items_failed;
        return;
    }
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers))
        if (w->is_node && w->node == worker->node) {
            w->items_done += worker->items_done;
            w->items_failed += worker->items_failed;
            return;
        }
}

//  --------------------------------------------------------------------------
//  Prometheus text

typedef struct {
    char *data;
    size_t size, cap;
    bool failed;
} s_text_t;

static void __attribute__ ((format (printf, 2, 3)))
s_put (s_text_t *text, const char *format, ...)
{
    if (text->failed)
        return;
    while (true) {
        va_list args;
        va_start (args, format);
        int n = vsnprintf (text->data + text->size, text->cap - text->size, format, args);
        va_end (args);
        if (n < 0) {
            text->failed = true;
            return;
        }
        if ((size_t) n < text->cap - text->size) {
            text->size += (size_t) n;
            return;
        }
        size_t cap = text->cap * 2 + (size_t) n;
        char *grown = (char *) realloc (text->data, cap);
        if (!grown) {
            text->failed = true;
            return;
        }
        text->data = grown;
        text->cap = cap;
    }
}

//  A label value with \, " and newline escaped (the text format's rule).
static const char *
s_label (const char *value, char *out, size_t size)
{
    size_t at = 0;
    for (; *value && at + 3 < size; value++) {
        if (*value == '\\' || *value == '"' || *value == '\n') {
            out [at++] = '\\';
            out [at++] = *value == '\n' ? 'n' : *value;
        }
        else
            out [at++] = *value;
    }
    out [at] = 0;
    return out;
}

static void
s_family (s_text_t *text, const char *name, const char *type, const char *help)
{
    s_put (text, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

//  Per-node series: one line per node for each family.
static void
s_render_nodes (s_text_t *text, const dp_report_t *report)
{
    static const struct { const char *name, *type, *help; } families [] = {
        { "dpool_node_slots", "gauge", "Worker processes the node supervises." },
        { "dpool_node_workers", "gauge", "Of them registered with the broker." },
        { "dpool_node_busy", "gauge", "Of them running a chunk." },
        { "dpool_node_items_done_total", "counter", "Items its workers answered." },
        { "dpool_node_items_failed_total", "counter", "Items its workers answered with a failure." },
        { "dpool_node_restarts_total", "counter", "Its workers that died or were recycled." },
    };
    for (size_t f = 0; f < sizeof families / sizeof families [0]; f++) {
        s_family (text, families [f].name, families [f].type, families [f].help);
        for (uint32_t i = 0; i < report->nnodes; i++) {
            const dp_report_node_t *n = &report->nodes [i];
            uint64_t values [] = { n->slots, n->workers, n->busy, n->done, n->failed, n->restarts };
            char host [2 * DP_MAX_NAME + 4];
            s_put (text, "%s{host=\"%s\",pid=\"%u\",local=\"%s\"} %llu\n", families [f].name,
                   s_label (n->host, host, sizeof host), n->pid, n->local ? "true" : "false",
                   (unsigned long long) values [f]);
        }
    }
}

static void
s_render_jobs (s_text_t *text, const dp_report_t *report)
{
    static const struct { const char *name, *help; } families [] = {
        { "dpool_job_items_sent", "Items of the job received from its client." },
        { "dpool_job_items_total", "Items in the job (0 until its input ended)." },
        { "dpool_job_items_done", "Items answered to the client." },
        { "dpool_job_items_failed", "Items answered with a failure." },
    };
    for (size_t f = 0; f < sizeof families / sizeof families [0]; f++) {
        s_family (text, families [f].name, "gauge", families [f].help);
        for (uint32_t i = 0; i < report->njobs; i++) {
            const dp_report_job_t *j = &report->jobs [i];
            uint64_t values [] = { j->sent, j->total, j->done, j->failed };
            char client [2 * DP_MAX_NAME + 4], task [2 * DP_MAX_NAME + 4];
            s_put (text, "%s{client=\"%s\",job=\"%u\",task=\"%s\"} %llu\n", families [f].name,
                   s_label (j->client, client, sizeof client), j->job,
                   s_label (j->task, task, sizeof task), (unsigned long long) values [f]);
        }
    }
}

//  The whole report in the Prometheus text exposition format (0.0.4).
static void
s_render (s_text_t *text, const dp_report_t *report)
{
    const dp_report_broker_t *b = &report->broker;
    uint32_t busy = 0;
    for (uint32_t i = 0; i < report->nworkers; i++)
        busy += report->workers [i].inflight > 0;
    struct { const char *name, *type, *help; uint64_t value; } lines [] = {
        { "dpool_up", "gauge", "1 while the broker runs.", 1 },
        { "dpool_uptime_seconds", "gauge", "Seconds since the broker started.", b->uptime_ms / 1000 },
        { "dpool_messages_received_total", "counter", "Messages received from peers.", b->msgs_in },
        { "dpool_messages_sent_total", "counter", "Messages sent to peers.", b->msgs_out },
        { "dpool_bytes_received_total", "counter", "Bytes of the messages received.", b->bytes_in },
        { "dpool_bytes_sent_total", "counter", "Bytes of the messages sent.", b->bytes_out },
        { "dpool_peers_dropped_total", "counter",
          "Clients and workers dropped: silent, disconnected or broken.", b->peers_dropped },
        { "dpool_bad_messages_total", "counter",
          "Malformed or unexpected messages dropped.", b->bad_messages },
        { "dpool_items_done_total", "counter", "Items answered by workers.", b->items_done },
        { "dpool_items_failed_total", "counter",
          "Items answered by workers with a failure.", b->items_failed },
        { "dpool_clients", "gauge", "Client sessions.", b->clients },
        { "dpool_jobs", "gauge", "Open jobs.", report->njobs },
        { "dpool_nodes", "gauge", "Worker nodes, the local pool included.", report->nnodes },
        { "dpool_workers", "gauge", "Registered worker processes.", report->nworkers },
        { "dpool_workers_busy", "gauge", "Workers running a chunk.", busy },
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines [0]; i++) {
        s_family (text, lines [i].name, lines [i].type, lines [i].help);
        s_put (text, "%s %llu\n", lines [i].name, (unsigned long long) lines [i].value);
    }
    s_render_nodes (text, report);
    s_render_jobs (text, report);
}

//  What dp_guard.c enforced on peers (counters since start, and the
//  connection budget).
static void
s_render_guard (s_text_t *text, broker_t *self)
{
    struct { const char *name, *type, *help; uint64_t value; } lines [] = {
        { "dpool_worker_strikes_total", "counter",
          "Protocol errors by workers (wrong counts, chunks never sent).", self->guard.strikes },
        { "dpool_workers_quarantined_total", "counter",
          "Workers that got no more work after 3 strikes.", self->guard.quarantined },
        { "dpool_workers_benched_total", "counter",
          "Workers benched for holding a chunk far past the job's item times.", self->guard.benched },
        { "dpool_connections", "gauge", "Connections open on the broker's sockets.",
          (uint64_t) (self->guard.conns > 0 ? self->guard.conns : 0) },
        { "dpool_connections_budget", "gauge",
          "Most connections kept open (the fd limit less a reserve).",
          (uint64_t) self->guard.max_conns },
        { "dpool_connections_refused_total", "counter",
          "Connections shut down at accept, over the budget.", self->guard.refused },
        { "dpool_workers_evicted_total", "counter",
          "Idle workers that never worked, evicted at --max-workers for a new one.",
          self->guard.evicted },
        { "dpool_client_messages_held_total", "counter",
          "ERRORs, REPORTs and WELCOMEs that waited for room in a client's pipe.", self->guard.held },
        { "dpool_client_messages_dropped_total", "counter",
          "ERRORs, REPORTs and WELCOMEs dropped: no room, and over the backlog or no session.",
          self->guard.undelivered },
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines [0]; i++) {
        s_family (text, lines [i].name, lines [i].type, lines [i].help);
        s_put (text, "%s %llu\n", lines [i].name, (unsigned long long) lines [i].value);
    }
}

//  Render the broker's state for the metrics server (opts.metrics_fn),
//  which takes the text. Called on the broker's thread at each tick.
void
metrics_publish (broker_t *self)
{
    if (!self->opts.metrics_fn)
        return;
    dp_report_t report;
    dp_report_init (&report);
    s_report_fill (self, &report);
    s_text_t text = { NULL, 0, 0, false };
    s_render (&text, &report);
    s_render_guard (&text, self);
    dp_report_clear (&report);
    if (text.failed || !text.data) {
        free (text.data);
        return;
    }
    self->opts.metrics_fn (self->opts.metrics_arg, text.data, text.size);
}
