"""Running a submitted image once per scenario, contained, and saying what happened.

Each run: no network, read-only root filesystem, an unprivileged user with no capabilities
and no privilege escalation, bounded memory (no swap), CPU, processes, wall time, /tmp,
/output and log; ``/input`` mounted read-only. Whatever happens, the container is removed
and the image too once the submission's runs are over.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.types import DeviceRequest, LogConfig, Ulimit

from benchmark_data.benchmark import Benchmark
from benchmark_data.tasks import DEFAULT_SCENARIO, Task
from leaderboard.containers.archive import (
    ImageArchiveError,
    ImageInfo,
    engine_architecture,
    inspect_image_archive,
)
from leaderboard.containers.cgroups import note_process_limit, watch_process_limit
from leaderboard.containers.engine import (
    EngineError,
    get_client,
    load_image,
    new_run_id,
    remove_container,
    remove_image,
)
from leaderboard.containers.hardening import (
    EngineUnfit,
    check_engine,
    host_options,
    note_exec_failure,
)
from leaderboard.containers.inputs import prepare_inputs
from leaderboard.containers.limits import (
    DEFAULT_LIMITS,
    LABEL_DEADLINE,
    LABEL_RUN,
    LABEL_SCENARIO,
    LABEL_TASK,
    Limits,
)
from leaderboard.containers.output_volume import OutputReport, OutputVolume, OutputVolumeError
from leaderboard.containers.results import (
    MSG_ENGINE,
    MSG_NOT_STARTED,
    MSG_SKIPPED,
    LogTail,
    RunResult,
    RunStatus,
    SubmissionRun,
    classify,
)

_EXIT_GRACE = 30.0  # seconds to wait for a killed container to be reported as stopped

# Scenarios a container is run in. `natural` has the same inputs as `paired` (every test
# unit, every image the data has), so the scorer takes both from the paired run.
CONTAINER_SCENARIOS: tuple[str, ...] = (
    DEFAULT_SCENARIO,
    "cxr_missing_25",
    "cxr_missing_50",
    "cxr_missing_75",
    "cxr_missing_100",
)

ERR_BATCH_GATEWAY_ONLY = (
    "{task} is scored on every test unit, whose inputs only the streaming gateway may "
    "reveal (its public test files list no units): run it with mode='stream'"
)


def _environment(info: ImageInfo, task: str, scenario: str, limits: Limits) -> dict[str, str]:
    env = {
        "MEDMOD_TASK": task,
        "MEDMOD_SCENARIO": scenario,
        "MEDMOD_INPUT": "/input",
        "MEDMOD_OUTPUT": "/output",
        "TMPDIR": "/tmp",
    }
    declared = info.env_names()
    if "HOME" not in declared:
        env["HOME"] = "/tmp"
    threads = str(max(1, math.ceil(limits.cpus)))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if name not in declared:
            env[name] = threads
    return env


def _host_config(
    client: docker.DockerClient,
    info: ImageInfo | None,
    input_dir: Path | None,
    output_dir: Path | None,
    limits: Limits,
    *,
    binds: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The containment of a run. ``binds`` replaces the ``/input`` and ``/output`` mounts
    (a streamed run mounts only the gateway's socket directory)."""
    scratch = f"rw,nosuid,nodev,size={limits.tmp_bytes},mode=1777"
    tmpfs = {"/tmp": scratch}
    for volume in info.volumes if info else ():  # declared VOLUMEs: scratch, never a disk
        if volume.rstrip("/") not in ("/input", "/output", "/tmp", "/gateway"):
            tmpfs[volume] = scratch
    largest_file = max(limits.output_bytes, limits.tmp_bytes, limits.shm_bytes) + 1
    if binds is None:
        binds = {
            str(input_dir): {"bind": "/input", "mode": "ro"},
            str(output_dir): {"bind": "/output", "mode": "rw"},
        }
    return client.api.create_host_config(
        binds=binds,
        tmpfs=tmpfs,
        network_mode="none",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=limits.memory_bytes,
        memswap_limit=limits.memory_bytes,
        nano_cpus=int(limits.cpus * 1e9),
        pids_limit=limits.pids,
        shm_size=limits.shm_bytes,
        ipc_mode="private",
        ulimits=[
            Ulimit(name="core", soft=0, hard=0),
            Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
            Ulimit(name="fsize", soft=largest_file, hard=largest_file),
        ],
        log_config=LogConfig(
            type="json-file",
            config={"max-size": str(max(1024 * 1024, limits.log_file_bytes // 2)), "max-file": "2"},
        ),
        privileged=False,
        auto_remove=False,
        device_requests=gpu_requests(limits),
        **host_options(client, limits),  # init, cpuset, I/O limits, runtime
    )


def gpu_requests(limits: Limits) -> list[DeviceRequest] | None:
    """The engine's device requests for the run's GPUs (HostConfig.DeviceRequests): the
    devices ``gpu_devices`` names, else any ``gpus`` of them; None without GPUs."""
    if limits.gpus <= 0:
        return None
    if limits.gpu_devices:
        return [DeviceRequest(device_ids=list(limits.gpu_devices), capabilities=[["gpu"]])]
    return [DeviceRequest(count=limits.gpus, capabilities=[["gpu"]])]


def _read_log_tail(client: docker.DockerClient, container_id: str, size: int) -> LogTail:
    tail = LogTail(size)
    try:
        chunks = client.api.logs(container_id, stdout=True, stderr=True, stream=True, follow=False)
        for chunk in chunks:
            tail.add(chunk)
    except (docker.errors.APIError, requests.exceptions.RequestException):
        pass
    return tail


def run_labels(run_id: str, task: str, scenario: str, limits: Limits) -> dict[str, str]:
    """The labels of a run's containers: its id, task, scenario and the time (epoch
    seconds) past which it is overdue."""
    return {
        LABEL_RUN: run_id,
        LABEL_TASK: task,
        LABEL_SCENARIO: scenario,
        LABEL_DEADLINE: str(int(time.time() + limits.wall_time + limits.deadline_grace)),
    }


def create_model_container(
    client: docker.DockerClient,
    tag: str,
    info: ImageInfo | None,
    limits: Limits,
    *,
    run_id: str,
    scenario: str,
    user: str,
    environment: dict[str, str],
    labels: dict[str, str],
    binds: dict[str, dict[str, str]],
    command: list[str] | None = None,
) -> str:
    """Create (not start) the model's container of a run's scenario, contained as
    :func:`_host_config` says with ``binds`` as its only mounts; returns its id. ``command``
    replaces the image's CMD (the platform's own probes; a submission runs its own)."""
    container = client.api.create_container(
        image=tag,
        command=command,
        name=f"medmod-{run_id}-{scenario}",
        user=user,
        environment=environment,
        labels=labels,
        network_disabled=True,
        host_config=_host_config(client, info, None, None, limits, binds=binds),
    )
    return container["Id"]


def keep_log_tail(
    client: docker.DockerClient, container_id: str, result: RunResult, limits: Limits
) -> None:
    """The end of the container's log (``log_tail_bytes`` at most) and its size, on
    ``result``."""
    tail = _read_log_tail(client, container_id, limits.log_tail_bytes)
    result.log_tail, result.log_bytes = tail.text(), tail.total
    result.log_truncated = tail.total > limits.log_tail_bytes


def _image_fault(exc: docker.errors.APIError) -> bool:
    """Whether a failed start is the image's doing: the runtime could not exec its
    entrypoint (missing, not executable, wrong format) or set up its working directory."""
    return exc.is_client_error() and "OCI runtime" in str(exc.explanation or "")


def _runtime_detail(exc: docker.errors.APIError) -> str:
    text = str(exc.explanation or exc)
    marker = "unable to start container process: "
    return text.split(marker, 1)[-1].removesuffix(": unknown") if marker in text else text


def _run_loaded(
    client: docker.DockerClient,
    tag: str,
    info: ImageInfo,
    *,
    task: str,
    scenario: str,
    input_dir: Path,
    work_dir: Path,
    limits: Limits,
    run_id: str,
    spec: Task | None = None,
) -> RunResult:
    """Run a loaded image once; the container is gone when this returns. ``spec``: the task
    as its benchmark's suite declares it (else the MedMod task named ``task``)."""
    started = time.monotonic()
    result = RunResult(
        status=RunStatus.ENGINE_ERROR, task=task, scenario=scenario, run_id=run_id, message="",
        spec=spec,
    )  # fmt: skip
    try:
        user = limits.run_user()
    except ValueError as exc:  # a misconfigured user: the platform's fault
        result.message = MSG_ENGINE.format(detail=exc)
        return result
    labels = run_labels(run_id, task, scenario, limits)
    ended: _Ended | None = None
    try:
        with OutputVolume(client, name=f"medmod-{run_id}-{scenario}", limits=limits, user=user,
                          labels=labels) as out:  # fmt: skip
            ended = _run_in_volume(
                client, tag, info, out, result, task=task, input_dir=input_dir,
                work_dir=work_dir, limits=limits, user=user, labels=labels,
            )  # fmt: skip
    except (docker.errors.APIError, requests.exceptions.RequestException, OutputVolumeError) as exc:
        result.message = MSG_ENGINE.format(detail=exc)
        ended = _Ended(None, ended.output if ended else None, None)
    if ended is not None and ended.state is not None and ended.output is not None:
        classify(result, ended.state, ended.killed_for, ended.output, work_dir, limits)
    elif ended is not None and ended.output is not None and ended.output.predictions is not None:
        ended.output.predictions.unlink(missing_ok=True)
    note_exec_failure(result)
    note_process_limit(result, limits)
    result.wall_time = time.monotonic() - started
    return result


@dataclass(frozen=True)
class _Ended:
    """How a container ended: its final state, what it left in /output, and why the
    platform stopped it (None: it exited by itself)."""

    state: dict[str, Any] | None
    output: OutputReport | None
    killed_for: RunStatus | None


def _run_in_volume(
    client: docker.DockerClient,
    tag: str,
    info: ImageInfo,
    out: OutputVolume,
    result: RunResult,
    *,
    task: str,
    input_dir: Path,
    work_dir: Path,
    limits: Limits,
    user: str,
    labels: dict[str, str],
) -> _Ended | None:
    """Create, start and watch the container with /input read-only and ``out`` as /output,
    then read what it wrote. None when the image could not start (``result`` says why).
    Engine errors are raised; the container is removed in any case (on an engine failure it
    is left to ``cleanup_stale``)."""
    scenario, run_id = result.scenario, result.run_id
    container_id: str | None = None
    try:
        container_id = result.container_id = create_model_container(
            client, tag, info, limits, run_id=run_id, scenario=scenario, user=user,
            environment=_environment(info, task, scenario, limits), labels=labels,
            binds={str(input_dir): {"bind": "/input", "mode": "ro"}, **out.binds},
        )  # fmt: skip
        watch = start_and_watch(client, container_id, result, run_id=run_id)
        if watch is None:
            return None
        exited, waited = watch
        killed_for = _wait_or_stop(client, container_id, exited, out, limits)
        if "error" in waited:
            raise waited["error"]
        state = client.api.inspect_container(container_id)["State"]
        keep_log_tail(client, container_id, result, limits)
        if killed_for == RunStatus.TIMED_OUT:
            return _Ended(state, OutputReport(), killed_for)
        return _Ended(state, out.read_out(work_dir / f".predictions-{scenario}.part"), killed_for)
    finally:
        if container_id is not None:
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                remove_container(client, container_id)


def _wait_or_stop(
    client: docker.DockerClient,
    container_id: str,
    exited: threading.Event,
    out: OutputVolume,
    limits: Limits,
) -> RunStatus | None:
    """Wait for the container to exit; kill it at its wall-time deadline, or as soon as its
    /output is full (the kernel already refuses its writes). Returns why it was killed."""
    deadline = time.monotonic() + limits.wall_time
    while not exited.wait(limits.poll_interval):
        if time.monotonic() > deadline:
            killed_for = RunStatus.TIMED_OUT
        elif out.full():
            killed_for = RunStatus.OUTPUT_TOO_LARGE
        else:
            continue
        with contextlib.suppress(docker.errors.APIError):  # it may have stopped meanwhile
            client.api.kill(container_id)
        exited.wait(_EXIT_GRACE)
        return killed_for
    return None


def _architecture(client: docker.DockerClient, limits: Limits) -> str | None:
    """The engine's architecture, once it is known to offer the containment (seccomp, the
    configured runtime): raises EngineError before any upload is loaded otherwise."""
    try:
        info = check_engine(client, runtime=limits.runtime)
    except EngineUnfit as exc:
        raise EngineError(str(exc)) from None
    return engine_architecture(str(info.get("Architecture", "")) or None)


def start_and_watch(
    client: docker.DockerClient, container_id: str, result: RunResult, *, run_id: str
) -> tuple[threading.Event, dict[str, Any]] | None:
    """Start a created container and watch for its exit in a thread: the event is set when
    it has exited (``waited["result"]``, or ``waited["error"]`` if the engine failed).
    None when the image cannot start (``result`` then says why, ``image_invalid``); other
    engine errors are raised."""
    exited = threading.Event()
    waited: dict[str, Any] = {}

    def wait() -> None:
        try:
            waited["result"] = client.api.wait(container_id, timeout=None)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            waited["error"] = exc
        finally:
            exited.set()

    try:
        client.api.start(container_id)
    except docker.errors.APIError as exc:
        if not _image_fault(exc):
            raise
        result.status = RunStatus.IMAGE_INVALID
        result.message = MSG_NOT_STARTED.format(detail=_runtime_detail(exc))
        return None
    threading.Thread(target=wait, name=f"wait-{run_id}", daemon=True).start()
    watch_process_limit(container_id, exited, 0.2)  # a fork bomb is told as the limit
    return exited, waited


def run_container(
    image_archive: str | os.PathLike[str],
    *,
    task: str,
    scenario: str,
    input_dir: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    limits: Limits = DEFAULT_LIMITS,
    client: docker.DockerClient | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Check, load and run an image archive once on a prepared ``/input`` tree.

    The prediction file ends up in ``work_dir/predictions-{scenario}.csv`` (``output_path``)
    when the run succeeds; validate it with the scoring engine. The image is removed
    afterwards. Never raises for anything the image does.
    """
    run_id = run_id or new_run_id()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    failed = RunResult(status=RunStatus.ENGINE_ERROR, task=task, scenario=scenario,
                       run_id=run_id, message="")  # fmt: skip
    try:
        client = client or get_client()
    except EngineError as exc:
        failed.message = MSG_ENGINE.format(detail=exc)
        return failed
    try:
        info = inspect_image_archive(
            Path(image_archive), limits=limits, architecture=_architecture(client, limits)
        )
        t0 = time.monotonic()
        tag = load_image(client, info, run_id)
        load_time = time.monotonic() - t0
    except ImageArchiveError as exc:
        failed.status, failed.message = RunStatus.IMAGE_INVALID, str(exc)
        return failed
    except EngineError as exc:
        failed.message = MSG_ENGINE.format(detail=exc)
        return failed
    try:
        result = _run_loaded(client, tag, info, task=task, scenario=scenario,
                             input_dir=Path(input_dir).resolve(), work_dir=work.resolve(),
                             limits=limits, run_id=run_id)  # fmt: skip
    finally:
        remove_image(client, tag)
    result.load_time = load_time
    return result


def run_all_scenarios(
    image_archive: str | os.PathLike[str],
    *,
    benchmark: Benchmark,
    task: str,
    work_dir: str | os.PathLike[str],
    scenarios: tuple[str, ...] = CONTAINER_SCENARIOS,
    limits: Limits = DEFAULT_LIMITS,
    client: docker.DockerClient | None = None,
    run_id: str | None = None,
    stop_on_failure: bool = True,
    mode: str = "batch",
) -> SubmissionRun:
    """Check and load an image once, then run it in every scenario of a task.

    ``mode="batch"``: inputs are built under ``work_dir/inputs/{scenario}`` and mounted at
    ``/input``. ``mode="stream"``: no ``/input``; the model is asked step by step through
    the gateway (needs the benchmark's whole test split, ``benchmark_data.sequestered``),
    and each result carries the gateway's record in ``stream``. Predictions land in
    ``work_dir/predictions-{scenario}.csv``; the caller removes ``work_dir``. With
    ``stop_on_failure`` the remaining scenarios are skipped after the first failed run
    (a crash in one scenario would most likely repeat in the others).
    """
    if mode not in ("batch", "stream"):
        raise ValueError(f"unknown mode {mode!r}; the modes are batch and stream")
    if mode == "batch" and benchmark.scored_on(task) == "all":
        raise ValueError(ERR_BATCH_GATEWAY_ONLY.format(task=task))
    run_id = run_id or new_run_id()
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    run = SubmissionRun(run_id=run_id, task=task, image=None)
    try:
        client = client or get_client()
        run.image = inspect_image_archive(
            Path(image_archive), limits=limits, architecture=_architecture(client, limits)
        )
        t0 = time.monotonic()
        tag = load_image(client, run.image, run_id)
        run.load_time = time.monotonic() - t0
    except ImageArchiveError as exc:
        run.status, run.message = RunStatus.IMAGE_INVALID, str(exc)
        return run
    except EngineError as exc:
        run.status, run.message = RunStatus.ENGINE_ERROR, MSG_ENGINE.format(detail=exc)
        return run
    try:
        first_inputs: Path | None = None
        failed_in: str | None = None
        for scenario in scenarios:
            if failed_in is not None and stop_on_failure:
                run.results[scenario] = RunResult(
                    status=RunStatus.SKIPPED, task=task, scenario=scenario, run_id=run_id,
                    message=MSG_SKIPPED.format(scenario=failed_in),
                )  # fmt: skip
                continue
            if mode == "stream":
                result = _run_streamed(client, tag, run.image, benchmark, task, scenario,
                                       work, limits, run_id)  # fmt: skip
            else:
                inputs = prepare_inputs(
                    benchmark, task, scenario, work / "inputs" / scenario, link_from=first_inputs
                )
                first_inputs = first_inputs or inputs
                result = _run_loaded(client, tag, run.image, task=task, scenario=scenario,
                                     input_dir=inputs, work_dir=work, limits=limits,
                                     run_id=run_id, spec=benchmark.task(task))  # fmt: skip
            run.results[scenario] = result
            if not result.ok and failed_in is None:
                failed_in = scenario
                run.status, run.message = result.status, f"{scenario}: {result.message}"
    finally:
        remove_image(client, tag)
    return run


def _run_streamed(
    client: docker.DockerClient,
    tag: str,
    info: ImageInfo,
    benchmark: Benchmark,
    task: str,
    scenario: str,
    work: Path,
    limits: Limits,
    run_id: str,
) -> RunResult:
    """One scenario through the streaming gateway (imported here: the gateway builds on
    this module's containment)."""
    from benchmark_data.sequestered import test_split
    from leaderboard.containers.gateway.container import run_loaded_stream
    from leaderboard.containers.gateway.timeline import build_timeline

    t0 = time.monotonic()
    timeline = build_timeline(test_split(benchmark), task, scenario)
    setup = time.monotonic() - t0
    result = run_loaded_stream(client, tag, info, timeline, work_dir=work, limits=limits,
                               run_id=run_id)  # fmt: skip
    if result.stream is not None:
        result.stream["setup_seconds"] = round(setup, 3)
    return result
