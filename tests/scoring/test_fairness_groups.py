"""Per-group error rates and calibration, intersections, the has-image attribute and the
gap/missing-image correlation, against fairlearn, scikit-learn and direct numpy; and how
scoring.disclosure publishes them."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from scipy.stats import pearsonr
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score

from benchmark_data.tasks import TASKS
from scoring.bootstrap import make_plan, percentile_ci
from scoring.disclosure import MIN_BIN_UNITS, MIN_COUNTED_UNITS, participant_report
from scoring.fairness import MIN_GROUP_UNITS, fairness_report
from scoring.fairness_groups import (
    MIN_CORRELATION_GROUPS,
    NOTE_FEW_GROUPS,
    group_error_rates,
    missing_image_correlation,
)
from scoring.metrics import compute_metrics
from scoring.report import REPORT_SCHEMA, score_predictions
from scoring.truth import Truth

N = 3000
THRESHOLD = 0.4


def _truth(*, n: int = N, seed: int = 0) -> Truth:
    """Mortality-like units of about 2,000 patients (some with two stays), 60% with an
    image, with demographics whose groups differ in prevalence and in missing images."""
    rng = np.random.default_rng(seed)
    patients = rng.integers(0, int(n * 0.7), n)
    race = rng.choice(np.array(["WHITE", "BLACK", "ASIAN", "HISPANIC"], dtype=object), n,
                      p=[0.55, 0.25, 0.12, 0.08])  # fmt: skip
    gender = rng.choice(np.array(["F", "M"], dtype=object), n)
    age = rng.choice(np.array(["18-40", "40-60", "60-80", "80+"], dtype=object), n)
    insurance = rng.choice(np.array(["Medicare", "Medicaid", "Other"], dtype=object), n)
    base = 0.15 + 0.1 * (age == "80+") + 0.05 * (race == "BLACK")
    y = (rng.random(n) < base).astype(np.int8)
    paired = rng.random(n) < np.where(race == "HISPANIC", 0.4, 0.65)
    return Truth(
        task=TASKS["in-hospital-mortality"],
        keys=pd.DataFrame({"stay_id": np.arange(10_000, 10_000 + n)}),
        y=y,
        clusters=patients,
        paired=paired,
        groups={"age_group": age, "gender": gender, "race": race, "insurance": insurance},
        source_hash="a" * 64,
        benchmark_name="unit",
        benchmark_version="1",
    )


def _scores(truth: Truth, *, seed: int = 1) -> np.ndarray:
    """Continuous scores (no score on a calibration bin edge), worse without an image."""
    rng = np.random.default_rng(seed)
    strength = np.where(truth.paired, 0.35, 0.15)
    return np.clip(strength * truth.y + (1 - strength) * rng.random(truth.n) ** 1.5, 1e-6, 1)


@pytest.fixture(scope="module")
def scored():
    truth = _truth()
    p = _scores(truth)
    plan = make_plan(truth.clusters, n_replicates=200, seed=3)
    natural = compute_metrics(truth.task, "probability", truth.y, p, plan=plan, metrics=["auroc"])
    fair = fairness_report(
        truth, "probability", p, plan=plan, rows=truth.paired, threshold=THRESHOLD,
        natural=(natural.point["auroc"], natural.replicates["auroc"]),
    )  # fmt: skip
    return truth, p, plan, fair


def _frame(truth, p, rows, sf):
    yhat = (p >= THRESHOLD).astype(int)
    return MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate, "sel": selection_rate},
        y_true=truth.y[rows],
        y_pred=yhat[rows],
        sensitive_features=sf,
    )


def test_per_group_tpr_fpr_and_selection_rate_agree_with_fairlearn_metricframe(scored):
    truth, p, _, fair = scored
    for attr in ("race", "gender", "age_group", "insurance"):
        rows = truth.paired
        mf = _frame(truth, p, rows, truth.groups[attr][rows])
        groups = fair["attributes"][attr]["groups"]
        assert groups, attr
        for g, ge in groups.items():
            assert ge["tpr"]["value"] == pytest.approx(mf.by_group.loc[g, "tpr"], abs=1e-12)
            assert ge["fpr"]["value"] == pytest.approx(mf.by_group.loc[g, "fpr"], abs=1e-12)
            assert ge["selection_rate"]["value"] == pytest.approx(
                mf.by_group.loc[g, "sel"], abs=1e-12
            )
            for key in ("tpr", "fpr", "selection_rate", "ece"):
                lo, hi = ge[key]["ci"]
                assert lo <= ge[key]["value"] <= hi, (attr, g, key)


def test_intersections_agree_with_metricframe_over_two_sensitive_features(scored):
    truth, p, _, fair = scored
    rows = truth.paired
    sf = pd.DataFrame({"race": truth.groups["race"][rows], "gender": truth.groups["gender"][rows]})
    mf = _frame(truth, p, rows, sf)
    auroc = MetricFrame(
        metrics=roc_auc_score, y_true=truth.y[rows], y_pred=p[rows], sensitive_features=sf
    )
    entry = fair["intersections"]["race x gender"]
    assert entry["attributes"] == ["race", "gender"]
    assert set(fair["intersections"]) == {"race x gender", "age_group x gender"}
    shown = entry["groups"]
    assert len(shown) + entry["suppressed_groups"] == len(mf.by_group)
    assert len(shown) >= 4
    for name, ge in shown.items():
        race, gender = name.split(" / ")
        assert ge["value"] == pytest.approx(auroc.by_group.loc[(race, gender)], abs=1e-12)
        assert ge["tpr"]["value"] == pytest.approx(mf.by_group.loc[(race, gender), "tpr"])
        assert ge["fpr"]["value"] == pytest.approx(mf.by_group.loc[(race, gender), "fpr"])
        assert ge["n_units"] == int(((sf["race"] == race) & (sf["gender"] == gender)).sum())
    vals = [ge["value"] for ge in shown.values()]
    assert entry["gap"]["value"] == pytest.approx(max(vals) - min(vals))


def test_small_intersection_cells_are_suppressed_not_shown():
    """A cell under the minimum size (here: ASIAN x M, 12 units) is counted, never shown,
    although each of its attributes' groups is large enough on its own."""
    truth = _truth()
    race = truth.groups["race"].copy()
    asian_m = np.flatnonzero(truth.paired & (race == "ASIAN") & (truth.groups["gender"] == "M"))
    race[asian_m[12:]] = "WHITE"
    truth.groups["race"] = race
    p = _scores(truth)
    plan = make_plan(truth.clusters, n_replicates=50, seed=3)
    fair = fairness_report(truth, "probability", p, plan=plan, rows=truth.paired, threshold=0.4)
    assert "ASIAN" in fair["attributes"]["race"]["groups"]
    cell = fair["intersections"]["race x gender"]
    assert "ASIAN / M" not in cell["groups"] and "ASIAN / F" in cell["groups"]
    assert cell["suppressed_groups"] >= 1
    assert MIN_GROUP_UNITS > 12


