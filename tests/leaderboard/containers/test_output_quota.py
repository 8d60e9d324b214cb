"""/output is a filesystem of its own whose size the kernel caps: a model cannot use more of
it than the limit, not by writing fast, not by deleting files it keeps open, and the host's
disk is never touched. The model runs as 65534 whatever the worker's uid, and nothing it
writes outlives the run, even from a worker that is not root."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from leaderboard.containers import (
    DEFAULT_LIMITS,
    LABEL_RUN,
    RunStatus,
    new_run_id,
    prepare_inputs,
)
from leaderboard.containers.limits import KiB, MiB
from tests.leaderboard.containers.conftest import REPO, SMALL_LIMITS, leftovers, run_hostile

pytestmark = pytest.mark.slow

# Room for a 256 MiB /output in memory (its pages count toward the memory limit).
LIMITS = SMALL_LIMITS.with_(memory_bytes=768 * MiB, wall_time=60.0, output_bytes=256 * MiB)
PAGE = 4 * KiB
# The most the host's free disk may dip during a quota run. The runs below write at least the
# 256 MiB output limit, so writes that reached the disk would cost that much; the other test
# process of the suite (tests/conftest.py) writes files of its own meanwhile, tens of MiB.
DISK_DIP = 128 * MiB
WORKER_UID = 10001


@contextmanager
def free_disk_during_run(path: Path, engine, run_id: str) -> Iterator[dict[str, int]]:
    """The free space of ``path``'s filesystem when the run's first container appears
    (its image already loaded, the model not yet started), its lowest while any of the
    run's containers exists, sampled every 20 ms, and once the run is over."""
    seen: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            free = shutil.disk_usage(path).free
            if engine.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"}):
                seen.setdefault("before", free)
                seen["lowest"] = min(seen.get("lowest", free), free)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        seen["after"] = shutil.disk_usage(path).free


def report_disk(what: str, disk: dict[str, int], r) -> None:
    """The figures of a quota run, printed (``pytest -s``): output kept, free disk lost."""
    free_after = disk["after"]
    print(f"{what}: {r.status}, /output held {r.output_bytes / MiB:.1f} MiB, in "
          f"{r.duration:.1f} s; host free disk lowest {(disk['before'] - disk['lowest']) / MiB:.1f}"
          f" MiB below the start, after the run {(disk['before'] - free_after) / MiB:+.1f} MiB")  # fmt: skip


def mib_in_log(pattern: str, log: str) -> int:
    found = re.search(pattern, log)
    assert found, log
    return int(found.group(1))


def test_deleted_files_held_open_count_toward_the_output_limit(hostile, engine, inputs, tmp_path):
    """The unlink trick: three 300 MiB files deleted while open. Writes stop at the 256 MiB
    limit, the run ends output_too_large, and neither the worker's disk nor the engine's
    lost anything near the 256 MiB meanwhile (the files live in the run's own tmpfs)."""
    run_id = new_run_id()
    with free_disk_during_run(tmp_path, engine, run_id) as disk:
        r = run_hostile("unlink_open", hostile, engine, inputs, tmp_path, LIMITS, run_id)
    assert r.status == RunStatus.OUTPUT_TOO_LARGE, (r.message, r.log_tail)
    assert "256.0 MiB" in r.message and "deleted" in r.message
    assert "refused: No space left on device" in r.log_tail
    assert mib_in_log(r"held (\d+) MiB", r.log_tail) <= 256
    report_disk("unlink trick", disk, r)
    assert disk["before"] - disk["lowest"] < DISK_DIP, disk


def test_a_5_gib_writer_is_stopped_at_the_output_limit(hostile, engine, inputs, tmp_path):
    """A model writing 5 GiB as fast as it can gets no further than the limit plus one
    page, the run ends output_too_large, and the disk is not used for it."""
    run_id = new_run_id()
    with free_disk_during_run(tmp_path, engine, run_id) as disk:
        r = run_hostile("writer_5g", hostile, engine, inputs, tmp_path, LIMITS, run_id)
    assert r.status == RunStatus.OUTPUT_TOO_LARGE, (r.message, r.log_tail)
    assert "256.0 MiB" in r.message
    assert mib_in_log(r"wrote (\d+) MiB", r.log_tail) <= 256
    assert r.output_bytes <= LIMITS.output_bytes + PAGE
    assert r.duration is not None and r.duration < 30
    report_disk("5 GiB writer", disk, r)
    assert disk["before"] - disk["lowest"] < DISK_DIP, disk


