/*  fuzz_unpack - libFuzzer target: the msgpack helpers (include/dpool_pack.h,
    client/dp_pack.c): the reader that tasks run on their items and clients
    on their results, and the builder

    The first byte picks a mode, the rest is the data:
    0   the reader on the data: dp_unpack_skip against msgpack-c (when both
        take a value, they take the same bytes), then a run of typed reads
        chosen by the data's own bytes; every string or bin returned must
        lie inside the data
    1   formats with arguments (the ones the examples and tests use, and
        more) over the data; S into a small buffer
    2   format strings made of the letters that take no argument (n * [ ] {
        } and junk): unpack must refuse or take them; a format that packs
        must unpack the bytes it packed
    3   round trip: values built from the data are packed one by one and
        must read back the same  */
#include "dpool_pack.h"

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(cond) do { if (!(cond)) { \
    fprintf (stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
    abort (); } } while (0)

static volatile uint8_t s_sink;

//  A pointer the reader returned lies in [start, end), with its length.
static void
s_inside (const void *p, size_t len, const uint8_t *start, size_t size)
{
    if (len == 0)
        return;
    FUZZ_ASSERT ((const uint8_t *) p >= start && (const uint8_t *) p + len <= start + size);
    uint8_t x = 0;
    for (size_t i = 0; i < len; i++)
        x ^= ((const uint8_t *) p) [i];
    s_sink = x;
}

static void
s_error_ok (const dp_unpack_t *u)
{
    const char *e = dp_unpack_error (u);
    FUZZ_ASSERT (e && strnlen (e, sizeof u->error) < sizeof u->error);
}

static void
s_reader (const uint8_t *data, size_t size)
{
    dp_unpack_t u;
    dp_unpack_init (&u, data, size);
    int rc = dp_unpack_skip (&u);
    size_t taken = (size_t) (u.pos - u.start);
    FUZZ_ASSERT (taken <= size);
    //  msgpack-c allocates by declared counts: ask it only about what the
    //  reader took (the reader checks every count against the bytes left)
    if (rc == 0) {
        msgpack_unpacked result;
        msgpack_unpacked_init (&result);
        size_t off = 0;
        msgpack_unpack_return ret = msgpack_unpack_next (&result, (const char *) data, size, &off);
        if (ret == MSGPACK_UNPACK_SUCCESS)
            FUZZ_ASSERT (off == taken);
        msgpack_unpacked_destroy (&result);
    }
    else
        s_error_ok (&u);
    //  typed reads, each chosen by a byte of the data
    dp_unpack_init (&u, data, size);
    for (size_t i = 0; i < size && i < 64; i++) {
        const void *p;
        const char *text;
        size_t len;
        int64_t i64;
        uint64_t u64;
        uint32_t count;
        double d;
        bool b;
        switch (data [size - 1 - i] % 11) {
            case 0: dp_unpack_nil (&u); break;
            case 1: dp_unpack_bool (&u, &b); break;
            case 2: dp_unpack_int (&u, &i64); break;
            case 3: if (dp_unpack_uint (&u, &u64) == 0) FUZZ_ASSERT (1); break;
            case 4: dp_unpack_double (&u, &d); break;
            case 5: if (dp_unpack_str (&u, &text, &len) == 0) s_inside (text, len, data, size); break;
            case 6: if (dp_unpack_bin (&u, &p, &len) == 0) s_inside (p, len, data, size); break;
            case 7: if (dp_unpack_array (&u, &count) == 0) FUZZ_ASSERT (count <= size); break;
            case 8: if (dp_unpack_map (&u, &count) == 0) FUZZ_ASSERT (2ull * count <= size); break;
            default: dp_unpack_skip (&u); break;
        }
        FUZZ_ASSERT (u.pos >= u.start && u.pos <= u.end);
        if (u.failed) {
            s_error_ok (&u);
            FUZZ_ASSERT (dp_unpack_skip (&u) == -1);    //  the first error sticks
            break;
        }
    }
    (void) dp_unpack_done (&u);
}

static void
s_formats (const uint8_t *data, size_t size)
{
    dp_unpack_t u;
    int i1, i2;
    unsigned u1;
    int64_t I1, I2;
    uint64_t U1;
    double d1;
    bool b1;
    const char *s1, *s2;
    size_t l1, l2;
    const void *y1;
    char buf [8];
#define RUN(...) do { dp_unpack_init (&u, data, size); \
        if (dp_unpack_format (&u, __VA_ARGS__)) s_error_ok (&u); } while (0)
    RUN ("i", &i1);
    RUN ("I", &I1);
    RUN ("u", &u1);
    RUN ("U", &U1);
    RUN ("d", &d1);
    RUN ("b", &b1);
    RUN ("n");
    RUN ("*");
    if (dp_unpack_init (&u, data, size), dp_unpack_format (&u, "s", &s1, &l1) == 0)
        s_inside (s1, l1, data, size);
    if (dp_unpack_init (&u, data, size), dp_unpack_format (&u, "S", buf, sizeof buf) == 0)
        FUZZ_ASSERT (strnlen (buf, sizeof buf) < sizeof buf);
    if (dp_unpack_init (&u, data, size), dp_unpack_format (&u, "y", &y1, &l1) == 0)
        s_inside (y1, l1, data, size);
    RUN ("[ii]", &i1, &i2);
    RUN ("[Id]", &I1, &d1);
    if (dp_unpack_init (&u, data, size), dp_unpack_format (&u, "{sI}", &s1, &l1, &I1) == 0)
        s_inside (s1, l1, data, size);
    if (dp_unpack_init (&u, data, size), dp_unpack_format (&u, "[s[y*]{s*}]", &s1, &l1,
                                                           &y1, &l2, &s2, &l2) == 0)
        s_inside (s1, l1, data, size);
    RUN ("[]");
    RUN ("{}");
    RUN ("[[[[n]]]]");
    dp_unpack_init (&u, data, size);
    if (dp_unpack_args (&u, "is", &i1, &s1, &l1) == 0)
        s_inside (s1, l1, data, size);
    dp_unpack_init (&u, data, size);
    if (dp_unpack_args (&u, "IIb", &I1, &I2, &b1))
        s_error_ok (&u);
#undef RUN
}

