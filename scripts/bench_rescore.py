"""Benchmark re-scoring at scale: N synthetic entries across the five tasks, re-scored from
their stored prediction files by one Celery worker process, then by two, side by side.

Set-up (not timed): a PostgreSQL database of the run's own, migrated; the demo benchmark
(seed 42) registered; per task a few prediction files (every test unit in every scenario,
random probabilities, hours or label columns as the task wants), each scored once in this
process; then ``--entries`` published entries spread evenly over the five tasks, each
holding one of its task's files and a copy of that file's run, from 70 users.

Each round starts W worker processes (``celery worker --pool solo``: one process each, on
one thread each as bin/worker starts them, on Redis), waits until they are ready, then
re-scores every entry (``all_rescore``: one job per entry through the per-task fair queue)
and waits until the re-score has finished, rank changes included. Reported per round: wall time, entries per minute, wall time per
entry and scenario, the workers' processing time per entry and scenario (the runs'
durations), peak RSS of each worker (``VmHWM``), and the speed-up of two workers over one.

Usage::

    python scripts/bench_rescore.py [--entries 1000] [--workers 1,2] [--variants 3]
        [--benchmark DIR] [--database leaderboard_rescore] [--out var/test-results/rescore.json]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench_platform import platform_environment, recreate_database

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "var" / "test-cache" / "benchmark-demo-seed42-loadtest"
TASKS = ["in-hospital-mortality", "phenotyping", "decompensation", "length-of-stay", "radiology"]
USERS = 70


def _environment(var_dir: Path, database: str) -> dict[str, str]:
    return platform_environment(var_dir, database, name="rescore-bench")


def _ensure_benchmark(path: Path) -> Path:
    if not (path / "manifest.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "benchmark_data", "synth", "--out", str(path),
             "--scale", "demo", "--seed", "42"],
            check=True, cwd=ROOT,
        )  # fmt: skip
    return path


def prediction_file(truth, seed: int) -> bytes:
    """A gzip prediction file covering every test unit in the base scenario and the paired
    units in every scenario that withholds images: random values of the task's form."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    task = truth.task
    frames = []
    for scenario in ["paired", *truth.withheld]:
        keys = truth.keys if scenario == "paired" else truth.keys[truth.paired]
        frame = keys.copy()
        n = len(frame)
        if task.kind == "multilabel":
            for slug in task.label_slugs:
                frame[slug] = rng.random(n).round(4)
        elif task.kind == "binary":
            frame["prediction"] = rng.random(n).round(4)
        else:  # remaining hours
            frame["prediction"] = (rng.gamma(2.0, 40.0, n)).round(2)
        frame.insert(0, "scenario", scenario)
        frames.append(frame)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(pd.concat(frames).to_csv(index=False).encode())
    return buf.getvalue()


def seed(entries: int, variants: int) -> dict[str, int]:
    """Published entries spread over the tasks, each with one of its task's prediction
    files and a copy of that file's run. Returns the entries per task."""
    import copy

    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.db import transaction

    from leaderboard.board.models import Evaluation, Submission, Track, new_public_id
    from leaderboard.board.selectors.benchmarks import task_truth
    from leaderboard.board.services.benchmarks import benchmark_register
    from leaderboard.board.services.evaluations import evaluation_run

    benchmark = benchmark_register(uri=str(BENCHMARK), verify=False)
    track = Track.objects.get(slug=Track.PREDICTION_FILE)
    User = get_user_model()
    users = [User.objects.create_user(f"bench{i:02d}", f"bench{i:02d}@example.org", "bench-pw")
             for i in range(USERS)]  # fmt: skip
    per_task: dict[str, int] = {}
    for t_index, slug in enumerate(TASKS):
        task = benchmark.tasks.get(slug=slug)
        truth = task_truth(task=task)
        count = entries // len(TASKS) + (1 if t_index < entries % len(TASKS) else 0)
        per_task[slug] = count
        if count > USERS * variants:
            raise SystemExit(f"--entries too large for {USERS} users x {variants} variants")
        scored: list[tuple[Submission, Evaluation]] = []
        for v in range(variants):
            data = prediction_file(truth, seed=1000 * t_index + v)
            name = default_storage.save(f"bench/{slug}-{v}.csv.gz", ContentFile(data))
            sub = Submission.objects.create(
                owner=users[0], task=task, track=track, method_name=f"{slug} variant {v}",
                training_data="synthetic", uses_ehr=True, uses_cxr=True, file=name,
                original_filename=f"{slug}-{v}.csv.gz", sha256=hashlib.sha256(data).hexdigest(),
                size=len(data), status=Submission.Status.SUBMITTED,
            )  # fmt: skip
            ev = Evaluation.objects.create(
                submission=sub, trigger="submission", benchmark_hash=benchmark.manifest_hash
            )
            evaluation_run(evaluation_id=ev.pk, worker="bench-seed")
            ev.refresh_from_db()
            sub.refresh_from_db()
            if ev.status != "succeeded":
                raise SystemExit(f"{slug} variant {v}: {ev.error_message}")
            scored.append((sub, ev))
        subs, evals = [], []
        for i in range(variants, count):
            base_sub, base_ev = scored[i % variants]
            s = copy.copy(base_sub)
            s.pk = None
            s.public_id = new_public_id()
            s.owner = users[(i // variants) % USERS]
            s.method_name = f"{slug} model {i:03d}"
            s.status = Submission.Status.PUBLISHED
            subs.append(s)
            e = copy.copy(base_ev)
            e.pk = None
            e.run_token = uuid.uuid4()
            evals.append(e)
        with transaction.atomic():
            Submission.objects.filter(task=task).update(status="published")
            created = Submission.objects.bulk_create(subs, batch_size=200)
            for s, e in zip(created, evals, strict=True):
                e.submission = s
            Evaluation.objects.bulk_create(evals, batch_size=100)
    return per_task


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start_workers(n: int, env: dict[str, str], logs: Path, tag: str) -> list[subprocess.Popen]:
    from leaderboard.worker import ONE_THREAD

    # One thread per worker process, as bin/worker starts them.
    env = {**env, **{k: env.get(k, v) for k, v in ONE_THREAD.items()}}
    procs = []
    for i in range(n):
        log = open(logs / f"worker-{tag}-{i}.log", "w")  # noqa: SIM115 (the worker's lifetime)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "leaderboard.celery", "worker",
                 "--pool", "solo", "--loglevel", "info", "--hostname",
                 f"bench-{tag}-{i}@%h", "--without-gossip", "--without-mingle",
                 "--without-heartbeat"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )  # fmt: skip
    deadline = time.monotonic() + 120
    for i, _ in enumerate(procs):
        path = logs / f"worker-{tag}-{i}.log"
        while "ready." not in path.read_text():
            if time.monotonic() > deadline:
                raise SystemExit(f"worker {i} did not start:\n{path.read_text()[-2000:]}")
            time.sleep(0.2)
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, 15)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()


