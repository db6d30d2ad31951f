/*  =========================================================================
    dp_host - the host-task API (include/dpool.h): tasks defined in the
    calling program (dp_register_task) and the fork server that runs them
    (dp_forkserver_start / _stop)

    The table lives with the task runtime (worker/dp_host_tasks.c), the
    server with process supervision (super/dp_forkserver.c); this file
    checks the caller's arguments and order and reports errors where
    dp_strerror_last reads them.
    =========================================================================
*/
#include "dp_client.h"
#include "dp_forkserver.h"
#include "dp_host_tasks.h"

#include <dirent.h>
#include <string.h>

int
dp_register_task (const char *name, dp_task_fn *fn)
{
    if (!name || !*name || strlen (name) > DP_MAX_NAME || !fn) {
        client_set_error ("dp_register_task: a task needs a function and a name of 1 to %d bytes",
                          DP_MAX_NAME);
        return -1;
    }
    if (dp_forkserver_running ()) {
        client_set_error ("dp_register_task ('%s'): the fork server is already running; "
                          "register tasks before dp_forkserver_start", name);
        return -1;
    }
    if (!strcmp (name, "exec")) {
        client_set_error ("dp_register_task: 'exec' is a built-in task");
        return -1;
    }
    size_t ntasks;
    const dp_task_def_t *tasks = dp_host_tasks (&ntasks);
    for (size_t i = 0; i < ntasks; i++)
        if (!strcmp (tasks [i].name, name)) {
            client_set_error ("dp_register_task: task '%s' is already registered", name);
            return -1;
        }
    if (ntasks + 1 >= DP_MAX_TASKS) {
        client_set_error ("dp_register_task: more than %d tasks", DP_MAX_TASKS - 1);
        return -1;
    }
    if (dp_host_tasks_add (name, fn)) {
        client_set_error ("dp_register_task: out of memory");
        return -1;
    }
    return 0;
}

//  Threads of this process (from /proc/self/task), or -1 if unknown.
static int
s_threads (void)
{
    DIR *dir = opendir ("/proc/self/task");
    if (!dir)
        return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        count += entry->d_name [0] != '.';
    closedir (dir);
    return count;
}

int
dp_forkserver_start (void)
{
    if (dp_forkserver_running ())
        return 0;
    int threads = s_threads ();
    if (threads > 1) {
        client_set_error ("dp_forkserver_start: the program already runs %d threads; "
                          "call it at the top of main, before any thread or pool exists", threads);
        return -1;
    }
    char err [256];
    if (dp_forkserver_launch (dp_host_worker_main, err, sizeof err)) {
        client_set_error ("dp_forkserver_start: %s", err);
        return -1;
    }
    return 0;
}

void
dp_forkserver_stop (void)
{
    dp_forkserver_halt ();
}

//  Were tasks registered with dp_register_task?
bool
client_has_host_tasks (void)
{
    size_t ntasks;
    dp_host_tasks (&ntasks);
    return ntasks > 0;
}
