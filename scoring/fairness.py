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
import pandas as pd

from benchmark_data.tasks import METRICS
from scoring.bootstrap import ReplicatePlan, percentile_ci
from scoring.fairness_groups import (
    DEFAULT_INTERSECTIONS,
    group_error_rates,
    intersection_key,
    intersection_labels,
    missing_image_correlation,
)
from scoring.kernels import float32_weights, grouped_auroc, grouped_rank_layout, score_ranks
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
    per_group: bool = False,
) -> dict[str, Any]:
    """Fairness section of a report for the units selected by ``rows`` (the ``scenario``).

    Single attributes and the ``intersections`` (pairs of attributes, crossed) on ``rows``;
    with ``natural`` (the primary metric's point and replicates on every unit) and some
    units without an image, the ``has_<modality>`` attribute and the correlation of the
    groups' gaps with their share of missing images, both on every unit.

    An AUROC is computed for all groups of an attribute at once from the entry's scores
    sorted once (:func:`scoring.kernels.grouped_auroc`); ``per_group`` computes it group by
    group with :func:`scoring.metrics.compute_metrics` instead (the same figures, slower:
    kept to check and time the grouped kernel against). Other metrics are computed group by
    group.
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
    score = _GroupScorer(truth, form, pred, plan, threshold, primary, per_group=per_group)
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
        *,
        per_group: bool = False,
    ) -> None:
        self.truth, self.form, self.pred, self.plan = truth, form, pred, plan
        self.threshold, self.primary = threshold, primary
        self.greater = METRICS[primary].greater_is_better
        self.yhat = (
            binary_predictions(form, pred, truth.y, threshold=threshold).astype(np.int64)
            if truth.task.kind == "binary"
            else None
        )
        # Binary AUROC: every attribute's groups from one sort of the scores.
        self.grouped = (
            not per_group
            and truth.task.kind == "binary"
            and form == "probability"
            and primary == "auroc"
        )
        self._ranks: np.ndarray | None = None
        self._weights: np.ndarray | None = None

    @property
    def ranks(self) -> np.ndarray:
        """The scores' dense ranks: the one sort every attribute's AUROC uses."""
        if self._ranks is None:
            self._ranks = score_ranks(self.pred)
        return self._ranks

    @property
    def weights(self) -> np.ndarray:
        """The replicate counts per cluster, in float32 where that is exact."""
        if self._weights is None:
            counts = self.plan.counts_by_cluster
            w32 = float32_weights(counts, self.plan.n_units)
            self._weights = counts if w32 is None else w32
        return self._weights

    def _groups(self, labels: np.ndarray, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The group names of ``labels`` on ``rows`` (sorted) and each unit's index among
        them (-1: not on ``rows``, no label, or a label that is not its name's text)."""
        # Element-wise ``is not None`` (a NaN label is a label, as before); numpy's stubs
        # do not take None as an operand.
        has_label = np.not_equal(labels, None)  # type: ignore[call-overload]
        present = np.flatnonzero(rows & has_label)
        codes, uniques = pd.factorize(labels[present], use_na_sentinel=False)
        names = sorted({str(g) for g in uniques})
        index = {name: i for i, name in enumerate(names)}
        # A unit is in the group whose name equals its label (a label that is not text,
        # such as a number, equals no name: its group is empty and so suppressed).
        of_unique = np.array(
            [index[str(g)] if g == str(g) else -1 for g in uniques] or [-1], dtype=np.int64
        )
        unit_group = np.full(labels.shape[0], -1, dtype=np.int64)
        unit_group[present] = of_unique[codes]
        return names, unit_group

    def _small(self, n_units: int, n_clusters: int, pos: np.ndarray) -> bool:
        if n_units < MIN_GROUP_UNITS or n_clusters < MIN_GROUP_CLUSTERS:
            return True
        if self.truth.task.kind == "los":
            return False
        return bool(np.min(pos) < MIN_GROUP_CLASS or np.min(n_units - pos) < MIN_GROUP_CLASS)

    def _primary(self, shown_group: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
        """``(S, 1 + B)`` primary metric of the shown groups: point, then replicates."""
        if self.grouped:
            layout = grouped_rank_layout(
                self.truth.y, self.ranks, self.plan.unit_cluster, self.plan.n_clusters,
                shown_group, len(masks),
            )  # fmt: skip
            ones = np.ones((self.plan.n_clusters, 1))
            return np.hstack([grouped_auroc(layout, ones), grouped_auroc(layout, self.weights)])
        out = np.empty((len(masks), 1 + self.plan.n_replicates))
        for i, mask in enumerate(masks):
            mv = compute_metrics(
                self.truth.task, self.form, self.truth.y, self.pred, plan=self.plan, rows=mask,
                metrics=[self.primary],
            )  # fmt: skip
            out[i, 0] = mv.point[self.primary]
            out[i, 1:] = mv.replicates[self.primary]
        return out

    def attribute(
        self, labels: np.ndarray, rows: np.ndarray, *, extras: bool = True
    ) -> tuple[dict[str, Any], list[tuple[str, np.ndarray, float, np.ndarray]]]:
        """An attribute's entry over ``rows`` and its shown groups as (name, mask, point,
        replicates); ``extras``: the per-group error rates and calibration (binary)."""
        truth = self.truth
        names, unit_group = self._groups(labels, rows)
        member = unit_group >= 0
        g = unit_group[member]
        n_groups = len(names)
        n_units = np.bincount(g, minlength=n_groups)
        pairs = np.unique(g * self.plan.n_clusters + self.plan.unit_cluster[member])
        n_clusters = np.bincount(pairs // self.plan.n_clusters, minlength=n_groups)
        y_member = truth.y[member]
        positives = np.zeros((n_groups, *y_member.shape[1:]))
        if truth.task.kind == "binary":
            positives = np.bincount(g, weights=y_member, minlength=n_groups)
        elif truth.task.kind != "los":
            np.add.at(positives, g, y_member)
        keep = [
            i for i in range(n_groups)
            if not self._small(int(n_units[i]), int(n_clusters[i]), positives[i])
        ]  # fmt: skip
        suppressed = n_groups - len(keep)
        shown_of = np.full(n_groups + 1, -1, dtype=np.int64)  # the last: not in a group
        shown_of[keep] = np.arange(len(keep))
        shown_group = shown_of[unit_group]
        masks = [shown_group == i for i in range(len(keep))]
        values = self._primary(shown_group, masks) if keep else np.empty((0, 1))
        groups: dict[str, Any] = {}
        shown: list[tuple[str, np.ndarray, float, np.ndarray]] = []
        for i, gi in enumerate(keep):
            name, r = names[gi], values[i, 1:]
            groups[name] = {
                **_vc(values[i, 0], percentile_ci(r)),
                "n_units": int(n_units[gi]),
                "n_patients": int(n_clusters[gi]),
                # Kept server-side for paired comparisons between entries (scoring.compare);
                # scoring.disclosure drops them from everything that leaves the platform.
                "replicates": _replicate_list(r),
            }
            shown.append((name, masks[i], float(values[i, 0]), r))
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
            points = np.array([np.nan if v is None else v for v in
                               (groups[name]["value"] for name, *_ in shown)])  # fmt: skip
            worst_i = int(np.nanargmin(points) if self.greater else np.nanargmax(points))
            entry["worst_group"] = shown[worst_i][0]
            rep = np.vstack([s[3] for s in shown])
            with np.errstate(invalid="ignore"):
                gap_reps = np.nanmax(rep, axis=0) - np.nanmin(rep, axis=0)
            entry["gap"] = _vc(
                float(np.nanmax(points) - np.nanmin(points)), percentile_ci(gap_reps)
            )
            if cells is not None:
                point, reps = _ratios_from_counts(cells[0]), _ratios_from_counts(cells[1:])
                entry.update({k: _vc(float(point[k]), percentile_ci(reps[k])) for k in point})
        return entry, shown
