/*  =========================================================================
    dp_worker - one dpool worker process: connects to a broker, runs chunks

    The main thread owns the DEALER socket to the broker: it registers
    (READY), heartbeats, reconnects with capped exponential backoff, and
    hands each CHUNK to an executor thread over an inproc PAIR socket, so a
    long task never stops heartbeats. The executor runs the chunk's items in
    order through the task registry and hands back a RESULT.
    =========================================================================
*/
#ifndef DP_WORKER_H_INCLUDED
#define DP_WORKER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dpool_task.h"
#include "dp_curve.h"

typedef struct {
    const char *endpoint;           //  broker backend endpoint (required)
    const char *const *modules;     //  task modules to load
    size_t nmodules;
    uint32_t credit;                //  chunks in flight (0: 64)
    uint32_t heartbeat_ms;          //  (0: 1000)
    bool local;                     //  started by a broker: die with it, exit on BYE
    bool supervised;                //  started by a node: die with it, reconnect
    uint32_t max_tasks;             //  exit after this many items (0: never)
    uint32_t mem_limit_mb;          //  RLIMIT_AS (0: none)
    const char *init_args;          //  for module initializers (NULL: "")
    const dp_task_def_t *tasks;     //  tasks of the host program, added before
    size_t ntasks;                  //  the modules' (fork server children)
    bool allow_exec;                //  offer the built-in exec task (shell commands)
    const char *curve_secret;       //  our secret key file and the broker's public
    const char *broker_key;         //  key file (both or neither; neither: the
                                    //  server directory's, when it lists endpoint)
    int verbose;
} dp_worker_opts_t;

//  Exit codes of dp_worker_run / dpool-worker.
#define DP_WORKER_EXIT_OK       0   //  SIGTERM/SIGINT or BYE (local)
#define DP_WORKER_EXIT_USAGE    64  //  bad options
#define DP_WORKER_EXIT_CONFIG   78  //  a module failed to load (message on stderr)

//  Run a worker until SIGTERM/SIGINT (or BYE / parent death when local).
//  Installs its own SIGTERM/SIGINT handlers. Returns an exit code above.
int dp_worker_run (const dp_worker_opts_t *opts);

//  Run a worker node: start and supervise `jobs` worker processes (this
//  program with --child) until SIGTERM/SIGINT. Returns an exit code.
int dp_node_run (const dp_worker_opts_t *opts, int jobs);

//  Load the modules and print the task names, one per line (for `--check`
//  and the start-up checks). The initializers are not run: they run only
//  in the processes that take items. Returns DP_WORKER_EXIT_OK or _CONFIG.
int dp_worker_check (const char *const *modules, size_t nmodules);

#endif
