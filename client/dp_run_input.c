/*  =========================================================================
    dp_run_input - `dpool run`'s jobs: input sources, replacement strings,
    quoting

    Input sources are read as GNU parallel reads them: records cut by the
    delimiter (a newline, NUL with -0, -d), split into columns by --colsep,
    trimmed by --trim, empty ones dropped by -r, stopped at -E's string.
    One source read from stdin is streamed (fd 0 non-blocking, a record at a
    time) so `dpool run` starts jobs before the input ends and memory stays
    bounded; several sources (their cartesian product, the last varying
    fastest; :::+ and --link advance sources together, the shorter ones
    wrapping), and -m / -X (which spread the arguments over the job slots)
    need the whole input first.

    The command template is the command words joined by spaces (each word
    shell-quoted first with -q), as GNU parallel does: it runs in a shell.
    Substituted arguments are shell-quoted with GNU parallel's rules, so a
    --dry-run or a joblog shows the very same command lines. A `{...}` that
    looks like a GNU parallel replacement string this code does not expand
    ({= perl =}, --plus strings) is refused rather than left in the command.

    --pipe jobs are blocks of whole records read from stdin: at least
    --block bytes (then cut at the last record end), or -N records each.
    =========================================================================
*/
#include "dp_run.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  --------------------------------------------------------------------------
//  Small containers

static void *
s_realloc (void *p, size_t size)
{
    void *q = realloc (p, size ? size : 1);
    if (!q) {
        fprintf (stderr, "dpool run: out of memory\n");
        exit (RUN_EXIT_ERROR);
    }
    return q;
}

void
run_str_add (run_str_t *self, const char *data, size_t len)
{
    if (self->len + len + 1 > self->cap) {
        self->cap = (self->len + len + 1) * 2;
        self->p = (char *) s_realloc (self->p, self->cap);
    }
    if (len)                        //  (data may be NULL then)
        memcpy (self->p + self->len, data, len);
    self->len += len;
    self->p [self->len] = 0;
}

void
run_str_adds (run_str_t *self, const char *s)
{
    run_str_add (self, s, strlen (s));
}

void
run_strv_add (run_strv_t *self, const char *s, size_t len)
{
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 16;
        self->v = (char **) s_realloc (self->v, self->cap * sizeof (char *));
        self->len = (size_t *) s_realloc (self->len, self->cap * sizeof (size_t));
    }
    char *copy = (char *) s_realloc (NULL, len + 1);
    memcpy (copy, s, len);
    copy [len] = 0;
    self->v [self->n] = copy;
    self->len [self->n++] = len;
}

void
run_strv_free (run_strv_t *self)
{
    for (size_t i = 0; i < self->n; i++)
        free (self->v [i]);
    free (self->v);
    free (self->len);
    memset (self, 0, sizeof *self);
}

//  --------------------------------------------------------------------------
//  Quoting and the five argument transforms

//  GNU parallel's shell_quote_scalar_default: words of [-_.+a-z0-9/] stay
//  bare, "" is '', anything else goes in single quotes with ' as '"'"'.
void
run_quote (run_str_t *out, const char *s, size_t len)
{
    if (len == 0) {
        run_str_add (out, "''", 2);
        return;
    }
    bool plain = true;
    for (size_t i = 0; i < len && plain; i++)
        plain = isalnum ((unsigned char) s [i]) || strchr ("-_.+/", s [i]);
    if (plain && !memchr (s, 0, len)) {
        run_str_add (out, s, len);
        return;
    }
    //  '-quote the whole, "'" for each quote; drop '' at either end
    run_str_t q = { 0 };
    run_str_add (&q, "'", 1);
    for (size_t i = 0; i < len; i++)
        if (s [i] == '\'')
            run_str_add (&q, "'\"'\"'", 5);
        else
            run_str_add (&q, s + i, 1);
    run_str_add (&q, "'", 1);
    const char *p = q.p;
    size_t n = q.len;
    if (n >= 2 && p [0] == '\'' && p [1] == '\'') {
        p += 2;
        n -= 2;
    }
    if (n >= 2 && p [n - 1] == '\'' && p [n - 2] == '\'')
        n -= 2;
    run_str_add (out, p, n);
    free (q.p);
}

//  {.}: s:\.[^/.]*$::
static size_t
s_noext (const char *s, size_t len)
{
    for (size_t i = len; i > 0; i--) {
        if (s [i - 1] == '/')
            break;
        if (s [i - 1] == '.')
            return i - 1;
    }
    return len;
}

void
run_transform (run_str_t *out, int kind, const char *s, size_t len)
{
    switch (kind) {
        case 1:                                 //  {.}
            run_str_add (out, s, s_noext (s, len));
            break;
        case 2:                                 //  {/}: s:^.*/::
        case 4: {                               //  {/.}
            const char *slash = (const char *) memrchr (s, '/', len);
            const char *base = slash ? slash + 1 : s;
            size_t blen = len - (size_t) (base - s);
            run_str_add (out, base, kind == 4 ? s_noext (base, blen) : blen);
            break;
        }
        case 3: {                               //  {//}: Perl's dirname
            char *copy = strndup (s, len);
            run_str_adds (out, dirname (copy));
            free (copy);
            break;
        }
        default:
            run_str_add (out, s, len);
    }
}

//  --------------------------------------------------------------------------
//  The template

//  T_TEXT: bytes of the template; T_LIT: a constant (--plus {slot});
//  T_TOTAL: the number of jobs ({##}); T_SEQ0: {#} 0-padded to its width ({0#})
typedef enum { T_TEXT, T_ARG, T_POS, T_SEQ, T_SLOT, T_LIT, T_TOTAL, T_SEQ0 } s_tok_kind_t;

//  What a replacement string does to its argument: 0-4 the five of GNU
//  parallel (run_transform), the others --plus's
enum {
    X_PDIR = 5,                 //  {+/}    what {/} leaves out
    X_PEXT,                     //  {+.} {+..} {+...} (n1: how many extensions)
    X_NOEXTN,                   //  {..} {...} (n1: 2 or 3)
    X_BNOEXTN,                  //  {/..} {/...} (n1: 2 or 3)
    X_DEFAULT,                  //  {:-a}   a when the argument is "" or "0"
    X_SUBSTR,                   //  {:n1} {:n1:n2}
    X_PREFIX,                   //  {#a} {##a}   remove a leading a
    X_SUFFIX,                   //  {%a} {%%a}   remove a trailing a
    X_REPLACE,                  //  {/a/b} (n1 0) {//a/b} (1: all) {/#a/b} (2) {/%a/b} (3)
    X_UPPER,                    //  {^a} (n1 0) {^^a} (1: all)
    X_LOWER                     //  {,a} {,,a}
};

typedef struct {
    s_tok_kind_t kind;
    int transform;              //  0 {} 1 {.} 2 {/} 3 {//} 4 {/.}, or X_*
    int pos;                    //  T_POS: 1-based, negative from the end
    size_t start, len;          //  T_TEXT: bytes of the template
    int word;                   //  index of the blank-separated word
    size_t a, alen, b, blen;    //  --plus strings' texts (in the template)
    long n1, n2;                //  and numbers (n2 -1: none)
    const char *lit;            //  T_LIT
    int skip;                   //  --plus {uniq} (S_UNIQ), {choose_k} (S_CHOOSE)
} s_tok_t;

#define S_UNIQ      1           //  skip a job whose arguments are not all different
#define S_CHOOSE    2           //  skip one whose arguments are not in ascending order

typedef struct {
    char *text;
    s_tok_t *toks;
    size_t ntoks;
    bool has_repl;              //  any replacement string at all
    bool raw;                   //  no command: arguments are the command
    int nwords;
    uint64_t total;             //  number of jobs, for {##} {0#}
    int skip;                   //  S_UNIQ | S_CHOOSE: jobs it skips
} s_template_t;

static const char *s_suffixes [] = { "", ".", "/", "//", "/." };

//  Positional forms: N, -N, then one of the suffixes. Returns the
//  transform, or -1.
static int
s_positional (const char *in, size_t len, int *pos)
{
    size_t i = 0;
    if (i < len && in [i] == '-')
        i++;
    size_t digits = i;
    while (i < len && isdigit ((unsigned char) in [i]))
        i++;
    if (i == digits || (in [0] == '0' && digits == 0))
        return -1;
    for (int t = 0; t < 5; t++)
        if (strlen (s_suffixes [t]) == len - i && !memcmp (in + i, s_suffixes [t], len - i)) {
            *pos = atoi (in);
            return *pos ? t : -1;
        }
    return -1;
}

//  Does `{inner}` look like a GNU parallel replacement string (that this
//  code does not expand)? {= perl =}, --plus strings ({..} {+/} {##}),
//  positional forms with other suffixes ({1+.}).
static bool
s_looks_like_repl (const char *inner, size_t len)
{
    if (len >= 2 && inner [0] == '=' && inner [len - 1] == '=')
        return true;
    if (len == 0)
        return false;
    size_t i = 0;
    if (inner [0] == '-' || isdigit ((unsigned char) inner [0])) {
        i = inner [0] == '-' ? 1 : 0;
        size_t d = i;
        while (i < len && isdigit ((unsigned char) inner [i]))
            i++;
        if (i == d)
            return false;
    }
    if (i == len)
        return false;
    for (size_t k = i; k < len; k++)
        if (!strchr ("./#%+^:,", inner [k]))
            return false;
    return true;
}

