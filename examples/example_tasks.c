/*  =========================================================================
    example_tasks - an example dpool task module (libdpool_example.so)

        collatz     decimal n >= 1 -> steps of the Collatz sequence to reach 1
        wordcount   text -> number of words (runs of non-blank bytes)

    Build it as a shared library that links libdpool:

        cc -shared -fPIC example_tasks.c -o libdpool_example.so \
           $(pkg-config --cflags --libs dpool)

    and load it with `-m example` (name lookup) or `-m ./libdpool_example.so`.
    =========================================================================
*/
#include <dpool_task.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

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

DP_MODULE (example,
    DP_TASK ("collatz", collatz),
    DP_TASK ("wordcount", wordcount));
