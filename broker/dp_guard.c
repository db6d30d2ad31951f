/*  =========================================================================
    dp_guard - what the broker enforces on peers it does not trust

    See dp_guard.h for the list. The rules are the worker's part of
    PROTOCOL.md §1.1 rules 6, 7 and 12, and §10: a worker's mistake never
    costs its items an attempt, and one worker never holds a job hostage.
    =========================================================================
*/
#include "dp_guard.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>

uint64_t
guard_token (void)
{
    uint64_t token = 0;
    while (!token)
        if (getrandom (&token, sizeof token, 0) != (ssize_t) sizeof token)
            token = ((uint64_t) randof (1 << 30) << 34) ^ (uint64_t) zclock_usecs ();
    return token;
}

uint64_t
guard_raise_nofile (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) != 0)
        return 1024;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit (RLIMIT_NOFILE, &limit);
        getrlimit (RLIMIT_NOFILE, &limit);
    }
    return (uint64_t) limit.rlim_cur;
}

//  --------------------------------------------------------------------------
//  Rate-limited logging of bad input: a flood of junk must not become a
//  flood of log (200,000 bad messages once wrote 35 MB).

void
guard_log_flush (broker_t *broker)
{
    int64_t second = broker->now_ms / 1000;
    if (second == broker->guard.log_second)
        return;
    if (broker->guard.log_suppressed)
        zsys_warning ("dpool-broker: %llu more bad-input warnings not logged",
                      (unsigned long long) broker->guard.log_suppressed);
    broker->guard.log_suppressed = 0;
    broker->guard.log_lines = 0;
    broker->guard.log_second = second;
}

void
guard_log (broker_t *broker, const char *format, ...)
{
    guard_log_flush (broker);
    if (broker->guard.log_lines >= GUARD_LOG_PER_S) {
        broker->guard.log_suppressed++;
        return;
    }
    broker->guard.log_lines++;
    va_list args;
    va_start (args, format);
    char line [1024];
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    zsys_warning ("dpool-broker: %s", line);
}

//  --------------------------------------------------------------------------
//  Workers' answers

void
guard_sent (worker_t *worker, uint64_t first, uint32_t k)
{
    if (!worker->id_lo)
        worker->id_lo = first;
    worker->id_hi = first + k - 1;
}

void
guard_unknown_result (broker_t *broker, worker_t *worker, dp_msg_t *msg)
{
    broker->dropped++;
    uint64_t last = msg->chunk + (msg->k ? msg->k : 1) - 1;
    if (last < msg->chunk)
        ;           //  wraps around: a lie
    else
    if (last <= worker->id_base
    ||  (worker->id_lo && msg->chunk >= worker->id_lo && last <= worker->id_hi))
        return;     //  a late answer to chunks it was sent (maybe in an earlier session of
                    //  this connection): dropped, no fault
    char why [160];
    snprintf (why, sizeof why, "RESULT for chunks %llu..%llu it was never sent",
              (unsigned long long) msg->chunk, (unsigned long long) last);
    guard_protocol_error (broker, worker, why);
}

void
guard_protocol_error (broker_t *broker, worker_t *worker, const char *why)
{
    worker->strikes++;
    broker->guard.strikes++;
    broker->dropped++;
    bool quarantine = worker->strikes >= GUARD_STRIKES && !worker->benched;
    guard_log (broker, "worker %s (pid %d, host %s): protocol error: %s; strike %u%s",
               worker->key, worker->pid, worker->host, why, worker->strikes,
               quarantine ? ": quarantined, no more work" : "");
    //  its chunks go back as they are: a liar's answers blame no item
    jobs_requeue_worker (broker, worker, NULL);
    worker->gone = false;
    if (worker->strikes >= GUARD_STRIKES) {
        if (quarantine)
            broker->guard.quarantined++;
        worker->benched = true;
        link_remove (&worker->available);
    }
    else
    if (link_empty (&worker->available) && !worker->benched)
        link_insert_before (&broker->available, &worker->available);
}

