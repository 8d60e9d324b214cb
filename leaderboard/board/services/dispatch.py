"""Sending the runs that wait in the per-task fair queues (``services.fair_queue``): after
every run, and from the reaper."""

from __future__ import annotations

import logging

from django.db.models import Count

from leaderboard.board.models import Evaluation
from leaderboard.board.services.evaluations import evaluation_enqueue
from leaderboard.board.services.fair_queue import fair_queue_heads
from leaderboard.board.services.rescoring import rescore_runs_settle

log = logging.getLogger(__name__)

E = Evaluation.Status


def scoring_dispatch(*, limit: int = 200) -> list[int]:
    """Send the oldest pending runs of every task with free slots, taking the tasks in
    turn (round robin: one run of each kind of each task, then a second of each, ...). A
    GPU run is sent only while a GPU host is known. Returns the runs sent. Never raises:
    what is not sent now is sent by the next dispatch or the reaper."""
    sent: list[int] = []
    try:
        tasks = list(
            Evaluation.objects.filter(status=E.QUEUED, enqueued_at__isnull=True)
            .values("submission__task_id")
            .annotate(n=Count("id"))
            .order_by("submission__task_id")
            .values_list("submission__task_id", flat=True)
        )
        full: set[int] = set()
        while tasks and len(sent) < limit:
            progressed = False
            for task_id in tasks:
                if task_id in full:
                    continue
                # Each kind (new entries, a bulk re-score, GPU runs) has its own budget: try
                # the oldest pending run of each.
                candidates = fair_queue_heads(task_id=task_id, exclude=sent)
                moved = False
                for pk in candidates:
                    if evaluation_enqueue(evaluation_id=pk):
                        sent.append(pk)
                        moved = progressed = True
                if not moved:
                    full.add(task_id)
            if not progressed:
                break
    except Exception:
        log.exception("could not dispatch the pending scoring runs")
    return sent


def scoring_after_run(*, evaluation_id: int) -> None:
    """After a run finished, on its worker: close its re-score if it was the re-score's
    last run, and send the next waiting runs of the tasks with free slots. Never raises."""
    try:
        rescore_runs_settle(evaluation_id=evaluation_id)
    except Exception:
        log.exception("could not settle the re-score of run %s", evaluation_id)
    scoring_dispatch()
