"""A whole run on a very small benchmark: files, prediction format, reproducibility."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import scoring
from benchmark_data.benchmark import Benchmark
from benchmark_data.tasks import TASK_SLUGS, get_task
from scoring.baselines import MODEL_NAMES
from scoring.baselines.artifacts import predict_run, read_manifest
from scoring.baselines.cli import main
from scoring.baselines.predict import prediction_columns
from scoring.baselines.run import RunConfig, train_model, train_run

from .fixtures import make_tiny_benchmark

pytestmark = pytest.mark.slow  # generates benchmarks or trains models

CONFIG = RunConfig(seed=5, epochs=2, patience=1, ehr_hidden=8, epoch_steps=600, threads=1)


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    return make_tiny_benchmark(tmp_path_factory.mktemp("bench"), seed=7)


@pytest.fixture(scope="module")
def run_dir(bench_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train_run(bench_dir, tasks=list(TASK_SLUGS), models=list(MODEL_NAMES), out=out, config=CONFIG)
    return out


def _files(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.glob("predictions/*/*.csv"))}


@pytest.mark.parametrize("task", TASK_SLUGS)
def test_prediction_files_cover_every_scenario(bench_dir, run_dir, task):
    """Scenario paired has every test unit in unit-list order; each cxr_missing scenario has
    exactly the paired units; values are probabilities (bucket rows sum to 1)."""
    t = get_task(task)
    bench = Benchmark.open(bench_dir)
    units = bench.units(task, "test")
    keys = list(t.key_columns)
    paired_units = units[units["cxr_dicom_id"].notna()]
    for model in MODEL_NAMES:
        df = pd.read_csv(run_dir / "predictions" / task / f"{model}.csv")
        assert list(df.columns) == [*keys, "scenario", *prediction_columns(t)]
        p = df[df["scenario"] == "paired"].reset_index(drop=True)
        assert p[keys].astype(str).equals(units[keys].astype(str))
        scen = sorted(set(df["scenario"]) - {"paired"})
        assert scen == sorted(bench.scenarios(task).withheld)
        for s in scen:
            rows = df[df["scenario"] == s].reset_index(drop=True)
            assert (
                rows[keys].astype(str).equals(paired_units[keys].astype(str).reset_index(drop=True))
            )
        vals = df[prediction_columns(t)].to_numpy()
        assert np.isfinite(vals).all() and (vals >= 0).all() and (vals <= 1).all()
        if t.kind == "los":
            assert np.allclose(vals.sum(axis=1), 1.0, atol=1e-5)


def test_withheld_images_change_only_image_models(bench_dir, run_dir):
    """The EHR model predicts the same with or without images; the CXR model gives its
    no-image prediction to every withheld unit."""
    task = "in-hospital-mortality"
    ehr = pd.read_csv(run_dir / "predictions" / task / "ehr.csv")
    cxr = pd.read_csv(run_dir / "predictions" / task / "cxr.csv")
    paired = ehr[ehr["scenario"] == "paired"].set_index("stay_id")["prediction"]
    full = ehr[ehr["scenario"] == "cxr_missing_100"].set_index("stay_id")["prediction"]
    assert np.array_equal(paired.loc[full.index].to_numpy(), full.to_numpy())
    held = cxr[cxr["scenario"] == "cxr_missing_100"]["prediction"]
    assert held.nunique() == 1
    unpaired = Benchmark.open(bench_dir).units(task, "test")["cxr_dicom_id"].isna().to_numpy()
    no_img = cxr[cxr["scenario"] == "paired"]["prediction"].to_numpy()[unpaired]
    assert np.allclose(no_img, held.iloc[0])


def test_manifest_records_the_run(bench_dir, run_dir):
    m = read_manifest(run_dir)
    bench = Benchmark.open(bench_dir)
    assert m["seed"] == 5 and m["benchmark"]["hash"] == bench.manifest_hash
    assert m["code_version"]
    assert m["config"]["ehr_hidden"] == 8 and m["config"]["cxr_encoder"] == "small"
    assert set(m["tasks"]) == set(TASK_SLUGS)
    for task in TASK_SLUGS:
        assert set(m["tasks"][task]) == set(MODEL_NAMES)
        for entry in m["tasks"][task].values():
            assert entry["train_seconds"] >= 0 and entry["predict_seconds"] >= 0
    assert m["tasks"]["phenotyping"]["cxr"]["cxr_encoder_from"] == "radiology/cxr"
    assert m["timings"]["total_seconds"] > 0
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert {(r["task"], r["model"]) for r in log} == {
        (t, n) for t in TASK_SLUGS for n in MODEL_NAMES
    }
    assert all("val_metric" in r and "train_loss" in r for r in log)


def test_same_seed_same_predictions(bench_dir, run_dir, tmp_path):
    again = tmp_path / "again"
    train_run(bench_dir, tasks=["in-hospital-mortality", "length-of-stay"],
              models=list(MODEL_NAMES), out=again, config=CONFIG)  # fmt: skip
    first = _files(run_dir)
    for rel, data in _files(again).items():
        # Radiology was trained first in both runs (it initialises the CXR encoders).
        assert data == first[rel], rel


def test_tasks_in_worker_processes_give_the_same_predictions(bench_dir, run_dir, tmp_path):
    par = tmp_path / "parallel"
    m = train_run(bench_dir, tasks=["in-hospital-mortality", "phenotyping"], models=["daft"],
                  out=par, config=CONFIG, workers=2)  # fmt: skip
    assert m["torch"]["workers"] == 2
    assert list(m["tasks"]) == ["radiology", "in-hospital-mortality", "phenotyping"]
    first = _files(run_dir)
    for rel, data in _files(par).items():
        assert data == first[rel], rel
    log = [json.loads(line) for line in (par / "train_log.jsonl").read_text().splitlines()]
    assert {r["task"] for r in log} == {"radiology", "in-hospital-mortality", "phenotyping"}


def test_predict_rewrites_identical_files_from_checkpoints(bench_dir, run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for p in copy.glob("predictions/*/*.csv"):
        p.unlink()
    predict_run(bench_dir, run_dir=copy)
    assert _files(copy) == _files(run_dir)


def test_files_are_accepted_by_the_scoring_engine(bench_dir, run_dir):
    if not hasattr(scoring, "score_predictions"):
        pytest.skip("the scoring engine is not available")
    bench = Benchmark.open(bench_dir)
    for task in ("in-hospital-mortality", "length-of-stay", "radiology"):
        truth = scoring.truth_from_benchmark(bench, task)
        rep = scoring.score_predictions(
            run_dir / "predictions" / task / "joint.csv", truth=truth, replicates=20
        )
        assert "cxr_missing_100" in rep["robustness"]["drops"]


def test_scores_command_writes_a_markdown_table(run_dir, capsys):
    assert main(["scores", "--run", str(run_dir), "--replicates", "20"]) == 0
    text = (run_dir / "scores.md").read_text()
    assert "| model |" in text and "| mmtm |" in text
    assert "Validation" in capsys.readouterr().out


def test_scores_of_chosen_tasks_of_a_run_in_progress(run_dir, tmp_path, capsys):
    """A run stopped part way (a model trained but its file not yet written) is scored for
    the tasks asked, and the table says what it could not score."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "predictions" / "in-hospital-mortality" / "mmtm.csv").unlink()
    argv = ["scores", "--run", str(run), "--replicates", "20", "--source", "predictions"]
    assert main([*argv, "--task", "in-hospital-mortality"]) == 0
    text = (run / "scores.md").read_text()
    assert "| model | in-hospital-mortality |\n" in text and "phenotyping" not in text
    assert "Not scored, no prediction file yet: in-hospital-mortality mmtm." in text
    assert "| mmtm | no file yet |" in text
    capsys.readouterr()
    assert main([*argv, "--task", "in-hospital-mortality,sepsis"]) == 2
    err = capsys.readouterr().err
    assert "unknown task of this run sepsis; choose all or from: radiology, in-hospital" in err
    # A run trained elsewhere recorded its benchmark's location as given there.
    manifest = json.loads((run / "run.json").read_text())
    manifest["benchmark"]["uri"] = "var/demo/benchmark"
    (run / "run.json").write_text(json.dumps(manifest))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "var/demo/benchmark is not a benchmark" in err and "give --benchmark DIR" in err


