"""Hostile images are contained: each ends in a clear failed state, the worker and the host
stay healthy, and nothing of the run is left on the engine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from leaderboard.containers import LABEL_RUN, RunStatus
from leaderboard.containers.limits import KiB, MiB
from leaderboard.containers.results import LOG_CUT
from tests.leaderboard.containers.conftest import SMALL_LIMITS as LIMITS
from tests.leaderboard.containers.conftest import run_hostile

pytestmark = pytest.mark.slow


def test_network_is_unreachable(hostile, engine, inputs, tmp_path):
    """A model that tries the network finds only the loopback interface and no route out."""
    r = run_hostile("network", hostile, engine, inputs, tmp_path)
    assert r.status == RunStatus.CRASHED, r.log_tail
    assert r.exit_code == 3
    assert "CONNECTED" not in r.log_tail
    assert "interfaces: ['lo']" in r.log_tail
    assert "exited with code 3" in r.message


def test_writes_outside_output_are_refused(hostile, engine, inputs, tmp_path):
    """Writes to the image, /input and the rest of the root fail; privileged calls fail;
    a symlink left as predictions.csv is refused without being followed."""
    passwd = Path("/etc/passwd").read_bytes()
    r = run_hostile("write_outside", hostile, engine, inputs, tmp_path)
    assert r.status == RunStatus.WRONG_OUTPUT, r.log_tail
    assert "not a regular file" in r.message
    assert "uid 65534 gid 65534" in r.log_tail
    assert "WRITTEN" not in r.log_tail
    assert r.log_tail.count("refused") == 11
    assert "Read-only file system" in r.log_tail
    assert Path("/etc/passwd").read_bytes() == passwd
    assert not (tmp_path / "work" / "predictions-paired.csv").exists()


def test_fork_bomb_is_bounded_and_stopped(hostile, engine, inputs, tmp_path):
    """Forking without end hits the process limit and the run is stopped at the wall time."""
    limits = LIMITS.with_(wall_time=6.0)
    t0 = time.monotonic()
    r = run_hostile("fork_bomb", hostile, engine, inputs, tmp_path, limits)
    assert r.status == RunStatus.TIMED_OUT, r.log_tail
    assert "wall-time limit of 6 s" in r.message
    assert time.monotonic() - t0 < 30


def test_memory_hog_is_killed(hostile, engine, inputs, tmp_path):
    """Allocating without end ends as out_of_memory at the memory limit (no swap)."""
    r = run_hostile("memory", hostile, engine, inputs, tmp_path)
    assert r.status == RunStatus.OUT_OF_MEMORY, (r.message, r.log_tail)
    assert r.oom_killed
    assert r.exit_code == 137
    allocated = [int(line.split()[1]) for line in r.log_tail.splitlines() if "allocated" in line]
    assert max(allocated) <= 256
    assert "256.0 MiB" in r.message


def test_sleeper_is_stopped_at_the_wall_time(hostile, engine, inputs, tmp_path):
    """A model that outlives the wall-time limit is killed promptly."""
    limits = LIMITS.with_(wall_time=3.0)
    r = run_hostile("sleeper", hostile, engine, inputs, tmp_path, limits)
    assert r.status == RunStatus.TIMED_OUT
    assert r.duration is not None and 3.0 <= r.duration < 6.0
    assert r.wall_time < 15.0
    assert "sleeping" in r.log_tail


def test_log_flood_keeps_only_the_tail(hostile, engine, inputs, tmp_path):
    """A gigabyte of log reaches neither the worker's memory nor the engine's disk: the run
    keeps the last 64 KiB, ending with what the model printed last."""
    r = run_hostile("log_flood", hostile, engine, inputs, tmp_path, LIMITS.with_(wall_time=120.0))
    assert r.status == RunStatus.NO_OUTPUT, r.message
    assert r.log_truncated
    assert r.log_tail.startswith(LOG_CUT.format(size="64.0 KiB"))
    assert len(r.log_tail.encode()) <= 64 * KiB + len(LOG_CUT) + 16
    assert r.log_tail.rstrip().endswith("LAST LINE OF THE LOG")
    # The engine kept at most log_file_bytes of the gigabyte (its rotated log files).
    assert r.log_bytes <= LIMITS.log_file_bytes + 64 * KiB


def test_huge_output_is_stopped(hostile, engine, inputs, tmp_path):
    """Writing without end under /output is stopped soon after the output limit; no file
    can grow past the per-file size limit meanwhile."""
    r = run_hostile("huge_output", hostile, engine, inputs, tmp_path)
    assert r.status == RunStatus.OUTPUT_TOO_LARGE, (r.message, r.log_tail)
    assert "8.0 MiB" in r.message
    assert r.duration is not None and r.duration < 10
    largest_file = max(LIMITS.tmp_bytes, LIMITS.shm_bytes, LIMITS.output_bytes) + 1
    # Whole blocks on disk: the file's data blocks and, past 64 MiB, an extent block or two.
    assert 8 * MiB < r.output_bytes <= largest_file + 16 * KiB


def test_many_output_files_are_stopped(hostile, engine, inputs, tmp_path):
    """Creating files without end under /output is stopped at the file-count limit."""
    r = run_hostile("many_files", hostile, engine, inputs, tmp_path)
    assert r.status == RunStatus.OUTPUT_TOO_LARGE, (r.message, r.log_tail)
    assert "200 files" in r.message


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("crash", RunStatus.CRASHED, "exited with code 1"),
        ("no_output", RunStatus.NO_OUTPUT, "wrote no /output/predictions.csv"),
        ("wrong_output", RunStatus.WRONG_OUTPUT, "it is compressed"),
    ],
)
def test_failures_a_user_can_act_on(hostile, engine, inputs, tmp_path, name, status, message):
    """A crash, a missing and an unusable output each get their own status and message,
    with the end of the log for the owner."""
    r = run_hostile(name, hostile, engine, inputs, tmp_path)
    assert r.status == status, (r.message, r.log_tail)
    assert message in r.message
    if name == "crash":
        assert "RuntimeError: weights file not found" in r.log_tail
    assert os.listdir(tmp_path / "work") == []


def test_declared_volumes_get_bounded_scratch_space(hostile, engine, inputs, tmp_path):
    """A VOLUME in the image becomes a size-capped tmpfs, never a volume on the engine's
    disk: filling it fails at the /tmp size limit."""

    def volumes() -> set[str]:  # runs' own /output volumes are checked by run_hostile
        return {v.name for v in engine.volumes.list() if LABEL_RUN not in (v.attrs["Labels"] or {})}

    before = volumes()
    r = run_hostile("volume_writer", hostile, engine, inputs, tmp_path)
    assert r.status == RunStatus.CRASHED, (r.message, r.log_tail)
    assert "mount: tmpfs /data tmpfs" in r.log_tail
    assert "No space left on device" in r.log_tail
    assert volumes() == before
