"""Fair queuing of scoring runs per task: a burst of entries on one task never starves the
others.

Every task has a queue of its own in the database (its queued runs, oldest first). A run is
*sent* to the broker only while its task has fewer than ``SCORING_IN_FLIGHT_PER_TASK`` runs
sent or running (re-scores have their own, larger budget, ``RESCORE_IN_FLIGHT_PER_TASK``, so
a re-score of every entry neither waits behind new entries nor holds them back by more than
its budget). The others wait in the database, *pending* (``queued`` with no ``enqueued_at``).
When a run finishes, ``services.dispatch.scoring_dispatch`` sends the oldest pending run of every task
with a free slot; the reaper calls it too, so a dispatch lost with its worker is made later.

So a burst of 100 entries on one task puts at most its budget in the broker's queue: an
entry of another task, sent at once, waits behind those few runs, not behind the hundred.
The check and the send take a lock on the task's row, so two processes cannot both take the
last slot.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from leaderboard.board.models import Evaluation, RescoreRun, Submission, Task

log = logging.getLogger(__name__)

E = Evaluation.Status
S = Submission.Status


def _budget(rescore: bool) -> int:
    if rescore:
        return int(settings.RESCORE_IN_FLIGHT_PER_TASK)
    return int(settings.SCORING_IN_FLIGHT_PER_TASK)


def _sent() -> Q:
    """Runs that hold a slot: sent to the broker and not finished."""
    return Q(status=E.RUNNING) | Q(status=E.QUEUED, enqueued_at__isnull=False)


def is_bulk_rescore() -> Q:
    """Runs made by a re-score of many entries (their own budget)."""
    return Q(rescore_runs__isnull=False)


def fair_queue_admit(*, evaluation_id: int, now: Any) -> bool:
    """Mark a queued run sent (``enqueued_at``) if its task has a free slot, or if it is
    sent already (a resend keeps its slot). A run that must wait stays pending, and its
    entry shows as queued. Returns whether the caller may send the message."""
    row = (
        Evaluation.objects.filter(pk=evaluation_id, status=E.QUEUED)
        .values("submission__task_id", "enqueued_at", "submission_id")
        .first()
    )
    if row is None:
        return False
    task_id = row["submission__task_id"]
    with transaction.atomic():
        # One admission per task at a time: the count below stays true until we commit.
        Task.objects.select_for_update().filter(pk=task_id).first()
        rescore = RescoreRun.evaluations.through.objects.filter(
            evaluation_id=evaluation_id
        ).exists()
        if row["enqueued_at"] is None:
            held = Evaluation.objects.filter(_sent(), submission__task_id=task_id)
            held = held.filter(is_bulk_rescore()) if rescore else held.exclude(is_bulk_rescore())
            if held.count() >= _budget(rescore):
                Submission.objects.filter(pk=row["submission_id"], status=S.SUBMITTED).update(
                    status=S.QUEUED, queued_at=now
                )
                return False
        return bool(
            Evaluation.objects.filter(pk=evaluation_id, status=E.QUEUED).update(enqueued_at=now)
        )
