"""Scoring runs: queueing, claiming, running, finishing and reaping (re-scores: ``rescoring``).

A run is an :class:`Evaluation` row. Its life: ``queued`` (created, message sent) ->
``running`` (claimed by a worker, with a fresh ``run_token``) -> ``succeeded`` or ``failed``.
Every step that changes it locks the row and checks its state, so a message delivered twice,
a retried task or a worker that wakes up after the reaper gave its run away never writes a
second result. The partial unique constraint ``one_run_in_flight`` keeps a submission from
having two runs queued or running at once.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from leaderboard.board.errors import BenchmarkInvalid
from leaderboard.board.models import AuditLog, Evaluation, Submission, Track
from leaderboard.board.renderings import entry_report_html
from leaderboard.board.selectors.benchmarks import task_truth
from leaderboard.board.services.audit import audit_record
from leaderboard.board.services.boards import board_refresh_later
from leaderboard.board.services.containers import (
    WRONG_PREDICTIONS,
    ContainerOutcome,
    container_limits,
    container_predictions,
    container_runs_reap,
    container_work_dir,
    container_work_remove,
)
from leaderboard.board.services.notifications import (
    notify_after_scoring,
    notify_failed,
    rank_before_rescore,
)
from leaderboard.containers import new_run_id
from leaderboard.containers.inputs import container_scenarios
from scoring.report_types import ScoreReport

log = logging.getLogger(__name__)

# A run created less than this long ago may still have its on-commit send ahead of it.
SEND_GRACE = timedelta(seconds=30)
# A run whose container engine failed is sent again after this many seconds.
ENGINE_RETRY_DELAY = 30

S = Submission.Status
E = Evaluation.Status

SYSTEM_FAILURE = (
    "Scoring could not finish because of a problem on the platform's side ({what}; reference "
    "E{evaluation_id}). This does not count against your limits: submit the same file again, "
    "or ask the organizers to re-score entry {entry}."
)


# Queueing -----------------------------------------------------------------------------------
def evaluation_create(
    *, submission: Submission, trigger: str, triggered_by: Any = None, note: str = ""
) -> Evaluation | None:
    """Queue a scoring run of a submission; None when one is already queued or running.

    The message is sent after the transaction commits.
    """
    try:
        with transaction.atomic():
            evaluation = Evaluation.objects.create(
                submission=submission,
                trigger=trigger,
                triggered_by=triggered_by if getattr(triggered_by, "pk", None) else None,
                benchmark_hash=submission.task.benchmark.manifest_hash,
                threshold=submission.threshold,
                note=note[:300],
            )
    except IntegrityError:
        return None
    evaluation_id = evaluation.pk
    transaction.on_commit(lambda: evaluation_enqueue(evaluation_id=evaluation_id))
    return evaluation


def _is_container_run(evaluation_id: int) -> bool:
    return Evaluation.objects.filter(
        pk=evaluation_id, submission__track__slug=Track.CONTAINER
    ).exists()


def _time_limits(evaluation_id: int) -> dict[str, int]:
    """A container run holds its worker for every scenario's run: longer Celery limits."""
    if _is_container_run(evaluation_id):
        return {
            "soft_time_limit": settings.CONTAINER_SOFT_TIME_LIMIT,
            "time_limit": settings.CONTAINER_TIME_LIMIT,
        }
    return {}


def evaluation_enqueue(*, evaluation_id: int, countdown: float | None = None) -> bool:
    """Send the scoring message of a queued run. A broker that cannot be reached leaves the
    run queued: the reaper sends it again later. Returns whether the message went out."""
    from leaderboard.board.services.fair_queue import fair_queue_admit
    from leaderboard.board.services.stored_predictions import rescore_from_stored
    from leaderboard.board.tasks import evaluation_run_task, rescore_entry_task

    now = timezone.now()
    # Back-pressure: a run waits in its task's queue while the task has its share in flight.
    if not fair_queue_admit(evaluation_id=evaluation_id, now=now):
        return False
    options: dict[str, Any] = {"retry": True, "countdown": countdown}
    try:
        if rescore_from_stored(evaluation_id=evaluation_id):  # never runs a container again
            rescore_entry_task.apply_async(args=(evaluation_id,), **options)
        else:
            options.update(_time_limits(evaluation_id))
            evaluation_run_task.apply_async(args=(evaluation_id,), **options)
    except Exception:  # the broker is down: nothing is lost, the reaper resends
        log.exception("could not send scoring run %s to the broker", evaluation_id)
        Evaluation.objects.filter(pk=evaluation_id, status=E.QUEUED).update(enqueued_at=None)
        return False
    Submission.objects.filter(evaluations__pk=evaluation_id, status=S.SUBMITTED).update(
        status=S.QUEUED, queued_at=now
    )
    return True


