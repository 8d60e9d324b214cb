"""One short training run of every baseline on the synthetic generator's tiny benchmark,
through the command line."""

import json

import pandas as pd
import pytest

from benchmark_data.tasks import TASK_SLUGS
from scoring.baselines import MODEL_NAMES
from scoring.baselines.cli import main

synth = pytest.importorskip("benchmark_data.synth")

pytestmark = pytest.mark.slow


def test_train_predict_and_tables_on_the_tiny_synthetic_benchmark(tmp_path, capsys):
    bench = tmp_path / "bench"
    synth.generate(bench, scale="tiny", seed=3)
    run = tmp_path / "run"
    args = ["train", "--benchmark", str(bench), "--task", "all", "--models", "all",
            "--out", str(run), "--epochs", "1", "--max-minutes", "0.5", "--ehr-hidden", "16",
            "--epoch-steps", "2000", "--seed", "11", "--jobs", "1"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Validation" in out and "Seconds to train" in out
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["config"]["cxr_encoder"] == "small"  # synthetic benchmark
    assert manifest["config"]["image_size"] == 64
    for task in TASK_SLUGS:
        for model in MODEL_NAMES:
            entry = manifest["tasks"][task][model]
            assert entry["epochs_run"] <= 1
            df = pd.read_csv(run / entry["predictions"])
            assert set(df["scenario"]) == {
                "paired",
                *(f"cxr_missing_{p}" for p in (25, 50, 75, 100)),
            }
    ihm = manifest["tasks"]["in-hospital-mortality"]
    assert ihm["ehr"]["val_metric"] is not None
    capsys.readouterr()
    assert main(["scores", "--run", str(run), "--replicates", "20"]) == 0
    scores_md = (run / "scores.md").read_text()
    assert "Fusion minus the best unimodal model" in scores_md
    fusion = scores_md.split("Fusion minus the best unimodal model")[1].split("\n\n")[1]
    rows = {line.split(" | ")[0].strip("| "): line for line in fusion.splitlines()[2:]}
    assert set(rows) == set(MODEL_NAMES) - {"ehr", "cxr"}  # every fusion model
    # Every task has a cell; on the tiny benchmark a task's scored paired units may hold a
    # single class (say, no decompensation among the few clean rows): then it says n/a.
    for line in rows.values():
        assert line.count("p=") + line.count("n/a") == len(TASK_SLUGS), fusion
        assert line.count("p=") >= len(TASK_SLUGS) - 1, fusion
