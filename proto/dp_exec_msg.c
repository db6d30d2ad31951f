/*  =========================================================================
    dp_exec_msg - codec of the built-in `exec` task's item and reply

    See dp_exec_msg.h for the format. Decoding is two passes: the raw
    validator of dp_proto.c walks the bytes (so no declared length or count
    can make msgpack_unpack allocate beyond the input's size), then
    msgpack_unpack builds the object tree in a zone, and each field is
    type-checked and copied out.
    =========================================================================
*/
#include "dp_exec_msg.h"
#include "dp_proto.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Format a reason into err and return -1.
static int __attribute__ ((format (printf, 3, 4)))
s_fail (char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list args;
        va_start (args, fmt);
        vsnprintf (err, errlen, fmt, args);
        va_end (args);
    }
    return -1;
}

//  Pack helpers: 0, or non-zero when a write failed.
static int
s_pack_key (msgpack_packer *pk, const char *key)
{
    size_t len = strlen (key);
    return msgpack_pack_str (pk, len) | msgpack_pack_str_body (pk, key, len);
}

static int
s_pack_str (msgpack_packer *pk, const char *key, const char *value)
{
    size_t len = value ? strlen (value) : 0;
    return s_pack_key (pk, key) | msgpack_pack_str (pk, len)
         | msgpack_pack_str_body (pk, value ? value : "", len);
}

static int
s_pack_bin (msgpack_packer *pk, const char *key, const void *data, size_t size)
{
    return s_pack_key (pk, key) | msgpack_pack_bin (pk, size)
         | msgpack_pack_bin_body (pk, data ? data : "", size);
}

//  Number of entries of a NULL-terminated array (NULL: 0).
static size_t
s_count (char **list)
{
    size_t n = 0;
    while (list && list [n])
        n++;
    return n;
}


