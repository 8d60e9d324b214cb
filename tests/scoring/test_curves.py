"""Curves for the plots: point curves agree with scikit-learn's curves, bands come from the
replicates, and only fixed-size aggregates come out."""

import json

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve, roc_curve

from scoring.bootstrap import make_plan, percentile_ci
from scoring.curves import MIN_BIN_UNITS, pr_band, reliability, roc_band

ROUNDING = 1e-4  # outputs carry 5 significant digits


def _data(seed, n=800, *, decimals=2, prevalence=0.2, rows_per=4):
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(n // rows_per), rows_per)[:n]
    y = (rng.random(n) < prevalence).astype(np.int8)
    p = np.clip(0.25 * y + rng.beta(2, 4, n), 0, 1).round(decimals)
    return clusters, y, p


def _pr_reference(y, p, grid, *, sample_weight=None):
    """Precision of the highest threshold whose recall reaches each grid value."""
    precision, recall, _ = precision_recall_curve(y, p, sample_weight=sample_weight)
    precision, recall = precision[:-1], recall[:-1]  # drop the appended (recall 0, prec 1)
    out = []
    for x in grid:
        ok = np.flatnonzero((recall >= x) & (recall > 0))
        out.append(precision[ok[-1]])  # thresholds increase along the arrays
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_point_curve_is_sklearn_roc_curve_interpolated_on_the_grid(seed):
    clusters, y, p = _data(seed, decimals=1 + seed % 2)
    plan = make_plan(clusters, n_replicates=20, seed=seed)
    band = roc_band(y, p, plan=plan)
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    expected = np.interp(np.array(band["fpr"]), fpr, tpr)
    np.testing.assert_allclose(band["tpr"], expected, rtol=ROUNDING, atol=1e-12)
    assert band["fpr"][0] == 0.0 and band["fpr"][-1] == 1.0 and len(band["fpr"]) == 101


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pr_point_curve_is_sklearn_precision_at_the_first_threshold_reaching_the_recall(seed):
    clusters, y, p = _data(seed, decimals=1 + seed % 2)
    rows = np.random.default_rng(seed).random(y.size) < 0.7
    plan = make_plan(clusters, n_replicates=20, seed=seed)
    band = pr_band(y, p, plan=plan, rows=rows, grid=51)
    expected = _pr_reference(y[rows], p[rows], np.array(band["recall"]))
    np.testing.assert_allclose(band["precision"], expected, rtol=ROUNDING)


def test_a_single_replicate_band_is_that_replicates_weighted_curve():
    """With one replicate the band's low and high are that replicate's curve, which follows
    scikit-learn's curves with the replicate weights as sample_weight."""
    clusters, y, p = _data(4)
    plan = make_plan(clusters, n_replicates=1, seed=11)
    w = plan.row_weights()[0]
    roc = roc_band(y, p, plan=plan, grid=41)
    grid = np.array(roc["fpr"])
    fpr, tpr, _ = roc_curve(y, p, sample_weight=w, drop_intermediate=False)
    # Where a vertical step of the curve sits exactly on the grid, either end is acceptable.
    below, above = np.interp(grid - 1e-9, fpr, tpr), np.interp(grid + 1e-9, fpr, tpr)
    assert roc["tpr_low"] == roc["tpr_high"]
    got = np.array(roc["tpr_low"])
    assert np.all(got >= below - ROUNDING) and np.all(got <= above + ROUNDING)
    pr = pr_band(y, p, plan=plan, grid=41)
    grid = np.array(pr["recall"])
    exact = _pr_reference(y, p, grid, sample_weight=w)
    lower = _pr_reference(y, p, np.maximum(grid - 1e-9, 0), sample_weight=w)
    got = np.array(pr["precision_low"])
    close = np.isclose(got, exact, rtol=ROUNDING) | np.isclose(got, lower, rtol=ROUNDING)
    assert close.all()


@pytest.mark.parametrize("seed", [0, 1])
def test_bands_contain_the_point_curve_almost_everywhere(seed):
    clusters, y, p = _data(seed, n=2000, decimals=3)
    plan = make_plan(clusters, n_replicates=200, seed=seed)
    for band, key in ((roc_band(y, p, plan=plan), "tpr"), (pr_band(y, p, plan=plan), "precision")):
        point = np.array(band[key])
        low, high = np.array(band[f"{key}_low"]), np.array(band[f"{key}_high"])
        inside = (low - ROUNDING <= point) & (point <= high + ROUNDING)
        assert inside.mean() >= 0.9, key
        assert np.all(low <= high)


def test_outputs_are_fixed_size_json_aggregates_whatever_the_number_of_units():
    """No per-unit values leave the module: every list has the grid's or the bins' length,
    the same for 300 and 3000 units, and the result is plain JSON."""
    shapes = []
    for n in (300, 3000):
        clusters, y, p = _data(0, n=n)
        plan = make_plan(clusters, n_replicates=30, seed=0)
        out = {
            "roc": roc_band(y, p, plan=plan, grid=21),
            "pr": pr_band(y, p, plan=plan, grid=21),
            "reliability": reliability(y, p, plan=plan, n_bins=10),
        }
        text = json.dumps(out, allow_nan=False)
        assert json.loads(text) == out
        lists = {
            k: len(v) for part in ("roc", "pr") for k, v in out[part].items() if isinstance(v, list)
        }
        assert set(lists.values()) == {21}
        rel = out["reliability"]
        assert len(rel["bins"]) + len(rel["small_bins"]) == 10
        shapes.append(lists)
    assert shapes[0] == shapes[1]


def test_one_class_replicates_are_counted_and_left_out_of_the_band():
    rng = np.random.default_rng(3)
    y = np.zeros(80, np.int8)
    y[:2] = 1
    p = rng.random(80)
    plan = make_plan(np.arange(80), n_replicates=100, seed=2)
    band = roc_band(y, p, plan=plan, grid=11)
    no_pos = (plan.row_weights()[:, :2].sum(axis=1) == 0).sum()
    assert band["degenerate_replicates"] == no_pos > 0
    assert all(v is not None for v in band["tpr_low"])


def test_reliability_bins_match_a_direct_computation_with_replicate_cis():
    clusters, y, p = _data(5, n=1500, decimals=3)
    p[:5] = 1.0  # the last bin is closed
    plan = make_plan(clusters, n_replicates=50, seed=5)
    rows = np.ones(y.size, dtype=bool)
    rows[-100:] = False
    rel = reliability(y, p, rows=rows, n_bins=10, plan=plan)
    ys, ps, weights = y[rows], p[rows], plan.row_weights(rows)
    shown = {b["lower"]: b for b in rel["bins"]}
    for i in range(10):
        lo, hi = i / 10, (i + 1) / 10
        inside = (ps >= lo) & ((ps < hi) if i < 9 else (ps <= hi))
        if inside.sum() < MIN_BIN_UNITS:
            assert lo not in shown
            assert any(b["lower"] == lo and b["count"] == inside.sum() for b in rel["small_bins"])
            continue
        b = shown[lo]
        assert b["count"] == inside.sum()
        assert b["mean_predicted"] == pytest.approx(ps[inside].mean(), rel=ROUNDING)
        assert b["observed_rate"] == pytest.approx(ys[inside].mean(), rel=ROUNDING)
        reps = [
            np.average(ys[inside], weights=w[inside]) if w[inside].sum() else np.nan
            for w in weights
        ]
        assert b["observed_ci"] == pytest.approx(list(percentile_ci(np.array(reps))), rel=ROUNDING)
    assert rel["n_units"] == rows.sum()
    assert reliability(y, p, n_bins=10)["bins"][0].get("observed_ci") is None