static void
s_format_text (const uint8_t *data, size_t size)
{
    static const char letters [] = "n*[]{} ,xq";
    size_t flen = size < 64 ? size : 64;
    char format [65];
    for (size_t i = 0; i < flen; i++)
        format [i] = letters [data [i] % (sizeof letters - 1)];
    format [flen] = 0;
    const uint8_t *rest = data + flen;
    size_t rsize = size - flen;
    dp_unpack_t u;
    dp_unpack_init (&u, rest, rsize);
    if (dp_unpack_format (&u, format))
        s_error_ok (&u);
    dp_unpack_init (&u, rest, rsize);
    if (dp_unpack_args (&u, format))
        s_error_ok (&u);
    //  what packs must unpack (no '*' in a pack format: it is refused)
    dp_pack_t *pack = dp_pack_new ();
    FUZZ_ASSERT (pack);
    FUZZ_ASSERT (dp_pack_nil (pack) == 0);
    size_t before;
    dp_pack_data (pack, &before);
    if (dp_pack_format (pack, format) == 0) {
        size_t len;
        const uint8_t *bytes = (const uint8_t *) dp_pack_data (pack, &len);
        dp_unpack_init (&u, bytes, len);
        FUZZ_ASSERT (dp_unpack_nil (&u) == 0);
        int rc = dp_unpack_format (&u, format);
        if (rc)
            fprintf (stderr, "format '%s': %s\n", format, dp_unpack_error (&u));
        FUZZ_ASSERT (rc == 0);
    }
    else {
        size_t after;
        dp_pack_data (pack, &after);
        FUZZ_ASSERT (after == before);      //  a bad format appends nothing
    }
    dp_pack_destroy (&pack);
}

static uint64_t
s_take (const uint8_t **p, const uint8_t *end, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | (*p < end ? *(*p)++ : 0);
    return v;
}