bool
dp_exec_var_name_ok (const char *name)
{
    size_t len = name ? strlen (name) : 0;
    if (len == 0 || len > 64 || isdigit ((unsigned char) name [0]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum ((unsigned char) name [i]) && name [i] != '_')
            return false;
    return true;
}

//  ---------------------------------------------------------------------
//  Encoding

//  msgpack_packer writes through the sbuffer's callback, which returns
//  -1 when out of memory; the pack calls' results are or'ed.

int
dp_exec_item_encode (const dp_exec_item_t *self, msgpack_sbuffer *buf)
{
    size_t argc = s_count (self->argv), nenv = s_count (self->env);
    if ((self->argv != NULL) == (self->sh != NULL) || (self->argv && argc == 0)
    ||  self->timeout < 0 || isnan (self->timeout)
    ||  (self->slotvar && !dp_exec_var_name_ok (self->slotvar))
    ||  self->ntermseq > DP_EXEC_MAX_TERMSEQ)
        return -1;
    for (size_t i = 0; i < self->ntermseq; i++)
        if (self->termseq [2 * i] < 1 || self->termseq [2 * i] > 64
        ||  self->termseq [2 * i + 1] > 3600000)
            return -1;
    for (size_t i = 0; i < nenv; i++)
        if (!strchr (self->env [i], '=') || self->env [i][0] == '=')
            return -1;
    if (self->nslot_at && (!self->sh || self->nslot_at > DP_EXEC_MAX_SLOTAT))
        return -1;
    for (size_t i = 0; i < self->nslot_at; i++)
        if (self->slot_at [i] > strlen (self->sh) || (i && self->slot_at [i] < self->slot_at [i - 1]))
            return -1;
    size_t before = buf->size;
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    uint32_t n = 1 + (self->shell != NULL) + (self->cwd != NULL) + (self->env != NULL)
               + self->has_input + (self->timeout > 0) + self->has_seq + self->has_slot
               + self->has_slot_at + self->flush + (self->nice != 0) + (self->slotvar != NULL)
               + (self->ntermseq > 0);
    int rc = msgpack_pack_map (&pk, n);
    if (self->argv) {
        rc |= s_pack_key (&pk, "argv");
        rc |= msgpack_pack_array (&pk, argc);
        for (size_t i = 0; i < argc; i++) {
            size_t len = strlen (self->argv [i]);
            rc |= msgpack_pack_str (&pk, len);
            rc |= msgpack_pack_str_body (&pk, self->argv [i], len);
        }
    }
    else
        rc |= s_pack_str (&pk, "sh", self->sh);
    if (self->shell)
        rc |= s_pack_str (&pk, "shell", self->shell);
    if (self->cwd)
        rc |= s_pack_str (&pk, "cwd", self->cwd);
    if (self->env) {
        rc |= s_pack_key (&pk, "env");
        rc |= msgpack_pack_map (&pk, nenv);
        for (size_t i = 0; i < nenv; i++) {
            const char *eq = strchr (self->env [i], '=');
            size_t nlen = (size_t) (eq - self->env [i]), vlen = strlen (eq + 1);
            rc |= msgpack_pack_str (&pk, nlen);
            rc |= msgpack_pack_str_body (&pk, self->env [i], nlen);
            rc |= msgpack_pack_str (&pk, vlen);
            rc |= msgpack_pack_str_body (&pk, eq + 1, vlen);
        }
    }
    if (self->has_input)
        rc |= s_pack_bin (&pk, "stdin", self->input, self->input_size);
    if (self->timeout > 0) {
        rc |= s_pack_key (&pk, "timeout");
        rc |= msgpack_pack_double (&pk, self->timeout);
    }
    if (self->has_seq) {
        rc |= s_pack_key (&pk, "seq");
        rc |= msgpack_pack_uint64 (&pk, self->seq);
    }
    if (self->has_slot) {
        rc |= s_pack_key (&pk, "slot");
        rc |= msgpack_pack_uint64 (&pk, self->slot);
    }
    if (self->has_slot_at) {
        rc |= s_pack_key (&pk, "slotat");
        rc |= msgpack_pack_array (&pk, self->nslot_at);
        for (size_t i = 0; i < self->nslot_at; i++)
            rc |= msgpack_pack_uint64 (&pk, self->slot_at [i]);
    }
    if (self->flush) {
        rc |= s_pack_key (&pk, "flush");
        rc |= msgpack_pack_true (&pk);
    }
    if (self->nice) {
        rc |= s_pack_key (&pk, "nice");
        rc |= msgpack_pack_int (&pk, self->nice);
    }
    if (self->slotvar)
        rc |= s_pack_str (&pk, "slotvar", self->slotvar);
    if (self->ntermseq) {
        rc |= s_pack_key (&pk, "termseq");
        rc |= msgpack_pack_array (&pk, (uint32_t) (2 * self->ntermseq));
        for (size_t i = 0; i < 2 * self->ntermseq; i++)
            rc |= msgpack_pack_uint32 (&pk, self->termseq [i]);
    }
    //  A failed write may have left part of the map: take it back
    if (rc) {
        buf->size = before;
        return -1;
    }
    return 0;
}

int
dp_exec_reply_pack (const dp_exec_reply_t *self, msgpack_packer *pk)
{
    int rc = msgpack_pack_map (pk, self->parts ? 11 : 10);
    rc |= s_pack_key (pk, "status");
    rc |= msgpack_pack_int (pk, self->status);
    rc |= s_pack_key (pk, "signal");
    rc |= msgpack_pack_int (pk, self->signal);
    rc |= s_pack_key (pk, "timedout");
    rc |= self->timedout ? msgpack_pack_true (pk) : msgpack_pack_false (pk);
    rc |= s_pack_bin (pk, "out", self->out, self->out_size);
    rc |= s_pack_bin (pk, "err", self->err, self->err_size);
    rc |= s_pack_key (pk, "start");
    rc |= msgpack_pack_double (pk, self->start);
    rc |= s_pack_key (pk, "runtime");
    rc |= msgpack_pack_double (pk, self->runtime);
    rc |= s_pack_str (pk, "host", self->host);
    rc |= s_pack_key (pk, "slot");
    rc |= msgpack_pack_uint64 (pk, self->slot);
    rc |= s_pack_key (pk, "node");
    rc |= msgpack_pack_uint64 (pk, self->node);
    if (self->parts) {
        rc |= s_pack_key (pk, "parts");
        rc |= msgpack_pack_uint64 (pk, self->parts);
    }
    return rc ? -1 : 0;
}

int
dp_exec_reply_encode (const dp_exec_reply_t *self, msgpack_sbuffer *buf)
{
    size_t before = buf->size;
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    if (dp_exec_reply_pack (self, &pk)) {
        buf->size = before;
        return -1;
    }
    return 0;
}


//  ---------------------------------------------------------------------
//  Decoding

//  Is the map key `k` the string `name`?
static bool
s_key_is (const msgpack_object_str *k, const char *name)
{
    return k->size == strlen (name) && memcmp (k->ptr, name, k->size) == 0;
}

//  Copy a msgpack str into a new C string. NULL with a reason if it is not
//  a str, holds a NUL byte (`what` names it) or memory ran out.
static char *
s_get_str (const msgpack_object *v, const char *what, char *err, size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_STR) {
        s_fail (err, errlen, "%s: not a string", what);
        return NULL;
    }
    if (v->via.str.size && memchr (v->via.str.ptr, 0, v->via.str.size)) {
        s_fail (err, errlen, "%s: string holds a NUL byte", what);
        return NULL;
    }
    char *copy = strndup (v->via.str.ptr ? v->via.str.ptr : "", v->via.str.size);
    if (!copy)
        s_fail (err, errlen, "%s: out of memory", what);
    return copy;
}

