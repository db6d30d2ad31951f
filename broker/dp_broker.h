/*  =========================================================================
    dp_broker - the dpool broker as a CZMQ actor

    dp_broker_new starts the broker thread: it binds the client and worker
    endpoints, checks the task modules, starts the local workers and runs
    the event loop until dp_broker_destroy. An embedded pool (libdpool
    without an endpoint) runs exactly this actor inside the client process
    and talks to it over inproc://.
    =========================================================================
*/
#ifndef DP_BROKER_H_INCLUDED
#define DP_BROKER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include "dp_curve.h"

//  Receives the broker's Prometheus metrics text, rendered on the broker's
//  thread every tick; `text` is malloc'd and passes to the callee.
typedef void (dp_metrics_fn) (void *arg, char *text, size_t size);

typedef struct {
    const char *clients;            //  client endpoint to bind, or NULL
    const char *workers;            //  worker endpoint to bind, or NULL
    int local_workers;              //  workers to start; < 0: one per CPU
    const char *const *modules;     //  passed to local workers
    size_t nmodules;
    uint32_t heartbeat_ms;          //  0: 1000
    uint32_t max_attempts;          //  default per job; 0: 3
    uint32_t task_wait_ms;          //  wait for a worker with a job's task; 0: 3000
    const char *worker_program;     //  path of dpool-worker; NULL: find it
    uint32_t mem_limit_mb;          //  local workers' RLIMIT_AS (0: none)
    uint32_t max_tasks;             //  local workers recycled after N items (0: never)
    bool no_speculation;            //  never run backup copies of stragglers
    const char *init_args;          //  local workers' module initializer arguments
    bool forkserver;                //  local workers are forked by the fork server
                                    //  (dp_forkserver_start), with the host's tasks
    dp_metrics_fn *metrics_fn;      //  given Prometheus text every tick, or NULL
    void *metrics_arg;              //  its first argument
    uint16_t metrics_port;          //  where it serves them, for status reports
    const dp_curve_keys_t *curve;   //  the broker's key pair: CURVE on the client
                                    //  and worker endpoints; NULL: plaintext
    const char *allow_clients;      //  with curve: allow-list directories of
    const char *allow_workers;      //  client and worker public keys
    bool insecure;                  //  allow binding a non-loopback address
                                    //  without CURVE
    bool allow_exec;                //  local workers run the built-in exec task
    uint32_t window;                //  items a client may have outstanding; 0: 131072
    uint64_t wbytes;                //  item bytes a client may have outstanding; 0: 256 MiB
    uint32_t max_clients;           //  client sessions at once; 0: 1024
    uint32_t max_workers;           //  worker and node sessions at once; 0: 4096
    uint32_t max_jobs;              //  open jobs over all clients; 0: 16384
    uint32_t max_rss_mb;            //  memory ceiling: over it, the TCP connection
                                    //  that brought the most bytes in the last
                                    //  tick is cut (0: none; dpool-broker sets it)
    int verbose;
} dp_broker_opts_t;

//  Start a broker thread. Returns its handle, or NULL with the reason in err (an
//  endpoint that cannot be bound, a module that does not load, no
//  dpool-worker program). The inproc:// endpoint for in-process clients is
//  written to `inproc` (64 bytes are enough).
typedef struct _dp_broker_t dp_broker_t;
dp_broker_t *dp_broker_new (const dp_broker_opts_t *opts, char *inproc, size_t inproc_size,
                            char *err, size_t errlen);

//  Raise the process's RLIMIT_NOFILE to its hard limit (dpool-broker does
//  at start). Returns the limit now in force. The broker keeps its open
//  connections below that limit less a reserve, refusing the rest.
uint64_t dp_broker_raise_nofile (void);

//  Stop the broker: BYE to workers and clients, local workers terminated
//  and reaped, ipc files removed. Nulls the caller's pointer.
void dp_broker_destroy (dp_broker_t **self_p);


#endif