def test_group_ece_equals_a_direct_numpy_computation_and_reliability_sklearn(scored):
    truth, p, _, fair = scored
    for g, ge in fair["attributes"]["race"]["groups"].items():
        m = truth.paired & (truth.groups["race"] == g)
        y, s = truth.y[m], p[m]
        b = np.minimum((s * 10).astype(int), 9)  # equal-width bins, the last one closed
        ece = sum(abs(y[b == k].mean() - s[b == k].mean()) * (b == k).mean()
                  for k in range(10) if (b == k).any())  # fmt: skip
        assert ge["ece"]["value"] == pytest.approx(ece, abs=1e-12)
        prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
        counts = np.bincount(b, minlength=10)
        rel = ge["reliability"]
        assert rel["n_units"] == int(m.sum()) and rel["n_bins"] == 10
        shown = {round(x["lower"] * 10): x for x in rel["bins"]}
        for k, true_k, pred_k in zip(np.flatnonzero(counts), prob_true, prob_pred, strict=True):
            if k in shown:
                assert shown[k]["count"] == counts[k]
                assert shown[k]["observed_rate"] == pytest.approx(true_k, rel=1e-4, abs=1e-9)
                assert shown[k]["mean_predicted"] == pytest.approx(pred_k, rel=1e-4)
        assert len(shown) + len(rel["small_bins"]) == 10


