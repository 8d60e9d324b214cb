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
