"""Re-scoring: score entries again from their stored predictions, many at a time.

A scorer upgrade re-scores every entry. It never runs a container again: a prediction
file's entry is scored from its uploaded file, a container entry from the predictions its
last successful run on the same benchmark kept (``services.containers``,
``container_predictions_keep``). A container entry scored before its predictions were kept
is skipped, with the reason; one that never got a result (it failed on the platform's side)
has nothing to re-score, and its run is tried again instead.

A re-score is a :class:`~leaderboard.board.models.RescoreRun`: one new run (``Evaluation``,
trigger ``rescore``) per entry, pinned as every run is (scorer version, benchmark hash,
seed, replicate count: :func:`~leaderboard.board.services.evaluations.evaluation_finish`).
It fans out as one Celery job per entry (``board.rescore_entry``), each scoring every
scenario of its entry from one file: the scenarios' paired differences need them together,
the worker process caches the task's truth, so the job's fixed cost (a message, a claim and a
commit: a few milliseconds) is small against scoring (0.1-0.7 s per scenario), and one
job per entry keeps workers evenly busy to the end, shows progress per entry and loses at
most one entry's work when a worker dies (the reaper puts it back). The jobs go through the
per-task fair queue (``services.fair_queue``) with a budget of their own, so new entries
are not held back by a re-score of every entry.

When the last run has finished, the run's summary lists the entries whose rank changed on
each task's board: entry, old rank (the board before the re-score), new rank.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from leaderboard.board.board_cache import board_ranks
from leaderboard.board.errors import BenchmarkInvalid
from leaderboard.board.models import AuditLog, Evaluation, RescoreRun, Submission, Task
from leaderboard.board.selectors.benchmarks import task_truth
from leaderboard.board.selectors.leaderboard import board_state, build_ranked
from leaderboard.board.selectors.submissions import current_scorer_version
from leaderboard.board.services.audit import audit_record
from leaderboard.board.services.evaluations import (
    evaluation_claim,
    evaluation_create,
    evaluation_fail,
    evaluation_finish,
)
from leaderboard.board.services.stored_predictions import has_stored, open_stored

log = logging.getLogger(__name__)

S = Submission.Status
E = Evaluation.Status

SKIP_NOT_STORED = "its file is not stored yet"
SKIP_IN_FLIGHT = "a run of it is queued or running"
SKIP_NO_PREDICTIONS = (
    "its predictions on this benchmark were not kept (scored before they were), and a "
    "re-score never runs a container again: the owner may submit the image again"
)
RESCORE_FAILED = (
    "Re-scoring from the stored predictions could not finish because of a problem on the "
    "platform's side ({what}; reference E{evaluation_id}). The entry keeps its earlier result."
)


@dataclass(frozen=True)
class RescoreResult:
    queued: list[int]
    skipped: list[int]
    rescore_run: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": len(self.queued),
            "skipped": len(self.skipped),
            "evaluations": self.queued,
            "rescore_run": self.rescore_run,
        }


# Starting a re-score ------------------------------------------------------------------------
def _rescorable_bulk() -> Any:
    """Entries a bulk re-score covers: scored ones, and those that failed on our side."""
    return Submission.objects.filter(
        Q(status__in=[S.SCORED, S.PUBLISHED])
        | Q(status=S.FAILED, failure_kind=Submission.FailureKind.SYSTEM)
    )


def _ranks(task: Task, *, before: bool) -> dict[str, int]:
    """:func:`_board_ranks`; a board that cannot be ranked (say, runs of different
    replicate counts) is logged and counts as having no ranks."""
    try:
        return _board_ranks(task, before=before)
    except Exception:
        log.exception(
            "ranks of the board of task %s (%s)", task.pk, "before" if before else "after"
        )
        return {}


def _board_ranks(task: Task, *, before: bool) -> dict[str, int]:
    """Ranks on a task's board, by entry public id: now (``before=False``: the board as it
    stands, pinned to the current scorer version), or as it stood before a re-score: each
    published entry with its latest successful run on the benchmark, whatever scorer made
    it (after an upgrade, the board the old scorer showed)."""
    if not before:
        ranks = board_ranks(task=task)
        ids = dict(Submission.objects.filter(pk__in=ranks).values_list("pk", "public_id"))
        return {ids[pk]: rank for pk, rank in ranks.items() if pk in ids}
    state = board_state(task=task)
    latest = Evaluation.objects.filter(
        submission=OuterRef("pk"),
        status=E.SUCCEEDED,
        benchmark_hash=task.benchmark.manifest_hash,
        replicates=settings.SCORING_REPLICATES,
    ).order_by("-created_at", "-id")
    runs = dict(
        Submission.objects.filter(pk__in=[e["pk"] for e in state.entries])
        .annotate(run=Subquery(latest.values("id")[:1]))
        .values_list("pk", "run")
    )
    entries = [{**e, "current_evaluation_id": runs.get(e["pk"])} for e in state.entries]
    ranked = build_ranked(replace(state, entries=entries))
    public = {e["pk"]: e["public_id"] for e in state.entries}
    return {
        public[r.submission_id]: r.rank
        for r in ranked["rows"] + ranked["decision_rows"]
        if r.rank is not None
    }


def submissions_rescore(
    *, actor: Any, submissions: Iterable[Submission], scope: str, note: str = ""
) -> RescoreResult:
    """Start a re-score of the given entries: a :class:`RescoreRun` holding one new run per
    entry (skipping those with a run in flight, not yet stored, or a container entry whose
    predictions were not kept), with the ranks of their boards before. Earlier runs stay as
    they were. Each run is sent once the transaction commits, through the fair queue."""
    submissions = list(submissions)
    queued: list[int] = []
    skipped: list[int] = []
    reasons: list[dict[str, str]] = []
    with transaction.atomic():
        run = RescoreRun.objects.create(
            scope=scope[:200],
            note=note[:300],
            requested_by=actor if getattr(actor, "pk", None) else None,
            scorer_version=current_scorer_version(),
        )
        tasks = {s.task_id: s.task for s in submissions}
        run.ranks_before = {
            str(pk): _ranks(task, before=True) for pk, task in sorted(tasks.items())
        }
        for submission in submissions:
            reason = ""
            if submission.status == S.SUBMITTED:
                reason = SKIP_NOT_STORED
            elif (
                submission.is_container
                and not has_stored(submission)
                and submission.evaluations.filter(status=E.SUCCEEDED).exists()
            ):
                reason = SKIP_NO_PREDICTIONS
            evaluation = None
            if not reason:
                evaluation = evaluation_create(
                    submission=submission,
                    trigger=Evaluation.Trigger.RESCORE,
                    triggered_by=actor,
                    note=note,
                )
                reason = "" if evaluation is not None else SKIP_IN_FLIGHT
            if evaluation is None:
                skipped.append(submission.pk)
                reasons.append({"entry": submission.public_id, "reason": reason})
                continue
            queued.append(evaluation.pk)
            audit_record(
                actor=actor,
                action=AuditLog.Action.RESCORE,
                submission=submission,
                evaluation=evaluation,
                scope=scope,
                rescore_run=run.pk,
            )
        run.evaluations.add(*queued)
        run.total = len(queued)
        run.skipped = reasons
        if not queued:
            run.status = RescoreRun.Status.FINISHED
            run.finished_at = timezone.now()
            run.rank_changes = []
        run.save()
    return RescoreResult(queued=queued, skipped=skipped, rescore_run=run.pk)


def submission_rescore(*, actor: Any, submission: Submission, note: str = "") -> RescoreResult:
    return submissions_rescore(
        actor=actor, submissions=[submission], scope=f"submission {submission.pk}", note=note
    )


def task_rescore(*, actor: Any, task: Task, note: str = "") -> RescoreResult:
    subs = (
        _rescorable_bulk()
        .filter(task=task)
        .select_related("task__benchmark", "track")
        .order_by("pk")
    )
    return submissions_rescore(
        actor=actor, submissions=list(subs), scope=f"task {task.slug}", note=note
    )


def all_rescore(*, actor: Any, note: str = "") -> RescoreResult:
    subs = (
        _rescorable_bulk()
        .filter(task__benchmark__is_current=True)
        .select_related("task__benchmark", "track")
        .order_by("pk")
    )
    return submissions_rescore(actor=actor, submissions=list(subs), scope="all", note=note)


# One entry's job ----------------------------------------------------------------------------
def rescore_entry(*, evaluation_id: int, worker: str = "") -> Evaluation | None:
    """Claim a queued re-score run and score its entry's stored predictions; the result is
    recorded as every run's is (pinned: scorer version, benchmark hash, seed, replicates).
    None when there was nothing to do (a duplicate message)."""
    from scoring.errors import ScoringInputError
    from scoring.report import score_predictions

    evaluation = evaluation_claim(evaluation_id=evaluation_id, worker=worker)
    if evaluation is None:
        return None
    token = evaluation.run_token
    if token is None:  # evaluation_claim always sets one
        raise RuntimeError(f"re-score {evaluation_id} was claimed without a run token")
    submission = Submission.objects.select_related("task__benchmark", "track").get(
        pk=evaluation.submission_id
    )
    t0 = time.perf_counter()
    source = None

    def fail(kind: str, code: str, message: str) -> Evaluation | None:
        return evaluation_fail(
            evaluation_id=evaluation_id,
            run_token=token,
            kind=kind,
            code=code,
            message=message,
            duration=time.perf_counter() - t0,
        )

    def system(code: str, what: str) -> Evaluation | None:
        message = RESCORE_FAILED.format(what=what, evaluation_id=evaluation_id)
        return fail(Submission.FailureKind.SYSTEM, code, message)

    try:
        truth = task_truth(task=submission.task)
        source, max_bytes = open_stored(submission)
        report = score_predictions(
            source,
            truth=truth,
            replicates=settings.SCORING_REPLICATES,
            threshold=submission.threshold,
            max_bytes=max_bytes,
        )
    except ScoringInputError as exc:
        return fail(Submission.FailureKind.INPUT, exc.code, exc.message)
    except FileNotFoundError:
        return system("predictions_missing", "the stored predictions could not be found")
    except SoftTimeLimitExceeded:
        return system(
            "time_limit", f"scoring took longer than {settings.SCORING_SOFT_TIME_LIMIT} s"
        )
    except BenchmarkInvalid as exc:
        log.error("re-score %s: benchmark unusable: %s", evaluation_id, exc.message)
        return system("benchmark_unavailable", "the test data could not be read")
    except Exception:
        log.exception("re-score %s failed", evaluation_id)
        return system("internal_error", "an unexpected error in the scorer")
    finally:
        if source is not None and hasattr(source, "close"):
            source.close()
    return evaluation_finish(
        evaluation_id=evaluation_id,
        run_token=token,
        report=report,
        duration=time.perf_counter() - t0,
    )


# Progress and summary -----------------------------------------------------------------------
def rescore_progress(*, run: RescoreRun) -> dict[str, int]:
    """Counts of a re-score's runs: total, done (succeeded), failed, running, waiting."""
    counts = dict(run.evaluations.values_list("status").annotate(n=Count("id")))
    return {
        "total": run.total,
        "done": counts.get(E.SUCCEEDED, 0),
        "failed": counts.get(E.FAILED, 0),
        "running": counts.get(E.RUNNING, 0),
        "waiting": counts.get(E.QUEUED, 0),
    }


