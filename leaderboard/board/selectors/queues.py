"""The scoring queues as participants see them: one queue per task (fair queuing,
``services.fair_queue``), with public counts and waiting times per queue, and each
participant's own entries' places.

Counts and times are aggregates over every run (private entries included, as counts only);
no entry other than the viewer's own is named.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, F, Min, OuterRef, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from leaderboard.board.models import Evaluation, RescoreRun, Task
from leaderboard.board.selectors.worker_hosts import submission_waiting_for

E = Evaluation.Status
# Waiting times are typical over the runs started in this window.
TYPICAL_WINDOW = timedelta(hours=24)
TYPICAL_SAMPLE = 500


def _bulk() -> Q:
    return Q(rescore_runs__isnull=False)


def evaluation_queue_positions(*, evaluation_ids: Iterable[int | None]) -> dict[int, int]:
    """1-based place of each queued run in its task's queue: the runs of the same task and
    kind (new entries, or a re-score of many) queued before it, plus one. A task's queue is
    served oldest first; the tasks are served in turn. One query."""
    wanted = [i for i in evaluation_ids if i]
    if not wanted:
        return {}
    bulk = RescoreRun.evaluations.through.objects.filter(evaluation_id=OuterRef("pk"))
    ranked = (
        Evaluation.objects.filter(status=E.QUEUED)
        .annotate(bulk=Exists(bulk))
        .annotate(
            position=Window(
                RowNumber(),
                partition_by=[F("submission__task_id"), F("bulk")],
                order_by=[F("created_at").asc(), F("id").asc()],
            )
        )
        .annotate(run_id=F("pk"))
        .values_list("run_id", "position")
    )
    # The place is counted over the whole queue, then the wanted runs are picked: a filter
    # on the same query would count among the wanted runs only.
    sql, params = ranked.query.sql_with_params()
    marks = ", ".join(["%s"] * len(wanted))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT q.run_id, q.position FROM ({sql}) q WHERE q.run_id IN ({marks})",  # noqa: S608
            [*params, *wanted],
        )
        return {int(pk): int(position) for pk, position in cursor.fetchall()}


def _typical_waits(since: Any) -> dict[int, float]:
    """Per task: the median time from a new entry's run being made to its start, over the
    runs started since ``since``."""
    rows = (
        Evaluation.objects.filter(
            trigger=Evaluation.Trigger.SUBMISSION,
            started_at__gte=since,
        )
        .order_by("-started_at")
        .values_list("submission__task_id", "created_at", "started_at")[:TYPICAL_SAMPLE]
    )
    per_task: dict[int, list[float]] = {}
    for task_id, created, started in rows:
        if started is None:  # excluded by the filter above; narrows the type
            continue
        per_task.setdefault(task_id, []).append(max(0.0, (started - created).total_seconds()))
    return {t: statistics.median(v) for t, v in per_task.items()}


def queue_overview(*, viewer: Any = None) -> dict[str, Any]:
    """Totals, one entry per task queue that has or had work (waiting, running, the
    longest current wait and the typical wait of a new entry), and, for a signed-in viewer,
    their own entries waiting or running with their place and time so far."""
    now = timezone.now()
    live = Evaluation.objects.filter(status__in=Evaluation.IN_FLIGHT)
    counts = (
        live.values("submission__task_id", "status")
        .annotate(n=Count("id"), oldest=Min("created_at"))
        .order_by()
    )
    per_task: dict[int, dict[str, Any]] = {}
    for row in counts:
        q = per_task.setdefault(row["submission__task_id"], {"waiting": 0, "running": 0})
        q["waiting" if row["status"] == E.QUEUED else "running"] += row["n"]
    oldest = dict(
        live.filter(status=E.QUEUED)
        .exclude(_bulk())
        .values("submission__task_id")
        .annotate(oldest=Min("created_at"))
        .order_by()
        .values_list("submission__task_id", "oldest")
    )
    rescoring = dict(
        live.filter(_bulk())
        .values("submission__task_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("submission__task_id", "n")
    )
    typical = _typical_waits(now - TYPICAL_WINDOW)
    task_ids = set(per_task) | set(typical)
    tasks = Task.objects.filter(pk__in=task_ids).select_related("benchmark")
    queues = []
    for task in sorted(tasks, key=lambda t: (t.benchmark_id, t.pk)):
        q = per_task.get(task.pk, {"waiting": 0, "running": 0})
        first = oldest.get(task.pk)
        queues.append(
            {
                "task": task.slug,
                "title": task.title,
                "benchmark": str(task.benchmark),
                "waiting": q["waiting"],
                "running": q["running"],
                "rescoring": rescoring.get(task.pk, 0),
                "longest_wait_seconds": round((now - first).total_seconds(), 1) if first else None,
                "typical_wait_seconds": round(typical[task.pk], 1) if task.pk in typical else None,
            }
        )
    out: dict[str, Any] = {
        "queued": live.filter(status=E.QUEUED).count(),
        "running": live.filter(status=E.RUNNING).count(),
        "queues": queues,
    }
    if viewer is not None and getattr(viewer, "is_authenticated", False):
        out["yours"] = _own_entries(viewer, now)
    return out


def _own_entries(viewer: Any, now: Any) -> list[dict[str, Any]]:
    runs = list(
        Evaluation.objects.filter(status__in=Evaluation.IN_FLIGHT, submission__owner=viewer)
        .select_related("submission__task")
        .order_by("created_at", "id")
    )
    positions = evaluation_queue_positions(
        evaluation_ids=[r.pk for r in runs if r.status == E.QUEUED]
    )
    return [
        {
            "entry": r.submission.public_id,
            "method": r.submission.method_name,
            "task": r.submission.task.slug,
            "status": r.status,
            # "waiting for a GPU worker" for a GPU entry no host can take now, else "".
            "waiting_for": submission_waiting_for(submission=r.submission),
            "position": positions.get(r.pk),
            "waiting_seconds": round(((r.started_at or now) - r.created_at).total_seconds(), 1),
        }
        for r in runs
    ]