//  --plus: does `{inner}` (offset `off` in the template) name one of its
//  replacement strings? 1 yes (*tok set, but for its word), 0 no, -1 it
//  does but with a pattern this code does not match (Perl regexps beyond
//  plain text and `.`): printed. An optional position (`{2..}`) first.
//  The patterns of the dynamic ones are matched as GNU parallel's Perl
//  does for plain text, `.` being any byte.
static int
s_plus_match (const char *inner, size_t ilen, size_t off, s_tok_t *tok)
{
    static const struct { const char *name; int transform; long n1; } fixed [] = {
        { "+/", X_PDIR, 0 }, { "+.", X_PEXT, 1 }, { "+..", X_PEXT, 2 }, { "+...", X_PEXT, 3 },
        { "..", X_NOEXTN, 2 }, { "...", X_NOEXTN, 3 }, { "/..", X_BNOEXTN, 2 },
        { "/...", X_BNOEXTN, 3 }, { NULL, 0, 0 }
    };
    if (ilen == 2 && !memcmp (inner, "##", 2)) {
        tok->kind = T_TOTAL;
        return 1;
    }
    if (ilen == 2 && !memcmp (inner, "0#", 2)) {
        tok->kind = T_SEQ0;
        return 1;
    }
    if (ilen == 4 && !memcmp (inner, "slot", 4)) {
        tok->kind = T_LIT;
        tok->lit = "${PARALLEL_JOBSLOT}";
        return 1;
    }
    static const char *unsupported [] = { "0%", "host", "sshlogin", "hgrp", "agrp", NULL };
    for (int k = 0; unsupported [k]; k++)
        if (strlen (unsupported [k]) == ilen && !memcmp (inner, unsupported [k], ilen)) {
            fprintf (stderr, "dpool run: replacement string {%.*s} is not supported; "
                     "Try --help\n", (int) ilen, inner);
            return -1;
        }
    //  a position, then the replacement string's own text
    size_t i = 0;
    int pos = 0;
    if (i < ilen && (isdigit ((unsigned char) inner [0])
                     || (inner [0] == '-' && ilen > 1 && isdigit ((unsigned char) inner [1])))) {
        i = inner [0] == '-' ? 1 : 0;
        while (i < ilen && isdigit ((unsigned char) inner [i]))
            i++;
        pos = atoi (inner);
        if (pos == 0)
            return 0;
    }
    const char *r = inner + i;
    size_t rlen = ilen - i;
    if (rlen == 0)
        return 0;
    tok->kind = pos ? T_POS : T_ARG;
    tok->pos = pos;
    tok->n2 = -1;
    for (int k = 0; fixed [k].name; k++)
        if (strlen (fixed [k].name) == rlen && !memcmp (r, fixed [k].name, rlen)) {
            tok->transform = fixed [k].transform;
            tok->n1 = fixed [k].n1;
            return 1;
        }
    //  {uniq} {choose_k}: the arguments, and some jobs skipped
    if ((rlen == 4 && !memcmp (r, "uniq", 4)) || (rlen == 8 && !memcmp (r, "choose_k", 8))) {
        tok->skip = rlen == 4 ? S_UNIQ : S_CHOOSE;
        return 1;
    }
    //  the dynamic ones: a prefix, a pattern (a), maybe /replacement (b)
    size_t skip = 0;
    bool has_b = false;
    if (rlen > 2 && r [0] == ':' && r [1] == '-') {
        tok->transform = X_DEFAULT;
        skip = 2;
    }
    else
    if (r [0] == ':' && rlen > 1 && isdigit ((unsigned char) r [1])) {
        char *end;
        tok->transform = X_SUBSTR;
        tok->n1 = strtol (r + 1, &end, 10);
        if (*end == ':' && isdigit ((unsigned char) end [1]))
            tok->n2 = strtol (end + 1, &end, 10);
        return end == r + rlen ? 1 : 0;
    }
    else
    if (r [0] == '#' || r [0] == '%') {
        tok->transform = r [0] == '#' ? X_PREFIX : X_SUFFIX;
        skip = rlen > 2 && r [1] == r [0] ? 2 : 1;
    }
    else
    if (r [0] == '/') {
        tok->transform = X_REPLACE;
        skip = 1;
        if (rlen > 1 && (r [1] == '/' || r [1] == '#' || r [1] == '%')) {
            tok->n1 = r [1] == '/' ? 1 : r [1] == '#' ? 2 : 3;
            skip = 2;
        }
        has_b = true;
    }
    else
    if (r [0] == '^' || r [0] == ',') {
        tok->transform = r [0] == '^' ? X_UPPER : X_LOWER;
        tok->n1 = rlen > 2 && r [1] == r [0];
        skip = 1 + (size_t) tok->n1;
    }
    else
        return 0;
    if (skip >= rlen)
        return 0;
    const char *a = r + skip;
    size_t alen = rlen - skip;
    const char *b = NULL;
    size_t blen = 0;
    if (has_b) {
        const char *slash = (const char *) memchr (a, '/', alen);
        if (!slash || slash == a)
            return 0;
        b = slash + 1;
        blen = (size_t) (r + rlen - b);
        alen = (size_t) (slash - a);
    }
    //  a Perl regexp in GNU parallel: only plain text and `.` here
    bool plain = tok->transform == X_DEFAULT;
    for (size_t k = 0; k < alen && !plain; k++)
        if (strchr ("\\^$|?*+()[]{}", a [k])) {
            fprintf (stderr, "dpool run: replacement string {%.*s}: a pattern with Perl "
                     "regexp syntax is not supported; Try --help\n", (int) ilen, inner);
            return -1;
        }
    for (size_t k = 0; k < blen; k++)
        if (strchr ("\\$@", b [k])) {
            fprintf (stderr, "dpool run: replacement string {%.*s}: a replacement with Perl "
                     "syntax is not supported; Try --help\n", (int) ilen, inner);
            return -1;
        }
    tok->a = off + (size_t) (a - inner);
    tok->alen = alen;
    tok->b = b ? off + (size_t) (b - inner) : 0;
    tok->blen = blen;
    return 1;
}

//  Does pattern p (plain bytes, `.` any byte) match s at `at`?
static bool
s_pat_at (const char *s, size_t len, size_t at, const char *p, size_t plen)
{
    if (at + plen > len)
        return false;
    for (size_t i = 0; i < plen; i++)
        if (p [i] != '.' && p [i] != s [at + i])
            return false;
    return true;
}

//  The position of the last `.` in s's last path component after `skip`
//  extensions (s_noext applied n times), or len when there are fewer
static size_t
s_noext_n (const char *s, size_t len, int n)
{
    size_t at = len;
    for (int k = 0; k < n; k++) {
        size_t cut = 0;
        bool found = false;
        for (size_t i = at; i > 0; i--) {
            if (s [i - 1] == '/')
                break;
            if (s [i - 1] == '.') {
                cut = i - 1;
                found = true;
                break;
            }
        }
        if (!found)
            return len;
        at = cut;
    }
    return at;
}

//  A --plus transform of s (tok->transform >= X_PDIR), appended to out
static void
s_plus_transform (run_str_t *out, const s_tok_t *tok, const char *text, const char *s,
                  size_t len)
{
    const char *a = text + tok->a, *b = text + tok->b;
    size_t alen = tok->alen, blen = tok->blen;
    switch (tok->transform) {
        case X_PDIR: {                          //  s:/[^/]*$:: || s:.*$::
            const char *slash = (const char *) memrchr (s, '/', len);
            if (slash)
                run_str_add (out, s, (size_t) (slash - s));
            break;
        }
        case X_PEXT: {
            if (tok->n1 == 1) {                 //  s:.*\.:: || s:.*$::
                const char *dot = (const char *) memrchr (s, '.', len);
                if (dot)
                    run_str_add (out, dot + 1, len - (size_t) (dot - s) - 1);
                break;
            }
            //  s:.*\.([^/.]*\.[^/.]*)$:$1: || s:.*$::
            size_t cut = s_noext_n (s, len, (int) tok->n1);
            if (cut < len)
                run_str_add (out, s + cut + 1, len - cut - 1);
            break;
        }
        case X_NOEXTN:                          //  s:\.[^/.]*\.[^/.]*$::
            run_str_add (out, s, s_noext_n (s, len, (int) tok->n1));
            break;
        case X_BNOEXTN: {
            const char *slash = (const char *) memrchr (s, '/', len);
            const char *base = slash ? slash + 1 : s;
            size_t blen2 = len - (size_t) (base - s);
            run_str_add (out, base, s_noext_n (base, blen2, (int) tok->n1));
            break;
        }
        case X_DEFAULT:                         //  $_ ||= a
            if (len == 0 || (len == 1 && s [0] == '0'))
                run_str_add (out, a, alen);
            else
                run_str_add (out, s, len);
            break;
        case X_SUBSTR: {
            size_t from = (size_t) tok->n1 < len ? (size_t) tok->n1 : len;
            size_t n = len - from;
            if (tok->n2 >= 0 && (size_t) tok->n2 < n)
                n = (size_t) tok->n2;
            run_str_add (out, s + from, n);
            break;
        }
        case X_PREFIX:
            if (s_pat_at (s, len, 0, a, alen))
                run_str_add (out, s + alen, len - alen);
            else
                run_str_add (out, s, len);
            break;
        case X_SUFFIX:
            if (alen <= len && s_pat_at (s, len, len - alen, a, alen))
                run_str_add (out, s, len - alen);
            else
                run_str_add (out, s, len);
            break;
        case X_REPLACE:
        case X_UPPER:
        case X_LOWER: {
            //  s/a/b/ (n1 0), s/a/b/g (1), s/^a/b/ (2), s/a$/b/ (3);
            //  s/^(a)/uc($1)/e (n1 0), s/(a)/uc($1)/eg (1); lc alike
            bool repl = tok->transform == X_REPLACE;
            bool all = tok->n1 == 1;
            bool at_start = repl ? tok->n1 == 2 : tok->n1 == 0;
            size_t at = 0, lit = 0;
            if (repl && tok->n1 == 3)
                at = alen <= len ? len - alen : len + 1;
            while (at + alen <= len) {
                if (!s_pat_at (s, len, at, a, alen)) {
                    if (at_start || (repl && tok->n1 == 3))
                        break;
                    at++;
                    continue;
                }
                run_str_add (out, s + lit, at - lit);
                if (repl)
                    run_str_add (out, b, blen);
                else
                    for (size_t k = 0; k < alen; k++) {
                        int c = (unsigned char) s [at + k];
                        char x = (char) (tok->transform == X_UPPER ? toupper (c) : tolower (c));
                        run_str_add (out, &x, 1);
                    }
                at += alen;
                lit = at;
                if (!all)
                    break;
            }
            run_str_add (out, s + lit, len - lit);
            break;
        }
        default:
            run_str_add (out, s, len);
    }
}

