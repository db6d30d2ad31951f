/*  =========================================================================
    dp_opt - strict parsing of numeric command-line values (dp_opt.h)
    =========================================================================
*/
#include "dp_opt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int
dp_opt_uint (const char *text, uint64_t min, uint64_t max, uint64_t *value)
{
    if (!text || !*text)
        return -1;
    for (const char *c = text; *c; c++)
        if (*c < '0' || *c > '9')
            return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *value = (uint64_t) v;
    return 0;
}

int
dp_opt_decimal (const char *text, double min, double max, double *value)
{
    if (!text || !*text)
        return -1;
    int digits = 0, points = 0;
    for (const char *c = text; *c; c++) {
        if (*c == '.')
            points++;
        else
        if (*c >= '0' && *c <= '9')
            digits++;
        else
            return -1;
    }
    if (digits == 0 || points > 1)
        return -1;
    errno = 0;
    char *end;
    double v = strtod (text, &end);
    if (errno || *end || !isfinite (v) || v < min || v > max)
        return -1;
    *value = v;
    return 0;
}
