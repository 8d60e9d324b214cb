"""Per-group calibration and error rates, intersections of two attributes, and the link
between a group's gap and its missing images (CareBench's fairness protocol).

Every figure here comes with a percentile CI over the shared patient-level replicates
(:mod:`scoring.bootstrap`), computed for all replicates at once from per-patient tables:

* per group, for binary tasks: the true and false positive rates and the selection rate at
  the published threshold (fairlearn's ``true_positive_rate``, ``false_positive_rate`` and
  ``selection_rate``), and for probability entries the ECE with the report's calibration
  bins (:data:`scoring.metrics.ECE_BINS` equal-width bins, the last one closed) and the
  group's reliability diagram (:func:`scoring.curves.reliability`);
* :func:`intersection_labels`: the groups of two attributes crossed (race x gender, ...),
  scored and suppressed exactly as single attributes;
* :func:`missing_image_correlation`: across the shown groups of the single attributes, on
  the scenario where images are missing (``natural``), Pearson's correlation between each
  group's gap to the overall metric and its share of units without an image.

Multi-label and length-of-stay tasks get intersections and the correlation on their primary
metric, not the per-group calibration and error rates (those are per label there).

>>> a = np.array(["F", "M", None], dtype=object); b = np.array(["X", "Y", "Y"], dtype=object)
>>> intersection_labels(a, b).tolist()
['F / X', 'M / Y', None]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from scoring.bootstrap import ReplicatePlan, percentile_ci
from scoring.curves import reliability_from_sums
from scoring.kernels import (
    calibration_bin,
    expected_calibration_error,
    replicate_sums,
    safe_divide,
)
from scoring.metrics import ECE_BINS

# Pairs of fairness attributes crossed by default: the two CareBench reports. A pair whose
# attributes the suite does not declare is skipped.
DEFAULT_INTERSECTIONS: tuple[tuple[str, str], ...] = (("race", "gender"), ("age_group", "gender"))
INTERSECTION_JOIN = " / "
MIN_CORRELATION_GROUPS = 4

NOTE_FEW_GROUPS = (
    "fewer than {n} groups are shown on the {scenario} units: no correlation is computed"
)
NOTE_NO_SPREAD = "every shown group has the same share of units without an image"


def intersection_key(a: str, b: str) -> str:
    """The report's name of the intersection of attributes ``a`` and ``b``."""
    return f"{a} x {b}"


def intersection_labels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each unit's group in the intersection of two attributes (None where either is)."""
    ca, ua = pd.factorize(np.asarray(a, dtype=object), use_na_sentinel=True)
    cb, ub = pd.factorize(np.asarray(b, dtype=object), use_na_sentinel=True)
    names = np.array([f"{x}{INTERSECTION_JOIN}{y}" for x in ua for y in ub] or [""], dtype=object)
    out = names[np.maximum(ca, 0) * max(len(ub), 1) + np.maximum(cb, 0)]
    out[(ca < 0) | (cb < 0)] = None
    return out


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _vc(values: np.ndarray) -> dict[str, Any]:
    """``{value, ci}`` from ``(1 + B,)`` values: the point first, then the replicates."""
    lo, hi = percentile_ci(values[1:])
    return {"value": _f(values[0]), "ci": [_f(lo), _f(hi)]}


