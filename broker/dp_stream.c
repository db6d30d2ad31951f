/*  =========================================================================
    dp_stream - items' output parts: worker -> client, acknowledgements back

    An exec item that prints a lot streams its output in parts ahead of its
    RESULT (PROTOCOL.md §1.1 rule 13). A worker's WPART names the chunk and
    the item within it; the broker checks it against what that worker
    holds, and forwards it to the job's client as PART (job, item index in
    the job, chunk id as the attempt, seq, fd), moving the data frame
    without a copy. The client's ACK goes back to the worker as WACK.

    Bounds: a worker streams one item at a time and may have at most
    DP_PART_WINDOW parts unacknowledged; each part is at most DP_MAX_PART
    bytes (the decoder refuses more). A worker that sends a part out of
    sequence, beyond its window, for an item it does not hold, or for a
    job that did not ask for parts breaks the protocol (a strike, its
    chunks requeued uncharged). So what a client's pipe cannot take at
    once -- a PART that finds it full waits here, in a FIFO per client,
    sent before anything else once the pipe drains -- is at most the
    window times the workers streaming to it.

    A part for a chunk whose job is gone is acknowledged here at once, so
    the worker is never left waiting (its chunk has been aborted anyway).
    =========================================================================
*/
#include "dp_broker_internal.h"
#include "dp_guard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

//  A PART waiting for its client's pipe
typedef struct pending pending_t;
struct pending {
    pending_t *next;
    dp_msg_t msg;
};

//  The chunk `id` if `worker` holds it, else NULL.
static chunk_t *
s_held (worker_t *worker, uint64_t id)
{
    for (link_t *l = worker->inflight.next; l != &worker->inflight; l = l->next)
        if (link_entry (l, chunk_t, queue)->id == id)
            return link_entry (l, chunk_t, queue);
    return NULL;
}

//  Tell the worker that its parts up to `seq` are taken.
static void
s_wack (broker_t *broker, worker_t *worker, uint64_t seq)
{
    worker->stream.acked = seq;
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_WACK);
    msg.chunk = worker->stream.chunk;
    msg.item = worker->stream.item;
    msg.seq = seq;
    broker_send_worker (broker, worker, &msg);
}

//  Send a PART to its client, or queue it behind the parts already
//  waiting. The message is consumed.
static void
s_to_client (broker_t *broker, client_t *client, dp_msg_t *msg)
{
    if (!client->parts_head) {
        //  keep the frame (a reference, no copy): a send that finds the
        //  pipe full loses what it was given
        zmq_msg_t keep;
        zmq_msg_init (&keep);
        zmq_msg_copy (&keep, &msg->frame [0]);
        dp_msg_t header = *msg;
        if (broker_send_client (broker, client, msg) == 0 || errno != EAGAIN) {
            zmq_msg_close (&keep);
            return;
        }
        *msg = header;
        msg->nframes = 1;
        zmq_msg_init (&msg->frame [0]);
        zmq_msg_move (&msg->frame [0], &keep);
        zmq_msg_close (&keep);
        guard_blocked (broker, client);
    }
    pending_t *p = (pending_t *) zmalloc (sizeof (pending_t));
    p->msg = *msg;
    p->msg.nframes = 1;
    zmq_msg_init (&p->msg.frame [0]);
    zmq_msg_move (&p->msg.frame [0], &msg->frame [0]);
    msg->nframes = 0;
    if (client->parts_tail)
        client->parts_tail->next = p;
    else
        client->parts_head = p;
    client->parts_tail = p;
}

void
stream_part (broker_t *broker, worker_t *worker, dp_msg_t *msg)
{
    chunk_t *chunk = s_held (worker, msg->chunk);
    char why [160] = "";
    bool same = worker->stream.chunk == msg->chunk && worker->stream.item == msg->item;
    if (!chunk)
        snprintf (why, sizeof why, "WPART for chunk %llu, which it does not hold",
                  (unsigned long long) msg->chunk);
    else
    if (msg->item >= chunk->n)
        snprintf (why, sizeof why, "WPART for item %u of a chunk of %u", msg->item, chunk->n);
    else
    if (chunk->job && !chunk->job->parts)
        snprintf (why, sizeof why, "WPART for a job that takes none");
    else
    if (msg->seq != (same ? worker->stream.next : 0))
        snprintf (why, sizeof why, "WPART %llu out of sequence (expected %llu)",
                  (unsigned long long) msg->seq, (unsigned long long) (same ? worker->stream.next : 0));
    else
    if (same && worker->stream.next - worker->stream.acked >= DP_PART_WINDOW)
        snprintf (why, sizeof why, "WPART beyond the window of %d", DP_PART_WINDOW);
    if (why [0]) {
        guard_protocol_error (broker, worker, why);
        return;
    }
    if (!same) {
        worker->stream.chunk = msg->chunk;
        worker->stream.item = msg->item;
        worker->stream.acked = 0;
    }
    worker->stream.next = msg->seq + 1;
    job_t *job = chunk->job;
    if (!job) {
        s_wack (broker, worker, worker->stream.next);      //  nobody waits for it
        return;
    }
    dp_msg_t part;
    dp_msg_init (&part, DP_CMD_PART);
    part.job = job->id;
    part.first = chunk->first + msg->item;
    part.chunk = msg->chunk;
    part.seq = msg->seq;
    part.fd = msg->fd;
    part.nframes = 1;
    zmq_msg_init (&part.frame [0]);
    zmq_msg_move (&part.frame [0], &msg->frame [0]);
    s_to_client (broker, job->client, &part);
}

void
stream_ack (broker_t *broker, client_t *client, dp_msg_t *msg)
{
    //  few workers stream at once, and an ACK comes per megabyte
    for (worker_t *w = (worker_t *) zhashx_first (broker->workers); w;
         w = (worker_t *) zhashx_next (broker->workers)) {
        if (w->stream.chunk != msg->chunk || msg->chunk == 0)
            continue;
        chunk_t *chunk = s_held (w, msg->chunk);
        //  only the client the parts went to acknowledges them; a stale
        //  ACK (the worker died, the item was retried) is dropped
        if (chunk && chunk->job && chunk->job->client == client && chunk->job->id == msg->job
        &&  msg->first == chunk->first + w->stream.item
        &&  msg->seq > w->stream.acked && msg->seq <= w->stream.next)
            s_wack (broker, w, msg->seq);
        return;
    }
}

bool
stream_flush (broker_t *broker, client_t *client)
{
    while (client->parts_head) {
        pending_t *p = client->parts_head;
        zmq_msg_t keep;
        zmq_msg_init (&keep);
        zmq_msg_copy (&keep, &p->msg.frame [0]);
        dp_msg_t header = p->msg;
        if (broker_send_client (broker, client, &p->msg) != 0 && errno == EAGAIN) {
            p->msg = header;
            p->msg.nframes = 1;
            zmq_msg_init (&p->msg.frame [0]);
            zmq_msg_move (&p->msg.frame [0], &keep);
            zmq_msg_close (&keep);
            guard_blocked (broker, client);
            return false;
        }
        zmq_msg_close (&keep);
        client->parts_head = p->next;
        if (!client->parts_head)
            client->parts_tail = NULL;
        free (p);
    }
    return true;
}

void
stream_client_gone (broker_t *broker, client_t *client)
{
    (void) broker;
    while (client->parts_head) {
        pending_t *p = client->parts_head;
        client->parts_head = p->next;
        dp_msg_reset (&p->msg);
        free (p);
    }
    client->parts_tail = NULL;
}
