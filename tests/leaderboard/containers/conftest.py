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
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from benchmark_data import Benchmark
from leaderboard.containers import LABEL_RUN, get_client
from leaderboard.containers.limits import IMAGE_REPOSITORY
from tests.leaderboard.containers.hostile import HostileImages
from tests.leaderboard.containers.tiny_benchmark import build_tiny_benchmark

REPO = Path(__file__).resolve().parents[3]
TEMPLATE_ARCHIVE = REPO / "var" / "containers" / "template-model.tar"
TEMPLATE_TAG = "medmod/template-model:latest"


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


def leftovers(client: docker.DockerClient, run_id: str) -> list[str]:
    """Containers, volumes and image tags of a run still known to the engine."""
    found = [
        c.name for c in client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
    ]
    found += [v.name for v in client.volumes.list(filters={"label": f"{LABEL_RUN}={run_id}"})]
    for img in client.images.list(name=IMAGE_REPOSITORY):
        found += [t for t in img.tags if t.endswith(":" + run_id)]
    return found
