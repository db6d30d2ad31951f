/*  Structured items (dpool_pack.h): builders and readers round-trip every
    type, readers refuse bad input with a clear error and never crash
    (truncations, hostile lengths and counts, deep nesting, random bytes),
    and starmap runs end to end on the example module's pow and weighted
    tasks. */
#include "testutil.h"
#include "dpool.h"
#include "dpool_pack.h"

#include <limits.h>
#include <string.h>

//  Every format letter, nested, there and back.
static void
s_test_round_trip (void)
{
    dp_pack_t *pack = dp_pack_new ();
    REQUIRE (pack);
    static const char blob [] = { 0, 1, 2, 3 };
    CHECK (dp_pack_format (pack, "[iIuUdbsyn{sisb}[[i]]]", -5, (int64_t) INT64_MIN, 7u,
                           (uint64_t) UINT64_MAX, 2.5, 1, "text", blob, sizeof blob,
                           "k1", 1, "k2", 0, 42) == 0);
    size_t len;
    const void *data = dp_pack_data (pack, &len);
    CHECK (len > 0);
    dp_unpack_t u;
    dp_unpack_init (&u, data, len);
    int i, k1, inner;
    int64_t big;
    unsigned small;
    uint64_t huge;
    double d;
    bool b, k2;
    const char *text, *key1, *key2;
    size_t text_len, key1_len, key2_len, blob_len;
    const void *bin;
    int rc = dp_unpack_format (&u, "[iIuUdbsyn{sisb}[[i]]]", &i, &big, &small, &huge, &d, &b,
                               &text, &text_len, &bin, &blob_len, &key1, &key1_len, &k1,
                               &key2, &key2_len, &k2, &inner);
    if (rc)
        fprintf (stderr, "round trip: %s\n", dp_unpack_error (&u));
    CHECK (rc == 0);
    CHECK (i == -5 && big == INT64_MIN && small == 7 && huge == UINT64_MAX && d == 2.5 && b);
    CHECK (text_len == 4 && memcmp (text, "text", 4) == 0);
    CHECK (blob_len == 4 && memcmp (bin, blob, 4) == 0);
    CHECK (key1_len == 2 && k1 == 1 && key2_len == 2 && !k2 && inner == 42);
    CHECK (dp_unpack_done (&u));
    CHECK (strcmp (dp_unpack_error (&u), "") == 0);

    //  integers at every width boundary, read back as int64
    static const int64_t values [] = {
        0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295LL, 4294967296LL, INT64_MAX,
        -1, -32, -33, -128, -129, -32768, -32769, -2147483648LL, -2147483649LL, INT64_MIN
    };
    for (size_t v = 0; v < sizeof values / sizeof values [0]; v++) {
        dp_pack_reset (pack);
        CHECK (dp_pack_int (pack, values [v]) == 0);
        data = dp_pack_data (pack, &len);
        int64_t got = 0;
        dp_unpack_init (&u, data, len);
        CHECK (dp_unpack_int (&u, &got) == 0 && got == values [v] && dp_unpack_done (&u));
    }
    //  a double field takes an integer; ranges are checked
    dp_pack_reset (pack);
    CHECK (dp_pack_format (pack, "[Ii]", (int64_t) 1 << 40, 3) == 0);
    data = dp_pack_data (pack, &len);
    dp_unpack_init (&u, data, len);
    CHECK (dp_unpack_args (&u, "ii", &i, &k1) == -1);
    CHECK (strstr (dp_unpack_error (&u), "out of the int range") != NULL);
    CHECK (strstr (dp_unpack_error (&u), "value 1 ('i')") != NULL);
    dp_unpack_init (&u, data, len);
    CHECK (dp_unpack_args (&u, "dd", &d, &d) == 0 && d == 3.0);
    //  a bad format appends nothing
    dp_pack_reset (pack);
    CHECK (dp_pack_format (pack, "[i", 1) == -1);
    CHECK (dp_pack_format (pack, "{i}", 1) == -1);
    CHECK (dp_pack_format (pack, "q", 1) == -1);
    dp_pack_data (pack, &len);
    CHECK (len == 0);
    dp_pack_destroy (&pack);
    CHECK (pack == NULL);
}

