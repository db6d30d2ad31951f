/*  =========================================================================
    dp_task - task registry, module loading and the task runtime

    A task writes its reply straight into the result batch of the chunk it
    is running: dp_task_reserve hands out bytes at the end of the batch's
    data buffer, so a reply is never copied after the task wrote it. The
    item being built starts at `start` (the batch's data size before the
    task ran); a failure throws the reply bytes away by shrinking the batch
    back to `start` and writes the message there instead.

    Items arrive packed in one data frame without terminators, and the task
    contract promises a NUL at in[len], so each item is first copied into a
    per-thread scratch buffer that is reused across items.

    The built-in `exec` task is in dp_exec.c.
    =========================================================================
*/
#include "dp_task_internal.h"
#include "dp_exec.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DPOOL_INSTALL_LIBDIR
#   define DPOOL_INSTALL_LIBDIR "/usr/local/lib"
#endif

//  Longest failure message a task can set with dp_task_fail
#define S_MAX_MESSAGE   DP_MAX_TEXT

//  The running item: where its bytes start in the result batch
struct dp_task {
    dp_batch_t *out;
    size_t start;               //  data size of `out` before this item
    bool failed;                //  dp_task_fail was called
    bool oom;                   //  a reply could not be allocated
};

typedef struct {
    const char *name;           //  owned by the module (or static)
    dp_task_fn *fn;
    const char *module;         //  module name, for duplicate errors
} s_entry_t;

struct dp_registry {
    s_entry_t *tasks;
    size_t ntasks, tasks_cap;
    const dp_module_t *modules [64];    //  tables with an initializer
    const char *module_names [64];
    size_t nmodules;
    void **handles;             //  dlopen handles, closed on destroy
    size_t nhandles;
};


//  --------------------------------------------------------------------------
//  Registry

//  Add one task; fails on a duplicate name or a full table.

static int
s_registry_add (dp_registry_t *self, const char *name, dp_task_fn *fn,
                const char *module, char *err, size_t errlen)
{
    for (size_t i = 0; i < self->ntasks; i++)
        if (strcmp (self->tasks [i].name, name) == 0) {
            snprintf (err, errlen, "duplicate task name '%s' (also in %s)",
                      name, self->tasks [i].module);
            return -1;
        }
    if (self->ntasks == DP_MAX_TASKS) {
        snprintf (err, errlen, "more than %d tasks in all", DP_MAX_TASKS);
        return -1;
    }
    if (self->ntasks == self->tasks_cap) {
        size_t cap = self->tasks_cap ? self->tasks_cap * 2 : 16;
        s_entry_t *tasks = realloc (self->tasks, cap * sizeof *tasks);
        if (!tasks) {
            snprintf (err, errlen, "out of memory");
            return -1;
        }
        self->tasks = tasks;
        self->tasks_cap = cap;
    }
    self->tasks [self->ntasks++] = (s_entry_t) { name, fn, module };
    return 0;
}

int
dp_registry_add_task (dp_registry_t *self, const char *name, dp_task_fn *fn,
                      const char *module, char *err, size_t errlen)
{
    if (!name || !*name || strlen (name) > DP_MAX_NAME || !fn) {
        snprintf (err, errlen, "task %s%s%s has no function or a bad name (1 to %d bytes)",
                  name ? "'" : "", name ? name : "(null)", name ? "'" : "", DP_MAX_NAME);
        return -1;
    }
    return s_registry_add (self, name, fn, module, err, errlen);
}

int
dp_registry_remove (dp_registry_t *self, const char *name)
{
    for (size_t i = 0; i < self->ntasks; i++)
        if (strcmp (self->tasks [i].name, name) == 0) {
            memmove (self->tasks + i, self->tasks + i + 1,
                     (self->ntasks - i - 1) * sizeof *self->tasks);
            self->ntasks--;
            return 0;
        }
    return -1;
}

dp_registry_t *
dp_registry_new (void)
{
    dp_registry_t *self = calloc (1, sizeof *self);
    char err [128];
    if (self && s_registry_add (self, "exec", dp_exec_task, "(built-in)", err, sizeof err))
        dp_registry_destroy (&self);
    return self;
}

void
dp_registry_destroy (dp_registry_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dp_registry_t *self = *self_p;
    for (size_t i = 0; i < self->nhandles; i++)
        dlclose (self->handles [i]);
    free (self->handles);
    free (self->tasks);
    free (self);
    *self_p = NULL;
}

//  Try dir/file; on success *handle is set and 0 returned. A file that does
//  not exist is skipped silently (returns 1); one that exists but does not
//  load is an error (returns -1, reason in err).

