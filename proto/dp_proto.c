/*  =========================================================================
    dp_proto - the dpool wire codec

    The one place that knows frame layout and msgpack (see dp_proto.h for the
    frame picture and proto/PROTOCOL.md for the normative rules).

    Decoding is built to be safe on hostile input and cheap on good input:

    1.  Frame-level checks first (count, sizes, signature, command): these
        cost nothing and refuse most garbage before any parsing.
    2.  The header bytes are walked by a small validator (s_mp_skip, on
        dp_msgpack's head decoder, which dp_unpack shares) that
        knows every msgpack type, checks every declared length against the
        bytes that remain, and limits nesting to DP_MAX_DEPTH. Only a header
        that passes is handed to msgpack_unpack, so the unpacker's allocation
        is bounded by the header's size (<= DP_MAX_HEADER), never by a length
        a peer merely claims.
    3.  The unpack uses a per-thread zone that is cleared, not freed, after
        each message: the steady state does no malloc at all.
    4.  Keys are looked up in one table (s_keys) that maps each wire name to
        its dp_msg_t member and type; each command (s_cmds) lists which keys
        it carries and which of them are required. The same tables drive the
        encoder, so encoder and decoder cannot disagree.
    5.  Payload frames are checked against the header (lens == 4 * n, lens
        sum == data size, status bytes in range) and then moved, not copied,
        into the message.
    =========================================================================
*/

#include "dp_proto.h"
#include "dp_msgpack.h"
#include <czmq.h>

#include <errno.h>
#include <limits.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DP_MAX_FRAMES (3 + DP_MAX_PAYLOAD)

//  ---------------------------------------------------------------------
//  Header keys: wire name == dp_msg_t member name

typedef enum {
    K_JOB, K_FIRST, K_N, K_CHUNK, K_TOTAL, K_OK, K_FAILED, K_NS, K_WBYTES,
    K_HB, K_WINDOW, K_BATCH, K_CREDIT, K_PID, K_SLOTS, K_ATTEMPTS,
    K_CHUNKSIZE, K_CODE, K_ORDERED, K_TASK, K_HOST, K_TEXT, K_TASKS,
    K_TIMEOUT, K_TPCT, K_WEIGHT, K_ITEM, K_NODE, K_CSIZE, K_K, K_LAST, K_DONE,
    K_SPEC, K_BACKUPS, K_BIG, K_SEQ, K_FD, K_PARTS, K_AVOID,
    K_COUNT
} s_key_id_t;

typedef enum { T_U32, T_U64, T_I32, T_BOOL, T_STR, T_TASKS, T_AVOID } s_type_t;

typedef struct {
    const char *name;
    uint8_t len;            //  strlen (name)
    uint8_t type;           //  s_type_t
    uint16_t offset;        //  of the member in dp_msg_t
    uint16_t size;          //  of the member (buffer size for strings)
} s_key_t;

#define S_KEY(member, type) { #member, sizeof (#member) - 1, type, \
    offsetof (dp_msg_t, member), sizeof (((dp_msg_t *) 0)->member) }

static const s_key_t s_keys [K_COUNT] = {
    S_KEY (job, T_U32),       S_KEY (first, T_U64),    S_KEY (n, T_U32),
    S_KEY (chunk, T_U64),     S_KEY (total, T_U64),    S_KEY (ok, T_U64),
    S_KEY (failed, T_U64),    S_KEY (ns, T_U64),       S_KEY (wbytes, T_U64),
    S_KEY (hb, T_U32),        S_KEY (window, T_U32),   S_KEY (batch, T_U32),
    S_KEY (credit, T_U32),    S_KEY (pid, T_U32),      S_KEY (slots, T_U32),
    S_KEY (attempts, T_U32),  S_KEY (chunksize, T_U32), S_KEY (code, T_I32),
    S_KEY (ordered, T_BOOL),  S_KEY (task, T_STR),     S_KEY (host, T_STR),
    S_KEY (text, T_STR),      S_KEY (tasks, T_TASKS),
    S_KEY (timeout, T_U32),   S_KEY (tpct, T_U32),     S_KEY (weight, T_U32),
    S_KEY (item, T_U32),      S_KEY (node, T_U64),     S_KEY (csize, T_U32),
    S_KEY (k, T_U32),         S_KEY (last, T_BOOL),    S_KEY (done, T_BOOL),
    S_KEY (spec, T_U32),      S_KEY (backups, T_U64),  S_KEY (big, T_U64),
    S_KEY (seq, T_U64),       S_KEY (fd, T_U32),       S_KEY (parts, T_BOOL),
    S_KEY (avoid, T_AVOID)
};

#define B(k) (1ull << (k))

//  Per command: name, payload frames, keys it carries, keys it requires.
//  Keys a command does not carry are ignored when received.
typedef struct {
    const char *name;
    uint8_t payload;
    uint64_t keys;
    uint64_t required;
} s_cmd_t;

