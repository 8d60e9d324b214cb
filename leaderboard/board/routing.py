"""Which queue a job goes to: the Celery router named in ``CELERY_TASK_ROUTES``.

A scoring run of a prediction file goes to the scoring queue; a container entry's run to the
CPU runs' queue, or to the GPU runs' queue when the entry needs a GPU, so that only hosts
with the engine and the devices it needs take it. The other tasks are routed by name in
settings. A queue given to ``apply_async`` explicitly wins over the router.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

EVALUATION_TASK = "board.evaluation_run"


def evaluation_queue(evaluation_id: int) -> str:
    """The queue of a scoring run, from its entry's track and whether it needs a GPU."""
    from leaderboard.board.models import Evaluation, Track

    row = (
        Evaluation.objects.filter(pk=evaluation_id)
        .values_list("submission__track__slug", "submission__needs_gpu")
        .first()
    )
    if row is None or row[0] != Track.CONTAINER:
        return settings.SCORING_QUEUE
    return settings.GPU_RUNS_QUEUE if row[1] else settings.CPU_RUNS_QUEUE


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str] | None:
    """Celery's router: a queue for ``board.evaluation_run``, None (the next router) else."""
    if name != EVALUATION_TASK:
        return None
    evaluation_id = (args or [None])[0] if args else (kwargs or {}).get("evaluation_id")
    if evaluation_id is None:
        return None
    return {"queue": evaluation_queue(int(evaluation_id))}
