/*  =========================================================================
    dp_run_part - `dpool run --pipepart`: files cut into parts of records

    GNU parallel's --pipepart (its find_split_positions): each -a file is
    cut at about every --block bytes; a cut is moved on to just after the
    first record end (--recend, "\n") that a record start (--recstart, "")
    follows, at or after that place, and the next cut is looked for a
    block after it. The files are read with pread, one part at a time, so
    the client holds one part, never the file. Without --block the block is
    the files' size over 10 parts per job slot; --block -N asks for N parts
    per job slot. A part is at most DP_RUN_PART_MAX bytes (an exec item's
    stdin is one frame): a larger block is cut down to that.
    =========================================================================
*/
#include "dp_run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_READ (128u << 10)         //  bytes read at a time while looking for a cut

//  Where the part that starts at `pos` looks for its cut: the first
//  recend+recstart at or after it, the cut just after recend. Returns the
//  cut, `size` when there is none, or -1 (errno).
static int64_t
s_cut (int fd, int64_t pos, int64_t size, const char *sep, size_t seplen, size_t endlen)
{
    if (seplen == 0)
        return pos;                 //  records end anywhere
    char *buf = (char *) malloc (S_READ + seplen);
    if (!buf)
        return -1;
    size_t kept = 0;                //  bytes carried over from the last read
    int64_t at = pos;               //  file offset of buf [kept]
    int64_t cut = size;
    while (at < size) {
        ssize_t n = pread (fd, buf + kept, S_READ, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                cut = -1;
            break;
        }
        size_t have = kept + (size_t) n;
        void *hit = memmem (buf, have, sep, seplen);
        if (hit) {
            cut = at - (int64_t) kept + ((char *) hit - buf) + (int64_t) endlen;
            break;
        }
        //  a separator may straddle two reads: keep its first bytes
        kept = seplen - 1 < have ? seplen - 1 : have;
        memmove (buf, buf + have - kept, kept);
        at += n;
    }
    free (buf);
    return cut;
}

//  Add the part [start, end) of the file on fd (named path). Returns 0,
//  or -1 (printed): out of memory, or a record longer than a part may be.
static int
s_add (run_parts_t *self, int fd, int64_t start, int64_t end, const char *path)
{
    if (end - start > (int64_t) DP_RUN_PART_MAX) {
        fprintf (stderr, "dpool run: --pipepart: %s has a record over %u MiB at byte %lld\n",
                 path, DP_RUN_PART_MAX >> 20, (long long) start);
        return -1;
    }
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        run_part_t *v = (run_part_t *) realloc (self->v, cap * sizeof *v);
        if (!v) {
            fprintf (stderr, "dpool run: out of memory\n");
            return -1;
        }
        self->v = v;
        self->cap = cap;
    }
    self->v [self->n++] = (run_part_t) { .fd = fd, .start = start, .end = end };
    return 0;
}

int
run_parts_find (run_parts_t *self, const run_opts_t *o)
{
    memset (self, 0, sizeof *self);
    self->fds = (int *) calloc ((size_t) o->nsources + 1, sizeof (int));
    int64_t *sizes = (int64_t *) calloc ((size_t) o->nsources + 1, sizeof (int64_t));
    if (!self->fds || !sizes) {
        free (sizes);
        fprintf (stderr, "dpool run: out of memory\n");
        return -1;
    }
    //  the files: seekable ones only, as GNU parallel
    int64_t total = 0;
    for (int i = 0; i < o->nsources; i++) {
        const char *path = o->sources [i].path;
        int fd = open (path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0) {
            fprintf (stderr, "dpool run: --pipepart: cannot open %s: %s\n", path, strerror (errno));
            free (sizes);
            return -1;
        }
        self->fds [self->nfds++] = fd;
        if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
            fprintf (stderr, "dpool run: --pipepart only works on seekable files, not streams "
                     "or pipes: %s is not a regular file\n", path);
            free (sizes);
            return -1;
        }
        sizes [i] = (int64_t) st.st_size;
        total += sizes [i];
    }
    //  the block: given, or the size over N parts per job slot (-N; 10)
    int64_t slots = o->jobslots > 0 ? o->jobslots : 1;
    int64_t block = o->block_parts > 0 || !o->block_given
                  ? 1 + total / slots / (o->block_parts > 0 ? o->block_parts : 10)
                  : (int64_t) o->block_size;
    if (block > DP_RUN_PART_MAX)
        block = DP_RUN_PART_MAX;
    //  the separator: recend then recstart
    const char *end = o->recend ? o->recend : (o->recstart ? "" : "\n");
    const char *start = o->recstart ? o->recstart : "";
    size_t endlen = strlen (end), seplen = endlen + strlen (start);
    char *sep = (char *) malloc (seplen + 1);
    if (!sep) {
        free (sizes);
        fprintf (stderr, "dpool run: out of memory\n");
        return -1;
    }
    memcpy (sep, end, endlen);
    memcpy (sep + endlen, start, seplen - endlen + 1);
    int rc = 0;
    for (int i = 0; i < o->nsources && rc == 0; i++) {
        int fd = self->fds [i];
        int64_t size = sizes [i], from = 0;
        for (int64_t pos = block; pos < size && rc == 0; pos += block) {
            int64_t cut = s_cut (fd, pos, size, sep, seplen, endlen);
            if (cut < 0) {
                fprintf (stderr, "dpool run: --pipepart: cannot read %s: %s\n",
                         o->sources [i].path, strerror (errno));
                rc = -1;
            }
            else
            if (cut < size) {
                rc = s_add (self, fd, from, cut, o->sources [i].path);
                from = pos = cut;
            }
            else
                pos = size;
        }
        if (rc == 0 && from < size)
            rc = s_add (self, fd, from, size, o->sources [i].path);
    }
    free (sep);
    free (sizes);
    return rc;
}

int
run_parts_read (run_parts_t *self, run_str_t *out)
{
    if (self->at == self->n)
        return 0;
    run_part_t *part = &self->v [self->at++];
    size_t len = (size_t) (part->end - part->start);
    out->len = 0;
    if (out->cap < len + 1) {
        char *p = (char *) realloc (out->p, len + 1);
        if (!p) {
            fprintf (stderr, "dpool run: --pipepart: out of memory for a part of %zu bytes\n", len);
            return -1;
        }
        out->p = p;
        out->cap = len + 1;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread (part->fd, out->p + got, len - got, (off_t) (part->start + (int64_t) got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf (stderr, "dpool run: --pipepart: a file changed or cannot be read: %s\n",
                     n < 0 ? strerror (errno) : "it is shorter than it was");
            return -1;
        }
        got += (size_t) n;
    }
    out->len = len;
    out->p [len] = 0;
    return 1;
}

void
run_parts_free (run_parts_t *self)
{
    for (size_t i = 0; i < self->nfds; i++)
        close (self->fds [i]);
    free (self->fds);
    free (self->v);
    memset (self, 0, sizeof *self);
}