static const s_cmd_t s_cmds [] = {
    [DP_CMD_HELLO]     = { "HELLO", 0, B (K_HB) | B (K_HOST), B (K_HB) },
    [DP_CMD_WELCOME]   = { "WELCOME", 0,
        B (K_HB) | B (K_WINDOW) | B (K_WBYTES) | B (K_BATCH),
        B (K_HB) | B (K_WINDOW) | B (K_WBYTES) | B (K_BATCH) },
    [DP_CMD_JOB]       = { "JOB", 0,
        B (K_JOB) | B (K_TASK) | B (K_ORDERED) | B (K_ATTEMPTS) | B (K_CHUNKSIZE)
        | B (K_TIMEOUT) | B (K_TPCT) | B (K_WEIGHT) | B (K_SPEC) | B (K_PARTS),
        B (K_JOB) | B (K_TASK) },
    [DP_CMD_BATCH]     = { "BATCH", 2, B (K_JOB) | B (K_FIRST) | B (K_N) | B (K_CSIZE) | B (K_LAST)
                                       | B (K_BIG) | B (K_AVOID),
                                       B (K_JOB) | B (K_FIRST) | B (K_N) },
    [DP_CMD_END]       = { "END", 0, B (K_JOB) | B (K_TOTAL), B (K_JOB) | B (K_TOTAL) },
    [DP_CMD_CANCEL]    = { "CANCEL", 0, B (K_JOB), B (K_JOB) },
    [DP_CMD_RESULTS]   = { "RESULTS", 3, B (K_JOB) | B (K_FIRST) | B (K_N) | B (K_NS)
                                         | B (K_DONE) | B (K_OK) | B (K_FAILED) | B (K_BACKUPS),
                                         B (K_JOB) | B (K_FIRST) | B (K_N) },
    [DP_CMD_DONE]      = { "DONE", 0, B (K_JOB) | B (K_OK) | B (K_FAILED) | B (K_BACKUPS),
                                      B (K_JOB) | B (K_OK) | B (K_FAILED) },
    [DP_CMD_ERROR]     = { "ERROR", 0, B (K_CODE) | B (K_TEXT) | B (K_JOB), B (K_CODE) },
    [DP_CMD_STATUS]    = { "STATUS", 0, 0, 0 },
    [DP_CMD_REPORT]    = { "REPORT", 1, 0, 0 },
    [DP_CMD_PART]      = { "PART", 1, B (K_JOB) | B (K_FIRST) | B (K_CHUNK) | B (K_SEQ) | B (K_FD),
                                      B (K_JOB) | B (K_FIRST) | B (K_CHUNK) | B (K_SEQ) | B (K_FD) },
    [DP_CMD_ACK]       = { "ACK", 0, B (K_JOB) | B (K_FIRST) | B (K_CHUNK) | B (K_SEQ),
                                     B (K_JOB) | B (K_FIRST) | B (K_CHUNK) | B (K_SEQ) },
    [DP_CMD_HEARTBEAT] = { "HEARTBEAT", 0, 0, 0 },
    [DP_CMD_BYE]       = { "BYE", 0, 0, 0 },
    [DP_CMD_READY]     = { "READY", 0,
        B (K_TASKS) | B (K_CREDIT) | B (K_PID) | B (K_HOST) | B (K_SLOTS) | B (K_HB)
        | B (K_NODE),
        B (K_TASKS) | B (K_CREDIT) | B (K_HB) },
    [DP_CMD_CHUNK]     = { "CHUNK", 2, B (K_CHUNK) | B (K_TASK) | B (K_N) | B (K_TIMEOUT) | B (K_K)
                                       | B (K_PARTS),
                                       B (K_CHUNK) | B (K_TASK) | B (K_N) },
    [DP_CMD_RESULT]    = { "RESULT", 3, B (K_CHUNK) | B (K_N) | B (K_NS) | B (K_K),
                                        B (K_CHUNK) | B (K_N) },
    [DP_CMD_NODE]      = { "NODE", 0, B (K_NODE) | B (K_HOST) | B (K_PID) | B (K_SLOTS) | B (K_HB),
                                      B (K_NODE) | B (K_SLOTS) | B (K_HB) },
    [DP_CMD_DEATH]     = { "DEATH", 0, B (K_PID) | B (K_CHUNK) | B (K_ITEM) | B (K_CODE) | B (K_TEXT),
                                       B (K_PID) | B (K_CODE) },
    [DP_CMD_ABORT]     = { "ABORT", 0, B (K_CHUNK) | B (K_K), B (K_CHUNK) },
    [DP_CMD_WPART]     = { "WPART", 1, B (K_CHUNK) | B (K_ITEM) | B (K_SEQ) | B (K_FD),
                                       B (K_CHUNK) | B (K_ITEM) | B (K_SEQ) | B (K_FD) },
    [DP_CMD_WACK]      = { "WACK", 0, B (K_CHUNK) | B (K_ITEM) | B (K_SEQ),
                                      B (K_CHUNK) | B (K_ITEM) | B (K_SEQ) },
};

//  The command's table entry, or NULL if the command is unknown.
static const s_cmd_t *
s_cmd_info (int cmd)
{
    if (cmd < 0 || (size_t) cmd >= sizeof s_cmds / sizeof s_cmds [0]
    ||  s_cmds [cmd].name == NULL)
        return NULL;
    return &s_cmds [cmd];
}

//  Commands whose `task` must be a non-empty name.
static bool
s_task_required (int cmd)
{
    return cmd == DP_CMD_JOB || cmd == DP_CMD_CHUNK;
}

//  Format a reason into err (if any) and return code.
static int __attribute__ ((format (printf, 4, 5)))
s_fail (char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list args;
        va_start (args, fmt);
        vsnprintf (err, errlen, fmt, args);
        va_end (args);
    }
    return code;
}

//  Out of memory while decoding: DP_PROTO_ESOCKET with errno ENOMEM.
static int
s_nomem (char *err, size_t errlen)
{
    errno = ENOMEM;
    return s_fail (err, errlen, DP_PROTO_ESOCKET, "out of memory");
}

static inline uint32_t
s_get_le32 (const uint8_t *p)
{
    return (uint32_t) p [0] | (uint32_t) p [1] << 8
         | (uint32_t) p [2] << 16 | (uint32_t) p [3] << 24;
}

//  ---------------------------------------------------------------------
//  Raw msgpack validator: runs before msgpack_unpack ever sees the bytes