# Running ------------------------------------------------------------------------------------
def evaluation_claim(*, evaluation_id: int, worker: str = "") -> Evaluation | None:
    """Take a queued run for this worker; None if it is gone, finished or already taken."""
    now = timezone.now()
    with transaction.atomic():
        evaluation = (
            Evaluation.objects.select_for_update().filter(pk=evaluation_id, status=E.QUEUED).first()
        )
        if evaluation is None:
            return None
        evaluation.status = E.RUNNING
        evaluation.run_token = uuid.uuid4()
        evaluation.attempts += 1
        evaluation.started_at = now
        evaluation.worker = worker[:200]
        evaluation.save(update_fields=["status", "run_token", "attempts", "started_at", "worker"])
        Submission.objects.filter(
            pk=evaluation.submission_id, status__in=[S.SUBMITTED, S.QUEUED]
        ).update(status=S.RUNNING, started_at=now, queued_at=evaluation.enqueued_at or now)
    return (
        Evaluation.objects.select_related("submission__task__benchmark")
        .defer("report")
        .get(pk=evaluation_id)
    )


def _open_submission_file(submission: Submission):
    name = submission.file.name
    if not name:
        raise ValueError(f"entry {submission.pk} has no stored file to score")
    try:
        return default_storage.path(name)
    except NotImplementedError:
        return default_storage.open(name, "rb")


@dataclass
class _Run:
    """A claimed run on its way through :func:`evaluation_run`'s steps."""

    evaluation_id: int
    token: uuid.UUID
    submission: Submission
    started: float = field(default_factory=time.perf_counter)
    source: Any = None  # the prediction file (a path or an open file)
    container: ContainerOutcome | None = None
    work_dir: Any = None
    max_bytes: int = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


class _Stopped(Exception):
    """A step ended the run early (a retry or a failure already recorded): ``result``."""

    def __init__(self, result: Evaluation | None) -> None:
        super().__init__()
        self.result = result


def evaluation_run(*, evaluation_id: int, worker: str = "") -> Evaluation | None:
    """Claim a queued run, score the submission's file and record the outcome.

    Returns the finished run, or None when there was nothing to do (a duplicate message).
    """
    evaluation = evaluation_claim(evaluation_id=evaluation_id, worker=worker)
    if evaluation is None:
        log.info("scoring run %s: nothing to do (finished, taken or gone)", evaluation_id)
        return None
    if evaluation.run_token is None:  # evaluation_claim always sets one
        raise RuntimeError(f"scoring run {evaluation_id} was claimed without a run token")
    run = _Run(evaluation_id, evaluation.run_token, evaluation.submission,
               max_bytes=settings.MAX_UPLOAD_BYTES)  # fmt: skip
    try:
        truth = task_truth(task=run.submission.task)
        _run_load_inputs(run, truth)
        report = _run_score(run, truth)
    except _Stopped as stopped:
        return stopped.result
    except Exception as exc:
        return _run_failed(run, exc)
    finally:
        _run_release(run)
    return evaluation_finish(evaluation_id=evaluation_id, run_token=run.token, report=report,
                             duration=run.elapsed(), container=run.container)  # fmt: skip


def _run_load_inputs(run: _Run, truth: Any) -> None:
    """The prediction file: the upload, or what the entry's container wrote."""
    if run.submission.is_container:
        _run_container(run, truth)
    else:
        run.source = _open_submission_file(run.submission)


def _run_container(run: _Run, truth: Any) -> None:
    """Run the entry's image once per scenario; an engine error puts the run back in the
    queue, a model that fails fails the run (both raise :class:`_Stopped`)."""
    run_id = new_run_id()
    Evaluation.objects.filter(pk=run.evaluation_id, run_token=run.token).update(
        container_run_id=run_id
    )
    run.work_dir = container_work_dir(evaluation_id=run.evaluation_id, run_id=run_id)
    run.container = container = container_predictions(
        submission=run.submission, work_dir=run.work_dir, run_id=run_id, keys=truth.keys
    )
    if container.engine_error:
        raise _Stopped(evaluation_retry(evaluation_id=run.evaluation_id, run_token=run.token,
                                        container=container))  # fmt: skip
    if not container.ok:
        raise _Stopped(evaluation_fail(
            evaluation_id=run.evaluation_id, run_token=run.token,
            kind=Submission.FailureKind.INPUT, code=container.failure_code,
            message=container.failure_message, duration=run.elapsed(), container=container,
        ))  # fmt: skip
    run.source = container.predictions
    scenarios = container_scenarios(run.submission.task.benchmark.suite_declaration)
    run.max_bytes = container_limits().output_bytes * len(scenarios)


