/*  =========================================================================
    dp_cpus - how many CPUs this process may use, as nproc counts them
    =========================================================================
*/
#include "dp_cpus.h"

#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Quota of one cgroup directory in CPUs, rounded up; 0: none (or no
//  such file). v2: cpu.max "QUOTA PERIOD" or "max PERIOD"; v1:
//  cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us.
static int
s_dir_quota (const char *dir, int v2)
{
    char path [PATH_MAX + 32];      //  dir is at most PATH_MAX
    long long quota = -1, period = 0;
    if (v2) {
        snprintf (path, sizeof path, "%s/cpu.max", dir);
        FILE *file = fopen (path, "r");
        if (!file)
            return 0;
        char word [32] = "";
        if (fscanf (file, "%31s %lld", word, &period) != 2 || strcmp (word, "max") == 0)
            quota = -1;
        else
            quota = strtoll (word, NULL, 10);
        fclose (file);
    }
    else {
        snprintf (path, sizeof path, "%s/cpu.cfs_quota_us", dir);
        FILE *file = fopen (path, "r");
        if (!file)
            return 0;
        if (fscanf (file, "%lld", &quota) != 1)
            quota = -1;
        fclose (file);
        snprintf (path, sizeof path, "%s/cpu.cfs_period_us", dir);
        file = fopen (path, "r");
        if (!file)
            return 0;
        if (fscanf (file, "%lld", &period) != 1)
            period = 0;
        fclose (file);
    }
    if (quota <= 0 || period <= 0)
        return 0;
    long long cpus = (quota + period - 1) / period;
    return cpus > INT_MAX ? INT_MAX : (int) cpus;
}

//  Smallest quota of `cgroup` (a path below `mount`) and its ancestors.
static int
s_path_quota (const char *mount, const char *cgroup, int v2)
{
    char dir [PATH_MAX];
    int n = snprintf (dir, sizeof dir, "%s%s", mount, strcmp (cgroup, "/") == 0 ? "" : cgroup);
    if (n <= 0 || (size_t) n >= sizeof dir)
        return 0;
    size_t floor = strlen (mount);
    int best = 0;
    while (true) {
        int quota = s_dir_quota (dir, v2);
        if (quota > 0 && (best == 0 || quota < best))
            best = quota;
        char *slash = strrchr (dir, '/');
        if (!slash || (size_t) (slash - dir) < floor)
            break;
        *slash = 0;
    }
    return best;
}

int
dp_cpu_quota (const char *root, const char *proc_cgroup)
{
    FILE *file = fopen (proc_cgroup, "r");
    if (!file)
        return 0;
    char line [PATH_MAX + 64];
    int best = 0;
    while (fgets (line, sizeof line, file)) {
        line [strcspn (line, "\n")] = 0;
        //  "ID:CONTROLLERS:PATH"; v2 is "0::PATH"
        char *c1 = strchr (line, ':');
        char *c2 = c1 ? strchr (c1 + 1, ':') : NULL;
        if (!c2 || c2 [1] != '/')
            continue;
        *c2 = 0;
        const char *controllers = c1 + 1, *path = c2 + 1;
        char mount [PATH_MAX];
        int quota = 0;
        if (*controllers == 0) {
            //  v2: unified at the root, or under root/unified (hybrid)
            snprintf (mount, sizeof mount, "%s", root);
            quota = s_path_quota (mount, path, 1);
            if (quota == 0) {
                snprintf (mount, sizeof mount, "%s/unified", root);
                quota = s_path_quota (mount, path, 1);
            }
        }
        else {
            //  v1: the hierarchy holding the cpu controller
            bool cpu = false;
            char list [256];
            snprintf (list, sizeof list, "%s", controllers);
            for (char *save = NULL, *tok = strtok_r (list, ",", &save); tok;
                 tok = strtok_r (NULL, ",", &save))
                cpu = cpu || strcmp (tok, "cpu") == 0;
            if (!cpu)
                continue;
            snprintf (mount, sizeof mount, "%s/%s", root, controllers);
            quota = s_path_quota (mount, path, 0);
            if (quota == 0) {
                snprintf (mount, sizeof mount, "%s/cpu", root);
                quota = s_path_quota (mount, path, 0);
            }
        }
        if (quota > 0 && (best == 0 || quota < best))
            best = quota;
    }
    fclose (file);
    return best;
}

//  CPUs of the affinity mask, else the online ones
static int
s_affinity (void)
{
    int cpus = 0;
    cpu_set_t set;
    if (sched_getaffinity (0, sizeof set, &set) == 0)
        cpus = CPU_COUNT (&set);
    if (cpus <= 0)
        cpus = (int) sysconf (_SC_NPROCESSORS_ONLN);
    return cpus;
}

//  The first line of a file (newline cut) into buf; false if unreadable
static bool
s_read_line (const char *path, char *buf, size_t size)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return false;
    bool ok = fgets (buf, (int) size, file) != NULL;
    fclose (file);
    if (ok)
        buf [strcspn (buf, "\n")] = 0;
    return ok;
}

//  Add `value` to the n distinct strings of `seen` (each of `width`
//  bytes, room for max) unless it is there already
static void
s_add_distinct (char *seen, int *n, int max, size_t width, const char *value)
{
    for (int i = 0; i < *n; i++)
        if (strcmp (seen + (size_t) i * width, value) == 0)
            return;
    if (*n < max)
        snprintf (seen + (size_t) (*n)++ * width, width, "%s", value);
}

//  n capped by active, at least 1
static int
s_clamp (int n, int active)
{
    n = n < active ? n : active;
    return n < 1 ? 1 : n;
}

void
dp_cpu_topology (const char *sysfs_cpu, int cap, int *sockets, int *cores, int *threads)
{
    enum { MAX = 4096, WIDTH = 96 };
    char *packages = (char *) calloc (MAX, WIDTH), *siblings = (char *) calloc (MAX, WIDTH);
    int npackages = 0, nsiblings = 0, nthreads = 0;
    for (int cpu = 0; packages && siblings && cpu < MAX; cpu++) {
        char path [PATH_MAX], value [WIDTH];
        snprintf (path, sizeof path, "%s/cpu%d/topology/physical_package_id", sysfs_cpu, cpu);
        if (!s_read_line (path, value, sizeof value))
            break;
        nthreads++;
        s_add_distinct (packages, &npackages, MAX, WIDTH, value);
        snprintf (path, sizeof path, "%s/cpu%d/topology/thread_siblings", sysfs_cpu, cpu);
        if (s_read_line (path, value, sizeof value))
            s_add_distinct (siblings, &nsiblings, MAX, WIDTH, value);
    }
    free (packages);
    free (siblings);
    if (nthreads == 0) {
        nthreads = (int) sysconf (_SC_NPROCESSORS_ONLN);
        npackages = nsiblings = nthreads;
    }
    if (nsiblings == 0)
        nsiblings = nthreads;
    int active = cap > 0 ? cap : s_affinity ();
    *sockets = s_clamp (npackages, active);
    *cores = s_clamp (nsiblings, active);
    *threads = s_clamp (nthreads, active);
}

int
dp_cpu_count (void)
{
    int cpus = s_affinity ();
    int quota = dp_cpu_quota ("/sys/fs/cgroup", "/proc/self/cgroup");
    if (quota > 0 && quota < cpus)
        cpus = quota;
    return cpus > 0 ? cpus : 1;
}
