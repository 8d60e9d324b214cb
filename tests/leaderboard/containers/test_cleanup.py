"""When a worker dies mid-run its container and image stay behind; cleanup_stale, the
platform's reaper, removes them and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

import docker.errors
import pytest

from leaderboard.containers import cleanup_stale, new_run_id, prepare_inputs
from leaderboard.containers.engine import image_tag, run_id_time
from leaderboard.containers.limits import LABEL_DEADLINE
from tests.leaderboard.containers.conftest import REPO, leftovers
from tests.leaderboard.containers.hostile import CMD, tiny_image

pytestmark = pytest.mark.slow

WORKER = """
import sys
from leaderboard.containers import DEFAULT_LIMITS, run_container
run_container(
    sys.argv[1], task="in-hospital-mortality", scenario="paired", input_dir=sys.argv[2],
    work_dir=sys.argv[3], limits=DEFAULT_LIMITS.with_(wall_time=600.0), run_id=sys.argv[4],
)
"""


def test_run_ids_carry_their_time():
    t = datetime(2030, 5, 17, 8, 30, 5, tzinfo=UTC)
    run_id = new_run_id(t)
    assert run_id.startswith("20300517t083005-") and run_id_time(run_id) == t
    assert run_id_time("not-a-run") is None


def test_leftovers_of_a_dead_worker_are_reaped(hostile, tiny_bench, engine, tmp_path):
    """Kill -9 a worker while its model sleeps: the container keeps running and the image
    stays; cleanup_stale spares them while young and removes both once stale, leaving an
    unrelated container and image alone."""
    archive = hostile.archive("sleeper")
    inputs = prepare_inputs(tiny_bench, "in-hospital-mortality", "paired", tmp_path / "in")
    run_id = new_run_id()
    bystander_image = tiny_image(engine, "medmod-test/bystander:latest", changes=CMD)
    bystander = engine.api.create_container(bystander_image, labels={"other": "x"})["Id"]
    worker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WORKER), str(archive), str(inputs),
         str(tmp_path / "work"), run_id],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = engine.containers.list(filters={"name": f"^medmod-{run_id}-paired$"})
            if running:
                break
            assert worker.poll() is None, "the worker ended before its model started"
            time.sleep(0.2)
        assert running, "the model never started"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        time.sleep(1)
        assert engine.containers.get(running[0].id).status == "running"
        # The model's container, the /output volume, its holder and the image are all left.
        volume = f"{running[0].name}-output"
        assert {running[0].name, f"{volume}-holder", volume, image_tag(run_id)} <= set(
            leftovers(engine, run_id)
        )

        young = cleanup_stale(timedelta(hours=1), client=engine)
        assert cleanup_stale(0, client=engine, run_ids=[new_run_id()]).containers == []
        assert young.containers == [] and image_tag(run_id) not in young.images
        assert leftovers(engine, run_id) != []

        report = cleanup_stale(0, client=engine, run_ids=[run_id])
        assert running[0].id[:12] in report.containers
        assert image_tag(run_id) in report.images
        assert report.volumes == [volume]
        assert report.errors == []
        assert leftovers(engine, run_id) == []
        assert engine.api.inspect_container(bystander)["Id"] == bystander
        assert engine.images.get(bystander_image)
    finally:
        if worker.poll() is None:
            worker.kill()
        engine.api.remove_container(bystander, force=True)
        engine.images.remove(bystander_image, force=True)
        cleanup_stale(0, client=engine, run_ids=[run_id])


# A worker whose model sleeps past a 3 s wall time; its run is overdue 2 s after that.
SHORT_WORKER = """
import sys
from leaderboard.containers import DEFAULT_LIMITS, run_container
run_container(
    sys.argv[1], task="in-hospital-mortality", scenario="paired", input_dir=sys.argv[2],
    work_dir=sys.argv[3], limits=DEFAULT_LIMITS.with_(wall_time=3.0, deadline_grace=2.0),
    run_id=sys.argv[4],
)
"""


def _kill_worker_mid_run(engine, archive, inputs, work, run_id):
    """Start a worker process on the sleeper, SIGKILL it 0.5 s after its model started;
    returns the orphaned container (still running) and its deadline (epoch seconds)."""
    worker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SHORT_WORKER), str(archive), str(inputs),
         str(work), run_id],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        running = []
        while time.monotonic() < deadline and not running:
            running = engine.containers.list(filters={"name": f"^medmod-{run_id}-paired$"})
            assert worker.poll() is None, "the worker ended before its model started"
            time.sleep(0.05)
        assert running, "the model never started"
        time.sleep(0.5)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    container = running[0]
    return container, int(container.labels[LABEL_DEADLINE])


def _gone(engine, container_id: str) -> bool:
    try:
        engine.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return True
    return False


def test_a_killed_workers_run_is_removed_by_the_watchdog_within_its_deadline(
    hostile, tiny_bench, engine, tmp_path
):
    """SIGKILL the worker 0.5 s into a run with a 3 s wall time: nothing of the worker is
    left to stop the model, yet the deadline watchdog (`python -m leaderboard.containers
    watchdog`, a process of its own) removes the container within a round (1 s here) of
    its deadline (the wall time plus a 2 s grace), and no earlier."""
    archive = hostile.archive("sleeper")
    inputs = prepare_inputs(tiny_bench, "in-hospital-mortality", "paired", tmp_path / "in")
    run_id = new_run_id()
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "leaderboard.containers", "watchdog", "--interval", "1",
         "--heartbeat", str(tmp_path / "alive")],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        container, deadline = _kill_worker_mid_run(
            engine, archive, inputs, tmp_path / "work", run_id
        )
        time.sleep(1.0)
        assert engine.api.inspect_container(container.id)["State"]["Running"], (
            "the model should still run: its worker is dead, its deadline not yet passed"
        )
        while not _gone(engine, container.id) and time.time() < deadline + 10:
            time.sleep(0.1)
        gone_at = time.time()
        assert _gone(engine, container.id), "the overdue container was never removed"
        # The label holds whole seconds; a round is 1 s, and removal takes a moment.
        assert deadline - 1 <= gone_at <= deadline + 1 + 2.5, (gone_at, deadline)
        assert (tmp_path / "alive").exists()
    finally:
        watchdog.send_signal(signal.SIGTERM)
        _, err = watchdog.communicate(timeout=20)
        cleanup_stale(0, client=engine, run_ids=[run_id])
    assert watchdog.returncode == 0, err
    assert f"removed container {container.id[:12]}, past its deadline" in err


def test_the_reaper_removes_an_overdue_container_long_before_its_lease(
    hostile, tiny_bench, engine, tmp_path
):
    """The reaper's sweep, cleanup_stale(CONTAINER_LEASE), reads each container's deadline:
    a dead worker's container past it is removed though it is minutes, not hours, old; one
    not yet past it is spared."""
    archive = hostile.archive("sleeper")
    inputs = prepare_inputs(tiny_bench, "in-hospital-mortality", "paired", tmp_path / "in")
    run_id = new_run_id()
    try:
        container, deadline = _kill_worker_mid_run(
            engine, archive, inputs, tmp_path / "work", run_id
        )
        early = cleanup_stale(timedelta(hours=5), client=engine)
        assert container.id[:12] not in early.containers and not _gone(engine, container.id)
        time.sleep(max(0.0, deadline + 1 - time.time()))
        report = cleanup_stale(timedelta(hours=5), client=engine)
        assert container.id[:12] in report.overdue and container.id[:12] in report.containers
        assert _gone(engine, container.id)
        assert report.errors == []
    finally:
        cleanup_stale(0, client=engine, run_ids=[run_id])
