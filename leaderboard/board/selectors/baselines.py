"""Reads of the reference baselines' jobs (``services/baseline_jobs.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from leaderboard.board.models import BaselineJob

J = BaselineJob.Status


@dataclass(frozen=True)
class Progress:
    """Where the reference baselines of the current benchmarks stand (the home page)."""

    total: int
    done: int
    failed: int
    running: list[BaselineJob]
    failures: list[BaselineJob]

    @property
    def active(self) -> bool:
        return self.total > 0 and self.done + self.failed < self.total


def baseline_progress() -> Progress:
    """The reference baselines' jobs of the current benchmarks."""
    jobs = list(BaselineJob.objects.filter(benchmark__is_current=True).select_related("benchmark"))
    return Progress(
        total=len(jobs),
        done=sum(j.status == J.DONE for j in jobs),
        failed=sum(j.status == J.FAILED for j in jobs),
        running=[j for j in jobs if j.status == J.RUNNING],
        failures=[j for j in jobs if j.status == J.FAILED],
    )


def baseline_jobs_pending() -> int:
    """Jobs still to do (waiting, queued or running) of the current benchmarks."""
    return BaselineJob.objects.filter(
        status__in=(J.WAITING, J.QUEUED, J.RUNNING), benchmark__is_current=True
    ).count()
