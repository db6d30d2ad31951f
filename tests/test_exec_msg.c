/*  test_exec_msg - codec of the exec task's item and reply (dp_exec_msg)

    Round trips of every field, then malformed input: wrong types, missing
    or doubled keys, bad strings, every truncation and random corruption
    of a valid encoding (the decoder must fail cleanly or decode, never
    crash or leak: run under valgrind / ASan to see the leaks).
*/
#include "dp_exec_msg.h"
#include "testutil.h"

#include <msgpack.h>
#include <string.h>

static msgpack_sbuffer s_sb;
static msgpack_packer s_pk;

static void
s_reset (void)
{
    msgpack_sbuffer_clear (&s_sb);
}

static void
s_str (const char *s)
{
    msgpack_pack_str (&s_pk, strlen (s));
    msgpack_pack_str_body (&s_pk, s, strlen (s));
}

//  Decode s_sb as an item; expect failure with `needle` in the reason.
static void
s_item_rejected (const char *needle, int line)
{
    dp_exec_item_t item;
    char err [256] = "";
    int rc = dp_exec_item_decode (s_sb.data, s_sb.size, &item, err, sizeof err);
    if (rc != -1 || !strstr (err, needle)) {
        fprintf (stderr, "line %d: expected failure '%s', got rc=%d err='%s'\n",
                 line, needle, rc, err);
        tu_failures++;
    }
    CHECK (item.argv == NULL && item.sh == NULL && item.env == NULL);
    dp_exec_item_destroy (&item);
}

