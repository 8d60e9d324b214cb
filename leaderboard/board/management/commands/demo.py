"""``manage.py demo``: the embedded default, from nothing to a running leaderboard.

Migrates the database, generates the synthetic demo benchmark (``python -m benchmark_data
synth --scale demo --seed 42``) if it is not there yet, registers it, enters and scores a
sample submission, then serves the site on 127.0.0.1:8000 with a scoring worker (kombu's
filesystem transport: no server needed).

The reference baselines: a baselines run already made (``--baselines``) is entered as it is.
With ``--train-baselines`` they are trained by the platform's own worker instead, one job per
model and task (``services/baseline_jobs.py``), on a worker of their own started beside the
site: they appear on the board as each finishes, and the home page shows their progress.
``--train-sweep`` adds the training-missingness sweep after them: late fusion, joint fusion
and MedFuse on in-hospital mortality with 10, 30, 50, 70 and 90% of the training stays'
chest X-rays withheld, one job per rate (off by default: it takes far longer than the first
board).
``--no-serve`` stops after the set-up (with ``--train-baselines``: once every job is done).
``--only-static`` collects the static files and stops (``bin/demo`` runs it while the
benchmark is generated).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from leaderboard.board.errors import DuplicateSubmission, ServiceError
from leaderboard.board.models import BaselineJob, Submission, Track
from leaderboard.board.selectors.baselines import baseline_jobs_pending, baseline_progress
from leaderboard.board.selectors.benchmarks import benchmark_open
from leaderboard.board.selectors.submissions import task_get
from leaderboard.board.services.baseline_jobs import (
    baseline_jobs_dispatch,
    baseline_jobs_plan,
    baseline_sweep_plan,
    baselines_stale,
    sweep_stale,
)
from leaderboard.board.services.baselines import MODELS as BASELINE_MODELS
from leaderboard.board.services.baselines import baselines_load
from leaderboard.board.services.benchmarks import benchmark_register
from leaderboard.board.services.carry import containers_carry_over
from leaderboard.board.services.downloads import benchmark_publish_downloads
from leaderboard.board.services.evaluations import evaluation_run
from leaderboard.board.services.identity import account_ensure_confirmed
from leaderboard.board.services.submissions import SubmissionMeta, submission_create

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"
DEMO_EMAIL = "demo@example.org"
# The training-missingness sweep of --train-sweep.
SWEEP_TASK = "in-hospital-mortality"
SWEEP_MODELS = ["late", "joint", "medfuse"]
SWEEP_RATES = [0.1, 0.3, 0.5, 0.7, 0.9]


def worker_command(
    *, beat: bool = True, loglevel: str = "info", queue: str = "", concurrency: int = 1
) -> list[str]:
    """The command line of a scoring worker (one process, so the two cores stay shared), or
    of a worker for ``queue`` alone."""
    name = queue or "scorer"
    cmd = [sys.executable, "-m", "celery", "-A", "leaderboard.celery", "worker",
           "--loglevel", loglevel, "--concurrency", str(concurrency), "--pool", "prefork",
           "--hostname", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]  # fmt: skip
    if queue:  # else the default queue of the worker's own settings
        cmd += ["--queues", queue]
    if beat:
        cmd += ["--beat", "--schedule", str(settings.CELERY_BEAT_SCHEDULE_FILENAME)]
    return cmd


def static_fingerprint() -> str:
    """A hash of every static file the finders see (name, size, modification time) and of
    the storage that collects them: it changes when `collectstatic` has work to do."""
    from django.contrib.staticfiles.finders import get_finders

    entries = []
    for finder in get_finders():
        for path, storage in finder.list(["CVS", ".*", "*~"]):
            stat = os.stat(storage.path(path))
            prefix = getattr(storage, "prefix", None) or ""
            entries.append(f"{prefix}/{path}\0{stat.st_size}\0{stat.st_mtime_ns}")
    digest = hashlib.sha256(settings.STORAGES["staticfiles"]["BACKEND"].encode())
    digest.update("\n".join(sorted(entries)).encode())
    return digest.hexdigest()


class Command(BaseCommand):
    help = "Set up the demo (benchmark, baselines, a scored sample entry) and serve it."

    def add_arguments(self, parser):
        parser.add_argument("--out", default=str(settings.VAR_DIR / "demo"), help="demo folder")
        parser.add_argument("--baselines", default="", help="baselines run folder (run.json)")
        parser.add_argument(
            "--suite", action="append", default=[], metavar="DIR",
            help="another suite's demo: DIR/benchmark and DIR/baselines (repeatable)",
        )  # fmt: skip
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--no-serve", action="store_true", help="set up, then exit")
        parser.add_argument(
            "--train-baselines", action="store_true",
            help="train the reference baselines in the background, one job per model and task",
        )  # fmt: skip
        parser.add_argument(
            "--baseline-tasks", default="", metavar="T1,T2",
            help="with --train-baselines: MedMod's tasks to train (default: all)",
        )  # fmt: skip
        parser.add_argument(
            "--baseline-models", default="", metavar="M1,M2",
            help="with --train-baselines: the reference models to train, with those they build "
            "on, or 'all' (default: MedMod's eight and three of CareBench's strategies)",
        )  # fmt: skip
        parser.add_argument(
            "--train-sweep", action="store_true",
            help="also train the training-missingness sweep in the background (late, joint "
            "and MedFuse on in-hospital mortality at five rates), after the other jobs",
        )  # fmt: skip
        parser.add_argument(
            "--only-static", action="store_true", help="collect the static files, then exit"
        )

    def handle(self, *args, **opts):
        out = Path(opts["out"])
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        if opts["only_static"]:
            if settings.COLLECTED_STATIC:
                self._collect_static()
            return
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database ready")
        if settings.COLLECTED_STATIC:
            self._collect_static()
        train = opts["train_baselines"]

        bench_dir = out / "benchmark"
        if not (bench_dir / "manifest.json").is_file():
            self.stdout.write(f"generating the synthetic demo benchmark in {bench_dir} ...")
            subprocess.run(
                [sys.executable, "-m", "benchmark_data", "synth", "--out", str(bench_dir),
                 "--scale", "demo", "--seed", "42"],
                check=True,
            )  # fmt: skip
        try:
            benchmark = benchmark_register(uri=str(bench_dir))
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"benchmark {benchmark} registered ({benchmark.manifest_hash[:12]})")
        self._publish(benchmark)
        carried = containers_carry_over(actor=None, benchmark=benchmark)
        if carried.queued:
            self.stdout.write(
                f"{len(carried.queued)} container entries of earlier benchmarks moved to it, "
                "to be re-run through the streaming gateway"
            )

        run_dir = Path(opts["baselines"]) if opts["baselines"] else out / "baselines"
        self._sample_entry(benchmark)
        runs = [(benchmark, run_dir, bench_dir, False)]
        for folder in map(Path, opts["suite"]):
            try:
                other = benchmark_register(uri=str(folder / "benchmark"))
            except ServiceError as exc:
                raise CommandError(f"{folder}: {exc.message}") from None
            self.stdout.write(
                f"suite {other.suite.slug}: benchmark {other} registered ({other.manifest_hash[:12]})"
            )
            self._publish(other)
            runs.append((other, folder / "baselines", folder / "benchmark", True))
        for bench, run, where, suite_run in runs:
            if train:
                self._plan(bench, run, suite_run=suite_run, **self._subset(opts))
            else:
                self._baselines(run, where)
        if opts["train_sweep"]:
            self._plan_sweep(benchmark, out / "sweep")
        train = train or opts["train_sweep"]  # the baselines worker has jobs to do
        self.stdout.write(
            f"log in as {DEMO_USER} / {DEMO_PASSWORD} (or create an admin with "
            "`manage.py createsuperuser`)"
        )
        if opts["no_serve"]:
            if train:
                self._train_now()
            return
        self._serve(opts["addr"], train=train)

    def _collect_static(self) -> None:
        """Collect the static files (hashed names, gzip and brotli copies), only when one of
        them changed since the last run: compressing them all takes about 20 s."""
        stamp = Path(f"{settings.STATIC_ROOT}.fingerprint")
        want = static_fingerprint()
        manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
        if manifest.is_file() and stamp.is_file() and stamp.read_text() == want:
            self.stdout.write("static files already collected")
            return
        # --clear: a file that left the sources (or was replaced by an older one, as the
        # full plotly.js by the basic bundle) does not linger in STATIC_ROOT.
        call_command("collectstatic", interactive=False, clear=True, verbosity=0)
        stamp.write_text(want)
        self.stdout.write(f"static files collected in {settings.STATIC_ROOT}")

    def _publish(self, benchmark) -> None:
        """Publish the benchmark's public data files (the task pages' downloads) once."""
        index = benchmark_publish_downloads(benchmark=benchmark)
        size = sum(f["size"] for f in index["files"])
        self.stdout.write(f"  its public data files: {len(index['files'])}, {size / 1e6:.1f} MB")

    def _baselines(self, run_dir: Path, bench_dir: Path) -> None:
        """Enter a baselines run's prediction files as reference entries and score them."""
        if not (run_dir / "predictions").is_dir():
            self.stdout.write(
                f"no baselines run in {run_dir} (train one with `python -m scoring.baselines "
                f"train --benchmark {bench_dir} --out {run_dir}`)"
            )
            return
        try:
            refs = baselines_load(run_dir=run_dir)
        except ServiceError as exc:
            self.stderr.write(f"baselines not loaded: {exc.message}")
            refs = []
        for sub in refs:
            self._score_now(sub)

    @staticmethod
    def _subset(opts: dict) -> dict[str, list[str] | None]:
        def names(value: str) -> list[str] | None:
            return [v.strip() for v in value.split(",") if v.strip()] or None

        tasks, models = names(opts["baseline_tasks"]), names(opts["baseline_models"])
        unknown = [m for m in models or [] if m not in BASELINE_MODELS and m != "all"]
        if unknown:
            raise CommandError(
                f"unknown model(s) {', '.join(unknown)}; the models are {', '.join(BASELINE_MODELS)}"
            )
        return {"tasks": tasks, "models": models}

    def _plan(
        self,
        benchmark,
        run_dir: Path,
        *,
        suite_run: bool,
        tasks: list[str] | None = None,
        models: list[str] | None = None,
    ) -> None:
        """Plan the benchmark's reference baselines as jobs of the worker; a run directory
        of an earlier benchmark is removed first (the demo's own folder)."""
        if run_dir.is_dir() and baselines_stale(run_dir, benchmark):
            self.stdout.write(f"  {run_dir} holds baselines of an earlier benchmark: removed")
            shutil.rmtree(run_dir)
        jobs = baseline_jobs_plan(
            benchmark=benchmark, run_dir=run_dir, suite_run=suite_run, tasks=tasks, models=models
        )
        done = sum(j.status == BaselineJob.Status.DONE for j in jobs)
        self.stdout.write(
            f"  its reference baselines: {done} of {len(jobs)} jobs done"
            + ("" if done == len(jobs) else ", the rest trained by the worker in the background")
        )

    def _plan_sweep(self, benchmark, sweep_dir: Path) -> None:
        """Plan the training-missingness sweep as jobs after the main ones; a sweep of an
        earlier benchmark in the demo's own folder is removed first."""
        if sweep_stale(sweep_dir, benchmark):
            self.stdout.write(f"  {sweep_dir} holds a sweep of an earlier benchmark: removed")
            shutil.rmtree(sweep_dir)
        try:
            jobs = baseline_sweep_plan(benchmark=benchmark, sweep_dir=sweep_dir, task=SWEEP_TASK,
                                       models=SWEEP_MODELS, rates=SWEEP_RATES)  # fmt: skip
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        done = sum(j.status == BaselineJob.Status.DONE for j in jobs)
        self.stdout.write(f"  training-missingness sweep: {done} of {len(jobs)} rates done")

    def _train_now(self) -> None:
        """--no-serve: run the baselines worker until every job is done, then stop it."""
        if not baseline_jobs_pending():
            return
        with transaction.atomic():
            baseline_jobs_dispatch()
        worker = self._baselines_worker()
        try:
            seen = baseline_progress().done
            while baseline_jobs_pending():
                if worker.poll() is not None:
                    raise CommandError(f"the baselines worker stopped (exit {worker.returncode})")
                time.sleep(5)
                now = baseline_progress()
                if now.done != seen:
                    seen = now.done
                    self.stdout.write(f"  reference baselines: {now.done} of {now.total} done")
        finally:
            self._stop(worker)
        for job in baseline_progress().failures:
            self.stderr.write(f"  {job.label}: {job.message}")

    def _baselines_worker(self) -> subprocess.Popen:
        """The worker of the baselines queue: two processes (a job trains one model on one
        core, then runs it through the gateway), at a lower priority than the site's."""
        cmd = worker_command(beat=False, queue=settings.BASELINES_QUEUE, concurrency=2)
        worker = subprocess.Popen(cmd, start_new_session=True, preexec_fn=lambda: os.nice(10))
        self.stdout.write(f"baselines worker started (pid {worker.pid})")
        return worker

    def _score_now(self, sub: Submission) -> None:
        pending = sub.evaluations.filter(status="queued").first()
        if pending is None:
            return
        ev = evaluation_run(evaluation_id=pending.pk, worker="demo")
        if ev is None:
            return
        if ev.status == "succeeded":
            self.stdout.write(
                f"  #{sub.pk} {sub.task.slug} {sub.method_name}: {ev.primary_metric} {ev.primary_value:.4f}"
            )
        else:
            self.stdout.write(
                f"  #{sub.pk} {sub.task.slug} {sub.method_name}: failed: {ev.error_message}"
            )

    def _sample_entry(self, benchmark) -> None:
        from leaderboard.board.sample import SAMPLE_METHOD, SAMPLE_TASK, sample_predictions

        user, created = get_user_model().objects.get_or_create(
            username=DEMO_USER, defaults={"email": DEMO_EMAIL}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        # The demo account is the platform's own: its address counts as confirmed.
        account_ensure_confirmed(user=user, email=user.email or DEMO_EMAIL)
        task = task_get(slug=SAMPLE_TASK)
        data = sample_predictions(benchmark_open(benchmark=benchmark))
        try:
            sub = submission_create(
                owner=user,
                task=task,
                track=Track.objects.get(slug=Track.PREDICTION_FILE),
                upload=SimpleUploadedFile("sample-ihm.csv", data, content_type="text/csv"),
                meta=SubmissionMeta(
                    method_name=SAMPLE_METHOD,
                    team_name="Demo",
                    description="Mean and last value of the 76 discretized features over the "
                    "first 48 hours, standardized; L2-regularized logistic regression.",
                    uses_ehr=True,
                    uses_cxr=False,
                    training_data="The benchmark's train split only.",
                ),
                enforce_quota=False,
            )
        except DuplicateSubmission:
            self.stdout.write("sample entry already there")
            return
        self.stdout.write("sample entry scored:")
        self._score_now(sub)

    @staticmethod
    def web_command(addr: str) -> list[str]:
        """The site served as in production: gunicorn with the image's settings
        (leaderboard/gunicorn_config.py: threaded workers, request limits), so oversize and
        stalled uploads get the same answers (413, 408) here as there."""
        return [sys.executable, "-m", "gunicorn", "leaderboard.wsgi",
                "-c", "python:leaderboard.gunicorn_config", "--bind", addr]  # fmt: skip

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def _serve(self, addr: str, *, train: bool = False) -> None:
        # The links of the worker's e-mails (printed on the console) lead to this address.
        os.environ.setdefault("SITE_URL", f"http://{addr}")
        worker = subprocess.Popen(worker_command(), start_new_session=True)
        self.stdout.write(f"scoring worker started (pid {worker.pid})")
        trainer = None
        if train and baseline_jobs_pending():
            with transaction.atomic():
                baseline_jobs_dispatch()
            trainer = self._baselines_worker()
        # Stopped with SIGTERM as with Ctrl-C: the web server and the worker are stopped too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        web = None
        try:
            web = subprocess.Popen(self.web_command(addr), start_new_session=True)
            self.stdout.write(f"serving on http://{addr}/ (gunicorn, pid {web.pid}); Ctrl-C stops")
            web.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if web is not None:
                self._stop(web)
            if trainer is not None:
                self._stop(trainer)
            self._stop(worker)
