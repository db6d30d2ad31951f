/*  =========================================================================
    testtasks - the task module the tests and benchmarks use

        echo        the item itself
        square      decimal integer -> its square, exact (__int128)
        sha256      lowercase hex SHA-256 digest of the item
        sleep_ms    sleeps N ms, returns N
        spin_us     burns CPU for N microseconds of wall time, returns N
        spin_cpu_us burns N microseconds of CPU time (longer on a busy core)
        fail_if     fails with "item is fail" when the item is `fail`, else echo
        crash_if    kills its worker with SIGSEGV when the item is `crash`, else echo
        len         the item's length in decimal
        alloc_mb    allocates N MiB in 1 MiB steps touching every page, without
                    checking malloc (so it crashes when the address space runs
                    out, e.g. under --mem-limit), frees it all, returns N
        nap_echo    item `US:TEXT`: sleeps US microseconds, returns the item
        mixed       `crash` as crash_if, `fail` as fail_if, else as nap_echo
    =========================================================================
*/
#include <dpool_task.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int
s_echo (dp_task_t *task, const void *in, size_t len)
{
    return dp_task_reply (task, in, len);
}

//  Parse a decimal integer (optional sign, surrounding blanks allowed).
//  Returns 0, or -1 with a failure already reported on the task.

static int
s_parse (dp_task_t *task, const char *in, size_t len, long long *value)
{
    char *end;
    errno = 0;
    *value = strtoll (in, &end, 10);
    while (end < in + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (errno == ERANGE)
        return dp_task_fail (task, "overflow: '%.40s' is out of the 64-bit range", in);
    if (len == 0 || end == in || end != in + len)
        return dp_task_fail (task, "not a decimal integer: '%.40s'", in);
    return 0;
}

static int
s_square (dp_task_t *task, const void *in, size_t len)
{
    long long x;
    if (s_parse (task, (const char *) in, len, &x))
        return -1;
    //  |x| <= 2^63, so x * x < 2^126 fits an unsigned __int128
    unsigned __int128 sq = (unsigned __int128) ((__int128) x * x);
    char digits [48];
    char *p = digits + sizeof digits;
    *--p = 0;
    do {
        *--p = (char) ('0' + (int) (sq % 10));
        sq /= 10;
    } while (sq);
    return dp_task_reply (task, p, strlen (p));
}


//  --------------------------------------------------------------------------
//  SHA-256 (FIPS 180-4), compact

static const uint32_t s_k [64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

static inline uint32_t
s_ror (uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

//  Mix one 64-byte block into the state.

static void
s_sha256_block (uint32_t h [8], const uint8_t *block)
{
    uint32_t w [64], v [8];
    for (int i = 0; i < 16; i++)
        w [i] = (uint32_t) block [4 * i] << 24 | (uint32_t) block [4 * i + 1] << 16
              | (uint32_t) block [4 * i + 2] << 8 | block [4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = s_ror (w [i - 15], 7) ^ s_ror (w [i - 15], 18) ^ (w [i - 15] >> 3);
        uint32_t s1 = s_ror (w [i - 2], 17) ^ s_ror (w [i - 2], 19) ^ (w [i - 2] >> 10);
        w [i] = w [i - 16] + s0 + w [i - 7] + s1;
    }
    memcpy (v, h, sizeof v);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = v [7] + (s_ror (v [4], 6) ^ s_ror (v [4], 11) ^ s_ror (v [4], 25))
                    + ((v [4] & v [5]) ^ (~v [4] & v [6])) + s_k [i] + w [i];
        uint32_t t2 = (s_ror (v [0], 2) ^ s_ror (v [0], 13) ^ s_ror (v [0], 22))
                    + ((v [0] & v [1]) ^ (v [0] & v [2]) ^ (v [1] & v [2]));
        memmove (v + 1, v, 7 * sizeof v [0]);
        v [4] += t1;
        v [0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        h [i] += v [i];
}

//  Digest of `len` bytes at `in` into out [32].

static void
s_sha256 (const uint8_t *in, size_t len, uint8_t out [32])
{
    uint32_t h [8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    size_t done = 0;
    for (; len - done >= 64; done += 64)
        s_sha256_block (h, in + done);
    //  Last block(s): the rest, 0x80, zeros, bit length big-endian
    uint8_t tail [128] = { 0 };
    size_t rest = len - done;
    memcpy (tail, in + done, rest);
    tail [rest] = 0x80;
    size_t tlen = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t) len * 8;
    for (int i = 0; i < 8; i++)
        tail [tlen - 1 - i] = (uint8_t) (bits >> (8 * i));
    for (size_t off = 0; off < tlen; off += 64)
        s_sha256_block (h, tail + off);
    for (int i = 0; i < 32; i++)
        out [i] = (uint8_t) (h [i / 4] >> (24 - 8 * (i % 4)));
}

static int
s_sha256_task (dp_task_t *task, const void *in, size_t len)
{
    static const char hex [] = "0123456789abcdef";
    uint8_t digest [32];
    s_sha256 ((const uint8_t *) in, len, digest);
    char *out = (char *) dp_task_reserve (task, 64);
    if (!out)
        return -1;
    for (int i = 0; i < 32; i++) {
        out [2 * i] = hex [digest [i] >> 4];
        out [2 * i + 1] = hex [digest [i] & 15];
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Time, failures, crashes

static int
s_sleep_ms (dp_task_t *task, const void *in, size_t len)
{
    long long ms;
    if (s_parse (task, (const char *) in, len, &ms))
        return -1;
    if (ms < 0 || ms > 86400000)
        return dp_task_fail (task, "sleep_ms: %lld is out of range (0 to 86400000)", ms);
    struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000 };
    while (nanosleep (&ts, &ts) && errno == EINTR)
        ;
    return dp_task_printf (task, "%lld", ms);
}

//  Burn CPU until `clock` has advanced by the item's microseconds.
static int
s_spin (dp_task_t *task, const void *in, size_t len, clockid_t clock, const char *name)
{
    long long us;
    if (s_parse (task, (const char *) in, len, &us))
        return -1;
    if (us < 0 || us > 3600000000LL)
        return dp_task_fail (task, "%s: %lld is out of range (0 to 3600000000)", name, us);
    struct timespec start, now;
    clock_gettime (clock, &start);
    do
        clock_gettime (clock, &now);
    while ((now.tv_sec - start.tv_sec) * 1000000LL
           + (now.tv_nsec - start.tv_nsec) / 1000 < us);
    return dp_task_printf (task, "%lld", us);
}

//  N microseconds of wall time spent spinning (however much CPU it gets)
static int
s_spin_us (dp_task_t *task, const void *in, size_t len)
{
    return s_spin (task, in, len, CLOCK_MONOTONIC, "spin_us");
}

//  N microseconds of this thread's CPU time: slower in wall time on a busy core
static int
s_spin_cpu_us (dp_task_t *task, const void *in, size_t len)
{
    return s_spin (task, in, len, CLOCK_THREAD_CPUTIME_ID, "spin_cpu_us");
}

static bool
s_is (const void *in, size_t len, const char *word)
{
    return len == strlen (word) && memcmp (in, word, len) == 0;
}

static int
s_fail_if (dp_task_t *task, const void *in, size_t len)
{
    if (s_is (in, len, "fail"))
        return dp_task_fail (task, "item is fail");
    return dp_task_reply (task, in, len);
}

static int
s_crash_if (dp_task_t *task, const void *in, size_t len)
{
    if (s_is (in, len, "crash")) {
        //  A real segfault death, whatever handler the process had
        signal (SIGSEGV, SIG_DFL);
        raise (SIGSEGV);
    }
    return dp_task_reply (task, in, len);
}

static int
s_len (dp_task_t *task, const void *in, size_t len)
{
    return dp_task_printf (task, "%zu", len);
}

//  A memory hog. Each 1 MiB block is linked to the previous one through its
//  first bytes (so nothing else is allocated), every page is written, and
//  malloc's result is deliberately NOT checked: when the address space runs
//  out the write to NULL kills the process (SIGSEGV), as an unchecked
//  allocation in real code would.

static int
s_alloc_mb (dp_task_t *task, const void *in, size_t len)
{
    long long mb;
    if (s_parse (task, (const char *) in, len, &mb))
        return -1;
    if (mb < 0 || mb > 1048576)
        return dp_task_fail (task, "alloc_mb: %lld is out of range (0 to 1048576)", mb);
    const size_t block = 1 << 20, page = 4096;
    void *last = NULL;
    for (long long i = 0; i < mb; i++) {
        volatile char *p = (volatile char *) malloc (block);
        for (size_t off = 0; off < block; off += page)
            p [off] = (char) (off >> 12);       //  NULL: SIGSEGV here
        memcpy ((void *) p, &last, sizeof last);
        last = (void *) p;
    }
    while (last) {
        void *prev;
        memcpy (&prev, last, sizeof prev);
        free (last);
        last = prev;
    }
    return dp_task_printf (task, "%lld", mb);
}

//  `US:TEXT` -> sleeps US microseconds, answers the whole item: a task that
//  takes a known time and whose every result names its item.

static int
s_nap_echo (dp_task_t *task, const void *in, size_t len)
{
    const char *text = (const char *) in;
    const char *colon = (const char *) memchr (text, ':', len);
    long long us;
    if (!colon || s_parse (task, text, (size_t) (colon - text), &us))
        return colon ? -1 : dp_task_fail (task, "nap_echo: want US:TEXT");
    if (us < 0 || us > 60000000)
        return dp_task_fail (task, "nap_echo: %lld us is out of range (0 to 60000000)", us);
    struct timespec ts = { (time_t) (us / 1000000), (long) (us % 1000000) * 1000 };
    while (nanosleep (&ts, &ts) && errno == EINTR)
        ;
    return dp_task_reply (task, in, len);
}

//  crash_if, fail_if and nap_echo in one task: a job that mixes deaths,
//  failures, timeouts and results (tests/test_liveness.sh)
static int
s_mixed (dp_task_t *task, const void *in, size_t len)
{
    if (s_is (in, len, "crash") || s_is (in, len, "fail"))
        return s_is (in, len, "crash") ? s_crash_if (task, in, len) : s_fail_if (task, in, len);
    return s_nap_echo (task, in, len);
}

//  $DPOOL_TEST_LOAD_MS: the module takes that long to load (a worker
//  that starts slowly: it registers only after)
__attribute__ ((constructor)) static void
s_slow_load (void)
{
    const char *ms = getenv ("DPOOL_TEST_LOAD_MS");
    if (ms && atoi (ms) > 0)
        usleep ((useconds_t) atoi (ms) * 1000);
}

//  initializer: counts its calls in this process and keeps its arguments
static int s_init_calls;
static char s_init_args [256];

static int
s_init (const char *args)
{
    s_init_calls++;
    snprintf (s_init_args, sizeof s_init_args, "%s", args);
    //  "pidfile=PATH": append this process's pid to PATH (which processes
    //  ran the initializer)
    if (strncmp (args, "pidfile=", 8) == 0) {
        FILE *file = fopen (args + 8, "a");
        if (!file)
            return 2;
        fprintf (file, "%d\n", (int) getpid ());
        fclose (file);
    }
    //  "sleep=MS": a slow start (a worker registers only after it)
    if (strncmp (args, "sleep=", 6) == 0)
        usleep ((useconds_t) atoi (args + 6) * 1000);
    return strcmp (args, "fail") == 0 ? 1 : 0;
}

//  initinfo: "PID CALLS ARGS" — which process ran the item, how many times
//  the initializer ran there, with which arguments
static int
s_initinfo (dp_task_t *task, const void *in, size_t len)
{
    return dp_task_printf (task, "%d %d %s", (int) getpid (), s_init_calls, s_init_args);
}

DP_MODULE_INIT (testtasks, s_init,
    DP_TASK ("initinfo", s_initinfo),
    DP_TASK ("echo", s_echo),
    DP_TASK ("square", s_square),
    DP_TASK ("sha256", s_sha256_task),
    DP_TASK ("sleep_ms", s_sleep_ms),
    DP_TASK ("spin_us", s_spin_us),
    DP_TASK ("spin_cpu_us", s_spin_cpu_us),
    DP_TASK ("fail_if", s_fail_if),
    DP_TASK ("crash_if", s_crash_if),
    DP_TASK ("len", s_len),
    DP_TASK ("alloc_mb", s_alloc_mb),
    DP_TASK ("nap_echo", s_nap_echo),
    DP_TASK ("mixed", s_mixed));
