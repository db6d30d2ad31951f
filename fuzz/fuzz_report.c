/*  fuzz_report - libFuzzer target: a REPORT body, as `dpool status` gets it

    Input: the body frame (a msgpack map). It goes through dp_msg_decode
    (which walks it) and dp_report_decode (types, ranges, rows, node
    indexes); a decoded report must keep dp_report.h's promises and come
    back the same from dp_report_encode and a second decode.  */
#include "fuzz_common.h"
#include "dp_report.h"

//  Wrap a body into a REPORT message and decode it. Returns dp_msg_decode's code.
static int
s_report_msg (dp_msg_t *msg, const void *body, size_t size)
{
    zmq_msg_t frames [4];
    zmq_msg_init_size (&frames [0], 4);
    memcpy (zmq_msg_data (&frames [0]), DP_PROTO_SIGNATURE, 3);
    ((uint8_t *) zmq_msg_data (&frames [0])) [3] = DP_PROTO_VERSION;
    zmq_msg_init_size (&frames [1], 1);
    *(uint8_t *) zmq_msg_data (&frames [1]) = DP_CMD_REPORT;
    zmq_msg_init_size (&frames [2], 1);
    *(uint8_t *) zmq_msg_data (&frames [2]) = 0x80;     //  {}
    zmq_msg_init_size (&frames [3], size);
    if (size)
        memcpy (zmq_msg_data (&frames [3]), body, size);
    char err [256];
    int rc = dp_msg_decode (msg, frames, 4, err, sizeof err);
    fuzz_close (frames, 4);
    return rc;
}

static void
s_check (const dp_report_t *r)
{
    FUZZ_ASSERT (fuzz_terminated (r->broker.host, sizeof r->broker.host));
    FUZZ_ASSERT (r->nnodes <= DP_REPORT_MAX_ROWS && r->nworkers <= DP_REPORT_MAX_ROWS
                 && r->njobs <= DP_REPORT_MAX_ROWS);
    for (uint32_t i = 0; i < r->nnodes; i++)
        FUZZ_ASSERT (fuzz_terminated (r->nodes [i].host, sizeof r->nodes [i].host));
    for (uint32_t i = 0; i < r->nworkers; i++) {
        FUZZ_ASSERT (fuzz_terminated (r->workers [i].host, sizeof r->workers [i].host));
        FUZZ_ASSERT (r->workers [i].node >= -1 && r->workers [i].node < (int32_t) r->nnodes);
    }
    for (uint32_t i = 0; i < r->njobs; i++) {
        FUZZ_ASSERT (fuzz_terminated (r->jobs [i].client, sizeof r->jobs [i].client));
        FUZZ_ASSERT (fuzz_terminated (r->jobs [i].task, sizeof r->jobs [i].task));
    }
}

static void
s_check_same (const dp_report_t *a, const dp_report_t *b)
{
    FUZZ_ASSERT (memcmp (&a->broker, &b->broker, sizeof a->broker) == 0);
    FUZZ_ASSERT (a->nnodes == b->nnodes && a->nworkers == b->nworkers && a->njobs == b->njobs);
    FUZZ_ASSERT (a->truncated == b->truncated);
    for (uint32_t i = 0; i < a->nnodes; i++)
        FUZZ_ASSERT (memcmp (&a->nodes [i], &b->nodes [i], sizeof a->nodes [i]) == 0);
    for (uint32_t i = 0; i < a->nworkers; i++)
        FUZZ_ASSERT (memcmp (&a->workers [i], &b->workers [i], sizeof a->workers [i]) == 0);
    for (uint32_t i = 0; i < a->njobs; i++)
        FUZZ_ASSERT (memcmp (&a->jobs [i], &b->jobs [i], sizeof a->jobs [i]) == 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    dp_msg_t msg;
    if (s_report_msg (&msg, data, size) != 0)
        return 0;
    dp_report_t report;
    char err [256];
    int rc = dp_report_decode (&report, &msg, err, sizeof err);
    dp_msg_reset (&msg);
    if (rc != 0) {
        FUZZ_ASSERT (rc == DP_PROTO_EPAYLOAD || rc == DP_PROTO_ELIMIT);
        FUZZ_ASSERT (report.nnodes == 0 && report.nworkers == 0 && report.njobs == 0);
        FUZZ_ASSERT (fuzz_terminated (err, sizeof err) && err [0]);
        return 0;
    }
    s_check (&report);
    //  round trip: encode, send through the codec, decode
    dp_msg_t out;
    dp_msg_init (&out, DP_CMD_REPORT);
    FUZZ_ASSERT (dp_report_encode (&report, &out) == 0);
    zmq_msg_t frames [3 + DP_MAX_PAYLOAD];
    size_t nframes;
    FUZZ_ASSERT (dp_msg_encode (&out, frames, &nframes) == 0);
    dp_msg_t in;
    FUZZ_ASSERT (dp_msg_decode (&in, frames, nframes, err, sizeof err) == 0);
    fuzz_close (frames, nframes);
    dp_report_t again;
    FUZZ_ASSERT (dp_report_decode (&again, &in, err, sizeof err) == 0);
    s_check_same (&report, &again);
    dp_msg_reset (&in);
    dp_msg_reset (&out);
    dp_report_clear (&again);
    dp_report_clear (&report);
    return 0;
}
