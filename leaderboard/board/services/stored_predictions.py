"""The predictions an entry's runs are scored from again: a prediction file's upload, or the
predictions a container entry's last successful run on its benchmark kept
(``services.containers``). Used by re-scoring (``services.rescoring``) and by the queue,
which sends a re-score of stored predictions to ``board.rescore_entry``, never to a
container run."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage

from leaderboard.board.models import Evaluation, Submission
from leaderboard.board.services.containers import container_limits, container_predictions_name
from leaderboard.containers.inputs import container_scenarios

E = Evaluation.Status


def kept_container_run(submission: Submission) -> str | None:
    """The run id of the latest successful run of a container entry on its benchmark whose
    predictions were kept."""
    runs = (
        Evaluation.objects.filter(
            submission=submission,
            status=E.SUCCEEDED,
            benchmark_hash=submission.task.benchmark.manifest_hash,
        )
        .exclude(container_run_id="")
        .order_by("-created_at", "-id")
        .values_list("container_run_id", flat=True)
    )
    for run_id in runs[:5]:
        if default_storage.exists(container_predictions_name(run_id)):
            return run_id
    return None


def has_stored(submission: Submission) -> bool:
    return not submission.is_container or kept_container_run(submission) is not None


def rescore_from_stored(*, evaluation_id: int) -> bool:
    """Whether a queued run is a re-score scored from stored predictions (then it goes to
    ``board.rescore_entry``, never to a container run). A container entry's run on a new
    benchmark (carried over) has no predictions stored there: it is run again."""
    evaluation = (
        Evaluation.objects.select_related("submission__task__benchmark", "submission__track")
        .filter(pk=evaluation_id, trigger=Evaluation.Trigger.RESCORE)
        .first()
    )
    return evaluation is not None and has_stored(evaluation.submission)


def open_stored(submission: Submission) -> tuple[Any, int]:
    """The stored predictions of an entry (a path or an open file) and the size limit to
    read them with."""
    if submission.is_container:
        run_id = kept_container_run(submission)
        if run_id is None:
            raise FileNotFoundError("no kept predictions")
        name = container_predictions_name(run_id)
        scenarios = container_scenarios(submission.task.benchmark.suite_declaration)
        max_bytes = container_limits().output_bytes * len(scenarios)
    else:
        stored = submission.file.name
        if not stored:  # an upload entry keeps its file; without one there is nothing to read
            raise FileNotFoundError("no stored prediction file")
        name, max_bytes = stored, settings.MAX_UPLOAD_BYTES
    try:
        return default_storage.path(name), max_bytes
    except NotImplementedError:
        return default_storage.open(name, "rb"), max_bytes
