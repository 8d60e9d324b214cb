"""Significance tests of two entries: DeLong's test against the plainest reference
implementation and scikit-learn, its behaviour under the null; the permutation test against
a hand enumeration of every swap, its patient grouping, and its metrics against the
scorer's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from benchmark_data.tasks import TASKS
from scoring.metrics import compute_metrics
from scoring.significance import (
    ERR_ONE_CLASS,
    compare_predictions,
    delong_test,
    midranks,
    paired_permutation_test,
)
from scoring.truth import Truth
from scoring.validation import Predictions

# --- DeLong ---------------------------------------------------------------------------------


def _delong_1988(y, a, b):
    """DeLong, DeLong & Clarke-Pearson (1988), as written: the Mann-Whitney kernel over every
    (positive, negative) pair, the structural components V10 and V01, S = S10/m + S01/n."""
    y = np.asarray(y)
    scores = [np.asarray(a, float), np.asarray(b, float)]
    xs = [s[y == 1] for s in scores]
    ys = [s[y == 0] for s in scores]
    m, n = len(xs[0]), len(ys[0])

    def psi(x, yy):
        return 1.0 if yy < x else (0.5 if yy == x else 0.0)

    v10 = np.zeros((2, m))
    v01 = np.zeros((2, n))
    for k in range(2):
        for i in range(m):
            v10[k, i] = sum(psi(xs[k][i], ys[k][j]) for j in range(n)) / n
        for j in range(n):
            v01[k, j] = sum(psi(xs[k][i], ys[k][j]) for i in range(m)) / m
    auc = v10.mean(axis=1)
    s10 = np.zeros((2, 2))
    s01 = np.zeros((2, 2))
    for r in range(2):
        for s in range(2):
            s10[r, s] = sum((v10[r, i] - auc[r]) * (v10[s, i] - auc[s]) for i in range(m)) / (m - 1)
            s01[r, s] = sum((v01[r, j] - auc[r]) * (v01[s, j] - auc[s]) for j in range(n)) / (n - 1)
    cov = s10 / m + s01 / n
    return auc, cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]


@pytest.mark.parametrize("seed", range(6))
def test_delong_equals_the_1988_structural_components_on_data_with_ties(seed):
    """Random data with many ties (scores on a coarse grid, some units tied across labels):
    AUROCs and the variance of the difference equal the O(n^2) definition to 1e-10, and the
    AUROCs equal scikit-learn's."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(12, 60))
    y = rng.integers(0, 2, n)
    y[:2], y[2:4] = 1, 0
    a = np.round(rng.random(n) + 0.4 * y, 1)
    b = np.round(rng.random(n) * 0.8 + 0.2 * y, 1)
    res = delong_test(y, a, b)
    auc, var = _delong_1988(y, a, b)
    assert res.auroc_a == pytest.approx(auc[0], abs=1e-10)
    assert res.auroc_b == pytest.approx(auc[1], abs=1e-10)
    assert res.variance == pytest.approx(var, abs=1e-10)
    assert res.auroc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert res.auroc_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert res.se == pytest.approx(np.sqrt(var), abs=1e-10)
    lo, hi = res.ci
    assert lo <= res.diff <= hi
    assert hi - res.diff == pytest.approx(1.959963984540054 * res.se)


def test_delong_p_values_are_roughly_uniform_under_the_null():
    """Two scores of the same model plus independent noise of the same size, on the same
    labels: 400 seeded draws give p < 0.05 in 2% to 9% of them."""
    rng = np.random.default_rng(2014)
    ps = []
    for _ in range(400):
        n = 200
        y = rng.integers(0, 2, n)
        signal = y + rng.normal(0, 1.2, n)
        a = signal + rng.normal(0, 0.7, n)
        b = signal + rng.normal(0, 0.7, n)
        ps.append(delong_test(y, a, b).p)
    ps = np.array(ps)
    assert 0.02 <= np.mean(ps < 0.05) <= 0.09, np.mean(ps < 0.05)
    assert 0.35 <= np.mean(ps < 0.5) <= 0.65


