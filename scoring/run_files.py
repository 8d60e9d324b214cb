"""Read-modify-write of a run directory's JSON manifests by several processes at once.

A baselines run is filled one model at a time by separate processes (the platform's worker
trains a model, then streams it through the gateway, while another job does the same for
another model): each takes the run's lock, reads the manifest as it is now, changes its own
part and replaces the file whole. No Django and no torch here.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOCK_NAME = ".run.lock"


@contextmanager
def run_lock(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the run directory's lock (an advisory ``flock``) for the block."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    with open(run / LOCK_NAME, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` when the file is missing or not an object."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` whole (a reader never sees half a file)."""
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(part, path)


def update_json(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Under the lock of ``path``'s folder: read it, apply ``change``, write the result."""
    with run_lock(path.parent):
        data = change(read_json(path))
        write_json(path, data)
    return data