void
guard_answered (broker_t *broker, worker_t *worker)
{
    if (!worker->benched || worker->strikes >= GUARD_STRIKES || worker->gone)
        return;
    worker->benched = false;
    if (link_empty (&worker->available) && worker->inflight_count < worker_limit (worker))
        link_insert_before (&broker->available, &worker->available);
}

//  --------------------------------------------------------------------------
//  Nodes

int
guard_node_check (broker_t *broker, const char *key, dp_msg_t *msg, char *err, size_t errlen)
{
    if (msg->node == 0 || msg->node == broker->local_token) {
        snprintf (err, errlen, "NODE: 'node' must be the node's own random non-zero token");
        return -1;
    }
    for (worker_t *w = (worker_t *) zhashx_first (broker->workers); w;
         w = (worker_t *) zhashx_next (broker->workers))
        if (w->is_node && w->node == msg->node && strcmp (w->key, key) != 0) {
            snprintf (err, errlen, "NODE: token already registered by another connection");
            return -1;
        }
    return 0;
}

//  --------------------------------------------------------------------------
//  The worker limit

bool
guard_evict_idle (broker_t *broker, const char *key, uint64_t token_in)
{
    //  node tokens with a registered worker: such a node is at work
    zhashx_t *working = zhashx_new ();
    char token [24];
    for (worker_t *w = (worker_t *) zhashx_first (broker->workers); w;
         w = (worker_t *) zhashx_next (broker->workers))
        if (!w->is_node && w->node) {
            snprintf (token, sizeof token, "%llx", (unsigned long long) w->node);
            zhashx_update (working, token, (void *) 1);
        }
    worker_t *victim = NULL;
    for (worker_t *w = (worker_t *) zhashx_first (broker->workers); w;
         w = (worker_t *) zhashx_next (broker->workers)) {
        if (w->slot >= 0 || w->chunks_done || w->items_done || !link_empty (&w->inflight)
        ||  streq (w->key, key))
            continue;
        if (w->is_node) {
            //  not the node of the worker asking in, nor one at work
            snprintf (token, sizeof token, "%llx", (unsigned long long) w->node);
            if ((token_in && w->node == token_in) || zhashx_lookup (working, token))
                continue;
        }
        //  a worker before a node, then the one heard from least recently
        if (!victim || (victim->is_node && !w->is_node)
        ||  (victim->is_node == w->is_node && w->heard_ms < victim->heard_ms))
            victim = w;
    }
    zhashx_destroy (&working);
    if (!victim)
        return false;
    broker->guard.evicted++;
    guard_log (broker, "%s %s (pid %d, host %s) evicted: idle %lld ms, never answered a chunk, "
               "and the broker is at its worker limit (--max-workers %u)",
               victim->is_node ? "node" : "worker", victim->key, victim->pid, victim->host,
               (long long) (broker->now_ms - victim->heard_ms), broker->opts.max_workers);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_ERROR);
    msg.code = DP_PROTO_ELIMIT;
    snprintf (msg.text, sizeof msg.text, "evicted: idle and never worked while the broker is at "
              "its worker limit (--max-workers %u); another took the place", broker->opts.max_workers);
    broker_send_worker (broker, victim, &msg);
    broker_worker_lost (broker, victim, NULL);
    return true;
}

//  --------------------------------------------------------------------------
//  Stalled chunks

//  The worker's oldest chunk that a job still waits for, or NULL.
static chunk_t *
s_head (worker_t *worker)
{
    for (link_t *l = worker->inflight.next; l != &worker->inflight; l = l->next) {
        chunk_t *c = link_entry (l, chunk_t, queue);
        if (c->job)
            return c;
    }
    return NULL;
}