static int
s_try_open (const char *dir, const char *file, void **handle, char *err, size_t errlen)
{
    char path [PATH_MAX];
    if (snprintf (path, sizeof path, "%s/%s", dir, file) >= (int) sizeof path)
        return 1;
    if (access (path, F_OK) != 0)
        return 1;
    *handle = dlopen (path, RTLD_NOW | RTLD_LOCAL);
    if (*handle)
        return 0;
    snprintf (err, errlen, "%s", dlerror ());
    return -1;
}

//  Look for a module named `name` in one directory, as libdpool_NAME.so,
//  NAME.so, libNAME.so (or NAME itself when it already ends in .so).
//  Returns as s_try_open.

static int
s_open_in_dir (const char *dir, const char *name, void **handle, char *err, size_t errlen)
{
    static const char *affixes [][2] = {{ "libdpool_", ".so" }, { "", ".so" }, { "lib", ".so" }};
    size_t len = strlen (name);
    if (len > 3 && strcmp (name + len - 3, ".so") == 0)
        return s_try_open (dir, name, handle, err, errlen);
    for (size_t i = 0; i < sizeof affixes / sizeof affixes [0]; i++) {
        char file [DP_MAX_NAME + 32];
        snprintf (file, sizeof file, "%s%s%s", affixes [i][0], name, affixes [i][1]);
        int rc = s_try_open (dir, file, handle, err, errlen);
        if (rc <= 0)
            return rc;
    }
    return 1;
}

//  Directory holding libdpool.so (the object this code lives in), into buf:
//  for our own programs, which link the library's objects statically (the
//  code is in the executable), the library directory beside their bin
//  directory. Returns 0 or -1.

static int
s_libdpool_dir (char *buf, size_t size)
{
    Dl_info info;
    struct link_map *map = NULL;
    if (!dladdr1 ((void *) dp_registry_new, &info, (void **) &map, RTLD_DL_LINKMAP)
    ||  !info.dli_fname)
        return -1;
    char exe [PATH_MAX];
    const char *file = info.dli_fname;
    bool in_program = map && map->l_name && map->l_name [0] == 0;
    if (in_program) {
        ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            return -1;
        exe [n] = 0;
        file = exe;
    }
    const char *slash = strrchr (file, '/');
    if (!slash || (size_t) (slash - file) >= size)
        return -1;
    int n = snprintf (buf, size, "%.*s%s", (int) (slash - file), file,
                      in_program ? "/" DPOOL_BIN_TO_LIB : "");
    return n > 0 && (size_t) n < size ? 0 : -1;
}

//  Resolve a module name through $DPOOL_MODULE_PATH, the directory of
//  libdpool.so, then the installed libdir. Returns a handle or NULL with
//  the reason in err.

static void *
s_resolve (const char *name, char *err, size_t errlen)
{
    void *handle = NULL;
    char why [512] = "";
    const char *path = getenv ("DPOOL_MODULE_PATH");
    char *dirs = strdup (path ? path : "");
    int rc = 1;
    for (char *dir = dirs, *next; rc > 0 && dir; dir = next) {
        next = strchr (dir, ':');
        if (next)
            *next++ = 0;
        if (*dir)
            rc = s_open_in_dir (dir, name, &handle, why, sizeof why);
    }
    free (dirs);
    char libdir [PATH_MAX];
    if (rc > 0 && s_libdpool_dir (libdir, sizeof libdir) == 0)
        rc = s_open_in_dir (libdir, name, &handle, why, sizeof why);
    if (rc > 0)
        rc = s_open_in_dir (DPOOL_INSTALL_LIBDIR, name, &handle, why, sizeof why);
    if (rc > 0)
        snprintf (err, errlen, "cannot load module '%s': not found in $DPOOL_MODULE_PATH, "
                  "the libdpool directory or %s", name, DPOOL_INSTALL_LIBDIR);
    else
    if (rc < 0)
        snprintf (err, errlen, "cannot load module '%s': %s", name, why);
    return handle;
}

//  Check a module table and add its tasks. Returns 0 or -1.

