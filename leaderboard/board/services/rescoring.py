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

Asked for in a request (the admin, the staff API), a re-score of more than
``RESCORE_INLINE_MAX`` entries does not make its runs there: a thousand runs, their audit
rows and their admissions to the fair queue take seconds. The request records the
:class:`RescoreRun` (scope, note, the ranks before, the entries it covers), ``starting``,
and answers; a job on the scoring queue (``board.rescore_fan_out``) makes the runs, and the
re-score runs from then on. A job that fails leaves the re-score ``failed``, with the
error; a job the broker did not take, or lost, is sent again by the reaper.

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
# A re-score of more entries than this, asked for in a request, makes its runs in a job.
RESCORE_INLINE_MAX = 20
FAN_OUT_FAILED = "its runs could not be made ({what}); no run was made: start it again"
FAN_OUT_NOT_SENT = (
    "the job that makes its runs could not be sent ({what}); the reaper sends it again"
)


@dataclass(frozen=True)
class RescoreResult:
    """What starting a re-score did: the runs queued and the entries skipped, or, for a
    re-score whose runs a job makes, none yet and the number of entries it covers
    (``preparing``)."""

    queued: list[int]
    skipped: list[int]
    rescore_run: int | None = None
    preparing: int = 0

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
    *,
    actor: Any,
    submissions: Iterable[Submission],
    scope: str,
    note: str = "",
    from_request: bool = False,
) -> RescoreResult:
    """Start a re-score of the given entries: a :class:`RescoreRun` holding one new run per
    entry (skipping those with a run in flight, not yet stored, or a container entry whose
    predictions were not kept), with the ranks of their boards before. Earlier runs stay as
    they were. Each run is sent once the transaction commits, through the fair queue.

    The runs are made here; asked for in an HTTP request (``from_request``: the admin, the
    staff API), those of more than ``RESCORE_INLINE_MAX`` entries are made by a job
    (``board.rescore_fan_out``), the re-score ``starting`` until it has, so that the
    request answers at once."""
    submissions = list(submissions)
    inline = not from_request or len(submissions) <= RESCORE_INLINE_MAX
    with transaction.atomic():
        run = RescoreRun.objects.create(
            scope=scope[:200],
            note=note[:300],
            requested_by=actor if getattr(actor, "pk", None) else None,
            scorer_version=current_scorer_version(),
            status=RescoreRun.Status.RUNNING if inline else RescoreRun.Status.STARTING,
        )
        tasks = {s.task_id: s.task for s in submissions}
        run.ranks_before = {
            str(pk): _ranks(task, before=True) for pk, task in sorted(tasks.items())
        }
        if not inline:
            run.entries = [s.pk for s in submissions]
            run.total = len(submissions)
            run.save()
            run_id = run.pk
            transaction.on_commit(lambda: _fan_out_send(rescore_run_id=run_id))
            return RescoreResult(queued=[], skipped=[], rescore_run=run.pk,
                                 preparing=len(submissions))  # fmt: skip
        queued, skipped = _fan_out(run, submissions, actor=actor)
    return RescoreResult(queued=queued, skipped=skipped, rescore_run=run.pk)


def _fan_out(
    run: RescoreRun, submissions: list[Submission], *, actor: Any
) -> tuple[list[int], list[int]]:
    """Make the re-score's runs (one per entry, or the reason it is skipped), in the
    caller's transaction, and set it running (finished when there is nothing to run).
    Returns the runs queued and the entries skipped."""
    queued: list[int] = []
    skipped: list[int] = []
    reasons: list[dict[str, str]] = []
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
                note=run.note,
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
            scope=run.scope,
            rescore_run=run.pk,
        )
    run.evaluations.add(*queued)
    run.total = len(queued)
    run.skipped = reasons
    run.entries = []
    run.error = ""
    run.status = RescoreRun.Status.RUNNING
    if not queued:
        run.status = RescoreRun.Status.FINISHED
        run.finished_at = timezone.now()
        run.rank_changes = []
    run.save()
    return queued, skipped


def _fan_out_send(*, rescore_run_id: int) -> bool:
    """Send the job that makes a starting re-score's runs. A broker that does not take it
    is noted on the re-score, and the reaper sends it again. Returns whether it went."""
    from leaderboard.board.tasks import rescore_fan_out_task

    try:
        rescore_fan_out_task.apply_async(args=(rescore_run_id,), retry=True)
    except Exception as exc:  # the broker is down
        log.exception("could not send the fan-out of re-score %s", rescore_run_id)
        RescoreRun.objects.filter(pk=rescore_run_id, status=RescoreRun.Status.STARTING).update(
            error=FAN_OUT_NOT_SENT.format(what=_what(exc))
        )
        return False
    RescoreRun.objects.filter(pk=rescore_run_id, status=RescoreRun.Status.STARTING).exclude(
        error=""
    ).update(error="")  # sent again, after a broker that did not take it
    return True


