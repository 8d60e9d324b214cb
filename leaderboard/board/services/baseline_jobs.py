"""Reference baselines trained in the background by the platform's own worker.

A plan (:func:`baseline_jobs_plan`) holds one :class:`~leaderboard.board.models.BaselineJob`
per MedMod model and task, and one per run of another suite (its models share their fitted
encoders and train in under a minute). A job is queued once the models it builds on are done
(:func:`baseline_jobs_dispatch`); the worker that takes it (:func:`baseline_job_run`, on the
``baselines`` queue):

1. trains the model into the run directory (``python -m scoring.baselines train-model``, a
   process of its own: torch never loads in the worker);
2. runs it through the streaming gateway in every scenario
   (``python -m leaderboard.containers stream-baselines``), as a container entry is run;
3. enters the streamed prediction file as a reference entry and scores it;
4. queues the jobs that were waiting for it.

A training-missingness sweep (:func:`baseline_sweep_plan`) adds one job per rate after the
main ones: it trains the sweep's models at that rate (``python -m scoring.baselines sweep
--rates R``, into ``DIR/rate-R.RR``), streams each through the gateway, and enters them as
variants of the reference entries (never ranked; the task board's training-missingness
curve).

Each step is skipped when the run directory already holds its result, so a stopped plan
resumes where it was and a second run of the demo reuses everything. A job that fails says
why (the last lines of its log), and so do the jobs that needed it.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from benchmark_data.tasks import TASKS
from leaderboard.board.errors import BenchmarkInvalid, ServiceError
from leaderboard.board.models import BaselineJob, Benchmark, Evaluation, Submission
from leaderboard.board.services.baselines import (
    DEFAULT_MODELS,
    MODELS,
    baselines_load,
    read_run_manifest,
    read_run_manifest_named,
)
from leaderboard.board.services.evaluations import evaluation_run
from leaderboard.containers.baselines import read_stream_manifest, stream_path

log = logging.getLogger(__name__)

J = BaselineJob.Status
LOG_DIR = "logs"
LOG_TAIL_LINES = 15
# The radiology CXR model initialises every other task's CXR encoder: it comes first. Then
# in-hospital mortality (the sample entry's board) whole, then the other tasks.
FIRST = ("radiology", "cxr")


def _needs(task: str, model: str) -> list[str]:
    """The jobs (``task/model``) whose trained models this one builds on (as
    ``scoring.baselines.run.model_needs`` with the radiology pre-training, the default)."""
    needs = []
    if model == "cxr" and task != "radiology":
        needs.append("radiology/cxr")
    if model not in ("ehr", "cxr"):
        needs += [f"{task}/ehr", f"{task}/cxr"]
    return needs


def _medmod_plan(
    benchmark: Benchmark, tasks: list[str] | None = None, models: list[str] | None = None
) -> list[tuple[str, str]]:
    """The jobs of the default reference models (``DEFAULT_MODELS``; ``["all"]``: every one;
    or those asked), with what they build on, in the order they are queued when ready."""
    slugs = [t.slug for t in benchmark.tasks.all() if t.slug in TASKS]
    order = sorted(slugs, key=lambda t: (t != "in-hospital-mortality", list(TASKS).index(t)))
    plan = [FIRST] if "radiology" in slugs else []
    plan += [(t, m) for t in order for m in MODELS if (t, m) != FIRST]
    chosen = set(MODELS if models == ["all"] else (models or DEFAULT_MODELS))
    want = {(t, m) for t, m in plan if t in (tasks or slugs) and m in chosen}
    todo = list(want)
    while todo:
        task, model = todo.pop()
        for need in _needs(task, model):
            need_task, need_model = need.split("/", 1)
            if (need_task, need_model) not in want:
                want.add((need_task, need_model))
                todo.append((need_task, need_model))
    return [k for k in plan if k in want]


def _label(benchmark: Benchmark, task: str, model: str) -> str:
    if not task:
        return f"{benchmark.suite.title}: its reference models"
    title = next((t.title for t in benchmark.tasks.all() if t.slug == task), task)
    return f"{MODELS.get(model, (model,))[0]} on {title}"


def baselines_stale(run_dir: Path, benchmark: Benchmark) -> bool:
    """Whether the run directory holds baselines made on another benchmark."""
    made_on = (read_run_manifest(run_dir).get("benchmark") or {}).get("hash")
    return bool(made_on) and made_on != benchmark.manifest_hash


def baseline_jobs_plan(
    *,
    benchmark: Benchmark,
    run_dir: str | Path,
    suite_run: bool = False,
    tasks: list[str] | None = None,
    models: list[str] | None = None,
) -> list[BaselineJob]:
    """Plan the reference baselines of ``benchmark`` into ``run_dir``: one job per MedMod
    model and task (of ``tasks`` and ``models`` when given, with the models they build on),
    or one job for a whole run of another suite (``suite_run``). Jobs done are kept; a job
    left queued or running by a worker that stopped is planned again (one of an earlier,
    wider plan waits again). A run directory made
    on another benchmark is refused: name a new one."""
    run = Path(run_dir).resolve()
    if run.is_dir() and baselines_stale(run, benchmark):
        raise BenchmarkInvalid(
            f"{run} holds baselines of another benchmark: remove it or name another directory"
        )
    keys = [("", "")] if suite_run else _medmod_plan(benchmark, tasks, models)
    jobs = []
    with transaction.atomic():
        # Every job a stopped worker left queued or running waits again, those of an earlier,
        # wider plan too: else it would hold one of the BASELINE_JOBS_AT_ONCE places for good.
        BaselineJob.objects.filter(benchmark=benchmark, status__in=(J.QUEUED, J.RUNNING)).update(
            status=J.WAITING, message="", queued_at=None, started_at=None, finished_at=None
        )
        for position, (task, model) in enumerate(keys):
            job, created = BaselineJob.objects.get_or_create(
                benchmark=benchmark,
                task=task,
                model=model,
                defaults={
                    "label": _label(benchmark, task, model),
                    "position": position,
                    "needs": _needs(task, model) if task else [],
                    "run_dir": str(run),
                },
            )
            if not created and (job.status != J.DONE or job.run_dir != str(run)):
                job.status, job.message, job.run_dir = J.WAITING, "", str(run)
                job.queued_at = job.started_at = job.finished_at = None
                job.save()
            jobs.append(job)
    return jobs


# A sweep job's model field: "sweep:0.30:late,joint,medfuse" (its rate and models).
SWEEP_JOB = "sweep"
SWEEP_POSITION = 10_000  # after every job of the main plan
SWEEP_INDEX = "sweep.json"


def sweep_job_model(rate: float, models: list[str]) -> str:
    return f"{SWEEP_JOB}:{rate:.2f}:{','.join(models)}"


def _sweep_job(job: BaselineJob) -> tuple[float, list[str]] | None:
    """A sweep job's rate and models; None for a job of the main plan."""
    parts = job.model.split(":")
    if len(parts) != 3 or parts[0] != SWEEP_JOB:
        return None
    return float(parts[1]), [m for m in parts[2].split(",") if m]


