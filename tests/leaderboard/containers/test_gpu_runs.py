"""GPU runs on the Docker backend: the container the executor creates carries the engine's
device request for its GPU (read back with the engine's inspect, not mocked); this engine has
no GPU, so it refuses to start it, and the executor says so and removes it. A host that
offers no GPU refuses such a run before anything reaches the engine. Concurrent runs of one
host hold distinct GPUs."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import docker
import pytest

from leaderboard.containers import DEFAULT_LIMITS, LABEL_RUN, RunStatus, new_run_id
from leaderboard.containers.executor import (
    BACKENDS,
    DockerExecutor,
    GpuUnavailable,
    RunSpec,
    executor_for,
    gpu_slot,
)
from leaderboard.containers.output_volume import holder_image

LIMITS = DEFAULT_LIMITS.with_(memory_bytes=64 * 1024 * 1024, cpus=1.0, wall_time=10.0)


def _spec(engine: docker.DockerClient, **limits: object) -> RunSpec:
    run_id = new_run_id()
    return RunSpec(
        image=holder_image(engine), run_id=run_id, name="gpu-probe",
        limits=LIMITS.with_(**limits), command=("true",), labels={LABEL_RUN: run_id},
    )  # fmt: skip


def _inspect(engine: docker.DockerClient, container_id: str) -> dict:
    return engine.api.inspect_container(container_id)


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"gpus": 1}, {"Count": 1, "DeviceIDs": None}),
        ({"gpus": 1, "gpu_devices": ("0",)}, {"Count": 0, "DeviceIDs": ["0"]}),
    ],
)
def test_a_gpu_run_asks_the_engine_for_its_gpu_with_a_device_request(
    engine: docker.DockerClient, limits: dict, expected: dict
):
    """The created container's HostConfig.DeviceRequests asks for GPUs (capability gpu):
    any one, or the device the host's slot gave; the engine, which has no GPU, refuses to
    start it, and the refusal is a GpuUnavailable carrying the container to remove."""
    executor = DockerExecutor(gpus=1, client_factory=lambda: engine)
    spec = _spec(engine, **limits)
    with pytest.raises(GpuUnavailable) as refused:
        executor.start(spec)
    handle = refused.value.handle
    assert handle is not None
    try:
        host_config = _inspect(engine, handle.id)["HostConfig"]
        (request,) = host_config["DeviceRequests"]
        assert request["Capabilities"] == [["gpu"]]
        assert request["Count"] == expected["Count"]
        assert (request["DeviceIDs"] or None) == expected["DeviceIDs"]
        # The rest of the containment is there as for any run.
        assert host_config["NetworkMode"] == "none" and host_config["ReadonlyRootfs"]
        assert host_config["CapDrop"] == ["ALL"]
        assert "could not give the container its GPU" in str(refused.value)
    finally:
        executor.cleanup(handle)
    with pytest.raises(docker.errors.NotFound):
        _inspect(engine, handle.id)


def test_a_cpu_run_has_no_device_request_and_runs_through_the_interface(engine):
    """Without GPUs: no device request; start, wait until a deadline, logs, cleanup."""
    executor = DockerExecutor(client_factory=lambda: engine)
    spec = dataclasses.replace(_spec(engine), command=("sh", "-c", "echo hello from the run"))
    handle = executor.start(spec)
    try:
        assert not _inspect(engine, handle.id)["HostConfig"].get("DeviceRequests")
        ended = executor.wait(handle, deadline=time.monotonic() + 30)
        assert ended is not None and ended.exit_code == 0
        assert "hello from the run" in executor.logs(handle, max_bytes=1024)
    finally:
        executor.cleanup(handle)
    assert not engine.containers.list(all=True, filters={"label": f"{LABEL_RUN}={spec.run_id}"})


def test_a_run_past_its_deadline_is_stopped(engine):
    executor = DockerExecutor(client_factory=lambda: engine)
    spec = dataclasses.replace(_spec(engine), command=("sleep", "30"))
    handle = executor.start(spec)
    try:
        t0 = time.monotonic()
        assert executor.wait(handle, deadline=t0 + 0.5) is None
        executor.stop(handle)
        ended = executor.wait(handle, deadline=time.monotonic() + 20)
        assert ended is not None and ended.exit_code != 0
        assert time.monotonic() - t0 < 15
    finally:
        executor.cleanup(handle)


def test_a_host_without_gpus_refuses_a_gpu_run_before_the_engine(engine, tmp_path: Path):
    """No container, no image load: the run ends as an engine error that names the GPU
    queue, which the platform answers by sending it back to that queue."""
    executor = DockerExecutor(gpus=0, client_factory=lambda: engine)
    spec = _spec(engine, gpus=1)
    with pytest.raises(GpuUnavailable, match="offers 0 GPU"):
        executor.start(spec)
    assert not engine.containers.list(all=True, filters={"label": f"{LABEL_RUN}={spec.run_id}"})
    run = executor.run_submission(
        tmp_path / "never-read.tar", benchmark=None, task="in-hospital-mortality",  # type: ignore[arg-type]
        work_dir=tmp_path / "work", scenarios=("paired",), limits=LIMITS.with_(gpus=1),
        run_id=new_run_id(), mode="stream",
    )  # fmt: skip
    assert run.status == RunStatus.ENGINE_ERROR
    assert "offers 0 GPU(s) and the run needs 1" in run.message and "--gpus" in run.message
    assert executor.capabilities().gpus == 0


def test_concurrent_runs_of_a_host_hold_distinct_gpus(tmp_path: Path):
    """Two GPUs, three runs wanting one each: two hold GPU 0 and 1, the third waits until
    one is released and then takes it."""
    got: list[tuple[str, ...]] = []
    release = threading.Event()

    def run() -> None:
        with gpu_slot(2, 1, tmp_path, poll=0.05) as devices:
            got.append(devices)
            release.wait(5)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert sorted(got) == [("0",), ("1",)]
    release.set()
    for t in threads:
        t.join(10)
    assert len(got) == 3 and got[2] in (("0",), ("1",))


def test_the_executor_is_chosen_by_name():
    assert isinstance(executor_for("docker", gpus=2), DockerExecutor)
    assert executor_for("docker", gpus=2).capabilities().gpus == 2
    with pytest.raises(
        ValueError, match="unknown container executor 'k8s'; the executors are: docker"
    ):
        executor_for("k8s")
    assert list(BACKENDS) == ["docker"]
