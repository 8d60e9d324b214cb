"""Container entries follow the current benchmark: re-run through the streaming gateway.

A new benchmark version (say, the leak-free test layout of format 2) changes the inputs of
every entry. A container entry can be run again by the platform on the new data: it moves to
the same task of the current benchmark and gets a new run, whose note says why; its earlier
runs, on the earlier benchmark, stay in its history. A prediction file cannot be remade by
the platform: it stays on its benchmark's board, which remains readable, and its author may
submit again.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from leaderboard.board.models import AuditLog, Benchmark, Evaluation, Submission, Task, Track
from leaderboard.board.services.audit import audit_record
from leaderboard.board.services.evaluations import evaluation_create
from leaderboard.board.services.rescoring import RescoreResult

S = Submission.Status
CARRY_NOTE = (
    "Re-run through the streaming gateway on benchmark {benchmark}: its inputs changed "
    "(earlier runs were on benchmark {previous})"
)
CARRIED_STATES = (S.SCORED, S.PUBLISHED)


def containers_carry_over(*, actor: Any, benchmark: Benchmark) -> RescoreResult:
    """Move the scored container entries of earlier benchmarks of the same suite to the
    same task of ``benchmark`` and queue a run of each through the gateway. Entries whose task the
    benchmark lacks, or whose owner already entered the same image there, are skipped."""
    tasks = {t.slug: t for t in Task.objects.filter(benchmark=benchmark)}
    entries = (
        Submission.objects.filter(track__slug=Track.CONTAINER, status__in=CARRIED_STATES)
        .filter(task__benchmark__suite_id=benchmark.suite_id)
        .exclude(task__benchmark=benchmark)
        .select_related("task__benchmark")
        .order_by("pk")
    )
    queued: list[int] = []
    skipped: list[int] = []
    for entry in entries:
        task = tasks.get(entry.task.slug)
        duplicate = (
            task is not None
            and Submission.objects.filter(task=task, owner=entry.owner, sha256=entry.sha256)
            .exclude(pk=entry.pk)
            .exists()
        )
        if task is None or duplicate:
            skipped.append(entry.pk)
            continue
        previous = entry.task.benchmark
        with transaction.atomic():
            entry.task = task
            entry.save(update_fields=["task"])
            evaluation = evaluation_create(
                submission=entry,
                trigger=Evaluation.Trigger.RESCORE,
                triggered_by=actor,
                note=CARRY_NOTE.format(benchmark=benchmark, previous=previous),
            )
            if evaluation is None:
                transaction.set_rollback(True)
                skipped.append(entry.pk)
                continue
            audit_record(
                actor=actor,
                action=AuditLog.Action.RESCORE,
                submission=entry,
                evaluation=evaluation,
                scope=f"carried from benchmark {previous} to {benchmark}",
            )
        queued.append(evaluation.pk)
    return RescoreResult(queued=queued, skipped=skipped)
