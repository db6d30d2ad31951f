/*  fuzz_records - libFuzzer target: the CLI's record reader
    (client/dp_records.c), which cuts stdin into items

    Input: byte 0 picks the delimiter ('\n' or NUL) and the initial buffer
    size, byte 1 seeds the pattern of reads (short reads of 1..64 bytes,
    EAGAIN and EINTR in between); the rest is the input stream. The records
    must be exactly the stream cut at each delimiter (a last record without
    its delimiter included, no empty record at the end), each read once.  */
#include "dp_records.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(cond) do { if (!(cond)) { \
    fprintf (stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
    abort (); } } while (0)

typedef struct {
    const uint8_t *p, *end;
    uint32_t rng;
    int agains;                 //  EAGAIN returned in a row
    bool fail;                  //  end with EIO instead of EOF
} s_source_t;

static ssize_t
s_read (void *arg, void *buf, size_t size)
{
    s_source_t *src = (s_source_t *) arg;
    FUZZ_ASSERT (size > 0);
    src->rng = src->rng * 1103515245u + 12345u;
    uint32_t r = src->rng >> 16;
    if (r % 7 == 0) {
        src->agains++;
        errno = EAGAIN;
        return -1;
    }
    if (r % 11 == 0) {
        errno = EINTR;
        return -1;
    }
    if (src->p == src->end) {
        if (src->fail) {
            errno = EIO;
            return -1;
        }
        return 0;
    }
    size_t n = 1 + r % 64;
    if (n > size)
        n = size;
    if (n > (size_t) (src->end - src->p))
        n = (size_t) (src->end - src->p);
    memset (buf, 0xaa, size);           //  the reader must use only what was read
    memcpy (buf, src->p, n);
    src->p += n;
    return (ssize_t) n;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    char delim = data [0] & 1 ? '\n' : 0;
    size_t cap = 1 + (data [0] >> 1) % 64;
    s_source_t src = { data + 2, data + size, data [1], 0, (data [1] & 0x80) != 0 };
    const uint8_t *stream = data + 2, *expect = stream;
    const uint8_t *end = data + size;
    dp_records_t rec;
    FUZZ_ASSERT (dp_records_init_fn (&rec, s_read, &src, delim, cap) == 0);
    uint64_t count = 0;
    bool failed = false;
    for (size_t calls = 0; ; calls++) {
        FUZZ_ASSERT (calls < 100000);
        const char *record;
        size_t len;
        int rc = dp_records_next (&rec, &record, &len);
        if (rc == 2)
            continue;                   //  would block: ask again
        if (rc == -1) {
            FUZZ_ASSERT (src.fail && errno == EIO && !failed);
            failed = true;              //  the CLI reports it, then takes what is left
            continue;
        }
        if (rc == 0)
            break;
        FUZZ_ASSERT (rc == 1);
        //  the next expected record: up to the delimiter or the end
        const uint8_t *at = (const uint8_t *) memchr (expect, delim, (size_t) (end - expect));
        size_t want = at ? (size_t) (at - expect) : (size_t) (end - expect);
        FUZZ_ASSERT (expect < end);
        FUZZ_ASSERT (len == want);
        FUZZ_ASSERT (memcmp (record, expect, len) == 0);
        FUZZ_ASSERT (memchr (record, delim, len) == NULL);
        expect += want + (at ? 1 : 0);
        count++;
    }
    FUZZ_ASSERT (expect == end);
    FUZZ_ASSERT (rec.records == count);
    FUZZ_ASSERT (failed == (src.fail && true));
    //  after the end, the end again
    const char *record;
    size_t len;
    FUZZ_ASSERT (dp_records_next (&rec, &record, &len) == 0);
    dp_records_destroy (&rec);
    dp_records_destroy (&rec);          //  twice is harmless
    (void) stream;
    return 0;
}
