/*  The broker's scheduling as a unit (issue 10): dispatch within credit,
    fair share between jobs, blame and bisection of a poison item, exact
    blame from a supervisor's death report, and speculation, driven on a
    broker_t with fake worker and client records, an injected clock and an
    injected sender that records what would have gone out. No sockets, no
    threads, no sleeps: time moves only when the test moves it. */
#include "dp_broker_internal.h"
#include "testutil.h"

#include <string.h>

//  --------------------------------------------------------------------------
//  The fake world

static int64_t s_clock_ms;

static int64_t
s_clock (void)
{
    return s_clock_ms;
}

//  What the broker sent
typedef struct {
    uint8_t cmd;
    zmq_msg_t *rid;             //  whose (a fake record's rid)
    uint32_t job, k, n;
    uint64_t chunk, first;
    bool done;
    uint64_t ok, failed;
    uint8_t status [64];        //  RESULTS: per item (first 64)
} sent_t;

#define MAX_SENT    4096
static sent_t s_sent [MAX_SENT];
static size_t s_nsent;

static int
s_sender (broker_t *self, void *socket, zmq_msg_t *rid, dp_msg_t *msg)
{
    REQUIRE (s_nsent < MAX_SENT);
    sent_t *s = &s_sent [s_nsent++];
    memset (s, 0, sizeof *s);
    *s = (sent_t) { msg->cmd, rid, msg->job, msg->k, msg->n, msg->chunk, msg->first,
                    msg->done, msg->ok, msg->failed, { 0 } };
    if (msg->cmd == DP_CMD_RESULTS && msg->nframes >= 3)
        for (uint32_t i = 0; i < msg->n && i < 64; i++)
            s->status [i] = dp_msg_status (msg, i);
    return 0;
}

static void
s_broker_init (broker_t *b)
{
    memset (b, 0, sizeof *b);
    link_init (&b->ready);
    link_init (&b->answers);
    link_init (&b->available);
    b->clients = zhashx_new ();
    b->workers = zhashx_new ();
    b->opts.max_attempts = 3;
    b->opts.task_wait_ms = 3000;
    b->clock = s_clock;
    b->sender = s_sender;
    s_clock_ms = 1000;
    b->now_ms = broker_now (b);
    s_nsent = 0;
}

static void
s_tick (broker_t *b, int64_t ms)
{
    s_clock_ms += ms;
    b->now_ms = broker_now (b);
}

static worker_t *
s_worker_new (broker_t *b, const char *key, uint32_t credit)
{
    worker_t *w = (worker_t *) zmalloc (sizeof (worker_t));
    snprintf (w->key, sizeof w->key, "%s", key);
    zmq_msg_init (&w->rid);
    w->tasks = zhashx_new ();
    zhashx_insert (w->tasks, "square", (void *) 1);
    w->credit = credit;
    w->slot = -1;
    link_init (&w->inflight);
    link_init (&w->available);
    zhashx_insert (b->workers, w->key, w);
    link_insert_before (&b->available, &w->available);
    return w;
}

//  The worker is gone (after its chunks were given back).
static void
s_worker_drop (broker_t *b, worker_t **w_p)
{
    worker_t *w = *w_p;
    link_remove (&w->available);
    zhashx_delete (b->workers, w->key);
    zhashx_destroy (&w->tasks);
    zmq_msg_close (&w->rid);
    free (w);
    *w_p = NULL;
}

static client_t *
s_client_new (broker_t *b)
{
    client_t *c = (client_t *) zmalloc (sizeof (client_t));
    snprintf (c->key, sizeof c->key, "client");
    zmq_msg_init (&c->rid);
    link_init (&c->jobs);
    link_init (&c->backlog);
    c->job_index = job_index_new ();
    zhashx_insert (b->clients, c->key, c);
    return c;
}

static void
s_client_destroy (broker_t *b, client_t **c_p)
{
    client_t *c = *c_p;
    zhashx_delete (b->clients, c->key);
    zhashx_destroy (&c->job_index);
    zmq_msg_close (&c->rid);
    free (c);
    *c_p = NULL;
}