//  Has the chunk run far past what the job's items take? Only once the job
//  has 3 measured items; it ran from its dispatch or the worker's last
//  answer, whichever is later.
static bool
s_stalled (broker_t *broker, worker_t *worker, chunk_t *chunk)
{
    job_t *job = chunk->job;
    if (job->nsamples < 3)
        return false;
    int64_t expect = (int64_t) job->median_us * chunk->n / 1000 * GUARD_STALL_X;
    int64_t limit = expect > GUARD_STALL_MIN_MS ? expect : GUARD_STALL_MIN_MS;
    int64_t since = chunk->dispatched_ms > worker->last_result_ms
                  ? chunk->dispatched_ms : worker->last_result_ms;
    return broker->now_ms - since > limit;
}

//  Open file descriptors of the process (from /proc), or -1.
static int64_t
s_open_fds (void)
{
    DIR *dir = opendir ("/proc/self/fd");
    if (!dir)
        return -1;
    int64_t count = 0;
    while (readdir (dir))
        count++;
    closedir (dir);
    return count - 3;       //  ".", ".." and the directory's own fd
}

static void s_memory_check (broker_t *broker);

void
guard_tick (broker_t *broker)
{
    guard_log_flush (broker);
    s_memory_check (broker);
    //  the event count can only drift up (an event missed): the fds open
    //  are an upper bound, checked when it matters
    if (broker->guard.conns > broker->guard.max_conns / 2 && broker->now_ms % 1000 < 100) {
        int64_t fds = s_open_fds ();
        if (fds >= 0 && fds < broker->guard.conns)
            broker->guard.conns = fds;
    }
    for (worker_t *w = (worker_t *) zhashx_first (broker->workers); w;
         w = (worker_t *) zhashx_next (broker->workers)) {
        if (w->is_node || w->gone || link_empty (&w->inflight))
            continue;
        if (!w->benched) {
            chunk_t *head = s_head (w);
            if (!head || !s_stalled (broker, w, head))
                continue;
            w->benched = true;
            broker->guard.benched++;
            link_remove (&w->available);
            guard_log (broker, "worker %s (pid %d, host %s) holds chunk %llu for %lld ms: benched, "
                       "its chunks get backup copies", w->key, w->pid, w->host,
                       (unsigned long long) head->id, (long long) (broker->now_ms - head->dispatched_ms));
        }
        //  every chunk a job waits for gets a copy elsewhere, unless the job
        //  forbids running an item twice (JOB.spec 2): then it waits
        for (link_t *l = w->inflight.next; l != &w->inflight; l = l->next) {
            chunk_t *c = link_entry (l, chunk_t, queue);
            if (c->job && !c->primary && !c->backup && !c->job->no_spec
            &&  !jobs_backup (broker, c, false))
                break;      //  no worker free now: next tick
        }
    }
}

//  --------------------------------------------------------------------------
//  Clients that do not read

void
guard_blocked (broker_t *broker, client_t *client)
{
    client->blocked = true;
    if (!broker->guard.blocked) {
        //  5 ms, then longer while clients stay blocked (a retry walks
        //  their jobs' chunks): up to 100 ms
        int64_t ivl = broker->guard.retry_ivl ? broker->guard.retry_ivl : GUARD_RETRY_MS;
        broker->guard.retry_ms = broker->now_ms + ivl;
        broker->guard.retry_ivl = ivl * 2 < 100 ? ivl * 2 : 100;
    }
    broker->guard.blocked = true;
}

//  A message held for a client until its pipe has room. ERROR and WELCOME
//  keep their fields; a REPORT is built when it goes (it says what the
//  broker is doing then).
typedef struct {
    link_t link;                //  in client->backlog
    uint8_t cmd;
    bool ends_job;              //  an ERROR that ended a job (client->held)
    bool has_job;
    uint32_t job;
    int32_t code;
    uint32_t hb, window, batch;
    uint64_t wbytes;
    char text [];               //  ERROR.text
} note_t;

bool
guard_client_backlogged (client_t *client)
{
    return !link_empty (&client->backlog);
}

