"""The container track on the platform's side: checking an uploaded image archive, running
a submission's image in every scenario on a worker, and reaping the runs of dead workers.

The running itself is ``leaderboard.containers`` (pure Python, no Django); this module maps
its outcomes to states a submitter can act on. The combined predictions then go through the
same scoring path as an uploaded file (``services.evaluations``).
"""

from __future__ import annotations

import gzip
import logging
import shutil
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile

from leaderboard.board.errors import UploadInvalid
from leaderboard.board.models import Submission
from leaderboard.board.selectors.benchmarks import benchmark_open
from leaderboard.containers import (
    DEFAULT_LIMITS,
    EngineError,
    ImageArchiveError,
    Limits,
    RunStatus,
    combine_predictions,
    inspect_image_archive,
)
from leaderboard.containers.executor import Executor, executor_for
from leaderboard.containers.inputs import container_scenarios, cut_at_prediction_time
from leaderboard.containers.limits import MiB
from leaderboard.containers.output import keep_units, remove_tree

log = logging.getLogger(__name__)

COPY_CHUNK = 8 * MiB
# The combined predictions of container runs, kept for re-scores (see container_predictions_keep).
PREDICTIONS_DIR = "container-predictions"

# What a submitter reads when the image's run fails, per runner state (``failure_code`` is
# ``container_<state>``). ``{detail}`` is the runner's message, which names the scenario.
FAILURE_MESSAGES: dict[str, str] = {
    RunStatus.IMAGE_INVALID: "The image could not be run: {detail}.",
    RunStatus.TIMED_OUT: "The model timed out: {detail}.",
    RunStatus.OUT_OF_MEMORY: "The model ran out of memory: {detail}.",
    RunStatus.CRASHED: "The model crashed: {detail}.{exit_code} Its log tail is on the entry "
    "page (only you see it).",
    RunStatus.NO_OUTPUT: "The model wrote no predictions: {detail}.",
    RunStatus.OUTPUT_TOO_LARGE: "The model wrote too much output: {detail}.",
    RunStatus.WRONG_OUTPUT: "The model's output is not a usable prediction file: {detail}.",
}
WRONG_PREDICTIONS = (
    "The model ran in every scenario, but its predictions were refused by the scorer: {detail}"
)
MSG_COMBINE = "the scenarios' prediction files do not have the same columns ({detail})"


def container_executor() -> Executor:
    """The backend of container runs (``CONTAINER_EXECUTOR``), with this host's GPUs
    (``WORKER_GPUS``): the only place the services learn which backend runs models."""
    return executor_for(
        settings.CONTAINER_EXECUTOR,
        gpus=settings.WORKER_GPUS,
        lock_dir=Path(settings.CONTAINER_WORK_DIR) / ".gpu-slots",
    )


def container_limits(*, gpus: int = 0) -> Limits:
    """The runner's limits, from settings (CONTAINER_*), and the GPUs of a run."""
    return DEFAULT_LIMITS.with_(
        gpus=gpus,
        archive_bytes=settings.CONTAINER_MAX_UPLOAD_BYTES,
        cpus=float(settings.CONTAINER_CPUS),
        memory_bytes=int(settings.CONTAINER_MEMORY_MB) * MiB,
        pids=int(settings.CONTAINER_PIDS),
        wall_time=float(settings.CONTAINER_WALL_TIME),
        user=settings.CONTAINER_RUN_USER,
        runtime=settings.CONTAINER_RUNTIME or None,
        io_device=settings.CONTAINER_IO_DEVICE or None,
        io_bps=int(settings.CONTAINER_IO_MBPS) * MiB,
        io_iops=int(settings.CONTAINER_IO_IOPS),
    )


def check_image_archive(*, upload: UploadedFile) -> dict[str, Any]:
    """Run the runner's archive checks on an upload; a refused archive is a 400 with the
    runner's message. Returns the archive's summary (image id, platform, sizes, command)."""
    path_of = getattr(upload, "temporary_file_path", None)
    try:
        if path_of is not None:
            info = inspect_image_archive(path_of(), limits=container_limits())
        else:  # a small upload held in memory: spill it to a file for the checks
            with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
                upload.seek(0)
                for chunk in upload.chunks():
                    tmp.write(chunk)
                tmp.flush()
                info = inspect_image_archive(tmp.name, limits=container_limits())
    except ImageArchiveError as exc:
        raise UploadInvalid(
            f"The image archive was refused: {exc}.", field="image", code="invalid_image"
        ) from None
    finally:
        upload.seek(0)
    return info.summary()


@dataclass
class ContainerOutcome:
    """What running a submission's image gave: the combined prediction file, or the
    failure (a code, a message for the submitter, and whether it is the platform's fault)."""

    run_id: str
    summary: dict[str, Any]
    logs: dict[str, str] = field(default_factory=dict)
    predictions: Path | None = None
    failure_code: str = ""
    failure_message: str = ""
    engine_error: bool = False

    @property
    def ok(self) -> bool:
        return self.predictions is not None


def container_work_dir(*, evaluation_id: int, run_id: str) -> Path:
    root = Path(settings.CONTAINER_WORK_DIR)
    root.mkdir(parents=True, exist_ok=True)
    return root / f"e{evaluation_id}-{run_id}"


