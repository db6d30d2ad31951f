#!/usr/bin/env python3
"""Python's multiprocessing.Pool on the same work as dpool's benchmarks.

pool_peer.py MODE N WORKERS REPEATS [ARG]
Prints one line: the median items/s over REPEATS runs (one line per run on
stderr). The pool is started once, before timing; the input list is built
before timing too (dpool's bench_map builds its items before timing).

  map      Pool.map(square, items)              items "1".."N" (default chunksize)
  imap1    list(Pool.imap(square, items, chunksize=1))
  spin     Pool.map(spin, ["ARG"] * N)          busy loop of ARG microseconds
  len      Pool.map(length, items)              N distinct bytes objects of ARG bytes
  stream   Pool.map(echo, lines of stdin) -> stdout, one line per result
           (N, REPEATS ignored; what `dpool map echo` does, for peak RSS)

The work is the work of dpool's testtasks: square parses a decimal string,
squares it exactly and formats it; spin parses ARG and burns the CPU until
ARG microseconds have passed on the monotonic clock, then formats ARG;
length returns the item's length in decimal; echo returns the item."""
import multiprocessing
import statistics
import sys
import time


def square(item):
    return str(int(item) ** 2)


def spin(item):
    us = int(item)
    end = time.monotonic_ns() + us * 1000
    while time.monotonic_ns() < end:
        pass
    return str(us)


def length(item):
    return str(len(item))


def echo(item):
    return item


def stream(workers):
    lines = sys.stdin.buffer.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    with multiprocessing.Pool(workers) as pool:
        out = pool.map(echo, lines)
    sys.stdout.buffer.write(b"\n".join(out) + (b"\n" if out else b""))


def main():
    mode = sys.argv[1]
    if mode == "stream":
        stream(int(sys.argv[3]))
        return
    n, workers, repeats = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    arg = sys.argv[5] if len(sys.argv) > 5 else None
    if mode in ("map", "imap1"):
        fn, items, last = square, [str(i) for i in range(1, n + 1)], str(n * n)
    elif mode == "spin":
        fn, items, last = spin, [arg] * n, arg
    elif mode == "len":
        size = int(arg)
        # distinct objects: pickle must not share one object within a chunk
        items = [bytes([97 + i % 26]) * size for i in range(n)]
        fn, last = length, str(size)
    else:
        sys.exit(f"pool_peer.py: unknown mode {mode}")
    rates = []
    with multiprocessing.Pool(workers) as pool:
        for r in range(repeats):
            start = time.perf_counter()
            if mode == "imap1":
                out = list(pool.imap(fn, items, chunksize=1))
            else:
                out = pool.map(fn, items)
            elapsed = time.perf_counter() - start
            assert len(out) == n and out[-1] == last, (len(out), out[-1])
            rates.append(n / elapsed)
            print(f"  pool {mode} run {r + 1}: {elapsed:.3f} s, {n / elapsed:.0f} items/s",
                  file=sys.stderr)
    print(f"{statistics.median(rates):.0f}")


if __name__ == "__main__":
    main()