//  Copy a msgpack bin (or str) into *data / *size (a 1-byte buffer when
//  empty, so a present field is never NULL).
static int
s_get_bin (const msgpack_object *v, const char *what, uint8_t **data, size_t *size,
           char *err, size_t errlen)
{
    const char *ptr;
    size_t len;
    if (v->type == MSGPACK_OBJECT_BIN)
        ptr = v->via.bin.ptr, len = v->via.bin.size;
    else
    if (v->type == MSGPACK_OBJECT_STR)
        ptr = v->via.str.ptr, len = v->via.str.size;
    else
        return s_fail (err, errlen, "%s: not binary", what);
    *data = malloc (len ? len : 1);
    if (!*data)
        return s_fail (err, errlen, "%s: out of memory", what);
    if (len)
        memcpy (*data, ptr, len);
    *size = len;
    return 0;
}

//  A number as a double (float or integer), finite.
static int
s_get_double (const msgpack_object *v, const char *what, double *out,
              char *err, size_t errlen)
{
    if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
        *out = v->via.f64;
    else
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *out = (double) v->via.u64;
    else
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = (double) v->via.i64;
    else
        return s_fail (err, errlen, "%s: not a number", what);
    if (!isfinite (*out))
        return s_fail (err, errlen, "%s: not a finite number", what);
    return 0;
}

static int
s_get_uint (const msgpack_object *v, const char *what, uint64_t *out,
            char *err, size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return s_fail (err, errlen, "%s: not an unsigned integer", what);
    *out = v->via.u64;
    return 0;
}

//  An int in [lo, hi].
static int
s_get_int (const msgpack_object *v, const char *what, int lo, int hi, int *out,
           char *err, size_t errlen)
{
    int64_t value;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        value = v->via.u64 > INT64_MAX ? INT64_MAX : (int64_t) v->via.u64;
    else
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        value = v->via.i64;
    else
        return s_fail (err, errlen, "%s: not an integer", what);
    if (value < lo || value > hi)
        return s_fail (err, errlen, "%s: %lld out of range %d..%d", what,
                       (long long) value, lo, hi);
    *out = (int) value;
    return 0;
}

