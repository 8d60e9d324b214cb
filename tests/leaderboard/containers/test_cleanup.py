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

import pytest

from leaderboard.containers import LABEL_RUN, cleanup_stale, new_run_id, prepare_inputs
from leaderboard.containers.engine import image_tag, run_id_time
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
            running = engine.containers.list(filters={"label": f"{LABEL_RUN}={run_id}"})
            if running:
                break
            assert worker.poll() is None, "the worker ended before its model started"
            time.sleep(0.2)
        assert running, "the model never started"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        time.sleep(1)
        assert engine.containers.get(running[0].id).status == "running"
        assert sorted(leftovers(engine, run_id)) == sorted([running[0].name, image_tag(run_id)])

        young = cleanup_stale(timedelta(hours=1), client=engine)
        assert cleanup_stale(0, client=engine, run_ids=[new_run_id()]).containers == []
        assert young.containers == [] and image_tag(run_id) not in young.images
        assert leftovers(engine, run_id) != []

        report = cleanup_stale(0, client=engine, run_ids=[run_id])
        assert running[0].id[:12] in report.containers
        assert image_tag(run_id) in report.images
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
