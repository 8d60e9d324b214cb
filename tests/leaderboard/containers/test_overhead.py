"""The platform's time per run beyond the model's own, measured on the smallest valid model."""

from __future__ import annotations

import statistics

import pytest

from leaderboard.containers import DEFAULT_LIMITS, new_run_id, run_all_scenarios
from tests.leaderboard.containers.conftest import leftovers

pytestmark = pytest.mark.slow


def test_overhead_of_a_run_is_measured(hostile, tiny_bench, engine, tmp_path, record_property):
    """Five runs of a model that only copies the unit list: each result carries the model's
    own time and the overhead (create, start, stop, log, output checks, removal)."""
    run_id = new_run_id()
    run = run_all_scenarios(
        hostile.archive("constant"),
        benchmark=tiny_bench,
        task="in-hospital-mortality",
        work_dir=tmp_path,
        limits=DEFAULT_LIMITS.with_(cpus=1.0),
        client=engine,
        run_id=run_id,
    )
    assert run.ok, run.summary()
    assert leftovers(engine, run_id) == []
    overheads = [r.overhead for r in run.results.values()]
    durations = [r.duration for r in run.results.values()]
    assert all(o is not None and o >= 0 for o in overheads)
    # A process that exits at once can be recorded by the engine as ending "before" it
    # started (results.engine_seconds): its own time is then 0, never unknown.
    assert all(d is not None and d >= 0 for d in durations), [
        r.summary() for r in run.results.values()
    ]
    for r in run.results.values():
        assert abs(r.wall_time - (r.duration + r.overhead)) < 1e-6
    median = statistics.median(overheads)
    record_property("image_load_seconds", round(run.load_time, 3))
    record_property("median_overhead_seconds", round(median, 3))
    record_property("median_model_seconds", round(statistics.median(durations), 3))
    print(
        f"\nimage load {run.load_time:.2f} s; per run: model {statistics.median(durations):.2f} s, "
        f"overhead median {median:.2f} s (min {min(overheads):.2f}, max {max(overheads):.2f})"
    )
    assert median < 5.0
