"""Reference baselines of a suite beyond MedMod (scoring.baselines.suites), on the tiny
synthetic Yu et al. benchmark: files in the public format for every scenario, absent
modalities handled as declared, and the ablation table from the scoring engine."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark_data.benchmark import Benchmark
from benchmark_data.suite import builtin_suite, parse_suite
from benchmark_data.synth.yu import generate_yu
from scoring.baselines import cli
from scoring.baselines.suites import (
    SuiteBaselineError,
    check_suite,
    score_run,
    train_suite_baselines,
)

YU_MODELS = ("ehr", "cxr", "notes_tfidf", "notes_cnn", "modular", "late", "early", "medfuse_notes")
pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning"),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite-run")
    generate_yu(root / "bench", scale="tiny", seed=3)
    manifest = train_suite_baselines(str(root / "bench"), root / "run", seed=1)
    return root, manifest


def _preds(root, task, model):
    return pd.read_csv(root / "run" / "predictions" / task / f"{model}.csv")


def test_every_model_writes_every_scenario_of_the_suite(run):
    root, manifest = run
    bench = Benchmark.open(root / "bench")
    assert manifest["benchmark"]["hash"] == bench.manifest_hash
    assert list(manifest["tasks"]) == ["mortality-24h", "los-over-3d"]
    test = bench.units("mortality-24h", "test")
    paired = set(test.loc[test["paired"] == 1, "stay_id"])
    expected = [s for s in bench.suite.scenarios if s != "natural"]
    for task in manifest["tasks"]:
        assert tuple(manifest["tasks"][task]) == YU_MODELS
        for model in YU_MODELS:
            p = _preds(root, task, model)
            assert list(dict.fromkeys(p["scenario"])) == expected
            assert set(p.loc[p["scenario"] == "paired", "stay_id"]) == set(test["stay_id"])
            for s in expected[1:]:
                assert set(p.loc[p["scenario"] == s, "stay_id"]) == paired
            assert p["prediction"].between(0, 1).all()


def test_a_notes_model_without_notes_predicts_the_training_prevalence(run):
    root, _ = run
    bench = Benchmark.open(root / "bench")
    prior = bench.units("mortality-24h", "train")["y_true"].mean()
    p = _preds(root, "mortality-24h", "notes_tfidf")
    hidden = p[p["scenario"] == "notes_missing_100"]["prediction"].to_numpy()
    assert np.allclose(hidden, prior, atol=1e-6)
    shown = p[p["scenario"] == "paired"]["prediction"]
    assert shown.nunique() > 1


def test_the_ehr_model_ignores_what_the_scenarios_withhold(run):
    root, _ = run
    p = _preds(root, "los-over-3d", "ehr").pivot(index="stay_id", columns="scenario", values="prediction")  # fmt: skip
    base = p["paired"]
    for s in p.columns:
        both = p[s].notna()
        assert np.allclose(p.loc[both, s], base[both])


def test_fusion_models_change_when_a_modality_is_withheld(run):
    root, _ = run
    p = _preds(root, "mortality-24h", "modular").pivot(index="stay_id", columns="scenario", values="prediction")  # fmt: skip
    rows = p["ablation_ehr"].notna()
    assert not np.allclose(p.loc[rows, "ablation_ehr"], p.loc[rows, "paired"])


def test_the_scores_table_holds_each_ablation_and_what_notes_add(run):
    root, _ = run
    table, reports = score_run(root / "run", replicates=50)
    for title in ("EHR only (demographics and vital signs)", "EHR and chest X-rays", "notes add"):
        assert title in table
    ab = {r["scenario"]: r for r in reports["mortality-24h"]["ehr"]["robustness"]["ablations"]}
    assert list(ab) == ["ablation_ehr", "ablation_ehr_cxr", "ablation_ehr_notes", "paired"]
    assert ab["ablation_ehr_cxr"]["difference"]["value"] == pytest.approx(0.0)
    notes = {r["scenario"]: r for r in reports["mortality-24h"]["notes_tfidf"]["robustness"]["ablations"]}  # fmt: skip
    assert notes["ablation_ehr_cxr"]["value"] == pytest.approx(0.5)


def test_the_run_manifest_says_what_each_model_reads(run):
    _, manifest = run
    info = manifest["model_info"]
    assert info["notes_tfidf"]["modalities"] == ["notes"]
    assert info["modular"]["modalities"] == ["demographics", "ehr", "cxr", "notes"]
    assert json.loads(json.dumps(manifest)) == manifest


def test_a_suite_with_a_modality_they_cannot_read_is_refused_by_name():
    spec = json.loads(builtin_suite("yu2025").to_json())
    spec["slug"] = "waves"
    spec["modalities"].append({"slug": "ecg", "title": "ECG", "required": False})
    with pytest.raises(SuiteBaselineError, match="modalities ecg have no reference baseline"):
        check_suite(parse_suite(spec))


def test_the_command_line_names_the_suites_tasks_for_an_unknown_task(run, capsys):
    root, _ = run
    rc = cli.main(["train", "--benchmark", str(root / "bench"), "--task", "phenotyping", "--out", str(root / "x")])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown task phenotyping" in err and "mortality-24h, los-over-3d" in err


def test_a_multilabel_suite_gets_one_column_per_label_and_the_notes_add(tmp_path):
    from benchmark_data.synth.medfuse import TASK, generate_medfuse
    from scoring.baselines.suites import notes_add, suite_models

    generate_medfuse(tmp_path / "bench", scale="tiny", seed=5)
    bench = Benchmark.open(tmp_path / "bench")
    assert suite_models(bench.suite) == ("labs", "notes_tfidf", "notes_cnn", "modular", "late", "early", "medfuse_notes")  # fmt: skip
    manifest = train_suite_baselines(str(tmp_path / "bench"), tmp_path / "run", models=["labs", "modular"])  # fmt: skip
    assert manifest["model_info"]["modular"]["modalities"] == ["labs", "notes"]
    p = pd.read_csv(tmp_path / "run" / "predictions" / TASK / "modular.csv")
    assert list(p.columns) == ["stay_id", "scenario", *bench.suite.task(TASK).label_slugs]
    assert list(dict.fromkeys(p["scenario"])) == [
        s for s in bench.suite.scenarios if s != "natural"
    ]
    table, reports = score_run(tmp_path / "run", replicates=50)
    assert "notes add (all minus Lab tests only)" in table
    assert reports[TASK]["modular"]["primary_metric"] == "macro_f1"
    assert set(notes_add(reports, bench.suite)) == {TASK}
    with pytest.raises(SuiteBaselineError, match="do not fit suite medfuse; its models are: labs"):
        train_suite_baselines(str(tmp_path / "bench"), tmp_path / "x", models=["cxr"])
