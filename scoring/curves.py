"""Aggregate curves for the report's plots: ROC and precision-recall curves with bootstrap
bands, and the reliability diagram.

Only aggregates leave this module: values on a fixed grid (or per calibration bin), rounded,
never a per-unit score or label. Calibration bins with fewer than ``MIN_BIN_UNITS`` units
show their count only, since their mean score and event rate would describe a handful of
units.

Interpolation:

* ROC: the true positive rate at each false positive rate of the grid, linear between the
  curve's points (tied scores give a diagonal segment, as in scikit-learn's ``roc_curve``),
  taking the upper point where the curve rises vertically.
* Precision-recall: at recall ``r`` the precision of the highest threshold whose recall
  reaches ``r`` (step-wise, no linear interpolation, which would overstate precision); the
  area under this step curve is the average precision.

>>> rng = np.random.default_rng(0)
>>> y = (rng.random(300) < 0.3).astype(int); p = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
>>> from scoring.bootstrap import make_plan
>>> band = roc_band(y, p, plan=make_plan(np.arange(300), n_replicates=50, seed=0), grid=11)
>>> len(band["fpr"]), band["tpr"][0] <= band["tpr"][-1] == 1.0
(11, True)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from scoring.bootstrap import ReplicatePlan, percentile_ci, select_rows
from scoring.kernels import (
    LevelCounts,
    batch_size_for,
    calibration_bin,
    cluster_sums,
    level_counts,
    rank_layout,
    safe_divide,
)

SIGNIFICANT_DIGITS = 5
MIN_BIN_UNITS = 10
BAND_LEVEL = 0.95

ERR_GRID = "grid must have at least 2 points, got {grid}"
ERR_BINS = "n_bins must be at least 1, got {n_bins}"

ROC_INTERPOLATION = "linear between ROC points; upper point at vertical steps"
PR_INTERPOLATION = "step: precision of the highest threshold reaching the recall"


def _round(values: np.ndarray | list[float]) -> list[float | None]:
    """JSON-ready list: ``SIGNIFICANT_DIGITS`` significant digits, None for NaN."""
    return [
        None if not np.isfinite(v) else float(f"{float(v):.{SIGNIFICANT_DIGITS}g}") for v in values
    ]


def _one(v: float | None) -> float | None:
    return None if v is None else _round([v])[0]


def _local(
    plan: ReplicatePlan, rows: np.ndarray | None, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Selected indices, their clusters renumbered over the selection, the clusters' counts."""
    idx = select_rows(rows, n)
    used, local = np.unique(plan.unit_cluster[idx], return_inverse=True)
    counts = plan.counts_by_cluster
    return idx, local.reshape(-1), counts if used.size == plan.n_clusters else counts[used]


def _search_rows(
    keys: np.ndarray, queries: np.ndarray, side: Literal["left", "right"]
) -> np.ndarray:
    """Row-wise ``searchsorted``: ``keys`` (m, k) sorted within rows, ``queries`` (q,) shared.

    Rows of values in [0, 1] are offset by 2 per row, so one sorted 1-D search serves all
    rows (the offset costs about 1e-12 of resolution, irrelevant on a plotting grid).
    """
    m, k = keys.shape
    off = 2.0 * np.arange(m)[:, None]
    flat = (keys + off).reshape(-1)
    pos = np.searchsorted(flat, (queries[None, :] + off).reshape(-1), side=side)
    return pos.reshape(m, -1) - k * np.arange(m)[:, None]


