/*  =========================================================================
    dp_cpus - how many CPUs this process may use, as nproc counts them

    The default number of worker processes everywhere, and what -j 0 means
    in every program (dpool-broker, dpool map/run, dpool-worker, an
    embedded pool's workers = 0): the CPUs of the
    affinity mask (taskset, Slurm, cpusets), capped by the cgroup CPU
    quota (docker --cpus, Kubernetes limits: cgroup v2 cpu.max or v1
    cpu.cfs_quota_us / cpu.cfs_period_us, rounded up). Never less than 1.
    =========================================================================
*/
#ifndef DP_CPUS_H_INCLUDED
#define DP_CPUS_H_INCLUDED

//  Usable CPUs of this process (>= 1).
int dp_cpu_count (void);

//  The cgroup quota part, read below `root` (normally "/sys/fs/cgroup")
//  for the cgroup lines of `proc_cgroup` (normally "/proc/self/cgroup"):
//  the smallest quota of the process's cgroup and its ancestors, in CPUs
//  rounded up, or 0 when there is none. Exposed for tests (a fake tree).
int dp_cpu_quota (const char *root, const char *proc_cgroup);

//  The machine's CPU topology as GNU parallel's --number-of-sockets,
//  --number-of-cores and --number-of-threads count it: from `sysfs_cpu`
//  (normally "/sys/devices/system/cpu"): cpuN/topology's distinct
//  physical_package_id values (sockets), distinct thread_siblings masks
//  (cores), cpuN directories (threads); each capped by `cap` (0: the
//  affinity mask's CPUs, as GNU parallel caps them by taskset's), never
//  less than 1. Without the files: all the online CPUs.
void dp_cpu_topology (const char *sysfs_cpu, int cap, int *sockets, int *cores, int *threads);

#endif