def test_cli_refuses_an_unknown_model(bench_dir, tmp_path, capsys):
    rc = main(["train", "--benchmark", str(bench_dir), "--models", "ehr,gpt",
               "--out", str(tmp_path)])  # fmt: skip
    assert rc == 2 and "unknown model gpt" in capsys.readouterr().err


def test_one_model_at_a_time_gives_the_run_s_predictions(bench_dir, run_dir, tmp_path):
    """The platform's worker trains a run one model per job: the files are those of
    training the whole run at once."""
    one = tmp_path / "one"
    order = [("radiology", "cxr"), ("in-hospital-mortality", "ehr"),
             ("in-hospital-mortality", "cxr"), ("in-hospital-mortality", "daft")]  # fmt: skip
    for task, model in order:
        entry = train_model(bench_dir, run_dir=one, task=task, model=model, config=CONFIG)
        assert entry["predictions"] == f"predictions/{task}/{model}.csv"
    first = _files(run_dir)
    made = _files(one)
    assert sorted(map(str, made)) == sorted(f"predictions/{t}/{m}.csv" for t, m in order)
    for rel, data in made.items():
        assert data == first[rel], rel
    manifest = json.loads((one / "run.json").read_text())
    assert manifest["config"]["seed"] == CONFIG.seed
    assert {t: sorted(ms) for t, ms in manifest["tasks"].items()} == {
        "radiology": ["cxr"], "in-hospital-mortality": ["cxr", "daft", "ehr"]}  # fmt: skip
    log = [json.loads(line) for line in (one / "train_log.jsonl").read_text().splitlines()]
    assert {(r["task"], r["model"]) for r in log} == set(order)
    assert not list(one.glob("train_log.jsonl.*"))


def test_a_model_before_what_it_builds_on_is_refused(bench_dir, tmp_path, capsys):
    rc = main(["train-model", "--benchmark", str(bench_dir), "--run", str(tmp_path / "r"),
               "--task", "phenotyping", "--model", "late"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert "phenotyping/late builds on phenotyping/ehr, phenotyping/cxr" in err
    assert "train those first" in err


def test_two_processes_fill_one_run(bench_dir, tmp_path):
    """Two models trained at once by two processes: the manifest keeps both."""
    run = tmp_path / "both"
    train_model(bench_dir, run_dir=run, task="radiology", model="cxr", config=CONFIG)

    def command(task: str) -> list[str]:
        return [sys.executable, "-m", "scoring.baselines", "train-model", "--benchmark",
                str(bench_dir), "--run", str(run), "--task", task, "--model", "ehr"]  # fmt: skip

    procs = [
        subprocess.Popen(command(task), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for task in ("in-hospital-mortality", "phenotyping")
    ]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        assert "selected epoch" in out
    manifest = json.loads((run / "run.json").read_text())
    assert {t: sorted(ms) for t, ms in manifest["tasks"].items()} == {
        "radiology": ["cxr"], "in-hospital-mortality": ["ehr"], "phenotyping": ["ehr"]}  # fmt: skip
