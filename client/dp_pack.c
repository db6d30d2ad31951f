/*  =========================================================================
    dp_pack - structured items and results: msgpack builders and readers

    Builders append to a msgpack-c sbuffer with msgpack-c's packer, so the
    encoding is msgpack-c's (shortest forms). Readers do not use msgpack-c's
    unpacker: it allocates a zone sized by the counts a value declares,
    which a hostile item would choose. The reader here is a cursor that
    parses one value header at a time, checks every declared length or
    count against the bytes actually left (each element takes at least one
    byte), and never allocates; skipping nested values is iterative, so
    deep nesting cannot exhaust the stack. Linked into libdpool, so task
    modules (which link libdpool) and client programs share it; a task's
    packed reply (dp_pack_reply) is the task runtime's (worker/dp_task_pack.c).
    =========================================================================
*/
#include "dpool_pack.h"
#include "dp_msgpack.h"

#include <msgpack.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dp_pack {
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    bool failed;
};

//  --------------------------------------------------------------------------
//  Building

dp_pack_t *
dp_pack_new (void)
{
    dp_pack_t *self = (dp_pack_t *) calloc (1, sizeof (dp_pack_t));
    if (!self)
        return NULL;
    msgpack_sbuffer_init (&self->sbuf);
    msgpack_packer_init (&self->pk, &self->sbuf, msgpack_sbuffer_write);
    return self;
}

void
dp_pack_destroy (dp_pack_t **self_p)
{
    dp_pack_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    msgpack_sbuffer_destroy (&self->sbuf);
    free (self);
    *self_p = NULL;
}

void
dp_pack_reset (dp_pack_t *self)
{
    if (self) {
        msgpack_sbuffer_clear (&self->sbuf);
        self->failed = false;
    }
}

const void *
dp_pack_data (const dp_pack_t *self, size_t *len)
{
    if (len)
        *len = self && !self->failed ? self->sbuf.size : 0;
    return self && self->sbuf.data ? self->sbuf.data : "";
}

//  Record a packer result: 0, or -1 once out of memory.
static int
s_ok (dp_pack_t *self, int rc)
{
    if (rc != 0)
        self->failed = true;
    return self->failed ? -1 : 0;
}

int dp_pack_nil (dp_pack_t *self) { return s_ok (self, msgpack_pack_nil (&self->pk)); }
int dp_pack_int (dp_pack_t *self, int64_t value) { return s_ok (self, msgpack_pack_int64 (&self->pk, value)); }
int dp_pack_uint (dp_pack_t *self, uint64_t value) { return s_ok (self, msgpack_pack_uint64 (&self->pk, value)); }
int dp_pack_double (dp_pack_t *self, double value) { return s_ok (self, msgpack_pack_double (&self->pk, value)); }
int dp_pack_array (dp_pack_t *self, uint32_t count) { return s_ok (self, msgpack_pack_array (&self->pk, count)); }
int dp_pack_map (dp_pack_t *self, uint32_t count) { return s_ok (self, msgpack_pack_map (&self->pk, count)); }

int
dp_pack_bool (dp_pack_t *self, bool value)
{
    return s_ok (self, value ? msgpack_pack_true (&self->pk) : msgpack_pack_false (&self->pk));
}

int
dp_pack_strn (dp_pack_t *self, const char *text, size_t len)
{
    if (len > UINT32_MAX)
        return s_ok (self, -1);
    if (s_ok (self, msgpack_pack_str (&self->pk, len)) == 0 && len)
        s_ok (self, msgpack_pack_str_body (&self->pk, text, len));
    return self->failed ? -1 : 0;
}

int
dp_pack_str (dp_pack_t *self, const char *text)
{
    return text ? dp_pack_strn (self, text, strlen (text)) : dp_pack_nil (self);
}

int
dp_pack_bin (dp_pack_t *self, const void *data, size_t len)
{
    if (len > UINT32_MAX)
        return s_ok (self, -1);
    if (s_ok (self, msgpack_pack_bin (&self->pk, len)) == 0 && len)
        s_ok (self, msgpack_pack_bin_body (&self->pk, data, len));
    return self->failed ? -1 : 0;
}

