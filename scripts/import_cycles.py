#!/usr/bin/env python3
"""Lists file-level import cycles in a Rust source tree (issue 13: none allowed).

Each `.rs` file is a node; `crate::a::b` and `super::x` paths (in `use` lines and inline, braces
expanded) are edges to the longest module path that is a file. Test modules after
`#[cfg(test)] mod tests` are left out. Prints each cycle and exits 1 when there is one.
Usage: scripts/import_cycles.py [SRC_DIR]
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
files = {}
for d, _, names in os.walk(root):
    for f in names:
        if f.endswith(".rs"):
            path = os.path.join(d, f)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            files[tuple(parts)] = path


def resolve(segments):
    for n in range(len(segments), 0, -1):
        if tuple(segments[:n]) in files:
            return tuple(segments[:n])
    return None


graph = {k: set() for k in files}
for module, path in files.items():
    src = re.sub(r"//[^\n]*", "", open(path, encoding="utf-8").read())
    cut = src.find("#[cfg(test)]\nmod tests")
    if cut >= 0:
        src = src[:cut]
    parent = list(module[:-1])
    for m in re.finditer(r"\b(crate|super)((?:::\w+)+)", src):
        segs = m.group(2).strip(":").split("::")
        base = [] if m.group(1) == "crate" else parent
        target = resolve(base + segs)
        if target and target != module:
            graph[module].add(target)
    for m in re.finditer(r"\b(crate|super)::((?:\w+::)*)\{([^}]*)\}", src):
        prefix = [s for s in m.group(2).split("::") if s]
        base = [] if m.group(1) == "crate" else parent
        for item in m.group(3).split(","):
            name = item.strip().split("::")[0].split(" ")[0]
            if name and name != "self":
                target = resolve(base + prefix + [name])
                if target and target != module:
                    graph[module].add(target)

# Tarjan's strongly connected components.
sys.setrecursionlimit(10_000)
index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            cycles.append(sorted("/".join(x) or "lib" for x in comp))


for v in graph:
    if v not in index:
        visit(v)
for c in cycles:
    print("import cycle between files: " + " <-> ".join(c))
sys.exit(1 if cycles else 0)