//  -q: quote a command word, but not the replacement strings in it
static void
s_quote_word (run_str_t *out, const char *word, const char **repl, bool plus)
{
    size_t n = strlen (word), at = 0, lit = 0;
    while (at < n) {
        size_t used = 0;
        for (int k = 0; k < 7; k++) {
            size_t rl = strlen (repl [k]);
            if (rl > used && rl <= n - at && !memcmp (word + at, repl [k], rl))
                used = rl;
        }
        int pos;
        const char *close = word [at] == '{' ? strchr (word + at, '}') : NULL;
        if (!used && close && s_positional (word + at + 1, (size_t) (close - word - at - 1), &pos) >= 0)
            used = (size_t) (close - word - at) + 1;
        s_tok_t plus_tok = { 0 };
        if (!used && close && plus
        &&  s_plus_match (word + at + 1, (size_t) (close - word - at - 1), 0, &plus_tok) != 0)
            used = (size_t) (close - word - at) + 1;
        if (used) {
            if (at > lit)
                run_quote (out, word + lit, at - lit);
            run_str_add (out, word + at, used);
            at += used;
            lit = at;
        }
        else
            at++;
    }
    if (at > lit || n == 0)
        run_quote (out, word + lit, at - lit);
}

//  Split the template into text and replacement strings. Returns 0, or -1
//  after printing why.
static int
s_template_parse (s_template_t *t, run_opts_t *o, run_strv_t *names)
{
    static const char *defaults [7] = { "{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}" };
    const char *repl [7];
    for (int i = 0; i < 7; i++)
        repl [i] = o->repl [i] ? o->repl [i] : defaults [i];
    run_str_t text = { 0 };
    for (int i = 0; i < o->ncommand; i++) {
        if (i)
            run_str_add (&text, " ", 1);
        if (o->quote)
            s_quote_word (&text, o->command [i], repl, o->plus);
        else
            run_str_adds (&text, o->command [i]);
    }
    if (o->ncommand == 0) {
        //  no command: the arguments are the command lines
        run_str_adds (&text, repl [0]);
        t->raw = true;
    }
    t->text = text.p;
    const char *s = t->text;
    size_t n = text.len, at = 0, lit = 0;
    int word = 0;
    size_t cap = 16;
    t->toks = (s_tok_t *) s_realloc (NULL, cap * sizeof (s_tok_t));
    while (at < n) {
        if (t->ntoks + 2 >= cap) {
            cap *= 2;
            t->toks = (s_tok_t *) s_realloc (t->toks, cap * sizeof (s_tok_t));
        }
        s_tok_t tok = { .word = word };
        size_t used = 0;
        //  the longest matching replacement string wins ({//} over {/})
        for (int k = 0; k < 7; k++) {
            size_t rl = strlen (repl [k]);
            if (rl > used && rl <= n - at && !memcmp (s + at, repl [k], rl)) {
                used = rl;
                tok.kind = k < 5 ? T_ARG : k == 5 ? T_SEQ : T_SLOT;
                tok.transform = k < 5 ? k : 0;
            }
        }
        if (!used && s [at] == '{') {
            const char *close = (const char *) memchr (s + at + 1, '}', n - at - 1);
            //  {= perl =} may hold braces: find its =}
            if (at + 1 < n && s [at + 1] == '=') {
                const char *end = strstr (s + at + 2, "=}");
                if (end) {
                    fprintf (stderr, "dpool run: replacement string %.*s (a Perl expression) "
                             "is not supported; Try --help\n", (int) (end + 2 - (s + at)), s + at);
                    return -1;
                }
            }
            if (close) {
                const char *inner = s + at + 1;
                size_t ilen = (size_t) (close - inner);
                int pos, tr;
                if ((tr = s_positional (inner, ilen, &pos)) >= 0) {
                    tok.kind = T_POS;
                    tok.pos = pos;
                    tok.transform = tr;
                    used = ilen + 2;
                }
                else
                if (names && names->n) {
                    //  --header: {colname} and {colname.} etc.
                    for (size_t c = 0; c < names->n && !used; c++)
                        for (int tr2 = 0; tr2 < 5; tr2++) {
                            size_t nl = names->len [c], sl = strlen (s_suffixes [tr2]);
                            if (nl && nl + sl == ilen && !memcmp (inner, names->v [c], nl)
                            &&  !memcmp (inner + nl, s_suffixes [tr2], sl)) {
                                tok.kind = T_POS;
                                tok.pos = (int) c + 1;
                                tok.transform = tr2;
                                used = ilen + 2;
                                break;
                            }
                        }
                }
                if (!used && o->plus) {
                    int m = s_plus_match (inner, ilen, at + 1, &tok);
                    if (m < 0)
                        return -1;
                    if (m > 0)
                        used = ilen + 2;
                }
                if (!used && s_looks_like_repl (inner, ilen)) {
                    fprintf (stderr, "dpool run: replacement string {%.*s} is not supported; "
                             "Try --help\n", (int) ilen, inner);
                    return -1;
                }
            }
        }
        if (used) {
            if (at > lit)
                t->toks [t->ntoks++] = (s_tok_t) { .kind = T_TEXT, .start = lit,
                                                   .len = at - lit, .word = word };
            t->toks [t->ntoks++] = tok;
            t->has_repl = true;
            t->skip |= tok.skip;
            at += used;
            lit = at;
            continue;
        }
        if (s [at] == ' ' || s [at] == '\t' || s [at] == '\n') {
            //  a blank ends the word: it is text of its own, in no word
            if (at > lit)
                t->toks [t->ntoks++] = (s_tok_t) { .kind = T_TEXT, .start = lit,
                                                   .len = at - lit, .word = word };
            t->toks [t->ntoks++] = (s_tok_t) { .kind = T_TEXT, .start = at, .len = 1,
                                               .word = -1 };
            word++;
            lit = ++at;
            continue;
        }
        at++;
    }
    if (at > lit)
        t->toks [t->ntoks++] = (s_tok_t) { .kind = T_TEXT, .start = lit, .len = at - lit,
                                           .word = word };
    t->nwords = word + 1;
    //  GNU parallel: a replacement string in the command's first word
    //  (before any blank or `=`: `{}`, `{} | cat`, `x;{}`, not `V={}`)
    //  makes the command, and no argument is quoted
    for (size_t k = 0; k < t->ntoks && !t->raw && !o->quote; k++) {
        const s_tok_t *tok = &t->toks [k];
        if (tok->kind != T_TEXT) {
            t->raw = true;
            break;
        }
        if (strcspn (t->text + tok->start, " \t\n=") < tok->len)
            break;
    }
    return 0;
}

//  Append one argument, transformed, quoted unless raw
static void
s_put_arg (run_str_t *out, const s_template_t *t, const s_tok_t *tok, const char *s,
           size_t len, bool raw)
{
    int transform = tok ? tok->transform : 0;
    if (transform == 0 && (raw || t->raw)) {
        run_str_add (out, s, len);
        return;
    }
    run_str_t tmp = { 0 };
    if (transform >= X_PDIR)
        s_plus_transform (&tmp, tok, t->text, s, len);
    else
        run_transform (&tmp, transform, s, len);
    if (raw || t->raw)
        run_str_add (out, tmp.p ? tmp.p : "", tmp.len);
    else
        run_quote (out, tmp.p ? tmp.p : "", tmp.len);
    free (tmp.p);
}

//  Expand one token. `only`: with -X, the one argument this copy of the
//  word gets (-1: all of them).
//  Where a job's slot is not known yet (slot 0), {%} is left out and its
//  offset recorded in `slots` (run_offs_t).
static void
s_offs_add (run_offs_t *self, size_t at)
{
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 8;
        self->at = (size_t *) realloc (self->at, self->cap * sizeof (size_t));
        if (!self->at) {
            fprintf (stderr, "dpool run: out of memory\n");
            exit (RUN_EXIT_ERROR);
        }
    }
    self->at [self->n++] = at;
}

void
run_slot_fill (run_str_t *out, const char *text, size_t len, const run_offs_t *offs,
               uint64_t slot)
{
    char num [24];
    snprintf (num, sizeof num, "%llu", (unsigned long long) slot);
    out->len = 0;
    run_str_add (out, "", 0);
    size_t from = 0;
    for (size_t i = 0; offs && i < offs->n; i++) {
        run_str_add (out, text + from, offs->at [i] - from);
        run_str_adds (out, num);
        from = offs->at [i];
    }
    run_str_add (out, text + from, len - from);
}

