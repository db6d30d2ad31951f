#!/usr/bin/env bash
# The parts of libdpool and the arrows between them (issue 10): README.md
# ("Parts and the arrows between them") lists, per part, the parts it may
# include. This test checks three things against that list:
#   1. every `#include "..."` in proto/ super/ worker/ broker/ client/
#      names a header of the same part, of a part it may use, or include/;
#      a header name is never held by two parts;
#   2. the build gives each part's sources (compile_commands.json) exactly
#      the include folders of the part itself, the parts it uses and
#      include/, so a forbidden include cannot compile;
#   3. that enforcement is real: one header of every part, preprocessed
#      with each part's flags, is found exactly where the list allows it.
# 77 = skipped (no python3, or a build without compile_commands.json).
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${DPOOL_BIN:-$SRC/build/bin}/.." && pwd)
command -v python3 > /dev/null || { echo "test_layers: SKIP (no python3)"; exit 77; }
[ -f "$BUILD/compile_commands.json" ] \
    || { echo "test_layers: SKIP (no $BUILD/compile_commands.json)"; exit 77; }

exec python3 - "$SRC" "$BUILD" <<'EOF'
import json, os, re, shlex, subprocess, sys, tempfile

src, build = sys.argv[1], sys.argv[2]
fail = []

# the list: lines `part -> used used ...` in the README's fenced block
readme = open(os.path.join(src, "README.md")).read()
m = re.search(r"### Parts and the arrows between them\n.*?```\n(.*?)```", readme, re.S)
if not m:
    print("FAIL: README.md has no 'Parts and the arrows between them' list")
    sys.exit(1)
uses = {}
for line in m.group(1).splitlines():
    if "->" in line:
        part, _, rest = line.partition("->")
        uses[part.strip()] = set(rest.split())
parts = sorted(uses)
for part, used in uses.items():
    for u in used - set(parts):
        fail.append("list: %s -> %s: no such part" % (part, u))
if set(parts) != {"proto", "super", "worker", "broker", "client"}:
    fail.append("list: parts are %s" % parts)

# 1. the code's own includes
owner = {}                  # header name -> part
for part in parts:
    for name in os.listdir(os.path.join(src, part)):
        if name.endswith(".h"):
            if name in owner:
                fail.append("header %s is in both %s/ and %s/" % (name, owner[name], part))
            owner[name] = part
public = set(n for n in os.listdir(os.path.join(src, "include")) if n.endswith(".h"))
arrows = set()
for part in parts:
    for name in sorted(os.listdir(os.path.join(src, part))):
        if not name.endswith((".c", ".h")):
            continue
        for number, line in enumerate(open(os.path.join(src, part, name)), 1):
            inc = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not inc:
                continue
            header = inc.group(1)
            where = "%s/%s:%d" % (part, name, number)
            if header in public:
                continue
            if header not in owner:
                fail.append("%s: includes \"%s\", a header of no part" % (where, header))
                continue
            to = owner[header]
            if to == part:
                continue
            arrows.add((part, to))
            if to not in uses[part]:
                fail.append("%s: %s -> %s (\"%s\") is not an arrow of the list"
                            % (where, part, to, header))

# 2. the include folders the build gives each part
def flags_of(entry):
    args = entry.get("arguments") or shlex.split(entry["command"])
    out, skip = [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a in ("-o", "-c"):
            skip = True
            continue
        if os.path.abspath(os.path.join(entry["directory"], a)) == os.path.abspath(entry["file"]):
            continue
        out.append(a)
    return out

def include_dirs(flags):
    dirs, i = set(), 0
    while i < len(flags):
        a = flags[i]
        if a in ("-I", "-isystem", "-iquote"):
            dirs.add(os.path.realpath(flags[i + 1])); i += 2; continue
        if a.startswith("-I"):
            dirs.add(os.path.realpath(a[2:]))
        i += 1
    return dirs

entries = json.load(open(os.path.join(build, "compile_commands.json")))
sample = {}                 # part -> flags of one of its sources
seen = set()
for entry in entries:
    path = os.path.realpath(entry["file"])
    rel = os.path.relpath(path, os.path.realpath(src))
    part = rel.split(os.sep)[0]
    if part not in uses or not rel.endswith(".c"):
        continue
    flags = flags_of(entry)
    dirs = include_dirs(flags)
    ours = set(d for d in dirs if d.startswith(os.path.realpath(src) + os.sep))
    want = set(os.path.realpath(os.path.join(src, p)) for p in uses[part] | {part, "include"})
    seen.add(rel)
    if ours != want:
        fail.append("build: %s sees %s, the list allows %s" % (
            rel, sorted(os.path.relpath(d, src) for d in ours),
            sorted(os.path.relpath(d, src) for d in want)))
    sample.setdefault(part, flags)
for part in parts:
    for name in os.listdir(os.path.join(src, part)):
        if name.endswith(".c") and os.path.join(part, name) not in seen:
            fail.append("build: %s/%s is compiled by no target" % (part, name))

# 3. the build refuses what the list forbids
probe = {"proto": "dp_proto.h", "super": "dp_super.h", "worker": "dp_worker.h",
         "broker": "dp_broker.h", "client": "dp_client.h"}
with tempfile.TemporaryDirectory() as tmp:
    for part in parts:
        if part not in sample:
            fail.append("build: no source of %s/ in compile_commands.json" % part)
            continue
        for to in parts:
            if to == part:
                continue
            test = os.path.join(tmp, "probe_%s_%s.c" % (part, to))
            with open(test, "w") as f:
                f.write('#include "%s"\n' % probe[to])
            cmd = sample[part] + ["-E", test, "-o", os.devnull]
            rc = subprocess.run(cmd, cwd=build, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE).returncode
            allowed = to in uses[part]
            if allowed and rc != 0:
                fail.append("build: %s cannot include %s's %s" % (part, to, probe[to]))
            if not allowed and rc == 0:
                fail.append("build: %s can include %s's %s, which the list forbids"
                            % (part, to, probe[to]))

print("arrows in the code: " + ", ".join("%s -> %s" % a for a in sorted(arrows)))
for line in fail:
    print("FAIL: " + line)
if fail:
    sys.exit(1)
print("test_layers: OK (%d parts, %d arrows used, build enforces the list)"
      % (len(parts), len(arrows)))
EOF
