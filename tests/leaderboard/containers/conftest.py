"""Fixtures of the container tests: a real Docker engine, the template model image built
here from Debian packages, hostile images, and a small benchmark.

The engine is started by scripts/docker-engine.sh; if it cannot start, every test here
fails (never skips): the containment is only worth what the tests against the real engine
show.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from benchmark_data import Benchmark
from leaderboard.containers import (
    DEFAULT_LIMITS,
    LABEL_RUN,
    Limits,
    RunResult,
    get_client,
    new_run_id,
    prepare_inputs,
    run_container,
)
from leaderboard.containers.limits import IMAGE_REPOSITORY, MiB
from tests.leaderboard.containers.hostile import HostileImages
from tests.leaderboard.containers.tiny_benchmark import build_tiny_benchmark

REPO = Path(__file__).resolve().parents[3]
TEMPLATE_ARCHIVE = REPO / "var" / "containers" / "template-model.tar"
TEMPLATE_TAG = "medmod/template-model:latest"

# Small limits so that each hostile run ends in seconds.
SMALL_LIMITS = DEFAULT_LIMITS.with_(
    memory_bytes=256 * MiB,
    cpus=1.0,
    pids=64,
    wall_time=20.0,
    tmp_bytes=32 * MiB,
    output_bytes=8 * MiB,
    output_files=200,
)


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    """A client of a running engine, started by scripts/docker-engine.sh if needed."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "docker-engine.sh")], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        pytest.fail(f"the Docker engine could not be started:\n{proc.stderr}", pytrace=False)
    return get_client()


@pytest.fixture(scope="session")
def template_archive(engine: docker.DockerClient) -> Path:
    """The template model's `docker save` archive, built by scripts/build-template-image.sh
    (the base root filesystem is cached under var/, so only a first build downloads)."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "build-template-image.sh"), str(TEMPLATE_ARCHIVE)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(f"building the template image failed:\n{proc.stderr}", pytrace=False)
    return TEMPLATE_ARCHIVE


@pytest.fixture(scope="session")
def hostile(
    engine: docker.DockerClient, template_archive: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileImages]:
    """Builds misbehaving images on the template's base, one archive per behaviour."""
    images = HostileImages(engine, TEMPLATE_TAG, tmp_path_factory.mktemp("hostile"))
    yield images
    images.remove_all()


def _synth_key() -> str:
    """Hash of the generator's sources: the cached demo benchmark is rebuilt when they change."""
    h = hashlib.sha256()
    for path in sorted((REPO / "benchmark_data").rglob("*.py")):
        h.update(path.relative_to(REPO).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="session")
def demo_bench() -> Benchmark:
    """`python -m benchmark_data synth --scale demo --seed 42`, cached under var/."""
    cache = REPO / "var" / "cache" / "benchmarks"
    dest = cache / f"demo-seed42-{_synth_key()}"
    if not (dest / "manifest.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        for old in cache.glob("demo-seed42-*"):
            shutil.rmtree(old, ignore_errors=True)
        tmp = cache / f".{dest.name}.{os.getpid()}"
        proc = subprocess.run(
            [sys.executable, "-m", "benchmark_data", "synth", "--out", str(tmp),
             "--scale", "demo", "--seed", "42"],
            cwd=REPO, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if proc.returncode != 0:
            pytest.fail(f"generating the demo benchmark failed:\n{proc.stderr}", pytrace=False)
        try:
            tmp.rename(dest)
        except OSError:  # a parallel session generated it first
            shutil.rmtree(tmp, ignore_errors=True)
    return Benchmark.open(dest)


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    return Benchmark.open(build_tiny_benchmark(tmp_path_factory.mktemp("bench") / "tiny"))


@pytest.fixture(scope="module")
def inputs(tiny_bench: Benchmark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny benchmark's /input of in-hospital mortality, paired scenario."""
    return prepare_inputs(
        tiny_bench, "in-hospital-mortality", "paired", tmp_path_factory.mktemp("in") / "input"
    )


def leftovers(client: docker.DockerClient, run_id: str) -> list[str]:
    """Containers, volumes and image tags of a run still known to the engine."""
    found = [
        c.name for c in client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
    ]
    found += [v.name for v in client.volumes.list(filters={"label": f"{LABEL_RUN}={run_id}"})]
    for img in client.images.list(name=IMAGE_REPOSITORY):
        found += [t for t in img.tags if t.endswith(":" + run_id)]
    return found


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def processes_of(container_id: str, wait: float = 5.0) -> list[int]:
    """Host processes still in the container's cgroups (after a short grace for the
    kernel to finish killing them)."""
    deadline = time.monotonic() + wait
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if container_id in (proc / "cgroup").read_text():
                        found.append(int(proc.name))
                except OSError:
                    continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def run_model(
    name: str,
    hostile: HostileImages,
    engine: docker.DockerClient,
    inputs: Path,
    tmp_path: Path,
    limits: Limits,
    run_id: str | None = None,
) -> RunResult:
    """One paired in-hospital-mortality run of a behaviour's image; nothing of it is left
    on the engine afterwards."""
    run_id = run_id or new_run_id()
    result = run_container(hostile.archive(name), task="in-hospital-mortality",
                           scenario="paired", input_dir=inputs, work_dir=tmp_path / "work",
                           limits=limits, client=engine, run_id=run_id)  # fmt: skip
    assert leftovers(engine, run_id) == []
    return result


def run_hostile(
    name: str,
    hostile: HostileImages,
    engine: docker.DockerClient,
    inputs: Path,
    tmp_path: Path,
    limits: Limits = SMALL_LIMITS,
    run_id: str | None = None,
) -> RunResult:
    """:func:`run_model`, and nothing else of the run is left either: no output directory,
    no process of the container; the inputs are unchanged; the host can still fork."""
    before = tree_digest(inputs)
    result = run_model(name, hostile, engine, inputs, tmp_path, limits, run_id)
    assert not (tmp_path / "work" / "output-paired").exists()
    assert tree_digest(inputs) == before
    assert result.container_id and processes_of(result.container_id) == []
    assert subprocess.run(["true"]).returncode == 0
    assert engine.ping()
    return result
