/*  =========================================================================
    dp_opt - strict parsing of numeric command-line values

    One parser for every numeric option of dpool, dpool-broker and
    dpool-worker, so that they all refuse the same things: a sign, leading
    or trailing spaces or junk, a base prefix, an exponent, `nan`, `inf`,
    an empty value, and anything out of range. Only plain decimal digits
    (with one decimal point for dp_opt_decimal) are numbers here.
    =========================================================================
*/
#ifndef DP_OPT_H_INCLUDED
#define DP_OPT_H_INCLUDED

#include <stdint.h>

//  A whole number in [min, max]. Returns 0 with *value set, or -1.
int dp_opt_uint (const char *text, uint64_t min, uint64_t max, uint64_t *value);

//  A decimal number ("2", "2.5", ".5") in [min, max]. Returns 0 with
//  *value set, or -1.
int dp_opt_decimal (const char *text, double min, double max, double *value);

#endif
