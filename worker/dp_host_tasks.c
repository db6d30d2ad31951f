/*  =========================================================================
    dp_host_tasks - tasks of the host program, run by the fork server's
    children (see dp_host_tasks.h)
    =========================================================================
*/
#include "dp_host_tasks.h"
#include "dp_task_internal.h"
#include "dp_worker.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_ARGS      512         //  as the fork server's S_MAX_STRINGS
#define S_HOST_MODULE   "(host program)"

static dp_task_def_t *s_tasks;
static size_t s_ntasks, s_tasks_cap;

int
dp_host_tasks_add (const char *name, dp_task_fn *fn)
{
    if (s_ntasks == s_tasks_cap) {
        size_t cap = s_tasks_cap ? s_tasks_cap * 2 : 8;
        dp_task_def_t *tasks = realloc (s_tasks, cap * sizeof *tasks);
        if (!tasks)
            return -1;
        s_tasks = tasks;
        s_tasks_cap = cap;
    }
    char *copy = strdup (name);
    if (!copy)
        return -1;
    s_tasks [s_ntasks++] = (dp_task_def_t) { copy, fn };
    return 0;
}

const dp_task_def_t *
dp_host_tasks (size_t *count)
{
    *count = s_ntasks;
    return s_tasks;
}

//  Parse the worker arguments a supervisor passes (the subset of
//  dpool-worker's options that a local or supervised worker gets).
//  Returns 0, or -1 with a message on stderr.
static int
s_parse_args (const char *const *args, size_t nargs, dp_worker_opts_t *opts, const char **modules)
{
    for (size_t i = 0; i < nargs; i++) {
        const char *arg = args [i];
        const char *value = i + 1 < nargs ? args [i + 1] : NULL;
        bool takes = true;
        if (!strcmp (arg, "--connect") || !strcmp (arg, "-c"))
            opts->endpoint = value;
        else
        if (!strcmp (arg, "--module") || !strcmp (arg, "-m")) {
            if (value)
                modules [opts->nmodules++] = value;
        }
        else
        if (!strcmp (arg, "--init"))
            opts->init_args = value;
        else
        if (!strcmp (arg, "--heartbeat"))
            opts->heartbeat_ms = value ? (uint32_t) strtoul (value, NULL, 10) : 0;
        else
        if (!strcmp (arg, "--credit"))
            opts->credit = value ? (uint32_t) strtoul (value, NULL, 10) : 0;
        else
        if (!strcmp (arg, "--mem-limit"))
            opts->mem_limit_mb = value ? (uint32_t) strtoul (value, NULL, 10) : 0;
        else
        if (!strcmp (arg, "--max-tasks-per-child"))
            opts->max_tasks = value ? (uint32_t) strtoul (value, NULL, 10) : 0;
        else {
            takes = false;
            if (!strcmp (arg, "--local"))
                opts->local = true;
            else
            if (!strcmp (arg, "--child"))
                opts->supervised = true;
            else
            if (!strcmp (arg, "--allow-exec"))
                opts->allow_exec = true;
            else
            if (!strcmp (arg, "--verbose") || !strcmp (arg, "-v"))
                opts->verbose++;
            else {
                fprintf (stderr, "dpool-worker: unknown option '%s' from the fork server\n", arg);
                return -1;
            }
        }
        if (takes && !value) {
            fprintf (stderr, "dpool-worker: option '%s' needs a value\n", arg);
            return -1;
        }
        i += takes;
    }
    return 0;
}

//  The CHECK child: the host tasks plus the modules must make one registry
//  (the initializers run only in workers). Returns an exit code.
static int
s_check (const char *const *modules, size_t nmodules)
{
    dp_registry_t *registry = dp_registry_new ();
    char err [1024] = "out of memory";
    int rc = registry ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < s_ntasks; i++)
        rc = dp_registry_add_task (registry, s_tasks [i].name, s_tasks [i].fn,
                                   S_HOST_MODULE, err, sizeof err);
    for (size_t i = 0; rc == 0 && i < nmodules; i++)
        rc = dp_registry_load (registry, modules [i], err, sizeof err);
    if (rc)
        fprintf (stderr, "dpool-worker: %s\n", err);
    dp_registry_destroy (&registry);
    return rc ? DP_WORKER_EXIT_CONFIG : DP_WORKER_EXIT_OK;
}

int
dp_host_worker_main (bool check, const char *const *args, size_t nargs)
{
    const char *modules [S_MAX_ARGS];
    if (nargs >= S_MAX_ARGS)
        return DP_WORKER_EXIT_USAGE;
    dp_worker_opts_t opts = { .modules = modules };
    if (s_parse_args (args, nargs, &opts, modules))
        return DP_WORKER_EXIT_USAGE;
    if (check)
        return s_check (modules, opts.nmodules);
    opts.tasks = s_tasks;
    opts.ntasks = s_ntasks;
    return dp_worker_run (&opts);
}