//  A job of n items in chunks of csize, all sent and ended.
static job_t *
s_job_new (broker_t *b, client_t *c, uint32_t id, uint32_t n, uint32_t csize,
           uint32_t weight, bool ordered)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_JOB);
    msg.job = id;
    snprintf (msg.task, sizeof msg.task, "square");
    msg.ordered = ordered;
    msg.weight = weight;
    job_t *job = job_new (b, c, &msg);
    REQUIRE (job);
    dp_batch_t batch;
    dp_batch_init (&batch);
    for (uint32_t i = 0; i < n; i++)
        REQUIRE (dp_batch_add (&batch, &i, sizeof i) == 0);
    dp_msg_init (&msg, DP_CMD_BATCH);
    msg.job = id;
    msg.first = 0;
    msg.csize = csize;
    REQUIRE (dp_batch_attach (&batch, &msg, false) == 0);
    char err [200];
    REQUIRE (job_add_batch (b, job, &msg, err, sizeof err) == 0);
    dp_msg_reset (&msg);
    dp_batch_clear (&batch);
    job->ended = true;
    job->total = n;
    return job;
}

//  The worker answers its chunk (ok, with ns of task time).
static void
s_answer (broker_t *b, worker_t *w, chunk_t *chunk, uint64_t ns)
{
    dp_batch_t batch;
    dp_batch_init (&batch);
    for (uint32_t i = 0; i < chunk->n; i++)
        REQUIRE (dp_batch_add (&batch, "ok", 2) == 0);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_RESULT);
    REQUIRE (dp_batch_attach (&batch, &msg, true) == 0);
    msg.chunk = chunk->id;
    msg.k = 1;
    msg.ns = ns;
    jobs_result (b, w, &msg);
    jobs_deliver (b);               //  as the loop does after each read
    dp_msg_reset (&msg);
    dp_batch_clear (&batch);
}

static chunk_t *
s_head (worker_t *w)
{
    return link_empty (&w->inflight) ? NULL : link_entry (w->inflight.next, chunk_t, queue);
}

//  Items answered to the client by RESULTS since `from`, with status
//  counts; DONE or RESULTS.done seen?
static uint64_t
s_delivered (size_t from, uint64_t *failed, bool *done, uint8_t *status_of, size_t cap)
{
    uint64_t items = 0;
    *failed = 0;
    *done = false;
    for (size_t i = from; i < s_nsent; i++) {
        sent_t *s = &s_sent [i];
        if (s->cmd == DP_CMD_RESULTS) {
            for (uint32_t j = 0; j < s->n; j++) {
                uint8_t st = j < 64 ? s->status [j] : 0;
                *failed += st != DP_ST_OK;
                if (status_of && s->first + j < cap) {
                    CHECK (status_of [s->first + j] == 0xff);      //  answered once
                    status_of [s->first + j] = st;
                }
            }
            items += s->n;
            *done |= s->done;
        }
        *done |= s->cmd == DP_CMD_DONE;
    }
    return items;
}

static size_t
s_count (uint8_t cmd, zmq_msg_t *rid, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < s_nsent; i++)
        n += s_sent [i].cmd == cmd && (!rid || s_sent [i].rid == rid);
    return n;
}

//  --------------------------------------------------------------------------
//  Dispatch: credit and order

static void
test_dispatch (void)
{
    broker_t b;
    s_broker_init (&b);
    client_t *c = s_client_new (&b);
    worker_t *w1 = s_worker_new (&b, "w1", 8);
    worker_t *w2 = s_worker_new (&b, "w2", 8);
    job_t *job = s_job_new (&b, c, 1, 100, 10, 1, true);
    jobs_dispatch (&b);
    //  an unmeasured worker keeps two chunks: 4 CHUNKs of 10 items
    CHECK (s_count (DP_CMD_CHUNK, &w1->rid, 0) == 2);
    CHECK (s_count (DP_CMD_CHUNK, &w2->rid, 0) == 2);
    CHECK (w1->inflight_count == 2 && w2->inflight_count == 2);
    CHECK (job->inflight == 4);
    for (size_t i = 0; i < s_nsent; i++)
        CHECK (s_sent [i].n == 10 && s_sent [i].k == 1);
    //  the job's item time is not measured yet, so its chunks go to idle
    //  workers first (a worker's history must not queue them all on it):
    //  w1 holds items 0..9 and 20..29, w2 10..19 and 30..39; ordered, so
    //  w2's answer waits for the items before it
    chunk_t *second = s_head (w2);
    REQUIRE (second && second->first == 10);
    size_t mark = s_nsent;
    s_tick (&b, 5);
    s_answer (&b, w2, second, 5000000);
    CHECK (s_count (DP_CMD_RESULTS, NULL, mark) == 0);
    chunk_t *first = s_head (w1);
    REQUIRE (first && first->first == 0);
    s_answer (&b, w1, first, 5000000);
    uint64_t failed;
    bool done;
    CHECK (s_delivered (mark, &failed, &done, NULL, 0) == 20 && failed == 0 && !done);
    chunk_t *third = s_head (w1);
    REQUIRE (third && third->first == 20);
    s_answer (&b, w1, third, 5000000);
    CHECK (s_delivered (mark, &failed, &done, NULL, 0) == 30 && failed == 0 && !done);
    //  freed credit is used again at once
    mark = s_nsent;
    jobs_dispatch (&b);
    CHECK (s_count (DP_CMD_CHUNK, NULL, mark) == 3);
    CHECK (w1->inflight_count == 2 && w2->inflight_count == 2);
    //  run the job out: every item answered once, then done
    uint8_t status [100];
    memset (status, 0xff, sizeof status);
    mark = 0;
    for (int round = 0; round < 100 && zhashx_size (c->job_index); round++) {
        s_tick (&b, 5);
        worker_t *w = round % 2 ? w1 : w2;
        if (s_head (w))
            s_answer (&b, w, s_head (w), 5000000);
        jobs_dispatch (&b);
    }
    CHECK (zhashx_size (c->job_index) == 0);        //  finished and freed
    CHECK (s_delivered (0, &failed, &done, status, 100) == 100 && failed == 0 && done);
    s_worker_drop (&b, &w1);
    s_worker_drop (&b, &w2);
    s_client_destroy (&b, &c);
    zhashx_destroy (&b.clients);
    zhashx_destroy (&b.workers);
}

