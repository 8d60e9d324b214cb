"""Fixtures of the platform's tests: real PostgreSQL and Redis, the synthetic demo
benchmark, and a real Celery worker process for the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leaderboard.test_settings")

import django  # noqa: E402
from django.conf import settings as dj_settings  # noqa: E402

if not dj_settings.configured or not django.apps.apps.ready:
    django.setup()

import pytest  # noqa: E402

from tests.demo_cache import demo_benchmark  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters live in the cache: every test starts from zero."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(scope="session")
def demo_benchmark_dir() -> Path:
    """The synthetic demo benchmark (seed 42), generated once and kept between runs."""
    return demo_benchmark()


def ensure_tracks() -> None:
    """The tracks come from data migrations, which a transactional test's flush removes:
    replay them (0002 creates both tracks, 0003 opens the container track)."""
    from django.apps import apps

    for name, func in (
        ("0002_tracks", "add_tracks"),
        ("0003_container_track", "open_container_track"),
    ):
        module = __import__(f"leaderboard.board.migrations.{name}", fromlist=[func])
        getattr(module, func)(apps, None)


@pytest.fixture
def benchmark(db, demo_benchmark_dir):
    """The demo benchmark registered as the current one."""
    from leaderboard.board.services.benchmarks import benchmark_register

    ensure_tracks()
    return benchmark_register(uri=str(demo_benchmark_dir), verify=False)


@pytest.fixture
def ihm_task(benchmark):
    return benchmark.tasks.get(slug="in-hospital-mortality")


@pytest.fixture(scope="session")
def sample_ihm_csv(demo_benchmark_dir) -> bytes:
    """A real prediction file for in-hospital mortality (logistic regression on EHR)."""
    from benchmark_data import Benchmark
    from leaderboard.board.sample import sample_predictions

    return sample_predictions(Benchmark.open(demo_benchmark_dir))


@pytest.fixture
def user(db):
    from tests.leaderboard.factories import UserFactory

    return UserFactory()


@pytest.fixture
def staff(db):
    from tests.leaderboard.factories import UserFactory

    return UserFactory(is_staff=True, username="organizer")


def token_client(user):
    """An API client that sends the user's token."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(user):
    return token_client(user)


@pytest.fixture
def staff_api(staff):
    return token_client(staff)


@pytest.fixture
def anon():
    from rest_framework.test import APIClient

    return APIClient()


def _drop_queue():
    import redis

    url = dj_settings.CELERY_BROKER_URL
    if not url.startswith("redis"):
        return
    client = redis.Redis.from_url(url)
    queue = dj_settings.CELERY_TASK_DEFAULT_QUEUE
    for key in client.scan_iter(f"{queue}*"):
        client.delete(key)
    client.delete(queue)


@pytest.fixture(scope="session", autouse=True)
def _clean_broker_queue():
    """Messages sent by tests that run no worker are dropped at the end of the run."""
    yield
    with contextlib.suppress(Exception):
        _drop_queue()