//  A NULL-terminated list of n + 1 pointers, zeroed.
static char **
s_list_new (size_t n, char *err, size_t errlen)
{
    char **list = calloc (n + 1, sizeof *list);
    if (!list)
        s_fail (err, errlen, "out of memory");
    return list;
}

static void
s_list_free (char **list)
{
    for (size_t i = 0; list && list [i]; i++)
        free (list [i]);
    free (list);
}

static int
s_get_argv (const msgpack_object *v, dp_exec_item_t *self, char *err, size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size == 0)
        return s_fail (err, errlen, "exec item: argv: not a non-empty array");
    size_t n = v->via.array.size;
    if (!(self->argv = s_list_new (n, err, errlen)))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!(self->argv [i] = s_get_str (&v->via.array.ptr [i], "exec item: argv", err, errlen)))
            return -1;
    return 0;
}

static int
s_get_env (const msgpack_object *v, dp_exec_item_t *self, char *err, size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_MAP)
        return s_fail (err, errlen, "exec item: env: not a map");
    size_t n = v->via.map.size;
    if (!(self->env = s_list_new (n, err, errlen)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object_kv *kv = &v->via.map.ptr [i];
        char *name = s_get_str (&kv->key, "exec item: env name", err, errlen);
        if (!name)
            return -1;
        char *value = s_get_str (&kv->val, "exec item: env value", err, errlen);
        if (value && (!*name || strchr (name, '=')))
            s_fail (err, errlen, "exec item: env name '%.64s' is empty or holds '='", name);
        else
        if (value && asprintf (&self->env [i], "%s=%s", name, value) < 0) {
            self->env [i] = NULL;
            s_fail (err, errlen, "exec item: env: out of memory");
        }
        free (name);
        free (value);
        if (!self->env [i])
            return -1;
    }
    return 0;
}

//  "slotat": offsets, checked against "sh" once the whole item is read
static int
s_get_slot_at (const msgpack_object *v, dp_exec_item_t *self, char *err, size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_ARRAY)
        return s_fail (err, errlen, "exec item: slotat: not an array");
    size_t n = v->via.array.size;
    if (n > DP_EXEC_MAX_SLOTAT)
        return s_fail (err, errlen, "exec item: slotat: more than %d offsets", DP_EXEC_MAX_SLOTAT);
    self->has_slot_at = true;
    self->slot_at = (size_t *) malloc ((n ? n : 1) * sizeof (size_t));
    if (!self->slot_at)
        return s_fail (err, errlen, "exec item: slotat: out of memory");
    for (size_t i = 0; i < n; i++) {
        uint64_t at = 0;
        if (s_get_uint (&v->via.array.ptr [i], "exec item: slotat", &at, err, errlen))
            return -1;
        if (at > SIZE_MAX || (i && at < self->slot_at [i - 1]))
            return s_fail (err, errlen, "exec item: slotat: offsets not ascending");
        self->slot_at [self->nslot_at++] = (size_t) at;
    }
    return 0;
}

//  "termseq": SIG, MS pairs
static int
s_get_termseq (const msgpack_object *v, dp_exec_item_t *self, char *err, size_t errlen)
{
    if (v->type != MSGPACK_OBJECT_ARRAY)
        return s_fail (err, errlen, "exec item: termseq: not an array");
    size_t n = v->via.array.size;
    if (n == 0 || n % 2 || n > 2 * DP_EXEC_MAX_TERMSEQ)
        return s_fail (err, errlen, "exec item: termseq: not 1..%d signal and wait pairs",
                       DP_EXEC_MAX_TERMSEQ);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = 0;
        if (s_get_uint (&v->via.array.ptr [i], "exec item: termseq", &x, err, errlen))
            return -1;
        if (i % 2 == 0 ? (x < 1 || x > 64) : x > 3600000)
            return s_fail (err, errlen, "exec item: termseq: %s out of range",
                           i % 2 == 0 ? "a signal" : "a wait");
        self->termseq [i] = (uint32_t) x;
    }
    self->ntermseq = n / 2;
    return 0;
}