def test_group_cis_are_percentiles_of_the_weighted_replicates(scored):
    """Each replicate's TPR and ECE are the metric with the replicate's row weights."""
    truth, p, plan, _ = scored
    mask = truth.paired & (truth.groups["gender"] == "F")
    yhat = (p >= THRESHOLD).astype(np.int64)
    (out,), _ = group_error_rates(truth.y, yhat, p, form="probability", plan=plan, masks=[mask])
    w = plan.row_weights(mask)
    y, s, h = truth.y[mask], p[mask], yhat[mask]
    tpr = (w * (y * h)).sum(axis=1) / (w * y).sum(axis=1)
    assert out["tpr"]["ci"] == pytest.approx(list(percentile_ci(tpr)), abs=1e-12)
    b = np.minimum((s * 10).astype(int), 9)
    ece = np.zeros(w.shape[0])
    for k in range(10):
        sel = b == k
        ece += np.abs((w[:, sel] * (y[sel] - s[sel])).sum(axis=1))
    ece /= w.sum(axis=1)
    assert out["ece"]["ci"] == pytest.approx(list(percentile_ci(ece)), abs=1e-12)
    assert out["label_counts"] == {"positives": int(y.sum()), "negatives": int((1 - y).sum())}


def test_has_image_attribute_is_scored_on_every_unit(scored):
    truth, p, _, fair = scored
    entry = fair["attributes"]["has_cxr"]
    assert entry["scenario"] == "natural" and set(entry["groups"]) == {"yes", "no"}
    no = ~truth.paired
    assert entry["groups"]["no"]["value"] == pytest.approx(roc_auc_score(truth.y[no], p[no]))
    assert entry["groups"]["no"]["n_units"] == int(no.sum())
    assert entry["groups"]["yes"]["value"] > entry["groups"]["no"]["value"]


def test_gap_missing_share_correlation_agrees_with_scipy(scored):
    truth, p, _, fair = scored
    sec = fair["missing_images"]
    assert sec["scenario"] == "natural" and sec["method"] == "pearson"
    overall = roc_auc_score(truth.y, p)
    gaps, shares = [], []
    for g in sec["groups"]:
        m = truth.groups[g["attribute"]] == g["group"]
        assert g["gap"]["value"] == pytest.approx(roc_auc_score(truth.y[m], p[m]) - overall)
        assert g["missing_share"] == pytest.approx(float((~truth.paired[m]).mean()))
        gaps.append(g["gap"]["value"])
        shares.append(g["missing_share"])
    assert sec["n_groups"] == len(sec["groups"]) == 13
    r = pearsonr(gaps, shares).statistic
    assert sec["correlation"]["value"] == pytest.approx(r, abs=1e-9)
    lo, hi = sec["correlation"]["ci"]
    assert -1 <= lo <= sec["correlation"]["value"] <= hi <= 1
    # Scores are worse without an image, so groups missing more images do worse.
    assert sec["correlation"]["value"] < 0


def test_too_few_groups_give_a_note_instead_of_a_correlation():
    truth = _truth(n=400)
    plan = make_plan(truth.clusters, n_replicates=20, seed=0)
    reps = np.zeros(20)
    m = np.ones(truth.n, dtype=bool)
    sec = missing_image_correlation(
        [("gender", "F", m, 0.7, reps)], (0.7, reps), plan=plan, missing=~truth.paired,
        scenario="natural",
    )  # fmt: skip
    assert sec["correlation"] is None
    assert sec["note"] == NOTE_FEW_GROUPS.format(n=MIN_CORRELATION_GROUPS, scenario="natural")


def _report(truth: Truth, p: np.ndarray, replicates: int = 100) -> dict:
    df = pd.DataFrame({"stay_id": truth.keys["stay_id"], "prediction": np.round(p, 6)})
    return score_predictions(
        df.to_csv(index=False).encode(), truth=truth, replicates=replicates, threshold=THRESHOLD
    )


@pytest.fixture(scope="module")
def report():
    truth = _truth()
    return truth, _report(truth, _scores(truth))


def test_report_carries_the_new_sections_under_a_new_schema(report):
    _, rep = report
    assert rep["schema"] == REPORT_SCHEMA == 2
    fair = rep["fairness"]
    assert fair["scenario"] == "paired" and "race x gender" in fair["intersections"]
    assert "has_cxr" in fair["attributes"] and fair["missing_images"]["correlation"]
    # The board row's gaps stay those of the main scenario's attributes.
    assert "has_cxr" not in rep["summary"]["fairness"]["attributes"]
    assert "reliability_by_group" in rep["plots"]


