/*  fuzz_proto_broker - libFuzzer target: what a broker sends clients and workers (dp_msg_decode)
    Input: frames separated by FUZZ_SEP (fuzz_common.h).  */
#include "fuzz_common.h"

static const uint8_t s_cmds [] = FUZZ_CMDS_BROKER;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return fuzz_message (data, size, s_cmds, sizeof s_cmds);
}
