/*  Raw peers for white-box tests: DEALER sockets that speak the protocol
    to a real broker through the codec (dp_proto), and the broker's memory
    as /proc shows it. Linked into the tests that see the internals only
    (the public-API tests have no dp_proto.h). */
#ifndef DP_TESTPEER_H_INCLUDED
#define DP_TESTPEER_H_INCLUDED

#include "testutil.h"
#include "dp_proto.h"

//  A DEALER in ctx with LINGER 0, not connected (set more options, then
//  zmq_connect). Exits (REQUIRE) when it cannot be made.
void *tu_dealer_new (void *ctx);

//  A DEALER with LINGER 0 connected to endpoint. Exits on failure.
void *tu_dealer (void *ctx, const char *endpoint);

//  Send msg and reset it (its frames are gone either way). Returns 0 or
//  -1; tu_send exits (REQUIRE) on failure.
int tu_send_try (void *sock, dp_msg_t *msg);
void tu_send (void *sock, dp_msg_t *msg);

//  The next message within `ms` that is not a HEARTBEAT, decoded into msg
//  (reset first): its command, or -1 on timeout. Messages that do not
//  decode are skipped.
int tu_recv (void *sock, dp_msg_t *msg, int ms);

//  A HEARTBEAT.
void tu_heartbeat (void *sock);

//  A client's HELLO (hb 1000 ms), then the answer within 5 s: its command
//  (DP_CMD_WELCOME expected) or -1. `welcome` (may be NULL) gets the answer;
//  the caller resets it.
int tu_hello (void *sock, dp_msg_t *welcome);

//  A worker's READY with `task` (NULL: no task at all), `credit` and hb
//  1000 ms, then the answer within 5 s: its command or -1.
int tu_ready (void *sock, const char *task, uint32_t credit);

//  RESULT for chunks [chunk, chunk + k) with `count` items of "FORGED".
void tu_forge_result (void *sock, uint64_t chunk, uint32_t k, uint32_t count);

#endif