//  Wrong types, counts and sizes: errors that say what and where.
static void
s_test_errors (void)
{
    dp_pack_t *pack = dp_pack_new ();
    dp_pack_format (pack, "[sIi]", "word", (int64_t) 7, 9);
    size_t len;
    const void *data = dp_pack_data (pack, &len);
    dp_unpack_t u;
    int64_t a, b;
    dp_unpack_init (&u, data, len);
    CHECK (dp_unpack_args (&u, "II", &a, &b) == -1);
    printf ("error: %s\n", dp_unpack_error (&u));
    CHECK (strstr (dp_unpack_error (&u), "expected an array of 2, found 3") != NULL);
    const char *s;
    size_t slen;
    int c;
    dp_unpack_init (&u, data, len);
    CHECK (dp_unpack_args (&u, "IIi", &a, &b, &c) == -1);
    printf ("error: %s\n", dp_unpack_error (&u));
    CHECK (strstr (dp_unpack_error (&u), "value 1 ('I'): expected an integer, found a string")
           != NULL);
    CHECK (dp_unpack_int (&u, &a) == -1);       //  errors stick
    char word [4];
    dp_unpack_init (&u, data, len);
    CHECK (dp_unpack_args (&u, "SIi", word, sizeof word, &a, &c) == -1);
    CHECK (strstr (dp_unpack_error (&u), "for a buffer of 4") != NULL);
    dp_unpack_init (&u, data, len);
    CHECK (dp_unpack_args (&u, "sI", &s, &slen, &a) == -1);
    dp_unpack_init (&u, data, len - 1);         //  cut short
    CHECK (dp_unpack_args (&u, "sIi", &s, &slen, &a, &c) == -1);
    printf ("error: %s\n", dp_unpack_error (&u));
    //  trailing bytes after the values
    dp_pack_format (pack, "i", 1);
    data = dp_pack_data (pack, &len);
    dp_unpack_init (&u, data, len);
    CHECK (dp_unpack_args (&u, "sIi", &s, &slen, &a, &c) == -1);
    CHECK (strstr (dp_unpack_error (&u), "bytes left") != NULL);
    dp_pack_destroy (&pack);
}