static void
s_roundtrip (const uint8_t *data, size_t size)
{
    dp_pack_t *pack = dp_pack_new ();
    FUZZ_ASSERT (pack);
    //  pack, keeping the ops; then read them back in order
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        uint8_t op = *p++;
        uint64_t v;
        switch (op % 8) {
            case 0: FUZZ_ASSERT (dp_pack_nil (pack) == 0); break;
            case 1: FUZZ_ASSERT (dp_pack_bool (pack, op & 8) == 0); break;
            case 2: FUZZ_ASSERT (dp_pack_int (pack, (int64_t) s_take (&p, end, 8)) == 0); break;
            case 3: FUZZ_ASSERT (dp_pack_uint (pack, s_take (&p, end, 8)) == 0); break;
            case 4: v = s_take (&p, end, 8);
                    double d;
                    memcpy (&d, &v, sizeof d);
                    FUZZ_ASSERT (dp_pack_double (pack, d) == 0);
                    break;
            case 5: case 6: {
                size_t len = (size_t) s_take (&p, end, 1);
                if (len > (size_t) (end - p))
                    len = (size_t) (end - p);
                FUZZ_ASSERT ((op % 8 == 5 ? dp_pack_strn (pack, (const char *) p, len)
                                          : dp_pack_bin (pack, p, len)) == 0);
                p += len;
                break;
            }
            default: FUZZ_ASSERT ((op & 8 ? dp_pack_map (pack, (uint32_t) s_take (&p, end, 4))
                                          : dp_pack_array (pack, (uint32_t) s_take (&p, end, 4))) == 0);
                     break;
        }
    }
    size_t len;
    const uint8_t *bytes = (const uint8_t *) dp_pack_data (pack, &len);
    dp_unpack_t u;
    dp_unpack_init (&u, bytes, len);
    p = data;
    while (p < end) {
        uint8_t op = *p++;
        uint64_t v;
        switch (op % 8) {
            case 0: FUZZ_ASSERT (dp_unpack_nil (&u) == 0); break;
            case 1: {
                bool b;
                FUZZ_ASSERT (dp_unpack_bool (&u, &b) == 0 && b == ((op & 8) != 0));
                break;
            }
            case 2: {
                int64_t i;
                v = s_take (&p, end, 8);
                FUZZ_ASSERT (dp_unpack_int (&u, &i) == 0 && i == (int64_t) v);
                break;
            }
            case 3: {
                uint64_t w;
                v = s_take (&p, end, 8);
                FUZZ_ASSERT (dp_unpack_uint (&u, &w) == 0 && w == v);
                break;
            }
            case 4: {
                double d, want;
                v = s_take (&p, end, 8);
                memcpy (&want, &v, sizeof want);
                FUZZ_ASSERT (dp_unpack_double (&u, &d) == 0);
                FUZZ_ASSERT ((isnan (d) && isnan (want)) || memcmp (&d, &want, sizeof d) == 0);
                break;
            }
            case 5: case 6: {
                size_t want = (size_t) s_take (&p, end, 1), got;
                if (want > (size_t) (end - p))
                    want = (size_t) (end - p);
                const void *at;
                const char *text;
                if (op % 8 == 5) {
                    FUZZ_ASSERT (dp_unpack_str (&u, &text, &got) == 0);
                    at = text;
                }
                else
                    FUZZ_ASSERT (dp_unpack_bin (&u, &at, &got) == 0);
                FUZZ_ASSERT (got == want && (want == 0 || memcmp (at, p, want) == 0));
                s_inside (at, got, bytes, len);
                p += want;
                break;
            }
            default: {
                uint32_t count, want = (uint32_t) s_take (&p, end, 4);
                //  the reader refuses a count the bytes left cannot hold
                size_t left = (size_t) (u.end - u.pos);
                int rc = op & 8 ? dp_unpack_map (&u, &count) : dp_unpack_array (&u, &count);
                uint64_t elements = (op & 8 ? 2ull : 1ull) * want;
                if (rc != 0) {      //  (the header takes 1 to 5 bytes)
                    FUZZ_ASSERT (elements + 5 > left);
                    goto done;
                }
                FUZZ_ASSERT (count == want && elements + 1 <= left);
                break;
            }
        }
    }
    FUZZ_ASSERT (dp_unpack_done (&u));
done:
    dp_pack_destroy (&pack);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data [0] % 4) {
        case 0: s_reader (data + 1, size - 1); break;
        case 1: s_formats (data + 1, size - 1); break;
        case 2: s_format_text (data + 1, size - 1); break;
        default: s_roundtrip (data + 1, size - 1); break;
    }
    return 0;
}