def test_disclosed_group_figures_are_bounded_and_label_counts_withheld(report):
    truth, rep = report
    view = participant_report(rep)["fairness"]
    text = str(view)
    assert "label_counts" not in text and "'replicates'" not in text
    for attr, entry in view["attributes"].items():
        stored = rep["fairness"]["attributes"][attr]["groups"]
        for g, ge in entry["groups"].items():
            counts = stored[g]["label_counts"]
            for key, counted in (("tpr", counts["positives"]), ("fpr", counts["negatives"])):
                if counted < MIN_COUNTED_UNITS:
                    assert key not in ge and key in ge["suppressed_metrics"]
                else:  # no finer than one unit of what it divides by
                    decimals = len(str(ge[key]["value"]).split(".")[-1])
                    assert 10.0**-decimals >= 1.0 / counted / 10
                    assert decimals <= np.floor(np.log10(counted))
            for b in ge["reliability"]["bins"]:
                assert b["count"] >= MIN_BIN_UNITS
                assert len(str(b["observed_rate"]).split(".")[-1]) <= np.floor(np.log10(b["count"]))
    assert view["intersections"]["race x gender"]["attributes"] == ["race", "gender"]
    sec = view["missing_images"]
    assert sec["correlation"] is None or len(str(sec["correlation"]["value"])) <= 4
    assert all(set(g) == {"attribute", "group", "n_units", "gap", "missing_share"}
               for g in sec["groups"])  # fmt: skip


def test_tpr_of_a_group_with_few_positives_is_suppressed_when_disclosed():
    truth = _truth()
    y = truth.y.copy()
    asian = np.flatnonzero(truth.groups["race"] == "ASIAN")
    y[asian] = 0
    y[asian[:: max(1, len(asian) // 12)]] = 1  # about 12 positives: shown, TPR not
    truth.y = y
    rep = _report(truth, _scores(truth), replicates=50)
    stored = rep["fairness"]["attributes"]["race"]["groups"]["ASIAN"]
    assert stored["label_counts"]["positives"] < MIN_COUNTED_UNITS and "tpr" in stored
    shown = participant_report(rep)["fairness"]["attributes"]["race"]["groups"].get("ASIAN")
    if shown is not None:
        assert "tpr" not in shown and "tpr" in shown["suppressed_metrics"]
        assert "fpr" in shown


def test_correlation_is_hidden_when_one_of_its_groups_is_too_small_to_show(report):
    _, rep = report
    rep = copy.deepcopy(rep)
    rep["fairness"]["missing_images"]["groups"][0]["n_units"] = 40  # one unit moves it a lot
    sec = participant_report(rep)["fairness"]["missing_images"]
    assert sec["correlation"] is None and "too small" in sec["note"]
    assert len(sec["groups"]) == len(rep["fairness"]["missing_images"]["groups"]) - 1


def test_a_report_of_the_previous_schema_is_still_disclosed(report):
    _, rep = report
    old = copy.deepcopy(rep)
    old["schema"] = 1
    fair = old["fairness"]
    for key in ("intersections", "missing_images", "scenario"):
        fair.pop(key)
    fair["attributes"].pop("has_cxr")
    for entry in fair["attributes"].values():
        for ge in entry["groups"].values():
            for key in ("tpr", "fpr", "selection_rate", "ece", "reliability", "label_counts"):
                ge.pop(key)
    view = participant_report(old)["fairness"]
    assert "intersections" not in view and "missing_images" not in view
    assert view["attributes"]["gender"]["groups"]["F"]["value"] is not None


def test_multilabel_tasks_get_intersections_without_per_group_error_rates():
    truth = _truth(n=1500)
    task = TASKS["phenotyping"]
    rng = np.random.default_rng(5)
    y = (rng.random((truth.n, task.n_labels)) < 0.3).astype(np.int8)
    truth = Truth(task=task, keys=truth.keys, y=y, clusters=truth.clusters, paired=truth.paired,
                  groups=truth.groups, source_hash="b" * 64)  # fmt: skip
    p = np.clip(0.3 * y + 0.7 * rng.random(y.shape), 0, 1)
    plan = make_plan(truth.clusters, n_replicates=30, seed=1)
    fair = fairness_report(truth, "probability", p, plan=plan, rows=truth.paired, threshold=0.5)
    groups = fair["intersections"]["race x gender"]["groups"]
    assert groups and all("tpr" not in g and "ece" not in g for g in groups.values())


def test_same_inputs_same_fairness_section(report):
    truth, rep = report
    assert _report(truth, _scores(truth))["fairness"] == rep["fairness"]
