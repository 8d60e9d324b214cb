"""What the kernel counts for a running container: how often it hit its process limit.

The pids controller counts every fork or clone refused at the limit (``max`` in
``pids.events``). The runner reads that counter while a model runs, so that a fork bomb is
reported as the process limit, not as whatever exit code or timeout followed it. The files
are those of the engine's host: the worker reads them when it runs there, or when the
host's ``/sys/fs/cgroup`` is mounted into it (``CGROUP_ROOT``, docs/operations.md);
elsewhere nothing is counted and the messages stay as they were.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

# Where the engine host's cgroup file system is seen from here.
CGROUP_ROOT_ENV = "CGROUP_ROOT"
DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"

MSG_PROCESS_LIMIT = (
    "the model reached the limit of {limit} processes and threads (the kernel refused "
    "{refused} forks or new threads)"
)


def cgroup_root() -> Path:
    return Path(os.environ.get(CGROUP_ROOT_ENV) or DEFAULT_CGROUP_ROOT)


def pids_events_path(container_id: str, root: Path | None = None) -> Path | None:
    """The container's ``pids.events`` under the cgroup layouts the engine uses (cgroup v1
    or v2, cgroupfs or systemd driver); None when none exists (not on the engine's host)."""
    base = root or cgroup_root()
    for cgroup in (
        f"pids/docker/{container_id}",  # v1, cgroupfs driver
        f"pids/system.slice/docker-{container_id}.scope",  # v1, systemd driver
        f"docker/{container_id}",  # v2, cgroupfs driver
        f"system.slice/docker-{container_id}.scope",  # v2, systemd driver
    ):
        path = base / cgroup / "pids.events"
        if path.is_file():
            return path
    return None


def refused_forks(path: Path) -> int | None:
    """The ``max`` counter of a ``pids.events`` file; None once the cgroup is gone."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "max" and value.strip().isdigit():
            return int(value)
    return None


class ProcessLimitWatch:
    """Polls a running container's refused-fork counter until ``stop`` is set; ``refused``
    is the highest value seen (0 when the limit was never reached or cannot be read)."""

    def __init__(self, container_id: str, stop: threading.Event, interval: float) -> None:
        self.refused = 0
        self._path = pids_events_path(container_id)
        self._stop = stop
        self._interval = interval
        if self._path is not None:
            threading.Thread(target=self._poll, name=f"pids-{container_id[:12]}",
                             daemon=True).start()  # fmt: skip

    @property
    def available(self) -> bool:
        return self._path is not None

    def _poll(self) -> None:
        assert self._path is not None
        while True:
            stopping = self._stop.wait(self._interval)
            n = refused_forks(self._path)
            if n is None:
                return
            self.refused = max(self.refused, n)
            if stopping:
                return

    def message(self, limit: int) -> str | None:
        """The process limit in the submitter's terms, when it was reached."""
        if not self.refused:
            return None
        return MSG_PROCESS_LIMIT.format(limit=limit, refused=f"{self.refused:,}")


_watches: dict[str, ProcessLimitWatch] = {}
_watches_lock = threading.Lock()


def watch_process_limit(container_id: str, exited: threading.Event, interval: float) -> None:
    """Start counting a started container's refused forks until ``exited`` is set."""
    watch = ProcessLimitWatch(container_id, exited, interval)
    if watch.available:
        with _watches_lock:
            _watches[container_id] = watch


def note_process_limit(result: Any, limits: Any) -> None:
    """Once a run is classified: a failed run whose model reached the process limit says
    so first (a fork bomb ends as a crash or a timeout, whose message alone would not tell
    why). Forgets the container's watch in any case."""
    if not result.container_id:
        return
    with _watches_lock:
        watch = _watches.pop(result.container_id, None)
    if watch is None or result.ok:
        return
    reached = watch.message(limits.pids)
    if reached:
        result.message = f"{reached}; {result.message}" if result.message else reached
