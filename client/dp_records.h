/*  =========================================================================
    dp_records - delimited records read lazily from a file descriptor

    The CLI's input: records (lines, or NUL-separated with -0) read from a
    descriptor, usually a non-blocking stdin. The reader keeps one buffer
    that grows to hold the longest record; a record is returned in place
    (no copy) and stays valid until the next call. A last record without
    its delimiter is still a record; an empty input has none.

    The bytes come from read(2) on the descriptor, or from a read function
    given to dp_records_init_fn (tests and the fuzzer use one to cut the
    input into arbitrary pieces, with EAGAIN and EINTR in between).
    =========================================================================
*/
#ifndef DP_RECORDS_H_INCLUDED
#define DP_RECORDS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DP_RECORDS_CAP  (1 << 16)   //  initial buffer size

//  Reads up to `size` bytes into buf: returns the count, 0 at the end, or
//  -1 with errno set (EAGAIN / EWOULDBLOCK: nothing now; EINTR: again).
typedef ssize_t (dp_records_read_fn) (void *arg, void *buf, size_t size);

typedef struct {
    dp_records_read_fn *read;
    void *arg;
    int fd;                     //  for the default read function
    char delim;
    char *buf;
    size_t cap, start, end;     //  unread bytes are buf [start, end)
    bool eof;
    uint64_t records;           //  records returned so far
} dp_records_t;

//  Read records separated by `delim` from fd. Returns 0, or -1 if out of
//  memory (errno ENOMEM; self then holds nothing to free).
int dp_records_init (dp_records_t *self, int fd, char delim);

//  The same with a read function and an initial buffer size (>= 1).
int dp_records_init_fn (dp_records_t *self, dp_records_read_fn *read, void *arg,
                        char delim, size_t cap);

//  Free the buffer. Safe on a zeroed or already destroyed reader.
void dp_records_destroy (dp_records_t *self);

//  Next record: returns 1 with *data and *len set (not NUL-terminated,
//  valid until the next call), 0 at the end of input, 2 when no complete
//  record is there yet (the read function would block), or -1 on a read
//  error or out of memory (errno says which; the reader is then at its
//  end). The values are those of dp_input_fn (dpool.h).
int dp_records_next (dp_records_t *self, const char **data, size_t *len);

#endif
