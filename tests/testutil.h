/*  Test helpers: checks that report file:line, deadlines, processes. */
#ifndef DP_TESTUTIL_H_INCLUDED
#define DP_TESTUTIL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

extern int tu_failures;

#define CHECK(cond) do { if (!(cond)) { \
    fprintf (stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    tu_failures++; } } while (0)
#define REQUIRE(cond) do { if (!(cond)) { \
    fprintf (stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
    exit (1); } } while (0)

//  Exit status for main: prints "N passed, N failed"-style summary.
int tu_done (const char *name);

//  Monotonic milliseconds.
int64_t tu_now_ms (void);

//  Path of a built program or module: $DPOOL_BIN/name, $DPOOL_LIB/name.
//  Returned string is static per call slot (4 rotating buffers).
const char *tu_bin (const char *name);
const char *tu_lib (const char *name);

//  Start argv (NULL-terminated) with stdout/stderr to the given files (NULL:
//  inherit). Returns pid or -1.
pid_t tu_spawn (char *const argv [], const char *out_path, const char *err_path);

//  The same with stdin from in_path too (NULL: inherit).
pid_t tu_spawn_io (char *const argv [], const char *in_path, const char *out_path,
                   const char *err_path);

//  Wait for pid up to timeout_ms; returns the wait status, or -1 on timeout
//  (the process is then SIGKILLed and reaped).
int tu_wait (pid_t pid, int timeout_ms);

//  Is the process alive (not a zombie)?
bool tu_alive (pid_t pid);

//  A "Name:  N kB" field of /proc/PID/status (VmRSS, VmHWM...) in KiB, or
//  -1 (no such process or field).
long tu_status_kb (pid_t pid, const char *field);

//  Does a line of the file (lines up to 1 KiB) hold this text? false if
//  it cannot be read.
bool tu_file_has (const char *path, const char *text);

//  CPU seconds the process has used (user + system), from /proc/PID/stat.
double tu_cpu_s (pid_t pid);

//  Children of pid (from /proc), up to max; returns how many.
int tu_children (pid_t pid, pid_t *out, int max);


//  An embedded pool of `workers` local workers with the test task module;
//  NULL (the reason printed) if it does not open.
struct dp_pool;
struct dp_pool *tu_pool_open (int workers);

//  A TCP port on 127.0.0.1 that was free a moment ago.
int tu_free_port (void);

//  Items "0".."n-1" (or a custom text per index) for dp_map: an array of
//  dp_item_t pointing into one buffer. Free both with tu_items_free.
typedef struct tu_items tu_items_t;
struct tu_items {
    void *items;        //  dp_item_t *
    char *buf;
    size_t n;
};
void tu_items_numbers (tu_items_t *self, size_t n, long long start);
void tu_items_free (tu_items_t *self);

//  Empty files /tmp/dpool-TAG-{in,out,err}-XXXXXX for a command's streams;
//  tu_files_remove unlinks them.
typedef struct {
    char in [64], out [64], err [64];
} tu_files_t;
void tu_files_make (tu_files_t *self, const char *tag);
void tu_files_remove (tu_files_t *self);

#endif
