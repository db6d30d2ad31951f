/*  =========================================================================
    dp_report - the body of a REPORT: what a broker is doing

    A client sends STATUS; the broker answers REPORT, whose one payload
    frame is a msgpack map (PROTOCOL.md, "REPORT"): the broker's counters,
    its nodes (a worker node, or the broker's own local workers), its
    workers and its open jobs. The broker fills a dp_report_t and encodes
    it; `dpool status` decodes it. The same structure feeds the broker's
    Prometheus metrics.

    Decoding never trusts the broker: dp_msg_decode has already walked the
    body (lengths, nesting, size <= DP_MAX_REPORT); dp_report_decode checks
    every value's type and range, ignores keys it does not know, refuses a
    row array longer than DP_REPORT_MAX_ROWS and a worker whose node index
    is not a node.
    =========================================================================
*/
#ifndef DP_REPORT_H_INCLUDED
#define DP_REPORT_H_INCLUDED

#include "dp_proto.h"

#define DP_REPORT_MAX_ROWS  4096    //  nodes, workers, jobs: rows of each at most

typedef struct {
    char host [DP_MAX_NAME + 1];
    uint32_t pid;
    uint64_t uptime_ms;
    uint64_t msgs_in, msgs_out;         //  messages received, sent
    uint64_t bytes_in, bytes_out;       //  their bytes (all frames)
    uint64_t peers_dropped;             //  clients and workers dropped (silent, gone, broken)
    uint64_t bad_messages;              //  malformed or unexpected messages dropped
    uint64_t items_done, items_failed;  //  items answered by workers, since start
    uint32_t clients;                   //  client sessions now
    uint32_t metrics_port;              //  Prometheus metrics port (0: none)
} dp_report_broker_t;

//  A worker node (NODE), or the broker's local workers (local = true).
typedef struct {
    char host [DP_MAX_NAME + 1];
    uint32_t pid;
    bool local;
    uint32_t slots;                     //  worker processes it supervises
    uint32_t workers;                   //  of them registered now
    uint32_t busy;                      //  of them running a chunk
    uint64_t done, failed;              //  items its workers answered (failed: not OK)
    uint32_t restarts;                  //  its workers that died or were recycled
} dp_report_node_t;

typedef struct {
    char host [DP_MAX_NAME + 1];
    uint32_t pid;
    int32_t node;                       //  index in nodes, -1: not on a node
    uint32_t inflight;                  //  chunks on it now (busy when > 0)
    uint32_t credit;
    uint64_t done, failed;
} dp_report_worker_t;

typedef struct {
    char client [DP_MAX_NAME + 1];      //  the client's name (HELLO.host)
    uint32_t job;
    char task [DP_MAX_NAME + 1];
    uint64_t sent;                      //  items received so far
    uint64_t total;                     //  items in the job (when ended)
    bool ended;                         //  all items received
    uint64_t done, failed;              //  items answered to the client
    uint64_t age_ms;                    //  since the job opened
} dp_report_job_t;

typedef struct {
    dp_report_broker_t broker;
    dp_report_node_t *nodes;
    dp_report_worker_t *workers;
    dp_report_job_t *jobs;
    uint32_t nnodes, nworkers, njobs;
    uint32_t cap_nodes, cap_workers, cap_jobs;
    bool truncated;                     //  rows were left out (DP_REPORT_MAX_ROWS)
} dp_report_t;

//  Empty report; dp_report_clear frees its rows (and leaves it empty).
void dp_report_init (dp_report_t *self);
void dp_report_clear (dp_report_t *self);

//  Append a zeroed row and return it, or NULL (and set truncated) when the
//  report already has DP_REPORT_MAX_ROWS of them or memory is short.
dp_report_node_t *dp_report_add_node (dp_report_t *self);
dp_report_worker_t *dp_report_add_worker (dp_report_t *self);
dp_report_job_t *dp_report_add_job (dp_report_t *self);

//  Make `msg` (initialised as DP_CMD_REPORT) carry the report as its body
//  frame. Returns 0, or -1 when out of memory (or msg has frames already).
//  A body that would exceed DP_MAX_REPORT (full rows with long names) keeps
//  every node but only as many workers and jobs as fit, and is marked
//  truncated.
int dp_report_encode (const dp_report_t *self, dp_msg_t *msg);

//  Decode a received REPORT's body into self (initialised, empty). Returns
//  0, or DP_PROTO_EPAYLOAD / DP_PROTO_ELIMIT with the reason in err; self
//  is then empty.
int dp_report_decode (dp_report_t *self, dp_msg_t *msg, char *err, size_t errlen);

#endif