//  Walk one msgpack object at *pp, a container nested `depth` levels deep.
//  Returns 0, DP_PROTO_ELIMIT (nesting), or DP_PROTO_EHEADER (malformed,
//  or a declared length longer than the bytes that remain).
static int
s_mp_skip (const uint8_t **pp, const uint8_t *end, int depth, const char *what,
           char *err, size_t errlen)
{
    if (*pp >= end)
        return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: truncated msgpack", what);
    uint8_t b = **pp;
    dp_mp_head_t h;
    int rc = dp_mp_head (*pp, (size_t) (end - *pp), &h);
    if (rc == DP_MP_CUT)
        return s_fail (err, errlen, DP_PROTO_EHEADER,
                       "%s: msgpack value 0x%02x exceeds the %zu bytes left",
                       what, b, (size_t) (end - *pp));
    if (rc)
        return s_fail (err, errlen, DP_PROTO_EHEADER,
                       "%s: bad msgpack byte 0x%02x", what, b);
    *pp += 1;
    //  the rest of the head (a number's bytes) counts as body, as before
    uint64_t skip = h.head - 1 + h.len;
    uint64_t count = h.kind == DP_MP_MAP ? 2 * h.count : h.count;
    uint64_t left = (uint64_t) (end - *pp);
    if (skip > left)
        return s_fail (err, errlen, DP_PROTO_EHEADER,
                       "%s: length %llu exceeds the %llu bytes left", what,
                       (unsigned long long) skip, (unsigned long long) left);
    *pp += skip;
    if (((b & 0xf0) == 0x80 || (b & 0xf0) == 0x90 || (b >= 0xdc && b <= 0xdf))
    &&  depth + 1 > DP_MAX_DEPTH)
        return s_fail (err, errlen, DP_PROTO_ELIMIT,
                       "%s: nesting deeper than %d", what, DP_MAX_DEPTH);
    //  Every element takes at least one byte, so a count beyond the bytes
    //  left is a lie: refuse it before looping over it.
    if (count > left)
        return s_fail (err, errlen, DP_PROTO_EHEADER,
                       "%s: %llu elements declared, %llu bytes left", what,
                       (unsigned long long) count, (unsigned long long) left);
    for (uint64_t i = 0; i < count; i++) {
        rc = s_mp_skip (pp, end, depth + 1, what, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

//  Validate a whole header: exactly one msgpack map, nothing after it.
static int
s_mp_validate (const uint8_t *data, size_t size, const char *cmd,
               char *err, size_t errlen)
{
    if (size == 0)
        return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: empty header", cmd);
    uint8_t b = data [0];
    if ((b & 0xf0) != 0x80 && b != 0xde && b != 0xdf)
        return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: header is not a map", cmd);
    const uint8_t *p = data;
    int rc = s_mp_skip (&p, data + size, 0, "header", err, errlen);
    if (rc)
        return rc;
    if (p != data + size)
        return s_fail (err, errlen, DP_PROTO_EHEADER,
                       "%s: %zu bytes of trailing garbage after header",
                       cmd, (size_t) (data + size - p));
    return 0;
}

int
dp_proto_check_map (const void *data, size_t size, const char *what,
                    char *err, size_t errlen)
{
    const uint8_t *p = (const uint8_t *) data;
    if (size == 0 || ((p [0] & 0xf0) != 0x80 && p [0] != 0xde && p [0] != 0xdf))
        return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: not a msgpack map", what);
    int rc = s_mp_skip (&p, (const uint8_t *) data + size, 0, what, err, errlen);
    if (rc == 0 && p != (const uint8_t *) data + size)
        rc = s_fail (err, errlen, DP_PROTO_EHEADER, "%s: %zu bytes of trailing garbage",
                     what, (size_t) ((const uint8_t *) data + size - p));
    return rc;
}


//  ---------------------------------------------------------------------
//  Per-thread unpack zone: cleared after each header, freed at thread exit

static pthread_key_t s_zone_key;
static pthread_once_t s_zone_once = PTHREAD_ONCE_INIT;
static bool s_zone_key_ok;
static _Thread_local msgpack_zone *s_zone;

//  Key destructor, run on the exiting thread: free its zone, and forget it
//  in case a later destructor decodes again (it would get a new one).
static void
s_zone_free (void *zone)
{
    msgpack_zone_free ((msgpack_zone *) zone);
    if (s_zone == zone)
        s_zone = NULL;
}

static void
s_zone_key_new (void)
{
    s_zone_key_ok = pthread_key_create (&s_zone_key, s_zone_free) == 0;
}

//  This thread's zone, created on first use; NULL if out of memory.
static msgpack_zone *
s_zone_get (void)
{
    if (!s_zone) {
        pthread_once (&s_zone_once, s_zone_key_new);
        s_zone = msgpack_zone_new (MSGPACK_ZONE_CHUNK_SIZE);
        //  The key's destructor frees the zone when the thread exits.
        if (s_zone && s_zone_key_ok)
            pthread_setspecific (s_zone_key, s_zone);
    }
    return s_zone;
}


//  ---------------------------------------------------------------------
//  Header decoding

//  The entry among `keys` (a mask) for a wire name, or NULL. Only the few
//  keys the command carries are compared.
static const s_key_t *
s_key_find (uint64_t keys, const char *name, uint32_t len, int *id)
{
    while (keys) {
        int k = __builtin_ctzll (keys);
        keys &= keys - 1;
        if (s_keys [k].len == len && memcmp (s_keys [k].name, name, len) == 0) {
            *id = k;
            return &s_keys [k];
        }
    }
    return NULL;
}

//  Check a msgpack string as a C string for a buffer of `size` bytes.
//  Returns 0, DP_PROTO_ELIMIT (too long) or DP_PROTO_EHEADER (wrong type,
//  embedded NUL).
static int
s_check_str (const msgpack_object *v, size_t size, const char *cmd,
             const char *key, char *err, size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: '%s' must be a string", cmd, key);
    if (v->via.str.size > size - 1)
        return s_fail (err, errlen, DP_PROTO_ELIMIT,
                       "%s: '%s' longer than %zu bytes", cmd, key, size - 1);
    if (memchr (v->via.str.ptr, 0, v->via.str.size))
        return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: '%s' contains NUL", cmd, key);
    return 0;
}

//  READY.tasks: an array of 0..DP_MAX_TASKS non-empty names, copied into
//  self->tasks (each name and the array malloc'd).
static int
s_get_tasks (dp_msg_t *self, const msgpack_object *v, const char *cmd,
             char *err, size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_ARRAY)
        return s_fail (err, errlen, DP_PROTO_EHEADER,
                       "%s: 'tasks' must be an array of strings", cmd);
    if (v->via.array.size > DP_MAX_TASKS)
        return s_fail (err, errlen, DP_PROTO_ELIMIT,
                       "%s: more than %d tasks", cmd, DP_MAX_TASKS);
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        const msgpack_object *name = &v->via.array.ptr [i];
        int rc = s_check_str (name, DP_MAX_NAME + 1, cmd, "tasks", err, errlen);
        if (rc)
            return rc;
        if (name->via.str.size == 0)
            return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: empty task name", cmd);
    }
    self->tasks = (char **) calloc (v->via.array.size + 1, sizeof (char *));
    if (!self->tasks)
        return s_nomem (err, errlen);
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        const msgpack_object_str *name = &v->via.array.ptr [i].via.str;
        self->tasks [i] = (char *) malloc (name->size + 1);
        if (!self->tasks [i])
            return s_nomem (err, errlen);
        memcpy (self->tasks [i], name->ptr, name->size);
        self->tasks [i][name->size] = 0;
        self->ntasks = i + 1;
    }
    return 0;
}

