"""Real server processes for the fault, fuzzing and browser tests: gunicorn serving the site
on the test database, Celery workers, and a private Redis on a port of its own (so a test
can stop and start its broker without touching the machine's shared Redis)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(**extra: str) -> dict[str, str]:
    """The environment of a platform process on the test database, uploads and queue."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="leaderboard.test_settings",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        VAR_DIR=str(settings.VAR_DIR),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        SCORING_REPLICATES=str(settings.SCORING_REPLICATES),
        SUBMISSIONS_PER_DAY=str(settings.SUBMISSIONS_PER_DAY),
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(extra)
    return env


class Process:
    """A child process in its own session, with its output in a log file."""

    def __init__(self, cmd: list[str], *, env: dict[str, str], name: str):
        self.log_path = Path(settings.VAR_DIR) / f"{name}-{time.time_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if text in self.log():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.proc.args[:3]} did not start:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker dies without any clean-up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, *, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def start_worker(env: dict[str, str], *, name: str = "worker") -> Process:
    cmd = [sys.executable, "-m", "celery", "-A", "leaderboard.celery", "worker",
           "--loglevel", "info", "--concurrency", "1", "--pool", "prefork",
           "--hostname", f"{name}-{os.getpid()}-{time.time_ns()}@%h", "--without-gossip",
           "--without-mingle", "--without-heartbeat"]  # fmt: skip
    worker = Process(cmd, env=env, name=name)
    worker.wait_for_log("ready.")
    return worker


def start_gunicorn(env: dict[str, str], *, workers: int = 3) -> tuple[Process, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "leaderboard.wsgi", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--timeout", "60", "--graceful-timeout", "5"]  # fmt: skip
    server = Process(cmd, env=env, name="gunicorn")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/limits/", timeout=5) as r:
                if r.status == 200:
                    return server, base
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"gunicorn did not answer:\n{server.log()[-3000:]}")


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def start_redis(port: int) -> Process:
    """A private, memory-only Redis for a broker-restart test."""
    cmd = [redis_server_path() or "redis-server", "--bind", "127.0.0.1", "--port", str(port),
           "--save", "", "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
    server = Process(cmd, env=dict(os.environ), name=f"redis-{port}")
    server.wait_for_log("Ready to accept connections", timeout=20)
    return server
