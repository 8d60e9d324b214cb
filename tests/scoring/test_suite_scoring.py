"""A suite added by its specification and data alone: a benchmark of the tiny suite declared
in tests/benchmark_data/test_suite.py is scored by the unchanged engine, with the suite's
metrics, threshold, scenarios, ablation and fairness bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark_data import Benchmark
from scoring import PredictionFileError
from scoring.report import score_predictions
from scoring.truth import truth_from_benchmark
from tests.benchmark_data.test_suite import TINY
from tests.tiny_suite import N, build_tiny_suite_benchmark


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Benchmark, pd.DataFrame]:
    """A benchmark of the tiny suite (tests/tiny_suite.py) and each stay's risk."""
    dest = tmp_path_factory.mktemp("tiny") / "bench"
    frame = build_tiny_suite_benchmark(dest)
    return Benchmark.open(dest), frame


def prediction_file(path, frame: pd.DataFrame, columns: dict[str, np.ndarray]) -> str:
    """Rows for paired (every unit) and, for the paired units, each withholding scenario."""
    base = pd.DataFrame({"stay_id": frame["stay_id"], **columns, "scenario": "paired"})
    rows = [base]
    for name in ("notes_missing_50", "notes_missing_100", "vitals_only"):
        part = base[frame["paired"].to_numpy() == 1].copy()
        part["scenario"] = name
        rows.append(part)
    pd.concat(rows).to_csv(path, index=False)
    return str(path)


def test_a_binary_task_of_a_new_suite_is_scored_by_its_declaration(tiny, tmp_path):
    bench, frame = tiny
    truth = truth_from_benchmark(bench, "mortality-24h")
    assert truth.suite.slug == "tiny-notes" and truth.task.threshold == 0.3
    assert truth.scenarios == ["paired", "notes_missing_50", "notes_missing_100", "vitals_only", "natural"]  # fmt: skip
    assert set(truth.groups) == {"age_group", "sex"}
    assert set(truth.groups["age_group"]) <= {"<=65", "65-85", ">85"}

    p = 1 / (1 + np.exp(-2 * frame["risk"].to_numpy()))
    report = score_predictions(prediction_file(tmp_path / "p.csv", frame, {"prediction": p}), truth=truth, replicates=200)  # fmt: skip
    assert report["primary_metric"] == "auprc" and report["threshold"] == 0.3
    assert set(report["scenarios"]) == {"paired", "notes_missing_50", "notes_missing_100", "vitals_only", "natural"}  # fmt: skip
    metrics = report["scenarios"]["paired"]["metrics"]
    assert set(metrics) == {"auroc", "auprc", "accuracy"}
    assert metrics["auroc"]["value"] > 0.75  # the risk is in the labels
    # The robustness curve runs over the suite's withheld modality, notes.
    assert [c["scenario"] for c in report["robustness"]["curve"]] == ["paired", "notes_missing_50", "notes_missing_100"]  # fmt: skip
    assert report["robustness"]["audc"] is not None
    # The suite's attributes, and whether a unit has the optional modality (on all units).
    assert set(report["fairness"]["attributes"]) == {"age_group", "sex", "has_notes"}
    assert report["fairness"]["attributes"]["has_notes"]["scenario"] == "natural"

    # Yes/no answers with refusals rank apart, with the answer rate the suite asks for.
    decision = np.where(p >= 0.5, 1.0, 0.0)
    decision[::10] = np.nan
    path = tmp_path / "d.csv"
    pd.DataFrame({"stay_id": frame["stay_id"], "decision": decision}).to_csv(path, index=False)
    report = score_predictions(str(path), truth=truth, replicates=100)
    assert set(report["scenarios"]["paired"]["metrics"]) == {"accuracy", "answer_rate"}
    answered = ~np.isnan(decision[frame["paired"].to_numpy() == 1])
    assert report["scenarios"]["paired"]["metrics"]["answer_rate"]["value"] == pytest.approx(answered.mean())  # fmt: skip


def test_a_multilabel_task_of_a_new_suite_takes_its_label_columns(tiny, tmp_path):
    bench, frame = tiny
    truth = truth_from_benchmark(bench, "diseases")
    risk = frame["risk"].to_numpy()
    cols = {slug: 1 / (1 + np.exp(-risk * k)) for slug, k in (("sepsis", 1), ("heart_failure", 1), ("aki", 1))}  # fmt: skip
    report = score_predictions(prediction_file(tmp_path / "p.csv", frame, cols), truth=truth, replicates=100)  # fmt: skip
    assert report["primary_metric"] == "macro_f1"
    assert set(report["scenarios"]["paired"]["metrics"]) == {"macro_f1", "micro_f1", "macro_auroc"}
    # MedMod's label columns mean nothing here: the file is refused, naming the task's own.
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"stay_id": frame["stay_id"], "shock": 0.5}).to_csv(bad, index=False)
    with pytest.raises(PredictionFileError, match="sepsis, heart_failure, aki"):
        score_predictions(str(bad), truth=truth, replicates=100)


