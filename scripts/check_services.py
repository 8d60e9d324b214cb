"""Fail fast, with a clear message, when a server the test suite needs is not reachable.

PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres) and Redis
(REDIS_URL, default redis://127.0.0.1:6379/0) must answer; the suite never skips them.
"""

import os
import sys

import psycopg
import redis

failures = []
pg_url = os.environ.get("CHECK_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
try:
    with psycopg.connect(pg_url, connect_timeout=5) as conn:
        version = conn.execute("show server_version").fetchone()[0]
    print(f"ok: PostgreSQL {version} at {pg_url.split('@')[-1]}")
except psycopg.Error as exc:
    failures.append(f"PostgreSQL is not reachable at {pg_url}: {exc}".strip())

redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
try:
    info = redis.Redis.from_url(redis_url, socket_timeout=5).info("server")
    print(f"ok: Redis {info['redis_version']} at {redis_url}")
except redis.RedisError as exc:
    failures.append(f"Redis is not reachable at {redis_url}: {exc}")

if failures:
    for f in failures:
        print(f"error: {f}", file=sys.stderr)
    sys.exit(1)
