#!/usr/bin/env python3
"""Check a `dpool map --index mixed` run against its input: every item
answered exactly once, results exact, each failure for its own reason.
Usage: mixcheck.py INPUT STDOUT STDERR [KILLS]. Exit 0 if all holds.

KILLS is how many workers the test killed from outside (SIGKILL): any item
may fail by being hit by them, but a crash item so failed took at least
one of them and any other item all 3 of its attempts, so such failures
can never need more kills than the test made."""
import re, sys

kills = int(sys.argv[4]) if len(sys.argv) > 4 else 0
killed = re.compile(r"worker died: SIGKILL, (\d+) attempts")
needed = 0
items = open(sys.argv[1]).read().split("\n")[:-1]
out = open(sys.argv[2]).read().split("\n")[:-1]
err = open(sys.argv[3]).read().split("\n")
answered = {}
bad = []
for line in out:
    i, _, text = line.partition("\t")
    if not i.isdigit():
        bad.append("not a result on stdout: %r" % line[:200])
        continue
    i = int(i)
    if i in answered:
        bad.append("item %d answered twice" % i)
    answered[i] = ("ok", text)
for line in err:
    m = re.match(r"dpool: item (\d+) \(line \d+\): (.*)", line)
    if not m:
        continue
    i = int(m.group(1))
    if i in answered:
        bad.append("item %d answered twice" % i)
    answered[i] = ("failed", m.group(2))
for i, item in enumerate(items):
    got = answered.get(i)
    if got is None:
        bad.append("item %d (%s) not answered" % (i, item))
    elif got[0] == "failed" and killed.match(got[1]):
        # hit by the test's kills: 1 of a crash item's attempts, else all
        needed += 1 if item == "crash" else int(killed.match(got[1]).group(1))
    elif item == "crash":
        if got != ("failed", "worker died: SIGSEGV, 3 attempts"):
            bad.append("crash item %d: %s" % (i, got))
    elif item == "fail":
        if got != ("failed", "task failed: item is fail"):
            bad.append("fail item %d: %s" % (i, got))
    elif item.startswith("30000000:"):
        if got[0] != "failed" or "timed out after" not in got[1]:
            bad.append("long item %d: %s" % (i, got))
    elif got[0] == "ok":
        if got[1] != item:
            bad.append("item %d: %r for %r" % (i, got[1], item))
    else:
        # an innocent item may only fail by being hit by the test's kills
        bad.append("innocent item %d failed: %s" % (i, got[1]))
if needed > kills:
    bad.append("%d kills needed for the SIGKILL failures, the test made %d" % (needed, kills))
if len(answered) != len(items):
    bad.append("%d answers for %d items" % (len(answered), len(items)))
for b in bad[:20]:
    print(b)
sys.exit(1 if bad else 0)
