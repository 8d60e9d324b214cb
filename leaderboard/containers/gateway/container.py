"""Streaming a submitted image: the container runs contained as in the batch track (no
network, read-only, unprivileged, bounded), with no ``/input`` and no ``/output``; its only
channel is a Unix socket in a directory mounted read-only at ``/gateway``
(``MEDMOD_GATEWAY=/gateway/socket``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from leaderboard.containers.archive import ImageInfo
from leaderboard.containers.cgroups import note_process_limit
from leaderboard.containers.engine import remove_container
from leaderboard.containers.gateway import protocol
from leaderboard.containers.gateway.channel import Closed, Overdue, SocketListener
from leaderboard.containers.gateway.driver import drive, write_predictions
from leaderboard.containers.gateway.record import StreamRecord
from leaderboard.containers.gateway.timeline import Timeline
from leaderboard.containers.hardening import note_exec_failure
from leaderboard.containers.limits import (
    Limits,
    format_bytes,
)
from leaderboard.containers.results import (
    MSG_ENGINE,
    RunResult,
    RunStatus,
    engine_seconds,
)
from leaderboard.containers.runner import (
    _environment,
    create_model_container,
    keep_log_tail,
    run_labels,
    start_and_watch,
)

SOCKET_DIR = "/gateway"
SOCKET = f"{SOCKET_DIR}/socket"
_EXIT_GRACE = 30.0


def _socket_dir(work_dir: Path, scenario: str, user: str) -> tuple[Path, tuple[int, int] | None]:
    path = work_dir / f"gateway-{scenario}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    path.chmod(0o755)
    uid, _, gid = user.partition(":")
    if os.geteuid() == 0 and uid.isdigit():
        return path, (int(uid), int(gid) if gid.isdigit() else int(uid))
    return path, None


def run_loaded_stream(
    client: docker.DockerClient,
    tag: str,
    info: ImageInfo,
    timeline: Timeline,
    *,
    work_dir: Path,
    limits: Limits,
    run_id: str,
) -> RunResult:
    """Run a loaded image through the gateway on ``timeline``; the container is gone when
    this returns. Predictions land in ``work_dir/predictions-{scenario}.csv`` on success."""
    started = time.monotonic()
    task, scenario = timeline.task.slug, timeline.scenario
    record = StreamRecord(task=task, scenario=scenario, run_id=run_id)
    result = RunResult(status=RunStatus.ENGINE_ERROR, task=task, scenario=scenario,
                       run_id=run_id, message="")  # fmt: skip
    user = limits.run_user()
    sock_dir, owner = _socket_dir(work_dir, scenario, user)
    listener = SocketListener(sock_dir / "socket", mode=0o600 if owner else 0o666, owner=owner)
    env = _environment(info, task, scenario, limits)
    for name in ("MEDMOD_INPUT", "MEDMOD_OUTPUT"):
        env.pop(name, None)
    env["MEDMOD_GATEWAY"] = SOCKET
    container_id: str | None = None
    final: dict[str, Any] | None = None
    answers = None
    try:
        container_id = result.container_id = create_model_container(
            client, tag, info, limits, run_id=run_id, scenario=scenario, user=user,
            environment=env, labels=run_labels(run_id, task, scenario, limits),
            binds={str(sock_dir): {"bind": SOCKET_DIR, "mode": "ro"}},
        )  # fmt: skip
        watch = start_and_watch(client, container_id, result, run_id=run_id)
        if watch is None:
            return result
        exited = watch[0]
        t0 = time.monotonic()
        try:
            channel = listener.accept(
                min(t0 + limits.ready_time, t0 + limits.wall_time),
                alive=lambda: not exited.is_set(),
            )
        except Overdue:
            record.fail(RunStatus.PROTOCOL_ERROR, "not_connected",
                        protocol.ERR_NOT_CONNECTED.format(limit=limits.ready_time))  # fmt: skip
        except Closed:
            record.fail(RunStatus.CRASHED, "exited_early",
                        protocol.ERR_EXITED.format(step=0, steps=timeline.n_steps))  # fmt: skip
        else:
            try:
                answers = drive(timeline, channel, record, limits=limits, started=t0)
            finally:
                channel.close()
            if answers is not None and not exited.wait(limits.exit_time):
                record.fail(RunStatus.TIMED_OUT, "no_exit",
                            protocol.ERR_NO_EXIT.format(limit=limits.exit_time))  # fmt: skip
        if not exited.is_set():
            with contextlib.suppress(docker.errors.APIError):
                client.api.kill(container_id)
            exited.wait(_EXIT_GRACE)
        final = client.api.inspect_container(container_id)["State"]
        keep_log_tail(client, container_id, result, limits)
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        result.message = MSG_ENGINE.format(detail=exc)
        final = None
    finally:
        listener.close()
        if container_id is not None:
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                remove_container(client, container_id)
        shutil.rmtree(sock_dir, ignore_errors=True)
    if final is not None:
        _finish(record, result, final, answers, timeline, work_dir, limits)
        note_exec_failure(result, record)
    note_process_limit(result, limits)
    result.wall_time = record.wall_time = time.monotonic() - started
    result.stream = record.summary()
    return result


def _finish(
    record: StreamRecord,
    result: RunResult,
    state: dict[str, Any],
    answers: Any,
    timeline: Timeline,
    work_dir: Path,
    limits: Limits,
) -> None:
    code = int(state.get("ExitCode", -1))
    result.exit_code = record.exit_code = code
    result.oom_killed = bool(state.get("OOMKilled"))
    result.duration = engine_seconds(state)
    if record.reason in ("exited_early", "stalled") and result.oom_killed:
        record.status, record.reason = RunStatus.OUT_OF_MEMORY, "out_of_memory"
        record.message = protocol.ERR_OOM.format(
            limit=format_bytes(limits.memory_bytes), step=record.steps_done
        )
    elif record.reason == "exited_early" and code == 0:
        record.status = RunStatus.PROTOCOL_ERROR
    elif record.reason == "exited_early":
        record.message += f"; exit code {code}, the end of its log shows why"
    elif answers is not None and record.reason is None and code != 0:
        record.fail(RunStatus.CRASHED, "exit_code", protocol.ERR_EXIT_CODE.format(code=code))
    if record.reason is None and answers is not None:
        dest = work_dir / f"predictions-{timeline.scenario}.csv"
        result.output_path = record.output_path = write_predictions(timeline, answers, dest)
        result.output_bytes = record.output_bytes = dest.stat().st_size
        record.status = RunStatus.SUCCEEDED
        record.message = (
            f"the model answered {record.steps_done} steps ({record.units_answered} units) "
            f"through the gateway"
        )
    result.status, result.message = record.status, record.message
