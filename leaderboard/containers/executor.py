"""Executors: where a submission's container runs. One interface, several possible backends.

The platform's services ask an :class:`Executor` for everything a container run needs:
what the backend offers (:class:`Capabilities`: its GPUs), the whole run of a submitted
image in every scenario (:meth:`Executor.run_submission`), and the removal of what runs of
dead workers left behind (:meth:`Executor.reap`). Underneath, one model run is the same few
steps on any backend, and the interface names them: :meth:`~Executor.start` a run with its
limits, :meth:`~Executor.wait` for it until a deadline, read its :meth:`~Executor.logs`,
:meth:`~Executor.stop` it, and :meth:`~Executor.cleanup` after it.

:class:`DockerExecutor` is the backend that runs here: the worker host's own Docker engine
(``DOCKER_HOST``), with the containment of ``leaderboard.containers.runner``. A run that needs
GPUs is given them as the engine's device requests; concurrent runs of one host take distinct
GPUs (:func:`gpu_slot`). A Kubernetes Job or a cloud batch backend is another class with the
same methods, added to :data:`BACKENDS` (docs/containers.md says what each part maps to);
the services do not change. Settings pick the backend (``CONTAINER_EXECUTOR``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests

from benchmark_data.benchmark import Benchmark
from leaderboard.containers.archive import ImageInfo
from leaderboard.containers.engine import (
    CleanupReport,
    EngineError,
    cleanup_stale,
    get_client,
    remove_container,
    remove_overdue,
)
from leaderboard.containers.limits import DEFAULT_LIMITS, Limits
from leaderboard.containers.results import MSG_ENGINE, LogTail, RunStatus, SubmissionRun

ERR_NO_GPU = (
    "this worker host offers {have} GPU(s) and the run needs {need}: it is sent back to the "
    "queue of GPU runs, for a host started with --gpus"
)
ERR_GPU_REFUSED = "the engine could not give the container its GPU(s) ({detail})"
ERR_BACKEND = "unknown container executor {name!r}; the executors are: {known}"


class GpuUnavailable(EngineError):
    """The run needs GPUs this host or its engine cannot give; another host may."""

    def __init__(self, message: str, handle: RunHandle | None = None) -> None:
        super().__init__(message)
        self.handle = handle


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers a run."""

    backend: str
    gpus: int = 0


@dataclass(frozen=True)
class RunSpec:
    """One model run: the image (as the backend knows it), its limits and its mounts.

    ``mounts`` maps a path the backend can reach to ``(path in the container, mode)``, the
    mode ``ro`` or ``rw``; ``/input`` is always read-only."""

    image: str
    run_id: str
    name: str
    limits: Limits = DEFAULT_LIMITS
    command: tuple[str, ...] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, tuple[str, str]] = field(default_factory=dict)
    image_info: ImageInfo | None = None


@dataclass
class RunHandle:
    """A started run, as its backend names it."""

    backend: str
    id: str
    spec: RunSpec
    started: float = 0.0


@dataclass(frozen=True)
class RunExit:
    """How a run ended: its exit code, and whether the platform stopped it."""

    exit_code: int | None
    oom_killed: bool = False
    stopped: bool = False


class Executor(Protocol):
    """The interface every backend of container runs implements."""

    name: str

    def capabilities(self) -> Capabilities: ...

    def run_submission(
        self,
        image_archive: str | os.PathLike[str],
        *,
        benchmark: Benchmark,
        task: str,
        work_dir: str | os.PathLike[str],
        scenarios: tuple[str, ...],
        limits: Limits,
        run_id: str,
        mode: str,
    ) -> SubmissionRun: ...

    def start(self, spec: RunSpec) -> RunHandle: ...

    def wait(self, handle: RunHandle, *, deadline: float) -> RunExit | None: ...

    def logs(self, handle: RunHandle, *, max_bytes: int) -> str: ...

    def stop(self, handle: RunHandle) -> None: ...

    def cleanup(self, handle: RunHandle) -> None: ...

    def reap(
        self, *, run_ids: Collection[str] = (), max_age: timedelta | None = None
    ) -> CleanupReport: ...