static void
s_put_tok (run_str_t *out, const s_template_t *t, const s_tok_t *tok, const char **args,
           const size_t *lens, size_t nargs, uint64_t seq, int slot, run_offs_t *slots,
           long only, bool raw)
{
    char num [32];
    switch (tok->kind) {
        case T_TEXT:
            run_str_add (out, t->text + tok->start, tok->len);
            break;
        case T_SEQ:
            snprintf (num, sizeof num, "%llu", (unsigned long long) seq);
            run_str_adds (out, num);
            break;
        case T_LIT:
            run_str_adds (out, tok->lit);
            break;
        case T_TOTAL:
            snprintf (num, sizeof num, "%llu", (unsigned long long) t->total);
            run_str_adds (out, num);
            break;
        case T_SEQ0: {
            //  GNU parallel: 1 + int(log10(total_jobs)) digits
            int width = 1;
            for (uint64_t v = t->total; v >= 10; v /= 10)
                width++;
            snprintf (num, sizeof num, "%0*llu", width, (unsigned long long) seq);
            run_str_adds (out, num);
            break;
        }
        case T_SLOT:
            if (slots) {
                s_offs_add (slots, out->len);
                break;
            }
            snprintf (num, sizeof num, "%d", slot);
            run_str_adds (out, num);
            break;
        case T_POS: {
            long i = tok->pos > 0 ? tok->pos - 1 : (long) nargs + tok->pos;
            //  an argument that is not there is nothing (GNU parallel: -N3
            //  with 2 left, {3} of 2 sources); an empty one is ''
            if (i >= 0 && (size_t) i < nargs)
                s_put_arg (out, t, tok, args [i], lens [i], raw);
            break;
        }
        case T_ARG:
            if (only >= 0) {
                s_put_arg (out, t, tok, args [only], lens [only], raw);
                break;
            }
            for (size_t i = 0; i < nargs; i++) {
                if (i)
                    run_str_add (out, " ", 1);
                s_put_arg (out, t, tok, args [i], lens [i], raw);
            }
            break;
    }
}

//  Context replace: a word holding {} is repeated per argument, with -X
//  and, as GNU parallel does, with -N (not -n or -m)
static bool
s_context (const run_opts_t *o)
{
    return o->multi == 'X' || (o->max_replace && o->max_args > 0);
}

//  Build a command (or, raw, a --tagstring) from the template.
static void
s_expand (run_str_t *out, const s_template_t *t, const char **args, const size_t *lens,
          size_t nargs, uint64_t seq, int slot, run_offs_t *slots, bool context, bool append,
          bool raw)
{
    for (size_t k = 0; k < t->ntoks; k++) {
        const s_tok_t *tok = &t->toks [k];
        if (context && tok->word >= 0 && nargs > 1) {
            //  -X: a word holding {} is repeated once per argument
            size_t end = k;
            bool has_arg = false;
            while (end < t->ntoks && t->toks [end].word == tok->word) {
                has_arg |= t->toks [end].kind == T_ARG;
                end++;
            }
            if (has_arg) {
                for (size_t a = 0; a < nargs; a++) {
                    if (a)
                        run_str_add (out, " ", 1);
                    for (size_t j = k; j < end; j++)
                        s_put_tok (out, t, &t->toks [j], args, lens, nargs, seq, slot,
                                   slots, (long) a, raw);
                }
                k = end - 1;
                continue;
            }
        }
        s_put_tok (out, t, tok, args, lens, nargs, seq, slot, slots, -1, raw);
    }
    if (append && !t->has_repl && nargs > 0) {
        for (size_t i = 0; i < nargs; i++) {
            run_str_add (out, " ", 1);
            s_put_arg (out, t, NULL, args [i], lens [i], raw);
        }
    }
}

//  --------------------------------------------------------------------------
//  Reading records

typedef struct {
    int fd;
    bool nonblocking;
    char *buf;
    size_t cap, start, end;
    bool eof;
} s_reader_t;

