"""What the platform's benchmark scripts (loadtest.py, bench_rescore.py) share: the
PostgreSQL server they use, a database of their own on it, and the environment of the
platform processes they start (production settings with DEBUG off, on Redis, in a folder of
the run's own)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

# The PostgreSQL server: DATABASE_URL's (its database name aside), else the local one.
_url = os.environ.get("DATABASE_URL", "")
PG = _url.rsplit("/", 1)[0] if _url.startswith("postgres") else "postgres://postgres@127.0.0.1:5432"
BROKER = "redis://127.0.0.1:6379/12"


def platform_environment(
    var_dir: Path, database: str, *, name: str, **extra: str
) -> dict[str, str]:
    """The environment of a web or worker process of a benchmark run named ``name``: its
    database, its queue, its folder; ``extra`` adds or overrides settings."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="leaderboard.settings",
        DJANGO_ENV="development",
        DEBUG="false",
        SECRET_KEY=f"{name}-only-" + uuid.uuid4().hex,
        DATABASE_URL=f"{PG}/{database}",
        CELERY_BROKER_URL=BROKER,
        CELERY_QUEUE=f"leaderboard-{name}-{os.getpid()}",
        VAR_DIR=str(var_dir),
        MEDIA_ROOT=str(var_dir / "media"),
        STATIC_ROOT=str(var_dir / "static"),
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def recreate_database(name: str) -> None:
    """Drop the run's database if it is there, and create it empty."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
