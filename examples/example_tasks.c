/*  =========================================================================
    example_tasks - an example dpool task module (libdpool_example.so)

        square      decimal integer n -> n * n (fails on overflow)
        collatz     decimal n >= 1 -> steps of the Collatz sequence to reach 1
        wordcount   text -> number of words (runs of non-blank bytes)
        pow         msgpack [base, exp] (integers, exp >= 0) -> base^exp (msgpack int)
        weighted    msgpack [word, weight] (string, number) -> msgpack
                    [WORD, length x weight]: the word upper-cased, and its score

    pow and weighted take structured arguments (dp_starmap on the client,
    see dpool_pack.h): the task reads them with dp_unpack_args, which
    checks every type and length, and answers with dp_pack_reply.

    Build it as a shared library that links libdpool:

        cc -shared -fPIC example_tasks.c -o libdpool_example.so \
           $(pkg-config --cflags --libs dpool)

    and load it with `-m example` (name lookup) or `-m ./libdpool_example.so`.
    =========================================================================
*/
#include <dpool_task.h>
#include <dpool_pack.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

//  n * n for a decimal integer; fails on anything else or on overflow.

static int
square (dp_task_t *task, const void *in, size_t len)
{
    char *end;
    errno = 0;
    long long n = strtoll ((const char *) in, &end, 10);
    if (len == 0 || errno || *end)
        return dp_task_fail (task, "square: '%.40s' is not an integer", (const char *) in);
    if (n > 3037000499LL || n < -3037000499LL)
        return dp_task_fail (task, "square: %lld * %lld overflows", n, n);
    return dp_task_printf (task, "%lld", n * n);
}

//  Steps of the Collatz sequence from n down to 1.

static int
collatz (dp_task_t *task, const void *in, size_t len)
{
    //  Items are not NUL-terminated, but in[len] is always a readable 0,
    //  so text items can be parsed as C strings
    char *end;
    errno = 0;
    unsigned long long n = strtoull ((const char *) in, &end, 10);
    if (len == 0 || errno || *end || *(const char *) in == '-' || n == 0)
        return dp_task_fail (task, "collatz: '%.40s' is not an integer >= 1",
                             (const char *) in);
    unsigned long steps = 0;
    while (n != 1) {
        if (n > (~0ULL - 1) / 3)
            return dp_task_fail (task, "collatz: overflow after %lu steps", steps);
        n = n % 2 ? 3 * n + 1 : n / 2;
        steps++;
    }
    return dp_task_printf (task, "%lu", steps);
}

//  Number of words: runs of bytes that are not ASCII white space.

static int
wordcount (dp_task_t *task, const void *in, size_t len)
{
    const unsigned char *text = (const unsigned char *) in;
    size_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        bool blank = isspace (text [i]) != 0;
        words += !blank && !in_word;
        in_word = !blank;
    }
    return dp_task_printf (task, "%zu", words);
}

//  base^exp for integers, exp >= 0; fails on overflow.

static int
power (dp_task_t *task, const void *in, size_t len)
{
    dp_unpack_t args;
    int64_t base, exp;
    dp_unpack_init (&args, in, len);
    if (dp_unpack_args (&args, "II", &base, &exp) != 0)
        return dp_task_fail (task, "pow: %s", dp_unpack_error (&args));
    if (exp < 0)
        return dp_task_fail (task, "pow: negative exponent %lld", (long long) exp);
    int64_t result = 1;
    for (int64_t i = 0; i < exp; i++)
        if (__builtin_mul_overflow (result, base, &result))
            return dp_task_fail (task, "pow: %lld^%lld overflows 64 bits",
                                 (long long) base, (long long) exp);
        else
        if (result == 0 || result == 1)
            break;                  //  0^n and 1^n stay put
    return dp_pack_reply (task, "I", result);
}

//  [word, weight] -> [WORD, strlen (word) * weight]

static int
weighted (dp_task_t *task, const void *in, size_t len)
{
    dp_unpack_t args;
    char word [256];
    double weight;
    dp_unpack_init (&args, in, len);
    if (dp_unpack_args (&args, "Sd", word, sizeof word, &weight) != 0)
        return dp_task_fail (task, "weighted: %s", dp_unpack_error (&args));
    size_t length = strlen (word);
    for (size_t i = 0; i < length; i++)
        word [i] = (char) toupper ((unsigned char) word [i]);
    return dp_pack_reply (task, "[sd]", word, (double) length * weight);
}

DP_MODULE (example,
    DP_TASK ("square", square),
    DP_TASK ("collatz", collatz),
    DP_TASK ("wordcount", wordcount),
    DP_TASK ("pow", power),
    DP_TASK ("weighted", weighted));
