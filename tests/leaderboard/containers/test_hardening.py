"""Containment at the edges: an init process, a cpuset as wide as the CPU limit, a tight
process limit named when it is reached, I/O limits, the engine's seccomp and the configured
OCI runtime checked before an upload is loaded."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest

from leaderboard.containers import (
    DEFAULT_LIMITS,
    LABEL_RUN,
    Limits,
    RunResult,
    RunStatus,
    new_run_id,
    run_container,
)
from leaderboard.containers.hardening import LABEL_PROBE, EngineUnfit, engine_info, prove_runtime
from leaderboard.containers.limits import MiB
from tests.leaderboard.containers.conftest import leftovers, run_model
from tests.leaderboard.containers.hostile import HostileImages

pytestmark = pytest.mark.slow

LIMITS = DEFAULT_LIMITS.with_(memory_bytes=256 * MiB, cpus=1.0, wall_time=30.0,
                              tmp_bytes=32 * MiB, output_bytes=8 * MiB)  # fmt: skip


class HostConfigs:
    """Records the engine's HostConfig of a run's model container while it exists."""

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        self.client, self.name = client, f"medmod-{run_id}-paired"
        self.seen: dict | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stop.is_set() and self.seen is None:
            try:
                self.seen = self.client.api.inspect_container(self.name)["HostConfig"]
            except docker.errors.NotFound:
                time.sleep(0.05)

    def __enter__(self) -> HostConfigs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def run(
    name: str, hostile: HostileImages, engine, inputs: Path, tmp_path: Path, limits: Limits
) -> tuple[RunResult, dict | None]:
    run_id = new_run_id()
    with HostConfigs(engine, run_id) as seen:
        result = run_model(name, hostile, engine, inputs, tmp_path, limits, run_id)
    return result, seen.seen


def test_a_fork_bomb_is_reported_as_the_process_limit(hostile, engine, inputs, tmp_path):
    """A model that forks without end is told it reached the process limit, with the
    limit's value and how many forks the kernel refused, not only that it timed out."""
    limits = LIMITS.with_(pids=64, wall_time=5.0)
    r, _ = run("fork_bomb", hostile, engine, inputs, tmp_path, limits)
    assert r.status in (RunStatus.TIMED_OUT, RunStatus.CRASHED), (r.message, r.log_tail)
    assert r.message.startswith("the model reached the limit of 64 processes and threads"), (
        r.message
    )
    assert "forks or new threads" in r.message
    if r.status == RunStatus.TIMED_OUT:
        assert "wall-time limit of 5 s" in r.message


def test_a_model_runs_under_init_pinned_to_as_many_cpus_as_its_limit(
    hostile, engine, inputs, tmp_path
):
    """`--init`: the model is not process 1; the cpuset holds ceil(CPU limit) CPUs, so the
    model's affinity (what `nproc` reports) is the limit; the default process limit is 128."""
    assert DEFAULT_LIMITS.pids == 128
    r, host = run("introspect", hostile, engine, inputs, tmp_path, LIMITS)
    assert r.status == RunStatus.CRASHED and r.exit_code == 5, (r.message, r.log_tail)
    assert "affinity 1 " in r.log_tail, r.log_tail
    assert "pid1 docker-init" in r.log_tail
    assert host is not None and host["Init"] is True
    assert host["PidsLimit"] == 128 and host["NanoCpus"] == 1_000_000_000
    n_cpus = engine_info(engine)["NCPU"]
    assert len(host["CpusetCpus"].split(",")) == 1 and int(host["CpusetCpus"]) < n_cpus
    if "pids.max" in r.log_tail:
        assert "pids.max 128" in r.log_tail


def test_io_limits_reach_the_engine(hostile, engine, inputs, tmp_path):
    """Bytes and operations per second on the engine's disk, read and write, reach the
    container's HostConfig and (cgroup v1) its blkio throttle files; the I/O weight too,
    where the kernel supports weights."""
    root = Path(engine_info(engine)["DockerRootDir"])
    device = next(
        (line.split()[0] for line in Path("/proc/mounts").read_text().splitlines()
         if line.split()[1] == str(root) or str(root).startswith(line.split()[1] + "/")
         and line.split()[0].startswith("/dev/")),
        None,
    )  # fmt: skip
    device = device if device and device.startswith("/dev/") else "/dev/null"
    limits = LIMITS.with_(io_weight=200, io_device=device, io_bps=50 * MiB, io_iops=1000)
    r, host = run("introspect", hostile, engine, inputs, tmp_path, limits)
    assert r.exit_code == 5, (r.message, r.log_tail)
    # The engine keeps the weight only where the kernel has weights (BFQ, blkio.weight);
    # elsewhere it discards it with a warning, as on this machine's cgroup v1 kernel.
    weights = any(Path("/sys/fs/cgroup/blkio", f).exists()
                  for f in ("blkio.weight", "blkio.bfq.weight"))  # fmt: skip
    assert host is not None and host["BlkioWeight"] == (200 if weights else 0)
    assert host["BlkioDeviceWriteBps"] == [{"Path": device, "Rate": 50 * MiB}]
    assert host["BlkioDeviceReadIOps"] == [{"Path": device, "Rate": 1000}]
    if "write_bps_device" in r.log_tail:
        assert str(50 * MiB) in r.log_tail


