/*  fuzz_proto_any - libFuzzer target: dp_msg_decode on any frames, command
    byte included (unknown commands, bad signatures and versions, frame
    counts). Input: frames separated by FUZZ_SEP (fuzz_common.h).  */
#include "fuzz_common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return fuzz_message (data, size, NULL, 0);
}
