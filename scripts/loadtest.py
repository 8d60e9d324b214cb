"""Load test of the platform on loopback: 500 scored entries, 20 concurrent readers of the
leaderboard pages and API, while a worker scores new submissions.

    .venv/bin/python scripts/loadtest.py [--entries 500] [--readers 20] [--think 1.0]
                                         [--duration 60] [--web-workers 4]
                                         [--database leaderboard_load]
                                         [--out var/test-results/load.json]

Each reader is a user who sends a request, reads for ``--think`` seconds on average, and
sends the next; ``--think 0`` sends the next at once (the saturation test).

It makes its own PostgreSQL database (``--database``, dropped and made again), registers
the demo benchmark (``var/test-cache/benchmark-demo-seed42``, generated if missing), enters one
real submission and scores it with the platform's own service, then enters the other entries
as copies of that run with their values shifted (a different primary value, CI, per-replicate
values and summary each), and renders each run's results part of its entry page into the
cache as the worker does when it records a run. It serves the site with gunicorn (several processes, DEBUG off,
whitenoise) with Redis as the shared cache (keys of the run's own) and runs a Celery worker
on Redis; a submitter posts a new file every few seconds
through the API while the readers run. Latencies are measured per request kind from the
client side (http.client, one keep-alive connection per reader).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench_platform import platform_environment, recreate_database

ROOT = Path(__file__).resolve().parents[1]
# Generated here when missing; ``--benchmark`` names another (the tests pass theirs).
BENCHMARK = ROOT / "var" / "test-cache" / "benchmark-demo-seed42-loadtest"
DB_NAME = "leaderboard_load"
TASK = "in-hospital-mortality"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(var_dir: Path, web_workers: int, database: str) -> dict[str, str]:
    return platform_environment(
        var_dir,
        database,
        name="load",
        CONN_MAX_AGE="60",
        # Production's cache: Redis, shared by the web processes and the worker.
        # Keys of this run's own: another run's cache describes another database.
        CACHE_URL=os.environ.get(
            "CACHE_URL", f"redis://127.0.0.1:6379/13?key_prefix=load-{uuid.uuid4().hex[:12]}"
        ),
        # Readers and the submitter are one client address: lift the per-address limits,
        # which would otherwise (rightly) answer 429 to 20 readers from one machine.
        API_ANON_RATE="1000000/minute",
        API_USER_RATE="1000000/minute",
        API_SUBMISSION_RATE="1000/minute",
        SUBMISSIONS_PER_DAY="1000",
        WEB_WORKERS=str(web_workers),
    )


def _ensure_benchmark() -> Path:
    if not (BENCHMARK / "manifest.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "benchmark_data", "synth", "--out", str(BENCHMARK),
             "--scale", "demo", "--seed", "42"],
            check=True, cwd=ROOT,
        )  # fmt: skip
    return BENCHMARK


def _shifted(summary: dict, delta: float) -> dict:
    """A copy of a report summary with every metric value and CI moved by ``delta`` (in
    [0, 1] where the metric is a probability-like score)."""
    out = copy.deepcopy(summary)

    def move(node):
        if isinstance(node, dict):
            if isinstance(node.get("value"), float):
                node["value"] = min(1.0, max(0.0, node["value"] + delta))
            if isinstance(node.get("ci"), list) and all(isinstance(v, float) for v in node["ci"]):
                node["ci"] = [min(1.0, max(0.0, v + delta)) for v in node["ci"]]
            for v in node.values():
                move(v)
        elif isinstance(node, list):
            for v in node:
                move(v)

    move(out)
    return out


def seed(entries: int, sample_csv: bytes) -> list[str]:
    """One real scored entry, then ``entries - 1`` copies of its run with shifted values."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import transaction

    from leaderboard.board.models import Evaluation, Submission, Track, new_public_id
    from leaderboard.board.services.benchmarks import benchmark_register
    from leaderboard.board.services.evaluations import evaluation_run
    from leaderboard.board.services.identity import account_create
    from leaderboard.board.services.submissions import SubmissionMeta, submission_create

    benchmark = benchmark_register(uri=str(BENCHMARK), verify=False)
    task = benchmark.tasks.get(slug=TASK)
    track = Track.objects.get(slug=Track.PREDICTION_FILE)
    User = get_user_model()
    users = [User.objects.create_user(f"team{i:02d}", f"team{i:02d}@example.org", "load-test-pw")
             for i in range(50)]  # fmt: skip
    for user in users:  # confirmed addresses: only a verified identity may submit
        account_create(user=user, email=user.email, confirmed=True)
    first = submission_create(
        owner=users[0], task=task, track=track,
        upload=SimpleUploadedFile("predictions.csv", sample_csv),
        meta=SubmissionMeta(method_name="Logistic regression (scored)", training_data="train split",
                            uses_ehr=True, uses_cxr=False),
    )  # fmt: skip
    ev = first.evaluations.get()
    evaluation_run(evaluation_id=ev.pk, worker="loadtest-seed")
    ev.refresh_from_db()
    first.refresh_from_db()
    assert ev.status == "succeeded", ev.error_message
    rng = np.random.default_rng(7)
    subs, evals = [], []
    for i in range(1, entries):
        delta = float(rng.normal(-0.05, 0.06))
        s = copy.copy(first)
        s.pk = None
        s.public_id = new_public_id()
        s.owner = users[i % len(users)]
        s.method_name = f"Fusion model variant {i:03d}"
        s.team_name = f"Team {i % len(users):02d}"
        s.sha256 = hashlib.sha256(f"load-{i}".encode()).hexdigest()
        s.uses_cxr = bool(i % 2)
        subs.append(s)
        e = copy.copy(ev)
        e.pk = None
        e.run_token = uuid.uuid4()
        e.primary_value = min(1.0, max(0.0, ev.primary_value + delta))
        e.primary_ci_low = min(1.0, max(0.0, ev.primary_ci_low + delta))
        e.primary_ci_high = min(1.0, max(0.0, ev.primary_ci_high + delta))
        noise = rng.normal(0, 0.01, size=len(ev.replicate_values))
        e.replicate_values = [None if v is None else round(min(1.0, max(0.0, v + delta + n)), 7)
                              for v, n in zip(ev.replicate_values, noise, strict=True)]  # fmt: skip
        e.summary = _shifted(ev.summary, delta)
        report = dict(ev.report)
        report["summary"] = e.summary
        e.report = report
        evals.append(e)
    with transaction.atomic():
        created = Submission.objects.bulk_create(subs, batch_size=200)
        for s, e in zip(created, evals, strict=True):
            e.submission = s
        Evaluation.objects.bulk_create(evals, batch_size=100)
    # The worker renders a run's results part of its entry page into the shared cache when
    # it records the run (services.evaluations.evaluation_finish); these runs were copied
    # in, not recorded, so they are rendered here with the same function.
    from leaderboard.board.renderings import entry_report_html

    for e in Evaluation.objects.filter(submission__task=task, status="succeeded"):
        entry_report_html(e)
    return [first.public_id] + [s.public_id for s in created]


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = {}
        self.errors: dict[str, list[str]] = {}

    def add(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.samples.setdefault(kind, []).append(seconds)
            if error:
                self.errors.setdefault(kind, []).append(error)


def _request(conn: http.client.HTTPConnection, method: str, path: str, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data


def reader(
    port: int, ids: list[str], stop: threading.Event, rec: Recorder, seed_: int, think: float
) -> None:
    """One user: a request, then a pause of ``think`` seconds on average (uniform between
    half and one and a half times it; 0: none, the next request at once)."""
    rng = random.Random(seed_)
    mix = [("board page", f"/tasks/{TASK}/"), ("board API", f"/api/tasks/{TASK}/leaderboard/"),
           ("home page", "/"), ("entry page", None), ("entry API", None)]  # fmt: skip
    weights = [4, 3, 1, 1, 1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        kind, path = rng.choices(mix, weights)[0]
        if path is None:
            entry = rng.choice(ids)
            path = f"/entries/{entry}/" if kind == "entry page" else f"/api/submissions/{entry}/"
        t0 = time.perf_counter()
        error = None
        try:
            status, data = _request(conn, "GET", path)
            if status != 200:
                error = f"{status} {path}"
            elif b"Traceback" in data:
                error = f"traceback in {path}"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc} ({path})"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        rec.add(kind, time.perf_counter() - t0, error)
        if think > 0:
            stop.wait(rng.uniform(0.5 * think, 1.5 * think))
    conn.close()


def submitter(port: int, token: str, csv: bytes, stop: threading.Event, rec: Recorder,
              every: float) -> list[str]:  # fmt: skip
    sent: list[str] = []
    i = 0
    lines = csv.decode().splitlines()
    while not stop.is_set():
        i += 1
        body_csv = "\n".join([lines[0]] + [f"{ln.rsplit(',', 1)[0]},{min(1.0, float(ln.rsplit(',', 1)[1]) + i / 1e5):.6f}"
                                           for ln in lines[1:]]) + "\n"  # fmt: skip
        boundary = uuid.uuid4().hex
        fields = {"task": TASK, "method_name": f"Live submission {i}", "modalities": "ehr",
                  "training_data": "train split only"}  # fmt: skip
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                 for k, v in fields.items()]  # fmt: skip
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                     f'filename="p{i}.csv"\r\nContent-Type: text/csv\r\n\r\n{body_csv}\r\n'
                     f"--{boundary}--\r\n")  # fmt: skip
        body = "".join(parts).encode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        t0 = time.perf_counter()
        try:
            status, data = _request(conn, "POST", "/api/submissions/", body, {
                "Authorization": f"Token {token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
            error = None if status == 201 else f"{status} {data[:200]!r}"
            if status == 201:
                sent.append(json.loads(data)["id"])
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        rec.add("submission POST", time.perf_counter() - t0, error)
        conn.close()
        stop.wait(every)
    return sent


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--benchmark", help="the demo benchmark to use (generated when missing)")
    ap.add_argument("--entries", type=int, default=500)
    ap.add_argument("--readers", type=int, default=20)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--web-workers", type=int, default=4)
    ap.add_argument("--submit-every", type=float, default=3.0)
    ap.add_argument(
        "--think",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="mean pause of a user between two requests (uniform, 0.5-1.5 times it); 0: "
        "none, every reader sends its next request at once (the saturation test)",
    )
    ap.add_argument(
        "--database",
        default=DB_NAME,
        help="PostgreSQL database to make (dropped first if it exists) and fill",
    )
    ap.add_argument("--out", default=str(ROOT / "var" / "test-results" / "load.json"))
    args = ap.parse_args()
    if args.benchmark:
        global BENCHMARK
        BENCHMARK = Path(args.benchmark)

    var_dir = Path(tempfile.mkdtemp(prefix="leaderboard-load-"))
    env = _environment(var_dir, args.web_workers, args.database)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    recreate_database(args.database)
    _ensure_benchmark()

    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from benchmark_data import Benchmark
    from leaderboard.board.models import Evaluation, Submission
    from leaderboard.board.sample import sample_predictions
    from leaderboard.board.services.identity import account_create

    cache.clear()  # the cache of an earlier run describes another database
    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    sample_csv = sample_predictions(Benchmark.open(BENCHMARK))
    t0 = time.perf_counter()
    ids = seed(args.entries, sample_csv)
    # The planner's statistics, as a database in service has them (autovacuum gathers them
    # within a minute or so of a bulk insert): without them it guesses one row per table and
    # may read the board's key query through an index that scans every run once per entry.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"seeded {len(ids)} scored entries in {time.perf_counter() - t0:.1f} s")
    from django.contrib.auth import get_user_model

    submitter_user = get_user_model().objects.create_user("submitter", "s@example.org", "pw-load")
    account_create(user=submitter_user, email=submitter_user.email, confirmed=True)
    token = Token.objects.create(user=submitter_user).key
    from django.db import connections

    connections.close_all()

    port = _free_port()
    logs = var_dir / "logs"
    logs.mkdir()
    web_log = open(logs / "web.log", "w")  # noqa: SIM115 (open for the processes' lifetime)
    worker_log = open(logs / "worker.log", "w")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "leaderboard.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(args.web_workers), "--timeout", "60"],
        cwd=ROOT, env=env, stdout=web_log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "leaderboard.celery", "worker", "--loglevel",
         "warning", "--concurrency", "1", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                if _request(conn, "GET", f"/tasks/{TASK}/")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit((logs / "web.log").read_text()[-3000:])
            time.sleep(0.3)

        # Warm-up: every web process loads the board once; not measured.
        warm_stop = threading.Event()
        warm = Recorder()
        threads = [threading.Thread(target=reader, args=(port, ids, warm_stop, warm, 1000 + i, args.think))
                   for i in range(args.readers)]  # fmt: skip
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        warm_stop.set()
        for t in threads:
            t.join()

        rec = Recorder()
        stop = threading.Event()
        sent: list[int] = []
        sub_thread = threading.Thread(
            target=lambda: sent.extend(submitter(port, token, sample_csv, stop, rec,
                                                 args.submit_every)))  # fmt: skip
        threads = [threading.Thread(target=reader, args=(port, ids, stop, rec, i, args.think))
                   for i in range(args.readers)]  # fmt: skip
        started = time.perf_counter()
        sub_thread.start()
        for t in threads:
            t.start()
        time.sleep(args.duration)
        stop.set()
        for t in threads:
            t.join()
        sub_thread.join()
        elapsed = time.perf_counter() - started
        # Let the worker finish what was sent, then count what it scored.
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline
            and Submission.objects.filter(
                public_id__in=sent, status__in=["submitted", "queued", "running"]
            ).exists()
        ):
            time.sleep(0.5)
        scored = Submission.objects.filter(public_id__in=sent, status="published").count()
        runs = list(Evaluation.objects.filter(submission__public_id__in=sent,
                                              status="succeeded").values_list("duration_seconds", flat=True))  # fmt: skip
    finally:
        for proc in (web, worker):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        web_log.close()
        worker_log.close()

    reads = sum(len(v) for k, v in rec.samples.items() if k != "submission POST")
    result = {
        "entries": len(ids), "readers": args.readers, "duration_s": round(elapsed, 1),
        "web_workers": args.web_workers, "cpus": os.cpu_count(),
        "read_throughput_rps": round(reads / elapsed, 1),
        "submissions_sent": len(sent), "submissions_scored": scored,
        "scoring_seconds_median": round(statistics.median(runs), 2) if runs else None,
        "think_seconds": args.think,
        "kinds": {},
    }  # fmt: skip
    print(
        f"\n{'request':<16} {'n':>6} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for kind, values in sorted(rec.samples.items()):
        errs = rec.errors.get(kind, [])
        row = {"n": len(values), "errors": len(errs), "first_errors": errs[:5],
               "p50_ms": round(_pct(values, 0.5) * 1000, 1),
               "p95_ms": round(_pct(values, 0.95) * 1000, 1),
               "p99_ms": round(_pct(values, 0.99) * 1000, 1),
               "max_ms": round(max(values) * 1000, 1)}  # fmt: skip
        result["kinds"][kind] = row
        print(f"{kind:<16} {row['n']:>6} {row['errors']:>6} {row['p50_ms']:>8} {row['p95_ms']:>8} "
              f"{row['p99_ms']:>8} {row['max_ms']:>8}")  # fmt: skip
    print(
        f"\nreads: {result['read_throughput_rps']} requests/s over {elapsed:.0f} s; "
        f"submissions: {len(sent)} sent, {scored} scored and published during the run"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    shutil.rmtree(var_dir, ignore_errors=True)
    errors = sum(len(v) for v in rec.errors.values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
