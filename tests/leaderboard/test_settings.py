"""Settings come from the environment; production refuses to start half-configured, and
the embedded default needs no server."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'leaderboard.settings'; "
    "from django.conf import settings as s; "
    "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, "
    "s.STORAGES['default']['BACKEND'], s.DEBUG)"
)


def _run(env_extra: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO", "DATABASE", "SECRET", "CELERY", "AWS_", "DEBUG"))
    }
    env["VAR_DIR"] = str(tmp_path)
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_the_embedded_default_uses_sqlite_local_files_and_the_filesystem_broker(tmp_path):
    out = _run({}, tmp_path)
    assert out.returncode == 0, out.stderr
    engine, broker, storage, debug = out.stdout.split()
    assert engine.endswith("sqlite3") and broker == "filesystem://"
    assert storage.endswith("FileSystemStorage") and debug == "True"


def test_production_refuses_to_start_without_a_secret_key_and_a_database(tmp_path):
    out = _run({"DJANGO_ENV": "production"}, tmp_path)
    assert out.returncode != 0
    assert "SECRET_KEY and DATABASE_URL must be set" in out.stderr
    out = _run({"DEBUG": "false"}, tmp_path)
    assert out.returncode != 0 and "SECRET_KEY and DATABASE_URL must be set" in out.stderr


def test_production_needs_postgresql_a_broker_and_s3(tmp_path):
    out = _run({"DJANGO_ENV": "production", "SECRET_KEY": "k", "DATABASE_URL": "sqlite:///x.db",
                "ALLOWED_HOSTS": "example.org"}, tmp_path)  # fmt: skip
    assert out.returncode != 0
    for need in ("PostgreSQL", "Redis", "S3"):
        assert need in out.stderr
    ok = _run({"DJANGO_ENV": "production", "SECRET_KEY": "k", "ALLOWED_HOSTS": "example.org",
               "DATABASE_URL": "postgres://u@db:5432/lb", "CELERY_BROKER_URL": "amqp://rabbit//",
               "AWS_STORAGE_BUCKET_NAME": "uploads"}, tmp_path)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "postgresql" in ok.stdout and "S3Storage" in ok.stdout and "False" in ok.stdout


@pytest.mark.slow
def test_the_web_and_worker_code_never_load_torch(tmp_path):
    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'leaderboard.settings'; "
        "import django; django.setup(); "
        "from django.core.management import call_command; call_command('migrate', verbosity=0); "
        "import leaderboard.urls, leaderboard.board.tasks, leaderboard.board.admin; "
        "import leaderboard.board.services.evaluations, leaderboard.board.services.baselines; "
        "from scoring.report import score_predictions; "
        "from django.test import Client; Client().get('/'); "
        "print('torch' in sys.modules)"
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE", "CELERY"))
    }
    env["VAR_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


CACHE_PROBE = (
    "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'leaderboard.settings'; "
    "from django.conf import settings as s; c = s.CACHES['default']; "
    "print(c['BACKEND'], c.get('KEY_PREFIX'), s.BOARD_CACHE_SHARED, s.BOARD_KEY_SECONDS, "
    "s.CELERY_BROKER_TRANSPORT_OPTIONS.get('visibility_timeout', 0) > s.CONTAINER_TIME_LIMIT)"
)


def test_a_redis_cache_url_is_shared_and_keeps_its_key_prefix(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "CACHE", "REDIS"))}
    env.update(VAR_DIR=str(tmp_path), CACHE_URL="redis://127.0.0.1:6379/3?key_prefix=lb")
    # and a Redis broker does not deliver a message twice while the longest run goes on
    env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/11"
    out = subprocess.run(
        [sys.executable, "-c", CACHE_PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "django.core.cache.backends.redis.RedisCache", "lb", "True", "30", "True"
    ]  # fmt: skip
    del env["CACHE_URL"]  # a cache per process: the board key is read on every request
    out = subprocess.run(
        [sys.executable, "-c", CACHE_PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.stdout.split()[1:4] == ["None", "False", "0"], out.stderr
