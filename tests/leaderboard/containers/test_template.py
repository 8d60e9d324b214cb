"""The template model image, built here without a registry, runs contained on the demo
benchmark and writes a valid prediction file in every scenario of every task."""

from __future__ import annotations

import docker
import numpy as np
import pandas as pd
import pytest

from benchmark_data import Benchmark
from benchmark_data.tasks import TASK_SLUGS, get_task
from leaderboard.containers import (
    CONTAINER_SCENARIOS,
    DEFAULT_LIMITS,
    RunStatus,
    combine_predictions,
    inspect_image_archive,
    new_run_id,
    output_columns,
    prepare_inputs,
    run_all_scenarios,
    run_container,
)
from leaderboard.containers.limits import GiB
from tests.leaderboard.containers.conftest import leftovers

pytestmark = pytest.mark.slow

LIMITS = DEFAULT_LIMITS.with_(memory_bytes=2 * GiB, cpus=1.0, wall_time=300.0)


def expected_keys(bench: Benchmark, task: str, scenario: str) -> pd.DataFrame:
    """The units a scenario's file must cover: every test unit for paired (and natural),
    the paired units for the cxr_missing scenarios (docs/benchmark-format.md)."""
    units = bench.units(task, "test")
    if scenario.startswith("cxr_missing_"):
        units = units[units["cxr_dicom_id"].notna()]
    return units[list(get_task(task).key_columns)].reset_index(drop=True)


def check_prediction_file(path, bench: Benchmark, task: str, scenario: str) -> pd.DataFrame:
    """Independent check of the prediction-file contract (DESIGN.md, prediction files)."""
    t = get_task(task)
    df = pd.read_csv(path)
    keys = list(t.key_columns)
    values = [c for c in df.columns if c not in keys]
    assert list(df.columns[: len(keys)]) == keys
    assert values in list(output_columns(task).values())
    want = expected_keys(bench, task, scenario)
    got = df[keys].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got.astype(str), want.sort_values(keys).reset_index(drop=True).astype(str)
    )
    v = df[values].to_numpy(dtype=float)
    assert np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()
    if t.kind == "los":
        assert np.allclose(v.sum(axis=1), 1.0, atol=1e-4)
    return df


def test_template_archive_passes_the_upload_checks(template_archive):
    """The archive the build script writes is one linux image with an entrypoint: the
    Debian base, the layer clearing its set-user-ID and set-group-ID bits, the model."""
    info = inspect_image_archive(template_archive)
    assert info.os == "linux" and info.n_layers == 3
    assert info.entrypoint == ("python3", "/opt/model/predict.py")
    assert info.repo_tags == ("medmod/template-model:latest",)


# The tasks the demo benchmark scores on its public test units: the batch track's inputs.
PUBLIC_TASKS = ("in-hospital-mortality", "phenotyping")


def test_batch_runs_of_a_gateway_only_task_are_refused(template_archive, demo_bench, tmp_path):
    for task in TASK_SLUGS:
        assert (demo_bench.scored_on(task) == "public") == (task in PUBLIC_TASKS)
    with pytest.raises(ValueError, match="only the streaming gateway may reveal"):
        run_all_scenarios(
            template_archive, benchmark=demo_bench, task="decompensation", work_dir=tmp_path
        )


@pytest.mark.parametrize("task", PUBLIC_TASKS)
def test_template_runs_every_scenario(
    task, template_archive, demo_bench: Benchmark, engine: docker.DockerClient, tmp_path
):
    """One load, five contained runs; each writes the units of its scenario, and withheld
    images change the scores of the affected units only."""
    run_id = new_run_id()
    run = run_all_scenarios(
        template_archive,
        benchmark=demo_bench,
        task=task,
        work_dir=tmp_path,
        limits=LIMITS,
        client=engine,
        run_id=run_id,
    )
    assert run.ok, run.summary()
    assert list(run.results) == list(CONTAINER_SCENARIOS)
    assert leftovers(engine, run_id) == []
    files = {s: check_prediction_file(p, demo_bench, task, s) for s, p in run.outputs.items()}
    for r in run.results.values():
        assert r.exit_code == 0 and r.duration is not None and r.overhead is not None
        assert "wrote" in r.log_tail and "fitted weights" in r.log_tail
    combined = pd.read_csv(combine_predictions(run.outputs, tmp_path / "all.csv"))
    assert combined["scenario"].value_counts().to_dict() == {s: len(f) for s, f in files.items()}
    assert list(combined.columns) == [*files["paired"].columns, "scenario"]
    # All images withheld: the paired units' scores differ from those made with the images.
    keys = list(get_task(task).key_columns)
    both = files["paired"].merge(files["cxr_missing_100"], on=keys, suffixes=("", "_missing"))
    first = [c for c in files["paired"].columns if c not in keys][0]
    assert (both[first] != both[f"{first}_missing"]).mean() > 0.5


def test_natural_scenario_runs_like_paired(template_archive, demo_bench, engine, tmp_path):
    """`natural` can be run on its own; its inputs and predictions equal paired's."""
    results = {}
    for scenario in ("paired", "natural"):
        inputs = prepare_inputs(demo_bench, "phenotyping", scenario, tmp_path / "in" / scenario)
        r = run_container(
            template_archive,
            task="phenotyping",
            scenario=scenario,
            input_dir=inputs,
            work_dir=tmp_path / scenario,
            limits=LIMITS,
            client=engine,
        )
        assert r.status == RunStatus.SUCCEEDED, (r.message, r.log_tail)
        assert r.load_time > 0
        results[scenario] = check_prediction_file(
            r.output_path, demo_bench, "phenotyping", scenario
        )
    pd.testing.assert_frame_equal(results["paired"], results["natural"])
