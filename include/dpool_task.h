/*  =========================================================================
    dpool_task.h - writing a dpool task module

    A task module is a shared library that exports one table of named task
    functions, built with DP_MODULE:

        #include <dpool_task.h>

        static int
        square (dp_task_t *task, const void *in, size_t len)
        {
            long long x = ...parse in...;
            return dp_task_printf (task, "%lld", x * x);
        }

        DP_MODULE (mytasks,
            DP_TASK ("square", square));

    A worker loads it with `dpool-worker -m libmytasks.so` (or the broker's
    `-m`), announces its task names, and calls the function once per item.

    Contract of a task function:
      - `in` / `len` are the item's bytes (not NUL-terminated; a NUL byte is
        always readable at in[len], so text items can be used as C strings);
      - it answers with dp_task_reply / dp_task_reserve / dp_task_printf
        (at most one reply; none means an empty result) and returns 0;
      - or it fails: `return dp_task_fail (task, "reason %d", x);` — the item
        is reported failed with that message and the job goes on.
    A task that crashes its process is retried on another worker, and failed
    ("worker died: SIGSEGV, 3 attempts") when it keeps crashing.
    =========================================================================
*/
#ifndef DPOOL_TASK_H_INCLUDED
#define DPOOL_TASK_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  DP_EXPORT marks the public functions: libdpool is built with hidden
//  visibility (-fvisibility=hidden), so only these leave the library.
#ifndef DP_EXPORT
#   define DP_EXPORT __attribute__ ((visibility ("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define DP_TASK_ABI 1

typedef struct dp_task dp_task_t;
typedef int (dp_task_fn) (dp_task_t *task, const void *in, size_t len);

typedef struct {
    const char *name;
    dp_task_fn *fn;
} dp_task_def_t;

//  A module initializer: run once in each worker process, after the module
//  is loaded and before the worker takes any item, with the pool's
//  initializer arguments (`--init ARGS`, dp_pool_opts_t.init_args; "" when
//  none). Returns 0, or non-zero to refuse to start (the worker exits with
//  an error), as multiprocessing.Pool's `initializer`. It runs in worker
//  processes only (start-up checks load the module without running it);
//  with init_args given, a pool or node starts only once a first worker's
//  initializers succeeded, and fails with the message of one that failed.
typedef int (dp_module_init_fn) (const char *args);

typedef struct {
    uint32_t abi;                   //  DP_TASK_ABI
    const char *name;               //  module name
    const dp_task_def_t *tasks;
    size_t ntasks;
    dp_module_init_fn *init;        //  or NULL
} dp_module_t;

//  Set the item's result to a copy of `len` bytes. Returns 0, or -1 if out
//  of memory (return it: the item fails with "out of memory").
DP_EXPORT int dp_task_reply (dp_task_t *task, const void *data, size_t len);

//  Reserve `len` bytes for the result and return a pointer to write them
//  (no copy), or NULL when out of memory. Call dp_task_reply_size to shrink
//  the result if fewer bytes were written.
DP_EXPORT void *dp_task_reserve (dp_task_t *task, size_t len);
DP_EXPORT void dp_task_reply_size (dp_task_t *task, size_t len);

//  printf into the result. Returns 0 or -1.
DP_EXPORT int dp_task_printf (dp_task_t *task, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Fail the item with a message. Returns -1, so `return dp_task_fail (...)`.
DP_EXPORT int dp_task_fail (dp_task_t *task, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Declare one task of a module table.
#define DP_TASK(name, fn) { (name), (fn) }

//  Export the module table `dp_module` with the given tasks.
#define DP_MODULE(modname, ...) DP_MODULE_INIT (modname, NULL, __VA_ARGS__)

//  The same, with an initializer run once per worker process. In C++ the
//  table gets C linkage (a namespace-scope const would be internal), so a
//  module may be written in a .cpp file.
#ifdef __cplusplus
#   define DP_MODULE_LINKAGE_ extern "C"
#else
#   define DP_MODULE_LINKAGE_
#endif
#define DP_MODULE_INIT(modname, initfn, ...) \
    static const dp_task_def_t dp_module_tasks_ [] = { __VA_ARGS__ }; \
    DP_MODULE_LINKAGE_ DP_EXPORT const dp_module_t dp_module = { \
        DP_TASK_ABI, #modname, dp_module_tasks_, \
        sizeof (dp_module_tasks_) / sizeof (dp_module_tasks_ [0]), (initfn) }

#ifdef __cplusplus
}
#endif

#endif