static void
test_item_roundtrip (void)
{
    char *argv [] = { "printf", "%s\\n", "a b", "", NULL };
    char *env [] = { "A=1", "EMPTY=", "EQ=x=y", NULL };
    uint8_t input [] = { 0, 1, 2, 255 };
    dp_exec_item_t in = { .argv = argv, .shell = "/bin/bash", .cwd = "/tmp", .env = env,
                          .input = input, .input_size = sizeof input, .has_input = true,
                          .timeout = 2.5, .seq = 7, .has_seq = true, .slot = 3, .has_slot = true,
                          .slotvar = "my_slot", .termseq = { 2, 200, 15, 100, 9, 25 },
                          .ntermseq = 3 };
    s_reset ();
    REQUIRE (dp_exec_item_encode (&in, &s_sb) == 0);
    dp_exec_item_t out;
    char err [256] = "";
    REQUIRE (dp_exec_item_decode (s_sb.data, s_sb.size, &out, err, sizeof err) == 0);
    CHECK (out.sh == NULL && out.argv);
    for (int i = 0; i < 4; i++)
        CHECK (out.argv [i] && strcmp (out.argv [i], argv [i]) == 0);
    CHECK (out.argv [4] == NULL);
    CHECK (out.shell && strcmp (out.shell, "/bin/bash") == 0);
    CHECK (out.cwd && strcmp (out.cwd, "/tmp") == 0);
    for (int i = 0; i < 3; i++)
        CHECK (out.env && out.env [i] && strcmp (out.env [i], env [i]) == 0);
    CHECK (out.env && out.env [3] == NULL);
    CHECK (out.has_input && out.input_size == 4 && memcmp (out.input, input, 4) == 0);
    CHECK (out.timeout == 2.5 && out.has_seq && out.seq == 7 && out.has_slot && out.slot == 3);
    CHECK (out.slotvar && strcmp (out.slotvar, "my_slot") == 0);
    CHECK (out.ntermseq == 3 && out.termseq [0] == 2 && out.termseq [1] == 200
           && out.termseq [4] == 9 && out.termseq [5] == 25);
    dp_exec_item_destroy (&out);
    CHECK (out.argv == NULL);
    dp_exec_item_destroy (NULL);

    //  the shortest item: "sh" only; an empty stdin is present, not absent
    dp_exec_item_t sh = { .sh = "echo hi", .has_input = true };
    s_reset ();
    REQUIRE (dp_exec_item_encode (&sh, &s_sb) == 0);
    REQUIRE (dp_exec_item_decode (s_sb.data, s_sb.size, &out, err, sizeof err) == 0);
    CHECK (out.argv == NULL && out.sh && strcmp (out.sh, "echo hi") == 0);
    CHECK (out.shell == NULL && out.cwd == NULL && out.env == NULL);
    CHECK (out.has_input && out.input_size == 0 && out.input);
    CHECK (out.timeout == 0 && !out.has_seq && !out.has_slot && out.slotvar == NULL);
    dp_exec_item_destroy (&out);

    //  encode refuses what decode would refuse
    dp_exec_item_t bad = { 0 };
    CHECK (dp_exec_item_encode (&bad, &s_sb) == -1);
    bad.sh = "x", bad.argv = argv;
    CHECK (dp_exec_item_encode (&bad, &s_sb) == -1);
    char *noeq [] = { "NOEQ", NULL };
    dp_exec_item_t bad2 = { .sh = "x", .env = noeq };
    CHECK (dp_exec_item_encode (&bad2, &s_sb) == -1);
    dp_exec_item_t bad3 = { .sh = "x", .timeout = -1 };
    CHECK (dp_exec_item_encode (&bad3, &s_sb) == -1);
    const char *badnames [] = { "", "1x", "a-b", "a=b", "a b",
                                "x1234567890123456789012345678901234567890123456789012345678901234" };
    for (size_t i = 0; i < sizeof badnames / sizeof badnames [0]; i++) {
        dp_exec_item_t bad4 = { .sh = "x", .slotvar = (char *) badnames [i] };
        CHECK (dp_exec_item_encode (&bad4, &s_sb) == -1);
    }
    CHECK (dp_exec_var_name_ok ("_") && dp_exec_var_name_ok ("name9"));
    dp_exec_item_t bad5 = { .sh = "x", .termseq = { 0, 10 }, .ntermseq = 1 };
    CHECK (dp_exec_item_encode (&bad5, &s_sb) == -1);
    dp_exec_item_t bad6 = { .sh = "x", .termseq = { 15, 3600001 }, .ntermseq = 1 };
    CHECK (dp_exec_item_encode (&bad6, &s_sb) == -1);
    dp_exec_item_t bad7 = { .sh = "x", .ntermseq = DP_EXEC_MAX_TERMSEQ + 1 };
    CHECK (dp_exec_item_encode (&bad7, &s_sb) == -1);
    //  an odd "termseq" from the wire, a signal out of range: refused
    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("x");
    s_str ("termseq"), msgpack_pack_array (&s_pk, 3);
    msgpack_pack_uint32 (&s_pk, 15), msgpack_pack_uint32 (&s_pk, 1), msgpack_pack_uint32 (&s_pk, 9);
    CHECK (dp_exec_item_decode (s_sb.data, s_sb.size, &out, err, sizeof err) == -1);
    CHECK (strstr (err, "termseq"));
    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("x");
    s_str ("termseq"), msgpack_pack_array (&s_pk, 2);
    msgpack_pack_uint32 (&s_pk, 65), msgpack_pack_uint32 (&s_pk, 1);
    CHECK (dp_exec_item_decode (s_sb.data, s_sb.size, &out, err, sizeof err) == -1);
    CHECK (strstr (err, "a signal out of range"));

    //  a bad "slotvar" from the wire is refused by the decoder too
    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("x");
    s_str ("slotvar"), s_str ("a=b");
    CHECK (dp_exec_item_decode (s_sb.data, s_sb.size, &out, err, sizeof err) == -1);
    CHECK (strstr (err, "slotvar: not a variable name"));
}