def test_delong_detects_a_real_difference_and_is_antisymmetric():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    good = y + rng.normal(0, 0.8, 400)
    poor = y + rng.normal(0, 3.0, 400)
    ab, ba = delong_test(y, good, poor), delong_test(y, poor, good)
    assert ab.p < 0.001 and ab.diff > 0
    assert ba.diff == pytest.approx(-ab.diff) and ba.p == pytest.approx(ab.p)


def test_delong_refuses_a_single_class_and_handles_zero_variance():
    with pytest.raises(ValueError) as info:
        delong_test([1, 1, 1, 0], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4])
    assert str(info.value) == ERR_ONE_CLASS.format(what="DeLong's test (two of each)", pos=3, neg=1)
    same = delong_test([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2], [0.9, 0.8, 0.1, 0.2])
    assert same.diff == 0 and same.p == 1.0 and same.z == 0.0


def test_midranks_share_tied_positions():
    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0])
    assert midranks(x).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]


# --- permutation test -----------------------------------------------------------------------


def _six_patients():
    """Six patients with one to three units each, ties included."""
    clusters = np.array([0, 0, 1, 2, 2, 2, 3, 4, 4, 5])
    y = np.array([1, 0, 1, 0, 1, 0, 0, 1, 0, 1])
    a = np.array([0.9, 0.2, 0.7, 0.4, 0.6, 0.3, 0.5, 0.8, 0.5, 0.6])
    b = np.array([0.6, 0.5, 0.4, 0.5, 0.7, 0.6, 0.5, 0.3, 0.6, 0.6])
    return clusters, y, a, b


def _by_hand(clusters, y, a, b, metric):
    """Every one of the 2^patients swap patterns, one at a time, with scikit-learn."""
    patients = np.unique(clusters)
    stats = []
    for pattern in itertools.product([False, True], repeat=len(patients)):
        swapped = np.isin(clusters, patients[list(pattern)])
        pa, pb = np.where(swapped, b, a), np.where(swapped, a, b)
        stats.append(metric(y, pa) - metric(y, pb))
    stats = np.array(stats)
    observed = metric(y, a) - metric(y, b)
    return observed, float(np.mean(np.abs(stats) >= abs(observed) - 1e-12))


@pytest.mark.parametrize(
    ("metric", "reference"), [("auroc", roc_auc_score), ("auprc", average_precision_score)]
)
def test_the_exact_test_is_the_hand_enumeration_and_monte_carlo_agrees(metric, reference):
    """Six patients, all 64 swaps by hand with scikit-learn: the exact test's p-value is
    the hand one, and 20,000 random swaps land within 0.01 of it."""
    clusters, y, a, b = _six_patients()
    observed, p_hand = _by_hand(clusters, y, a, b, reference)
    exact = paired_permutation_test(y, a, b, metric=metric, clusters=clusters)
    assert exact.exact and exact.n_permutations == 64
    assert exact.diff == pytest.approx(observed, abs=1e-12)
    assert exact.p == pytest.approx(p_hand, abs=1e-12)
    mc = paired_permutation_test(
        y, a, b, metric=metric, clusters=clusters, n_permutations=20_000, seed=3, exact=False
    )
    assert not mc.exact and mc.n_permutations == 20_000
    assert mc.p == pytest.approx(p_hand, abs=0.01)
    assert 0 < p_hand < 1  # a case where the count matters


@pytest.mark.slow
def test_units_of_a_patient_are_swapped_together():
    """The same units tested with their patients and as if each were its own patient give
    other p-values, and the grouped one is the hand enumeration over patients."""
    clusters, y, a, b = _six_patients()
    grouped = paired_permutation_test(y, a, b, metric="auroc", clusters=clusters)
    alone = paired_permutation_test(y, a, b, metric="auroc", n_permutations=2**10)
    assert grouped.n_permutations == 2**6 and alone.n_permutations == 2**10
    _, p_units = _by_hand(np.arange(len(y)), y, a, b, roc_auc_score)
    _, p_patients = _by_hand(clusters, y, a, b, roc_auc_score)
    assert alone.p == pytest.approx(p_units) and grouped.p == pytest.approx(p_patients)
    assert p_units != pytest.approx(p_patients)


