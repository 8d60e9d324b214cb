"""The process-limit counter under each cgroup layout an engine uses (v1 and v2, cgroupfs and
systemd drivers), read from a cgroup tree laid out as the kernel lays it out. The engine of
the container suite runs one layout; the fork bomb test (test_hardening.py) covers that one
end to end."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from leaderboard.containers import cgroups
from leaderboard.containers.cgroups import (
    CGROUP_ROOT_ENV,
    note_process_limit,
    pids_events_path,
    refused_forks,
    watch_process_limit,
)

CID = "3f" * 32

LAYOUTS = {
    "v1 cgroupfs": f"pids/docker/{CID}",
    "v1 systemd": f"pids/system.slice/docker-{CID}.scope",
    "v2 cgroupfs": f"docker/{CID}",
    "v2 systemd": f"system.slice/docker-{CID}.scope",
}


def _events(root: Path, layout: str, text: str) -> Path:
    path = root / LAYOUTS[layout] / "pids.events"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_counter_is_found_under_every_layout(tmp_path, layout):
    assert pids_events_path(CID, root=tmp_path) is None
    path = _events(tmp_path, layout, "max 0\n")
    assert pids_events_path(CID, root=tmp_path) == path
    assert pids_events_path("0" * 64, root=tmp_path) is None


def test_the_max_line_is_read_whatever_follows_it(tmp_path):
    # cgroup v2 kernels from 6.13 add "max.imposed" (refusals by an ancestor's limit).
    assert refused_forks(_events(tmp_path, "v2 systemd", "max 12\nmax.imposed 40\n")) == 12
    assert refused_forks(_events(tmp_path, "v1 cgroupfs", "max 0\n")) == 0
    assert refused_forks(_events(tmp_path, "v2 cgroupfs", "")) is None
    assert refused_forks(tmp_path / "gone" / "pids.events") is None  # the cgroup was removed


@pytest.mark.parametrize("layout", ["v2 cgroupfs", "v2 systemd"])
def test_a_run_that_reached_the_limit_says_so_first(tmp_path, monkeypatch, layout):
    """The watch follows the counter while the model runs (CGROUP_ROOT points at the engine
    host's tree); once the run is classified, a failed run's message names the limit and
    the refusals, ahead of the exit code it ended with."""
    monkeypatch.setenv(CGROUP_ROOT_ENV, str(tmp_path))
    events = _events(tmp_path, layout, "max 0\n")
    exited = threading.Event()
    watch_process_limit(CID, exited, interval=0.01)
    events.write_text("max 1234\nmax.imposed 0\n")
    deadline = time.monotonic() + 10
    while cgroups._watches[CID].refused != 1234 and time.monotonic() < deadline:
        time.sleep(0.01)
    events.unlink()  # the container is gone: the last value seen stays
    exited.set()
    time.sleep(0.05)
    result = SimpleNamespace(container_id=CID, ok=False, message="the model exited with code 2")
    note_process_limit(result, SimpleNamespace(pids=128))
    assert result.message == (
        "the model reached the limit of 128 processes and threads (the kernel refused 1,234 "
        "forks or new threads); the model exited with code 2"
    )
    assert CID not in cgroups._watches  # forgotten once noted


def test_a_run_that_succeeded_or_never_reached_the_limit_keeps_its_message(tmp_path, monkeypatch):
    monkeypatch.setenv(CGROUP_ROOT_ENV, str(tmp_path))
    for counted, ok in ((5, True), (0, False)):
        events = _events(tmp_path, "v2 systemd", f"max {counted}\n")
        exited = threading.Event()
        watch_process_limit(CID, exited, interval=0.01)
        time.sleep(0.05)
        exited.set()
        result = SimpleNamespace(container_id=CID, ok=ok, message="as it was")
        note_process_limit(result, SimpleNamespace(pids=128))
        assert result.message == "as it was"
        events.unlink()
    # Off the engine's host (no tree): nothing is watched, nothing is changed.
    watch_process_limit(CID, threading.Event(), interval=0.01)
    assert CID not in cgroups._watches
