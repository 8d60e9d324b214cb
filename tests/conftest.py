"""Fixtures shared by every test package."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MOTO_START_TIMEOUT = 30.0

# What a test needs beyond the database and Redis, from the fixtures it uses (directly or
# through others); `bin/test --fast` leaves these out. Tests that start such processes
# themselves carry the mark by hand.
NEEDS = {
    "browser": {"chromium", "page", "shoot"},
    "docker": {"engine", "template_archive", "hostile", "small_image"},
    "worker": {"celery_worker", "server"},
}
NEEDS_BY_FOLDER = {"browser": "leaderboard/browser/", "docker": "leaderboard/containers/"}
# Fixtures that run the Celery tasks a test sends: a real worker process, unless the run
# calls tasks eagerly (--eager-tasks, as `bin/test --fast` does; tests/leaderboard/conftest.py).
TASK_RUNNERS = {"task_runner"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--eager-tasks",
        action="store_true",
        help="call Celery tasks in the test's own process when they are sent, instead of "
        "starting a worker process, in the tests that only need their tasks run "
        "(the task_runner fixture)",
    )


# Test files that use the Docker engine, besides those of tests/leaderboard/containers/:
# when the suite runs in several processes, all of them run in one (below). A test marked
# `docker` elsewhere stops the collection until its file is listed here.
DOCKER_FOLDER = "tests/leaderboard/containers/"
DOCKER_FILES = frozenset({
    "tests/leaderboard/test_container_track.py",
    "tests/leaderboard/test_deployment.py",
    "tests/leaderboard/test_edge_limits.py",
    "tests/leaderboard/test_multi_host.py",
})  # fmt: skip
DOCKER_GROUP = "docker-engine"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    eager = config.getoption("eager_tasks")
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & TASK_RUNNERS and not eager:
            item.add_marker(pytest.mark.worker)
        path = item.path.as_posix()
        for mark, fixtures in NEEDS.items():
            folder = NEEDS_BY_FOLDER.get(mark)
            if used & fixtures or (folder and f"/tests/{folder}" in path):
                item.add_marker(getattr(pytest.mark, mark))
        if item.get_closest_marker("docker") is not None and group_of(item.nodeid) != DOCKER_GROUP:
            raise pytest.UsageError(
                f"{item.nodeid} uses the Docker engine: add its file to DOCKER_FILES in "
                "tests/conftest.py, so that it runs in the one test process that uses the engine"
            )


def group_of(nodeid: str) -> str:
    """The group a test runs in when the suite runs in several processes (bin/test: pytest
    -n 2): a file's tests stay together, so its module-scoped fixtures are made once, and
    every test that uses the Docker engine runs in one process, one after another, as the
    engine's clean-up of stale runs, the shared image builds and the host's disk and timing
    figures some of them measure assume."""
    path = nodeid.split("::", 1)[0]
    return DOCKER_GROUP if path.startswith(DOCKER_FOLDER) or path in DOCKER_FILES else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``--dist loadscope`` (bin/test's full run), pytest-xdist's scheduler hands out
    whole groups (:func:`group_of`); other modes are pytest-xdist's own (the fast tier, with
    no Docker test, hands out single tests: ``--dist load``)."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real S3-compatible server (moto) on loopback, as a separate process; its URL."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        pytest.fail(f"moto_server is not installed next to {sys.executable}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + MOTO_START_TIMEOUT
        while not _answers(url):
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with code {proc.returncode} on port {port}")
            if time.monotonic() > deadline:
                pytest.fail(f"moto_server did not answer on {url} within {MOTO_START_TIMEOUT} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (in this process and in subprocesses started by the test) at the moto
    server with test credentials; returns the endpoint URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return moto_server


@pytest.fixture
def s3_bucket(s3_env: str) -> str:
    """A new, empty bucket on the moto server; its name."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket=name)
    return name