def _run_score(run: _Run, truth: Any) -> ScoreReport:
    """Validate and score the prediction file (at the entry's threshold, or the task's)."""
    from scoring.report import score_predictions

    return score_predictions(
        run.source,
        truth=truth,
        replicates=settings.SCORING_REPLICATES,
        threshold=run.submission.threshold,  # None: the task's declared threshold
        max_bytes=run.max_bytes,
    )


def _run_failed(run: _Run, exc: Exception) -> Evaluation | None:
    """Record why a run could not finish: the entry's file (the participant can act on
    it), or the platform (time limit, unreadable benchmark, anything unexpected)."""
    from scoring.errors import ScoringInputError

    if isinstance(exc, ScoringInputError):
        container = run.container
        return evaluation_fail(
            evaluation_id=run.evaluation_id, run_token=run.token,
            kind=Submission.FailureKind.INPUT,
            code=f"container_wrong_output_{exc.code}"[:64] if container else exc.code,
            message=WRONG_PREDICTIONS.format(detail=exc.message) if container else exc.message,
            duration=run.elapsed(), container=container,
        )  # fmt: skip
    if isinstance(exc, SoftTimeLimitExceeded):
        return _run_timed_out(run)
    if isinstance(exc, BenchmarkInvalid):
        log.error("scoring run %s: benchmark unusable: %s", run.evaluation_id, exc.message)
        code, what = "benchmark_unavailable", "the test data could not be read"
    else:
        log.exception("scoring run %s failed", run.evaluation_id, exc_info=exc)
        code, what = "internal_error", "an unexpected error in the scorer"
    return _system_failure(evaluation_id=run.evaluation_id, run_token=run.token,
                           submission_id=run.submission.pk, code=code, what=what,
                           duration=run.elapsed())  # fmt: skip


def _run_timed_out(run: _Run) -> Evaluation | None:
    """The Celery soft time limit: stop the run's containers and fail it as ours."""
    if run.submission.is_container:
        container_runs_reap(
            run_ids=[r for r in [_container_run_id(run.evaluation_id)] if r], sweep=False
        )
    limit = (
        settings.CONTAINER_SOFT_TIME_LIMIT
        if run.submission.is_container
        else settings.SCORING_SOFT_TIME_LIMIT
    )
    return _system_failure(evaluation_id=run.evaluation_id, run_token=run.token,
                           submission_id=run.submission.pk, code="time_limit",
                           what=f"scoring took longer than its {limit} s limit",
                           duration=run.elapsed())  # fmt: skip


def _run_release(run: _Run) -> None:
    """Close the prediction file and remove the container's work directory."""
    if run.source is not None and hasattr(run.source, "close"):
        run.source.close()
    if run.work_dir is not None:
        container_work_remove(run.work_dir)


def _system_failure(
    *,
    evaluation_id: int,
    run_token: uuid.UUID | None,
    submission_id: int,
    code: str,
    what: str,
    duration: float | None = None,
    container: ContainerOutcome | None = None,
) -> Evaluation | None:
    """Fail a run for a reason on the platform's side, saying what went wrong."""
    return evaluation_fail(
        evaluation_id=evaluation_id,
        run_token=run_token,
        kind=Submission.FailureKind.SYSTEM,
        code=code,
        message=SYSTEM_FAILURE.format(
            what=what,
            evaluation_id=evaluation_id,
            entry=Submission.objects.filter(pk=submission_id)
            .values_list("public_id", flat=True)
            .first(),
        ),
        duration=duration,
        container=container,
    )


def _container_run_id(evaluation_id: int) -> str:
    return (
        Evaluation.objects.filter(pk=evaluation_id)
        .values_list("container_run_id", flat=True)
        .first()
        or ""
    )


def _record_container(evaluation: Evaluation, container: ContainerOutcome | None) -> None:
    if container is None:
        return
    evaluation.container_run_id = container.run_id
    evaluation.container_run = container.summary
    evaluation.container_logs = container.logs or None


