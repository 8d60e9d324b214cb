"""Container entries of a suite whose public test files end at its one prediction time (Yu
et al., MEDFuse): run on those files, in every scenario of the suite, each scenario's
withheld notes and images left out of /input; the outputs combine into one file the scoring
engine reads."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

import scoring
from benchmark_data.benchmark import Benchmark
from benchmark_data.synth.medfuse import generate_medfuse
from benchmark_data.synth.yu import generate_yu
from leaderboard.containers import combine_predictions, prepare_inputs, run_all_scenarios
from leaderboard.containers.inputs import (
    ERR_PAST_PREDICTION,
    container_scenarios,
    cut_at_prediction_time,
    withheld_by_modality,
)
from scoring.truth import truth_from_benchmark


@pytest.fixture(scope="module")
def yu(tmp_path_factory) -> Benchmark:
    out = tmp_path_factory.mktemp("yu") / "bench"
    generate_yu(out, scale="tiny", seed=3)
    return Benchmark.open(out)


def test_inputs_leave_out_what_each_scenario_withholds(yu, tmp_path):
    assert cut_at_prediction_time(yu)
    task = "mortality-24h"
    units = yu.units(task, "test")
    paired = set(units.loc[units["paired"] == 1, "stay_id"])
    for scenario in container_scenarios(yu):
        root = prepare_inputs(yu, task, scenario, tmp_path / scenario)
        shown = pd.read_csv(root / "units.csv")
        hidden = withheld_by_modality(yu, task, scenario)
        assert set(shown["stay_id"]) == (set(units["stay_id"]) if scenario == "paired" else paired)
        notes = pd.read_csv(root / "notes" / "notes_test.csv.gz")
        assert not set(notes["stay_id"]) & hidden.get("notes", set())
        meta = pd.read_csv(root / "cxr" / "metadata.csv", keep_default_na=False)
        with_image = set(meta.loc[meta["path"] != "", "stay_id"])
        assert not with_image & hidden.get("cxr", set())
        assert {p.stem for p in (root / "cxr" / "images").iterdir()} == set(meta.loc[meta["path"] != "", "dicom_id"])  # fmt: skip
        assert (
            shown.loc[shown["stay_id"].isin(hidden.get("notes", set())), "has_notes"] == 0
        ).all()
        assert (root / "demographics.csv").is_file()
        task_json = json.loads((root / "task.json").read_text())
        assert task_json["suite"] == "yu2025" and task_json["modalities"] == ["demographics", "ehr", "cxr", "notes"]  # fmt: skip
    ablation = withheld_by_modality(yu, task, "ablation_ehr")
    assert ablation == {"cxr": paired, "notes": paired}


def test_files_that_run_past_the_prediction_time_are_refused(yu, tmp_path):
    """A benchmark whose test notes go past the cut-off is not run on its files."""
    import shutil

    from benchmark_data import layout
    from benchmark_data.benchmark import BenchmarkWriter, gzip_bytes

    copy = tmp_path / "copy"
    shutil.copytree(yu.uri, copy)
    notes = yu.read_csv(layout.notes("test"))
    notes.loc[notes.index[0], "store_minute"] = 24 * 60 + 1
    w = BenchmarkWriter(copy)
    w.write_bytes(layout.notes("test"), gzip_bytes(notes.to_csv(index=False).encode()))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"][layout.notes("test")] = w.files[layout.notes("test")]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=re.escape(ERR_PAST_PREDICTION.format(what="notes", hours=24)[:60])):  # fmt: skip
        prepare_inputs(Benchmark.open(copy), "mortality-24h", "paired", tmp_path / "in")


@pytest.mark.parametrize("suite", ["yu2025", "medfuse"])
def test_a_container_entry_runs_every_scenario_on_the_files_and_is_scored(
    suite, hostile, engine, yu, tmp_path
):
    if suite == "yu2025":
        bench, task = yu, "mortality-24h"
    else:
        generate_medfuse(tmp_path / "mf", scale="tiny", seed=5)
        bench, task = Benchmark.open(tmp_path / "mf"), "diseases-24h"
    scenarios = container_scenarios(bench)
    run = run_all_scenarios(hostile.archive("suite_reader"), benchmark=bench, task=task,
                            work_dir=tmp_path / "work", scenarios=scenarios, client=engine,
                            mode="batch")  # fmt: skip
    assert run.ok, run.message
    units = bench.units(task, "test")
    paired = units.loc[units["paired"] == 1, "stay_id"]
    for scenario, result in run.results.items():
        seen = dict(re.findall(r"(notes_stays|units|images) (\d+)", result.log_tail))
        hidden = withheld_by_modality(bench, task, scenario).get("notes", set())
        asked = units["stay_id"] if scenario == "paired" else paired
        with_notes = set(units.loc[units["has_notes"] == 1, "stay_id"]) & set(asked)
        assert int(seen["units"]) == len(asked)
        assert int(seen["notes_stays"]) == len(with_notes - hidden), scenario
    combined = combine_predictions(run.outputs, tmp_path / "predictions.csv")
    report = scoring.score_predictions(combined, truth=truth_from_benchmark(bench, task), replicates=50)  # fmt: skip
    assert set(report["scenarios"]) >= {*scenarios, "natural"}
    if suite == "yu2025":
        rows = {r["scenario"]: r for r in report["robustness"]["ablations"]}
        assert rows["ablation_ehr_cxr"]["value"] == pytest.approx(0.5)  # no notes: one value
        assert report["scenarios"]["paired"]["metrics"]["auroc"]["value"] > 0.55
