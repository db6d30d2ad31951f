/*  fuzz_proto_node - libFuzzer target: what a worker node (its supervisor) sends the broker (dp_msg_decode)
    Input: frames separated by FUZZ_SEP (fuzz_common.h).  */
#include "fuzz_common.h"

static const uint8_t s_cmds [] = FUZZ_CMDS_NODE;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return fuzz_message (data, size, s_cmds, sizeof s_cmds);
}