static void
s_note_destroy (client_t *client, note_t **note_p)
{
    note_t *note = *note_p;
    link_remove (&note->link);
    if (note->cmd == DP_CMD_REPORT)
        client->backlog_reports--;
    else
    if (note->ends_job)
        client->held--;
    else
        client->backlog_notes--;
    free (note);
    *note_p = NULL;
}

void
guard_client_forget (broker_t *broker, client_t *client)
{
    (void) broker;
    while (guard_client_backlogged (client)) {
        note_t *note = link_entry (client->backlog.next, note_t, link);
        s_note_destroy (client, &note);
    }
}

void
guard_undelivered (broker_t *broker, const char *key, uint8_t cmd, bool client)
{
    broker->guard.undelivered++;
    guard_log (broker, "%s to %s %s dropped: its queue is full and %s",
               dp_cmd_name (cmd), client ? "client" : "worker", key,
               client ? "nothing more can wait for it" : "it reads nothing");
}

//  Send a held message. Returns 0, or -1 with errno (EAGAIN: no room yet).
static int
s_note_send (broker_t *broker, client_t *client, note_t *note)
{
    if (note->cmd == DP_CMD_REPORT)
        return metrics_status (broker, &client->rid);
    dp_msg_t msg;
    dp_msg_init (&msg, note->cmd);
    msg.code = note->code;
    msg.has_job = note->has_job;
    msg.job = note->job;
    msg.hb = note->hb;
    msg.window = note->window;
    msg.wbytes = note->wbytes;
    msg.batch = note->batch;
    snprintf (msg.text, sizeof msg.text, "%s", note->text);
    return broker_send_to (broker, broker->frontend, &client->rid, &msg);
}

int
guard_client_send (broker_t *broker, client_t *client, dp_msg_t *msg, bool ends_job)
{
    client->last_send_ms = broker->now_ms;
    bool report = msg->cmd == DP_CMD_REPORT;
    ends_job &= msg->cmd == DP_CMD_ERROR && msg->has_job;
    //  what is needed to send it again; a REPORT is built anew
    note_t copy = { .cmd = msg->cmd, .ends_job = ends_job, .has_job = msg->has_job,
                    .job = msg->job, .code = msg->code, .hb = msg->hb, .window = msg->window,
                    .batch = msg->batch, .wbytes = msg->wbytes };
    char text [DP_MAX_TEXT + 1];
    snprintf (text, sizeof text, "%s", msg->text);
    if (!guard_client_backlogged (client)) {
        int rc = report ? metrics_status (broker, &client->rid)
                        : broker_send_to (broker, broker->frontend, &client->rid, msg);
        int saved = errno;
        dp_msg_reset (msg);
        errno = saved;
        if (rc == 0 || errno != EAGAIN)
            return rc;
    }
    else
        dp_msg_reset (msg);
    if (report ? client->backlog_reports >= GUARD_CLIENT_REPORTS
               : !ends_job && client->backlog_notes >= GUARD_CLIENT_NOTES) {
        guard_undelivered (broker, client->key, copy.cmd, true);
        return 0;
    }
    size_t size = report ? 0 : strlen (text);
    note_t *note = (note_t *) zmalloc (sizeof (note_t) + size + 1);
    *note = copy;
    memcpy (note->text, text, size);
    note->text [size] = 0;
    link_init (&note->link);
    link_append (&client->backlog, &note->link);
    if (report)
        client->backlog_reports++;
    else
    if (ends_job)
        client->held++;
    else
        client->backlog_notes++;
    broker->guard.held++;
    guard_blocked (broker, client);
    return 0;
}

//  Send what waits in the client's backlog, in order, while its pipe has
//  room. Returns true when the backlog is empty.
static bool
s_backlog_flush (broker_t *broker, client_t *client)
{
    while (guard_client_backlogged (client)) {
        note_t *note = link_entry (client->backlog.next, note_t, link);
        if (s_note_send (broker, client, note) != 0 && errno == EAGAIN)
            return false;
        s_note_destroy (client, &note);     //  sent, or the client is gone
    }
    return true;
}

