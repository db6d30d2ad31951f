/*  =========================================================================
    dp_records - delimited records read lazily from a file descriptor

    One buffer, unread bytes in [start, end). A record is looked for in the
    unread bytes first; only when none is complete are the unread bytes
    moved to the front and more read behind them, the buffer doubling when
    it is full. So each byte is read once and moved at most once per
    refill, and memory is the longest record (rounded up to a power of two
    times the initial size), not the input.
    =========================================================================
*/
#include "dp_records.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t
s_read_fd (void *arg, void *buf, size_t size)
{
    return read (*(int *) arg, buf, size);
}

int
dp_records_init_fn (dp_records_t *self, dp_records_read_fn *read_fn, void *arg,
                    char delim, size_t cap)
{
    memset (self, 0, sizeof *self);
    self->read = read_fn;
    self->arg = arg;
    self->fd = -1;
    self->delim = delim;
    self->cap = cap ? cap : 1;
    self->buf = (char *) malloc (self->cap);
    if (!self->buf) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int
dp_records_init (dp_records_t *self, int fd, char delim)
{
    if (dp_records_init_fn (self, s_read_fd, NULL, delim, DP_RECORDS_CAP))
        return -1;
    self->fd = fd;
    self->arg = &self->fd;
    return 0;
}

void
dp_records_destroy (dp_records_t *self)
{
    if (!self)
        return;
    free (self->buf);
    self->buf = NULL;
    self->cap = self->start = self->end = 0;
    self->eof = true;
}

//  Return the unread bytes up to `len` as a record.
static int
s_record (dp_records_t *self, size_t len, size_t skip, const char **data, size_t *rlen)
{
    *data = self->buf + self->start;
    *rlen = len;
    self->start += len + skip;
    self->records++;
    return 1;
}

int
dp_records_next (dp_records_t *self, const char **data, size_t *len)
{
    while (true) {
        size_t unread = self->end - self->start;
        char *at = unread ? (char *) memchr (self->buf + self->start, self->delim, unread) : NULL;
        if (at)
            return s_record (self, (size_t) (at - (self->buf + self->start)), 1, data, len);
        if (self->eof) {
            if (unread == 0)
                return 0;
            return s_record (self, unread, 0, data, len);   //  the last, undelimited
        }
        //  No complete record: make room behind the unread bytes, then read
        if (self->start > 0) {
            memmove (self->buf, self->buf + self->start, unread);
            self->end = unread;
            self->start = 0;
        }
        if (self->end == self->cap) {
            char *buf = self->cap <= SIZE_MAX / 2 ? (char *) realloc (self->buf, 2 * self->cap) : NULL;
            if (!buf) {
                self->eof = true;
                errno = ENOMEM;
                return -1;
            }
            self->buf = buf;
            self->cap *= 2;
        }
        ssize_t n = self->read (self->arg, self->buf + self->end, self->cap - self->end);
        if (n > 0)
            self->end += (size_t) n > self->cap - self->end ? self->cap - self->end : (size_t) n;
        else
        if (n == 0)
            self->eof = true;
        else
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 2;
        else
        if (errno != EINTR) {
            int saved = errno;
            self->eof = true;
            errno = saved;
            return -1;
        }
    }
}
