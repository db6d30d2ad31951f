/*  =========================================================================
    dpool_pack.h - structured items and results (msgpack), both sides

    Items and results are byte strings; these helpers make them msgpack
    values, so that a task takes a tuple of arguments (starmap) and
    answers a structured result without hand-written packing.

    Client: build one tuple per item and map a task over them:

        dp_args_t *args = dp_args_new ();
        for (int i = 0; i < 10; i++)
            dp_args_add (args, "ii", 2, i);         //  the item [2, i]
        dp_results_t *res;
        long failed = dp_starmap (pool, "pow", args, NULL, &res);
        ...
        int64_t value;
        dp_unpack_t u;
        size_t len;
        const void *data = dp_results_data (res, 3, &len);
        dp_unpack_init (&u, data, len);
        if (dp_unpack_format (&u, "I", &value) == 0) ...   //  else dp_unpack_error (&u)
        dp_args_destroy (&args);

    Task (in a module, which links libdpool):

        static int
        pow_task (dp_task_t *task, const void *in, size_t len)
        {
            dp_unpack_t u;
            int64_t base, exp;
            dp_unpack_init (&u, in, len);
            if (dp_unpack_args (&u, "II", &base, &exp))
                return dp_task_fail (task, "pow: %s", dp_unpack_error (&u));
            ...
            return dp_pack_reply (task, "I", result);
        }

    Formats, one letter per value (pack: the value; unpack: a pointer):

        letter  msgpack      pack argument          unpack argument
        i       int          int                    int *
        I       int          int64_t                int64_t *
        u       int >= 0     unsigned               unsigned *
        U       int >= 0     uint64_t               uint64_t *
        d       float/int    double                 double *  (an int is converted)
        b       bool         int (0 or not)         bool *
        s       str          const char * (NULL:    const char **, size_t *  (not NUL-
                             nil)                   terminated: it points into the data;
                                                    nil gives NULL, 0)
        S       str          -                      char *buf, size_t size (a NUL-terminated
                                                    copy; too long is an error)
        y       bin          const void *, size_t   const void **, size_t *
        n       nil          (none)                 (none)
        *       any          -                      (none): skips one value
        [ ... ] array of the values inside (its length must match when unpacking)
        { ... } map: keys and values alternate inside

    Readers check every length against the bytes present and never
    allocate: bad input is an error with a message, never a crash.
    Integers are range-checked into the target type.
    =========================================================================
*/
#ifndef DPOOL_PACK_H_INCLUDED
#define DPOOL_PACK_H_INCLUDED

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dpool.h"

//  DP_EXPORT marks the public functions: libdpool is built with hidden
//  visibility (-fvisibility=hidden), so only these leave the library.
#ifndef DP_EXPORT
#   define DP_EXPORT __attribute__ ((visibility ("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct dp_task;                     //  dpool_task.h's dp_task_t

//  --------------------------------------------------------------------------
//  Building msgpack values

typedef struct dp_pack dp_pack_t;

//  An empty buffer; NULL if out of memory.
DP_EXPORT dp_pack_t *dp_pack_new (void);
DP_EXPORT void dp_pack_destroy (dp_pack_t **self_p);

//  Empty the buffer (keeps its memory).
DP_EXPORT void dp_pack_reset (dp_pack_t *self);

//  The packed bytes so far: valid until the next call on the buffer.
DP_EXPORT const void *dp_pack_data (const dp_pack_t *self, size_t *len);

//  Append one value. Each returns 0, or -1 if out of memory (the buffer is
//  then unusable until dp_pack_reset).
DP_EXPORT int dp_pack_nil (dp_pack_t *self);
DP_EXPORT int dp_pack_bool (dp_pack_t *self, bool value);
DP_EXPORT int dp_pack_int (dp_pack_t *self, int64_t value);
DP_EXPORT int dp_pack_uint (dp_pack_t *self, uint64_t value);
DP_EXPORT int dp_pack_double (dp_pack_t *self, double value);
DP_EXPORT int dp_pack_str (dp_pack_t *self, const char *text);      //  NULL: nil
DP_EXPORT int dp_pack_strn (dp_pack_t *self, const char *text, size_t len);
DP_EXPORT int dp_pack_bin (dp_pack_t *self, const void *data, size_t len);
//  Start an array of `count` values, or a map of `count` key/value pairs:
//  the next values appended are its elements.
DP_EXPORT int dp_pack_array (dp_pack_t *self, uint32_t count);
DP_EXPORT int dp_pack_map (dp_pack_t *self, uint32_t count);