def test_the_configured_runtime_runs_the_model(hostile, engine, inputs, tmp_path):
    """Limits.runtime (CONTAINER_RUNTIME) names the OCI runtime of the model's container:
    each runtime the engine has registered among runc, crun and runsc runs it, or, when it
    cannot start a container on this host (crun on a host whose cgroup v2 hierarchy holds
    a controller beside v1's), every run is refused before the image is loaded, with the
    engine's reason, and nothing is left behind."""
    known = set(engine_info(engine)["Runtimes"]) & {"runc", "crun", "runsc"}
    assert "runc" in known
    if Path("/usr/bin/crun").exists():  # bin/test installs it before the engine starts
        assert "crun" in known, (
            "crun is installed but the engine has not registered it: restart the engine "
            "with scripts/docker-engine.sh"
        )
    for runtime in sorted(known):
        try:
            prove_runtime(engine, runtime)
        except EngineUnfit as exc:
            assert runtime != "runc", exc
            run_id = new_run_id()
            r = run_container(hostile.archive("introspect"), task="in-hospital-mortality",
                              scenario="paired", input_dir=inputs,
                              work_dir=tmp_path / runtime, client=engine,
                              limits=LIMITS.with_(runtime=runtime), run_id=run_id)  # fmt: skip
            assert r.status == RunStatus.ENGINE_ERROR and r.container_id is None
            assert f"OCI runtime {runtime!r} is registered but cannot start" in r.message
            assert "CONTAINER_RUNTIME" in r.message
            assert leftovers(engine, run_id) == []
            assert not engine.containers.list(all=True, filters={"label": LABEL_PROBE})
            continue
        r, host = run("introspect", hostile, engine, inputs, tmp_path / runtime,
                      LIMITS.with_(runtime=runtime))  # fmt: skip
        assert r.exit_code == 5, (runtime, r.message, r.log_tail)
        assert host is not None and host["Runtime"] == runtime


def test_an_unknown_runtime_is_refused_before_the_image_is_loaded(hostile, engine, tmp_path):
    """A runtime the engine does not have ends the run at once as a platform problem that
    names the runtime, the ones the engine has and the setting to change."""
    archive = hostile.archive("sleeper")
    run_id = new_run_id()
    t0 = time.monotonic()
    r = run_container(archive, task="in-hospital-mortality", scenario="paired",
                      input_dir=tmp_path, work_dir=tmp_path / "work", client=engine,
                      limits=LIMITS.with_(runtime="runsc-missing"), run_id=run_id)  # fmt: skip
    assert r.status == RunStatus.ENGINE_ERROR
    assert "no OCI runtime named 'runsc-missing'" in r.message
    assert "runc" in r.message and "CONTAINER_RUNTIME" in r.message
    assert time.monotonic() - t0 < 5
    assert leftovers(engine, run_id) == []
    assert not engine.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})


class _EngineWithoutSeccomp(BaseHTTPRequestHandler):
    """The API of an engine started with seccomp off: it answers the ping, the version and
    the info (without seccomp in its security options), and records every request."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.requests.append(self.path)
        path = self.path.split("?")[0].rsplit("/", 1)[-1]
        body = {
            "_ping": "OK",
            "version": {"ApiVersion": "1.41", "Version": "20.10.24"},
            "info": {"SecurityOptions": ["name=apparmor"], "Runtimes": {"runc": {}},
                     "Architecture": "x86_64", "NCPU": 2},
        }.get(path)  # fmt: skip
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


def test_an_engine_without_seccomp_is_refused(hostile, tmp_path):
    """The runner asks the engine for its security options before anything else: on an
    engine without seccomp no image is loaded and no container created."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EngineWithoutSeccomp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.server_port}",
                                     version="1.41")  # fmt: skip
        r = run_container(hostile.archive("constant"), task="in-hospital-mortality",
                          scenario="paired", input_dir=tmp_path, work_dir=tmp_path / "work",
                          client=client)  # fmt: skip
    finally:
        server.shutdown()
    assert r.status == RunStatus.ENGINE_ERROR
    assert "runs without seccomp" in r.message and "name=apparmor" in r.message
    assert all(p.split("?")[0].endswith("/info") for p in _EngineWithoutSeccomp.requests), (
        _EngineWithoutSeccomp.requests
    )
