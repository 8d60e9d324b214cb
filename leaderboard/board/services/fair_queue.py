"""Fair queuing of scoring runs per task: a burst of entries on one task never starves the
others.

Every task has a queue of its own in the database (its queued runs, oldest first). A run is
*sent* to the broker only while its task has fewer than its kind's budget of runs sent or
running. The kinds are counted apart:

- new entries' runs (``SCORING_IN_FLIGHT_PER_TASK``);
- the runs of a re-score of many entries (``RESCORE_IN_FLIGHT_PER_TASK``), so a re-score of
  every entry neither waits behind new entries nor holds them back by more than its budget;
- GPU runs, those routed to the GPU runs' queue (``SCORING_IN_FLIGHT_PER_TASK`` of their
  own). A GPU run is sent only while a GPU worker host that is not drained is known
  (``selectors.worker_hosts.gpu_worker_available``); until then it stays pending and its
  entry says it waits for a GPU worker. So GPU runs waiting for a host, or queued behind one
  another on a busy GPU host, hold none of the slots of their task's other entries.

The others wait in the database, *pending* (``queued`` with no ``enqueued_at``). When a run
finishes, ``services.dispatch.scoring_dispatch`` sends the oldest pending run of each kind of
every task with a free slot; the reaper calls it too, so a dispatch lost with its worker is
made later, and so does a GPU host when it announces itself.

So a burst of 100 entries on one task puts at most its budget in the broker's queue: an
entry of another task, sent at once, waits behind those few runs, not behind the hundred.
The check and the send take a lock on the task's row, so two processes cannot both take the
last slot, nor both send the same run.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q

from leaderboard.board.models import Evaluation, RescoreRun, Submission, Task, Track
from leaderboard.board.selectors.worker_hosts import gpu_worker_available

log = logging.getLogger(__name__)

E = Evaluation.Status
S = Submission.Status

NEW = "new"
RESCORE = "rescore"
GPU = "gpu"
KINDS = (NEW, RESCORE, GPU)


def _budget(kind: str) -> int:
    if kind == RESCORE:
        return int(settings.RESCORE_IN_FLIGHT_PER_TASK)
    return int(settings.SCORING_IN_FLIGHT_PER_TASK)


def _sent() -> Q:
    """Runs that hold a slot: sent to the broker and not finished."""
    return Q(status=E.RUNNING) | Q(status=E.QUEUED, enqueued_at__isnull=False)


def is_bulk_rescore() -> Q:
    """Runs made by a re-score of many entries (their own budget)."""
    return Q(Exists(RescoreRun.evaluations.through.objects.filter(evaluation_id=OuterRef("pk"))))


def goes_to_gpu() -> Q:
    """Runs routed to the GPU runs' queue (``routing.evaluation_queue``): the runs of a
    container entry that needs a GPU, but for a re-score of the predictions its last run on
    the benchmark kept, which ``board.rescore_entry`` scores on the scoring queue
    (``services.stored_predictions.rescore_from_stored``). The kept predictions are taken
    from the database's record of them: a file gone from storage would make such a re-score
    a GPU run that this counts as another kind, the one case where the count is wrong."""
    kept = Evaluation.objects.filter(
        submission_id=OuterRef("submission_id"),
        status=E.SUCCEEDED,
        benchmark_hash=OuterRef("submission__task__benchmark__manifest_hash"),
    ).exclude(container_run_id="")
    return Q(submission__track__slug=Track.CONTAINER, submission__needs_gpu=True) & ~Q(
        Q(trigger=Evaluation.Trigger.RESCORE) & Q(Exists(kept))
    )


def kind_filter(kind: str) -> Q:
    """The runs of one kind: ``NEW``, ``RESCORE`` (a re-score of many) or ``GPU``."""
    if kind == GPU:
        return goes_to_gpu()
    bulk = is_bulk_rescore()
    return ~goes_to_gpu() & (bulk if kind == RESCORE else ~bulk)


def run_kind(*, evaluation_id: int) -> str:
    """The kind of a run, whose budget it takes (one query)."""
    row = (
        Evaluation.objects.filter(pk=evaluation_id)
        .annotate(
            gpu=ExpressionWrapper(goes_to_gpu(), output_field=BooleanField()),
            bulk=ExpressionWrapper(is_bulk_rescore(), output_field=BooleanField()),
        )
        .values_list("gpu", "bulk")
        .first()
    )
    if row is None or not (row[0] or row[1]):
        return NEW
    return GPU if row[0] else RESCORE


def _hold(submission_id: int, now: Any) -> bool:
    """A run that must wait stays pending, and its entry shows as queued."""
    Submission.objects.filter(pk=submission_id, status=S.SUBMITTED).update(
        status=S.QUEUED, queued_at=now
    )
    return False


def fair_queue_admit(*, evaluation_id: int, now: Any) -> bool:
    """Mark a queued run sent (``enqueued_at``) if its task has a free slot of its kind (a
    GPU run also needs a GPU worker host), or if it was sent already (a resend keeps its
    slot). A run that must wait stays pending, and its entry shows as queued. Returns
    whether the caller may send the message."""
    row = (
        Evaluation.objects.filter(pk=evaluation_id, status=E.QUEUED)
        .values("submission__task_id", "enqueued_at", "submission_id")
        .first()
    )
    if row is None:
        return False
    task_id = row["submission__task_id"]
    kind = run_kind(evaluation_id=evaluation_id) if row["enqueued_at"] is None else None
    if kind == GPU and not gpu_worker_available():
        # It waits for a GPU host in the database, holding no slot; a GPU host that
        # announces itself dispatches it (services.worker_hosts), and so does the reaper.
        return _hold(row["submission_id"], now)
    with transaction.atomic():
        # One admission per task at a time: the count below stays true until we commit.
        Task.objects.select_for_update().filter(pk=task_id).first()
        run = Evaluation.objects.filter(pk=evaluation_id, status=E.QUEUED)
        if kind is not None:
            held = Evaluation.objects.filter(
                _sent(), kind_filter(kind), submission__task_id=task_id
            )
            if held.count() >= _budget(kind):
                return _hold(row["submission_id"], now)
            # Not sent by another process while we waited for the lock: sent once.
            run = run.filter(enqueued_at__isnull=True)
        return bool(run.update(enqueued_at=now))


def fair_queue_heads(*, task_id: int, exclude: list[int] | None = None) -> list[int]:
    """The oldest pending run of each kind of a task (the ones a dispatch tries), oldest
    first."""
    pending = Evaluation.objects.filter(
        status=E.QUEUED, enqueued_at__isnull=True, submission__task_id=task_id
    ).exclude(pk__in=exclude or [])
    heads: list[tuple[Any, int]] = []
    for kind in KINDS:
        first = (
            pending.filter(kind_filter(kind))
            .order_by("created_at", "id")
            .values_list("created_at", "id")
            .first()
        )
        if first is not None:
            heads.append(first)
    return [pk for _, pk in sorted(heads)]