def test_one_patient_swapped_whole_moves_every_unit():
    """With two patients, a pattern that swaps one moves all its units: the statistic takes
    only the four values of whole-patient swaps."""
    clusters = np.array([7, 7, 7, 9, 9, 9])
    y = np.array([1, 0, 1, 0, 1, 0])
    a = np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3])
    b = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7])
    r = paired_permutation_test(y, a, b, metric="accuracy", clusters=clusters)
    assert r.n_permutations == 4 and r.n_patients == 2
    # Patterns: none, 7, 9, both -> diffs 1, 0, 0, -1 (decisions as 0/1 here).
    r = paired_permutation_test(y, (a > 0.5) * 1.0, (b > 0.5) * 1.0, metric="accuracy",
                                clusters=clusters)  # fmt: skip
    assert r.diff == 1.0 and r.p == 0.5


@pytest.mark.parametrize("metric", ["auroc", "auprc", "brier", "accuracy"])
def test_binary_metrics_equal_the_scorers_point_values(metric):
    """The statistic at the identity pattern is the scorer's (and scikit-learn's) metric of
    each entry, ties and all."""
    rng = np.random.default_rng(5)
    n = 300
    y = rng.integers(0, 2, n)
    a = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 2)
    b = np.round(np.clip(0.1 * y + rng.random(n) * 0.9, 0, 1), 2)
    task = TASKS["in-hospital-mortality"]
    if metric == "accuracy":
        a, b = (a >= 0.5).astype(float), (b >= 0.5).astype(float)
        a[:7] = np.nan  # refusals: wrong answers
        want = [
            compute_metrics(task, "decision", y, v, plan=None).point["accuracy"] for v in (a, b)
        ]
        assert want[1] == accuracy_score(y, b)
    else:
        want = [compute_metrics(task, "probability", y, v, plan=None).point[metric] for v in (a, b)]
    r = paired_permutation_test(y, a, b, metric=metric, clusters=rng.integers(0, 120, n))
    assert r.value_a == pytest.approx(want[0], abs=1e-12)
    assert r.value_b == pytest.approx(want[1], abs=1e-12)
    assert r.diff == pytest.approx(want[0] - want[1], abs=1e-12)


def test_macro_auroc_and_kappa_equal_the_scorers_point_values():
    rng = np.random.default_rng(8)
    task = TASKS["phenotyping"]
    n, labels = 200, len(task.label_slugs)
    y = (rng.random((n, labels)) < 0.15).astype(int)
    y[:, 3] = 0  # one label without positives: left out of the mean
    a = np.round(rng.random((n, labels)) * 0.8 + 0.2 * y, 2)
    b = np.round(rng.random((n, labels)), 2)
    want = [compute_metrics(task, "probability", y, v, plan=None).point for v in (a, b)]
    r = paired_permutation_test(y, a, b, metric="macro_auroc", n_permutations=50)
    assert r.value_a == pytest.approx(want[0]["macro_auroc"], abs=1e-12)
    assert r.value_b == pytest.approx(want[1]["macro_auroc"], abs=1e-12)
    r = paired_permutation_test(y, a, b, metric="macro_auprc", n_permutations=50)
    assert r.value_a == pytest.approx(want[0]["macro_auprc"], abs=1e-12)

    los = TASKS["length-of-stay"]
    hours = rng.gamma(2.0, 60.0, 400)
    pa = hours * rng.lognormal(0, 0.3, 400)
    pb = rng.gamma(2.0, 60.0, 400)
    want_k = [compute_metrics(los, "hours", hours, v, plan=None).point["kappa"] for v in (pa, pb)]
    bk = los.buckets
    r = paired_permutation_test(
        bk.bucket(hours), bk.bucket(pa), bk.bucket(pb), metric="kappa",
        n_buckets=len(bk.mean_hours), clusters=rng.integers(0, 90, 400), seed=1,
    )  # fmt: skip
    assert r.value_a == pytest.approx(want_k[0], abs=1e-12)
    assert r.value_b == pytest.approx(want_k[1], abs=1e-12)
    assert r.p < 0.01