//  Append the values of a format (see the table above). Returns 0, or -1
//  on a bad format (unbalanced brackets, an unknown letter, an odd map) or
//  out of memory.
DP_EXPORT int dp_pack_format (dp_pack_t *self, const char *format, ...);
DP_EXPORT int dp_pack_vformat (dp_pack_t *self, const char *format, va_list args);

//  --------------------------------------------------------------------------
//  Reading msgpack values

//  A reader over one buffer, kept on the stack. Members are private.
typedef struct {
    const uint8_t *pos, *end, *start;
    bool failed;
    char error [160];
} dp_unpack_t;

DP_EXPORT void dp_unpack_init (dp_unpack_t *self, const void *data, size_t len);

//  Read the next value. Each returns 0, or -1 when the next value is not
//  of that type, is out of range, or is cut off; the first error sticks
//  (later reads fail) and dp_unpack_error says what and where.
DP_EXPORT int dp_unpack_nil (dp_unpack_t *self);
DP_EXPORT int dp_unpack_bool (dp_unpack_t *self, bool *value);
DP_EXPORT int dp_unpack_int (dp_unpack_t *self, int64_t *value);
DP_EXPORT int dp_unpack_uint (dp_unpack_t *self, uint64_t *value);
DP_EXPORT int dp_unpack_double (dp_unpack_t *self, double *value);
DP_EXPORT int dp_unpack_str (dp_unpack_t *self, const char **text, size_t *len);
DP_EXPORT int dp_unpack_bin (dp_unpack_t *self, const void **data, size_t *len);
DP_EXPORT int dp_unpack_array (dp_unpack_t *self, uint32_t *count);
DP_EXPORT int dp_unpack_map (dp_unpack_t *self, uint32_t *count);
DP_EXPORT int dp_unpack_skip (dp_unpack_t *self);

//  Read values by format, then require the end of the data. Returns 0 or
//  -1 (error set; some outputs may have been written).
DP_EXPORT int dp_unpack_format (dp_unpack_t *self, const char *format, ...);
DP_EXPORT int dp_unpack_vformat (dp_unpack_t *self, const char *format, va_list args);

//  A starmap item: an array whose elements match `format`, and nothing
//  after it. dp_unpack_args (&u, "is", ...) is dp_unpack_format (&u,
//  "[is]", ...).
DP_EXPORT int dp_unpack_args (dp_unpack_t *self, const char *format, ...);

//  Any bytes left? What went wrong ("" if nothing)?
DP_EXPORT bool dp_unpack_done (const dp_unpack_t *self);
DP_EXPORT const char *dp_unpack_error (const dp_unpack_t *self);

//  --------------------------------------------------------------------------
//  Tasks: answer a packed result

//  Reply with the values of a format (dp_task_reply of the packed bytes).
//  Returns 0, or -1 (the item fails: bad format or out of memory).
DP_EXPORT int dp_pack_reply (struct dp_task *task, const char *format, ...);
//  Reply with the bytes of a buffer.
DP_EXPORT int dp_pack_reply_with (struct dp_task *task, const dp_pack_t *pack);

//  --------------------------------------------------------------------------
//  Clients: starmap

typedef struct dp_args dp_args_t;

//  A list of items, each a packed tuple.
DP_EXPORT dp_args_t *dp_args_new (void);
DP_EXPORT void dp_args_destroy (dp_args_t **self_p);

//  Add one item: the array of the values of the format (no brackets
//  needed: dp_args_add (a, "is", 3, "x") adds [3, "x"]). Returns 0 or -1.
DP_EXPORT int dp_args_add (dp_args_t *self, const char *format, ...);

//  Add one item: a buffer's bytes as they are. Returns 0 or -1.
DP_EXPORT int dp_args_add_pack (dp_args_t *self, const dp_pack_t *pack);

DP_EXPORT size_t dp_args_count (const dp_args_t *self);

//  The items, for dp_map, dp_imap_items or dp_map_async: valid until the
//  next dp_args_add or dp_args_destroy.
DP_EXPORT const dp_item_t *dp_args_items (dp_args_t *self);

//  dp_map over the items of args: each call of the task gets one tuple.
DP_EXPORT long dp_starmap (dp_pool_t *pool, const char *task, dp_args_t *args,
                 const dp_job_opts_t *opts, dp_results_t **results);

#ifdef __cplusplus
}
#endif

#endif