def _local_archive(submission: Submission, work_dir: Path) -> Path:
    """The image archive as a local file: its path in a local store, else a streamed copy."""
    name = submission.file.name
    if not name:
        raise ValueError(f"entry {submission.pk} has no stored image archive")
    try:
        path = Path(default_storage.path(name))
        if path.is_file():
            return path
    except NotImplementedError:
        pass
    dest = work_dir / "image.tar"
    with default_storage.open(name, "rb") as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, COPY_CHUNK)
    return dest


def _failure_message(status: str, run: Any) -> str:
    detail = run.message or str(status)
    exit_code = ""
    if status == RunStatus.CRASHED:
        codes = [r.exit_code for r in run.results.values() if r.status == status]
        if codes and codes[0] is not None:
            exit_code = f" Exit code {codes[0]}."
    template = FAILURE_MESSAGES.get(status, "The model's run failed: {detail}.{exit_code}")
    return template.format(detail=detail.rstrip("."), exit_code=exit_code)


def container_predictions(
    *, submission: Submission, work_dir: Path, run_id: str, keys: pd.DataFrame | None = None
) -> ContainerOutcome:
    """Run the submission's image through the streaming gateway on the whole test split of
    its task (or, for a suite whose public test files end at its one prediction time, on
    those files), in every scenario of its suite, and combine the outputs into one
    prediction file with the scenario column, keeping the units in ``keys`` (the units the
    task is scored on; the model is asked for every unit and cannot tell which count).
    Never raises for anything the image does."""
    work_dir.mkdir(parents=True, exist_ok=True)
    archive = _local_archive(submission, work_dir)
    bench = benchmark_open(benchmark=submission.task.benchmark)
    # A suite whose public test files end at its one prediction time is run on those files;
    # any other through the streaming gateway.
    run = container_executor().run_submission(
        archive,
        benchmark=bench,
        task=submission.task.slug,
        work_dir=work_dir,
        scenarios=container_scenarios(bench),
        limits=container_limits(gpus=1 if submission.needs_gpu else 0),
        run_id=run_id,
        mode="batch" if cut_at_prediction_time(bench) else "stream",
    )
    logs = {s: r.log_tail for s, r in run.results.items() if r.log_tail}
    outcome = ContainerOutcome(run_id=run_id, summary=run.summary(), logs=logs)
    if run.status == RunStatus.ENGINE_ERROR:
        outcome.engine_error = True
        outcome.failure_code = "container_engine_error"
        outcome.failure_message = run.message
        return outcome
    if not run.ok:
        outcome.failure_code = f"container_{run.status}"
        outcome.failure_message = _failure_message(run.status, run)
        return outcome
    dest = work_dir / "predictions.csv"
    try:
        combine_predictions(run.outputs, dest)
        if keys is not None:
            keep_units(dest, keys)
    except ValueError as exc:
        outcome.failure_code = f"container_{RunStatus.WRONG_OUTPUT}"
        outcome.failure_message = FAILURE_MESSAGES[RunStatus.WRONG_OUTPUT].format(
            detail=MSG_COMBINE.format(detail=exc)
        )
        return outcome
    container_predictions_keep(path=dest, run_id=run_id)
    outcome.predictions = dest
    return outcome


def container_predictions_name(run_id: str) -> str:
    """Where a run's combined predictions are kept (gzip CSV) for later re-scores."""
    return f"{PREDICTIONS_DIR}/{run_id}.csv.gz"


def container_predictions_keep(*, path: Path, run_id: str) -> str | None:
    """Keep a run's combined predictions in the file store, so that a re-score (a scorer
    upgrade) scores them again instead of running the image again. A store that fails is
    logged: the run goes on, and a later re-score skips the entry, saying why."""
    name = container_predictions_name(run_id)
    packed = path.with_name(path.name + ".gz")
    try:
        with path.open("rb") as src, gzip.open(packed, "wb", compresslevel=6) as out:
            shutil.copyfileobj(src, out, COPY_CHUNK)
        if default_storage.exists(name):
            default_storage.delete(name)
        with packed.open("rb") as fh:
            return default_storage.save(name, File(fh))
    except OSError:
        log.exception("container run %s: could not keep its predictions", run_id)
        return None
    finally:
        packed.unlink(missing_ok=True)


def container_work_remove(work_dir: Path) -> list[str]:
    """Remove a run's working directory (inputs, image copy, predictions); what could not
    be removed is logged and returned."""
    problems = remove_tree(work_dir)
    if problems:
        log.error(
            "container run %s: %d path(s) could not be removed: %s",
            work_dir.name,
            len(problems),
            "; ".join(problems[:10]),
        )
    return problems


def container_runs_reap(*, run_ids: Collection[str] = (), sweep: bool = True) -> dict[str, int]:
    """Remove what dead workers left on the engine: the containers, volumes and image tags
    of the given runs (runs the reaper took back), any run's container past its deadline
    (the wall time plus a grace: within a reaper interval of it), and with ``sweep`` the
    leftovers of any run older than ``CONTAINER_LEASE``. An engine that cannot be reached
    (e.g. the reaper runs on a host without one) is logged, not raised."""
    removed = {"containers": 0, "images": 0, "overdue": 0}
    try:
        report = container_executor().reap(
            run_ids=list(run_ids), max_age=settings.CONTAINER_LEASE if sweep else None
        )
    except (EngineError, OSError) as exc:
        log.warning("container reaper: the engine cannot be reached: %s", exc)
        return removed
    removed["containers"] += len(report.containers)
    removed["images"] += len(report.images)
    removed["overdue"] += len(report.overdue)
    return removed
