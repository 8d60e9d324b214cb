"""The /input tree of a scenario: the units to predict, the test split's EHR files, only the
images the scenario shows, and nothing credentialed."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from benchmark_data import Benchmark
from benchmark_data.tasks import TASK_SLUGS, get_task
from leaderboard.containers import prepare_inputs, withheld_stays
from leaderboard.containers.inputs import ERR_DEST, ERR_SCENARIO


@pytest.mark.parametrize("task", TASK_SLUGS)
@pytest.mark.parametrize("scenario", ["paired", "cxr_missing_50", "cxr_missing_100", "natural"])
def test_inputs_show_only_the_scenarios_images(tiny_bench: Benchmark, tmp_path, task, scenario):
    t = get_task(task)
    root = prepare_inputs(tiny_bench, task, scenario, tmp_path / "input")
    units = pd.read_csv(root / "units.csv", dtype={"cxr_dicom_id": "string"})
    public = tiny_bench.units(task, "test")
    hidden = withheld_stays(tiny_bench, task, scenario)
    if scenario.startswith("cxr_missing_"):
        assert len(units) == public["cxr_dicom_id"].notna().sum()
        assert hidden and units["stay_id"].isin(hidden).any()
    else:
        assert len(units) == len(public) and not hidden
    assert list(units.columns) == list(public.columns)
    # No label of any kind, and the withheld stays' images are blank and absent.
    assert not set(t.label_columns) & set(units.columns)
    assert units.loc[units["stay_id"].isin(hidden), "cxr_dicom_id"].isna().all()
    shown = set(units["cxr_dicom_id"].dropna())
    files = {p.stem for p in (root / "cxr" / "images").iterdir()}
    assert files == shown
    meta = pd.read_csv(
        root / "cxr" / "metadata.csv", dtype={"dicom_id": str}, keep_default_na=False
    )
    assert set(meta.loc[meta["path"] != "", "dicom_id"]) == shown
    task_json = json.loads((root / "task.json").read_text())
    assert task_json["task"] == task and task_json["scenario"] == scenario
    assert task_json["key_columns"] == list(t.key_columns)
    assert task_json["units"] == len(units) and task_json["images"] == len(shown)
    assert sorted(os.listdir(root / "ehr")) == [
        "discretized_test.npy",
        "discretized_test_index.csv",
        "timeseries_test.csv.gz",
    ]


def test_no_credentialed_data_reaches_the_inputs(tiny_bench: Benchmark, tmp_path):
    """Neither the test labels' columns nor demographics appear in any input file."""
    root = prepare_inputs(tiny_bench, "phenotyping", "paired", tmp_path / "input")
    forbidden = {
        "y_true",
        "age",
        "gender",
        "race",
        "insurance",
        *get_task("phenotyping").label_slugs,
    }
    for path in root.rglob("*.csv"):
        header = path.read_text().splitlines()[0].split(",")
        assert not forbidden & set(header), path
    stays = pd.read_csv(root / "stays.csv")
    assert set(stays.columns) == {"stay_id", "subject_id", "hadm_id", "intime", "stay"}


def test_later_scenarios_link_the_first_ones_files(tiny_bench: Benchmark, tmp_path):
    first = prepare_inputs(tiny_bench, "radiology", "paired", tmp_path / "paired")
    later = prepare_inputs(
        tiny_bench, "radiology", "cxr_missing_25", tmp_path / "m25", link_from=first
    )
    image = next((later / "cxr" / "images").iterdir())
    assert image.stat().st_ino == (first / "cxr" / "images" / image.name).stat().st_ino
    npy = "ehr/discretized_test.npy"
    assert (later / npy).stat().st_ino == (first / npy).stat().st_ino
    assert oct((later / "units.csv").stat().st_mode & 0o777) == "0o644"


def test_bad_requests_are_refused(tiny_bench: Benchmark, tmp_path):
    with pytest.raises(ValueError, match="unknown scenario 'cxr_missing_10'"):
        prepare_inputs(tiny_bench, "phenotyping", "cxr_missing_10", tmp_path / "a")
    assert "unknown scenario" in ERR_SCENARIO
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "old").write_text("x")
    with pytest.raises(FileExistsError, match="is not empty"):
        prepare_inputs(tiny_bench, "phenotyping", "paired", tmp_path / "b")
    assert "not empty" in ERR_DEST
