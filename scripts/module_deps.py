#!/usr/bin/env python3
"""Prints the dependencies between the library's top-level modules (from
`crate::X` paths and `use crate::{X, ...}` in src/) and any cycles among them.
Exit 1 when there is a cycle. Usage: python3 scripts/module_deps.py"""
import os, re, sys

src = os.path.join(os.path.dirname(__file__), "..", "src")
mods = sorted(
    n[:-3] if n.endswith(".rs") else n
    for n in os.listdir(src)
    if n not in ("lib.rs", "main.rs") and (n.endswith(".rs") or os.path.isdir(os.path.join(src, n)))
)
deps = {m: set() for m in mods}
for m in mods:
    path = os.path.join(src, m)
    files = [path + ".rs"] if os.path.isfile(path + ".rs") else [
        os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".rs")]
    for f in files:
        text = open(f, encoding="utf-8").read()
        # Test modules may reach anywhere.
        text = text.split("#[cfg(test)]")[0]
        # Comments (docs included) name modules without depending on them.
        text = re.sub(r"//[^\n]*", "", text)
        for other in re.findall(r"crate::(\w+)", text):
            if other in deps and other != m:
                deps[m].add(other)
        for group in re.findall(r"use crate::\{([^}]*)\}", text):
            for other in re.findall(r"\b(\w+)\b", group):
                if other in deps and other != m:
                    deps[m].add(other)
for m in mods:
    print(f"{m:12} -> {', '.join(sorted(deps[m])) or '-'}")
# Cycles: strongly connected components with more than one module.
index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in deps[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1: sccs.append(sorted(c))
for v in mods:
    if v not in index: visit(v)
for c in sccs:
    print("cycle among:", " ".join(c))
sys.exit(1 if sccs else 0)