//  Unpack a checked map into *obj; `result` owns the zone. Returns 0 or -1.
static int
s_unpack (const void *data, size_t size, const char *what, msgpack_unpacked *result,
          char *err, size_t errlen)
{
    msgpack_unpacked_init (result);
    if (dp_proto_check_map (data, size, what, err, errlen))
        return -1;
    size_t off = 0;
    if (msgpack_unpack_next (result, (const char *) data, size, &off) != MSGPACK_UNPACK_SUCCESS
    ||  result->data.type != MSGPACK_OBJECT_MAP)
        return s_fail (err, errlen, "%s: cannot unpack (out of memory?)", what);
    return 0;
}

//  A key seen twice: the bit of key number `k` in *seen.
static int
s_seen (unsigned *seen, int k, const char *what, const char *key, char *err, size_t errlen)
{
    if (*seen & (1u << k))
        return s_fail (err, errlen, "%s: key '%s' given twice", what, key);
    *seen |= 1u << k;
    return 0;
}

static int
s_item_field (dp_exec_item_t *self, const msgpack_object_kv *kv, unsigned *seen,
              char *err, size_t errlen)
{
    static const char *keys [] = { "argv", "sh", "shell", "cwd", "env", "stdin",
                                   "timeout", "seq", "slot", "slotat", "flush", "nice", "slotvar", "termseq" };
    const char *what = "exec item";
    if (kv->key.type != MSGPACK_OBJECT_STR)
        return s_fail (err, errlen, "%s: a key is not a string", what);
    int k = 0;
    while (k < 14 && !s_key_is (&kv->key.via.str, keys [k]))
        k++;
    if (k == 14)
        return 0;                       //  unknown: ignored
    if (s_seen (seen, k, what, keys [k], err, errlen))
        return -1;
    const msgpack_object *v = &kv->val;
    switch (k) {
        case 0: return s_get_argv (v, self, err, errlen);
        case 1: return (self->sh = s_get_str (v, "exec item: sh", err, errlen)) ? 0 : -1;
        case 2: return (self->shell = s_get_str (v, "exec item: shell", err, errlen)) ? 0 : -1;
        case 3: return (self->cwd = s_get_str (v, "exec item: cwd", err, errlen)) ? 0 : -1;
        case 4: return s_get_env (v, self, err, errlen);
        case 5:
            self->has_input = true;
            return s_get_bin (v, "exec item: stdin", &self->input, &self->input_size, err, errlen);
        case 6:
            if (s_get_double (v, "exec item: timeout", &self->timeout, err, errlen))
                return -1;
            if (self->timeout < 0)
                return s_fail (err, errlen, "exec item: timeout: negative");
            return 0;
        case 7:
            self->has_seq = true;
            return s_get_uint (v, "exec item: seq", &self->seq, err, errlen);
        case 8:
            self->has_slot = true;
            return s_get_uint (v, "exec item: slot", &self->slot, err, errlen);
        case 10:
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                return s_fail (err, errlen, "exec item: flush: not a bool");
            self->flush = v->via.boolean;
            return 0;
        case 11:
            return s_get_int (v, "exec item: nice", -20, 19, &self->nice, err, errlen);
        case 12:
            if (!(self->slotvar = s_get_str (v, "exec item: slotvar", err, errlen)))
                return -1;
            if (!dp_exec_var_name_ok (self->slotvar))
                return s_fail (err, errlen, "exec item: slotvar: not a variable name");
            return 0;
        case 13:
            return s_get_termseq (v, self, err, errlen);
        default:
            return s_get_slot_at (v, self, err, errlen);
    }
}