//  BATCH.avoid: an array of 0..DP_MAX_AVOID node tags (unsigned 64-bit).
static int
s_get_avoid (dp_msg_t *self, const msgpack_object *v, const char *cmd,
             char *err, size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_ARRAY)
        return s_fail (err, errlen, DP_PROTO_EHEADER,
                       "%s: 'avoid' must be an array of unsigned integers", cmd);
    if (v->via.array.size > DP_MAX_AVOID)
        return s_fail (err, errlen, DP_PROTO_ELIMIT,
                       "%s: more than %d tags in 'avoid'", cmd, DP_MAX_AVOID);
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        if (v->via.array.ptr [i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return s_fail (err, errlen, DP_PROTO_EHEADER,
                           "%s: 'avoid' must be an array of unsigned integers", cmd);
        self->avoid [i] = v->via.array.ptr [i].via.u64;
    }
    self->navoid = v->via.array.size;
    return 0;
}

//  Store an integer value into its uint32 / uint64 / int32 member,
//  checking type and range. Returns 0 or DP_PROTO_EHEADER.
static int
s_get_int (char *field, const s_key_t *key, const msgpack_object *v,
           const char *cmd, char *err, size_t errlen)
{
    bool positive = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    bool negative = v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    if (key->type == T_I32) {
        if ((positive && v->via.u64 <= INT32_MAX)
        ||  (negative && v->via.i64 >= INT32_MIN)) {
            int32_t v32 = positive? (int32_t) v->via.u64: (int32_t) v->via.i64;
            memcpy (field, &v32, sizeof v32);
            return 0;
        }
        return s_fail (err, errlen, DP_PROTO_EHEADER,
                       "%s: '%s' must be a 32-bit integer", cmd, key->name);
    }
    if (!positive || (key->type == T_U32 && v->via.u64 > UINT32_MAX))
        return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: '%s' must be an unsigned %d-bit integer",
                       cmd, key->name, key->type == T_U32? 32: 64);
    if (key->type == T_U32) {
        uint32_t v32 = (uint32_t) v->via.u64;
        memcpy (field, &v32, sizeof v32);
    }
    else
        memcpy (field, &v->via.u64, sizeof (uint64_t));
    return 0;
}

//  Store one header value into its dp_msg_t member, checking its type and
//  range. Returns 0 or a DP_PROTO_E* code.
static int
s_get_field (dp_msg_t *self, const s_key_t *key, const msgpack_object *v,
             const char *cmd, char *err, size_t errlen)
{
    char *field = (char *) self + key->offset;
    if (key->type == T_STR) {
        int rc = s_check_str (v, key->size, cmd, key->name, err, errlen);
        if (rc == 0) {
            memcpy (field, v->via.str.ptr, v->via.str.size);
            field [v->via.str.size] = 0;
        }
        return rc;
    }
    if (key->type == T_TASKS)
        return s_get_tasks (self, v, cmd, err, errlen);
    if (key->type == T_AVOID)
        return s_get_avoid (self, v, cmd, err, errlen);
    if (key->type == T_BOOL) {
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: '%s' must be a boolean", cmd, key->name);
        bool value = v->via.boolean;
        memcpy (field, &value, sizeof value);
        return 0;
    }
    return s_get_int (field, key, v, cmd, err, errlen);
}

//  Fill self's header members from an unpacked map. Unknown keys and keys
//  the command does not carry are ignored; duplicates and non-string keys
//  are refused; a missing required key is named.
static int
s_get_fields (dp_msg_t *self, const s_cmd_t *info, const msgpack_object_map *map,
              char *err, size_t errlen)
{
    uint64_t seen = 0;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr [i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: header key is not a string", info->name);
        int id;
        const s_key_t *key = s_key_find (info->keys, k->via.str.ptr, k->via.str.size, &id);
        if (!key)
            continue;                   //  unknown here: forward compatibility
        if (seen & B (id))
            return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: duplicate '%s'", info->name, key->name);
        seen |= B (id);
        int rc = s_get_field (self, key, &map->ptr [i].val, info->name, err, errlen);
        if (rc)
            return rc;
    }
    uint64_t missing = info->required & ~seen;
    for (int k = 0; missing && k < K_COUNT; k++)
        if (missing & B (k))
            return s_fail (err, errlen, DP_PROTO_EHEADER, "%s: missing '%s'", info->name, s_keys [k].name);
    self->has_job = (seen & B (K_JOB)) != 0;
    return 0;
}

//  Do n items split into k equal chunks (k = 0 counts as 1)?
static bool
s_k_fits (uint32_t n, uint32_t k)
{
    return k <= 1 || (n >= k && n % k == 0);
}

//  Validate and decode the header frame into self.
static int
s_decode_header (dp_msg_t *self, const s_cmd_t *info, zmq_msg_t *frame,
                 char *err, size_t errlen)
{
    const uint8_t *data = (const uint8_t *) zmq_msg_data (frame);
    size_t size = zmq_msg_size (frame);
    if (size > DP_MAX_HEADER)
        return s_fail (err, errlen, DP_PROTO_ELIMIT, "%s: header of %zu bytes exceeds %d",
                       info->name, size, DP_MAX_HEADER);
    int rc = s_mp_validate (data, size, info->name, err, errlen);
    if (rc)
        return rc;
    msgpack_zone *zone = s_zone_get ();
    if (!zone)
        return s_nomem (err, errlen);
    msgpack_object obj;
    size_t off = 0;
    if (msgpack_unpack ((const char *) data, size, &off, zone, &obj) != MSGPACK_UNPACK_SUCCESS
    ||  obj.type != MSGPACK_OBJECT_MAP)
        rc = s_fail (err, errlen, DP_PROTO_EHEADER, "%s: header is not valid msgpack", info->name);
    else
        rc = s_get_fields (self, info, &obj.via.map, err, errlen);
    if (rc == 0 && s_task_required (self->cmd) && self->task [0] == 0)
        rc = s_fail (err, errlen, DP_PROTO_EHEADER, "%s: 'task' is empty", info->name);
    if (rc == 0 && info->payload && self->n > DP_MAX_BATCH)
        rc = s_fail (err, errlen, DP_PROTO_ELIMIT, "%s: n=%u exceeds %d",
                     info->name, self->n, DP_MAX_BATCH);
    if (rc == 0 && (info->keys & B (K_FD)) && self->fd != 1 && self->fd != 2)
        rc = s_fail (err, errlen, DP_PROTO_EHEADER, "%s: fd=%u is neither 1 nor 2",
                     info->name, self->fd);
    if (rc == 0 && self->k == 0)
        self->k = 1;                    //  0 or absent: one chunk
    if (rc == 0 && info->payload && (info->keys & B (K_K)) && !s_k_fits (self->n, self->k))
        rc = s_fail (err, errlen, DP_PROTO_EHEADER, "%s: n=%u items do not split into k=%u chunks",
                     info->name, self->n, self->k);
    msgpack_zone_clear (zone);
    return rc;
}