def group_error_rates(
    y: np.ndarray,
    yhat: np.ndarray,
    pred: np.ndarray,
    *,
    form: str,
    plan: ReplicatePlan,
    masks: list[np.ndarray],
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """For each group (``masks``, disjoint): true and false positive rates, selection rate
    and (probabilities) ECE and reliability, each with its CI; ``label_counts`` (positives,
    negatives) is kept for the disclosure budget and never published. Also the confusion
    cells ``(1 + B, G, 4)`` (tn, fp, fn, tp; point first), from which the fairness ratios
    follow.

    ``yhat`` holds the hard predictions at the threshold
    (:func:`scoring.fairness.binary_predictions`). One sparse per-patient table of every
    group's confusion cells and calibration bins, times the replicate counts, gives all
    groups and replicates at once.
    """
    n_bins = ECE_BINS if form == "probability" else 0
    width = 4 + 3 * n_bins  # cells tn fp fn tp, then per bin: count, sum y, sum p
    rows_c, cols, data = [], [], []
    for gi, mask in enumerate(masks):
        idx = np.flatnonzero(mask)
        cl = plan.unit_cluster[idx]
        yi = np.asarray(y[idx], dtype=np.float64)
        base = gi * width
        rows_c.append(cl)
        cols.append(base + 2 * yi.astype(np.int64) + yhat[idx])
        data.append(np.ones(idx.size))
        if n_bins:
            p = np.asarray(pred[idx], dtype=np.float64)
            b = base + 4 + calibration_bin(p, n_bins)
            rows_c += [cl, cl, cl]
            cols += [b, b + n_bins, b + 2 * n_bins]
            data += [np.ones(idx.size), yi, p]
    table = sparse.csr_matrix(
        (np.concatenate(data), (np.concatenate(rows_c), np.concatenate(cols))),
        shape=(plan.n_clusters, width * len(masks)),
    )
    point = np.asarray(table.sum(axis=0)).reshape(1, -1)
    reps = np.asarray((table.T @ plan.counts_by_cluster).T)
    sums = np.vstack([point, reps])
    out = []
    for gi, mask in enumerate(masks):
        g = sums[:, gi * width : (gi + 1) * width]
        tn, fp, fn, tp = (g[:, i] for i in range(4))
        pos = int(round(point[0, gi * width + 2] + point[0, gi * width + 3]))
        entry: dict[str, Any] = {
            "tpr": _vc(safe_divide(tp, tp + fn)),
            "fpr": _vc(safe_divide(fp, fp + tn)),
            "selection_rate": _vc(safe_divide(fp + tp, tn + fp + fn + tp)),
            "label_counts": {"positives": pos, "negatives": int(mask.sum()) - pos},
        }
        if n_bins:
            cal = g[:, 4:]
            entry["ece"] = _vc(expected_calibration_error(cal, n_bins))
            count, sum_y, sum_p = cal[0, :n_bins], cal[0, n_bins : 2 * n_bins], cal[0, 2 * n_bins :]
            observed = safe_divide(cal[1:, n_bins : 2 * n_bins], cal[1:, :n_bins])
            entry["reliability"] = reliability_from_sums(
                count, sum_p, sum_y, observed, n_units=int(mask.sum())
            )
        out.append(entry)
    cells = np.stack([sums[:, gi * width : gi * width + 4] for gi in range(len(masks))], axis=1)
    return out, cells


def _weighted_shares(
    plan: ReplicatePlan, masks: list[np.ndarray], missing: np.ndarray
) -> np.ndarray:
    """``(1 + B, G)`` share of each group's units without an image, point then replicates."""
    n_groups = len(masks)
    table = np.zeros((plan.n_clusters, 2 * n_groups))
    for gi, mask in enumerate(masks):
        cl = plan.unit_cluster[mask]
        table[:, gi] = np.bincount(cl, minlength=plan.n_clusters)
        table[:, n_groups + gi] = np.bincount(
            cl, weights=missing[mask].astype(np.float64), minlength=plan.n_clusters
        )
    sums = replicate_sums(table, plan.counts_by_cluster)
    return safe_divide(sums[:, n_groups:], sums[:, :n_groups])


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair of ``(m, G)`` arrays; NaN for a row with a NaN or no
    spread (the correlation is undefined there, as in ``scipy.stats.pearsonr``)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    num = (xc * yc).sum(axis=1)
    den = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore"):
        r = safe_divide(num, np.where(den < 1e-12, 0.0, den))
    return np.clip(r, -1.0, 1.0)


def missing_image_correlation(
    groups: list[tuple[str, str, np.ndarray, float, np.ndarray]],
    overall: tuple[float, np.ndarray],
    *,
    plan: ReplicatePlan,
    missing: np.ndarray,
    scenario: str,
) -> dict[str, Any]:
    """Pearson's correlation between each group's gap to the overall metric and its share
    of units without an image, with a CI over the replicates.

    Parameters
    ----------
    groups : list of (attribute, group, mask, point, replicates)
        The shown groups of the single attributes on ``scenario``'s units, with their
        primary metric.
    overall : (point, replicates)
        The primary metric on all of ``scenario``'s units.
    missing : ndarray of bool
        Units without an image.

    Returns
    -------
    dict
        ``groups`` (each one's ``gap`` with CI and ``missing_share``), ``correlation``
        (``{value, ci}``, or None with a ``note``), ``n_groups``, ``method``.
    """
    out: dict[str, Any] = {
        "scenario": scenario,
        "method": "pearson",
        "overall": {"value": _f(overall[0]), "ci": [_f(v) for v in percentile_ci(overall[1])]},
        "n_groups": len(groups),
        "groups": [],
        "correlation": None,
    }
    if not groups:
        out["note"] = NOTE_FEW_GROUPS.format(n=MIN_CORRELATION_GROUPS, scenario=scenario)
        return out
    gap = np.column_stack(
        [
            np.concatenate([[g[3]], g[4]]) - np.concatenate([[overall[0]], overall[1]])
            for g in groups
        ]
    )
    share = _weighted_shares(plan, [g[2] for g in groups], missing)
    for i, (attr, name, mask, _, _) in enumerate(groups):
        out["groups"].append(
            {
                "attribute": attr,
                "group": name,
                "n_units": int(mask.sum()),
                "gap": _vc(gap[:, i]),
                "missing_share": _f(share[0, i]),
            }
        )
    if len(groups) < MIN_CORRELATION_GROUPS:
        out["note"] = NOTE_FEW_GROUPS.format(n=MIN_CORRELATION_GROUPS, scenario=scenario)
        return out
    r = _pearson_rows(gap, share)
    if not np.isfinite(r[0]):
        out["note"] = NOTE_NO_SPREAD
        return out
    out["correlation"] = _vc(r)
    out["degenerate_replicates"] = int(np.isnan(r[1:]).sum())
    return out


__all__ = [
    "DEFAULT_INTERSECTIONS",
    "MIN_CORRELATION_GROUPS",
    "group_error_rates",
    "intersection_key",
    "intersection_labels",
    "missing_image_correlation",
]