//  Fill more bytes. Returns 1 read some, 0 at the end, 2 would block.
static int
s_reader_fill (s_reader_t *r)
{
    if (r->eof)
        return 0;
    if (r->start > 0 && r->start == r->end)
        r->start = r->end = 0;
    if (r->end == r->cap) {
        if (r->start > r->cap / 2 || (r->start > 0 && r->cap >= (64u << 20))) {
            memmove (r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        else {
            r->cap = r->cap ? r->cap * 2 : 1 << 16;
            r->buf = (char *) s_realloc (r->buf, r->cap);
        }
    }
    while (true) {
        ssize_t n = read (r->fd, r->buf + r->end, r->cap - r->end);
        if (n > 0) {
            r->end += (size_t) n;
            return 1;
        }
        if (n == 0) {
            r->eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 2;
        fprintf (stderr, "dpool run: reading input: %s\n", strerror (errno));
        r->eof = true;
        return 0;
    }
}

//  Next record: 1 (in *rec/*len, valid until the next call), 0 at the end,
//  2 would block.
static int
s_reader_next (s_reader_t *r, char delim, const char **rec, size_t *len)
{
    size_t scanned = 0;
    while (true) {
        char *at = r->end > r->start + scanned
                 ? (char *) memchr (r->buf + r->start + scanned, delim,
                                    r->end - r->start - scanned)
                 : NULL;
        if (at) {
            *rec = r->buf + r->start;
            *len = (size_t) (at - *rec);
            r->start += *len + 1;
            return 1;
        }
        scanned = r->end - r->start;
        if (r->eof) {
            if (r->start == r->end)
                return 0;
            *rec = r->buf + r->start;
            *len = r->end - r->start;
            r->start = r->end;
            return 1;
        }
        int rc = s_reader_fill (r);     //  keeps bytes relative to start
        if (rc == 2)
            return 2;
    }
}

//  --------------------------------------------------------------------------
//  The generator

struct run_gen {
    run_opts_t *o;
    s_template_t tpl, tag_tpl;
    s_template_t res_tpl;       //  --results NAME, when it has replacement strings
    run_str_t res;
    run_strv_t names;           //  --header column names
    regex_t colsep;
    bool has_colsep;
    const char *colsep_plain;   //  a literal separator (no regex syntax)
    size_t colsep_plain_len;
    //  --pipe --header: the header, given to every block
    bool pipe_header_done;
    run_str_t pipe_header;
    run_str_t block;            //  header + block
    run_parts_t parts;          //  --pipepart
    run_str_t tee;              //  --tee: all of stdin
    //  --regexp: recend, recstart (anchored) and both (for --rrs)
    regex_t re_end, re_start, re_both;
    bool has_re;
    bool re_empty_end;          //  --recstart without --recend
    //  streaming from stdin
    bool stream;
    s_reader_t stdin_reader;
    bool header_done, skip_done, ended;
    //  all input read: arguments as tuples
    run_strv_t *cols;           //  per source: its records
    size_t nsrc;
    size_t *group_of;           //  source -> group
    size_t ngroups;
    size_t *group_len;
    size_t *pos;                //  per group: current index
    bool product_done;
    //  -m / -X: arguments per job
    size_t per_job;
    //  -m / -X / --xargs: as many arguments as fit in max_len bytes of
    //  command line; a tuple taken that did not fit waits in `carry`
    size_t max_len;             //  0: no limit
    run_strv_t carry;           //  tuples of carry_width arguments, from carry_at
    size_t carry_at, carry_width;
    bool spread;                //  -m / -X: the last arguments spread over the slots
    run_str_t probe;            //  scratch for measuring
    //  the job being built
    run_strv_t args;            //  the arguments of one job
    size_t got;                 //  input tuples in args
    bool partial;               //  args holds part of a job (stdin blocked)
    run_str_t cmd, tag;
    run_offs_t cmd_slots, tag_slots;    //  where {%} goes in them
    uint64_t seq;
};

bool
run_gen_uses_stdin (run_gen_t *self)
{
    return self->stream || (self->o->pipe && !self->o->pipepart);
}

uint64_t
run_gen_total (run_gen_t *self)
{
    return self->tpl.total;
}

static bool
s_tpl_uses_slot (const s_template_t *t)
{
    for (size_t k = 0; k < t->ntoks; k++)
        if (t->toks [k].kind == T_SLOT || t->toks [k].kind == T_LIT)
            return true;
    return false;
}

bool
run_gen_uses_slot (run_gen_t *self)
{
    return s_tpl_uses_slot (&self->tpl) || s_tpl_uses_slot (&self->tag_tpl);
}

//  Is `s` only blanks?
static bool
s_blank (const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace ((unsigned char) s [i]))
            return false;
    return true;
}

//  Split one record into columns (and trim them), appending to `out`
static void
s_columns (run_gen_t *self, const char *rec, size_t len, run_strv_t *out)
{
    const char *trim = self->o->trim;
    if (!trim && (self->has_colsep || self->colsep_plain))
        trim = "rl";                    //  --colsep implies --trim rl
    bool left = trim && strchr (trim, 'l'), right = trim && strchr (trim, 'r');
    size_t at = 0;
    while (true) {
        size_t cut = len, next = len;
        if (self->colsep_plain) {
            const char *hit = self->colsep_plain_len
                ? (const char *) memmem (rec + at, len - at, self->colsep_plain,
                                         self->colsep_plain_len) : NULL;
            if (hit) {
                cut = (size_t) (hit - rec);
                next = cut + self->colsep_plain_len;
            }
        }
        else
        if (self->has_colsep) {
            regmatch_t m;
            char *copy = strndup (rec + at, len - at);
            if (regexec (&self->colsep, copy, 1, &m, at ? REG_NOTBOL : 0) == 0
            &&  m.rm_eo > m.rm_so) {
                cut = at + (size_t) m.rm_so;
                next = at + (size_t) m.rm_eo;
            }
            free (copy);
        }
        size_t b = at, e = cut;
        //  white space as Perl's \s, as GNU parallel trims (a CRLF
        //  line's \r too)
        while (left && b < e && isspace ((unsigned char) rec [b]))
            b++;
        while (right && e > b && isspace ((unsigned char) rec [e - 1]))
            e--;
        run_strv_add (out, rec + b, e - b);
        if (cut == len)
            break;
        at = next;
    }
}

//  Should this record be used? Handles -E, -r. Returns 1 use, 0 skip,
//  -1 end of input (-E).
static int
s_record_filter (run_gen_t *self, const char *rec, size_t len)
{
    if (self->o->eof_str && strlen (self->o->eof_str) == len
    &&  !memcmp (rec, self->o->eof_str, len))
        return -1;
    if (self->o->no_run_if_empty && s_blank (rec, len))
        return 0;
    return 1;
}

//  The header's column names from its first record
static void
s_header (run_gen_t *self, const char *rec, size_t len)
{
    if (self->has_colsep || self->colsep_plain)
        s_columns (self, rec, len, &self->names);
    else
        run_strv_add (&self->names, rec, len);
}

//  Read a whole source (file, or stdin) into records
static int
s_read_all (run_gen_t *self, int fd, run_strv_t *out, bool header)
{
    s_reader_t r = { .fd = fd };
    const char *rec;
    size_t len;
    int rc;
    bool first = true;
    while ((rc = s_reader_next (&r, self->o->delim, &rec, &len)) == 1) {
        if (first && self->o->skip_first_line) {
            first = false;
            continue;
        }
        if (header && first) {
            s_header (self, rec, len);
            first = false;
            continue;
        }
        first = false;
        int use = s_record_filter (self, rec, len);
        if (use < 0)
            break;
        if (use)
            run_strv_add (out, rec, len);
    }
    free (r.buf);
    return 0;
}

//  A Perl regexp (--colsep, --recstart / --recend, --header) compiled as
//  a POSIX ERE between prefix and suffix: \n \t \s \S \d \w translated
static int
s_re_compile (regex_t *rx, const char *prefix, const char *perl, const char *suffix, int flags)
{
    run_str_t re = { 0 };
    run_str_adds (&re, prefix);
    for (const char *p = perl; *p; p++) {
        if (*p == '\\' && p [1]) {
            p++;
            switch (*p) {
                case 'n': run_str_add (&re, "\n", 1); break;
                case 't': run_str_add (&re, "\t", 1); break;
                case 's': run_str_adds (&re, "[[:space:]]"); break;
                case 'S': run_str_adds (&re, "[^[:space:]]"); break;
                case 'd': run_str_adds (&re, "[0-9]"); break;
                case 'w': run_str_adds (&re, "[[:alnum:]_]"); break;
                default: run_str_add (&re, p - 1, 2); break;
            }
        }
        else
            run_str_add (&re, p, 1);
    }
    run_str_adds (&re, suffix);
    int rc = regcomp (rx, re.p, REG_EXTENDED | flags);
    free (re.p);
    return rc;
}

//  Plain column separators are matched as bytes; others as a POSIX ERE
//  with Perl's \t \s \d escapes translated.
static int
s_colsep_setup (run_gen_t *self)
{
    const char *sep = self->o->colsep;
    if (!sep)
        return 0;
    bool plain = true;
    for (const char *p = sep; *p; p++)
        if (strchr ("\\^$.|?*+()[]{}", *p))
            plain = false;
    if (!strcmp (sep, "\\t")) {
        self->colsep_plain = "\t";
        self->colsep_plain_len = 1;
        return 0;
    }
    if (plain) {
        self->colsep_plain = sep;
        self->colsep_plain_len = strlen (sep);
        return 0;
    }
    int rc = s_re_compile (&self->colsep, "", sep, "", 0);
    if (rc != 0) {
        fprintf (stderr, "dpool run: --colsep '%s': not a regular expression dpool "
                 "supports; Try --help\n", sep);
        return -1;
    }
    self->has_colsep = true;
    return 0;
}

static int s_re_setup (run_gen_t *self);

//  Does the command (or --tagstring) use the number of jobs ({##} {0#})?
static bool
s_wants_total (const run_opts_t *o)
{
    if (!o->plus)
        return false;
    for (int i = 0; i <= o->ncommand; i++) {
        const char *w = i < o->ncommand ? o->command [i] : o->tagstring;
        if (w && (strstr (w, "{##}") || strstr (w, "{0#}")))
            return true;
    }
    return false;
}

//  --tee: read all of stdin (at most DP_RUN_PART_MAX bytes: it goes to
//  each job as its stdin, in one message). Returns 0, or -1 (printed).
static int
s_tee_read (run_gen_t *self)
{
    char buf [65536];
    while (true) {
        ssize_t n = read (0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf (stderr, "dpool run: --tee: cannot read stdin: %s\n", strerror (errno));
            return -1;
        }
        if (n == 0)
            break;
        if (self->tee.len + (size_t) n > DP_RUN_PART_MAX) {
            fprintf (stderr, "dpool run: --tee: stdin over %u MiB is not supported (each job "
                     "gets all of it in one message)\n", DP_RUN_PART_MAX >> 20);
            return -1;
        }
        run_str_add (&self->tee, buf, (size_t) n);
    }
    if (!self->tee.p)
        run_str_add (&self->tee, "", 0);
    return 0;
}

const char *
run_gen_tee (run_gen_t *self, size_t *len)
{
    *len = self->tee.len;
    return self->o->tee ? self->tee.p : NULL;
}

run_gen_t *
run_gen_new (run_opts_t *o)
{
    run_gen_t *self = (run_gen_t *) s_realloc (NULL, sizeof *self);
    memset (self, 0, sizeof *self);
    self->o = o;
    if (s_colsep_setup (self) != 0) {
        free (self);
        return NULL;
    }
    //  where the input comes from
    int nsrc = o->nsources;
    bool stdin_only = nsrc == 0
        || (nsrc == 1 && o->sources [0].is_file && !strcmp (o->sources [0].path, "-"));
    //  (--halt reads it all first: its jobs are sent one slot at a time,
    //  and the wait between them must not be on a readable stdin)
    //  ({##}: the number of jobs is known once all is read)
    bool wants_total = s_wants_total (o);
    if (wants_total && o->pipe) {
        fprintf (stderr, "dpool run: {##} and {0#} with --pipe are not supported; Try --help\n");
        free (self);
        return NULL;
    }
    self->stream = stdin_only && !o->multi && !o->pipe && o->halt_when == HALT_NEVER && !wants_total;
    if (o->pipe && o->regexp && s_re_setup (self) != 0) {
        run_gen_destroy (&self);
        return NULL;
    }
    if (o->tee && s_tee_read (self) != 0) {
        run_gen_destroy (&self);
        return NULL;
    }
    if (o->pipepart) {
        if (run_parts_find (&self->parts, o) != 0) {
            run_gen_destroy (&self);
            return NULL;
        }
        self->tpl.total = self->parts.n;
    }
    else
    if (o->pipe || self->stream) {
        self->stdin_reader.fd = 0;
        fcntl (0, F_SETFL, fcntl (0, F_GETFL) | O_NONBLOCK);
        self->stdin_reader.nonblocking = true;
        if (!o->header && !o->skip_first_line)
            self->header_done = self->skip_done = true;
    }
    else {
        size_t n = nsrc ? (size_t) nsrc : 1;
        self->cols = (run_strv_t *) s_realloc (NULL, n * sizeof (run_strv_t));
        memset (self->cols, 0, n * sizeof (run_strv_t));
        self->nsrc = n;
        for (size_t i = 0; i < n; i++) {
            run_source_t *src = nsrc ? &o->sources [i] : NULL;
            if (!src || src->is_file) {
                const char *path = src ? src->path : "-";
                int fd = strcmp (path, "-") ? open (path, O_RDONLY | O_CLOEXEC) : 0;
                if (fd < 0) {
                    fprintf (stderr, "dpool run: cannot open input file '%s': %s\n", path,
                             strerror (errno));
                    run_gen_destroy (&self);
                    return NULL;
                }
                s_read_all (self, fd, &self->cols [i], o->header);
                if (fd > 0)
                    close (fd);
            }
            else {
                //  a ::: list: as GNU parallel, each value is records cut
                //  by the delimiter (`::: 'a<NL>b'` is two, `-d , ::: a,`
                //  is "a" and ""); --header takes the first as the name
                run_strv_t recs = { 0 };
                for (size_t k = 0; k < src->values.n; k++) {
                    const char *v = src->values.v [k], *end = v + src->values.len [k];
                    while (true) {
                        const char *d = (const char *) memchr (v, o->delim, (size_t) (end - v));
                        run_strv_add (&recs, v, (size_t) ((d ? d : end) - v));
                        if (!d)
                            break;
                        v = d + 1;
                    }
                }
                size_t first = 0;
                if (o->header && recs.n) {
                    s_header (self, recs.v [0], recs.len [0]);
                    first = 1;
                }
                for (size_t k = first; k < recs.n; k++) {
                    int use = s_record_filter (self, recs.v [k], recs.len [k]);
                    if (use < 0)
                        break;
                    if (use)
                        run_strv_add (&self->cols [i], recs.v [k], recs.len [k]);
                }
                run_strv_free (&recs);
            }
        }
        //  GNU parallel: among several sources (not --link), an empty one
        //  is one empty argument, unless all are empty; with --link, it
        //  stops (255)
        bool any = false;
        for (size_t i = 0; n > 1 && o->link_all && i < n; i++)
            if (self->cols [i].n == 0) {
                fprintf (stderr, "dpool run: --link with an empty input source is not "
                         "supported; Try --help\n");
                run_gen_destroy (&self);
                return NULL;
            }
        for (size_t i = 0; i < n; i++)
            any |= self->cols [i].n > 0;
        for (size_t i = 0; n > 1 && any && !o->link_all && i < n; i++)
            if (self->cols [i].n == 0 && !(nsrc && (o->sources [i].linked
                                                    || (i + 1 < n && o->sources [i + 1].linked))))
                run_strv_add (&self->cols [i], "", 0);
        //  groups: linked sources advance together; --link wraps the
        //  shorter ones (the group is as long as its longest source),
        //  :::+ / ::::+ drop the rest of the longer ones (as its shortest)
        self->group_of = (size_t *) s_realloc (NULL, n * sizeof (size_t));
        self->group_len = (size_t *) s_realloc (NULL, n * sizeof (size_t));
        self->pos = (size_t *) s_realloc (NULL, n * sizeof (size_t));
        for (size_t i = 0; i < n; i++) {
            bool linked = i > 0 && (o->link_all || (nsrc && o->sources [i].linked));
            size_t len = self->cols [i].n;
            if (!linked)
                self->group_len [self->ngroups++] = len;
            size_t g = self->ngroups - 1;
            self->group_of [i] = g;
            if (linked && (o->link_all ? len > self->group_len [g] : len < self->group_len [g]))
                self->group_len [g] = len;
            self->pos [g] = 0;
        }
        for (size_t g = 0; g < self->ngroups; g++)
            if (self->group_len [g] == 0)
                self->product_done = true;     //  an empty source: no jobs
        //  -m / -X spread the arguments evenly over the job slots
        if (o->multi == 'm' || o->multi == 'X') {
            size_t total = 1;
            for (size_t g = 0; g < self->ngroups; g++)
                total *= self->group_len [g];
            size_t slots = o->jobslots > 0 ? (size_t) o->jobslots : 1;
            self->per_job = (total + slots - 1) / slots;
            if (self->per_job == 0)
                self->per_job = 1;
        }
        else
        if (o->multi == 'x')
            self->per_job = 0;
        if (o->multi) {
            //  GNU parallel's usable command line length on Linux: half of
            //  (the longest single argument of exec that its search finds,
            //  130329 of MAX_ARG_STRLEN's 131071, less 3000 for wrapping),
            //  or -s if smaller
            self->max_len = RUN_MAX_LINE;
            if (o->max_chars && o->max_chars < self->max_len)
                self->max_len = o->max_chars;
            self->per_job = 0;
        }
    }
    if (o->max_args > 0 && !o->pipe)
        self->per_job = (size_t) o->max_args;
    uint64_t njobs = 0;
    if (self->cols && !self->product_done) {
        njobs = 1;
        for (size_t g = 0; g < self->ngroups; g++)
            njobs *= self->group_len [g];
        if (self->per_job > 1)
            njobs = (njobs + self->per_job - 1) / self->per_job;
    }
    if (s_template_parse (&self->tpl, o, &self->names) != 0) {
        run_gen_destroy (&self);
        return NULL;
    }
    self->tpl.total = njobs;
    if (o->tagstring) {
        run_opts_t t = { .command = (char **) &o->tagstring, .ncommand = 1, .plus = o->plus };
        memcpy (t.repl, o->repl, sizeof t.repl);
        if (s_template_parse (&self->tag_tpl, &t, &self->names) != 0) {
            run_gen_destroy (&self);
            return NULL;
        }
        self->tag_tpl.total = njobs;
    }
    if (o->results) {
        run_opts_t t = { .command = (char **) &o->results, .ncommand = 1, .plus = o->plus };
        memcpy (t.repl, o->repl, sizeof t.repl);
        if (s_template_parse (&self->res_tpl, &t, &self->names) != 0) {
            run_gen_destroy (&self);
            return NULL;
        }
        self->res_tpl.total = njobs;
    }
    return self;
}

void
run_gen_destroy (run_gen_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    run_gen_t *self = *self_p;
    free (self->tpl.text);
    free (self->tpl.toks);
    free (self->tag_tpl.text);
    free (self->tag_tpl.toks);
    free (self->res_tpl.text);
    free (self->res_tpl.toks);
    free (self->res.p);
    run_strv_free (&self->names);
    if (self->has_colsep)
        regfree (&self->colsep);
    free (self->stdin_reader.buf);
    for (size_t i = 0; i < self->nsrc; i++)
        run_strv_free (&self->cols [i]);
    free (self->cols);
    free (self->group_of);
    free (self->group_len);
    free (self->pos);
    run_strv_free (&self->args);
    run_strv_free (&self->carry);
    free (self->pipe_header.p);
    free (self->block.p);
    free (self->tee.p);
    run_parts_free (&self->parts);
    if (self->has_re) {
        regfree (&self->re_end);
        regfree (&self->re_start);
        regfree (&self->re_both);
    }
    free (self->probe.p);
    free (self->cmd.p);
    free (self->tag.p);
    free (self->cmd_slots.at);
    free (self->tag_slots.at);
    if (self->stdin_reader.nonblocking)
        fcntl (0, F_SETFL, fcntl (0, F_GETFL) & ~O_NONBLOCK);
    free (self);
    *self_p = NULL;
}

//  Next tuple from the cartesian product into self->args. Returns 1 or 0.
static int
s_next_tuple (run_gen_t *self)
{
    if (self->product_done)
        return 0;
    for (size_t i = 0; i < self->nsrc; i++) {
        run_strv_t *c = &self->cols [i];
        size_t at = self->pos [self->group_of [i]] % c->n;
        if (self->has_colsep || self->colsep_plain || self->o->trim)
            s_columns (self, c->v [at], c->len [at], &self->args);
        else
            run_strv_add (&self->args, c->v [at], c->len [at]);
    }
    //  advance: the last group fastest
    size_t g = self->ngroups;
    while (g > 0) {
        g--;
        if (++self->pos [g] < self->group_len [g])
            return 1;
        self->pos [g] = 0;
    }
    self->product_done = true;
    return 1;
}

//  Next tuple into self->args: what waits in carry first
static int
s_pull_tuple (run_gen_t *self)
{
    if (self->carry_at < self->carry.n) {
        for (size_t k = 0; k < self->carry_width && self->carry_at < self->carry.n; k++) {
            size_t i = self->carry_at++;
            run_strv_add (&self->args, self->carry.v [i], self->carry.len [i]);
            free (self->carry.v [i]);
            self->carry.v [i] = NULL;       //  (run_strv_free frees them all)
        }
        if (self->carry_at == self->carry.n)
            self->carry.n = self->carry_at = 0;
        return 1;
    }
    return s_next_tuple (self);
}

//  Put self->args [from..] back (tuples of `width` arguments that did not
//  fit), ahead of what waits already
static void
s_uncarry (run_gen_t *self, size_t from, size_t width)
{
    run_strv_t rest = { 0 };
    for (size_t i = from; i < self->args.n; i++) {
        run_strv_add (&rest, self->args.v [i], self->args.len [i]);
        free (self->args.v [i]);
    }
    self->args.n = from;
    for (size_t i = self->carry_at; i < self->carry.n; i++) {
        run_strv_add (&rest, self->carry.v [i], self->carry.len [i]);
        free (self->carry.v [i]);
    }
    free (self->carry.v);
    free (self->carry.len);
    self->carry = rest;
    self->carry_at = 0;
    self->carry_width = width ? width : 1;
}

//  The length of the command with args [from, to) of self->args
static size_t
s_cmd_len (run_gen_t *self, size_t from, size_t to)
{
    self->probe.len = 0;
    s_expand (&self->probe, &self->tpl, (const char **) self->args.v + from,
              self->args.len + from, to - from, self->seq + 1, 1, NULL,
              s_context (self->o), true, false);
    return self->probe.len;
}

//  One job's tuples for -m / -X / --xargs, as GNU parallel takes them: as
//  many as keep the command line under max_len (the length grows by
//  what one more copy of a tuple adds), and once the input ends with -m
//  or -X, that job's arguments spread evenly over the job slots. Returns
//  the number of tuples (0: the end), or -1 (printed: one argument is
//  too long already).
static int
s_fill_multi (run_gen_t *self)
{
    size_t len = 0;
    int got = 0;
    while (!self->per_job || (size_t) got < self->per_job) {
        size_t from = self->args.n;
        if (s_pull_tuple (self) != 1)
            break;
        size_t n = self->args.n - from;
        if (got == 0)
            len = s_cmd_len (self, from, self->args.n);
        else {
            //  what a second copy of the tuple adds (its words, a blank)
            for (size_t i = 0; i < n; i++)
                run_strv_add (&self->args, self->args.v [from + i], self->args.len [from + i]);
            size_t twice = s_cmd_len (self, from, from + 2 * n);
            size_t once = s_cmd_len (self, from, from + n);
            for (size_t i = from + n; i < self->args.n; i++)
                free (self->args.v [i]);
            self->args.n = from + n;
            len += twice - once;
        }
        got++;
        if (len >= self->max_len) {
            if (got == 1) {
                fprintf (stderr, "dpool run: command line too long (%zu >= %zu) at input %llu; "
                         "Try --help\n", len, self->max_len,
                         (unsigned long long) self->seq + 1);
                return -1;
            }
            s_uncarry (self, from, n);
            got--;
            break;
        }
    }
    bool ended = self->carry_at == self->carry.n && self->product_done;
    if ((self->o->multi == 'm' || self->o->multi == 'X') && !self->spread && ended
    &&  got > 1 && self->o->jobslots > 0) {
        //  the end of the input: spread over the slots (GNU's -m, -X)
        self->spread = true;
        size_t each = ((size_t) got + (size_t) self->o->jobslots - 1) / (size_t) self->o->jobslots;
        self->per_job = each;
        if ((size_t) got > each) {
            size_t width = self->args.n / (size_t) got;     //  args per tuple
            s_uncarry (self, each * width, width);
            got = (int) each;
        }
    }
    return got;
}

//  Next record streamed from stdin into self->args: 1, 0 end, 2 later
static int
s_next_streamed (run_gen_t *self)
{
    while (!self->ended) {
        const char *rec;
        size_t len;
        int rc = s_reader_next (&self->stdin_reader, self->o->delim, &rec, &len);
        if (rc != 1)
            return rc;
        if (!self->skip_done) {
            self->skip_done = true;
            if (self->o->skip_first_line)
                continue;
        }
        if (!self->header_done) {
            self->header_done = true;
            if (self->o->header) {
                s_header (self, rec, len);
                //  the names are known only now: parse the template again
                free (self->tpl.text);
                free (self->tpl.toks);
                memset (&self->tpl, 0, sizeof self->tpl);
                if (s_template_parse (&self->tpl, self->o, &self->names) != 0)
                    return -1;
                continue;
            }
        }
        int use = s_record_filter (self, rec, len);
        if (use < 0) {
            self->ended = true;
            break;
        }
        if (!use)
            continue;
        if (self->has_colsep || self->colsep_plain || self->o->trim)
            s_columns (self, rec, len, &self->args);
        else
            run_strv_add (&self->args, rec, len);
        return 1;
    }
    return 0;
}

//  --pipe: the end of the next block in the reader, or 0 (need more)

//  --regexp: set up the regexps. Returns 0, or -1 (printed).
static int
s_re_setup (run_gen_t *self)
{
    const run_opts_t *o = self->o;
    //  GNU parallel: --recend '' with --regexp is any one byte
    const char *end = o->recend ? (*o->recend ? o->recend : ".") : (o->recstart ? "" : "\n");
    const char *start = o->recstart ? o->recstart : "";
    char *both = (char *) malloc (strlen (end) + strlen (start) + 8);
    if (!both)
        return -1;
    sprintf (both, "(%s)(%s)", *end ? end : "()", *start ? start : "()");
    int rc = s_re_compile (&self->re_end, "(", *end ? end : "()", ")", 0);
    if (rc == 0 && (rc = s_re_compile (&self->re_start, "^(", *start ? start : "()", ")", 0)) != 0)
        regfree (&self->re_end);
    if (rc == 0 && (rc = s_re_compile (&self->re_both, "", both, "", 0)) != 0) {
        regfree (&self->re_end);
        regfree (&self->re_start);
    }
    free (both);
    self->re_empty_end = !*end && *start;
    if (rc != 0) {
        fprintf (stderr, "dpool run: --recstart / --recend: not a regular expression dpool "
                 "supports; Try --help\n");
        return -1;
    }
    self->has_re = true;
    return 0;
}

//  --regexp: is `p` (0 < p <= avail) a record boundary, the end of a
//  --recend match that --recstart matches at? `next` keeps the scan's
//  place: boundaries are asked for in ascending order.
static size_t
s_re_next_boundary (run_gen_t *self, const char *text, size_t avail, size_t from)
{
    size_t at = from;
    if (self->re_empty_end) {
        //  --recstart alone: a boundary where it matches, after the start
        regmatch_t m;
        at++;
        if (at >= avail || regexec (&self->re_both, text + at, 1, &m, REG_NOTBOL) != 0)
            return 0;
        return at + (size_t) m.rm_so;
    }
    while (at < avail) {
        regmatch_t m;
        if (regexec (&self->re_end, text + at, 1, &m, at ? REG_NOTBOL : 0) != 0)
            return 0;
        size_t end = at + (size_t) m.rm_eo;
        if (end > at && end <= avail) {
            regmatch_t s;
            if (end == avail
            ||  regexec (&self->re_start, text + end, 1, &s, 0) == 0)
                return end;
        }
        at = (size_t) m.rm_eo > 0 ? at + (size_t) m.rm_so + 1 : at + 1;
    }
    return 0;
}

//  --regexp: the end of the next block (as s_block_end)
static size_t
s_block_end_re (run_gen_t *self)
{
    s_reader_t *r = &self->stdin_reader;
    size_t avail = r->end - r->start;
    if (avail < self->o->block_size && !r->eof && self->o->pipe_records <= 0)
        return 0;
    char *text = strndup (r->buf + r->start, avail);
    if (!text)
        return 0;
    size_t limit = avail < self->o->block_size ? avail : self->o->block_size;
    size_t best = 0, p = 0;
    int count = 0, want = self->o->pipe_records > 0 && self->o->max_args != -1
                        ? self->o->pipe_records : 0;
    while ((p = s_re_next_boundary (self, text, avail, p)) != 0) {
        if (p == avail && !r->eof)
            break;                      //  (the match may go on in what comes)
        if (want) {
            if (++count == want) {
                best = p;
                break;
            }
            continue;
        }
        if (p > limit && best)
            break;
        best = p;
        if (p > limit)
            break;
    }
    free (text);
    if (want)
        return best ? best : r->eof ? avail : 0;
    if (r->eof && avail <= self->o->block_size)
        return avail;
    if (best == 0 || best == avail)
        return r->eof ? avail : (best == avail ? best : 0);
    return best;
}

static size_t
s_block_end (run_gen_t *self)
{
    if (self->has_re)
        return s_block_end_re (self);
    s_reader_t *r = &self->stdin_reader;
    const char *data = r->buf + r->start;
    size_t avail = r->end - r->start;
    const char *recend = self->o->recend ? self->o->recend : (self->o->recstart ? "" : "\n");
    const char *recstart = self->o->recstart ? self->o->recstart : "";
    size_t el = strlen (recend), sl = strlen (recstart);
    int lines = self->o->max_args == -1 ? self->o->pipe_records : 1;
    //  is `p` a record boundary (recend just before, recstart at p)?
    #define S_BOUNDARY(p) ((p) >= el && (p) + sl <= avail \
        && !memcmp (data + (p) - el, recend, el) && !memcmp (data + (p), recstart, sl))
    if (self->o->pipe_records > 0 && self->o->max_args != -1) {
        //  -N: exactly N records
        int count = 0;
        for (size_t p = 1; p <= avail; p++)
            if (S_BOUNDARY (p) && ++count == self->o->pipe_records)
                return p;
        return r->eof ? avail : 0;
    }
    if (avail < self->o->block_size && !r->eof)
        return 0;
    if (r->eof && avail <= self->o->block_size && lines > 1) {
        //  -L N: the whole records of N lines, then what is left on its own
        int count = 0;
        size_t last = 0;
        for (size_t p = 1; p <= avail; p++)
            if (S_BOUNDARY (p) && ++count % lines == 0)
                last = p;
        return last ? last : avail;
    }
    if (r->eof && avail <= self->o->block_size)
        return avail;
    //  the last boundary within the block, else the first after it
    size_t limit = avail < self->o->block_size ? avail : self->o->block_size;
    size_t best = 0;
    if (el == 1 && sl == 0 && lines == 1) {
        const char *nl = (const char *) memrchr (data, recend [0], limit);
        if (nl)
            best = (size_t) (nl - data) + 1;
        if (!best) {
            nl = (const char *) memchr (data + limit, recend [0], avail - limit);
            best = nl ? (size_t) (nl - data) + 1 : 0;
        }
    }
    else {
        int count = 0;
        for (size_t p = 1; p <= avail; p++)
            if (S_BOUNDARY (p) && ++count % lines == 0) {
                if (p > limit && best)
                    break;
                best = p;
                if (p > limit)
                    break;
            }
    }
    #undef S_BOUNDARY
    if (best == 0 || best == avail)
        return r->eof ? avail : (best == avail ? best : 0);
    return best;
}

//  --pipe --header: the header's length at the start of what is read
//  (all of it when the header is longer), or -1 (printed: a regexp this
//  code does not take)
static long
s_pipe_header_len (run_gen_t *self)
{
    s_reader_t *r = &self->stdin_reader;
    const char *data = r->buf + r->start;
    size_t avail = r->end - r->start;
    const char *h = self->o->header_re;
    long lines = !strcmp (h, ":") ? 1 : 0;
    if (!lines && strspn (h, "0123456789") == strlen (h))
        lines = atol (h);
    if (lines > 0 || !strcmp (h, "0")) {
        size_t at = 0;
        for (long k = 0; k < lines && at < avail; k++) {
            const char *nl = (const char *) memchr (data + at, '\n', avail - at);
            at = nl ? (size_t) (nl - data) + 1 : avail;
        }
        return (long) at;
    }
    //  Perl's regexp as a POSIX ERE, `.` not matching a newline
    regex_t rx;
    int rc = s_re_compile (&rx, "^", h, "", REG_NEWLINE);
    if (rc != 0) {
        fprintf (stderr, "dpool run: --header '%s': not a regular expression dpool "
                 "supports; Try --help\n", h);
        return -1;
    }
    char *copy = strndup (data, avail);     //  (regexec wants a string)
    regmatch_t m;
    long len = copy && regexec (&rx, copy, 1, &m, 0) == 0 && m.rm_so == 0 ? (long) m.rm_eo : 0;
    free (copy);
    regfree (&rx);
    return len;
}

//  --rrs: the block without its record separators (GNU parallel: every
//  recend+recstart, a recstart at its start, a recend at its end),
//  appended to self->block
static void
s_rrs (run_gen_t *self, const char *data, size_t len)
{
    if (self->has_re) {
        //  s/$recend$recstart//g, s/^$recstart//, s/$recend$//
        char *text = strndup (data, len);
        if (!text)
            return;
        size_t at = 0, lit = 0, end = len;
        regmatch_t m;
        if (regexec (&self->re_start, text, 1, &m, 0) == 0)
            at = lit = (size_t) m.rm_eo;
        //  the last --recend match that ends the block
        for (size_t p = at; p < len; ) {
            if (regexec (&self->re_end, text + p, 1, &m, p ? REG_NOTBOL : 0) != 0)
                break;
            if (p + (size_t) m.rm_eo == len && m.rm_eo > m.rm_so) {
                end = p + (size_t) m.rm_so;
                break;
            }
            p += (size_t) m.rm_so + 1;
        }
        while (at < end) {
            if (regexec (&self->re_both, text + at, 1, &m, at ? REG_NOTBOL : 0) != 0
            ||  at + (size_t) m.rm_eo > end || m.rm_eo == m.rm_so)
                break;
            run_str_add (&self->block, text + lit, at + (size_t) m.rm_so - lit);
            at += (size_t) m.rm_eo;
            lit = at;
        }
        run_str_add (&self->block, text + lit, end - lit);
        free (text);
        return;
    }
    const char *recend = self->o->recend ? self->o->recend : (self->o->recstart ? "" : "\n");
    const char *recstart = self->o->recstart ? self->o->recstart : "";
    size_t el = strlen (recend), sl = strlen (recstart), both = el + sl;
    size_t at = 0;
    if (sl && len >= sl && !memcmp (data, recstart, sl))
        at = sl;
    bool tail = el && len - at >= el && !memcmp (data + len - el, recend, el);
    size_t end = tail ? len - el : len;
    size_t lit = at;
    while (both && at + both <= end) {
        if (!memcmp (data + at, recend, el) && !memcmp (data + at + el, recstart, sl)) {
            run_str_add (&self->block, data + lit, at - lit);
            at += both;
            lit = at;
        }
        else
            at++;
    }
    run_str_add (&self->block, data + lit, end - lit);
}

static int
s_next_block (run_gen_t *self, run_job_t *job)
{
    s_reader_t *r = &self->stdin_reader;
    while (true) {
        if (self->o->header && !self->pipe_header_done
        &&  (r->eof || r->end - r->start >= self->o->block_size)) {
            //  the header: taken from the input once, given to every block
            long hl = s_pipe_header_len (self);
            if (hl < 0)
                return -1;
            run_str_add (&self->pipe_header, r->buf + r->start, (size_t) hl);
            r->start += (size_t) hl;
            self->pipe_header_done = true;
        }
        size_t end = !self->o->header || self->pipe_header_done
                   ? (r->end > r->start ? s_block_end (self) : 0) : 0;
        if (end > 0) {
            job->stdin_data = r->buf + r->start;
            job->stdin_len = end;
            r->start += end;
            if (self->pipe_header.len || self->o->rrs) {
                self->block.len = 0;
                run_str_add (&self->block, self->pipe_header.p, self->pipe_header.len);
                if (self->o->rrs)
                    s_rrs (self, job->stdin_data, job->stdin_len);
                else
                    run_str_add (&self->block, job->stdin_data, job->stdin_len);
                job->stdin_data = self->block.p ? self->block.p : "";
                job->stdin_len = self->block.len;
            }
            return 1;
        }
        if (r->eof && r->start == r->end)
            return 0;
        //  make room so one block fits after the unread bytes
        if (r->start > 0 && r->end - r->start < r->cap / 2) {
            memmove (r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        int rc = s_reader_fill (r);
        if (rc == 2)
            return 2;
    }
}

//  --plus {uniq}: skip a job whose arguments are not all different;
//  {choose_k}: one whose arguments are not in ascending (byte) order
static bool
s_skipped (run_gen_t *self)
{
    run_strv_t *a = &self->args;
    for (size_t i = 1; i < a->n; i++) {
        if (self->tpl.skip & S_CHOOSE) {
            size_t n = a->len [i - 1] < a->len [i] ? a->len [i - 1] : a->len [i];
            int c = memcmp (a->v [i - 1], a->v [i], n);
            if (c > 0 || (c == 0 && a->len [i - 1] >= a->len [i]))
                return true;
        }
        if (self->tpl.skip & S_UNIQ)
            for (size_t j = 0; j < i; j++)
                if (a->len [i] == a->len [j] && !memcmp (a->v [i], a->v [j], a->len [i]))
                    return true;
    }
    return false;
}

int
run_gen_next (run_gen_t *self, run_job_t *job)
{
    run_opts_t *o = self->o;
    memset (job, 0, sizeof *job);
    if (!self->partial) {
        for (size_t i = 0; i < self->args.n; i++)
            free (self->args.v [i]);
        self->args.n = 0;
        self->got = 0;
    }
    if (o->pipepart) {
        int rc = run_parts_read (&self->parts, &self->block);
        if (rc != 1)
            return rc;
        job->stdin_data = self->block.p;
        job->stdin_len = self->block.len;
    }
    else
    if (o->pipe) {
        int rc = s_next_block (self, job);
        if (rc != 1)
            return rc;
    }
    else {
        //  one job's arguments: per_job input tuples (-n), as many as fit
        //  (-m, -X, --xargs), else one
        size_t want = self->per_job ? self->per_job : 1;
        if (self->max_len) {
            int got = s_fill_multi (self);
            if (got < 0)
                return -1;
            self->got = (size_t) got;
            want = 0;
        }
        while (self->got < want) {
            int rc = self->stream ? s_next_streamed (self) : s_next_tuple (self);
            if (rc == 2) {
                //  (a partial -n group waits for the rest, or the end)
                self->partial = true;
                return 2;
            }
            if (rc < 0)
                return -1;
            if (rc == 0)
                break;
            self->got++;
        }
        self->partial = false;
        if (self->got == 0)
            return 0;
    }
    self->seq++;
    job->skipped = self->tpl.skip && s_skipped (self);
    int slot = (int) ((self->seq - 1) % (uint64_t) (o->jobslots > 0 ? o->jobslots : 1)) + 1;
    size_t nargs = o->max_replace && o->max_args == 0 ? 0 : self->args.n;
    self->cmd.len = 0;
    run_str_add (&self->cmd, "", 0);
    //  {%} is the slot of the worker that runs the job: left for it to fill
    self->cmd_slots.n = self->tag_slots.n = 0;
    s_expand (&self->cmd, &self->tpl, (const char **) self->args.v, self->args.len, nargs,
              self->seq, slot, &self->cmd_slots, s_context (o), !o->pipe, false);
    job->slot_at = &self->cmd_slots;
    job->tag_slot_at = &self->tag_slots;
    job->seq = self->seq;
    job->args = self->args.v;
    job->arg_lens = self->args.len;
    job->nargs = nargs;
    job->names = &self->names;
    job->cmd = self->cmd.p;
    job->cmd_len = self->cmd.len;
    if (o->tee) {
        job->stdin_data = self->tee.p;      //  all of stdin, to every job
        job->stdin_len = self->tee.len;
    }
    if (o->tagstring || o->tag) {
        self->tag.len = 0;
        run_str_add (&self->tag, "", 0);
        if (o->tagstring)
            s_expand (&self->tag, &self->tag_tpl, (const char **) self->args.v,
                      self->args.len, nargs, self->seq, slot, &self->tag_slots, false, false,
                      true);
        else
            for (size_t i = 0; i < nargs; i++) {
                if (i)
                    run_str_add (&self->tag, " ", 1);
                run_str_add (&self->tag, self->args.v [i], self->args.len [i]);
            }
        job->tag = self->tag.p;
    }
    if (self->res_tpl.has_repl) {
        //  --results NAME{}...: NAME, NAME.err, NAME.seq (NAME/: a folder)
        self->res.len = 0;
        run_str_add (&self->res, "", 0);
        s_expand (&self->res, &self->res_tpl, (const char **) self->args.v, self->args.len,
                  nargs, self->seq, slot, NULL, false, false, true);
        job->results = self->res.p;
    }
    return 1;
}

int
run_build_command (run_opts_t *opts, const char **args, const size_t *lens, size_t nargs,
                   uint64_t seq, run_str_t *out)
{
    s_template_t t = { 0 };
    int rc = s_template_parse (&t, opts, NULL);
    if (rc == 0)
        s_expand (out, &t, args, lens, nargs, seq, 1, NULL, s_context (opts), true, false);
    free (t.text);
    free (t.toks);
    return rc;
}