//  ---------------------------------------------------------------------
//  Payload validation

//  Sum of n little-endian uint32 lengths, in 64 bits (no wrap-around).
//  Lane accumulators over fixed-size blocks let gcc -O2 vectorise it.
static uint64_t
s_lens_sum (const uint8_t *lens, uint32_t n)
{
    uint64_t lane [8] = { 0 }, sum = 0;
    uint32_t i = 0;
#if defined (__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 8) {
        uint32_t block [8];
        memcpy (block, lens + 4 * (size_t) i, sizeof block);
        for (int j = 0; j < 8; j++)
            lane [j] += block [j];
    }
#endif
    for (int j = 0; j < 8; j++)
        sum += lane [j];
    for (; i < n; i++)
        sum += s_get_le32 (lens + 4 * (size_t) i);
    return sum;
}

//  Largest of n status bytes (lane maxima, for the same reason).
static uint8_t
s_status_max (const uint8_t *status, uint32_t n)
{
    uint8_t lane [16] = { 0 }, worst = 0;
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint8_t *block = status + i;
        for (int j = 0; j < 16; j++)
            lane [j] = block [j] > lane [j]? block [j]: lane [j];
    }
    for (int j = 0; j < 16; j++)
        worst = lane [j] > worst? lane [j]: worst;
    for (; i < n; i++)
        worst = status [i] > worst? status [i]: worst;
    return worst;
}

//  A REPORT body: at most DP_MAX_REPORT bytes, one msgpack map that passes
//  the same raw validation as a header (lengths within the frame, nesting
//  within DP_MAX_DEPTH, nothing after the map), so that dp_report_decode
//  unpacks only what is there.
static int
s_check_body (const s_cmd_t *info, zmq_msg_t *frame, char *err, size_t errlen)
{
    size_t size = zmq_msg_size (frame);
    if (size > DP_MAX_REPORT)
        return s_fail (err, errlen, DP_PROTO_ELIMIT, "%s: body of %zu bytes exceeds %u",
                       info->name, size, DP_MAX_REPORT);
    int rc = s_mp_validate ((const uint8_t *) zmq_msg_data (frame), size, info->name, err, errlen);
    return rc == DP_PROTO_EHEADER ? DP_PROTO_EPAYLOAD : rc;
}

//  Check lens / data / status frames against n: lens holds n uint32
//  lengths summing to data's size; status holds n bytes <= DP_ST_MAX.
static int
s_check_payload (const dp_msg_t *self, const s_cmd_t *info, zmq_msg_t *payload,
                 char *err, size_t errlen)
{
    if (info->payload == 1 && self->cmd != DP_CMD_REPORT) {
        //  PART, WPART: raw output bytes, bounded
        size_t size = zmq_msg_size (&payload [0]);
        if (size > DP_MAX_PART)
            return s_fail (err, errlen, DP_PROTO_ELIMIT, "%s: %zu bytes exceed %u",
                           info->name, size, DP_MAX_PART);
        return 0;
    }
    if (info->payload == 1)             //  REPORT: one msgpack body
        return s_check_body (info, &payload [0], err, errlen);
    size_t lens_size = zmq_msg_size (&payload [0]);
    if (lens_size != 4 * (size_t) self->n)
        return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "%s: lens frame is %zu bytes, n=%u needs %zu",
                       info->name, lens_size, self->n, 4 * (size_t) self->n);
    uint64_t sum = s_lens_sum ((const uint8_t *) zmq_msg_data (&payload [0]), self->n);
    if (sum != zmq_msg_size (&payload [1]))
        return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "%s: lengths sum to %llu, data frame is %zu bytes",
                       info->name, (unsigned long long) sum, zmq_msg_size (&payload [1]));
    if (info->payload < 3)
        return 0;
    if (zmq_msg_size (&payload [2]) != self->n)
        return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "%s: status frame is %zu bytes, n=%u",
                       info->name, zmq_msg_size (&payload [2]), self->n);
    const uint8_t *status = (const uint8_t *) zmq_msg_data (&payload [2]);
    if (s_status_max (status, self->n) <= DP_ST_MAX)
        return 0;
    uint32_t bad = 0;
    while (status [bad] <= DP_ST_MAX)
        bad++;
    return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "%s: item %u has status %u > %d",
                   info->name, bad, status [bad], DP_ST_MAX);
}

//  dp_msg_init for the hot path: the same empty message, but string
//  buffers are only emptied, not zeroed (a full memset of the ~1.5 KB
//  message was a quarter of the cost of decoding a small one). Relies on
//  every scalar header member preceding `task` in dp_msg_t.
_Static_assert (offsetof (dp_msg_t, task) < offsetof (dp_msg_t, host)
             && offsetof (dp_msg_t, host) < offsetof (dp_msg_t, text)
             && offsetof (dp_msg_t, text) < offsetof (dp_msg_t, tasks)
             && offsetof (dp_msg_t, has_job) < offsetof (dp_msg_t, task),
                "s_msg_clear: scalar members must precede task");
static void
s_msg_clear (dp_msg_t *self)
{
    memset (self, 0, offsetof (dp_msg_t, task));
    self->version = DP_PROTO_VERSION;
    self->task [0] = self->host [0] = self->text [0] = 0;
    self->tasks = NULL;
    self->ntasks = 0;
    self->nframes = 0;
}

