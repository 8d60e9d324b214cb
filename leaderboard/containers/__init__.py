"""Containerized submissions, worker side: checking an uploaded image archive, building a
scenario's inputs, running the image contained, and cleaning up after it.

Pure Python on the Docker SDK: no Django here, so the service runs and is tested alone; the
platform wraps it (docs/containers.md).
"""

from leaderboard.containers.archive import ImageArchiveError, ImageInfo, inspect_image_archive
from leaderboard.containers.engine import (
    CleanupReport,
    EngineError,
    cleanup_stale,
    get_client,
    new_run_id,
)
from leaderboard.containers.executor import (
    Capabilities,
    DockerExecutor,
    Executor,
    GpuUnavailable,
    RunSpec,
    executor_for,
)
from leaderboard.containers.inputs import output_columns, prepare_inputs, withheld_stays
from leaderboard.containers.limits import DEFAULT_LIMITS, LABEL_RUN, Limits
from leaderboard.containers.output import combine_predictions
from leaderboard.containers.results import RunResult, RunStatus, SubmissionRun
from leaderboard.containers.runner import CONTAINER_SCENARIOS, run_all_scenarios, run_container

__all__ = [
    "CONTAINER_SCENARIOS",
    "DEFAULT_LIMITS",
    "LABEL_RUN",
    "Capabilities",
    "CleanupReport",
    "DockerExecutor",
    "EngineError",
    "Executor",
    "GpuUnavailable",
    "ImageArchiveError",
    "ImageInfo",
    "Limits",
    "RunResult",
    "RunSpec",
    "RunStatus",
    "SubmissionRun",
    "cleanup_stale",
    "combine_predictions",
    "executor_for",
    "get_client",
    "inspect_image_archive",
    "new_run_id",
    "output_columns",
    "prepare_inputs",
    "run_all_scenarios",
    "run_container",
    "withheld_stays",
]