def _rank_changes(run: RescoreRun) -> list[dict[str, Any]]:
    rescored = set(run.evaluations.values_list("submission__public_id", flat=True))
    changes: list[dict[str, Any]] = []
    for task_pk, before in sorted(run.ranks_before.items(), key=lambda kv: int(kv[0])):
        task = Task.objects.select_related("benchmark").filter(pk=int(task_pk)).first()
        if task is None:
            continue
        after = _ranks(task, before=False)
        moved = sorted(
            (e for e in set(before) | set(after) if before.get(e) != after.get(e)),
            key=lambda e: (after.get(e) is None, after.get(e) or 0, before.get(e) or 0, e),
        )
        methods = dict(
            Submission.objects.filter(public_id__in=moved).values_list("public_id", "method_name")
        )
        changes += [
            {
                "task": task.slug,
                "entry": e,
                "method": methods.get(e, ""),
                "old_rank": before.get(e),
                "new_rank": after.get(e),
                "rescored": e in rescored,
            }
            for e in moved
        ]
    return changes


def rescore_runs_settle(*, evaluation_id: int | None = None) -> list[int]:
    """Finish the re-scores (those holding ``evaluation_id``, or every running one) whose
    runs have all finished: final counts and the entries whose rank changed. Returns the
    re-scores finished."""
    runs = RescoreRun.objects.filter(status=RescoreRun.Status.RUNNING)
    if evaluation_id is not None:
        runs = runs.filter(evaluations__pk=evaluation_id)
    finished: list[int] = []
    for pk in runs.values_list("pk", flat=True).distinct():
        if Evaluation.objects.filter(rescore_runs__pk=pk, status__in=Evaluation.IN_FLIGHT).exists():
            continue
        with transaction.atomic():
            run = (
                RescoreRun.objects.select_for_update()
                .filter(pk=pk, status=RescoreRun.Status.RUNNING)
                .first()
            )
            if run is None:
                continue
            progress = rescore_progress(run=run)
            run.done, run.failed = progress["done"], progress["failed"]
            run.rank_changes = _rank_changes(run)
            run.status = RescoreRun.Status.FINISHED
            run.finished_at = timezone.now()
            run.save()
        finished.append(pk)
        log.info("re-score %s finished: %d done, %d failed", pk, run.done, run.failed)
    return finished


def rescore_run_summary(*, run: RescoreRun) -> dict[str, Any]:
    """What the admin, the organizers' page and the staff API show of a re-score."""
    return {
        "id": run.pk,
        "scope": run.scope,
        "note": run.note,
        "status": run.status,
        "scorer_version": run.scorer_version,
        "requested_by": run.requested_by.get_username() if run.requested_by else None,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        **rescore_progress(run=run),
        "skipped": run.skipped,
        "rank_changes": run.rank_changes,
    }