def sweep_stale(sweep_dir: Path, benchmark: Benchmark) -> bool:
    """Whether the sweep directory holds a sweep made on another benchmark."""
    if not (sweep_dir / SWEEP_INDEX).is_file():
        return False
    made_on = (read_run_manifest_named(sweep_dir, SWEEP_INDEX).get("settings") or {}).get(
        "benchmark"
    )
    return bool(made_on) and made_on != benchmark.manifest_hash


def baseline_sweep_plan(
    *,
    benchmark: Benchmark,
    sweep_dir: str | Path,
    task: str,
    models: list[str],
    rates: list[float],
) -> list[BaselineJob]:
    """Plan a training-missingness sweep of ``models`` on ``task``: one job per rate, queued
    after the main plan's jobs of those models (when planned). Jobs done are kept."""
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise BenchmarkInvalid(f"unknown model(s) {', '.join(unknown)}; the models are "
                               f"{', '.join(MODELS)}")  # fmt: skip
    bad = [r for r in rates if not 0 < r < 1]
    if bad or not rates:
        raise BenchmarkInvalid(f"the rates of a sweep lie in (0, 1), not {bad or rates}")
    if task not in {t.slug for t in benchmark.tasks.all()}:
        raise BenchmarkInvalid(f"task {task} is not in benchmark {benchmark}")
    root = Path(sweep_dir).resolve()
    if sweep_stale(root, benchmark):
        raise BenchmarkInvalid(
            f"{root} holds a sweep of another benchmark: remove it or name another directory"
        )
    planned = set(
        BaselineJob.objects.filter(benchmark=benchmark, task=task, model__in=models).values_list(
            "model", flat=True
        )
    )
    needs = [f"{task}/{m}" for m in models if m in planned]
    names = ", ".join(MODELS[m][0] for m in models)
    title = next((t.title for t in benchmark.tasks.all() if t.slug == task), task)
    jobs = []
    with transaction.atomic():
        for i, rate in enumerate(sorted(rates)):
            job, created = BaselineJob.objects.get_or_create(
                benchmark=benchmark,
                task=task,
                model=sweep_job_model(rate, models),
                defaults={
                    "label": f"{names} on {title}, {rate:.0%} of training images withheld",
                    "position": SWEEP_POSITION + i,
                    "needs": needs,
                    "run_dir": str(root),
                },
            )
            if not created and (job.status != J.DONE or job.run_dir != str(root)):
                job.status, job.message, job.run_dir = J.WAITING, "", str(root)
                job.queued_at = job.started_at = job.finished_at = None
                job.save()
            jobs.append(job)
    return jobs


