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

#include <stdbool.h>

//  Where the running item's output may stream, in PARTs ahead of its reply
//  (PROTOCOL.md WPART), with credit: at most DP_PART_WINDOW parts not yet
//  acknowledged. The executor provides one for the items of a CHUNK that
//  allows parts. None of the calls blocks.
typedef struct {
    //  Send `len` bytes of fd 1 (stdout) or 2 (stderr) as the next part.
    //  Returns 0, or -1 when out of memory.
    int (*send) (void *arg, int fd, const void *data, size_t len);
    //  May another part go now?
    bool (*room) (void *arg);
    //  Has every part sent been acknowledged?
    bool (*drained) (void *arg);
    //  Was the stream cut (the session ended, the chunk was aborted)?
    bool (*cut) (void *arg);
    int wake_fd;                //  readable when an acknowledgement or a cut
                                //  came (an eventfd: read it to clear it)
    void *arg;
} dp_exec_stream_t;

//  Set the stream for exec items run next by the calling thread (NULL:
//  none: a reply holds the whole output, up to DP_EXEC_MAX_OUTPUT). The
//  stream must outlive them.
void dp_exec_stream_set (const dp_exec_stream_t *stream);

//  The task function registered as "exec".
int dp_exec_task (dp_task_t *task, const void *in, size_t len);

//  Signal the running command's process group, if any (the worker calls it
//  from its main thread when it stops).
void dp_task_kill_child (int sig);

#endif