def _what(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def rescore_fan_out(*, rescore_run_id: int) -> RescoreRun | None:
    """The job of a starting re-score: make its runs (as :func:`submissions_rescore` does
    inline), all or none, and set it running. None when there was nothing to do (a
    duplicate message, or a re-score already started). A failure rolls every run back and
    leaves the re-score ``failed`` with the error; it never raises."""
    try:
        with transaction.atomic():
            run = (
                RescoreRun.objects.select_for_update(of=("self",))
                .select_related("requested_by")
                .filter(pk=rescore_run_id, status=RescoreRun.Status.STARTING)
                .first()
            )
            if run is None:
                return None
            wanted = [int(pk) for pk in run.entries]
            submissions = list(
                Submission.objects.filter(pk__in=wanted)
                .select_related("task__benchmark", "track")
                .order_by("pk")
            )
            _fan_out(run, submissions, actor=run.requested_by)
    except Exception as exc:
        log.exception("re-score %s: its runs could not be made", rescore_run_id)
        RescoreRun.objects.filter(pk=rescore_run_id, status=RescoreRun.Status.STARTING).update(
            status=RescoreRun.Status.FAILED,
            error=FAN_OUT_FAILED.format(what=_what(exc)),
            finished_at=timezone.now(),
        )
        return RescoreRun.objects.filter(pk=rescore_run_id).first()
    log.info("re-score %s: %d run(s) made, %d skipped", run.pk, run.total, len(run.skipped))
    return run


def rescore_fan_outs_resend(*, now: Any = None) -> list[int]:
    """The reaper's part: send again the job of each re-score still starting whose job the
    broker did not take, or sent more than ``SCORING_RESEND_AFTER`` ago (a lost message; a
    duplicate finds the re-score started and does nothing). Returns the re-scores."""
    now = now or timezone.now()
    late = list(
        RescoreRun.objects.filter(status=RescoreRun.Status.STARTING)
        .filter(~Q(error="") | Q(created_at__lt=now - settings.SCORING_RESEND_AFTER))
        .values_list("pk", flat=True)
    )
    return [pk for pk in late if _fan_out_send(rescore_run_id=pk)]


def submission_rescore(*, actor: Any, submission: Submission, note: str = "") -> RescoreResult:
    return submissions_rescore(
        actor=actor, submissions=[submission], scope=f"submission {submission.pk}", note=note
    )


def task_rescore(
    *, actor: Any, task: Task, note: str = "", from_request: bool = False
) -> RescoreResult:
    subs = (
        _rescorable_bulk()
        .filter(task=task)
        .select_related("task__benchmark", "track")
        .order_by("pk")
    )
    return submissions_rescore(
        actor=actor,
        submissions=list(subs),
        scope=f"task {task.slug}",
        note=note,
        from_request=from_request,
    )


def all_rescore(*, actor: Any, note: str = "", from_request: bool = False) -> RescoreResult:
    subs = (
        _rescorable_bulk()
        .filter(task__benchmark__is_current=True)
        .select_related("task__benchmark", "track")
        .order_by("pk")
    )
    return submissions_rescore(
        actor=actor, submissions=list(subs), scope="all", note=note, from_request=from_request
    )


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
    """Counts of a re-score's runs: total, done (succeeded), failed, running, waiting.
    While it is starting (or when it failed to start), none of its runs exists yet: total
    is the number of entries it covers, the others 0."""
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
    re-scores finished. Without ``evaluation_id`` (the reaper), also send again the job of
    a re-score still starting that is late (:func:`rescore_fan_outs_resend`)."""
    runs = RescoreRun.objects.filter(status=RescoreRun.Status.RUNNING)
    if evaluation_id is not None:
        runs = runs.filter(evaluations__pk=evaluation_id)
    else:
        try:
            rescore_fan_outs_resend()
        except Exception:  # the reaper goes on; tried again next round
            log.exception("could not send the late re-score jobs again")
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
        "error": run.error,
        **rescore_progress(run=run),
        "skipped": run.skipped,
        "rank_changes": run.rank_changes,
    }
