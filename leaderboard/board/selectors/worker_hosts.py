"""Reads about worker hosts: which are alive, and whether a GPU run has a host to go to."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from leaderboard.board.models import Submission, WorkerHost

WAITING_FOR_GPU = "waiting for a GPU worker"


def worker_hosts_alive(*, now: datetime | None = None) -> list[WorkerHost]:
    """Hosts heard from within ``WORKER_HOST_STALE``."""
    now = now or timezone.now()
    return list(WorkerHost.objects.filter(last_seen__gte=now - settings.WORKER_HOST_STALE))


def gpu_worker_available(*, now: datetime | None = None) -> bool:
    """Whether an alive, undrained host with a GPU serves the GPU runs' queue."""
    return any(
        h.gpus > 0 and not h.drained and settings.GPU_RUNS_QUEUE in (h.queues or [])
        for h in worker_hosts_alive(now=now)
    )


def submission_waiting_for(*, submission: Submission) -> str:
    """What an entry in the queue waits for beyond its turn: ``WAITING_FOR_GPU`` for a
    GPU entry no host can take now; "" otherwise."""
    if (
        submission.needs_gpu
        and submission.status in (Submission.Status.SUBMITTED, Submission.Status.QUEUED)
        and not gpu_worker_available()
    ):
        return WAITING_FOR_GPU
    return ""