def _sweep_steps(job: BaselineJob, rate: float, models: list[str], log_path: Path) -> Path:
    """Train a sweep's models at one rate (kept when done), stream each through the
    gateway; returns the rate's run directory."""
    from_dir, py, bench_dir = Path(job.run_dir), sys.executable, job.benchmark.uri
    _run_step([py, "-m", "scoring.baselines", "sweep", "--benchmark", bench_dir, "--out",
               str(from_dir), "--models", ",".join(models), "--rates", f"{rate:.2f}",
               "--tasks", job.task, "--threads", "1"], log_path, "training")  # fmt: skip
    run = from_dir / f"rate-{rate:.2f}"
    for model in models:
        if not _streamed(run, job.task, model):
            _run_step([py, "-m", "leaderboard.containers", "stream-baselines", "--run", str(run),
                       "--benchmark", bench_dir, "--task", job.task, "--model", model, "--jobs",
                       "1", "--threads", "1"], log_path, "the streaming gateway run")  # fmt: skip
    return run


def baseline_jobs_dispatch(*, benchmark: Benchmark | None = None) -> list[int]:
    """Queue the waiting jobs whose needs are done, in the plans' order (a suite's single
    job, under a minute, beside the first of MedMod's), up to
    ``BASELINE_JOBS_AT_ONCE`` queued or running at a time (so the plan's order is the order
    they run in, whatever order the broker delivers messages sent together); the messages go
    after the transaction commits. Mark failed every waiting job that builds on a failed
    one, however far down. Returns the ids queued."""
    from leaderboard.board.tasks import baseline_job_run_task

    scope = BaselineJob.objects.all()
    if benchmark is not None:
        scope = scope.filter(benchmark=benchmark)
    queued: list[int] = []
    changed = True
    while changed:
        changed = False
        states = {(j.benchmark_id, j.key): j.status for j in scope.all()}
        busy = BaselineJob.objects.filter(status__in=(J.QUEUED, J.RUNNING)).count()
        for job in scope.filter(status=J.WAITING).order_by("position", "benchmark__created_at"):
            need = {n: states.get((job.benchmark_id, n)) for n in job.needs}
            failed = [n for n, state in need.items() if state == J.FAILED]
            if failed:
                changed |= bool(
                    BaselineJob.objects.filter(pk=job.pk, status=J.WAITING).update(
                        status=J.FAILED,
                        finished_at=timezone.now(),
                        message=f"not trained: it builds on {', '.join(failed)}, which failed",
                    )
                )
            elif (
                busy < settings.BASELINE_JOBS_AT_ONCE
                and all(state == J.DONE for state in need.values())
                and BaselineJob.objects.filter(pk=job.pk, status=J.WAITING).update(
                    status=J.QUEUED, queued_at=timezone.now()
                )
            ):
                queued.append(job.pk)
                busy += 1
    for pk in queued:
        transaction.on_commit(functools.partial(baseline_job_run_task.apply_async, args=[pk]))
    return queued


class StepFailed(ServiceError):
    """A step of a job failed; the message says which and why."""