//  --------------------------------------------------------------------------
//  Fair share: one worker, a job of 50 ms items beside one of 1 ms items

//  Run the worker for `span` ms of simulated time; each job's items take
//  item_ms [job id]. Returns the worker time each job got.
static void
s_run_share (broker_t *b, worker_t *w, const int64_t *item_ms, int64_t span, int64_t *got)
{
    int64_t end = s_clock_ms + span;
    while (s_clock_ms < end) {
        jobs_dispatch (b);
        chunk_t *head = s_head (w);
        REQUIRE (head && head->job);
        uint32_t id = head->job->id;
        int64_t ms = item_ms [id] * head->n;
        s_tick (b, ms);
        got [id] += ms;
        s_answer (b, w, head, (uint64_t) ms * 1000000);
        s_nsent = 0;                        //  what was sent does not matter here
    }
}

static void
test_fairness (void)
{
    int64_t item_ms [3] = { 0, 50, 1 };
    for (int weighted = 0; weighted < 2; weighted++) {
        broker_t b;
        s_broker_init (&b);
        client_t *c = s_client_new (&b);
        worker_t *w = s_worker_new (&b, "w", 8);
        //  job 1: 50 ms items one per chunk; job 2: 1 ms items five per chunk
        s_job_new (&b, c, 1, 100000, 1, 1, false);
        s_job_new (&b, c, 2, 100000, 5, weighted ? 2 : 1, false);
        int64_t got [3] = { 0, 0, 0 };
        s_run_share (&b, w, item_ms, 1000, got);        //  measure first
        got [1] = got [2] = 0;
        s_run_share (&b, w, item_ms, 20000, got);
        double ratio = (double) got [2] / (double) got [1];
        printf ("fairness%s: 50 ms job %lld ms, 1 ms job %lld ms of worker time (ratio %.2f)\n",
                weighted ? " (weight 2)" : "", (long long) got [1], (long long) got [2], ratio);
        //  by chunk, the 1 ms job would get 5 ms for every 50 ms (0.1);
        //  by time, as much (1.0), or twice as much with weight 2
        if (weighted)
            CHECK (ratio > 1.5 && ratio < 2.7);
        else
            CHECK (ratio > 0.7 && ratio < 1.4);
        //  the rest of the jobs is cancelled: ABORTs for what runs
        client_t *cc = c;
        while (!link_empty (&cc->jobs)) {
            job_t *job = link_entry (cc->jobs.next, job_t, by_client);
            job_destroy (&b, &job);
        }
        while (s_head (w)) {
            chunk_t *orphan = s_head (w);
            s_answer (&b, w, orphan, 1000);             //  late answers are dropped
        }
        CHECK (w->inflight_count == 0);
        s_worker_drop (&b, &w);
        s_client_destroy (&b, &c);
        zhashx_destroy (&b.clients);
        zhashx_destroy (&b.workers);
    }
}

//  --------------------------------------------------------------------------
//  Blame: a poison item among 8, unknown culprit (bisection), and exact