def evaluation_retry(
    *, evaluation_id: int, run_token: uuid.UUID, container: ContainerOutcome
) -> Evaluation | None:
    """The engine failed (not the model): put the run back in the queue and send it again a
    little later, or fail it as a platform problem after ``SCORING_MAX_ATTEMPTS``."""
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update().filter(pk=evaluation_id).first()
        if (
            evaluation is None
            or evaluation.status != E.RUNNING
            or evaluation.run_token != run_token
        ):
            return None
        if evaluation.attempts >= settings.SCORING_MAX_ATTEMPTS:
            retry = False
        else:
            retry = True
            evaluation.status = E.QUEUED
            evaluation.run_token = None
            evaluation.enqueued_at = None
            _record_container(evaluation, container)
            evaluation.save()
            Submission.objects.filter(pk=evaluation.submission_id, status=S.RUNNING).update(
                status=S.QUEUED
            )
    if not retry:
        log.error("container run %s: engine error, giving up: %s", evaluation_id,
                  container.failure_message)  # fmt: skip
        return _system_failure(
            evaluation_id=evaluation_id,
            run_token=run_token,
            submission_id=evaluation.submission_id,
            code="container_engine_error",
            what="the container engine failed",
            container=container,
        )
    log.warning("container run %s: engine error, retried: %s", evaluation_id,
                container.failure_message)  # fmt: skip
    evaluation_enqueue(evaluation_id=evaluation_id, countdown=ENGINE_RETRY_DELAY)
    return Evaluation.objects.get(pk=evaluation_id)


def _main_replicates(report: ScoreReport) -> list[float | None]:
    return list(report["scenarios"][report["main_scenario"]]["replicates"])


def evaluation_finish(
    *,
    evaluation_id: int,
    run_token: uuid.UUID,
    report: ScoreReport,
    duration: float,
    container: ContainerOutcome | None = None,
) -> Evaluation | None:
    """Record a successful run, unless the run is no longer this worker's."""
    now = timezone.now()
    summary = report["summary"]
    # A re-score may move the entry on its board: its owner is told (after commit).
    rank_before = rank_before_rescore(evaluation_id=evaluation_id)
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update().filter(pk=evaluation_id).first()
        if (
            evaluation is None
            or evaluation.status != E.RUNNING
            or evaluation.run_token != run_token
        ):
            log.warning("scoring run %s: result discarded, the run was taken over", evaluation_id)
            return None
        evaluation.status = E.SUCCEEDED
        evaluation.report = report
        evaluation.summary = summary
        evaluation.scorer_version = report["scorer_version"]
        evaluation.benchmark_hash = report["benchmark"]["hash"] or evaluation.benchmark_hash
        evaluation.seed = report["seed"]
        evaluation.replicates = report["replicates"]
        evaluation.threshold = report["threshold"]
        evaluation.form = report["predictions"]["form"]
        evaluation.primary_metric = summary["primary_metric"]
        evaluation.primary_value = summary["value"]
        evaluation.primary_ci_low, evaluation.primary_ci_high = summary["ci"]
        evaluation.replicate_values = _main_replicates(report)
        evaluation.finished_at = now
        evaluation.duration_seconds = duration
        _record_container(evaluation, container)
        evaluation.save()
        submission = Submission.objects.select_for_update().get(pk=evaluation.submission_id)
        first_result = submission.status not in (S.SCORED, S.PUBLISHED)
        if first_result:
            publish = (
                submission.visibility == Submission.Visibility.PUBLIC and settings.AUTO_PUBLISH
            )
            submission.status = S.PUBLISHED if publish else S.SCORED
            submission.scored_at = now
            submission.published_at = now if publish else None
            submission.failure_kind = Submission.FailureKind.NONE
            submission.failure_code = ""
            submission.failure_reason = ""
            submission.failed_at = None
            submission.save()
        if submission.status == S.PUBLISHED:
            board_refresh_later(task_id=submission.task_id)
        notify_after_scoring(
            evaluation=evaluation,
            submission=submission,
            first_result=first_result,
            rank_before=rank_before,
        )
    if settings.BOARD_CACHE_SHARED:
        transaction.on_commit(lambda: _render_results(evaluation))
    return evaluation


def _render_results(evaluation: Evaluation) -> None:
    """Render the run's results part of its entry page into the shared cache, as the board
    is rendered ahead of its readers: the first visit of a newly scored entry then costs a
    cache read. A failure here only leaves the rendering to that first visit."""
    try:
        entry_report_html(evaluation)
    except Exception:
        log.exception("run %s: could not render its results for the entry page", evaluation.pk)