static void
test_reply_roundtrip (void)
{
    dp_exec_reply_t in = { .status = 137, .signal = 9, .timedout = true,
                           .out = (uint8_t *) "o\0ut", .out_size = 4,
                           .err = (uint8_t *) "e", .err_size = 1,
                           .start = 1764630000.25, .runtime = 0.5, .host = "node-1" };
    s_reset ();
    REQUIRE (dp_exec_reply_encode (&in, &s_sb) == 0);
    dp_exec_reply_t out;
    char err [256] = "";
    REQUIRE (dp_exec_reply_decode (s_sb.data, s_sb.size, &out, err, sizeof err) == 0);
    CHECK (out.status == 137 && out.signal == 9 && out.timedout);
    CHECK (out.out_size == 4 && memcmp (out.out, "o\0ut", 4) == 0);
    CHECK (out.err_size == 1 && memcmp (out.err, "e", 1) == 0);
    CHECK (out.start == 1764630000.25 && out.runtime == 0.5);
    CHECK (out.host && strcmp (out.host, "node-1") == 0);
    dp_exec_reply_destroy (&out);
    dp_exec_reply_destroy (NULL);

    dp_exec_reply_t empty = { 0 };
    s_reset ();
    REQUIRE (dp_exec_reply_encode (&empty, &s_sb) == 0);
    REQUIRE (dp_exec_reply_decode (s_sb.data, s_sb.size, &out, err, sizeof err) == 0);
    CHECK (out.status == 0 && !out.timedout && out.out_size == 0 && out.err_size == 0);
    CHECK (out.host && *out.host == 0);
    dp_exec_reply_destroy (&out);

    //  status is required; ranges are checked
    s_reset ();
    msgpack_pack_map (&s_pk, 1);
    s_str ("host"), s_str ("h");
    CHECK (dp_exec_reply_decode (s_sb.data, s_sb.size, &out, err, sizeof err) == -1);
    CHECK (strstr (err, "no 'status'"));
    s_reset ();
    msgpack_pack_map (&s_pk, 1);
    s_str ("status"), msgpack_pack_int (&s_pk, -3);
    CHECK (dp_exec_reply_decode (s_sb.data, s_sb.size, &out, err, sizeof err) == -1);
    CHECK (strstr (err, "out of range"));
    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("status"), msgpack_pack_int (&s_pk, 0);
    s_str ("out"), msgpack_pack_int (&s_pk, 0);
    CHECK (dp_exec_reply_decode (s_sb.data, s_sb.size, &out, err, sizeof err) == -1);
    CHECK (strstr (err, "out: not binary"));
    CHECK (out.out == NULL && out.host == NULL);
}

