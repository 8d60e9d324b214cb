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

from scoring.bootstrap import ReplicatePlan, percentile_ci
from scoring.curves import reliability
from scoring.kernels import (
    calibration_table,
    cluster_sums,
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
    out = np.empty(len(a), dtype=object)
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        out[i] = None if x is None or y is None else f"{x}{INTERSECTION_JOIN}{y}"
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
    mask: np.ndarray,
) -> dict[str, Any]:
    """True and false positive rates, selection rate and (probabilities) ECE and reliability
    of the units in ``mask``, each with its CI; ``label_counts`` (positives, negatives) is
    kept for the disclosure budget and never published.

    ``yhat`` holds the hard predictions at the threshold
    (:func:`scoring.fairness.binary_predictions`).
    """
    idx = np.flatnonzero(mask)
    used, local = np.unique(plan.unit_cluster[idx], return_inverse=True)
    local = local.reshape(-1)
    counts = plan.counts_by_cluster[used]
    yi = np.asarray(y[idx], dtype=np.int64)
    tables = [cluster_sums(local, used.size, 2 * yi + yhat[idx], 4)]
    if form == "probability":
        tables.append(calibration_table(yi, pred[idx], local, used.size, ECE_BINS))
    sums = replicate_sums(np.hstack(tables), counts)
    tn, fp, fn, tp = (sums[:, i] for i in range(4))
    pos = int(yi.sum())
    out: dict[str, Any] = {
        "tpr": _vc(safe_divide(tp, tp + fn)),
        "fpr": _vc(safe_divide(fp, fp + tn)),
        "selection_rate": _vc(safe_divide(fp + tp, tn + fp + fn + tp)),
        "label_counts": {"positives": pos, "negatives": int(idx.size - pos)},
    }
    if form == "probability":
        out["ece"] = _vc(expected_calibration_error(sums[:, 4:], ECE_BINS))
        out["reliability"] = reliability(y, pred, rows=mask, n_bins=ECE_BINS, plan=plan)
    return out


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