static void
test_bisection (void)
{
    broker_t b;
    s_broker_init (&b);
    client_t *c = s_client_new (&b);
    worker_t *w = s_worker_new (&b, "w0", 8);
    s_job_new (&b, c, 1, 8, 8, 1, true);
    const uint64_t poison = 5;
    int deaths = 0, workers = 1;
    for (int round = 0; round < 100 && zhashx_size (c->job_index); round++) {
        jobs_dispatch (&b);
        chunk_t *head = s_head (w);
        REQUIRE (head);
        s_tick (&b, 10);
        if (head->first <= poison && poison < head->first + head->n) {
            //  it dies in the chunk; results it had are lost with it
            REQUIRE (w->inflight_count == 1);           //  a killer runs alone
            jobs_requeue_worker (&b, w, "SIGSEGV");
            s_worker_drop (&b, &w);
            char key [16];
            snprintf (key, sizeof key, "w%d", workers++);
            w = s_worker_new (&b, key, 8);
            deaths++;
        }
        else
            s_answer (&b, w, head, 1000000);
    }
    //  8 -> 4 -> 2 -> 1 (3 deaths), then 3 attempts of the item alone
    printf ("bisection: poison item %llu of 8 isolated after %d worker deaths\n",
            (unsigned long long) poison, deaths);
    CHECK (deaths == 6);
    uint8_t status [8];
    memset (status, 0xff, sizeof status);
    uint64_t failed;
    bool done;
    CHECK (s_delivered (0, &failed, &done, status, 8) == 8 && done);
    CHECK (failed == 1);
    for (int i = 0; i < 8; i++)
        CHECK (status [i] == (i == (int) poison ? DP_ST_DIED : DP_ST_OK));
    s_worker_drop (&b, &w);
    s_client_destroy (&b, &c);
    zhashx_destroy (&b.clients);
    zhashx_destroy (&b.workers);
}

static void
test_exact_blame (void)
{
    broker_t b;
    s_broker_init (&b);
    client_t *c = s_client_new (&b);
    worker_t *w = s_worker_new (&b, "w0", 8);
    job_t *job = s_job_new (&b, c, 1, 10, 10, 1, true);
    jobs_dispatch (&b);
    chunk_t *head = s_head (w);
    REQUIRE (head && head->n == 10);
    //  its supervisor saw item 3 running: only that item is charged
    dp_death_t death = { .slot = 0, .pid = 1, .code = DP_ST_DIED, .chunk = head->id,
                         .item = 3 };
    snprintf (death.reason, sizeof death.reason, "SIGSEGV");
    jobs_requeue_exact (&b, w, &death);
    s_worker_drop (&b, &w);
    uint32_t total = 0, singles = 0;
    for (link_t *l = job->pending.next; l != &job->pending; l = l->next) {
        chunk_t *chunk = link_entry (l, chunk_t, queue);
        total += chunk->n;
        if (chunk->n == 1) {
            singles++;
            CHECK (chunk->first == 3 && chunk->attempts == 1);
        }
        else
            CHECK (chunk->attempts == 0 && !chunk->suspect);
    }
    CHECK (total == 10 && singles == 1);
    //  a timeout fails the item at once, without another attempt
    w = s_worker_new (&b, "w1", 8);
    jobs_dispatch (&b);
    chunk_t *culprit = NULL;
    for (link_t *l = w->inflight.next; l != &w->inflight; l = l->next)
        if (link_entry (l, chunk_t, queue)->first == 3)
            culprit = link_entry (l, chunk_t, queue);
    REQUIRE (culprit);
    death.chunk = culprit->id;
    death.item = 0;
    death.code = DP_ST_TIMEOUT;
    snprintf (death.reason, sizeof death.reason, "timed out after 1.0 s");
    jobs_requeue_exact (&b, w, &death);
    s_worker_drop (&b, &w);
    w = s_worker_new (&b, "w2", 8);
    for (int round = 0; round < 20 && zhashx_size (c->job_index); round++) {
        jobs_dispatch (&b);
        if (s_head (w))
            s_answer (&b, w, s_head (w), 1000000);
    }
    uint8_t status [10];
    memset (status, 0xff, sizeof status);
    uint64_t failed;
    bool done;
    CHECK (s_delivered (0, &failed, &done, status, 10) == 10 && done && failed == 1);
    for (int i = 0; i < 10; i++)
        CHECK (status [i] == (i == 3 ? DP_ST_TIMEOUT : DP_ST_OK));
    s_worker_drop (&b, &w);
    s_client_destroy (&b, &c);
    zhashx_destroy (&b.clients);
    zhashx_destroy (&b.workers);
}

//  --------------------------------------------------------------------------
//  Speculation