WORKER = """
import json, os, sys
# Everything the run needs is imported while still root: the interpreter's own files may
# not be readable by the worker's uid.
import encodings.idna, tarfile, gzip, csv
from leaderboard.containers import DEFAULT_LIMITS, run_container
from leaderboard.containers.limits import MiB

archive, inputs, work, run_id, socket_gid, uid = sys.argv[1:7]
os.setgroups([int(socket_gid)])
os.setgid(int(uid))
os.setuid(int(uid))
limits = DEFAULT_LIMITS.with_(memory_bytes=256 * MiB, cpus=1.0, pids=64, wall_time=30.0,
                              tmp_bytes=32 * MiB, output_bytes=8 * MiB, output_files=200)
r = run_container(archive, task="in-hospital-mortality", scenario="paired",
                  input_dir=inputs, work_dir=work, limits=limits, run_id=run_id)
print(json.dumps({"euid": os.geteuid(), "groups": os.getgroups(), "status": str(r.status),
                  "message": r.message, "log": r.log_tail}))
"""


def test_a_non_root_worker_runs_the_model_as_nobody_and_leaves_nothing(hostile, tiny_bench, engine):
    """The worker runs as uid 10001 with only the Docker socket's group. The model still
    runs as 65534 (never the worker's uid); its mode-000 directory holding 64 MiB under an
    8 MiB limit ends the run output_too_large, and nothing of it is left anywhere."""
    socket_gid = os.stat("/var/run/docker.sock").st_gid
    root = Path(tempfile.mkdtemp(prefix="medmod-worker-"))
    try:
        os.chmod(root, 0o755)
        archive = root / "image.tar"
        os.link(hostile.archive("locked_dir"), archive)
        inputs = prepare_inputs(tiny_bench, "in-hospital-mortality", "paired", root / "input")
        work = root / "work"
        work.mkdir()
        os.chown(work, WORKER_UID, WORKER_UID)
        work.chmod(0o700)
        run_id = new_run_id()
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(WORKER), str(archive), str(inputs),
             str(work), run_id, str(socket_gid), str(WORKER_UID)],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        assert r["euid"] == WORKER_UID and r["groups"] == [socket_gid]
        assert "uid 65534 gid 65534" in r["log"], r
        assert r["status"] == RunStatus.OUTPUT_TOO_LARGE, r
        assert "8.0 MiB" in r["message"]
        assert mib_in_log(r"locked (\d+) MiB", r["log"]) <= 8
        assert os.listdir(work) == []
        assert leftovers(engine, run_id) == []
        assert engine.volumes.list(filters={"label": f"{LABEL_RUN}={run_id}"}) == []
    finally:
        shutil.rmtree(root)


def test_the_model_never_runs_as_root_or_a_named_user():
    """The configured user is a numeric uid:gid other than root; anything else is refused
    with what to set instead, before any run."""
    assert DEFAULT_LIMITS.run_user() == "65534:65534"
    assert DEFAULT_LIMITS.with_(user="2000:3000").run_user() == "2000:3000"
    for bad in ("0:0", "1000:0", "nobody", "1000", "-1:5"):
        with pytest.raises(ValueError, match="numeric uid:gid other than root"):
            DEFAULT_LIMITS.with_(user=bad).run_user()


def test_run_container_reports_a_misconfigured_user_as_the_platforms_fault(tmp_path, engine):
    """A run with a root user is never started: it ends engine_error, naming the setting's
    rule, before anything reaches the engine."""
    from leaderboard.containers.runner import _run_loaded

    r = _run_loaded(engine, "unused:tag", None, task="in-hospital-mortality",  # type: ignore[arg-type]
                    scenario="paired", input_dir=tmp_path, work_dir=tmp_path,
                    limits=DEFAULT_LIMITS.with_(user="0:0"), run_id=new_run_id())  # fmt: skip
    assert r.status == RunStatus.ENGINE_ERROR
    assert "other than root" in r.message
    assert os.listdir(tmp_path) == []
