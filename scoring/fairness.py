"""Subgroup fairness: per-group primary metric with CI, worst group, gap, and fairlearn's
demographic parity and equalized odds ratios at the published threshold; for binary tasks
per-group TPR, FPR, selection rate and calibration; intersections of two attributes; the
has-image attribute and the correlation of the groups' gaps with their missing images
(:mod:`scoring.fairness_groups`).

Groups come from the credentialed demographics (age bin, gender, race, insurance). A group
with fewer than ``MIN_GROUP_UNITS`` units, fewer than ``MIN_GROUP_CLUSTERS`` patients or (for
binary tasks) fewer than ``MIN_GROUP_CLASS`` units of either class is suppressed: its values
are not shown, only counted, because a metric over a handful of patients is noise and could
single people out.

The ratios follow fairlearn's definitions (``demographic_parity_ratio`` and
``equalized_odds_ratio`` with ``method="between_groups"``, ``agg="worst_case"``) over the
shown groups; their CIs come from the same bootstrap replicates, aggregated per patient
(no Python loop over replicates).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmark_data.tasks import METRICS
from scoring.bootstrap import ReplicatePlan, percentile_ci
from scoring.fairness_groups import (
    DEFAULT_INTERSECTIONS,
    group_error_rates,
    intersection_key,
    intersection_labels,
    missing_image_correlation,
)
from scoring.metrics import compute_metrics
from scoring.truth import Truth

MIN_GROUP_UNITS = 30
MIN_GROUP_CLUSTERS = 15
MIN_GROUP_CLASS = 5
REPLICATE_DECIMALS = 7  # as scoring.report stores the scenarios' replicates


def _vc(value: float, ci: tuple[float | None, float | None]) -> dict[str, Any]:
    return {"value": _f(value), "ci": [_f(ci[0]), _f(ci[1])]}


def _f(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _replicate_list(r: np.ndarray) -> list[float | None]:
    """Per-replicate values as stored in a report (NaN, a degenerate replicate, is None)."""
    return [None if not np.isfinite(v) else round(float(v), REPLICATE_DECIMALS) for v in r]


def binary_predictions(
    form: str, pred: np.ndarray, y: np.ndarray, *, threshold: float
) -> np.ndarray:
    """Hard 0/1 predictions for the fairness ratios: ``p >= threshold`` for probabilities;
    for decisions a refusal counts as the wrong answer (as in the decision metrics)."""
    if form == "decision":
        refused = np.isnan(pred)
        out = np.where(refused, 1 - y, pred)
        return out.astype(np.int8)
    return (pred >= threshold).astype(np.int8)


def _ratios_from_counts(c: np.ndarray) -> dict[str, np.ndarray]:
    """c: (..., G, 4) counts of (y, yhat) cells [tn, fp, fn, tp] per group -> ratios (...)."""
    tn, fp, fn, tp = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    n = tn + fp + fn + tp
    with np.errstate(invalid="ignore", divide="ignore"):
        sel = (fp + tp) / n
        tpr = tp / (tp + fn)
        fpr = fp / (fp + tn)

        def ratio(r: np.ndarray) -> np.ndarray:
            # fairlearn: min/max over groups; 0/0 -> NaN, any zero rate -> 0.
            return np.min(r, axis=-1) / np.max(r, axis=-1)

        dp = ratio(sel)
        eo = np.minimum(ratio(tpr), ratio(fpr))
    return {"demographic_parity_ratio": dp, "equalized_odds_ratio": eo}


def fairness_report(
    truth: Truth,
    form: str,
    pred: np.ndarray,
    *,
    plan: ReplicatePlan,
    rows: np.ndarray,
    threshold: float,
    scenario: str = "paired",
    natural: tuple[float, np.ndarray] | None = None,
    intersections: Sequence[tuple[str, str]] = DEFAULT_INTERSECTIONS,
) -> dict[str, Any]:
    """Fairness section of a report for the units selected by ``rows`` (the ``scenario``).

    Single attributes and the ``intersections`` (pairs of attributes, crossed) on ``rows``;
    with ``natural`` (the primary metric's point and replicates on every unit) and some
    units without an image, the ``has_<modality>`` attribute and the correlation of the
    groups' gaps with their share of missing images, both on every unit.
    """
    task = truth.task
    # Decision-only entries have no ranking metric: their groups are compared on accuracy.
    primary = task.primary_metric if form != "decision" else "accuracy"
    out: dict[str, Any] = {
        "metric": primary,
        "threshold": threshold if task.kind == "binary" else None,
        "scenario": scenario,
        "min_group_size": {
            "units": MIN_GROUP_UNITS,
            "patients": MIN_GROUP_CLUSTERS,
            "per_class": MIN_GROUP_CLASS if task.kind != "los" else None,
        },
        "attributes": {},
    }
    score = _GroupScorer(truth, form, pred, plan, threshold, primary)
    for attr in truth.suite.fairness_attributes:
        labels = truth.groups.get(attr)
        if labels is None:
            continue
        out["attributes"][attr], _ = score.attribute(labels, rows)
    crossed: dict[str, Any] = {}
    for a, b in intersections:
        if a in truth.groups and b in truth.groups:
            entry, _ = score.attribute(intersection_labels(truth.groups[a], truth.groups[b]), rows)
            crossed[intersection_key(a, b)] = {"attributes": [a, b], **entry}
    out["intersections"] = crossed
    if natural is not None and not truth.paired.all() and truth.paired.any():
        name, entry, section = _missing_images(truth, score, natural)
        out["attributes"][name] = {"scenario": "natural", **entry}
        out["missing_images"] = section
    return out


def _missing_images(
    truth: Truth, score: _GroupScorer, natural: tuple[float, np.ndarray]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The has-image attribute (its name and entry) and the gap/missing-share correlation,
    both on every unit (the natural scenario)."""
    everyone = np.ones(truth.n, dtype=bool)
    optional = [m.slug for m in truth.suite.modalities if not m.required]
    name = f"has_{optional[0]}" if len(optional) == 1 else "has_all_modalities"
    has = np.where(truth.paired, "yes", "no").astype(object)
    entry, _ = score.attribute(has, everyone)
    points = []
    for attr in truth.suite.fairness_attributes:
        labels = truth.groups.get(attr)
        if labels is None:
            continue
        _, shown = score.attribute(labels, everyone, extras=False)
        points += [(attr, g, mask, point, reps) for g, mask, point, reps in shown]
    section = missing_image_correlation(
        points, natural, plan=score.plan, missing=~truth.paired, scenario="natural"
    )
    return name, entry, section


class _GroupScorer:
    """Scores the groups of one attribute after another on the same entry."""

    def __init__(
        self,
        truth: Truth,
        form: str,
        pred: np.ndarray,
        plan: ReplicatePlan,
        threshold: float,
        primary: str,
    ) -> None:
        self.truth, self.form, self.pred, self.plan = truth, form, pred, plan
        self.threshold, self.primary = threshold, primary
        self.greater = METRICS[primary].greater_is_better
        self.yhat = (
            binary_predictions(form, pred, truth.y, threshold=threshold).astype(np.int64)
            if truth.task.kind == "binary"
            else None
        )

    def _small(self, mask: np.ndarray, n_units: int, n_clusters: int) -> bool:
        if n_units < MIN_GROUP_UNITS or n_clusters < MIN_GROUP_CLUSTERS:
            return True
        if self.truth.task.kind == "los":
            return False
        pos = self.truth.y[mask].sum(axis=0)
        return bool(np.min(pos) < MIN_GROUP_CLASS or np.min(n_units - pos) < MIN_GROUP_CLASS)

    def attribute(
        self, labels: np.ndarray, rows: np.ndarray, *, extras: bool = True
    ) -> tuple[dict[str, Any], list[tuple[str, np.ndarray, float, np.ndarray]]]:
        """An attribute's entry over ``rows`` and its shown groups as (name, mask, point,
        replicates); ``extras``: the per-group error rates and calibration (binary)."""
        truth, task = self.truth, self.truth.task
        present = rows & np.array([g is not None for g in labels])
        names = sorted({str(g) for g in labels[present]})
        groups: dict[str, Any] = {}
        shown: list[tuple[str, np.ndarray, float, np.ndarray]] = []
        suppressed = 0
        for name in names:
            mask = present & (labels == name)
            n_units = int(mask.sum())
            n_clusters = int(np.unique(truth.clusters[mask]).size)
            if self._small(mask, n_units, n_clusters):
                suppressed += 1
                continue
            mv = compute_metrics(
                task, self.form, truth.y, self.pred, plan=self.plan, rows=mask,
                metrics=[self.primary],
            )  # fmt: skip
            r = mv.replicates[self.primary]
            groups[name] = {
                **_vc(mv.point[self.primary], percentile_ci(r)),
                "n_units": n_units,
                "n_patients": n_clusters,
                # Kept server-side for paired comparisons between entries (scoring.compare);
                # scoring.disclosure drops them from everything that leaves the platform.
                "replicates": _replicate_list(r),
            }
            shown.append((name, mask, float(mv.point[self.primary]), r))
        cells = None
        if extras and self.yhat is not None and shown:
            rates, cells = group_error_rates(
                truth.y, self.yhat, self.pred, form=self.form, plan=self.plan,
                masks=[s[1] for s in shown],
            )  # fmt: skip
            for (name, *_), extra in zip(shown, rates, strict=True):
                groups[name].update(extra)
        entry: dict[str, Any] = {"groups": groups, "suppressed_groups": suppressed}
        if len(shown) >= 2:
            values = np.array([np.nan if v is None else v for v in
                               (groups[g]["value"] for g, *_ in shown)])  # fmt: skip
            worst_i = int(np.nanargmin(values) if self.greater else np.nanargmax(values))
            entry["worst_group"] = shown[worst_i][0]
            rep = np.vstack([s[3] for s in shown])
            with np.errstate(invalid="ignore"):
                gap_reps = np.nanmax(rep, axis=0) - np.nanmin(rep, axis=0)
            entry["gap"] = _vc(
                float(np.nanmax(values) - np.nanmin(values)), percentile_ci(gap_reps)
            )
            if cells is not None:
                point, reps = _ratios_from_counts(cells[0]), _ratios_from_counts(cells[1:])
                entry.update({k: _vc(float(point[k]), percentile_ci(reps[k])) for k in point})
        return entry, shown
