/*  =========================================================================
    dp_run_shell - the shell `dpool run`'s commands run with

    GNU parallel's choice: $PARALLEL_SHELL, else the nearest ancestor
    process that is a shell (the one the command line was typed in, or the
    script's interpreter), else $SHELL, else /bin/sh. The ancestor matters:
    `export -f f; dpool run f ::: 1` from a bash script under a scheduler
    that sets no $SHELL (or sets /bin/sh) must run f with bash, as GNU
    parallel does. The walk reads /proc (Linux); elsewhere it finds nothing
    and $SHELL decides.
    =========================================================================
*/
#include "dp_run.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  The shells GNU parallel knows (its parent_shell)
static const char *s_shells [] = {
    "ash", "bash", "bsd-csh", "csh", "dash", "fdsh", "fish", "fizsh", "ksh", "ksh93",
    "lksh", "mksh", "pdksh", "posh", "rbash", "rc", "rush", "rzsh", "sash", "sh",
    "static-sh", "tcsh", "yash", "zsh", NULL
};

static bool
s_is_shell (const char *name, size_t len)
{
    for (const char **s = s_shells; *s; s++)
        if (strlen (*s) == len && memcmp (*s, name, len) == 0)
            return true;
    return false;
}

//  Is argv [0] a shell's? Sets *name (len *len) and *login (a leading '-').
//  Forms as GNU parallel's pattern: "bash", "/bin/bash", "-bash",
//  "busybox sh", each alone or followed by a space and not "(".
static bool
s_argv0_shell (const char *argv0, const char **name, size_t *len, bool *login)
{
    const char *p = argv0;
    if (strncmp (p, "busybox ", 8) == 0)
        p += 8;
    else {
        const char *word_end = p + strcspn (p, " \t");
        const char *slash = NULL;
        for (const char *q = p; q < word_end; q++)
            if (*q == '/')
                slash = q;
        if (slash)
            p = slash + 1;
    }
    *login = *p == '-';
    if (*login)
        p++;
    size_t n = strcspn (p, " \t");
    const char *rest = p + n;
    while (*rest == ' ')
        rest++;
    if (*rest == '(' || !s_is_shell (p, n))
        return false;
    *name = p;
    *len = n;
    return true;
}

//  The first executable NAME in $PATH, or NULL (malloc'd)
static char *
s_which (const char *name, size_t len)
{
    const char *path = getenv ("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t dirlen = strcspn (path, ":");
        char full [PATH_MAX];
        int n = snprintf (full, sizeof full, "%.*s/%.*s", (int) dirlen, path, (int) len, name);
        struct stat st;
        if (dirlen && n > 0 && (size_t) n < sizeof full
        &&  stat (full, &st) == 0 && S_ISREG (st.st_mode) && access (full, X_OK) == 0)
            return strdup (full);
        path += dirlen;
        if (*path == ':')
            path++;
    }
    return NULL;
}

//  The parent of `pid` from /proc/PID/stat, or 0
static long
s_parent_of (long pid)
{
    char file [64], line [1024];
    snprintf (file, sizeof file, "/proc/%ld/stat", pid);
    FILE *f = fopen (file, "r");
    if (!f)
        return 0;
    size_t n = fread (line, 1, sizeof line - 1, f);
    fclose (f);
    line [n] = 0;
    //  "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses
    char *close = strrchr (line, ')');
    long ppid = 0;
    char state;
    if (!close || sscanf (close + 1, " %c %ld", &state, &ppid) != 2)
        return 0;
    return ppid;
}

//  The nearest ancestor shell's path, or NULL (malloc'd)
static char *
s_parent_shell (void)
{
    long pid = (long) getppid ();
    for (int depth = 0; pid > 0 && depth < 64; depth++) {
        char file [64], argv0 [PATH_MAX];
        snprintf (file, sizeof file, "/proc/%ld/cmdline", pid);
        FILE *f = fopen (file, "r");
        if (!f)
            return NULL;
        size_t n = fread (argv0, 1, sizeof argv0 - 1, f);
        fclose (f);
        argv0 [n] = 0;              //  the first NUL ends argv [0]
        const char *name;
        size_t len;
        bool login;
        if (n && s_argv0_shell (argv0, &name, &len, &login)) {
            //  a login "-sh" may be any shell: the executable says which
            if (login && len == 2 && memcmp (name, "sh", 2) == 0) {
                char exe [PATH_MAX];
                snprintf (file, sizeof file, "/proc/%ld/exe", pid);
                ssize_t got = readlink (file, exe, sizeof exe - 1);
                if (got > 0) {
                    exe [got] = 0;
                    const char *base = strrchr (exe, '/');
                    base = base ? base + 1 : exe;
                    if (s_is_shell (base, strlen (base)))
                        return strdup (exe);
                }
            }
            return s_which (name, len);
        }
        pid = s_parent_of (pid);
    }
    return NULL;
}

char *
run_shell (void)
{
    const char *shell = getenv ("PARALLEL_SHELL");
    if (shell && *shell)
        return strdup (shell);
    char *parent = s_parent_shell ();
    if (parent)
        return parent;
    shell = getenv ("SHELL");
    return strdup (shell && *shell ? shell : "/bin/sh");
}