def measure(workers: int, env: dict[str, str], logs: Path) -> dict:
    from django.db import connections

    from leaderboard.board.models import Evaluation, RescoreRun
    from leaderboard.board.services.rescoring import all_rescore

    procs = _start_workers(workers, env, logs, f"w{workers}")
    try:
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        result = all_rescore(actor=None, note=f"benchmark, {workers} worker(s)")
        run_id = result.rescore_run
        while RescoreRun.objects.filter(pk=run_id, status="running").exists():
            if any(p.poll() is not None for p in procs):
                raise SystemExit(
                    "a worker stopped during the re-score; see its log in " + str(logs)
                )
            time.sleep(0.25)
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()
        peaks = [_peak_rss_mib(p.pid) for p in procs]
    finally:
        _stop(procs)
    run = RescoreRun.objects.get(pk=run_id)
    runs = Evaluation.objects.filter(rescore_runs=run).only("report", "duration_seconds", "status")
    entry_scenarios = 0
    busy = 0.0
    for ev in runs.iterator(chunk_size=50):
        if ev.status == "succeeded":
            entry_scenarios += len(ev.report["scenarios"])
        busy += ev.duration_seconds or 0.0
    connections.close_all()
    return {
        "workers": workers,
        "entries": run.total,
        "done": run.done,
        "failed": run.failed,
        "entry_scenarios": entry_scenarios,
        "wall_seconds": round(wall, 1),
        "entries_per_minute": round(run.done / wall * 60, 1),
        "wall_seconds_per_entry_scenario": round(wall / max(entry_scenarios, 1), 3),
        "worker_seconds_per_entry_scenario": round(busy / max(entry_scenarios, 1), 3),
        "peak_rss_mib": [round(p, 1) for p in peaks],
        "rank_changes": len(run.rank_changes or []),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--workers", default="1,2", help="worker processes per round, in order")
    ap.add_argument("--variants", type=int, default=3, help="prediction files per task")
    ap.add_argument("--benchmark", help="the demo benchmark to use (generated when missing)")
    ap.add_argument("--database", default="leaderboard_rescore")
    ap.add_argument("--out", default=str(ROOT / "var" / "test-results" / "rescore.json"))
    args = ap.parse_args()
    global BENCHMARK
    if args.benchmark:
        BENCHMARK = Path(args.benchmark)
    var_dir = Path(tempfile.mkdtemp(prefix="leaderboard-rescore-"))
    env = _environment(var_dir, args.database)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    recreate_database(args.database)
    _ensure_benchmark(BENCHMARK)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    per_task = seed(args.entries, args.variants)
    print(f"seeded {sum(per_task.values())} entries {per_task} in {time.perf_counter() - t0:.0f} s")
    connections.close_all()
    logs = var_dir / "logs"
    logs.mkdir()
    rounds = []
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    for n in [int(w) for w in args.workers.split(",")]:
        row = measure(n, env, logs)
        rounds.append(row)
        print(json.dumps(row))
    if len(rounds) >= 2 and rounds[0]["workers"] == 1:
        for r in rounds[1:]:
            r["speed_up"] = round(rounds[0]["wall_seconds"] / r["wall_seconds"], 2)
    out = {
        "entries": args.entries,
        "per_task": per_task,
        "replicates": int(os.environ.get("SCORING_REPLICATES", "1000")),
        "cpus": os.cpu_count(),
        "uptime_at_start": uptime,
        "rounds": rounds,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
