/*  =========================================================================
    dp_host_tasks - tasks defined in the host program (dp_register_task),
    and what a child of the fork server runs

    The table is filled on the host's main thread before the fork server
    starts (client/dp_host.c checks names and order); the server's children
    are forks of it, so they see it as it was. dp_host_worker_main is the
    fork server's child hook (dp_forkserver_child_fn): it parses the
    dpool-worker arguments a supervisor passes and runs the module check or
    the worker loop with the host tasks added before the modules'.
    =========================================================================
*/
#ifndef DP_HOST_TASKS_H_INCLUDED
#define DP_HOST_TASKS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include "dpool_task.h"

//  Add a task (name copied). No checks but memory: returns 0, or -1.
int dp_host_tasks_add (const char *name, dp_task_fn *fn);

//  The tasks registered so far, and how many.
const dp_task_def_t *dp_host_tasks (size_t *count);

//  A fork server child: run `dpool-worker ARGS` (or only the module
//  check) with the host tasks. Returns an exit code (DP_WORKER_EXIT_*).
int dp_host_worker_main (bool check, const char *const *args, size_t nargs);

#endif
