"""The client's tests run it against a live site: the platform's own fixtures (a real
PostgreSQL and Redis, the demo benchmark, a Celery worker process) and the live site of
docs/api.md's walk-through, reused as they are."""

from tests.leaderboard.conftest import (  # noqa: F401 (fixtures)
    _clean_broker_queue,
    _clear_cache,
    benchmark,
    celery_worker,
    demo_benchmark_dir,
)
from tests.leaderboard.test_docs_api import demo_site  # noqa: F401 (a fixture)