def evaluation_fail(
    *,
    evaluation_id: int,
    run_token: uuid.UUID | None,
    kind: str,
    code: str,
    message: str,
    duration: float | None = None,
    container: ContainerOutcome | None = None,
) -> Evaluation | None:
    """Record a failed run. The submission fails with it when it had no result yet; a
    failed re-score leaves a scored entry as it was (the run stays in its history)."""
    now = timezone.now()
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update().filter(pk=evaluation_id).first()
        if evaluation is None or evaluation.is_finished:
            return None
        if run_token is not None and evaluation.run_token != run_token:
            log.warning("scoring run %s: failure discarded, the run was taken over", evaluation_id)
            return None
        evaluation.status = E.FAILED
        evaluation.error_code = code[:64]
        evaluation.error_message = message
        evaluation.finished_at = now
        evaluation.duration_seconds = duration
        _record_container(evaluation, container)
        if evaluation.run_token is None:
            evaluation.run_token = uuid.uuid4()
        evaluation.save()
        submission = Submission.objects.select_for_update().get(pk=evaluation.submission_id)
        if submission.status in Submission.ACTIVE_STATUSES:
            submission.status = S.FAILED
            submission.failure_kind = kind
            submission.failure_code = code[:64]
            submission.failure_reason = message
            submission.failed_at = now
            submission.save()
            notify_failed(evaluation=evaluation, submission=submission)
    return evaluation


# Reaping ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReapResult:
    requeued: list[int]
    abandoned: list[int]
    resent: list[int]
    # Container runs of the requeued and abandoned runs: their containers may still be on
    # the engine (see services.containers.container_runs_reap).
    container_run_ids: list[str] = field(default_factory=list)


def _stalled(now: Any) -> Q:
    """A running run past its lease: ``SCORING_LEASE``, or ``CONTAINER_LEASE`` for an
    image's run."""
    container = Q(submission__track__slug=Track.CONTAINER)
    return Q(status=E.RUNNING) & (
        (~container & Q(started_at__lt=now - settings.SCORING_LEASE))
        | (container & Q(started_at__lt=now - settings.CONTAINER_LEASE))
    )


def evaluations_reap(*, now: Any = None) -> ReapResult:
    """Notice runs whose worker died and messages that were lost, and put them back.

    - a run still ``running`` past ``SCORING_LEASE`` (``CONTAINER_LEASE`` for an image's
      run) goes back to ``queued`` (and is sent again), or fails for good after
      ``SCORING_MAX_ATTEMPTS`` attempts;
    - a ``queued`` run never sent, or sent more than ``SCORING_RESEND_AFTER`` ago, is sent
      again (a duplicate message finds the run taken and does nothing).
    """
    now = now or timezone.now()
    requeued: list[int] = []
    abandoned: list[int] = []
    container_runs: list[str] = []
    stale = list(
        Evaluation.objects.filter(_stalled(now)).values_list("pk", flat=True).order_by("pk")
    )
    for evaluation_id in stale:
        with transaction.atomic():
            evaluation = (
                Evaluation.objects.select_for_update(of=("self",))
                .filter(_stalled(now), pk=evaluation_id)
                .first()
            )
            if evaluation is None:
                continue
            if evaluation.container_run_id:
                container_runs.append(evaluation.container_run_id)
            if evaluation.attempts >= settings.SCORING_MAX_ATTEMPTS:
                abandoned.append(evaluation_id)
                audit_record(
                    actor=None,
                    action=AuditLog.Action.EVALUATION_ABANDON,
                    submission=evaluation.submission,
                    evaluation=evaluation,
                    attempts=evaluation.attempts,
                    worker=evaluation.worker,
                )
                _system_failure(
                    evaluation_id=evaluation_id,
                    run_token=None,
                    submission_id=evaluation.submission_id,
                    code="worker_lost",
                    what=f"the scoring worker stopped {evaluation.attempts} times",
                )
                continue
            evaluation.status = E.QUEUED
            evaluation.run_token = None
            evaluation.enqueued_at = None
            evaluation.save(update_fields=["status", "run_token", "enqueued_at"])
            Submission.objects.filter(pk=evaluation.submission_id, status=S.RUNNING).update(
                status=S.QUEUED
            )
            audit_record(
                actor=None,
                action=AuditLog.Action.EVALUATION_REQUEUE,
                submission=evaluation.submission,
                evaluation=evaluation,
                attempts=evaluation.attempts,
                worker=evaluation.worker,
            )
            requeued.append(evaluation_id)
    resend = list(
        Evaluation.objects.filter(status=E.QUEUED)
        .filter(
            Q(enqueued_at__isnull=True, created_at__lt=now - SEND_GRACE)
            | Q(enqueued_at__lt=now - settings.SCORING_RESEND_AFTER)
        )
        .values_list("pk", flat=True)
    )
    resend = sorted(set(resend) | set(requeued))
    resent = [pk for pk in resend if evaluation_enqueue(evaluation_id=pk)]
    return ReapResult(
        requeued=requeued, abandoned=abandoned, resent=resent, container_run_ids=container_runs
    )