//  Check the envelope: frame count and sizes, signature, version, command.
//  Sets self->version and self->cmd as soon as they are known.
static int
s_decode_envelope (dp_msg_t *self, zmq_msg_t *frames, size_t nframes,
                   const s_cmd_t **info, char *err, size_t errlen)
{
    if (nframes > DP_MAX_FRAMES)
        return s_fail (err, errlen, DP_PROTO_EFRAMES, "%zu frames, at most %d", nframes, DP_MAX_FRAMES);
    if (nframes < 1)
        return s_fail (err, errlen, DP_PROTO_ETRUNC, "empty message");
    for (size_t i = 0; i < nframes; i++)
        if (zmq_msg_size (&frames [i]) > DP_MAX_FRAME)
            return s_fail (err, errlen, DP_PROTO_ELIMIT, "frame %zu of %zu bytes exceeds %u",
                           i, zmq_msg_size (&frames [i]), DP_MAX_FRAME);
    const uint8_t *sig = (const uint8_t *) zmq_msg_data (&frames [0]);
    if (zmq_msg_size (&frames [0]) != 4 || memcmp (sig, DP_PROTO_SIGNATURE, 3) != 0)
        return s_fail (err, errlen, DP_PROTO_ESIG, "bad signature");
    self->version = sig [3];
    if (sig [3] != DP_PROTO_VERSION)
        return s_fail (err, errlen, DP_PROTO_EVERSION, "protocol version %u not supported (want %d)",
                       sig [3], DP_PROTO_VERSION);
    if (nframes < 2)
        return s_fail (err, errlen, DP_PROTO_ETRUNC, "no command frame");
    if (zmq_msg_size (&frames [1]) != 1)
        return s_fail (err, errlen, DP_PROTO_ECMD, "command frame of %zu bytes", zmq_msg_size (&frames [1]));
    self->cmd = *(const uint8_t *) zmq_msg_data (&frames [1]);
    *info = s_cmd_info (self->cmd);
    if (!*info)
        return s_fail (err, errlen, DP_PROTO_ECMD, "unknown command 0x%02x", self->cmd);
    size_t want = 3 + (size_t) (*info)->payload;
    if (nframes < want)
        return s_fail (err, errlen, DP_PROTO_ETRUNC, "%s: %zu frames, needs %zu",
                       (*info)->name, nframes, want);
    if (nframes > want)
        return s_fail (err, errlen, DP_PROTO_EFRAMES, "%s: %zu frames, needs %zu",
                       (*info)->name, nframes, want);
    return 0;
}

//  Decode a message from raw frames (see dp_proto.h). self is initialised
//  here (it must hold nothing); on failure it is reset, but keeps cmd and
//  version when they were read, for the error reply.
int
dp_msg_decode (dp_msg_t *self, zmq_msg_t *frames, size_t nframes,
               char *err, size_t errlen)
{
    s_msg_clear (self);
    if (err && errlen)
        err [0] = 0;
    for (size_t i = 0; i < nframes && i < DP_MAX_FRAMES; i++)
        self->bytes += zmq_msg_size (&frames [i]);
    const s_cmd_t *info = NULL;
    int rc = s_decode_envelope (self, frames, nframes, &info, err, errlen);
    if (rc == 0)
        rc = s_decode_header (self, info, &frames [2], err, errlen);
    if (rc == 0 && info->payload)
        rc = s_check_payload (self, info, frames + 3, err, errlen);
    if (rc) {
        dp_msg_reset (self);
        return rc;
    }
    for (int i = 0; i < info->payload; i++) {
        zmq_msg_init (&self->frame [i]);
        zmq_msg_move (&self->frame [i], &frames [3 + i]);
    }
    self->nframes = info->payload;
    return 0;
}


//  ---------------------------------------------------------------------
//  Encoding

typedef struct {
    uint8_t data [DP_MAX_HEADER];
    size_t size;
    bool overflow;
} s_hbuf_t;

//  msgpack_packer write callback into a bounded buffer.
static int
s_hbuf_write (void *data, const char *buf, size_t len)
{
    s_hbuf_t *self = (s_hbuf_t *) data;
    if (self->overflow || len > sizeof self->data - self->size) {
        self->overflow = true;
        return -1;
    }
    memcpy (self->data + self->size, buf, len);
    self->size += len;
    return 0;
}

//  Pack one key and its member's value.
static void
s_pack_field (msgpack_packer *pk, const s_key_t *key, const dp_msg_t *self)
{
    const char *field = (const char *) self + key->offset;
    uint32_t v32;
    uint64_t v64;
    bool flag;
    msgpack_pack_str_with_body (pk, key->name, key->len);
    switch (key->type) {
        case T_U32:  memcpy (&v32, field, 4); msgpack_pack_uint32 (pk, v32); break;
        case T_U64:  memcpy (&v64, field, 8); msgpack_pack_uint64 (pk, v64); break;
        case T_I32:  memcpy (&v32, field, 4); msgpack_pack_int32 (pk, (int32_t) v32); break;
        case T_BOOL:
            memcpy (&flag, field, sizeof flag);
            if (flag) msgpack_pack_true (pk); else msgpack_pack_false (pk);
            break;
        case T_STR:  msgpack_pack_str_with_body (pk, field, strlen (field)); break;
        case T_TASKS:
            msgpack_pack_array (pk, self->ntasks);
            for (uint32_t i = 0; i < self->ntasks; i++)
                msgpack_pack_str_with_body (pk, self->tasks [i], strlen (self->tasks [i]));
            break;
        case T_AVOID:
            msgpack_pack_array (pk, self->navoid);
            for (uint32_t i = 0; i < self->navoid; i++)
                msgpack_pack_uint64 (pk, self->avoid [i]);
            break;
    }
}

//  Check the members a command will encode: strings terminated and within
//  their limits, task names present, n within DP_MAX_BATCH.
static int
s_check_fields (const dp_msg_t *self, const s_cmd_t *info, uint64_t keys)
{
    for (int k = 0; k < K_COUNT; k++) {
        if (!(keys & B (k)) || s_keys [k].type != T_STR)
            continue;
        const char *field = (const char *) self + s_keys [k].offset;
        if (strnlen (field, s_keys [k].size) == s_keys [k].size)
            return DP_PROTO_ELIMIT;
    }
    if (s_task_required (self->cmd) && self->task [0] == 0)
        return DP_PROTO_EHEADER;
    if ((keys & B (K_FD)) && self->fd != 1 && self->fd != 2)
        return DP_PROTO_EHEADER;
    if (keys & B (K_TASKS)) {
        if (self->ntasks > DP_MAX_TASKS)
            return DP_PROTO_ELIMIT;
        for (uint32_t i = 0; i < self->ntasks; i++) {
            if (!self->tasks || !self->tasks [i] || !self->tasks [i][0])
                return DP_PROTO_EHEADER;
            if (strnlen (self->tasks [i], DP_MAX_NAME + 1) > DP_MAX_NAME)
                return DP_PROTO_ELIMIT;
        }
    }
    if (info->payload && self->n > DP_MAX_BATCH)
        return DP_PROTO_ELIMIT;
    if ((keys & B (K_AVOID)) && self->navoid > DP_MAX_AVOID)
        return DP_PROTO_ELIMIT;
    if (info->payload && (keys & B (K_K)) && !s_k_fits (self->n, self->k))
        return DP_PROTO_EPAYLOAD;
    return 0;
}

