/*  =========================================================================
    dp_task_internal - task registry and runtime (worker side)

    The registry maps task names to functions: the built-in `exec` task plus
    every task of every loaded module. dp_task_run calls one task on one
    item and appends its result (or failure message) to a result batch.
    =========================================================================
*/
#ifndef DP_TASK_INTERNAL_H_INCLUDED
#define DP_TASK_INTERNAL_H_INCLUDED

#include "dpool_task.h"
#include "dp_proto.h"

typedef struct dp_registry dp_registry_t;

//  New registry holding the built-in tasks (`exec`). NULL if out of memory.
dp_registry_t *dp_registry_new (void);
//  Take a task out (the built-in exec where it was not asked for).
//  Returns 0, or -1 when there is no such task.
int dp_registry_remove (dp_registry_t *self, const char *name);
void dp_registry_destroy (dp_registry_t **self_p);

//  Load a task module: a path (contains '/'), or a name NAME resolved to
//  libdpool_NAME.so / NAME.so / libNAME.so in $DPOOL_MODULE_PATH (colon-
//  separated), then the directory holding libdpool.so, then the installed
//  libdir. Returns 0, or -1 with a reason in err ("cannot load module X:
//  dlerror", "X: no dp_module table", "X: ABI 2, expected 1", duplicate
//  task name).
int dp_registry_load (dp_registry_t *self, const char *module, char *err, size_t errlen);

//  Add one task defined elsewhere (the host program's, for a fork server's
//  worker); `name` and `module` (named in duplicate errors) must outlive
//  the registry. Returns 0, or -1 with the reason in err (a bad name, a
//  duplicate, too many tasks).
int dp_registry_add_task (dp_registry_t *self, const char *name, dp_task_fn *fn,
                          const char *module, char *err, size_t errlen);

//  Run every loaded module's initializer once, with `args` (may be NULL).
//  Returns 0, or -1 with the failing module named in err.
int dp_registry_init (dp_registry_t *self, const char *args, char *err, size_t errlen);

//  Function of a task, or NULL.
dp_task_fn *dp_registry_find (dp_registry_t *self, const char *name);

//  Number of tasks and their names (owned by the registry).
size_t dp_registry_count (dp_registry_t *self);
const char *dp_registry_name (dp_registry_t *self, size_t index);

//  Run task `fn` on one item and append the outcome to `out` (an item in
//  data plus its status byte): the reply with DP_ST_OK, or the failure
//  message with DP_ST_TASK. Returns the status. `in` must have a readable
//  byte at in[len] (decoded frames do not: the runtime copies short items
//  into a NUL-terminated scratch buffer when needed).
uint8_t dp_task_run (dp_task_fn *fn, const void *in, size_t len, dp_batch_t *out);

//  For tasks that stream into their reply (the exec task): the reply's
//  size so far, room for `more` bytes after it (the size grows by `more`;
//  NULL when out of memory or over the frame limit), the size to keep
//  (<= the current size), and the reply's first byte (valid until the next
//  dp_task_grow).
size_t dp_task_size (dp_task_t *task);
void *dp_task_grow (dp_task_t *task, size_t more);
void dp_task_set_size (dp_task_t *task, size_t size);
uint8_t *dp_task_data (dp_task_t *task);

#endif