//  Values at the top level of a format, up to `close` (or the end when
//  close is 0): a bracketed group counts as one. -1 if unbalanced.
static int
s_count (const char *format, char close)
{
    int count = 0, depth = 0;
    for (const char *f = format; ; f++) {
        if (*f == 0)
            return close || depth ? -1 : count;
        if (depth == 0 && *f == close)
            return count;
        if (*f == ' ' || *f == ',')
            continue;
        if (*f == '[' || *f == '{') {
            if (depth++ == 0)
                count++;
        }
        else
        if (*f == ']' || *f == '}') {
            if (--depth < 0)
                return -1;
        }
        else
        if (depth == 0)
            count++;
    }
}

//  Pack the values of a format up to `close`; *format is left on it.
static int
s_pack_values (dp_pack_t *self, const char **format, va_list *args, char close)
{
    const char *f = *format;
    while (*f && *f != close) {
        char c = *f++;
        int rc = 0;
        switch (c) {
            case ' ': case ',': break;
            case 'i': rc = dp_pack_int (self, va_arg (*args, int)); break;
            case 'I': rc = dp_pack_int (self, va_arg (*args, int64_t)); break;
            case 'u': rc = dp_pack_uint (self, va_arg (*args, unsigned)); break;
            case 'U': rc = dp_pack_uint (self, va_arg (*args, uint64_t)); break;
            case 'd': rc = dp_pack_double (self, va_arg (*args, double)); break;
            case 'b': rc = dp_pack_bool (self, va_arg (*args, int) != 0); break;
            case 's': rc = dp_pack_str (self, va_arg (*args, const char *)); break;
            case 'n': rc = dp_pack_nil (self); break;
            case 'y': {
                const void *data = va_arg (*args, const void *);
                size_t len = va_arg (*args, size_t);
                rc = dp_pack_bin (self, data, len);
                break;
            }
            case '[':
            case '{': {
                char end = c == '[' ? ']' : '}';
                int count = s_count (f, end);
                if (count < 0 || (c == '{' && count % 2))
                    return -1;
                rc = c == '[' ? dp_pack_array (self, (uint32_t) count)
                              : dp_pack_map (self, (uint32_t) count / 2);
                if (rc == 0)
                    rc = s_pack_values (self, &f, args, end);
                if (rc == 0 && *f++ != end)
                    rc = -1;
                break;
            }
            default:
                return -1;
        }
        if (rc != 0)
            return -1;
    }
    *format = f;
    return 0;
}

int
dp_pack_vformat (dp_pack_t *self, const char *format, va_list args)
{
    if (!self || !format || self->failed || s_count (format, 0) < 0)
        return -1;
    size_t size = self->sbuf.size;
    va_list copy;
    va_copy (copy, args);
    const char *f = format;
    int rc = s_pack_values (self, &f, &copy, 0);
    va_end (copy);
    if (rc != 0 || *f) {
        //  a bad format: take back what it appended
        self->sbuf.size = size;
        return -1;
    }
    return 0;
}

int
dp_pack_format (dp_pack_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int rc = dp_pack_vformat (self, format, args);
    va_end (args);
    return rc;
}

//  --------------------------------------------------------------------------
//  Reading

//  The kinds of dp_msgpack's decoder (proto/dp_msgpack.h), which reads
//  every value's head.
typedef enum {
    K_NIL = DP_MP_NIL, K_BOOL = DP_MP_BOOL, K_UINT = DP_MP_UINT, K_INT = DP_MP_INT,
    K_FLOAT = DP_MP_FLOAT, K_STR = DP_MP_STR, K_BIN = DP_MP_BIN, K_ARRAY = DP_MP_ARRAY,
    K_MAP = DP_MP_MAP, K_EXT = DP_MP_EXT
} s_kind_t;

static const char *s_kind_names [] = {
    "nil", "a boolean", "an integer", "an integer", "a float", "a string", "binary data",
    "an array", "a map", "an extension value"
};

