"""Settings for the test suite: the real servers (PostgreSQL, Redis) on this machine unless
the environment says otherwise, uploads in a temporary folder, a queue of the run's own."""

import os
import tempfile

os.environ.setdefault("DJANGO_ENV", "test")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leaderboard")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11")
# A suite run in several processes (pytest-xdist): each test process has a queue and a
# folder of its own. The processes it starts inherit them (the mark below says whose they are).
_test_process = os.environ.get("PYTEST_XDIST_WORKER")
if _test_process and os.environ.get("LEADERBOARD_TEST_PROCESS") != _test_process:
    os.environ["LEADERBOARD_TEST_PROCESS"] = _test_process
    for _name in ("CELERY_QUEUE", "CELERY_BASELINES_QUEUE", "VAR_DIR"):
        os.environ.pop(_name, None)
os.environ.setdefault("CELERY_QUEUE", f"leaderboard-test-{os.getpid()}")
os.environ.setdefault("CELERY_BASELINES_QUEUE", f"baselines-test-{os.getpid()}")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="leaderboard-test-"))
os.environ.setdefault("LOG_LEVEL", "WARNING")
# DEBUG is off, as in production, but the pages link static files by their plain names,
# found by the finders (WhiteNoise serves them so in the test servers): a manifest would
# need a `collectstatic` (gzip and brotli of every file: tens of seconds) before any page
# renders. The tests of static delivery itself (tests/leaderboard/browser/test_deployed_site.py)
# collect into a folder of their own and start a server with COLLECTED_STATIC=1; that server
# renders the pages under the manifest, which fails on a file missing from it.
os.environ.setdefault("COLLECTED_STATIC", "false")

from leaderboard.settings import *  # noqa: E402, F403

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
