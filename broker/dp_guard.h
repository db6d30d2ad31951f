/*  =========================================================================
    dp_guard - what the broker enforces on peers it does not trust

    A peer is a program on the other end of a socket, not part of dpool:
    it may lie, flood, hoard or stall. The rest of the broker is written
    for honest peers; this file holds the checks and penalties that keep a
    dishonest one from hurting anybody else's job:

    - a worker answers only chunks it was given, with the counts it was
      given; a wrong answer is the worker's fault (a strike), never its
      items' (they go back to the queue uncharged); a worker with
      GUARD_STRIKES strikes is quarantined: it keeps its connection and
      gets no work;
    - a worker that holds a chunk far past the job's item times (a black
      hole, or just a very slow host) is benched: no new work, and backup
      copies of what it holds run elsewhere; it is back in play when it
      answers;
    - node tokens are unguessable and bound to the connection that
      registered them, so only a worker's own supervisor reports its death;
    - a broker-wide budget of clients, workers and jobs, and of open
      connections below the file descriptor limit; at the worker limit an
      idle worker that never worked makes room for a new one;
    - bad-input logging limited to GUARD_LOG_PER_S lines a second.
    =========================================================================
*/
#ifndef DP_GUARD_H_INCLUDED
#define DP_GUARD_H_INCLUDED

#include "dp_broker_internal.h"

#define GUARD_STRIKES       3       //  protocol errors before a worker is quarantined
#define GUARD_STALL_X       10      //  a chunk stalls after 10 x its expected time...
#define GUARD_STALL_MIN_MS  2000    //  ...and at least this long
#define GUARD_LOG_PER_S     10      //  bad-input log lines a second, then a count
#define GUARD_CLIENT_SNDHWM 64      //  messages queued to a client that does not read
#define GUARD_PEER_RCVHWM   1000    //  messages queued from one peer before TCP pushes back
#define GUARD_WORKER_SNDHWM 1000    //  messages queued to a worker that does not read: then
                                    //  sends fail (EAGAIN), an ERROR to it is dropped and counted
#define GUARD_RETRY_MS      5       //  a blocked client's answers are retried this often
#define GUARD_MAX_HB_MS     60000   //  a worker's announced interval counts as at most this
                                    //  (or the broker's own, if longer) for its liveness
#define GUARD_CLIENT_NOTES  64      //  ERRORs that end no job, and WELCOMEs, held for a client
#define GUARD_CLIENT_REPORTS 4      //  REPORTs held for a client (built when sent)

//  A random 64-bit token (getrandom), never 0.
uint64_t guard_token (void);

//  Raise RLIMIT_NOFILE to its hard limit (the process's). Returns the soft
//  limit now in force.
uint64_t guard_raise_nofile (void);

//  Log a warning about bad input, at most GUARD_LOG_PER_S lines a second;
//  lines over that are counted and summed up once a second.
void guard_log (broker_t *broker, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Flush the suppressed-lines summary if a second has passed (tick).
void guard_log_flush (broker_t *broker);

//  A chunk (or k, ids `first` ...) went to a worker: remember the ids it
//  was sent in this session.
void guard_sent (worker_t *worker, uint64_t first, uint32_t k);

//  A RESULT names ids the worker does not hold now. Late answers to chunks
//  it was sent are normal (they were requeued or cancelled), and so are
//  ids issued before its session began (an earlier session of the same
//  connection may have had them); ids issued since that it was never sent
//  (another worker's) or not issued at all are a protocol error.
void guard_unknown_result (broker_t *broker, worker_t *worker, dp_msg_t *msg);

//  The worker broke the protocol (`why`): a strike; its chunks go back to
//  their queues uncharged; at GUARD_STRIKES it is quarantined.
void guard_protocol_error (broker_t *broker, worker_t *worker, const char *why);

//  The worker answered a chunk: a benched worker is back in play (unless
//  quarantined).
void guard_answered (broker_t *broker, worker_t *worker);

//  Is a NODE acceptable from the connection `key`? 0, or -1 with a reason:
//  node token 0, the broker's own token, or a token another connection
//  registered.
int guard_node_check (broker_t *broker, const char *key, dp_msg_t *msg, char *err, size_t errlen);

//  A RESULTS or DONE to the client found its pipe full (it reads nothing,
//  or too slowly): its answers wait at the broker, retried shortly.
void guard_blocked (broker_t *broker, client_t *client);

//  Send a message to a client that must not be lost (ERROR, WELCOME,
//  REPORT: any but RESULTS, DONE, HEARTBEAT): at once if nothing waits
//  before it and its pipe has room, else it waits in the client's backlog
//  (FIFO, ahead of its RESULTS and DONE) and goes when the pipe drains.
//  `ends_job`: an ERROR that ends a job the client had open; it holds the
//  job's slot (CLIENT_MAX_JOBS) until it is delivered, so these are bounded
//  by the open-job limit. Other ERRORs and WELCOMEs wait up to
//  GUARD_CLIENT_NOTES, REPORTs up to GUARD_CLIENT_REPORTS (a REPORT is
//  built when it goes); beyond that a message is dropped, counted and
//  logged (a client that keeps sending requests it never reads the answer
//  to). The message is consumed. Returns 0 (sent or held), or -1 with
//  errno (the client is gone: EHOSTUNREACH).
int guard_client_send (broker_t *broker, client_t *client, dp_msg_t *msg, bool ends_job);

//  Is anything waiting in the client's backlog? Its RESULTS and DONE then
//  wait too, so that the client sees its messages in order.
bool guard_client_backlogged (client_t *client);

//  Free the client's backlog (the client is being destroyed).
void guard_client_forget (broker_t *broker, client_t *client);

//  A message to a peer without a session (ERROR, REPORT), or an ERROR to
//  a worker (`client` false), found its pipe full: it is dropped (there is
//  nothing to hold it in), counted and logged. Call with the failed
//  send's errno in place.
void guard_undelivered (broker_t *broker, const char *key, uint8_t cmd, bool client);

//  Retry blocked clients' deliveries when due; the next time one is due,
//  or INT64_MAX, in `wake` (lowered only).
void guard_retry (broker_t *broker, int64_t *wake);

//  A connection was accepted (fd) or closed, on either ROUTER. Over the
//  connection budget (below the fd limit, so that libzmq never meets
//  EMFILE, on which its ipc listener aborts) a new TCP connection is shut
//  down at once; a peer retries later.
void guard_connection (broker_t *broker, bool accepted, int fd);

//  Set the connection budget from the fd limit now in force; `reserve`
//  fds are kept for everything else (local workers, files).
void guard_budget (broker_t *broker, int reserve);

//  The broker is at --max-workers and a new worker or node (READY, NODE
//  from connection `key`) asks in: make room by evicting an idle one that
//  has never worked, so that peers which say READY and then sit (silent
//  with a huge interval, or heartbeating and taking nothing) cannot lock
//  real workers out. The one evicted is, of the entries that hold no chunk
//  and have answered none in their session (not local workers; a node only
//  while none of its workers is registered, and never the node `token` of
//  the worker asking in), a worker before a node, and the one heard from
//  least recently. It gets ERROR ELIMIT and is forgotten (nothing to
//  requeue); a dpool-worker then reconnects after its backoff. Returns
//  true if one was evicted.
bool guard_evict_idle (broker_t *broker, const char *key, uint64_t token);

//  Timer: bench workers holding stalled chunks and give their chunks
//  backup copies; summary of suppressed log lines.
void guard_tick (broker_t *broker);

#endif