@pytest.fixture
def celery_worker(transactional_db, django_db_setup):
    """A real Celery worker process on the test database and the run's own Redis queue."""
    from django.db import connection

    _drop_queue()
    db = connection.settings_dict
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "leaderboard.test_settings"
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["VAR_DIR"] = str(dj_settings.VAR_DIR)
    env["MEDIA_ROOT"] = str(dj_settings.MEDIA_ROOT)
    env["CELERY_QUEUE"] = dj_settings.CELERY_TASK_DEFAULT_QUEUE
    env["CELERY_BROKER_URL"] = dj_settings.CELERY_BROKER_URL
    env["SCORING_REPLICATES"] = str(dj_settings.SCORING_REPLICATES)
    log_path = Path(dj_settings.VAR_DIR) / f"worker-{time.time_ns()}.log"
    log = open(log_path, "w")  # noqa: SIM115 (kept open for the worker's lifetime)
    cmd = [sys.executable, "-m", "celery", "-A", "leaderboard.celery", "worker",
           "--loglevel", "info", "--concurrency", "1", "--pool", "prefork",
           "--hostname", f"test-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
           "--without-heartbeat"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    ready = False
    while time.monotonic() < deadline and proc.poll() is None:
        if "ready." in log_path.read_text():
            ready = True
            break
        time.sleep(0.2)
    if not ready:
        proc.kill()
        raise RuntimeError(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")
    proc.log_path = log_path  # type: ignore[attr-defined]
    yield proc
    stop_group(proc, timeout=30)
    log.close()


def stop_group(proc: subprocess.Popen, *, timeout: float) -> None:
    """Stop a process started in a session of its own, and everything it started: SIGTERM,
    then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@contextlib.contextmanager
def eager_tasks() -> Iterator[None]:
    """Celery tasks run in this process, at the moment they are sent, their exceptions
    raised to the sender (Celery's task_always_eager); the settings come back after."""
    from leaderboard.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def task_runner(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[Any]:
    """Runs the tasks the test sends: the real worker process of :func:`celery_worker` in
    the full suite; with --eager-tasks (the fast tier), the tasks themselves, called in the
    test's process as they are sent (yields None then). For tests that need their tasks run,
    not a worker's process, its logs or its separate settings."""
    if request.config.getoption("eager_tasks"):
        with eager_tasks():
            yield None
    else:
        yield request.getfixturevalue("celery_worker")


def wait_for(predicate, *, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _release_sources_hash() -> str:
    """A hash of the code that builds a release: a cached one made by other code is never
    reused."""
    import hashlib

    h = hashlib.sha256()
    paths = [
        *sorted((ROOT / "benchmark_data").rglob("*.py")),
        ROOT / "scoring" / "template.py",
        ROOT / "leaderboard" / "board" / "services" / "downloads.py",
        ROOT / "leaderboard" / "board" / "selectors" / "downloads.py",
    ]
    for path in paths:
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def publish_release(benchmark) -> dict[str, Any]:
    """``benchmark_publish_downloads`` for a benchmark the tests share: its release is built
    by the first test process that needs it (the others wait), kept under
    ``var/test-cache/`` by manifest and by a hash of the code that builds it, and copied into
    the storage of each later process or run. Returns the release index."""
    import fcntl
    import shutil

    from django.core.cache import cache
    from django.core.files import File
    from django.core.files.storage import default_storage

    from benchmark_data.release import INDEX, read_index
    from leaderboard.board.selectors.downloads import downloads_key, release_prefix
    from leaderboard.board.services.downloads import benchmark_publish_downloads

    prefix = release_prefix(benchmark)
    if default_storage.exists(prefix + INDEX):
        return benchmark_publish_downloads(benchmark=benchmark)
    cache_root = ROOT / "var" / "test-cache"
    kept = cache_root / f"release-{benchmark.manifest_hash[:16]}-{_release_sources_hash()}"
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / "release.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (kept / INDEX).is_file():
            index = benchmark_publish_downloads(benchmark=benchmark)
            part = kept.with_name(kept.name + ".part")
            shutil.rmtree(part, ignore_errors=True)
            for name in [*(f["name"] for f in index["files"]), INDEX]:
                (part / name).parent.mkdir(parents=True, exist_ok=True)
                with default_storage.open(prefix + name, "rb") as src:
                    (part / name).write_bytes(src.read())
            for old in cache_root.glob(f"release-{benchmark.manifest_hash[:16]}-*"):
                if old.is_dir() and not old.name.endswith(".part"):
                    shutil.rmtree(old, ignore_errors=True)  # made by other code
            part.rename(kept)
            return index
    index = read_index((kept / INDEX).read_bytes())
    for name in [*(f["name"] for f in index["files"]), INDEX]:  # the index last: listed once whole
        if default_storage.exists(prefix + name):
            default_storage.delete(prefix + name)
        with (kept / name).open("rb") as fh:
            default_storage.save(prefix + name, File(fh, name=Path(name).name))
    cache.delete(downloads_key(benchmark))  # as a publication does
    return benchmark_publish_downloads(benchmark=benchmark)


def file_entry(task, data: bytes, name: str):
    """A prediction-file entry of ``data`` by a new confirmed user named ``name``, entered
    through the submission service (not yet scored)."""
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile

    from leaderboard.board.models import Track
    from leaderboard.board.services.identity import account_create
    from leaderboard.board.services.submissions import SubmissionMeta, submission_create

    owner = get_user_model().objects.create_user(name, f"{name}@example.org", f"pw-{name}")
    account_create(user=owner, email=owner.email, confirmed=True)
    return submission_create(
        owner=owner,
        task=task,
        track=Track.objects.get(slug=Track.PREDICTION_FILE),
        upload=ContentFile(data, name="predictions.csv"),
        meta=SubmissionMeta(
            method_name=name, training_data="train split", uses_ehr=True, uses_cxr=False
        ),
    )
