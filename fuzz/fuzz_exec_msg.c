/*  fuzz_exec_msg - libFuzzer target: an exec item and an exec reply

    Input: one msgpack map, decoded as an exec item (what a worker gets from
    any client) and as an exec reply (what a client gets from any worker).
    A decoded item keeps dp_exec_msg.h's promises (exactly one of argv and
    sh, env entries NAME=VALUE with a non-empty name, a finite timeout >= 0)
    and comes back the same from encode and a second decode; so does a
    decoded reply.  */
#include "fuzz_common.h"
#include "dp_exec_msg.h"

#include <math.h>

static bool
s_same_str (const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp (a, b) == 0);
}

static bool
s_same_list (char **a, char **b)
{
    if (!a || !b)
        return !a && !b;
    size_t i = 0;
    for (; a [i] && b [i]; i++)
        if (strcmp (a [i], b [i]))
            return false;
    return !a [i] && !b [i];
}

static void
s_item (const uint8_t *data, size_t size)
{
    dp_exec_item_t item;
    char err [256];
    if (dp_exec_item_decode (data, size, &item, err, sizeof err)) {
        FUZZ_ASSERT (item.argv == NULL && item.sh == NULL && item.env == NULL && item.input == NULL);
        FUZZ_ASSERT (fuzz_terminated (err, sizeof err) && err [0]);
        return;
    }
    FUZZ_ASSERT ((item.argv != NULL) != (item.sh != NULL));
    FUZZ_ASSERT (!item.argv || item.argv [0]);
    for (size_t i = 0; item.env && item.env [i]; i++)
        FUZZ_ASSERT (item.env [i][0] != '=' && strchr (item.env [i], '='));
    FUZZ_ASSERT (isfinite (item.timeout) && item.timeout >= 0);
    FUZZ_ASSERT (!item.has_input || item.input);
    FUZZ_ASSERT (!item.slotvar || dp_exec_var_name_ok (item.slotvar));
    FUZZ_ASSERT (item.ntermseq <= DP_EXEC_MAX_TERMSEQ);
    for (size_t i = 0; i < item.ntermseq; i++)
        FUZZ_ASSERT (item.termseq [2 * i] >= 1 && item.termseq [2 * i] <= 64
                     && item.termseq [2 * i + 1] <= 3600000);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    FUZZ_ASSERT (dp_exec_item_encode (&item, &buf) == 0);
    dp_exec_item_t again;
    FUZZ_ASSERT (dp_exec_item_decode (buf.data, buf.size, &again, err, sizeof err) == 0);
    FUZZ_ASSERT (s_same_list (item.argv, again.argv) && s_same_str (item.sh, again.sh));
    FUZZ_ASSERT (s_same_str (item.shell, again.shell) && s_same_str (item.cwd, again.cwd));
    FUZZ_ASSERT (s_same_list (item.env, again.env) && s_same_str (item.slotvar, again.slotvar));
    FUZZ_ASSERT (item.has_input == again.has_input && item.input_size == again.input_size);
    FUZZ_ASSERT (!item.input_size || memcmp (item.input, again.input, item.input_size) == 0);
    FUZZ_ASSERT (item.timeout == again.timeout);
    FUZZ_ASSERT (item.ntermseq == again.ntermseq
                 && !memcmp (item.termseq, again.termseq, sizeof item.termseq));
    FUZZ_ASSERT (item.has_seq == again.has_seq && item.seq == again.seq);
    FUZZ_ASSERT (item.has_slot == again.has_slot && item.slot == again.slot);
    FUZZ_ASSERT (item.has_slot_at == again.has_slot_at && item.nslot_at == again.nslot_at);
    for (size_t i = 0; i < item.nslot_at; i++) {
        FUZZ_ASSERT (item.slot_at [i] == again.slot_at [i] && item.slot_at [i] <= strlen (item.sh));
        FUZZ_ASSERT (!i || item.slot_at [i] >= item.slot_at [i - 1]);
    }
    dp_exec_item_destroy (&again);
    dp_exec_item_destroy (&item);
    msgpack_sbuffer_destroy (&buf);
}

static void
s_reply (const uint8_t *data, size_t size)
{
    dp_exec_reply_t reply;
    char err [256];
    if (dp_exec_reply_decode (data, size, &reply, err, sizeof err)) {
        FUZZ_ASSERT (reply.out == NULL && reply.err == NULL && reply.host == NULL);
        FUZZ_ASSERT (fuzz_terminated (err, sizeof err) && err [0]);
        return;
    }
    FUZZ_ASSERT (reply.status >= 0 && reply.status <= 255 + 128);
    FUZZ_ASSERT (reply.signal >= 0 && reply.signal <= 255);
    FUZZ_ASSERT (isfinite (reply.start) && isfinite (reply.runtime));
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    FUZZ_ASSERT (dp_exec_reply_encode (&reply, &buf) == 0);
    dp_exec_reply_t again;
    FUZZ_ASSERT (dp_exec_reply_decode (buf.data, buf.size, &again, err, sizeof err) == 0);
    FUZZ_ASSERT (reply.status == again.status && reply.signal == again.signal);
    FUZZ_ASSERT (reply.timedout == again.timedout);
    FUZZ_ASSERT (reply.parts == again.parts);
    FUZZ_ASSERT (reply.out_size == again.out_size && reply.err_size == again.err_size);
    FUZZ_ASSERT (!reply.out_size || memcmp (reply.out, again.out, reply.out_size) == 0);
    FUZZ_ASSERT (!reply.err_size || memcmp (reply.err, again.err, reply.err_size) == 0);
    FUZZ_ASSERT (reply.start == again.start && reply.runtime == again.runtime);
    FUZZ_ASSERT (again.host && strcmp (again.host, reply.host ? reply.host : "") == 0);
    FUZZ_ASSERT (reply.slot == again.slot && reply.node == again.node);
    dp_exec_reply_destroy (&again);
    dp_exec_reply_destroy (&reply);
    msgpack_sbuffer_destroy (&buf);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_item (data, size);
    s_reply (data, size);
    return 0;
}