def _run_step(cmd: list[str], log_path: Path, what: str) -> None:
    """Run one step as a process of its own, its output appended to the job's log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    root = str(settings.BASE_DIR)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    with log_path.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.run(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        lines = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        raise StepFailed(f"{what} failed (exit {rc}); the end of {log_path}:\n" + "\n".join(lines))


def _trained(run: Path, task: str, model: str) -> bool:
    entry = (read_run_manifest(run).get("tasks") or {}).get(task, {}).get(model)
    return bool(entry) and (run / "checkpoints" / task / f"{model}.pt").is_file()


def _streamed(run: Path, task: str, model: str) -> bool:
    runs = read_stream_manifest(run).get("runs") or {}
    return model in (runs.get(task) or {}) and stream_path(run, task, model).is_file()


def _score(submissions: list[Submission]) -> list[str]:
    """Score the new entries now (the scoring worker may have taken one first: then it is
    its run that counts). Returns a line per entry."""
    lines = []
    for sub in submissions:
        pending = sub.evaluations.filter(status=Evaluation.Status.QUEUED).first()
        ev = evaluation_run(evaluation_id=pending.pk, worker="baselines") if pending else None
        if ev is not None and ev.status == Evaluation.Status.SUCCEEDED:
            lines.append(f"{sub.task.slug} {sub.method_name}: {ev.primary_metric} {ev.primary_value:.4f}")  # fmt: skip
        elif ev is not None:
            raise StepFailed(f"scoring {sub.method_name} failed: {ev.error_message}")
    return lines


def baseline_job_run(*, job_id: int) -> BaselineJob | None:
    """Do one job (train, stream, enter, score), then queue what was waiting for it. None
    when the job is not queued any more (a second delivery of its message)."""
    if not BaselineJob.objects.filter(pk=job_id, status=J.QUEUED).update(
        status=J.RUNNING, started_at=timezone.now(), message=""
    ):
        return None
    job = BaselineJob.objects.select_related("benchmark").get(pk=job_id)
    run = Path(job.run_dir)
    bench_dir = job.benchmark.uri
    sweep = _sweep_job(job)
    name = f"{job.task}-{job.model}" if job.task else "suite"
    if sweep is not None:
        name = f"{job.task}-sweep-{sweep[0]:.2f}"
    log_path = run / LOG_DIR / f"{name}.log"
    py = sys.executable
    try:
        if sweep is not None:
            rate, models = sweep
            run = _sweep_steps(job, rate, models, log_path)
            only = {(job.task, m) for m in models}
        elif not job.task:
            if not (run / "run.json").is_file():
                _run_step([py, "-m", "scoring.baselines", "train", "--benchmark", bench_dir,
                           "--out", str(run)], log_path, "training")  # fmt: skip
            only = None
        else:
            if not _trained(run, job.task, job.model):
                _run_step([py, "-m", "scoring.baselines", "train-model", "--benchmark", bench_dir,
                           "--run", str(run), "--task", job.task, "--model", job.model],
                          log_path, "training")  # fmt: skip
            if not _streamed(run, job.task, job.model):
                _run_step([py, "-m", "leaderboard.containers", "stream-baselines", "--run",
                           str(run), "--benchmark", bench_dir, "--task", job.task, "--model",
                           job.model, "--jobs", "1", "--threads", "1"], log_path, "the streaming gateway run")  # fmt: skip
            only = {(job.task, job.model)}
        created = baselines_load(run_dir=run, only=only)
        lines = _score(created)
    except (ServiceError, OSError, SoftTimeLimitExceeded) as exc:
        message = getattr(exc, "message", None) or str(exc) or "it ran out of time"
        log.warning("baseline job %s failed: %s", job, message)
        BaselineJob.objects.filter(pk=job_id).update(
            status=J.FAILED, finished_at=timezone.now(), message=message[:4000]
        )
    else:
        entered = [s.public_id for s in created]
        BaselineJob.objects.filter(pk=job_id).update(
            status=J.DONE,
            finished_at=timezone.now(),
            message="; ".join(lines) or "already on the board",
            submissions=entered or job.submissions,
        )
    baseline_jobs_dispatch()  # the slot it frees may go to a job of another benchmark
    job.refresh_from_db()
    return job


__all__ = [
    "baseline_job_run",
    "baseline_jobs_dispatch",
    "baseline_jobs_plan",
    "baseline_sweep_plan",
    "baselines_stale",
    "sweep_stale",
]
