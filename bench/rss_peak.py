#!/usr/bin/env python3
"""Peak resident memory of a command and of every process it starts.

rss_peak.py [--feed "INPUT COMMAND"] [--interval S] -- COMMAND [ARG]...

Runs COMMAND (stdout to /dev/null), its stdin fed by a pipe from INPUT
COMMAND (run with /bin/sh) when --feed is given. Every INTERVAL seconds
(default 0.05; every 5 ms during the first half second, so that a short
run is seen too) it reads VmHWM (the kernel's own peak RSS) and VmRSS from
/proc/PID/status of COMMAND and of all its descendants, keeping each
process's largest value; COMMAND's own peak also comes exactly from
wait4's ru_maxrss. Prints one line of KEY=VALUE pairs (KiB, seconds):
  elapsed=S main_kb=K main_name=NAME children=C child_max_kb=K
  child_max_name=NAME child_sum_kb=K rc=RC
child_sum_kb is the largest sum of the children's RSS seen in one sample."""
import argparse
import os
import subprocess
import sys
import time


def status(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    name, hwm, rss = "?", 0, 0
    for line in text.splitlines():
        if line.startswith("Name:"):
            name = line.split()[1]
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return name, hwm, rss


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid):
    todo, seen = children(pid), []
    while todo:
        c = todo.pop()
        seen.append(c)
        todo += children(c)
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--feed")
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    feed = subprocess.Popen(a.feed, shell=True, stdout=subprocess.PIPE) if a.feed else None
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=feed.stdout if feed else None, stdout=subprocess.DEVNULL)
    if feed:
        feed.stdout.close()
    peaks = {}          # pid -> (name, peak kB)
    child_sum = 0
    main_name = os.path.basename(cmd[0])
    while True:
        s = status(proc.pid)
        if s:
            main_name = s[0]
            peaks[proc.pid] = (s[0], max(peaks.get(proc.pid, ("", 0))[1], s[1], s[2]))
        total = 0
        for c in descendants(proc.pid):
            s = status(c)
            if s:
                peaks[c] = (s[0], max(peaks.get(c, ("", 0))[1], s[1], s[2]))
                total += s[2]
        child_sum = max(child_sum, total)
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        time.sleep(min(a.interval, 0.005) if time.monotonic() - start < 0.5 else a.interval)
    elapsed = time.monotonic() - start
    if feed:
        feed.wait()
    rc = os.waitstatus_to_exitcode(st)
    main_kb = max(ru.ru_maxrss, peaks.get(proc.pid, ("", 0))[1])
    kids = {p: v for p, v in peaks.items() if p != proc.pid}
    cmax = max(kids.values(), key=lambda v: v[1], default=("-", 0))
    print(f"elapsed={elapsed:.2f} main_kb={main_kb} main_name={main_name} children={len(kids)} "
          f"child_max_kb={cmax[1]} child_max_name={cmax[0]} child_sum_kb={child_sum} rc={rc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
