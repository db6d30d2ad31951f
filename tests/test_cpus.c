/*  Default pool size (issue 10): the usable CPUs as nproc counts them —
    the affinity mask, capped by the cgroup CPU quota (v1 and v2, read
    from a fake cgroup tree here) — and an embedded pool of "0" workers
    under a one-CPU affinity mask starts one worker process. */
#include "testutil.h"
#include "dpool.h"
#include "dp_cpus.h"

#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_root [256];

static void
s_write (const char *rel, const char *text)
{
    char path [512];
    snprintf (path, sizeof path, "%s/%s", s_root, rel);
    //  make the parent directories
    for (char *slash = strchr (path + strlen (s_root) + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        mkdir (path, 0700);
        *slash = '/';
    }
    FILE *file = fopen (path, "w");
    REQUIRE (file);
    fputs (text, file);
    fclose (file);
}

static int
s_quota (const char *proc)
{
    char path [512], root [512];
    snprintf (path, sizeof path, "%s/proc_cgroup", s_root);
    snprintf (root, sizeof root, "%s/sys", s_root);
    s_write ("proc_cgroup", proc);
    return dp_cpu_quota (root, path);
}

int
main (void)
{
    snprintf (s_root, sizeof s_root, "/tmp/dpool-test-cpus-%d", (int) getpid ());
    mkdir (s_root, 0700);
    //  v2: 2.5 CPUs at the leaf -> 3; a parent's 2 CPUs is smaller -> 2
    s_write ("sys/a/b/cpu.max", "250000 100000\n");
    CHECK (s_quota ("0::/a/b\n") == 3);
    s_write ("sys/a/cpu.max", "200000 100000\n");
    CHECK (s_quota ("0::/a/b\n") == 2);
    s_write ("sys/a/cpu.max", "max 100000\n");
    s_write ("sys/a/b/cpu.max", "max 100000\n");
    CHECK (s_quota ("0::/a/b\n") == 0);
    //  v1: the cpu controller's hierarchy, quota -1 is none
    s_write ("sys/cpu,cpuacct/job/cpu.cfs_quota_us", "150000\n");
    s_write ("sys/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
    CHECK (s_quota ("4:memory:/x\n3:cpu,cpuacct:/job\n0::/\n") == 2);
    s_write ("sys/cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n");
    CHECK (s_quota ("3:cpu,cpuacct:/job\n") == 0);
    //  junk is no quota, never a crash
    CHECK (s_quota ("garbage\n::\n7\n") == 0);
    s_write ("sys/j/cpu.max", "lots of\n");
    CHECK (s_quota ("0::/j\n") == 0);
    CHECK (dp_cpu_quota ("/nonexistent", "/nonexistent") == 0);

    //  topology (GNU parallel's --number-of-*): 2 sockets of 2 cores of 2
    //  threads, from a fake sysfs; capped by the affinity mask (>= 1 here)
    const char *sib [4] = { "00000011", "00000022", "00000044", "00000088" };
    for (int cpu = 0; cpu < 8; cpu++) {
        char rel [128];
        snprintf (rel, sizeof rel, "cpu/cpu%d/topology/physical_package_id", cpu);
        s_write (rel, (cpu % 4) < 2 ? "0\n" : "1\n");
        snprintf (rel, sizeof rel, "cpu/cpu%d/topology/thread_siblings", cpu);
        s_write (rel, sib [cpu % 4]);
    }
    int sockets, cores, threads;
    char sysfs [300];
    snprintf (sysfs, sizeof sysfs, "%s/cpu", s_root);
    dp_cpu_topology (sysfs, 1000, &sockets, &cores, &threads);
    CHECK (sockets == 2 && cores == 4 && threads == 8);
    dp_cpu_topology (sysfs, 3, &sockets, &cores, &threads);
    CHECK (sockets == 2 && cores == 3 && threads == 3);
    dp_cpu_topology (sysfs, 0, &sockets, &cores, &threads);
    cpu_set_t mask;
    REQUIRE (sched_getaffinity (0, sizeof mask, &mask) == 0);
    int active = CPU_COUNT (&mask);
    CHECK (threads == (active < 8 ? active : 8));
    CHECK (cores == (active < 4 ? active : 4));
    CHECK (sockets == (active < 2 ? active : 2));
    printf ("fake topology 2x2x2 under %d CPUs: %d sockets, %d cores, %d threads\n",
            active, sockets, cores, threads);
    //  no sysfs: the online CPUs, still capped, never 0
    dp_cpu_topology ("/nonexistent", 0, &sockets, &cores, &threads);
    CHECK (sockets >= 1 && cores >= 1 && threads >= 1 && threads <= active);
    char cmd [300];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_root);
    CHECK (system (cmd) == 0);

    //  the real machine: no more than the affinity mask allows
    cpu_set_t set;
    REQUIRE (sched_getaffinity (0, sizeof set, &set) == 0);
    int all = dp_cpu_count ();
    CHECK (all >= 1 && all <= CPU_COUNT (&set));
    int first = -1;
    for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
        if (CPU_ISSET (i, &set))
            first = i;
    CPU_ZERO (&set);
    CPU_SET (first, &set);
    REQUIRE (sched_setaffinity (0, sizeof set, &set) == 0);
    CHECK (dp_cpu_count () == 1);
    printf ("usable CPUs: %d; under a one-CPU mask: %d\n", all, dp_cpu_count ());

    //  an embedded pool of the default size under that mask: one worker
    const char *modules [] = { tu_lib ("libdpool_testtasks.so") };
    dp_pool_opts_t opts = { .workers = 0, .modules = modules, .nmodules = 1 };
    dp_pool_t *pool = dp_pool_open (&opts);
    REQUIRE (pool);
    tu_items_t items;
    tu_items_numbers (&items, 200, 0);
    dp_job_opts_t jopts = { .chunksize = 1 };
    dp_results_t *res = NULL;
    CHECK (dp_map (pool, "square", (dp_item_t *) items.items, 200, &jopts, &res) == 0);
    dp_results_destroy (&res);
    tu_items_free (&items);
    pid_t kids [64];
    int n = tu_children (getpid (), kids, 64);
    printf ("embedded pool under a one-CPU mask: %d worker process(es)\n", n);
    CHECK (n == 1);
    dp_pool_close (&pool);
    return tu_done ("test_cpus");
}
