"""What a run of a submitted image ended in: states, messages, results.

Every state but ``engine_error`` is one the submitter can act on; the messages (``MSG_*``)
say what happened in the submitter's terms.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from benchmark_data.tasks import Task
from leaderboard.containers.archive import ImageInfo
from leaderboard.containers.limits import Limits, format_bytes
from leaderboard.containers.output import WRONG_NOT_FILE, check_predictions
from leaderboard.containers.output_volume import OutputReport

MSG_SUCCEEDED = "the model wrote {size} of predictions in {duration:.1f} s"
MSG_TIMED_OUT = "the model ran longer than the wall-time limit of {limit:g} s and was stopped"
MSG_OOM = (
    "the model needed more than the memory limit of {limit} (RAM, /tmp, /dev/shm and /output "
    "together, no swap) and was killed"
)
MSG_CRASHED = "the model exited with code {code}; the end of its log shows why"
MSG_KILLED_BY_SIGNAL = "the model was killed by signal {signal} (exit code {code})"
MSG_NO_OUTPUT = "the model exited normally but wrote no /output/predictions.csv"
MSG_OUTPUT_TOO_LARGE = (
    "the model wrote more than {limit} or more than {files} files under /output (files it "
    "deleted while still holding them open count too); writes past the limit were refused "
    "and the run was stopped"
)
MSG_WRONG_OUTPUT = "/output/predictions.csv is not a usable prediction file: {detail}"
MSG_NOT_STARTED = (
    "the image's ENTRYPOINT/CMD could not be started ({detail}); check that it names an "
    "executable present in the image"
)
MSG_ENGINE = (
    "the run could not be completed because of a platform problem ({detail}); it will be retried"
)
MSG_SKIPPED = "not run: the scenario {scenario} failed before"

LOG_CUT = "[... earlier output cut: only the last {size} are kept ...]\n"

_SIGNALS = {129: "SIGHUP", 130: "SIGINT", 134: "SIGABRT", 137: "SIGKILL", 139: "SIGSEGV",
            143: "SIGTERM", 153: "SIGXFSZ (a file grew past its size limit)"}  # fmt: skip


class RunStatus(StrEnum):
    """Outcome of one run; every failure but ``engine_error`` is the submitter's to fix."""

    SUCCEEDED = "succeeded"
    IMAGE_INVALID = "image_invalid"
    TIMED_OUT = "timed_out"
    OUT_OF_MEMORY = "out_of_memory"
    CRASHED = "crashed"
    NO_OUTPUT = "no_output"
    OUTPUT_TOO_LARGE = "output_too_large"
    WRONG_OUTPUT = "wrong_output"
    PROTOCOL_ERROR = "protocol_error"  # streaming only: the gateway's protocol was broken
    ENGINE_ERROR = "engine_error"
    SKIPPED = "skipped"


@dataclass
class RunResult:
    """One run of a model in one scenario.

    ``duration`` is the model's own time (the engine's start-to-exit of its process);
    ``wall_time`` is the platform's time for the run from container creation to removal,
    output checks included; ``overhead`` the difference. ``load_time`` is the time the
    engine took to load the image when this run loaded it (else 0). ``log_tail`` is for the
    submission's owner only: it holds whatever the model printed.
    """

    status: RunStatus
    task: str
    scenario: str
    run_id: str
    message: str
    exit_code: int | None = None
    oom_killed: bool = False
    duration: float | None = None
    wall_time: float = 0.0
    load_time: float = 0.0
    log_tail: str = ""
    log_bytes: int = 0
    log_truncated: bool = False
    output_path: Path | None = None
    output_bytes: int = 0
    container_id: str | None = None
    stream: dict[str, Any] | None = None  # a streamed run's record (gateway), else None
    # The task as its benchmark's suite declares it (its output is checked against it);
    # None: a MedMod task named by ``task``.
    spec: Task | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    @property
    def overhead(self) -> float | None:
        """Platform time beyond the model's own: create, start, stop, logs, checks, removal."""
        if self.duration is None:
            return None
        return max(0.0, self.wall_time - self.duration)

    def summary(self) -> dict[str, Any]:
        """JSON-able record without the log (store the log apart: owner only)."""
        return {
            "status": str(self.status),
            "task": self.task,
            "scenario": self.scenario,
            "run_id": self.run_id,
            "message": self.message,
            "exit_code": self.exit_code,
            "oom_killed": self.oom_killed,
            "duration": self.duration,
            "wall_time": round(self.wall_time, 3),
            "overhead": None if self.overhead is None else round(self.overhead, 3),
            "load_time": round(self.load_time, 3),
            "output_bytes": self.output_bytes,
            "log_bytes": self.log_bytes,
            "log_truncated": self.log_truncated,
            "container": self.container_id[:12] if self.container_id else None,
            **({"stream": self.stream} if self.stream is not None else {}),
        }