//  Equally fast workers: no backup copy, however often the timer runs.
static void
test_no_spec_when_even (void)
{
    broker_t b;
    s_broker_init (&b);
    client_t *c = s_client_new (&b);
    worker_t *w [3] = { s_worker_new (&b, "a", 8), s_worker_new (&b, "b", 8),
                        s_worker_new (&b, "c", 8) };
    job_t *job = s_job_new (&b, c, 1, 60, 1, 1, false);
    uint64_t backups = 0;
    for (int step = 0; step < 200 && zhashx_size (c->job_index); step++) {
        jobs_dispatch (&b);
        s_tick (&b, 50);                    //  every item takes 50 ms
        jobs_speculate (&b);
        backups = zhashx_size (c->job_index) ? job->backups : backups;
        for (int i = 0; i < 3; i++)
            if (s_head (w [i]))
                s_answer (&b, w [i], s_head (w [i]), 50000000);
    }
    CHECK (zhashx_size (c->job_index) == 0);
    CHECK (backups == 0);
    CHECK (s_count (DP_CMD_ABORT, NULL, 0) == 0);
    uint64_t failed;
    bool done;
    CHECK (s_delivered (0, &failed, &done, NULL, 0) == 60 && done && failed == 0);
    for (int i = 0; i < 3; i++)
        s_worker_drop (&b, &w [i]);
    s_client_destroy (&b, &c);
    zhashx_destroy (&b.clients);
    zhashx_destroy (&b.workers);
}

//  A straggler: its last chunk is copied to an idle worker once its head
//  chunk has run 4x the median (at least 100 ms); the copy's answer wins,
//  the straggler's run is aborted, and each item is answered once.
static void
test_speculation (void)
{
    broker_t b;
    s_broker_init (&b);
    client_t *c = s_client_new (&b);
    worker_t *fast = s_worker_new (&b, "fast", 8);
    worker_t *slow = s_worker_new (&b, "slow", 8);
    job_t *job = s_job_new (&b, c, 1, 6, 1, 1, false);
    jobs_dispatch (&b);                     //  two chunks each
    CHECK (fast->inflight_count == 2 && slow->inflight_count == 2);
    //  the fast worker answers its two at 10 ms each: the median is known
    for (int i = 0; i < 2; i++) {
        s_tick (&b, 10);
        s_answer (&b, fast, s_head (fast), 10000000);
    }
    jobs_dispatch (&b);                     //  the last two go to the fast one
    s_tick (&b, 10);
    s_answer (&b, fast, s_head (fast), 10000000);
    CHECK (job->nsamples >= 3 && link_empty (&job->pending));
    //  the slow one's head has run 30 ms: not a straggler yet (100 ms floor)
    size_t mark = s_nsent;
    jobs_speculate (&b);
    CHECK (job->backups == 0 && s_count (DP_CMD_CHUNK, NULL, mark) == 0);
    s_tick (&b, 10);
    s_answer (&b, fast, s_head (fast), 10000000);
    CHECK (fast->inflight_count == 0);
    s_tick (&b, 100);                       //  now 140 ms
    jobs_speculate (&b);
    CHECK (job->backups == 1);
    CHECK (s_count (DP_CMD_CHUNK, &fast->rid, mark) == 1);
    chunk_t *twin = s_head (fast);
    REQUIRE (twin && twin->primary);
    uint64_t copied = twin->first;
    CHECK (twin->primary->worker == slow);
    //  the copy answers first: the slow worker is told to drop its run
    s_tick (&b, 10);
    s_answer (&b, fast, twin, 10000000);
    CHECK (s_count (DP_CMD_ABORT, &slow->rid, mark) == 1);
    //  the slow worker answers both (the copied one late: dropped)
    while (s_head (slow))
        s_answer (&b, slow, s_head (slow), 200000000);
    uint8_t status [6];
    memset (status, 0xff, sizeof status);
    uint64_t failed;
    bool done;
    CHECK (s_delivered (0, &failed, &done, status, 6) == 6 && done && failed == 0);
    printf ("speculation: item %llu copied to the idle worker after 140 ms, answered once\n",
            (unsigned long long) copied);
    CHECK (zhashx_size (c->job_index) == 0);
    s_worker_drop (&b, &fast);
    s_worker_drop (&b, &slow);
    s_client_destroy (&b, &c);
    zhashx_destroy (&b.clients);
    zhashx_destroy (&b.workers);
}

int
main (void)
{
    test_dispatch ();
    test_fairness ();
    test_bisection ();
    test_exact_blame ();
    test_no_spec_when_even ();
    test_speculation ();
    return tu_done ("test_sched");
}
