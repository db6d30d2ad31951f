/*  =========================================================================
    dp_msgpack - the head of one msgpack value, decoded without trusting it

    The one decoder of msgpack type bytes in dpool, shared by the codec's
    header validator (dp_proto.c, before msgpack-c ever sees a header) and
    the public item reader (client/dp_pack.c, dp_unpack_*). It reads the
    type byte and the length, count or number field after it, never past
    `left` bytes, and allocates nothing; each caller then checks `len` and
    `count` against the bytes left and words its own error.
    =========================================================================
*/
#ifndef DP_MSGPACK_H_INCLUDED
#define DP_MSGPACK_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  Kinds of value, in this order (callers index tables with them).
typedef enum {
    DP_MP_NIL, DP_MP_BOOL, DP_MP_UINT, DP_MP_INT, DP_MP_FLOAT, DP_MP_STR, DP_MP_BIN,
    DP_MP_ARRAY, DP_MP_MAP, DP_MP_EXT
} dp_mp_kind_t;

typedef struct {
    dp_mp_kind_t kind;
    size_t head;            //  type byte + its length, count or number field
    uint64_t len;           //  payload bytes after the head (str, bin; ext: type byte + data)
    uint64_t count;         //  array elements, map pairs
    uint64_t raw;           //  bool 0/1; uint; int sign-extended (two's complement);
                            //  float bits (`head` 5: float32, 9: float64)
} dp_mp_head_t;

#define DP_MP_BADBYTE   -1  //  0xc1, never used by msgpack
#define DP_MP_CUT       -2  //  the field after the type byte is cut off (kind is set)

//  Decode the head of the value at p, of which `left` bytes (>= 1) are
//  there. Returns 0, DP_MP_BADBYTE or DP_MP_CUT.
int dp_mp_head (const uint8_t *p, size_t left, dp_mp_head_t *h);

#endif