void
guard_retry (broker_t *broker, int64_t *wake)
{
    if (!broker->guard.blocked)
        return;
    if (broker->now_ms < broker->guard.retry_ms) {
        if (broker->guard.retry_ms < *wake)
            *wake = broker->guard.retry_ms;
        return;
    }
    broker->guard.blocked = false;
    for (client_t *c = (client_t *) zhashx_first (broker->clients); c;
         c = (client_t *) zhashx_next (broker->clients)) {
        if (!c->blocked)
            continue;
        c->blocked = false;
        if (!s_backlog_flush (broker, c)) {
            guard_blocked (broker, c);
            continue;
        }
        if (!stream_flush (broker, c))
            continue;                       //  its waiting PARTs go next (blocked again)
        link_t *l = c->jobs.next;
        while (l != &c->jobs && !c->blocked) {
            job_t *job = link_entry (l, job_t, by_client);
            l = l->next;
            job_deliver (broker, job);      //  may end the job; a full pipe blocks again
        }
    }
    if (!broker->guard.blocked)
        broker->guard.retry_ivl = 0;        //  all delivered: back to quick retries
}

//  --------------------------------------------------------------------------
//  Connections and file descriptors

void
guard_budget (broker_t *broker, int reserve)
{
    struct rlimit limit;
    int64_t fds = getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                ? (int64_t) limit.rlim_cur : 1 << 20;
    if (reserve < 64)
        reserve = 64;
    if (reserve < fds / 8)
        reserve = (int) (fds / 8);
    broker->guard.max_conns = fds - reserve > 16 ? fds - reserve : 16;
}

//  Keep track of the TCP connections for the memory ceiling
static void
s_track (broker_t *broker, bool accepted, int fd)
{
    if (!broker->opts.max_rss_mb)
        return;
    size_t i = 0;
    while (i < broker->guard.nfds && broker->guard.fds [i] != fd)
        i++;
    if (!accepted) {
        if (i < broker->guard.nfds) {
            broker->guard.nfds--;
            broker->guard.fds [i] = broker->guard.fds [broker->guard.nfds];
            broker->guard.rx [i] = broker->guard.rx [broker->guard.nfds];
        }
        return;
    }
    int domain = 0;
    socklen_t size = sizeof domain;
    if (i < broker->guard.nfds || getsockopt (fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) != 0
    ||  (domain != AF_INET && domain != AF_INET6))
        return;                 //  (a DISCONNECTED missed: the fd is new again)
    if (broker->guard.nfds == broker->guard.fds_cap) {
        size_t cap = broker->guard.fds_cap ? broker->guard.fds_cap * 2 : 64;
        int *fds = (int *) realloc (broker->guard.fds, cap * sizeof (int));
        if (fds)
            broker->guard.fds = fds;
        uint64_t *rx = (uint64_t *) realloc (broker->guard.rx, cap * sizeof (uint64_t));
        if (rx)
            broker->guard.rx = rx;
        if (!fds || !rx)
            return;             //  (not watched: only the ceiling's reach is less)
        broker->guard.fds_cap = cap;
    }
    broker->guard.fds [broker->guard.nfds] = fd;
    broker->guard.rx [broker->guard.nfds++] = 0;
    broker->guard.sampled = false;
}

//  Linux's tcp_info goes on past glibc's copy of it (which ends at
//  tcpi_total_retrans); the kernel only ever appends to it (4.1 and later
//  fill these)
typedef struct {
    struct tcp_info base;
    uint64_t pacing_rate, max_pacing_rate, bytes_acked;
    uint64_t bytes_received;    //  tcpi_bytes_received
} s_tcp_info_t;

_Static_assert (sizeof (struct tcp_info) == 104, "glibc's tcp_info is Linux's up to tcpi_total_retrans");