def test_a_task_of_another_suite_is_not_found_in_this_benchmark(tiny):
    bench, _ = tiny
    with pytest.raises(KeyError, match="unknown task 'in-hospital-mortality' in suite tiny-notes"):
        truth_from_benchmark(bench, "in-hospital-mortality")


def test_the_threshold_a_suite_declares_is_the_one_used(tiny, tmp_path):
    bench, frame = tiny
    assert TINY["tasks"][0]["threshold"] == 0.3
    truth = truth_from_benchmark(bench, "mortality-24h")
    p = np.full(N, 0.4)  # above 0.3: every unit is called positive
    report = score_predictions(prediction_file(tmp_path / "p.csv", frame, {"prediction": p}), truth=truth, replicates=50)  # fmt: skip
    positives = truth.y[truth.scenario_units("paired")].mean()
    assert report["scenarios"]["paired"]["metrics"]["accuracy"]["value"] == pytest.approx(positives)


def test_a_yes_no_entry_of_the_yu_suite_is_scored_with_its_decision_metrics(tmp_path):
    """Large vision-language models answer yes/no (or not at all): Yu et al.'s accuracy,
    precision, recall, specificity, F1 and the share answered."""
    import numpy as np
    import pandas as pd

    import scoring
    from benchmark_data.benchmark import Benchmark
    from benchmark_data.synth.yu import generate_yu
    from scoring.truth import truth_from_benchmark

    generate_yu(tmp_path / "yu", scale="tiny", seed=3)
    bench = Benchmark.open(tmp_path / "yu")
    units = bench.units("mortality-24h", "test")
    answers = np.where(np.arange(len(units)) % 4 == 0, np.nan, np.arange(len(units)) % 2)
    body = pd.DataFrame({"stay_id": units["stay_id"], "decision": answers}).to_csv(index=False)
    rep = scoring.score_predictions(body.encode(), truth=truth_from_benchmark(bench, "mortality-24h"), replicates=50)  # fmt: skip
    assert rep["predictions"]["form"] == "decision" and rep["primary_metric"] == "accuracy"
    metrics = rep["scenarios"]["natural"]["metrics"]
    assert set(metrics) == {"accuracy", "precision", "recall", "specificity", "f1", "answer_rate"}
    assert metrics["answer_rate"]["value"] == pytest.approx(np.mean(~np.isnan(answers)))


def test_the_command_line_scores_a_suite_task_against_labels_one_holds(tmp_path, capsys):
    """A researcher checks a validation file of another suite: by the shipped suite's slug or
    by the public/suite.json of the benchmark they downloaded, with the task's threshold."""
    import json

    from benchmark_data.benchmark import Benchmark
    from benchmark_data.synth.medfuse import TASK, generate_medfuse
    from scoring.cli import main as cli_main

    generate_medfuse(tmp_path / "mf", scale="tiny", seed=5)
    bench = Benchmark.open(tmp_path / "mf")
    slugs = list(bench.suite.task(TASK).label_slugs)
    val = bench.units(TASK, "val")
    val[["stay_id", "subject_id", *slugs]].to_csv(tmp_path / "labels.csv", index=False)
    val.assign(**{s: 0.4 for s in slugs})[["stay_id", *slugs]].to_csv(tmp_path / "p.csv", index=False)  # fmt: skip
    for suite in ("medfuse", str(tmp_path / "mf" / "public" / "suite.json")):
        out = tmp_path / "report.json"
        rc = cli_main(["score", "--task", TASK, "--suite", suite, "--predictions", str(tmp_path / "p.csv"),
                       "--truth", str(tmp_path / "labels.csv"), "--replicates", "20", "--out", str(out), "--quiet"])  # fmt: skip
        assert rc == 0
        report = json.loads(out.read_text())
        assert report["primary_metric"] == "macro_f1" and report["threshold"] == 0.3
    rc = cli_main(["score", "--task", TASK, "--predictions", str(tmp_path / "p.csv"), "--truth", str(tmp_path / "labels.csv")])  # fmt: skip
    assert rc == 2
    assert "unknown task 'diseases-24h' in suite medmod; the tasks are: in-hospital-mortality" in capsys.readouterr().err  # fmt: skip
