"""docker/compose.yml runs the container track: every host path the worker hands the engine
to bind into a model's container exists at the same path on the engine's host.

The worker builds a run's files under CONTAINER_WORK_DIR and asks the engine (the host's,
through the socket) to bind paths under it; the engine resolves them on the host. So the
work directory must be a bind mount of the same host path at the same path in the worker.
The binds are taken from real runs here (batch and streamed), then placed under the work
directory the rendered compose configuration gives the worker."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path, PurePosixPath

import docker
import pytest
import yaml

from leaderboard.containers import DEFAULT_LIMITS, new_run_id, run_all_scenarios
from tests.leaderboard.containers.conftest import REPO, leftovers

pytestmark = pytest.mark.slow

COMPOSE = REPO / "docker" / "compose.yml"
ENV_EXAMPLE = REPO / "docker" / "env.example"


def rendered_compose() -> dict:
    """`docker-compose config` of the production file with the example settings."""
    assert shutil.which("docker-compose"), "docker-compose is not installed (bin/test installs it)"
    out = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def host_binds(service: dict) -> list[tuple[PurePosixPath, PurePosixPath]]:
    """(host path, path in the service) of each bind mount of a rendered service."""
    binds = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                binds.append((PurePosixPath(volume["source"]), PurePosixPath(volume["target"])))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith("/"):
            binds.append((PurePosixPath(source), PurePosixPath(target)))
    return binds


def on_host(path: PurePosixPath, binds: list[tuple[PurePosixPath, PurePosixPath]]) -> str | None:
    """The host path a path of the service is, through its bind mounts (None: the path is
    only in the service's own file system)."""
    best = None
    for source, target in binds:
        inside = path == target or target in path.parents
        if inside and (best is None or len(target.parts) > len(best[1].parts)):
            best = (source, target)
    if best is None:
        return None
    return str(best[0] / path.relative_to(best[1]))


class BindRecorder:
    """Records the host-path binds of every container of a run while it exists."""

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self.binds: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stop.is_set():
            for c in self.client.api.containers(all=True, filters={"name": self.run_id}):
                for mount in c.get("Mounts") or ():
                    if mount.get("Type") == "bind":
                        self.binds.add(mount["Source"])
            time.sleep(0.05)

    def close(self) -> set[str]:
        self.stop.set()
        self.thread.join(5)
        return self.binds


def test_every_bind_the_worker_hands_the_engine_is_the_same_path_on_the_host(
    hostile, tiny_bench, demo_bench, engine, tmp_path
):
    compose = rendered_compose()
    worker = compose["services"]["worker"]
    work_root = PurePosixPath(worker["environment"]["CONTAINER_WORK_DIR"])
    binds = host_binds(worker)

    # Real runs with a work directory standing for CONTAINER_WORK_DIR/e{evaluation}-{run}.
    local_root = tmp_path / "container-runs"
    seen: set[str] = set()
    for bench, archive, mode in ((tiny_bench, hostile.archive("constant"), "batch"),
                                 (demo_bench, hostile.archive("crash"), "stream")):  # fmt: skip
        run_id = new_run_id()
        recorder = BindRecorder(engine, run_id)
        try:
            run = run_all_scenarios(archive, benchmark=bench, task="in-hospital-mortality",
                                    work_dir=local_root / f"e1-{run_id}", scenarios=("paired",),
                                    limits=DEFAULT_LIMITS.with_(cpus=1.0, wall_time=60.0),
                                    client=engine, run_id=run_id, mode=mode)  # fmt: skip
        finally:
            seen |= recorder.close()
        assert run.results["paired"].container_id, run.summary()
        assert leftovers(engine, run_id) == []
    assert seen, "no bind mount was seen"
    assert any("/inputs/" in b for b in seen) and any("/gateway-" in b for b in seen), seen

    for source in sorted(seen):
        rel = Path(source).relative_to(local_root)  # every bind is under the work directory
        in_worker = work_root / rel.as_posix()
        assert on_host(in_worker, binds) == str(in_worker), (
            f"the worker would hand the engine {in_worker}, which is "
            + (f"{on_host(in_worker, binds)} on the host" if on_host(in_worker, binds)
               else "only in the worker's own file system")
        )  # fmt: skip


def test_the_deadline_watchdog_runs_beside_the_worker_with_the_engine_only():
    """The watchdog service needs the engine alone: the socket, no database or broker."""
    compose = rendered_compose()
    watchdog = compose["services"]["watchdog"]
    assert watchdog["command"][:4] == ["python", "-m", "leaderboard.containers", "watchdog"]
    assert "/var/run/docker.sock" in [str(t) for _, t in host_binds(watchdog)]
    assert "depends_on" not in watchdog and "profiles" not in watchdog
    assert watchdog["healthcheck"]["test"]
    assert not any(k.startswith(("DATABASE", "CELERY")) for k in watchdog.get("environment", {}))