//  Bytes the kernel has received on a TCP connection, or 0
static uint64_t
s_received (int fd)
{
    s_tcp_info_t info;
    socklen_t size = sizeof info;
    memset (&info, 0, sizeof info);
    if (getsockopt (fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0
    ||  size < offsetof (s_tcp_info_t, bytes_received) + sizeof info.bytes_received)
        return 0;
    return info.bytes_received;
}

//  The process's resident memory in bytes, or 0
static uint64_t
s_rss (void)
{
    FILE *f = fopen ("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf (f, "%llu %llu", &size, &resident) != 2)
        resident = 0;
    fclose (f);
    return (uint64_t) resident * (uint64_t) sysconf (_SC_PAGESIZE);
}

//  The memory ceiling. libzmq 4.3 keeps a multipart message whole before
//  the broker sees any of it, and nothing bounds its frame count, so one
//  peer can send gigabytes the broker never gets to refuse. Past half the
//  ceiling the TCP connections' received bytes are sampled each tick;
//  past the ceiling the one that brought the most since the last tick is
//  shut down (libzmq then drops its session and the part of a message it
//  held), at most one a second. Peers that keep to their windows hold far
//  less than the ceiling (README, "The bound").
static void
s_memory_check (broker_t *broker)
{
    uint64_t ceiling = (uint64_t) broker->opts.max_rss_mb << 20;
    uint64_t rss = ceiling && broker->guard.nfds ? s_rss () : 0;
    if (rss <= ceiling / 2) {
        broker->guard.sampled = false;
        return;
    }
    size_t best = broker->guard.nfds;
    uint64_t most = 0;
    for (size_t i = 0; i < broker->guard.nfds; i++) {
        uint64_t rx = s_received (broker->guard.fds [i]);
        uint64_t delta = rx >= broker->guard.rx [i] ? rx - broker->guard.rx [i] : 0;
        if (broker->guard.sampled && delta > most) {
            most = delta;
            best = i;
        }
        broker->guard.rx [i] = rx;
    }
    broker->guard.sampled = true;
    if (rss <= ceiling || best == broker->guard.nfds || broker->now_ms - broker->guard.cut_ms < 1000)
        return;
    shutdown (broker->guard.fds [best], SHUT_RDWR);
    broker->guard.cut_ms = broker->now_ms;
    broker->guard.cuts++;
    guard_log (broker, "memory %llu MiB is over the ceiling of %u MiB (--max-rss): the connection "
               "that sent the most since the last tick (%llu KiB, fd %d) is cut",
               (unsigned long long) (rss >> 20), broker->opts.max_rss_mb,
               (unsigned long long) (most >> 10), broker->guard.fds [best]);
}

void
guard_connection (broker_t *broker, bool accepted, int fd)
{
    s_track (broker, accepted, fd);
    if (!accepted) {
        broker->guard.conns -= broker->guard.conns > 0;
        return;
    }
    broker->guard.conns++;
    if (broker->guard.conns <= broker->guard.max_conns)
        return;
    //  over budget: shut the connection down (libzmq then closes it and
    //  its fd). Only a connected TCP or ipc stream socket, never a
    //  listener; an ipc one (local workers) only well over the budget
    int domain = 0, listening = 1;
    socklen_t size = sizeof domain;
    if (getsockopt (fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) != 0)
        return;
    size = sizeof listening;
    if (getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || listening)
        return;
    if (domain == AF_UNIX && broker->guard.conns <= broker->guard.max_conns + 32)
        return;
    shutdown (fd, SHUT_RDWR);
    broker->guard.refused++;
    guard_log (broker, "%lld connections open, the budget is %lld (file descriptor limit): "
               "a new connection refused", (long long) broker->guard.conns,
               (long long) broker->guard.max_conns);
}

uint64_t
dp_broker_raise_nofile (void)
{
    return guard_raise_nofile ();
}