@dataclass
class SubmissionRun:
    """All runs of one submitted image for one task."""

    run_id: str
    task: str
    image: ImageInfo | None
    results: dict[str, RunResult] = field(default_factory=dict)
    load_time: float = 0.0
    status: RunStatus = RunStatus.SUCCEEDED
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    @property
    def outputs(self) -> dict[str, Path]:
        """Prediction file per scenario, for the runs that succeeded."""
        return {s: r.output_path for s, r in self.results.items() if r.ok and r.output_path}

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "task": self.task,
            "status": str(self.status),
            "message": self.message,
            "image": self.image.summary() if self.image else None,
            "load_time": round(self.load_time, 3),
            "runs": {s: r.summary() for s, r in self.results.items()},
        }


class LogTail:
    """The last ``size`` bytes of a stream, kept without holding the stream."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.buf += chunk
        if len(self.buf) > 2 * self.size:
            del self.buf[: len(self.buf) - self.size]

    def text(self) -> str:
        data = bytes(self.buf[-self.size :]) if self.size else b""
        text = data.decode("utf-8", errors="replace")
        if self.total > len(data):
            text = LOG_CUT.format(size=format_bytes(self.size)) + text
        return text


ENGINE_CLOCK_SLACK = 5.0  # seconds a FinishedAt may precede StartedAt (see engine_seconds)


def engine_seconds(state: dict[str, Any]) -> float | None:
    """The model's own time: the engine's start-to-exit of the container's process."""
    try:
        start = datetime.fromisoformat(state["StartedAt"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(state["FinishedAt"].replace("Z", "+00:00"))
    except (KeyError, ValueError, AttributeError):
        return None
    if start.year < 2000 or end.year < 2000:
        return None
    seconds = (end - start).total_seconds()
    # The engine records StartedAt once the start call returns: a process that exits at once,
    # on a busy host, can have finished "before" it started. Its own time is then nil.
    if -ENGINE_CLOCK_SLACK <= seconds < 0:
        return 0.0
    return seconds if seconds >= 0 else None


def classify(
    result: RunResult,
    state: dict[str, Any],
    killed_for: RunStatus | None,
    output: OutputReport,
    work_dir: Path,
    limits: Limits,
) -> None:
    """Set a run's status and message from the engine's final state of its container and
    what it left in /output; the copy of ``predictions.csv`` is kept only on success."""
    result.exit_code = int(state.get("ExitCode", -1))
    result.oom_killed = bool(state.get("OOMKilled"))
    result.duration = engine_seconds(state)
    result.output_bytes = output.bytes
    if killed_for == RunStatus.TIMED_OUT:
        result.status = RunStatus.TIMED_OUT
        result.message = MSG_TIMED_OUT.format(limit=limits.wall_time)
    elif killed_for == RunStatus.OUTPUT_TOO_LARGE or output.full:
        result.status = RunStatus.OUTPUT_TOO_LARGE
        result.message = MSG_OUTPUT_TOO_LARGE.format(
            limit=format_bytes(limits.output_bytes), files=limits.output_files
        )
    elif result.exit_code != 0 and result.oom_killed:
        result.status = RunStatus.OUT_OF_MEMORY
        result.message = MSG_OOM.format(limit=format_bytes(limits.memory_bytes))
    elif result.exit_code != 0:
        result.status = RunStatus.CRASHED
        signal = _SIGNALS.get(result.exit_code)
        result.message = (
            MSG_KILLED_BY_SIGNAL.format(signal=signal, code=result.exit_code)
            if signal
            else MSG_CRASHED.format(code=result.exit_code)
        )
    elif output.not_a_file:
        result.status = RunStatus.WRONG_OUTPUT
        result.message = MSG_WRONG_OUTPUT.format(detail=WRONG_NOT_FILE)
    elif output.predictions is None:
        result.status = RunStatus.NO_OUTPUT
        result.message = MSG_NO_OUTPUT
    else:
        problem = check_predictions(output.predictions, result.spec or result.task)
        if problem is not None:
            result.status = RunStatus.WRONG_OUTPUT
            result.message = MSG_WRONG_OUTPUT.format(detail=problem)
        else:
            kept = work_dir / f"predictions-{result.scenario}.csv"
            os.replace(output.predictions, kept)  # the worker's own copy, checked above
            result.output_path = kept
            result.output_bytes = kept.stat().st_size
            result.status = RunStatus.SUCCEEDED
            result.message = MSG_SUCCEEDED.format(
                size=format_bytes(result.output_bytes), duration=result.duration or 0.0
            )
            return
    if output.predictions is not None:
        output.predictions.unlink(missing_ok=True)