# GPUs of one host, shared by its worker processes -------------------------------------------
@contextlib.contextmanager
def gpu_slot(
    n_gpus: int, want: int, lock_dir: Path, *, poll: float = 1.0
) -> Iterator[tuple[str, ...]]:
    """Hold ``want`` of the host's ``n_gpus`` GPUs (their device ids) for a block: a lock
    file per GPU under ``lock_dir``, so that the worker processes of a host, each running one
    model, never share a GPU. Waits while all are taken."""
    if want <= 0:
        yield ()
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    held: list[tuple[str, Any]] = []
    try:
        while len(held) < want:
            for i in range(n_gpus):
                if len(held) == want or any(d == str(i) for d, _ in held):
                    continue
                f = (lock_dir / f"gpu-{i}.lock").open("w")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    f.close()
                    continue
                held.append((str(i), f))
            if len(held) < want:
                time.sleep(poll)
        yield tuple(d for d, _ in held)
    finally:
        for _, f in held:
            f.close()  # closing the file releases its lock


# The Docker backend --------------------------------------------------------------------------
class DockerExecutor:
    """Runs on the worker host's Docker engine (``DOCKER_HOST``). ``gpus``: the GPUs the host
    offers its runs (bin/worker --gpus); ``lock_dir``: where the GPUs' lock files live."""

    name = "docker"

    def __init__(
        self,
        *,
        gpus: int = 0,
        lock_dir: str | os.PathLike[str] | None = None,
        client_factory: Callable[[], docker.DockerClient] = get_client,
    ) -> None:
        self.gpus = max(0, int(gpus))
        self.lock_dir = Path(lock_dir) if lock_dir else Path(".gpu-slots")
        self._client_factory = client_factory
        self._client: docker.DockerClient | None = None
        self._exited: dict[str, tuple[threading.Event, dict[str, Any]]] = {}

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def capabilities(self) -> Capabilities:
        return Capabilities(backend=self.name, gpus=self.gpus)

    def run_submission(
        self,
        image_archive: str | os.PathLike[str],
        *,
        benchmark: Benchmark,
        task: str,
        work_dir: str | os.PathLike[str],
        scenarios: tuple[str, ...],
        limits: Limits,
        run_id: str,
        mode: str,
    ) -> SubmissionRun:
        """Check, load and run the image in every scenario (``runner.run_all_scenarios``),
        holding the GPUs it needs. A run needing more GPUs than the host has ends as an
        engine error (``GpuUnavailable``'s message): the platform sends it back to the
        queue, where a GPU host takes it."""
        from leaderboard.containers.runner import run_all_scenarios

        if limits.gpus > self.gpus:
            run = SubmissionRun(run_id=run_id, task=task, image=None)
            run.status = RunStatus.ENGINE_ERROR
            run.message = MSG_ENGINE.format(detail=ERR_NO_GPU.format(have=self.gpus,
                                                                     need=limits.gpus))  # fmt: skip
            return run
        try:
            client = self.client
        except EngineError as exc:
            run = SubmissionRun(run_id=run_id, task=task, image=None)
            run.status, run.message = RunStatus.ENGINE_ERROR, MSG_ENGINE.format(detail=exc)
            return run
        with gpu_slot(self.gpus, limits.gpus, self.lock_dir) as devices:
            return run_all_scenarios(
                image_archive, benchmark=benchmark, task=task, work_dir=work_dir,
                scenarios=scenarios, limits=limits.with_(gpu_devices=devices), client=client,
                run_id=run_id, mode=mode,
            )  # fmt: skip

    def start(self, spec: RunSpec) -> RunHandle:
        """Create the container with the runner's containment and the spec's limits, then
        start it. A GPU the engine cannot give raises :class:`GpuUnavailable` carrying the
        handle of the created container (clean it up)."""
        from leaderboard.containers.runner import create_model_container

        if spec.limits.gpus > self.gpus:
            raise GpuUnavailable(ERR_NO_GPU.format(have=self.gpus, need=spec.limits.gpus))
        user = spec.limits.run_user()
        binds = {src: {"bind": dst, "mode": "ro" if dst == "/input" else mode}
                 for src, (dst, mode) in spec.mounts.items()}  # fmt: skip
        container_id = create_model_container(
            self.client, spec.image, spec.image_info, spec.limits, run_id=spec.run_id, scenario=spec.name,
            user=user, environment=dict(spec.environment), labels=dict(spec.labels),
            binds=binds, command=list(spec.command) if spec.command else None,
        )  # fmt: skip
        handle = RunHandle(backend=self.name, id=container_id, spec=spec)
        try:
            self.client.api.start(container_id)
        except docker.errors.APIError as exc:
            if spec.limits.gpus and _gpu_refusal(exc):
                raise GpuUnavailable(
                    ERR_GPU_REFUSED.format(detail=exc.explanation or exc), handle
                ) from None
            self.cleanup(handle)
            raise EngineError(MSG_ENGINE.format(detail=exc.explanation or exc)) from None
        handle.started = time.monotonic()
        exited, waited = threading.Event(), {}

        def wait() -> None:
            try:
                waited["result"] = self.client.api.wait(container_id, timeout=None)
            except Exception as exc:  # noqa: BLE001 - reported by wait()
                waited["error"] = exc
            finally:
                exited.set()

        threading.Thread(target=wait, name=f"wait-{spec.run_id}", daemon=True).start()
        self._exited[container_id] = (exited, waited)
        return handle

    def wait(self, handle: RunHandle, *, deadline: float) -> RunExit | None:
        """Wait for the run to exit until ``deadline`` (``time.monotonic()`` seconds); None
        when it is still running then."""
        exited, _ = self._exited.get(handle.id, (None, {}))
        if exited is not None and not exited.wait(max(0.0, deadline - time.monotonic())):
            return None
        state = self.client.api.inspect_container(handle.id)["State"]
        if state.get("Running"):
            return None
        return RunExit(exit_code=state.get("ExitCode"), oom_killed=bool(state.get("OOMKilled")))

    def logs(self, handle: RunHandle, *, max_bytes: int) -> str:
        """The last ``max_bytes`` of the run's output (stdout and stderr)."""
        tail = LogTail(max_bytes)
        with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
            for chunk in self.client.api.logs(handle.id, stdout=True, stderr=True, stream=True,
                                              follow=False):  # fmt: skip
                tail.add(chunk)
        return tail.text()

    def stop(self, handle: RunHandle) -> None:
        with contextlib.suppress(docker.errors.APIError):  # it may have exited meanwhile
            self.client.api.kill(handle.id)

    def cleanup(self, handle: RunHandle) -> None:
        self._exited.pop(handle.id, None)
        with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
            remove_container(self.client, handle.id)

    def reap(
        self, *, run_ids: Collection[str] = (), max_age: timedelta | None = None
    ) -> CleanupReport:
        """Remove the given runs' leftovers, every run's container past its deadline, and
        with ``max_age`` any run's leftovers older than it."""
        report = CleanupReport()
        for part in (
            cleanup_stale(0, client=self.client, run_ids=list(run_ids)) if run_ids else None,
            cleanup_stale(max_age, client=self.client) if max_age is not None
            else remove_overdue(client=self.client),
        ):  # fmt: skip
            if part is None:
                continue
            report.containers += part.containers
            report.images += part.images
            report.volumes += part.volumes
            report.overdue += part.overdue
            report.errors += part.errors
        return report


def _gpu_refusal(exc: docker.errors.APIError) -> bool:
    text = str(exc.explanation or exc)
    return "device driver" in text or "gpu" in text.lower()


BACKENDS: dict[str, type[DockerExecutor]] = {"docker": DockerExecutor}


def executor_for(name: str, **options: Any) -> Executor:
    """The backend named ``name`` (``CONTAINER_EXECUTOR``) with its options."""
    try:
        backend = BACKENDS[name]
    except KeyError:
        raise ValueError(ERR_BACKEND.format(name=name, known=", ".join(BACKENDS))) from None
    return backend(**options)