static int
s_registry_add_module (dp_registry_t *self, const char *module,
                       const dp_module_t *table, char *err, size_t errlen)
{
    if (table->abi != DP_TASK_ABI) {
        snprintf (err, errlen, "cannot load module '%s': ABI %u, expected %d",
                  module, table->abi, DP_TASK_ABI);
        return -1;
    }
    if (!table->tasks && table->ntasks) {
        snprintf (err, errlen, "cannot load module '%s': dp_module has no task table", module);
        return -1;
    }
    if (table->init) {
        if (self->nmodules == sizeof self->modules / sizeof self->modules [0]) {
            snprintf (err, errlen, "cannot load module '%s': too many initializers", module);
            return -1;
        }
        self->module_names [self->nmodules] = table->name ? table->name : "?";
        self->modules [self->nmodules++] = table;
    }
    size_t before = self->ntasks;
    for (size_t i = 0; i < table->ntasks; i++) {
        const dp_task_def_t *def = &table->tasks [i];
        if (!def->name || !*def->name || strlen (def->name) > DP_MAX_NAME || !def->fn) {
            snprintf (err, errlen, "cannot load module '%s': task %zu has no function "
                      "or a bad name (1 to %d bytes)", module, i, DP_MAX_NAME);
            self->ntasks = before;
            return -1;
        }
        char why [DP_MAX_NAME * 2 + 64];
        if (s_registry_add (self, def->name, def->fn,
                            table->name ? table->name : module, why, sizeof why)) {
            snprintf (err, errlen, "cannot load module '%s': %s", module, why);
            self->ntasks = before;
            return -1;
        }
    }
    return 0;
}

int
dp_registry_init (dp_registry_t *self, const char *args, char *err, size_t errlen)
{
    for (size_t i = 0; i < self->nmodules; i++) {
        int rc = self->modules [i]->init (args ? args : "");
        if (rc != 0) {
            snprintf (err, errlen, "module '%s': initializer failed (%d)", self->module_names [i], rc);
            return -1;
        }
    }
    return 0;
}

int
dp_registry_load (dp_registry_t *self, const char *module, char *err, size_t errlen)
{
    void *handle;
    if (strchr (module, '/')) {
        handle = dlopen (module, RTLD_NOW | RTLD_LOCAL);
        if (!handle)
            snprintf (err, errlen, "cannot load module '%s': %s", module, dlerror ());
    }
    else
        handle = s_resolve (module, err, errlen);
    if (!handle)
        return -1;
    for (size_t i = 0; i < self->nhandles; i++)
        if (self->handles [i] == handle) {
            dlclose (handle);       //  same library named twice: one is enough
            return 0;
        }
    const dp_module_t *table = dlsym (handle, "dp_module");
    void **handles = realloc (self->handles, (self->nhandles + 1) * sizeof *handles);
    if (!table || !handles
    ||  s_registry_add_module (self, module, table, err, errlen)) {
        if (!table)
            snprintf (err, errlen, "cannot load module '%s': no dp_module table", module);
        else
        if (!handles)
            snprintf (err, errlen, "cannot load module '%s': out of memory", module);
        if (handles)
            self->handles = handles;
        dlclose (handle);
        return -1;
    }
    self->handles = handles;
    self->handles [self->nhandles++] = handle;
    return 0;
}

dp_task_fn *
dp_registry_find (dp_registry_t *self, const char *name)
{
    for (size_t i = 0; i < self->ntasks; i++)
        if (strcmp (self->tasks [i].name, name) == 0)
            return self->tasks [i].fn;
    return NULL;
}

size_t
dp_registry_count (dp_registry_t *self)
{
    return self->ntasks;
}

const char *
dp_registry_name (dp_registry_t *self, size_t index)
{
    return index < self->ntasks ? self->tasks [index].name : NULL;
}


//  --------------------------------------------------------------------------
//  Task runtime (include/dpool_task.h)

int
dp_task_reply (dp_task_t *task, const void *data, size_t len)
{
    void *dest = dp_task_reserve (task, len);
    if (!dest)
        return -1;
    if (len)
        memcpy (dest, data, len);
    return 0;
}

void *
dp_task_reserve (dp_task_t *task, size_t len)
{
    //  At most one reply: a second one replaces the first
    dp_batch_set_size (task->out, task->start);
    if (len > DP_MAX_FRAME) {
        task->oom = true;
        return NULL;
    }
    void *dest = dp_batch_reserve (task->out, len);
    if (!dest)
        task->oom = true;
    return dest;
}

size_t
dp_task_size (dp_task_t *task)
{
    return task->out->size - task->start;
}

void *
dp_task_grow (dp_task_t *task, size_t more)
{
    if (more > DP_MAX_FRAME || task->out->size - task->start > DP_MAX_FRAME - more)
        return NULL;
    return dp_batch_reserve (task->out, more);
}

void
dp_task_set_size (dp_task_t *task, size_t size)
{
    dp_batch_set_size (task->out, task->start + size);
}

uint8_t *
dp_task_data (dp_task_t *task)
{
    return task->out->data + task->start;
}