int
dp_exec_item_decode (const void *data, size_t size, dp_exec_item_t *self,
                     char *err, size_t errlen)
{
    memset (self, 0, sizeof *self);
    msgpack_unpacked result;
    int rc = s_unpack (data, size, "exec item", &result, err, errlen);
    unsigned seen = 0;
    for (uint32_t i = 0; rc == 0 && i < result.data.via.map.size; i++)
        rc = s_item_field (self, &result.data.via.map.ptr [i], &seen, err, errlen);
    if (rc == 0 && (self->argv != NULL) == (self->sh != NULL))
        rc = s_fail (err, errlen, "exec item: needs exactly one of 'argv' and 'sh'");
    if (rc == 0 && self->nslot_at
    &&  (!self->sh || self->slot_at [self->nslot_at - 1] > strlen (self->sh)))
        rc = s_fail (err, errlen, "exec item: slotat: an offset beyond 'sh'");
    msgpack_unpacked_destroy (&result);
    if (rc)
        dp_exec_item_destroy (self);
    return rc;
}

void
dp_exec_item_destroy (dp_exec_item_t *self)
{
    if (!self)
        return;
    s_list_free (self->argv);
    s_list_free (self->env);
    free (self->sh);
    free (self->shell);
    free (self->cwd);
    free (self->slotvar);
    free (self->input);
    free (self->slot_at);
    memset (self, 0, sizeof *self);
}

static int
s_reply_field (dp_exec_reply_t *self, const msgpack_object_kv *kv, unsigned *seen,
               char *err, size_t errlen)
{
    static const char *keys [] = { "status", "signal", "timedout", "out", "err",
                                   "start", "runtime", "host", "parts", "node", "slot" };
    const char *what = "exec reply";
    if (kv->key.type != MSGPACK_OBJECT_STR)
        return s_fail (err, errlen, "%s: a key is not a string", what);
    int k = 0;
    while (k < 11 && !s_key_is (&kv->key.via.str, keys [k]))
        k++;
    if (k == 11)
        return 0;
    if (s_seen (seen, k, what, keys [k], err, errlen))
        return -1;
    const msgpack_object *v = &kv->val;
    switch (k) {
        case 9: return s_get_uint (v, "exec reply: node", &self->node, err, errlen);
        case 10: return s_get_uint (v, "exec reply: slot", &self->slot, err, errlen);
        case 0: return s_get_int (v, "exec reply: status", 0, 255 + 128, &self->status, err, errlen);
        case 1: return s_get_int (v, "exec reply: signal", 0, 255, &self->signal, err, errlen);
        case 2:
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                return s_fail (err, errlen, "exec reply: timedout: not a boolean");
            self->timedout = v->via.boolean;
            return 0;
        case 3: return s_get_bin (v, "exec reply: out", &self->out, &self->out_size, err, errlen);
        case 4: return s_get_bin (v, "exec reply: err", &self->err, &self->err_size, err, errlen);
        case 5: return s_get_double (v, "exec reply: start", &self->start, err, errlen);
        case 6: return s_get_double (v, "exec reply: runtime", &self->runtime, err, errlen);
        case 8: return s_get_uint (v, "exec reply: parts", &self->parts, err, errlen);
        default: return (self->host = s_get_str (v, "exec reply: host", err, errlen)) ? 0 : -1;
    }
}

int
dp_exec_reply_decode (const void *data, size_t size, dp_exec_reply_t *self,
                      char *err, size_t errlen)
{
    memset (self, 0, sizeof *self);
    msgpack_unpacked result;
    int rc = s_unpack (data, size, "exec reply", &result, err, errlen);
    unsigned seen = 0;
    for (uint32_t i = 0; rc == 0 && i < result.data.via.map.size; i++)
        rc = s_reply_field (self, &result.data.via.map.ptr [i], &seen, err, errlen);
    if (rc == 0 && !(seen & 1))
        rc = s_fail (err, errlen, "exec reply: no 'status'");
    msgpack_unpacked_destroy (&result);
    if (rc)
        dp_exec_reply_destroy (self);
    return rc;
}

void
dp_exec_reply_destroy (dp_exec_reply_t *self)
{
    if (!self)
        return;
    free (self->out);
    free (self->err);
    free (self->host);
    memset (self, 0, sizeof *self);
}