def _roc_vertices(lc: LevelCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points ``(m, 2R + 2)`` of each weighting (fpr, tpr) and its degenerate mask.

    Before and after each positive level: the diagonal of the tied scores; between levels
    the curve is flat (only negatives), so these points define it.
    """
    tp, fp, pos = lc.tp.T, lc.fp.T, lc.pos.T
    ntied = np.zeros_like(fp) if lc.neg_tied is None else lc.neg_tied.T
    m = tp.shape[0]
    p_total = tp[:, -1:] if tp.shape[1] else np.zeros((m, 1))
    n_total = lc.neg_total[:, None]
    bad = (p_total[:, 0] == 0) | (n_total[:, 0] == 0)
    x = np.empty((m, 2 * tp.shape[1] + 2))
    yv = np.empty_like(x)
    x[:, 0] = yv[:, 0] = 0.0
    x[:, 1:-1:2], x[:, 2:-1:2] = fp - ntied, fp
    yv[:, 1:-1:2], yv[:, 2:-1:2] = tp - pos, tp
    x[:, -1], yv[:, -1] = n_total[:, 0], p_total[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        x /= n_total
        yv /= p_total
    x[bad] = np.linspace(0, 1, x.shape[1])  # any increasing row; the result is masked
    yv[bad] = 0.0
    return x, yv, bad


def _interp_rows(x: np.ndarray, yv: np.ndarray, grid: np.ndarray, *, exact: bool) -> np.ndarray:
    """Row-wise linear interpolation; at repeated x the last (upper) point is used."""
    m, k = x.shape
    if exact:
        j = np.searchsorted(x[0], grid, side="right")[None, :] - 1
    else:
        j = _search_rows(x, grid, "right") - 1
    j = np.clip(j, 0, k - 1)
    nxt = np.minimum(j + 1, k - 1)
    x0, x1 = np.take_along_axis(x, j, 1), np.take_along_axis(x, nxt, 1)
    y0, y1 = np.take_along_axis(yv, j, 1), np.take_along_axis(yv, nxt, 1)
    frac = safe_divide(grid[None, :] - x0, x1 - x0)
    return np.where(nxt > j, y0 + np.nan_to_num(frac) * (y1 - y0), y0)


def _pr_on_grid(lc: LevelCounts, grid: np.ndarray, *, exact: bool) -> np.ndarray:
    """(m, grid) precision at each recall of the grid (step interpolation)."""
    tp, fp = lc.tp.T, lc.fp.T
    m = tp.shape[0]
    if tp.shape[1] == 0:  # no positives: no precision-recall curve
        return np.full((m, grid.size), np.nan)
    p_total = tp[:, -1]
    bad = (p_total == 0) | (lc.neg_total == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / p_total[:, None]
        precision = tp / (tp + fp)
    recall[bad] = np.linspace(0, 1, recall.shape[1])
    if exact:
        first = np.searchsorted(recall[0], grid, side="left")[None, :]
        positive = np.searchsorted(recall[0], [0.0], side="right")[None, :]
    else:
        first = _search_rows(recall, grid, "left")
        positive = _search_rows(recall, np.zeros(1), "right")
    j = np.clip(np.maximum(first, positive), 0, recall.shape[1] - 1)
    out = np.take_along_axis(precision, j, 1)
    out[bad] = np.nan
    return out.reshape(m, -1)


def _band(
    kind: str,
    y: np.ndarray,
    p: np.ndarray,
    plan: ReplicatePlan,
    rows: np.ndarray | None,
    grid: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    if grid < 2:
        raise ValueError(ERR_GRID.format(grid=grid))
    idx, cluster, counts = _local(plan, rows, len(y))
    # i / (grid - 1), correctly rounded: linspace's step multiples can miss exact fractions.
    xs = np.arange(grid) / (grid - 1)
    if idx.size == 0:
        # No units: no curve, and every replicate is degenerate.
        empty = np.full(grid, np.nan)
        return xs, empty, np.vstack([empty, empty]), plan.n_replicates
    n_clusters = counts.shape[0]
    layout = rank_layout(np.asarray(y)[idx], np.asarray(p)[idx], cluster, n_clusters)

    def on_grid(lc: LevelCounts, exact: bool) -> np.ndarray:
        if kind == "pr":
            return _pr_on_grid(lc, xs, exact=exact)
        fx, fy, bad = _roc_vertices(lc)
        out = _interp_rows(fx, fy, xs, exact=exact)
        out[bad] = np.nan
        return out

    point = on_grid(level_counts(layout, np.ones((n_clusters, 1))), True)[0]
    reps = np.empty((counts.shape[1], grid))
    step = batch_size_for(layout, batch_size)
    for start in range(0, counts.shape[1], step):
        lc = level_counts(layout, counts[:, start : start + step])
        reps[start : start + lc.neg_total.shape[0]] = on_grid(lc, False)
    degenerate = np.isnan(reps).any(axis=1)
    alpha = 100 * (1 - BAND_LEVEL) / 2
    if degenerate.all():
        low = mid = high = np.full(grid, np.nan)
    else:
        low, mid, high = np.percentile(reps[~degenerate], [alpha, 50, 100 - alpha], axis=0)
    return xs, point, np.vstack([low, mid, high]), int(degenerate.sum())


def roc_band(
    y: np.ndarray,
    p: np.ndarray,
    *,
    plan: ReplicatePlan,
    rows: np.ndarray | None = None,
    grid: int = 101,
    batch_size: int = 50,
) -> dict[str, Any]:
    """ROC curve on a false-positive-rate grid with its 2.5-97.5 percentile band.

    Parameters
    ----------
    y : ndarray of shape (n,)
        0/1 labels aligned with the plan's units.
    p : ndarray of shape (n,)
        Scores aligned with ``y``.
    plan : ReplicatePlan
        The bootstrap replicates (the band is over them).
    rows : ndarray of bool or int, optional
        Units to use; all when omitted.
    grid : int, default=101
        Number of equally spaced false positive rates in [0, 1].

    Returns
    -------
    dict
        ``fpr``, ``tpr`` (point curve), ``tpr_median``, ``tpr_low``, ``tpr_high`` (lists of
        ``grid`` floats; the median and bounds are pointwise over the replicates),
        ``interpolation``, ``band``, ``n_replicates``, ``degenerate_replicates``.

    Examples
    --------
    >>> from scoring.bootstrap import make_plan
    >>> y = np.array([0, 1, 0, 1, 1, 0]); p = np.array([0.1, 0.9, 0.4, 0.6, 0.3, 0.2])
    >>> band = roc_band(y, p, plan=make_plan(np.arange(6), n_replicates=20, seed=0), grid=3)
    >>> band["fpr"], band["tpr"]
    ([0.0, 0.5, 1.0], [0.66667, 1.0, 1.0])
    """
    return _band_dict("roc", "fpr", "tpr", ROC_INTERPOLATION, y, p, plan, rows, grid, batch_size)


def pr_band(
    y: np.ndarray,
    p: np.ndarray,
    *,
    plan: ReplicatePlan,
    rows: np.ndarray | None = None,
    grid: int = 101,
    batch_size: int = 50,
) -> dict[str, Any]:
    """Precision-recall curve on a recall grid with its 2.5-97.5 percentile band.

    At recall ``r`` the precision is that of the highest threshold whose recall reaches
    ``r`` (see the module docstring). Parameters as :func:`roc_band`.

    Returns
    -------
    dict
        ``recall``, ``precision``, ``precision_median``, ``precision_low``, ``precision_high``,
        ``interpolation``, ``band``, ``n_replicates``, ``degenerate_replicates``.

    Examples
    --------
    >>> from scoring.bootstrap import make_plan
    >>> y = np.array([0, 1, 0, 1, 1, 0]); p = np.array([0.1, 0.9, 0.4, 0.6, 0.3, 0.2])
    >>> band = pr_band(y, p, plan=make_plan(np.arange(6), n_replicates=20, seed=0), grid=3)
    >>> band["recall"], band["precision"]
    ([0.0, 0.5, 1.0], [1.0, 1.0, 0.75])
    """
    return _band_dict(
        "pr", "recall", "precision", PR_INTERPOLATION, y, p, plan, rows, grid, batch_size
    )


def _band_dict(
    kind: str,
    x_name: str,
    y_name: str,
    interpolation: str,
    y: np.ndarray,
    p: np.ndarray,
    plan: ReplicatePlan,
    rows: np.ndarray | None,
    grid: int,
    batch_size: int,
) -> dict[str, Any]:
    """A curve and its band as the JSON-ready dict of :func:`roc_band` / :func:`pr_band`."""
    xs, point, (low, mid, high), bad = _band(kind, y, p, plan, rows, grid, batch_size)
    return {
        x_name: _round(xs),
        y_name: _round(point),
        f"{y_name}_median": _round(mid),
        f"{y_name}_low": _round(low),
        f"{y_name}_high": _round(high),
        "interpolation": interpolation,
        "band": f"{BAND_LEVEL:.0%} percentile band over bootstrap replicates, pointwise",
        "n_replicates": plan.n_replicates,
        "degenerate_replicates": bad,
    }


def reliability(
    y: np.ndarray,
    p: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    n_bins: int = 10,
    plan: ReplicatePlan | None = None,
) -> dict[str, Any]:
    """Reliability diagram: per equal-width bin of predicted probability (last bin closed),
    the unit count, mean predicted probability and observed event rate, with a percentile CI
    of the observed rate over the plan's replicates when a plan is given.

    ``bins`` holds the bins with at least ``MIN_BIN_UNITS`` units; the others, empty ones
    included, are listed in ``small_bins`` with their bounds and count only.

    Examples
    --------
    >>> y = np.array([0, 1] * 10); p = np.array([0.2, 0.8] * 10)
    >>> rel = reliability(y, p, n_bins=2)
    >>> [(b["count"], b["mean_predicted"], b["observed_rate"]) for b in rel["bins"]]
    [(10, 0.2, 0.0), (10, 0.8, 1.0)]
    """
    if n_bins < 1:
        raise ValueError(ERR_BINS.format(n_bins=n_bins))
    n = len(y)
    if plan is None:
        idx = select_rows(rows, n)
        cluster, counts = np.zeros(idx.size, dtype=np.int64), None
    else:
        idx, cluster, counts = _local(plan, rows, n)
    ys = np.asarray(y, dtype=np.float64)[idx]
    ps = np.asarray(p, dtype=np.float64)[idx]
    n_clusters = int(cluster.max()) + 1 if cluster.size else 1
    b = calibration_bin(ps, n_bins)
    count = np.bincount(b, minlength=n_bins)
    sum_p = np.bincount(b, weights=ps, minlength=n_bins)
    sum_y = np.bincount(b, weights=ys, minlength=n_bins)
    observed_reps = None
    if counts is not None and idx.size:
        table = np.hstack(
            [
                cluster_sums(cluster, n_clusters, b, n_bins),
                cluster_sums(cluster, n_clusters, b, n_bins, weights=ys),
            ]
        )
        sums = counts.T @ table
        observed_reps = safe_divide(sums[:, n_bins:], sums[:, :n_bins])
    return reliability_from_sums(count, sum_p, sum_y, observed_reps, n_units=int(idx.size))


def reliability_from_sums(
    count: np.ndarray,
    sum_p: np.ndarray,
    sum_y: np.ndarray,
    observed_reps: np.ndarray | None,
    *,
    n_units: int,
) -> dict[str, Any]:
    """The reliability diagram of :func:`reliability` from its per-bin unit counts, sums of
    predicted probability and of labels, and the ``(B, n_bins)`` observed rate of each
    replicate (None: no CI)."""
    n_bins = len(count)
    bins: list[dict[str, Any]] = []
    small: list[dict[str, Any]] = []
    for i in range(n_bins):
        entry: dict[str, Any] = {
            "lower": _one(i / n_bins),
            "upper": _one((i + 1) / n_bins),
            "count": int(count[i]),
        }
        if count[i] < MIN_BIN_UNITS:
            small.append(entry)
            continue
        entry["mean_predicted"] = _one(sum_p[i] / count[i])
        entry["observed_rate"] = _one(sum_y[i] / count[i])
        if observed_reps is not None:
            entry["observed_ci"] = [_one(v) for v in percentile_ci(observed_reps[:, i])]
        bins.append(entry)
    return {
        "n_bins": n_bins,
        "n_units": n_units,
        "min_bin_units": MIN_BIN_UNITS,
        "bins": bins,
        "small_bins": small,
    }


__all__ = ["MIN_BIN_UNITS", "pr_band", "reliability", "reliability_from_sums", "roc_band"]
