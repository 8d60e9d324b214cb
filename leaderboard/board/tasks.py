"""Celery tasks: thin. Each takes ids, and calls one service.

``evaluation_run_task`` acknowledges its message only when it is done (``acks_late``) and is
redelivered if its worker process dies; the service makes a second delivery harmless. The
time limits come from settings (``SCORING_SOFT_TIME_LIMIT``, ``SCORING_TIME_LIMIT``) through
the app's configuration.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from leaderboard.board.services.baseline_jobs import baseline_job_run
from leaderboard.board.services.boards import board_refresh
from leaderboard.board.services.containers import container_runs_reap
from leaderboard.board.services.dispatch import scoring_after_run
from leaderboard.board.services.evaluations import evaluation_run, evaluations_reap
from leaderboard.board.services.rescoring import (
    rescore_entry,
    rescore_fan_out,
    rescore_runs_settle,
)
from leaderboard.celery import app


@app.task(name="board.evaluation_run", bind=True, acks_late=True, reject_on_worker_lost=True)
def evaluation_run_task(self, evaluation_id: int) -> None:
    evaluation_run(evaluation_id=evaluation_id, worker=self.request.hostname or "")
    scoring_after_run(evaluation_id=evaluation_id)


@app.task(name="board.rescore_entry", bind=True, acks_late=True, reject_on_worker_lost=True)
def rescore_entry_task(self, evaluation_id: int) -> None:
    """One entry of a re-score, from its stored predictions (services.rescoring)."""
    rescore_entry(evaluation_id=evaluation_id, worker=self.request.hostname or "")
    scoring_after_run(evaluation_id=evaluation_id)


@app.task(name="board.rescore_fan_out", acks_late=True, reject_on_worker_lost=True,
          ignore_result=True)  # fmt: skip
def rescore_fan_out_task(rescore_run_id: int) -> None:
    """Make the runs of a re-score of many entries, asked for in a request
    (services.rescoring); on the scoring queue, the default."""
    rescore_fan_out(rescore_run_id=rescore_run_id)


@app.task(name="board.reap", acks_late=True, ignore_result=True)
def reap_task() -> dict[str, int]:
    result = evaluations_reap()
    rescore_runs_settle()  # a re-score whose last run the reaper gave up on
    # On a worker, next to the engine: containers of the runs taken back, any run's
    # container past its deadline, and any run's leftovers older than CONTAINER_LEASE (a
    # worker that died mid-run).
    removed = container_runs_reap(run_ids=result.container_run_ids)
    return {
        "requeued": len(result.requeued),
        "abandoned": len(result.abandoned),
        "resent": len(result.resent),
        "containers_removed": removed["containers"],
        "images_removed": removed["images"],
        "overdue_containers_removed": removed["overdue"],
    }


@app.task(name="board.refresh", ignore_result=True)
def board_refresh_task(task_id: int) -> dict[str, Any]:
    return board_refresh(task_id=task_id)


@app.task(
    name="board.baseline_job_run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.BASELINE_JOB_SOFT_TIME_LIMIT,
    time_limit=settings.BASELINE_JOB_SOFT_TIME_LIMIT + 60,
)
def baseline_job_run_task(job_id: int) -> str | None:
    job = baseline_job_run(job_id=job_id)
    return None if job is None else job.status
