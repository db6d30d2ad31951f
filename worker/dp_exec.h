/*  =========================================================================
    dp_exec - the built-in `exec` task: one command per item

    Item and reply are the msgpack maps of dp_exec_msg.h (PROTOCOL.md §10).
    Each command runs in a process group of its own, with stdin from the
    item (else /dev/null), stdout and stderr through two pipes read with
    poll, the item's env exported, in the item's cwd when it exists. A
    non-zero exit, a signal or the item's timeout is a normal reply; the
    item fails only when it cannot be decoded, the command cannot be
    started, or its output is over DP_EXEC_MAX_OUTPUT.

    No command outlives its worker: each gets PR_SET_PDEATHSIG, and a
    small guard process per worker (forked on the first command) records
    the running command's process group and kills it when the worker's
    end of its pipe closes, however the worker died.
    =========================================================================
*/
#ifndef DP_EXEC_H_INCLUDED
#define DP_EXEC_H_INCLUDED

#include "dpool_task.h"

//  The task function registered as "exec".
int dp_exec_task (dp_task_t *task, const void *in, size_t len);

//  Signal the running command's process group, if any (the worker calls it
//  from its main thread when it stops).
void dp_task_kill_child (int sig);

#endif