void
dp_task_reply_size (dp_task_t *task, size_t len)
{
    if (task->start + len < task->out->size)
        dp_batch_set_size (task->out, task->start + len);
}

//  Format into the item being built, after what it holds already, at most
//  `cap` bytes (longer text is cut). Returns 0 or -1 (out of memory).

static int
s_task_vformat (dp_task_t *task, size_t cap, const char *format, va_list args)
{
    dp_batch_t *out = task->out;
    size_t at = out->size;
    size_t room = 128 < cap ? 128 : cap;
    va_list copy;
    va_copy (copy, args);
    char *dest = dp_batch_reserve (out, room + 1);
    int len = dest ? vsnprintf (dest, room + 1, format, copy) : -1;
    va_end (copy);
    if (len >= 0 && (size_t) len > room && room < cap) {
        //  Did not fit the first guess: make room for all of it
        room = (size_t) len < cap ? (size_t) len : cap;
        dp_batch_set_size (out, at);
        dest = dp_batch_reserve (out, room + 1);
        len = dest ? vsnprintf (dest, room + 1, format, args) : -1;
    }
    if (len < 0) {
        dp_batch_set_size (out, at);
        return -1;
    }
    dp_batch_set_size (out, at + ((size_t) len < room ? (size_t) len : room));
    return 0;
}

int
dp_task_printf (dp_task_t *task, const char *format, ...)
{
    dp_batch_set_size (task->out, task->start);
    va_list args;
    va_start (args, format);
    int rc = s_task_vformat (task, DP_MAX_FRAME, format, args);
    va_end (args);
    if (rc)
        task->oom = true;
    return rc;
}

int
dp_task_fail (dp_task_t *task, const char *format, ...)
{
    dp_batch_set_size (task->out, task->start);
    va_list args;
    va_start (args, format);
    s_task_vformat (task, S_MAX_MESSAGE, format, args);
    va_end (args);
    task->failed = true;
    return -1;
}

//  Replace whatever the item holds with a runtime failure message.

static void
s_task_set_failure (dp_task_t *task, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_task_set_failure (dp_task_t *task, const char *format, ...)
{
    dp_batch_set_size (task->out, task->start);
    va_list args;
    va_start (args, format);
    s_task_vformat (task, S_MAX_MESSAGE, format, args);
    va_end (args);
    task->failed = true;
}

//  The per-thread scratch buffer that gives items their NUL terminator.
//  A thread-specific key frees it when the thread exits.

static pthread_key_t s_scratch_key;
static pthread_once_t s_scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local char *s_scratch;
static _Thread_local size_t s_scratch_size;

static void
s_scratch_init (void)
{
    pthread_key_create (&s_scratch_key, free);
}

//  Copy of the item, NUL-terminated, or NULL when out of memory.

static const char *
s_scratch_copy (const void *in, size_t len)
{
    if (len >= s_scratch_size) {
        size_t size = s_scratch_size ? s_scratch_size : 4096;
        while (size <= len)
            size *= 2;
        char *buf = realloc (s_scratch, size);
        if (!buf)
            return NULL;
        pthread_once (&s_scratch_once, s_scratch_init);
        pthread_setspecific (s_scratch_key, buf);
        s_scratch = buf;
        s_scratch_size = size;
    }
    if (len)
        memcpy (s_scratch, in, len);
    s_scratch [len] = 0;
    return s_scratch;
}

uint8_t
dp_task_run (dp_task_fn *fn, const void *in, size_t len, dp_batch_t *out)
{
    dp_task_t task = { out, out->size, false, false };
    const char *item = s_scratch_copy (in, len);
    int rc = item ? fn (&task, item, len) : -1;
    if (!item)
        s_task_set_failure (&task, "out of memory (item of %zu bytes)", len);
    else
    if (task.oom && !task.failed)
        s_task_set_failure (&task, "out of memory");
    else
    if (rc != 0 && !task.failed)
        s_task_set_failure (&task, "task returned %d", rc);
    else
    if (out->size - task.start > DP_MAX_FRAME - 64
    ||  out->size > DP_MAX_FRAME)
        s_task_set_failure (&task, "result of %zu bytes: the chunk's results would be "
                            "over the %u-byte frame limit", out->size - task.start, DP_MAX_FRAME);
    uint8_t status = task.failed ? DP_ST_TASK : DP_ST_OK;
    if (dp_batch_commit (out, task.start, status)) {
        //  No room for one more length: nothing sane is left to do
        fprintf (stderr, "dpool-worker: out of memory building a result\n");
        abort ();
    }
    return status;
}