//  The header of the next value. Fixed-size values are read whole (head
//  covers them); str, bin and ext have `len` payload bytes after the head.
typedef struct {
    s_kind_t kind;
    size_t head;
    uint64_t len;
    uint32_t count;             //  array elements, or map pairs
    uint64_t u;                 //  K_UINT, K_INT (two's complement)
    double d;
    bool b;
} s_value_t;

static int
s_fail (dp_unpack_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

//  Record the first error, with the byte offset it happened at.
static int
s_fail (dp_unpack_t *self, const char *format, ...)
{
    if (!self->failed) {
        va_list args;
        va_start (args, format);
        int n = vsnprintf (self->error, sizeof self->error, format, args);
        va_end (args);
        if (n >= 0 && (size_t) n < sizeof self->error)
            snprintf (self->error + n, sizeof self->error - (size_t) n, " at byte %zu",
                      (size_t) (self->pos - self->start));
        self->failed = true;
    }
    return -1;
}

void
dp_unpack_init (dp_unpack_t *self, const void *data, size_t len)
{
    memset (self, 0, sizeof *self);
    self->start = self->pos = (const uint8_t *) (data ? data : "");
    self->end = self->pos + (data ? len : 0);
}

//  Parse the next value's header into *v without consuming it. Every
//  length and count is checked against the bytes left. Returns 0 or -1.
static int
s_peek (dp_unpack_t *self, s_value_t *v)
{
    if (self->failed)
        return -1;
    size_t left = (size_t) (self->end - self->pos);
    if (left == 0)
        return s_fail (self, "the data ends where a value was expected");
    dp_mp_head_t h;
    int rc = dp_mp_head (self->pos, left, &h);
    if (rc == DP_MP_BADBYTE)
        return s_fail (self, "invalid msgpack byte 0x%02x", self->pos [0]);
    memset (v, 0, sizeof *v);
    v->kind = (s_kind_t) h.kind;
    if (rc == DP_MP_CUT)
        return s_fail (self, "the data ends inside %s", s_kind_names [v->kind]);
    v->head = h.head;
    v->len = h.len;
    v->count = h.count > UINT32_MAX ? UINT32_MAX : (uint32_t) h.count;
    v->u = h.raw;
    v->b = h.raw != 0;
    if (v->kind == K_FLOAT) {
        if (h.head == 5) {
            uint32_t bits = (uint32_t) h.raw;
            float f;
            memcpy (&f, &bits, sizeof f);
            v->d = f;
        }
        else
            memcpy (&v->d, &h.raw, sizeof v->d);
    }
    left -= v->head;
    if (v->len > left)
        return s_fail (self, "%s of %llu bytes with only %zu left", s_kind_names [v->kind],
                       (unsigned long long) v->len, left);
    uint64_t elements = v->kind == K_MAP ? 2ull * v->count : v->count;
    if (elements > left)
        return s_fail (self, "%s of %u elements with only %zu bytes left",
                       s_kind_names [v->kind], v->count, left);
    return 0;
}

//  Consume the value just peeked (its head and payload, not its elements).
static void
s_consume (dp_unpack_t *self, const s_value_t *v)
{
    self->pos += v->head + v->len;
}

//  Peek a value of the expected kind(s) and consume it. Returns 0 or -1.
static int
s_expect (dp_unpack_t *self, s_value_t *v, s_kind_t kind, s_kind_t other, const char *what)
{
    if (s_peek (self, v) != 0)
        return -1;
    if (v->kind != kind && v->kind != other)
        return s_fail (self, "expected %s, found %s", what, s_kind_names [v->kind]);
    s_consume (self, v);
    return 0;
}

int
dp_unpack_nil (dp_unpack_t *self)
{
    s_value_t v;
    return s_expect (self, &v, K_NIL, K_NIL, "nil");
}

int
dp_unpack_bool (dp_unpack_t *self, bool *value)
{
    s_value_t v;
    if (s_expect (self, &v, K_BOOL, K_BOOL, "a boolean"))
        return -1;
    *value = v.b;
    return 0;
}

int
dp_unpack_int (dp_unpack_t *self, int64_t *value)
{
    s_value_t v;
    if (s_expect (self, &v, K_INT, K_UINT, "an integer"))
        return -1;
    if (v.kind == K_UINT && v.u > INT64_MAX) {
        self->pos -= v.head;
        return s_fail (self, "integer %llu out of range", (unsigned long long) v.u);
    }
    *value = (int64_t) v.u;
    return 0;
}

int
dp_unpack_uint (dp_unpack_t *self, uint64_t *value)
{
    s_value_t v;
    if (s_expect (self, &v, K_INT, K_UINT, "an integer"))
        return -1;
    if (v.kind == K_INT && (int64_t) v.u < 0) {
        self->pos -= v.head;
        return s_fail (self, "expected a non-negative integer, found %lld", (long long) v.u);
    }
    *value = v.u;
    return 0;
}

int
dp_unpack_double (dp_unpack_t *self, double *value)
{
    s_value_t v;
    if (s_peek (self, &v))
        return -1;
    if (v.kind == K_UINT)
        *value = (double) v.u;
    else
    if (v.kind == K_INT)
        *value = (double) (int64_t) v.u;
    else
    if (v.kind == K_FLOAT)
        *value = v.d;
    else
        return s_fail (self, "expected a number, found %s", s_kind_names [v.kind]);
    s_consume (self, &v);
    return 0;
}

int
dp_unpack_str (dp_unpack_t *self, const char **text, size_t *len)
{
    s_value_t v;
    if (s_expect (self, &v, K_STR, K_STR, "a string"))
        return -1;
    *text = (const char *) self->pos - v.len;
    *len = (size_t) v.len;
    return 0;
}

int
dp_unpack_bin (dp_unpack_t *self, const void **data, size_t *len)
{
    s_value_t v;
    if (s_expect (self, &v, K_BIN, K_STR, "binary data"))
        return -1;
    *data = self->pos - v.len;
    *len = (size_t) v.len;
    return 0;
}

int
dp_unpack_array (dp_unpack_t *self, uint32_t *count)
{
    s_value_t v;
    if (s_expect (self, &v, K_ARRAY, K_ARRAY, "an array"))
        return -1;
    *count = v.count;
    return 0;
}

int
dp_unpack_map (dp_unpack_t *self, uint32_t *count)
{
    s_value_t v;
    if (s_expect (self, &v, K_MAP, K_MAP, "a map"))
        return -1;
    *count = v.count;
    return 0;
}

//  Skip one value with everything nested in it, without recursion: the
//  values still to skip are counted (bounded by the bytes left).
int
dp_unpack_skip (dp_unpack_t *self)
{
    uint64_t pending = 1;
    while (pending) {
        s_value_t v;
        if (s_peek (self, &v))
            return -1;
        s_consume (self, &v);
        pending += (v.kind == K_MAP ? 2ull * v.count : v.kind == K_ARRAY ? v.count : 0) - 1;
    }
    return 0;
}

bool
dp_unpack_done (const dp_unpack_t *self)
{
    return self->pos == self->end;
}

const char *
dp_unpack_error (const dp_unpack_t *self)
{
    return self->error;
}

//  Read the values of a format up to `close`. `index` counts the values
//  read (letters, not brackets), for error messages: "value 2 ('I'): ...".
static int
s_unpack_values (dp_unpack_t *self, const char **format, va_list *args, char close, int *index)
{
    const char *f = *format;
    while (*f && *f != close) {
        char c = *f++;
        if (c == ' ' || c == ',')
            continue;
        bool leaf = c != '[' && c != '{';
        *index += leaf;
        int rc = 0;
        switch (c) {
            case 'i': case 'u': {
                int64_t value = 0;
                uint64_t uvalue = 0;
                const uint8_t *at = self->pos;
                rc = c == 'i' ? dp_unpack_int (self, &value) : dp_unpack_uint (self, &uvalue);
                if (rc == 0 && c == 'i' && (value < INT_MIN || value > INT_MAX)) {
                    self->pos = at;
                    rc = s_fail (self, "integer %lld out of the int range", (long long) value);
                }
                else
                if (rc == 0 && c == 'u' && uvalue > UINT_MAX) {
                    self->pos = at;
                    rc = s_fail (self, "integer %llu out of the unsigned range",
                                 (unsigned long long) uvalue);
                }
                else
                if (rc == 0 && c == 'i')
                    *va_arg (*args, int *) = (int) value;
                else
                if (rc == 0)
                    *va_arg (*args, unsigned *) = (unsigned) uvalue;
                break;
            }
            case 'I': rc = dp_unpack_int (self, va_arg (*args, int64_t *)); break;
            case 'U': rc = dp_unpack_uint (self, va_arg (*args, uint64_t *)); break;
            case 'd': rc = dp_unpack_double (self, va_arg (*args, double *)); break;
            case 'b': rc = dp_unpack_bool (self, va_arg (*args, bool *)); break;
            case 'n': rc = dp_unpack_nil (self); break;
            case '*': rc = dp_unpack_skip (self); break;
            case 's': {
                const char **text = va_arg (*args, const char **);
                size_t *len = va_arg (*args, size_t *);
                s_value_t v;
                rc = s_peek (self, &v);
                if (rc == 0 && v.kind == K_NIL) {
                    s_consume (self, &v);
                    *text = NULL;
                    *len = 0;
                }
                else
                if (rc == 0)
                    rc = dp_unpack_str (self, text, len);
                break;
            }
            case 'S': {
                char *buf = va_arg (*args, char *);
                size_t size = va_arg (*args, size_t);
                const char *text;
                size_t len;
                const uint8_t *at = self->pos;
                rc = dp_unpack_str (self, &text, &len);
                if (rc == 0 && len + 1 > size) {
                    self->pos = at;
                    rc = s_fail (self, "string of %zu bytes for a buffer of %zu", len, size);
                }
                else
                if (rc == 0) {
                    memcpy (buf, text, len);
                    buf [len] = 0;
                }
                break;
            }
            case 'y': {
                const void **data = va_arg (*args, const void **);
                rc = dp_unpack_bin (self, data, va_arg (*args, size_t *));
                break;
            }
            case '[':
            case '{': {
                char end = c == '[' ? ']' : '}';
                int want = s_count (f, end);
                uint32_t count = 0;
                if (want < 0 || (c == '{' && want % 2)) {
                    s_fail (self, "bad format");
                    return -1;
                }
                const uint8_t *at = self->pos;
                rc = c == '[' ? dp_unpack_array (self, &count) : dp_unpack_map (self, &count);
                if (rc == 0 && (uint64_t) count * (c == '{' ? 2 : 1) != (uint64_t) want) {
                    self->pos = at;
                    rc = s_fail (self, "expected %s of %d, found %u", c == '[' ? "an array" : "a map",
                                 c == '[' ? want : want / 2, count);
                }
                if (rc == 0)
                    rc = s_unpack_values (self, &f, args, end, index);
                if (rc == 0)
                    f++;
                break;
            }
            default:
                s_fail (self, "bad format letter '%c'", c);
                return -1;
        }
        if (rc != 0) {
            //  say which value of the format failed
            char error [sizeof self->error];
            snprintf (error, sizeof error, "%s", self->error);
            if (leaf && strncmp (error, "value ", 6))
                snprintf (self->error, sizeof self->error, "value %d ('%c'): %.120s", *index, c, error);
            return -1;
        }
    }
    *format = f;
    return 0;
}

int
dp_unpack_vformat (dp_unpack_t *self, const char *format, va_list args)
{
    if (!format || s_count (format, 0) < 0)
        return s_fail (self, "bad format");
    va_list copy;
    va_copy (copy, args);
    const char *f = format;
    int index = 0;
    int rc = s_unpack_values (self, &f, &copy, 0, &index);
    va_end (copy);
    if (rc == 0 && !dp_unpack_done (self))
        rc = s_fail (self, "%zu bytes left after the values", (size_t) (self->end - self->pos));
    return rc;
}

int
dp_unpack_format (dp_unpack_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int rc = dp_unpack_vformat (self, format, args);
    va_end (args);
    return rc;
}

int
dp_unpack_args (dp_unpack_t *self, const char *format, ...)
{
    char wrapped [256];
    if (!format || strlen (format) + 3 > sizeof wrapped)
        return s_fail (self, "bad format");
    snprintf (wrapped, sizeof wrapped, "[%s]", format);
    va_list args;
    va_start (args, format);
    int rc = dp_unpack_vformat (self, wrapped, args);
    va_end (args);
    return rc;
}

//  --------------------------------------------------------------------------
//  Starmap arguments: packed tuples in one buffer

struct dp_args {
    dp_pack_t *pack;            //  every item, back to back
    size_t *offset;
    size_t count, cap;
    dp_item_t *items;           //  rebuilt by dp_args_items
};

dp_args_t *
dp_args_new (void)
{
    dp_args_t *self = (dp_args_t *) calloc (1, sizeof (dp_args_t));
    if (self && !(self->pack = dp_pack_new ())) {
        free (self);
        return NULL;
    }
    return self;
}

void
dp_args_destroy (dp_args_t **self_p)
{
    dp_args_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    dp_pack_destroy (&self->pack);
    free (self->offset);
    free (self->items);
    free (self);
    *self_p = NULL;
}

//  Close the item that starts at `start`. Returns 0 or -1.
static int
s_args_commit (dp_args_t *self, size_t start)
{
    if (self->count + 2 > self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        size_t *offset = (size_t *) realloc (self->offset, cap * sizeof (size_t));
        if (!offset) {
            self->pack->sbuf.size = start;
            return -1;
        }
        self->offset = offset;
        self->cap = cap;
    }
    self->offset [self->count++] = start;
    self->offset [self->count] = self->pack->sbuf.size;
    return 0;
}

int
dp_args_add (dp_args_t *self, const char *format, ...)
{
    if (!self || !format || self->pack->failed)
        return -1;
    int count = s_count (format, 0);
    if (count < 0)
        return -1;
    size_t start = self->pack->sbuf.size;
    va_list args;
    va_start (args, format);
    int rc = dp_pack_array (self->pack, (uint32_t) count);
    if (rc == 0)
        rc = dp_pack_vformat (self->pack, format, args);
    va_end (args);
    if (rc != 0) {
        self->pack->sbuf.size = start;
        return -1;
    }
    return s_args_commit (self, start);
}

int
dp_args_add_pack (dp_args_t *self, const dp_pack_t *pack)
{
    size_t len;
    const void *data = dp_pack_data (pack, &len);
    if (!self || !pack || pack->failed || self->pack->failed)
        return -1;
    size_t start = self->pack->sbuf.size;
    if (msgpack_sbuffer_write (&self->pack->sbuf, (const char *) data, len) != 0)
        return -1;
    return s_args_commit (self, start);
}

size_t
dp_args_count (const dp_args_t *self)
{
    return self ? self->count : 0;
}

const dp_item_t *
dp_args_items (dp_args_t *self)
{
    if (!self)
        return NULL;
    dp_item_t *items = (dp_item_t *) realloc (self->items, (self->count + 1) * sizeof (dp_item_t));
    if (!items)
        return NULL;
    self->items = items;
    for (size_t i = 0; i < self->count; i++) {
        items [i].data = self->pack->sbuf.data + self->offset [i];
        items [i].len = self->offset [i + 1] - self->offset [i];
    }
    return items;
}

long
dp_starmap (dp_pool_t *pool, const char *task, dp_args_t *args, const dp_job_opts_t *opts,
            dp_results_t **results)
{
    const dp_item_t *items = dp_args_items (args);
    if (!items)                     //  no args (or out of memory): dp_map says
        return dp_map (pool, task, NULL, 1, opts, results);     //  "invalid arguments"
    return dp_map (pool, task, items, args->count, opts, results);
}