//  Check the payload frames a command will carry: count and sizes.
static int
s_check_frames (const dp_msg_t *self, const s_cmd_t *info)
{
    if (self->nframes != info->payload)
        return DP_PROTO_EPAYLOAD;
    for (int i = 0; i < self->nframes; i++)
        if (zmq_msg_size ((zmq_msg_t *) &self->frame [i]) > DP_MAX_FRAME)
            return DP_PROTO_ELIMIT;
    if (info->payload == 1
    &&  zmq_msg_size ((zmq_msg_t *) &self->frame [0])
        > (self->cmd == DP_CMD_REPORT ? DP_MAX_REPORT : DP_MAX_PART))
        return DP_PROTO_ELIMIT;
    if (info->payload >= 2
    &&  zmq_msg_size ((zmq_msg_t *) &self->frame [0]) != 4 * (size_t) self->n)
        return DP_PROTO_EPAYLOAD;
    if (info->payload == 3
    &&  zmq_msg_size ((zmq_msg_t *) &self->frame [2]) != self->n)
        return DP_PROTO_EPAYLOAD;
    return 0;
}

//  Build the three envelope frames. Returns 0, or DP_PROTO_ESOCKET (errno
//  ENOMEM) with no frame left open.
static int
s_envelope_frames (zmq_msg_t *frames, uint8_t cmd, const s_hbuf_t *header)
{
    if (zmq_msg_init_size (&frames [0], 4))
        return DP_PROTO_ESOCKET;
    memcpy (zmq_msg_data (&frames [0]), DP_PROTO_SIGNATURE, 3);
    ((uint8_t *) zmq_msg_data (&frames [0])) [3] = DP_PROTO_VERSION;
    if (zmq_msg_init_size (&frames [1], 1)) {
        zmq_msg_close (&frames [0]);
        return DP_PROTO_ESOCKET;
    }
    *(uint8_t *) zmq_msg_data (&frames [1]) = cmd;
    if (zmq_msg_init_size (&frames [2], header->size)) {
        zmq_msg_close (&frames [0]);
        zmq_msg_close (&frames [1]);
        return DP_PROTO_ESOCKET;
    }
    memcpy (zmq_msg_data (&frames [2]), header->data, header->size);
    return 0;
}

//  Encode a message into raw frames (see dp_proto.h). Nothing is changed
//  on failure: the payload frames stay in the message. Returns 0,
//  DP_PROTO_ECMD (unknown command), DP_PROTO_ELIMIT (over a limit, header
//  over DP_MAX_HEADER), DP_PROTO_EHEADER (missing task name),
//  DP_PROTO_EPAYLOAD (payload frames do not fit the command or n), or
//  DP_PROTO_ESOCKET (out of memory).
int
dp_msg_encode (dp_msg_t *self, zmq_msg_t *frames, size_t *nframes)
{
    const s_cmd_t *info = s_cmd_info (self->cmd);
    if (!info)
        return DP_PROTO_ECMD;
    uint64_t keys = info->keys;
    if (self->cmd == DP_CMD_ERROR && !self->has_job)
        keys &= ~B (K_JOB);
    if (self->navoid == 0)
        keys &= ~B (K_AVOID);       //  (as before the key existed: BATCH bytes unchanged)
    if (!self->parts)
        keys &= ~B (K_PARTS);           //  absent = false: JOB and CHUNK as before
    int rc = s_check_fields (self, info, keys);
    if (rc == 0)
        rc = s_check_frames (self, info);
    if (rc)
        return rc;

    s_hbuf_t header;
    header.size = 0;
    header.overflow = false;
    msgpack_packer pk;
    msgpack_packer_init (&pk, &header, s_hbuf_write);
    msgpack_pack_map (&pk, (size_t) __builtin_popcountll (keys));
    for (int k = 0; k < K_COUNT; k++)
        if (keys & B (k))
            s_pack_field (&pk, &s_keys [k], self);
    if (header.overflow)
        return DP_PROTO_ELIMIT;
    if (s_envelope_frames (frames, self->cmd, &header))
        return DP_PROTO_ESOCKET;
    for (int i = 0; i < self->nframes; i++) {
        zmq_msg_init (&frames [3 + i]);
        zmq_msg_move (&frames [3 + i], &self->frame [i]);
        zmq_msg_close (&self->frame [i]);
    }
    *nframes = 3 + (size_t) self->nframes;
    self->bytes = 0;
    for (size_t i = 0; i < *nframes; i++)
        self->bytes += zmq_msg_size (&frames [i]);
    self->nframes = 0;
    return 0;
}


//  ---------------------------------------------------------------------
//  Socket I/O

//  Receive the first frame (into `first`, which is initialised). Returns 0
//  or DP_PROTO_ESOCKET; EAGAIN leaves err empty.
static int
s_recv_first (zmq_msg_t *first, void *socket, int flags, char *err, size_t errlen)
{
    if (zmq_msg_recv (first, socket, flags) >= 0)
        return 0;
    int saved = errno;
    if (saved != EAGAIN)
        s_fail (err, errlen, 0, "recv: %s", zmq_strerror (saved));
    errno = saved;
    return DP_PROTO_ESOCKET;
}

//  Receive the rest of a multipart message into frames [*nframes ..],
//  keeping at most DP_MAX_FRAMES and counting the dropped ones in *extra.
//  Always drains: a message left half-read would corrupt the next one.
//  The frames after the first are already queued (a multipart message
//  arrives whole), so a blocking read is safe; EINTR is retried.
//  Returns 0, or -1 with errno set (the frames kept are still open).
static int
s_recv_rest (void *socket, zmq_msg_t *frames, size_t *nframes, size_t *extra)
{
    bool more = true;
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *frame = *nframes < DP_MAX_FRAMES? &frames [*nframes]: &scratch;
        zmq_msg_init (frame);
        int rc;
        do
            rc = zmq_msg_recv (frame, socket, 0);
        while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            int saved = errno;
            zmq_msg_close (frame);
            errno = saved;
            return -1;
        }
        more = zmq_msg_more (frame);
        if (frame == &scratch) {
            zmq_msg_close (frame);
            (*extra)++;
        }
        else
            (*nframes)++;
    }
    return 0;
}

