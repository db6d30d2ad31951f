#!/usr/bin/env python3
"""Check a `dpool map --index mixed` run against its input: every item
answered exactly once, results exact, each failure for its own reason.
Usage: mixcheck.py INPUT STDOUT STDERR. Exit 0 if all holds."""
import re, sys

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
    elif "worker died: SIGKILL" not in got[1]:
        # an innocent item may only fail by being hit by the test's kills
        bad.append("innocent item %d failed: %s" % (i, got[1]))
if len(answered) != len(items):
    bad.append("%d answers for %d items" % (len(answered), len(items)))
for b in bad[:20]:
    print(b)
sys.exit(1 if bad else 0)
