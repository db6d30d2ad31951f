#!/usr/bin/env python3
"""Dask on W5's work: N single-item submits, then wait for all.

dask_peer.py N REPEATS
A LocalCluster(n_workers=2, processes=True, threads_per_worker=1) on
127.0.0.1 (no dashboard), started once before timing, warmed up with a few
tasks; each run is client.map(square, items, pure=False) then
client.gather. Prints the median items/s over REPEATS runs."""
import logging
import statistics
import sys
import time
import warnings


def square(item):
    return str(int(item) ** 2)


def main():
    n, repeats = int(sys.argv[1]), int(sys.argv[2])
    warnings.filterwarnings("ignore")
    from dask.distributed import Client, LocalCluster
    items = [str(i) for i in range(1, n + 1)]
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.gather(client.map(square, items[:20], pure=False))
        rates = []
        for r in range(repeats):
            start = time.perf_counter()
            futures = client.map(square, items, pure=False)
            out = client.gather(futures)
            elapsed = time.perf_counter() - start
            assert len(out) == n and out[-1] == str(n * n)
            del futures
            rates.append(n / elapsed)
            print(f"  dask run {r + 1}: {elapsed:.3f} s, {n / elapsed:.0f} items/s", file=sys.stderr)
    print(f"{statistics.median(rates):.0f}")


if __name__ == "__main__":
    main()