//  Receive one message (see dp_proto.h). Frames beyond 3 + DP_MAX_PAYLOAD
//  are drained and dropped, and the message is refused with EFRAMES.
int
dp_msg_recv (dp_msg_t *self, void *socket, zmq_msg_t *routing_id,
             int flags, char *err, size_t errlen)
{
    zmq_msg_t frames [DP_MAX_FRAMES];
    size_t nframes = 0, extra = 0;
    s_msg_clear (self);
    if (err && errlen)
        err [0] = 0;
    zmq_msg_t *first = routing_id? routing_id: &frames [0];
    if (!routing_id)
        zmq_msg_init (first);
    int rc = s_recv_first (first, socket, flags, err, errlen);
    if (rc == 0) {
        nframes = routing_id? 0: 1;
        if (zmq_msg_more (first) && s_recv_rest (socket, frames, &nframes, &extra)) {
            int saved = errno;
            rc = s_fail (err, errlen, DP_PROTO_ESOCKET, "recv: %s", zmq_strerror (saved));
            errno = saved;
        }
        else
        if (extra)
            rc = s_fail (err, errlen, DP_PROTO_EFRAMES, "%zu frames, at most %d",
                         nframes + extra, DP_MAX_FRAMES);
        else
            rc = dp_msg_decode (self, frames, nframes, err, errlen);
    }
    else
    if (!routing_id)
        zmq_msg_close (first);
    int saved = errno;
    for (size_t i = 0; i < nframes; i++)
        zmq_msg_close (&frames [i]);
    errno = saved;
    return rc;
}

//  Send frames [from, n), all but the last with ZMQ_SNDMORE. On failure the
//  unsent frames are closed and DP_PROTO_ESOCKET returned with errno set.
static int
s_send_frames (zmq_msg_t *frames, size_t from, size_t n, void *socket)
{
    for (size_t i = from; i < n; i++) {
        int rc;
        do
            rc = zmq_msg_send (&frames [i], socket, i + 1 < n? ZMQ_SNDMORE: 0);
        while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            int saved = errno;
            for (size_t j = i; j < n; j++)
                zmq_msg_close (&frames [j]);
            errno = saved;
            return DP_PROTO_ESOCKET;
        }
    }
    return 0;
}

//  Send a message (see dp_proto.h). Blocking; a ROUTER with ROUTER_MANDATORY
//  may fail with EHOSTUNREACH on the routing id, and then nothing is sent.
//  An encode failure (ELIMIT etc.) is returned as is, errno EINVAL.
//  Payload frames are consumed in every case.
int
dp_msg_send (dp_msg_t *self, void *socket, const zmq_msg_t *routing_id)
{
    zmq_msg_t frames [1 + DP_MAX_FRAMES];
    size_t nframes = 0;
    int rc = dp_msg_encode (self, frames + 1, &nframes);
    if (rc) {
        for (int i = 0; i < self->nframes; i++)
            zmq_msg_close (&self->frame [i]);
        self->nframes = 0;
        if (rc != DP_PROTO_ESOCKET)
            errno = EINVAL;
        return rc;
    }
    if (!routing_id)
        return s_send_frames (frames, 1, 1 + nframes, socket);
    zmq_msg_init (&frames [0]);
    if (zmq_msg_copy (&frames [0], (zmq_msg_t *) routing_id)) {
        int saved = errno;
        for (size_t i = 0; i <= nframes; i++)
            zmq_msg_close (&frames [i]);
        errno = saved;
        return DP_PROTO_ESOCKET;
    }
    return s_send_frames (frames, 0, 1 + nframes, socket);
}


//  ---------------------------------------------------------------------
//  Messages, names

//  Initialise an empty message with a command. Never fails.
void
dp_msg_init (dp_msg_t *self, uint8_t cmd)
{
    memset (self, 0, sizeof *self);
    self->cmd = cmd;
    self->version = DP_PROTO_VERSION;
    self->k = 1;
}

//  Release payload frames and task names (each name and the array are
//  malloc'd and owned by the message).
void
dp_msg_reset (dp_msg_t *self)
{
    for (int i = 0; i < self->nframes; i++)
        zmq_msg_close (&self->frame [i]);
    self->nframes = 0;
    if (self->tasks) {
        for (uint32_t i = 0; i < self->ntasks; i++)
            free (self->tasks [i]);
        free (self->tasks);
    }
    self->tasks = NULL;
    self->ntasks = 0;
}

uint64_t
dp_node_tag (uint64_t token)
{
    if (!token)
        return 0;
    uint8_t bytes [24] = "dpool-node-tag:";
    for (int i = 0; i < 8; i++)
        bytes [16 + i] = (uint8_t) (token >> (8 * i));
    zdigest_t *digest = zdigest_new ();     //  (czmq: aborts when out of memory)
    zdigest_update (digest, bytes, sizeof bytes);
    const byte *hash = zdigest_data (digest);
    uint64_t tag = 0;
    for (int i = 0; i < 8; i++)
        tag = tag << 8 | hash [i];
    zdigest_destroy (&digest);
    return tag ? tag : 1;
}

const char *
dp_cmd_name (int cmd)
{
    const s_cmd_t *info = s_cmd_info (cmd);
    return info? info->name: "?";
}

const char *
dp_proto_strerror (int code)
{
    switch (code) {
        case 0:                  return "success";
        case DP_PROTO_ETRUNC:    return "message truncated (too few frames)";
        case DP_PROTO_ESIG:      return "bad signature";
        case DP_PROTO_EVERSION:  return "unsupported protocol version";
        case DP_PROTO_ECMD:      return "unknown command";
        case DP_PROTO_EHEADER:   return "invalid header";
        case DP_PROTO_ELIMIT:    return "limit exceeded";
        case DP_PROTO_EPAYLOAD:  return "payload inconsistent with header";
        case DP_PROTO_EFRAMES:   return "too many frames";
        case DP_PROTO_ESOCKET:   return "socket error";
        case DP_PROTO_ENOTREADY: return "peer unknown: send HELLO or READY";
        case DP_PROTO_EWINDOW:   return "client exceeded its window";
        case DP_PROTO_EJOB:      return "bad job";
    }
    return "unknown error";
}
