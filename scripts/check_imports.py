"""Dependency rule: scoring and benchmark_data load no Django, DRF, Celery or leaderboard,
and the scorer loads no torch (only scoring.baselines may)."""

import subprocess
import sys

CODE = """
import sys, pkgutil, importlib
import benchmark_data, scoring
for pkg in (benchmark_data, scoring):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if m.name.startswith("scoring.baselines"):
            continue
        importlib.import_module(m.name)
bad = sorted(n for n in sys.modules if n.split(".")[0] in {"django", "rest_framework", "celery", "leaderboard", "torch"})
print("\\n".join(bad))
"""

out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
if out.returncode != 0:
    print(out.stderr, file=sys.stderr)
    sys.exit(1)
if out.stdout.strip():
    print("scoring/benchmark_data imported forbidden modules:\n" + out.stdout, file=sys.stderr)
    sys.exit(1)
print("ok: scoring and benchmark_data import no Django, Celery or torch")

# The board's import graph has no cycle, counting imports inside functions too; the one
# import upwards allowed is a service sending a Celery task (the layers contract of
# pyproject.toml, run by lint-imports, says the same of the layers).
CYCLES = """
import grimp
graph = grimp.build_graph("leaderboard")
edges = {m: set() for m in graph.modules if m.startswith("leaderboard.board")}
for m in edges:
    for d in graph.find_modules_directly_imported_by(m):
        if d in edges and not (m.startswith("leaderboard.board.services") and d == "leaderboard.board.tasks"):
            edges[m].add(d)
index, low, stack, on, found = {}, {}, [], set(), []
def visit(v, counter=[0]):
    index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            found.append(sorted(comp))
for v in sorted(edges):
    if v not in index:
        visit(v)
print("\\n".join(" <-> ".join(c) for c in found))
"""
out = subprocess.run([sys.executable, "-c", CYCLES], capture_output=True, text=True)
if out.returncode != 0:
    print(out.stderr, file=sys.stderr)
    sys.exit(1)
if out.stdout.strip():
    print("leaderboard.board has import cycles:\n" + out.stdout, file=sys.stderr)
    sys.exit(1)
print("ok: leaderboard.board has no import cycle")
