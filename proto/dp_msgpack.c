/*  =========================================================================
    dp_msgpack - the head of one msgpack value (see dp_msgpack.h)
    =========================================================================
*/
#include "dp_msgpack.h"

#include <string.h>

int
dp_mp_head (const uint8_t *p, size_t left, dp_mp_head_t *h)
{
    uint8_t b = p [0];
    memset (h, 0, sizeof *h);
    int width = 0;              //  bytes of a length, count or number after b
    if (b <= 0x7f) { h->kind = DP_MP_UINT; h->raw = b; }
    else if (b >= 0xe0) { h->kind = DP_MP_INT; h->raw = (uint64_t) (int64_t) (int8_t) b; }
    else if (b <= 0x8f) { h->kind = DP_MP_MAP; h->count = b & 0x0f; }
    else if (b <= 0x9f) { h->kind = DP_MP_ARRAY; h->count = b & 0x0f; }
    else if (b <= 0xbf) { h->kind = DP_MP_STR; h->len = b & 0x1f; }
    else switch (b) {
        case 0xc0: h->kind = DP_MP_NIL; break;
        case 0xc2: case 0xc3: h->kind = DP_MP_BOOL; h->raw = b == 0xc3; break;
        case 0xc4: case 0xc5: case 0xc6: h->kind = DP_MP_BIN; width = 1 << (b - 0xc4); break;
        case 0xc7: case 0xc8: case 0xc9: h->kind = DP_MP_EXT; width = 1 << (b - 0xc7); break;
        case 0xca: h->kind = DP_MP_FLOAT; width = 4; break;
        case 0xcb: h->kind = DP_MP_FLOAT; width = 8; break;
        case 0xcc: case 0xcd: case 0xce: case 0xcf: h->kind = DP_MP_UINT; width = 1 << (b - 0xcc); break;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: h->kind = DP_MP_INT; width = 1 << (b - 0xd0); break;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:     //  fixext: type + 2^k bytes
            h->kind = DP_MP_EXT; h->len = 1 + ((uint64_t) 1 << (b - 0xd4)); break;
        case 0xd9: case 0xda: case 0xdb: h->kind = DP_MP_STR; width = 1 << (b - 0xd9); break;
        case 0xdc: case 0xdd: h->kind = DP_MP_ARRAY; width = 2 << (b - 0xdc); break;
        case 0xde: case 0xdf: h->kind = DP_MP_MAP; width = 2 << (b - 0xde); break;
        default: return DP_MP_BADBYTE;
    }
    if ((size_t) width + 1 > left)
        return DP_MP_CUT;
    h->head = 1 + (size_t) width;
    uint64_t raw = 0;
    for (int i = 0; i < width; i++)
        raw = raw << 8 | p [1 + i];
    if (!width)
        return 0;
    switch (h->kind) {
        case DP_MP_UINT: case DP_MP_FLOAT: h->raw = raw; break;
        case DP_MP_INT:         //  sign-extend from width bytes
            h->raw = width == 8 ? raw
                   : (uint64_t) (((int64_t) (raw << (64 - 8 * width))) >> (64 - 8 * width));
            break;
        case DP_MP_STR: case DP_MP_BIN: h->len = raw; break;
        case DP_MP_EXT: h->len = raw + 1; break;        //  length, then type byte
        case DP_MP_ARRAY: case DP_MP_MAP: h->count = raw; break;
        default: break;
    }
    return 0;
}
