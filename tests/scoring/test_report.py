"""The score report end to end: validated file in, JSON out; fairness against fairlearn;
robustness scenarios; determinism; no per-unit data."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_ratio, equalized_odds_ratio
from sklearn.metrics import roc_auc_score

from benchmark_data.tasks import TASKS
from scoring import plots
from scoring.cli import main as cli_main
from scoring.report import report_json, score_predictions
from scoring.truth import Truth

N_PATIENTS = 400


def _truth(task_slug: str = "in-hospital-mortality", *, seed: int = 0) -> Truth:
    """A mortality-like truth: 400 patients, a stay each, half paired, demographics, nested
    withheld sets."""
    rng = np.random.default_rng(seed)
    task = TASKS[task_slug]
    n = N_PATIENTS
    stay = np.arange(1000, 1000 + n)
    y = (rng.random(n) < 0.2).astype(np.int8)
    paired = rng.random(n) < 0.6
    order = rng.permutation(np.flatnonzero(paired))
    withheld = {}
    for p in (25, 50, 75, 100):
        mask = np.zeros(n, dtype=bool)
        mask[order[: int(round(len(order) * p / 100))]] = True
        withheld[f"cxr_missing_{p}"] = mask
    groups = {
        "gender": rng.choice(np.array(["F", "M"], dtype=object), n),
        "race": rng.choice(
            np.array(["WHITE", "BLACK", "ASIAN"], dtype=object), n, p=[0.6, 0.3, 0.1]
        ),
        "age_group": rng.choice(np.array(["18-40", "40-60", "60-80", "80+"], dtype=object), n),
    }
    return Truth(
        task=task,
        keys=pd.DataFrame({"stay_id": stay}),
        y=y,
        clusters=np.arange(n, dtype=np.int64) + 7,
        paired=paired,
        withheld=withheld,
        groups=groups,
        source_hash="f" * 64,
        benchmark_name="unit",
        benchmark_version="1",
    )


def _scores(truth: Truth, *, strength: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random(truth.n)
    return np.round(np.clip(strength * truth.y + (1 - strength) * noise, 0, 1), 4)


def _file(truth: Truth, *, with_scenarios: bool = True) -> bytes:
    """A prediction file whose scores get worse as more X-rays are withheld."""
    base = _scores(truth, strength=0.3, seed=1)
    rows = [pd.DataFrame({"stay_id": truth.keys["stay_id"], "prediction": base})]
    if with_scenarios:
        paired_ids = truth.keys["stay_id"][truth.paired]
        for s, mask in truth.withheld.items():
            worse = np.where(mask, _scores(truth, strength=0.05, seed=2), base)
            rows[0]["scenario"] = "paired"
            rows.append(
                pd.DataFrame(
                    {"stay_id": paired_ids, "prediction": worse[truth.paired], "scenario": s}
                )
            )
    buf = io.StringIO()
    pd.concat(rows).to_csv(buf, index=False)
    return buf.getvalue().encode()


def test_report_shape_and_primary_metric_match_sklearn():
    truth = _truth()
    rep = score_predictions(_file(truth), truth=truth, replicates=200)
    base = _scores(truth, strength=0.3, seed=1)
    paired = rep["scenarios"]["paired"]
    assert paired["metrics"]["auroc"]["value"] == pytest.approx(
        roc_auc_score(truth.y[truth.paired], base[truth.paired]), abs=1e-12
    )
    assert rep["scenarios"]["natural"]["metrics"]["auroc"]["value"] == pytest.approx(
        roc_auc_score(truth.y, base), abs=1e-12
    )
    lo, hi = paired["metrics"]["auroc"]["ci"]
    assert lo < paired["metrics"]["auroc"]["value"] < hi
    assert len(paired["replicates"]) == 200
    for key in ("task", "scorer_version", "seed", "replicates", "benchmark", "predictions"):
        assert key in rep
    assert rep["replicates"] == 200 and rep["benchmark"]["hash"] == "f" * 64
    assert set(rep["scenarios"]) == {
        "paired", "cxr_missing_25", "cxr_missing_50", "cxr_missing_75", "cxr_missing_100", "natural"
    }  # fmt: skip


def test_robustness_drop_is_negative_and_curve_complete():
    truth = _truth()
    rep = score_predictions(_file(truth), truth=truth, replicates=200)
    rob = rep["robustness"]
    assert rob["drops"]["cxr_missing_100"]["value"] < 0
    assert rob["drops"]["cxr_missing_100"]["ci"][1] < 0
    assert rob["audc"]["value"] is not None
    assert [c["fraction_withheld"] for c in rob["curve"]] == [0, 0.25, 0.5, 0.75, 1.0]
    assert "robustness" in rep["plots"]


def test_a_file_without_scenarios_is_scored_on_paired_and_natural_only():
    truth = _truth()
    rep = score_predictions(_file(truth, with_scenarios=False), truth=truth, replicates=100)
    assert set(rep["scenarios"]) == {"paired", "natural"}
    assert rep["robustness"]["audc"] is None
    assert len(rep["robustness"]["scenarios_missing"]) == 4


def test_fairness_ratios_and_group_metrics_agree_with_fairlearn_and_sklearn():
    truth = _truth()
    rep = score_predictions(_file(truth), truth=truth, replicates=200, threshold=0.4)
    base = _scores(truth, strength=0.3, seed=1)
    rows = truth.paired
    yhat = (base >= 0.4).astype(int)
    for attr in ("gender", "race"):
        entry = rep["fairness"]["attributes"][attr]
        shown = list(entry["groups"])
        keep = rows & np.isin(truth.groups[attr], shown)
        sf = truth.groups[attr][keep]
        assert entry["demographic_parity_ratio"]["value"] == pytest.approx(
            demographic_parity_ratio(truth.y[keep], yhat[keep], sensitive_features=sf), abs=1e-12
        )
        assert entry["equalized_odds_ratio"]["value"] == pytest.approx(
            equalized_odds_ratio(truth.y[keep], yhat[keep], sensitive_features=sf), abs=1e-12
        )
        for g in shown:
            m = rows & (truth.groups[attr] == g)
            assert entry["groups"][g]["value"] == pytest.approx(roc_auc_score(truth.y[m], base[m]))
        vals = [entry["groups"][g]["value"] for g in shown]
        assert entry["gap"]["value"] == pytest.approx(max(vals) - min(vals))
        assert entry["worst_group"] == shown[int(np.argmin(vals))]


def test_small_groups_are_suppressed_not_shown():
    truth = _truth()
    truth.groups["race"] = np.where(np.arange(truth.n) < 10, "ASIAN", "WHITE").astype(object)
    truth.groups["race"][1::2] = "BLACK"
    rep = score_predictions(_file(truth), truth=truth, replicates=50)
    entry = rep["fairness"]["attributes"]["race"]
    assert "ASIAN" not in entry["groups"] and entry["suppressed_groups"] == 1


def test_same_seed_same_report_bytes_and_seed_changes_replicates():
    truth = _truth()
    data = _file(truth)
    a = report_json(score_predictions(data, truth=truth, replicates=100))
    b = report_json(score_predictions(data, truth=truth, replicates=100))
    assert a == b
    c = score_predictions(data, truth=truth, replicates=100, seed=7)
    assert (
        c["scenarios"]["paired"]["replicates"] != json.loads(a)["scenarios"]["paired"]["replicates"]
    )


def _lists(node, out):
    if isinstance(node, dict):
        for v in node.values():
            _lists(v, out)
    elif isinstance(node, list):
        out.append(len(node))
        for v in node:
            _lists(v, out)
    return out


def test_report_holds_no_per_unit_values():
    """No list in the report is as long as the unit lists, and no key is named after units."""
    truth = _truth()
    rep = score_predictions(_file(truth), truth=truth, replicates=100)
    lengths = set(_lists(rep, []))
    assert truth.n not in lengths and int(truth.paired.sum()) not in lengths
    assert "stay_id" not in report_json(rep) and "y_true" not in report_json(rep)


def test_cli_exit_codes_and_messages(tmp_path, capsys):
    truth_df = pd.DataFrame(
        {"stay_id": [1, 2, 3, 4], "y_true": [0, 1, 0, 1], "subject_id": [1, 1, 2, 3]}
    )
    truth_path = tmp_path / "val.csv"
    truth_df.to_csv(truth_path, index=False)
    good = tmp_path / "pred.csv"
    pd.DataFrame({"stay_id": [4, 3, 2, 1], "prediction": [0.9, 0.2, 0.7, 0.1]}).to_csv(
        good, index=False
    )
    out = tmp_path / "report.json"
    rc = cli_main(["score", "--task", "in-hospital-mortality", "--predictions", str(good),
                   "--truth", str(truth_path), "--replicates", "50", "--out", str(out)])  # fmt: skip
    assert rc == 0
    capsys.readouterr()
    assert json.loads(out.read_text())["scenarios"]["paired"]["metrics"]["auroc"]["value"] == 1.0
    bad = tmp_path / "bad.csv"
    bad.write_text("stay_id,prediction\n1,0.5\n2,1.5\n3,0.2\n4,0.1\n")
    rc = cli_main(["score", "--task", "in-hospital-mortality", "--predictions", str(bad),
                   "--truth", str(truth_path), "--replicates", "50"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err and "prediction" in err


def test_forest_plot_orders_entries_as_given():
    fig = plots.forest(
        [
            {"label": "A", "value": 0.9, "ci": [0.85, 0.95]},
            {"label": "B", "value": 0.8, "ci": [0.7, 0.9], "is_baseline": True},
        ],
        metric="auroc",
    )
    assert fig["data"][0]["y"] == [0, 1] and fig["layout"]["yaxis"]["ticktext"] == ["A", "B"]
    assert fig["data"][0]["error_x"]["array"] == pytest.approx([0.05, 0.1])


def test_forest_plot_cuts_long_names_on_its_axis_and_keeps_same_names_apart():
    long = "Cross-modal transformer with late fusion and test-time augmentation (team X)"
    rows = [{"label": long, "value": 0.9, "ci": [0.85, 0.95]},
            {"label": "Twin", "value": 0.8, "ci": [0.7, 0.9]},
            {"label": "Twin", "value": 0.7, "ci": [None, None]}]  # fmt: skip
    fig = plots.forest(rows, metric="auroc")
    ticks = fig["layout"]["yaxis"]["ticktext"]
    assert len(ticks[0]) == plots.FOREST_LABEL_CHARS and ticks[0].endswith("\u2026")
    assert long.startswith(ticks[0][:-1])
    assert fig["data"][0]["text"][0] == long  # whole when hovered
    assert fig["data"][0]["y"] == [0, 1, 2] and ticks[1:] == ["Twin", "Twin"]


def test_decision_entries_get_accuracy_fairness_and_the_refusal_policy():
    truth = _truth()
    base = _scores(truth, strength=0.3, seed=1)
    decision = np.where(base >= 0.5, "1", "0").astype(object)
    decision[::17] = ""
    df = pd.DataFrame({"stay_id": truth.keys["stay_id"], "decision": decision})
    rep = score_predictions(df.to_csv(index=False).encode(), truth=truth, replicates=100)
    assert rep["primary_metric"] == "accuracy" and "decision_policy" in rep
    assert rep["fairness"]["metric"] == "accuracy"
    assert "answer_rate" in rep["scenarios"]["paired"]["metrics"]
    assert "demographic_parity_ratio" in rep["fairness"]["attributes"]["gender"]