static void
test_item_reject (void)
{
    s_reset ();
    msgpack_pack_array (&s_pk, 1);
    s_str ("sh");
    s_item_rejected ("not a msgpack map", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 0);
    s_item_rejected ("exactly one of 'argv' and 'sh'", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("true");
    s_str ("argv"), msgpack_pack_array (&s_pk, 1), s_str ("true");
    s_item_rejected ("exactly one of", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("true");
    s_str ("sh"), s_str ("false");
    s_item_rejected ("key 'sh' given twice", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 1);
    s_str ("argv"), msgpack_pack_array (&s_pk, 0);
    s_item_rejected ("argv: not a non-empty array", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 1);
    s_str ("argv"), msgpack_pack_array (&s_pk, 2), s_str ("echo"), msgpack_pack_int (&s_pk, 3);
    s_item_rejected ("argv: not a string", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 1);
    s_str ("sh"), msgpack_pack_str (&s_pk, 3), msgpack_pack_str_body (&s_pk, "a\0b", 3);
    s_item_rejected ("sh: string holds a NUL byte", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("true");
    s_str ("env"), msgpack_pack_map (&s_pk, 1), s_str ("A=B"), s_str ("x");
    s_item_rejected ("is empty or holds '='", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("true");
    s_str ("env"), msgpack_pack_map (&s_pk, 1), s_str ("A"), msgpack_pack_int (&s_pk, 1);
    s_item_rejected ("env value: not a string", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("true");
    s_str ("env"), msgpack_pack_array (&s_pk, 0);
    s_item_rejected ("env: not a map", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("true");
    s_str ("timeout"), msgpack_pack_double (&s_pk, -1);
    s_item_rejected ("timeout: negative", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("true");
    s_str ("timeout"), msgpack_pack_double (&s_pk, 1.0 / 0.0);
    s_item_rejected ("not a finite number", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("true");
    s_str ("seq"), msgpack_pack_int (&s_pk, -1);
    s_item_rejected ("seq: not an unsigned integer", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("true");
    s_str ("stdin"), msgpack_pack_nil (&s_pk);
    s_item_rejected ("stdin: not binary", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("sh"), s_str ("true");
    msgpack_pack_int (&s_pk, 1), s_str ("x");
    s_item_rejected ("a key is not a string", __LINE__);

    //  an array of 2^32-1 elements declared in 5 bytes: refused before
    //  msgpack_unpack can allocate for it
    s_reset ();
    msgpack_pack_map (&s_pk, 1);
    s_str ("argv");
    const char huge [] = { (char) 0xdd, (char) 0xff, (char) 0xff, (char) 0xff, (char) 0xff };
    msgpack_sbuffer_write (&s_sb, huge, sizeof huge);
    s_item_rejected ("elements declared", __LINE__);

    s_reset ();
    msgpack_pack_map (&s_pk, 1);
    s_str ("sh"), s_str ("true");
    msgpack_pack_nil (&s_pk);
    s_item_rejected ("trailing garbage", __LINE__);

    //  unknown keys are ignored
    s_reset ();
    msgpack_pack_map (&s_pk, 2);
    s_str ("later"), msgpack_pack_array (&s_pk, 1), msgpack_pack_nil (&s_pk);
    s_str ("sh"), s_str ("true");
    dp_exec_item_t item;
    char err [256];
    CHECK (dp_exec_item_decode (s_sb.data, s_sb.size, &item, err, sizeof err) == 0);
    dp_exec_item_destroy (&item);

    CHECK (dp_exec_item_decode ("", 0, &item, err, sizeof err) == -1);
}

//  Every prefix and many random corruptions of a full item and reply.
static void
test_fuzz (void)
{
    char *argv [] = { "cat", "-", NULL };
    char *env [] = { "K=V", "L=W", NULL };
    dp_exec_item_t in = { .argv = argv, .shell = "/bin/sh", .cwd = "/", .env = env,
                          .input = (uint8_t *) "abc", .input_size = 3, .has_input = true,
                          .timeout = 1, .seq = 1, .has_seq = true, .slot = 1, .has_slot = true };
    dp_exec_reply_t rin = { .status = 1, .out = (uint8_t *) "xyz", .out_size = 3,
                            .err = (uint8_t *) "e", .err_size = 1, .host = "h" };
    msgpack_sbuffer good [2];
    msgpack_sbuffer_init (&good [0]);
    msgpack_sbuffer_init (&good [1]);
    REQUIRE (dp_exec_item_encode (&in, &good [0]) == 0);
    REQUIRE (dp_exec_reply_encode (&rin, &good [1]) == 0);
    srand (42);
    int decoded = 0;
    for (int which = 0; which < 2; which++) {
        size_t size = good [which].size;
        char *copy = malloc (size);
        REQUIRE (copy);
        for (size_t cut = 0; cut < size; cut++) {
            dp_exec_item_t item;
            dp_exec_reply_t reply;
            char err [256];
            int rc = which == 0 ? dp_exec_item_decode (good [which].data, cut, &item, err, sizeof err)
                                : dp_exec_reply_decode (good [which].data, cut, &reply, err, sizeof err);
            CHECK (rc == -1);
        }
        for (int round = 0; round < 20000; round++) {
            memcpy (copy, good [which].data, size);
            int flips = 1 + rand () % 4;
            for (int f = 0; f < flips; f++)
                copy [rand () % size] = (char) (rand () % 256);
            dp_exec_item_t item;
            dp_exec_reply_t reply;
            char err [256];
            if (which == 0 && dp_exec_item_decode (copy, size, &item, err, sizeof err) == 0) {
                CHECK ((item.argv != NULL) != (item.sh != NULL));
                dp_exec_item_destroy (&item);
                decoded++;
            }
            if (which == 1 && dp_exec_reply_decode (copy, size, &reply, err, sizeof err) == 0) {
                dp_exec_reply_destroy (&reply);
                decoded++;
            }
        }
        free (copy);
    }
    //  some corruptions only change a value: the decoder took those
    CHECK (decoded > 0);
    msgpack_sbuffer_destroy (&good [0]);
    msgpack_sbuffer_destroy (&good [1]);
}

int
main (void)
{
    msgpack_sbuffer_init (&s_sb);
    msgpack_packer_init (&s_pk, &s_sb, msgpack_sbuffer_write);
    test_item_roundtrip ();
    test_reply_roundtrip ();
    test_item_reject ();
    test_fuzz ();
    msgpack_sbuffer_destroy (&s_sb);
    return tu_done ("test_exec_msg");
}
