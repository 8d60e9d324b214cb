"""The load test, run as a user runs it: 500 scored entries in a database of its own,
gunicorn and a Celery worker as real processes, 20 readers of the leaderboard pages and API
while submissions are scored. It has to finish without one error and score every
submission it sent; the latencies are recorded in ``var/test-results/load-ci.json`` (the
target is checked on the measured figures of docs/load-report.md, not by a timed test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "test-results" / "load-ci.json"

pytestmark = [pytest.mark.slow, pytest.mark.worker]


def test_the_board_under_20_readers_with_500_entries_serves_every_request(demo_benchmark_dir):
    database = f"leaderboard_load_{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "CACHE_URL")}
    try:
        run = subprocess.run(
            [sys.executable, "scripts/loadtest.py", "--benchmark", str(demo_benchmark_dir),
             "--entries", "500", "--readers", "20",
             "--duration", "20", "--warmup", "3", "--database", database, "--out", str(OUT)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
        with psycopg.connect(f"{server}/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(run.stdout[-2000:])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(OUT.read_text())
    assert result["entries"] == 500 and result["readers"] == 20
    kinds = result["kinds"]
    assert {"board page", "board API", "home page", "entry page", "entry API"} <= set(kinds)
    assert all(k["errors"] == 0 for k in kinds.values()), kinds
    assert kinds["board page"]["n"] >= 50
    assert result["submissions_sent"] >= 3
    assert result["submissions_scored"] == result["submissions_sent"]