def test_same_seed_same_result_and_the_null_gives_large_p_values():
    rng = np.random.default_rng(11)
    n = 400
    y = rng.integers(0, 2, n)
    signal = y + rng.normal(0, 1.0, n)
    a, b = signal + rng.normal(0, 0.5, n), signal + rng.normal(0, 0.5, n)
    clusters = rng.integers(0, 150, n)
    r1 = paired_permutation_test(y, a, b, metric="auroc", clusters=clusters, seed=4)
    r2 = paired_permutation_test(y, a, b, metric="auroc", clusters=clusters, seed=4)
    assert r1 == r2 and r1.n_permutations == 1000 and r1.seed == 4
    swapped = paired_permutation_test(y, b, a, metric="auroc", clusters=clusters, seed=4)
    assert swapped.diff == pytest.approx(-r1.diff) and swapped.p == pytest.approx(r1.p)
    # Monte-Carlo p-values never reach 0: at least 1 / (1 + n_permutations).
    strong = paired_permutation_test(y, signal, rng.random(n), metric="auroc", seed=4)
    assert strong.p == pytest.approx(1 / 1001)


def test_identical_entries_give_p_one_and_bad_inputs_are_refused():
    y = np.array([0, 1, 0, 1])
    a = np.array([0.1, 0.9, 0.3, 0.6])
    assert paired_permutation_test(y, a, a, metric="auroc").p == 1.0
    with pytest.raises(ValueError, match="no permutation test"):
        paired_permutation_test(y, a, a, metric="ece")
    with pytest.raises(ValueError, match="same shape"):
        paired_permutation_test(y, a, a[:3], metric="auroc")
    with pytest.raises(ValueError, match="both classes"):
        paired_permutation_test(np.zeros(4), a, a, metric="auroc")
    with pytest.raises(ValueError, match="one patient per unit"):
        paired_permutation_test(y, a, a, metric="auroc", clusters=[1, 2])
    with pytest.raises(ValueError, match="positive integer"):
        paired_permutation_test(y, a, a, metric="auroc", n_permutations=0)


# --- per scenario, from validated predictions ------------------------------------------------


def test_compare_predictions_tests_each_scenario_and_says_why_delong_is_left_out():
    """In-hospital mortality with one stay per patient gets DeLong; the same units under
    fewer patients (hourly-like rows) get the permutation test only, with the reason."""
    rng = np.random.default_rng(3)
    n = 120
    task = TASKS["in-hospital-mortality"]
    y = rng.integers(0, 2, n)
    paired = np.ones(n, dtype=bool)
    paired[:20] = False
    a = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    b = rng.random(n)

    def preds(v):
        return Predictions(task=task, form="probability", values={"paired": v}, n_rows=n,
                           size=0, sha256="", columns=[])  # fmt: skip

    import pandas as pd

    truth = Truth(task=task, keys=pd.DataFrame({"stay_id": np.arange(n)}), y=y,
                  clusters=np.arange(n), paired=paired)  # fmt: skip
    out = compare_predictions(
        truth, preds(a), preds(b), metric="auroc", scenarios=["paired", "natural", "cxr_missing_50"]
    )
    assert set(out) == {"paired", "natural"}  # the file holds no cxr_missing_50
    rows = truth.scenario_units("paired")
    want = paired_permutation_test(y[rows], a[rows], b[rows], metric="auroc",
                                   clusters=np.arange(n)[rows])  # fmt: skip
    assert out["paired"]["permutation"] == want.as_dict()
    assert out["paired"]["delong"] == delong_test(y[rows], a[rows], b[rows]).as_dict()
    truth.clusters = np.arange(n) // 3
    out = compare_predictions(truth, preds(a), preds(b), metric="auroc", scenarios=["natural"])
    assert out["natural"]["delong"] is None and out["natural"]["permutation"]["n_patients"] == 40
    assert "independent" in out["natural"]["reasons"][0]