//  Hostile input: declared sizes larger than the data, deep nesting, every
//  prefix of a valid value, random bytes. None of it may crash or hang.
static void
s_test_hostile (void)
{
    static const struct { const char *bytes; size_t len; } cases [] = {
        { "\xdd\xff\xff\xff\xff", 5 },                  //  array of 4 billion
        { "\xdf\xff\xff\xff\xff\x01\x01", 7 },          //  map of 4 billion
        { "\xdb\xff\xff\xff\xff" "abc", 8 },            //  str of 4 GB
        { "\xc6\x00\x00\x01\x00" "x", 6 },              //  bin of 256 bytes, 1 there
        { "\xc9\xff\xff\xff\xff\x01", 6 },              //  ext of 4 GB
        { "\xc1", 1 },                                  //  never used
        { "\xcf\x01\x02", 3 },                          //  uint64 cut off
        { "\xd8\x01", 2 },                              //  fixext16 cut off
        { "", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        dp_unpack_t u;
        dp_unpack_init (&u, cases [i].bytes, cases [i].len);
        CHECK (dp_unpack_skip (&u) == -1);
        CHECK (strlen (dp_unpack_error (&u)) > 0);
        uint32_t count;
        dp_unpack_init (&u, cases [i].bytes, cases [i].len);
        CHECK (dp_unpack_array (&u, &count) == -1);
    }
    //  200,000 nested arrays, then a valid value: skip is not recursive
    size_t depth = 200000;
    char *deep = malloc (depth + 1);
    memset (deep, 0x91, depth);                         //  fixarray of 1
    deep [depth] = 0x05;
    dp_unpack_t u;
    dp_unpack_init (&u, deep, depth + 1);
    CHECK (dp_unpack_skip (&u) == 0 && dp_unpack_done (&u));
    dp_unpack_init (&u, deep, depth);                   //  the innermost value missing
    CHECK (dp_unpack_skip (&u) == -1);
    free (deep);
    //  every prefix of a valid item fails cleanly
    dp_pack_t *pack = dp_pack_new ();
    dp_pack_format (pack, "[sd{si}y[UI]]", "hello", 1.5, "k", 70000, "bin", (size_t) 3,
                    (uint64_t) 1 << 60, (int64_t) -5);
    size_t len;
    const char *data = dp_pack_data (pack, &len);
    for (size_t cut = 0; cut < len; cut++) {
        dp_unpack_init (&u, data, cut);
        CHECK (dp_unpack_skip (&u) == -1);
    }
    dp_unpack_init (&u, data, len);
    CHECK (dp_unpack_skip (&u) == 0 && dp_unpack_done (&u));
    dp_pack_destroy (&pack);
    //  random bytes: read and skip until an error, never past the end
    uint8_t buf [64];
    srand (7);
    size_t errors = 0;
    for (int round = 0; round < 200000; round++) {
        size_t n = (size_t) (rand () % 64);
        for (size_t i = 0; i < n; i++)
            buf [i] = (uint8_t) rand ();
        dp_unpack_init (&u, buf, n);
        while (dp_unpack_skip (&u) == 0 && !dp_unpack_done (&u))
            ;
        errors += u.failed;
        CHECK (u.pos <= u.end);
        int64_t x;
        const char *s;
        size_t slen;
        dp_unpack_init (&u, buf, n);
        dp_unpack_args (&u, "Is*", &x, &s, &slen);
    }
    printf ("random bytes: %zu of 200000 refused\n", errors);
}

//  Starmap end to end on the example module.
static void
s_test_starmap (void)
{
    const char *modules [] = { tu_lib ("libdpool_example.so") };
    dp_pool_opts_t opts = { .workers = 2, .modules = modules, .nmodules = 1 };
    dp_pool_t *pool = dp_pool_open (&opts);
    if (!pool)
        fprintf (stderr, "dp_pool_open: %s\n", dp_strerror_last ());
    REQUIRE (pool);
    dp_args_t *args = dp_args_new ();
    REQUIRE (args);
    for (int i = 0; i < 40; i++)
        CHECK (dp_args_add (args, "ii", 2, i) == 0);
    CHECK (dp_args_add (args, "ii", 3, 41) == 0);       //  40: overflow
    CHECK (dp_args_add (args, "si", "two", 3) == 0);    //  41: wrong type
    CHECK (dp_args_add (args, "i", 2) == 0);            //  42: too few
    CHECK (dp_args_count (args) == 43);
    dp_results_t *res = NULL;
    long failed = dp_starmap (pool, "pow", args, NULL, &res);
    CHECK (failed == 3);
    REQUIRE (res);
    size_t wrong = 0;
    for (int i = 0; i < 40; i++) {
        size_t len;
        const void *data = dp_results_data (res, (size_t) i, &len);
        dp_unpack_t u;
        int64_t value = 0;
        dp_unpack_init (&u, data, len);
        if (dp_results_status (res, (size_t) i) != DP_OK
        ||  dp_unpack_format (&u, "I", &value) != 0 || value != (int64_t) 1 << i)
            wrong++;
    }
    CHECK (wrong == 0);
    CHECK (dp_results_status (res, 40) == DP_ERR_TASK);
    CHECK (strstr (dp_results_data (res, 40, NULL), "overflows") != NULL);
    CHECK (strstr (dp_results_data (res, 41, NULL), "expected an integer, found a string") != NULL);
    CHECK (strstr (dp_results_data (res, 42, NULL), "expected an array of 2, found 1") != NULL);
    printf ("pow failures: %s | %s | %s\n", (const char *) dp_results_data (res, 40, NULL),
            (const char *) dp_results_data (res, 41, NULL),
            (const char *) dp_results_data (res, 42, NULL));
    const char *reason;
    CHECK (dp_results_first_failure (res, &reason) == 40);
    dp_results_destroy (&res);
    dp_args_destroy (&args);
    CHECK (args == NULL);

    //  weighted: a string and a float in, a tuple out; through a future
    dp_pack_t *pack = dp_pack_new ();
    dp_pack_format (pack, "[sd]", "hello", 2.5);
    size_t len;
    const void *item = dp_pack_data (pack, &len);
    dp_future_t *f = dp_submit (pool, "weighted", item, len, NULL);
    REQUIRE (f);
    CHECK (dp_future_wait (f, 10000) == 0);
    CHECK (dp_future_status (f) == DP_OK);
    const void *data = dp_future_data (f, &len);
    dp_unpack_t u;
    char word [16];
    double score = 0;
    dp_unpack_init (&u, data, len);
    CHECK (dp_unpack_format (&u, "[Sd]", word, sizeof word, &score) == 0);
    CHECK (strcmp (word, "HELLO") == 0 && score == 12.5);
    dp_future_destroy (&f);
    //  an item that is not msgpack at all: a clear failure, the worker lives
    f = dp_submit (pool, "weighted", "\xc1garbage", 8, NULL);
    REQUIRE (f);
    CHECK (dp_future_wait (f, 10000) == 0);
    CHECK (dp_future_status (f) == DP_ERR_TASK);
    printf ("garbage: %s\n", (const char *) dp_future_data (f, NULL));
    CHECK (strstr (dp_future_data (f, NULL), "invalid msgpack byte 0xc1") != NULL);
    dp_future_destroy (&f);
    dp_pack_destroy (&pack);
    //  args as items for the other calls
    args = dp_args_new ();
    dp_args_add (args, "sd", "ab", 1.0);
    dp_args_add (args, "sd", "abc", 2.0);
    dp_iter_t *it = dp_imap_items (pool, "weighted", dp_args_items (args), dp_args_count (args), NULL);
    REQUIRE (it);
    dp_result_t r;
    double total = 0;
    while (dp_iter_next (it, &r, 10000) == 1) {
        dp_unpack_init (&u, r.data, r.len);
        CHECK (dp_unpack_format (&u, "[*d]", &score) == 0);
        total += score;
    }
    CHECK (total == 8.0);
    dp_iter_destroy (&it);
    dp_args_destroy (&args);
    dp_pool_close (&pool);
}

int
main (void)
{
    s_test_round_trip ();
    s_test_errors ();
    s_test_hostile ();
    s_test_starmap ();
    return tu_done ("test_api_pack");
}
