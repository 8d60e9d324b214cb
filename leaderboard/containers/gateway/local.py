"""Streaming a model that runs as a local subprocess, over its stdin and stdout.

For trusted models (the platform's reference baselines) and for tests: the process is not
contained. Its stderr is kept as the log tail; ``MEDMOD_GATEWAY=stdio`` tells the
participant helper to use stdin/stdout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from leaderboard.containers.gateway import protocol
from leaderboard.containers.gateway.channel import Channel
from leaderboard.containers.gateway.driver import drive, write_predictions
from leaderboard.containers.gateway.record import StreamRecord
from leaderboard.containers.gateway.timeline import Timeline
from leaderboard.containers.limits import DEFAULT_LIMITS, Limits
from leaderboard.containers.results import LogTail, RunStatus


def _drain(stream: IO[bytes], tail: LogTail) -> None:
    fd = stream.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        tail.add(chunk)


def run_stream_subprocess(
    command: Sequence[str],
    timeline: Timeline,
    *,
    output: str | os.PathLike[str],
    limits: Limits = DEFAULT_LIMITS,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> StreamRecord:
    """Run ``command`` as a streaming model on ``timeline``; on success the prediction file
    is written to ``output``. Never raises for anything the model does."""
    record = StreamRecord(task=timeline.task.slug, scenario=timeline.scenario)
    dest = Path(output)
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    environment = dict(os.environ if env is None else env)
    environment.update(
        MEDMOD_GATEWAY="stdio", MEDMOD_TASK=timeline.task.slug, MEDMOD_SCENARIO=timeline.scenario
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        list(command),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        cwd=cwd,
        start_new_session=True,
    )
    tail = LogTail(limits.log_tail_bytes)
    drainer = threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True)
    drainer.start()
    assert proc.stdin is not None and proc.stdout is not None
    channel = Channel(proc.stdout.fileno(), proc.stdin.fileno())
    try:
        answers = drive(timeline, channel, record, limits=limits, started=started)
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            code = proc.wait(timeout=limits.exit_time if answers is not None else 2.0)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            _kill(proc)
            if answers is not None:
                record.fail(RunStatus.TIMED_OUT, "no_exit",
                            protocol.ERR_NO_EXIT.format(limit=limits.exit_time))  # fmt: skip
        record.exit_code = proc.returncode
        if record.reason == "exited_early" and proc.returncode == 0:
            record.status = RunStatus.PROTOCOL_ERROR
        elif answers is not None and code not in (None, 0):
            record.fail(RunStatus.CRASHED, "exit_code", protocol.ERR_EXIT_CODE.format(code=code))
        if record.reason is None and answers is not None:
            record.output_path = write_predictions(timeline, answers, dest)
            record.output_bytes = dest.stat().st_size
            record.status = RunStatus.SUCCEEDED
            record.message = (
                f"the model answered {record.steps_done} steps ({record.units_answered} units)"
            )
    finally:
        _kill(proc)
        drainer.join(timeout=5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        record.log_tail, record.log_bytes = tail.text(), tail.total
        record.wall_time = time.monotonic() - started
    return record


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop the model and anything it started (its own session's process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
