/*  =========================================================================
    dp_progress - what a worker process is doing, in memory its supervisor
    can read

    A supervisor (the broker for its local workers, a node for its worker
    processes) gives each child one shared page (a memfd on the child's
    fd DP_PROGRESS_FD, named by $DPOOL_PROGRESS_FD). The child's executor
    writes which chunk and item it is running and since when, before each
    item: a few relaxed stores, no system call. So when a child dies the
    supervisor knows exactly which item was running — the only one to
    blame — and it can enforce task timeouts and abort requests by killing
    the child, all without a message.
    =========================================================================
*/
#ifndef DP_PROGRESS_H_INCLUDED
#define DP_PROGRESS_H_INCLUDED

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define DP_PROGRESS_FD      3
#define DP_PROGRESS_ENV     "DPOOL_PROGRESS_FD"
#define DP_PROGRESS_NONE    UINT32_MAX

typedef struct {
    _Atomic uint64_t chunk;         //  chunk being run (0: between chunks)
    _Atomic uint32_t item;          //  item index in it (DP_PROGRESS_NONE: between items)
    _Atomic uint32_t timeout_ms;    //  the chunk's task timeout (0: none)
    _Atomic int64_t  started_ns;    //  CLOCK_MONOTONIC when the item started
    _Atomic uint64_t abort_chunk [4];   //  chunks the broker aborted lately: ids
    _Atomic uint32_t abort_count [4];   //  abort_chunk .. abort_chunk + count - 1
    _Atomic int64_t  abort_ns [4];      //  when it asked, per entry
    _Atomic uint32_t oom;           //  crash near the memory limit (signal handler)
    _Atomic uint64_t items_done;    //  items run since the process started
    _Atomic uint32_t init_state;    //  the modules' initializers: DP_INIT_*
    _Atomic int64_t  alive_ns;      //  CLOCK_MONOTONIC of the worker's last loop turn, at
                                    //  least every 100 ms while it runs (0: not yet): a
                                    //  supervisor with a liveness limit kills a worker
                                    //  that stops (SIGSTOP) or hangs
    char init_error [256];          //  DP_INIT_FAILED: why (written before)
} dp_progress_page_t;

#define DP_INIT_PENDING     0       //  not run yet
#define DP_INIT_DONE        1       //  ran and succeeded: the worker goes on
#define DP_INIT_FAILED      2       //  one failed: the worker exits

//  The clock of started_ns and abort_ns: the worker writes them, its
//  supervisor compares them with its own now.
static inline int64_t
dp_progress_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

//  An entry of an abort ring (ids first .. first + count - 1): written as
//  count 0, first, count; read as first, count, first again, so a reader
//  never pairs one entry's first with another's count.
static inline void
dp_abort_set (_Atomic uint64_t *first, _Atomic uint32_t *count, uint64_t id, uint32_t k)
{
    atomic_store (count, 0);
    atomic_store (first, id);
    atomic_store (count, k);
}

static inline bool
dp_abort_has (_Atomic uint64_t *first, _Atomic uint32_t *count, uint64_t id)
{
    uint64_t from = atomic_load (first);
    uint32_t n = atomic_load (count);
    return atomic_load (first) == from && id - from < n;
}

//  The child's page, mapped on first use from $DPOOL_PROGRESS_FD; NULL when
//  the process has no supervisor. Never fails otherwise.
dp_progress_page_t *dp_progress_child (void);

#endif
