/*  =========================================================================
    dp_wake - a self-pipe: a signal handler writes a byte, an event loop
    polls the other end, so a signal that lands just before zmq_poll wakes
    it at once instead of at its next timeout.

    Each event loop (the worker's, the node's) keeps its own pair.
    =========================================================================
*/
#ifndef DP_WAKE_H_INCLUDED
#define DP_WAKE_H_INCLUDED

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

//  Open the pipe once (fds [0] to poll, fds [1] for the handler); on
//  failure both stay -1 and the loop wakes at its timeout as before.
static inline void
dp_wake_open (int fds [2])
{
    if (fds [0] < 0 && pipe2 (fds, O_NONBLOCK | O_CLOEXEC) != 0)
        fds [0] = fds [1] = -1;
}

//  From a signal handler: async-signal-safe, errno kept.
static inline void
dp_wake (const int fds [2])
{
    int saved = errno;
    if (fds [1] >= 0) {
        ssize_t rc = write (fds [1], "", 1);     //  full: a wake-up is pending
        (void) rc;
    }
    errno = saved;
}

#endif
