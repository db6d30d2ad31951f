#!/usr/bin/env python3
"""Python's multiprocessing.Pool on the same work as dpool's bench: one
line of output, the median items/s.

peer_pool.py square N WORKERS REPEATS [map|imap1]
  map    Pool(WORKERS).map(f, items)                 (default chunksize)
  imap1  list(Pool(WORKERS).imap(f, items, chunksize=1))
Items are the decimal strings "1".."N"; square returns str(int(x) ** 2),
the same work as dpool's `square` task (parse, square, format)."""
import multiprocessing
import statistics
import sys
import time


def square(item):
    return str(int(item) ** 2)


def main():
    task, n, workers, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    mode = sys.argv[5] if len(sys.argv) > 5 else "map"
    fn = {"square": square}[task]
    items = [str(i) for i in range(1, n + 1)]
    rates = []
    with multiprocessing.Pool(workers) as pool:
        for r in range(repeats):
            start = time.perf_counter()
            if mode == "map":
                out = pool.map(fn, items)
            else:
                out = list(pool.imap(fn, items, chunksize=1))
            elapsed = time.perf_counter() - start
            assert len(out) == n and out[-1] == str(n * n)
            rates.append(n / elapsed)
            print(f"  run {r + 1}: {elapsed:.3f} s, {n / elapsed:.0f} items/s", file=sys.stderr)
    print(f"{statistics.median(rates):.0f}")


if __name__ == "__main__":
    main()
