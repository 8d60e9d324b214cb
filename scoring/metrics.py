"""Metrics of every task and prediction form, with all bootstrap replicates at once.

:func:`compute_metrics` returns, for the selected units, each metric's point value (unit
weights) and its value in every replicate of a :class:`~scoring.bootstrap.ReplicatePlan`.
Replicate ``b`` equals scikit-learn's metric computed with ``plan.row_weights(rows)[b]`` as
``sample_weight``; the kernels in :mod:`scoring.kernels` compute them all without a Python
loop over replicates.

Conventions:

* AUPRC is average precision (scikit-learn's ``average_precision_score``, step-wise, as
  MedMod), not the trapezoid of the precision-recall curve.
* Ratios with a zero denominator are NaN (scikit-learn's ``zero_division=np.nan``): e.g. the
  precision of a replicate without predicted positives is undefined, not 0.
* The ranking metrics are NaN in a replicate with a single class; NaN replicates are
  counted in ``degenerate`` and left out of the intervals, never silently dropped.
* Macro averages over labels are taken within each replicate over the labels defined in that
  replicate (a valid interval for the mean, unlike averaging per-label interval bounds).
* ECE uses ``ECE_BINS`` equal-width bins, the last one closed:
  ``sum_b (w_b / W) |mean(y)_b - mean(p)_b|`` (weighted).
* Decisions (1, 0, NaN for a refusal) follow ``DECISION_REFUSAL_POLICY``.
* Length of stay: the true bucket is ``task.buckets.bucket(hours)``; ``hours`` predictions are
  bucketed the same way and used as given for MAD, ``buckets`` predictions take the argmax
  bucket and its mean hours (``task.buckets.hours``). Kappa is Cohen's linearly weighted kappa
  over the task's buckets (MedMod: 10).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmark_data.tasks import Task
from scoring.bootstrap import ReplicatePlan, select_rows
from scoring.kernels import (
    calibration_table,
    cluster_sums,
    confusion_scores,
    expected_calibration_error,
    linear_kappa,
    rank_layout,
    ranking_scores,
    replicate_sums,
    safe_divide,
)

DECISION_REFUSAL_POLICY = (
    "A refusal (empty decision) counts as a wrong answer: a refused positive is a false "
    "negative and a refused negative a false positive. answer_rate is the share of units "
    "answered."
)
ECE_BINS = 10
N_LOS_BUCKETS = 10

FORMS: dict[str, tuple[str, ...]] = {
    "binary": ("probability", "decision"),
    "multilabel": ("probability",),
    "los": ("hours", "buckets"),
}
FORM_METRICS: dict[tuple[str, str], tuple[str, ...]] = {
    ("binary", "probability"): (
        "auroc", "auprc", "brier", "ece", "accuracy", "f1", "precision", "recall", "specificity",
    ),
    ("binary", "decision"): ("accuracy", "precision", "recall", "specificity", "f1", "answer_rate"),
    ("multilabel", "probability"): (
        "macro_auroc", "macro_auprc", "micro_auroc", "macro_f1", "micro_f1",
    ),
    ("los", "hours"): ("kappa", "mad", "accuracy"),
    ("los", "buckets"): ("kappa", "mad", "accuracy"),
}  # fmt: skip

ERR_FORM = "form {form!r} does not apply to task {task} ({kind}); forms: {forms}"
ERR_METRIC = "metric(s) {names} not available for task {task} with form {form!r}; available: {ok}"
ERR_SHAPE = "{what} has shape {shape}; expected {expected}"
ERR_THRESHOLD = "threshold must be in [0, 1], got {threshold}"
ERR_BATCH = "batch_size must be a positive integer, got {batch_size}"


@dataclass
class MetricValues:
    """Point values and bootstrap replicates of a task's metrics on a set of units.

    Attributes
    ----------
    point : dict
        Metric -> value on the selected units with unit weights; NaN when undefined.
    replicates : dict
        Metric -> ``(B,)`` replicate values, NaN where the replicate is degenerate.
    degenerate : dict
        Metric -> number of NaN replicates. For macro averages over labels: the number of
        (replicate, label) pairs left out of the replicate means because the label had a
        single class in that replicate.
    per_label : dict
        Multi-label tasks: label slug -> ``{"auroc", "auprc", "prevalence"}`` (those computed).
    per_label_replicates : dict
        Multi-label tasks: label slug -> metric -> ``(B,)`` replicate values.
    """

    point: dict[str, float] = field(default_factory=dict)
    replicates: dict[str, np.ndarray] = field(default_factory=dict)
    degenerate: dict[str, int] = field(default_factory=dict)
    per_label: dict[str, dict[str, float]] = field(default_factory=dict)
    per_label_replicates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def add(self, name: str, values: np.ndarray) -> None:
        """Store a metric from its ``(1 + B,)`` values: point first, then replicates."""
        self.point[name] = float(values[0])
        self.replicates[name] = np.asarray(values[1:], dtype=np.float64)
        self.degenerate[name] = int(np.isnan(self.replicates[name]).sum())


@dataclass(frozen=True)
class _Scope:
    """The selected units, their clusters renumbered ``0 .. n_clusters - 1`` over the
    selection, and the replicate counts of those clusters (``(n_clusters, B)`` or None)."""

    idx: np.ndarray
    cluster: np.ndarray
    n_clusters: int
    counts: np.ndarray | None

    @property
    def n_replicates(self) -> int:
        return 0 if self.counts is None else int(self.counts.shape[1])


def _scope(plan: ReplicatePlan | None, rows: np.ndarray | None, n: int) -> _Scope:
    idx = select_rows(rows, n)
    if plan is None:
        return _Scope(idx, np.zeros(idx.size, dtype=np.int64), 1, None)
    used, local = np.unique(plan.unit_cluster[idx], return_inverse=True)
    by_cluster = plan.counts_by_cluster
    counts = by_cluster if used.size == plan.n_clusters else by_cluster[used]
    return _Scope(idx, local.reshape(-1), int(max(used.size, 1)), counts)


def _check(task: Task, form: str, y: np.ndarray, pred: np.ndarray, n: int | None) -> None:
    if form not in FORMS[task.kind]:
        raise ValueError(
            ERR_FORM.format(
                form=form, task=task.slug, kind=task.kind, forms=", ".join(FORMS[task.kind])
            )
        )
    n_rows = y.shape[0] if n is None else n
    y_shape: tuple[int, ...] = (n_rows, task.n_labels) if task.kind == "multilabel" else (n_rows,)
    if task.kind == "multilabel":
        p_shape: tuple[int, ...] = (n_rows, task.n_labels)
    elif form == "buckets":
        p_shape = (n_rows, len(task.bucket_columns))
    else:
        p_shape = (n_rows,)
    for what, arr, shape in (("y", y, y_shape), ("pred", pred, p_shape)):
        if arr.shape != shape:
            raise ValueError(ERR_SHAPE.format(what=what, shape=arr.shape, expected=shape))


def compute_metrics(
    task: Task,
    form: str,
    y: np.ndarray,
    pred: np.ndarray,
    *,
    plan: ReplicatePlan | None,
    rows: np.ndarray | None = None,
    threshold: float = 0.5,
    metrics: Sequence[str] | None = None,
    batch_size: int = 50,
) -> MetricValues:
    """Point values and bootstrap replicates of a task's metrics.

    Parameters
    ----------
    task : Task
        The task; its kind decides the forms and metrics.
    form : str
        ``"probability"`` or ``"decision"`` (binary), ``"probability"`` (multi-label),
        ``"hours"`` or ``"buckets"`` (length of stay).
    y : ndarray
        Truth aligned with the plan's units: ``(n,)`` 0/1, ``(n, L)`` 0/1 or ``(n,)`` hours.
    pred : ndarray
        Predictions aligned with ``y``: ``(n,)`` probabilities, decisions (1, 0, NaN for a
        refusal) or hours, ``(n, L)`` probabilities or ``(n, 10)`` bucket probabilities.
    plan : ReplicatePlan or None
        Replicates to compute; None computes point values only (empty replicates).
    rows : ndarray of bool or int, optional
        The units scored (a scenario, a fairness group); all units when omitted. Replicate
        weights of the subset are the plan's counts at those units, so replicates stay
        paired across subsets and submissions.
    threshold : float, default=0.5
        A probability ``p`` is a positive prediction iff ``p >= threshold``.
    metrics : sequence of str, optional
        Metrics to compute; all of the task and form when omitted.
    batch_size : int, default=50
        Replicates per batch of the ranking kernel (bounds memory).

    Returns
    -------
    MetricValues

    Examples
    --------
    >>> from benchmark_data.tasks import TASKS
    >>> from scoring.bootstrap import make_plan
    >>> y = np.array([0, 0, 1, 1, 0, 1]); p = np.array([0.1, 0.6, 0.7, 0.8, 0.2, 0.4])
    >>> plan = make_plan([1, 1, 2, 3, 4, 5], n_replicates=20, seed=0)
    >>> mv = compute_metrics(TASKS["in-hospital-mortality"], "probability", y, p, plan=plan)
    >>> round(mv.point["auroc"], 4), mv.point["recall"]
    (0.8889, 0.6666666666666666)
    >>> mv.replicates["auroc"].shape
    (20,)
    """
    y = np.asarray(y)
    pred = np.asarray(pred, dtype=np.float64)
    _check(task, form, y, pred, None if plan is None else plan.n_units)
    ok = FORM_METRICS[(task.kind, form)]
    if metrics is None:
        wanted = task.decision_metrics if form == "decision" else task.metrics
        wanted = tuple(m for m in wanted if m in ok)
    else:
        wanted = tuple(dict.fromkeys(metrics))
        bad = [m for m in wanted if m not in ok]
        if bad:
            raise ValueError(
                ERR_METRIC.format(names=", ".join(bad), task=task.slug, form=form, ok=", ".join(ok))
            )
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(ERR_THRESHOLD.format(threshold=threshold))
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(ERR_BATCH.format(batch_size=batch_size))
    scope = _scope(plan, rows, y.shape[0])
    out = MetricValues()
    if scope.idx.size == 0:
        # Nothing selected: every metric is undefined, in every replicate.
        for name in wanted:
            out.add(name, np.full(1 + scope.n_replicates, np.nan))
        return out
    ys, ps = y[scope.idx], pred[scope.idx]
    if task.kind == "binary" and form == "probability":
        _binary_probability(out, scope, ys, ps, wanted, threshold, batch_size)
    elif task.kind == "binary":
        _binary_decision(out, scope, ys, ps, wanted)
    elif task.kind == "multilabel":
        _multilabel(out, task, scope, ys, ps, wanted, threshold, batch_size)
    else:
        _length_of_stay(out, task, scope, ys, ps, form, wanted)
    return out


def _ranking(
    scope: _Scope,
    y: np.ndarray,
    p: np.ndarray,
    *,
    auroc: bool,
    ap: bool,
    batch_size: int,
    cluster: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision of each column of ``y``/``p`` (or of a single 1-D
    problem), ``(n_problems, 1 + B)`` each: point value, then replicates. ``cluster``
    overrides the scope's row clusters (for flattened problems)."""
    cl = scope.cluster if cluster is None else cluster
    y2 = y.reshape(y.shape[0], -1)
    p2 = p.reshape(p.shape[0], -1)
    layouts = [rank_layout(y2[:, j], p2[:, j], cl, scope.n_clusters) for j in range(y2.shape[1])]
    ones = np.ones((scope.n_clusters, 1))
    auc, avg = ranking_scores(layouts, ones, auroc=auroc, average_precision=ap)
    if scope.counts is None:
        return auc, avg
    rep_auc, rep_avg = ranking_scores(
        layouts, scope.counts, batch_size=batch_size, auroc=auroc, average_precision=ap
    )
    return np.hstack([auc, rep_auc]), np.hstack([avg, rep_avg])


def _binary_probability(
    out: MetricValues,
    scope: _Scope,
    y: np.ndarray,
    p: np.ndarray,
    wanted: tuple[str, ...],
    threshold: float,
    batch_size: int,
) -> None:
    values: dict[str, np.ndarray] = {}
    if "auroc" in wanted or "auprc" in wanted:
        auc, ap = _ranking(
            scope, y, p, auroc="auroc" in wanted, ap="auprc" in wanted, batch_size=batch_size
        )
        values["auroc"], values["auprc"] = auc[0], ap[0]
    cl, nc = scope.cluster, scope.n_clusters
    yi = y.astype(np.int64)
    if {"accuracy", "f1", "precision", "recall", "specificity"} & set(wanted):
        cells = replicate_sums(cluster_sums(cl, nc, 2 * yi + (p >= threshold), 4), scope.counts)
        values.update(confusion_scores(cells))
    if "brier" in wanted:
        sq = cluster_sums(cl, nc, np.zeros_like(yi), 1, weights=(p - yi) ** 2)
        n = cluster_sums(cl, nc, np.zeros_like(yi), 1)
        sums = replicate_sums(np.hstack([sq, n]), scope.counts)
        values["brier"] = safe_divide(sums[:, 0], sums[:, 1])
    if "ece" in wanted:
        sums = replicate_sums(calibration_table(yi, p, cl, nc, ECE_BINS), scope.counts)
        values["ece"] = expected_calibration_error(sums, ECE_BINS)
    for name in wanted:
        out.add(name, values[name])


def _binary_decision(
    out: MetricValues, scope: _Scope, y: np.ndarray, d: np.ndarray, wanted: tuple[str, ...]
) -> None:
    yi = y.astype(np.int64)
    answered = ~np.isnan(d)
    # DECISION_REFUSAL_POLICY: a refusal is scored as the wrong answer.
    effective = np.where(answered, d, 1 - yi).astype(np.int64)
    table = np.hstack(
        [
            cluster_sums(scope.cluster, scope.n_clusters, 2 * yi + effective, 4),
            cluster_sums(scope.cluster, scope.n_clusters, answered.astype(np.int64), 2),
        ]
    )
    sums = replicate_sums(table, scope.counts)
    values = confusion_scores(sums[:, :4])
    values["answer_rate"] = safe_divide(sums[:, 5], sums[:, 4] + sums[:, 5])
    for name in wanted:
        out.add(name, values[name])


def _nanmean_labels(v: np.ndarray) -> np.ndarray:
    """Mean over labels (axis 0) of the labels defined in each column; NaN if none is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return np.nanmean(v, axis=0)


def _multilabel(
    out: MetricValues,
    task: Task,
    scope: _Scope,
    y: np.ndarray,
    p: np.ndarray,
    wanted: tuple[str, ...],
    threshold: float,
    batch_size: int,
) -> None:
    n_labels = y.shape[1]
    values: dict[str, np.ndarray] = {}
    per_label_values: dict[str, np.ndarray] = {}  # macro metric -> (L, 1 + B)
    want_auc, want_ap = "macro_auroc" in wanted, "macro_auprc" in wanted
    prevalence = y.mean(axis=0)
    for j, slug in enumerate(task.label_slugs):
        out.per_label[slug] = {"prevalence": float(prevalence[j])}
    if want_auc or want_ap:
        per_auc, per_ap = _ranking(scope, y, p, auroc=want_auc, ap=want_ap, batch_size=batch_size)
        for name, per, key in (("macro_auroc", per_auc, "auroc"), ("macro_auprc", per_ap, "auprc")):
            if name not in wanted:
                continue
            values[name] = _nanmean_labels(per)
            per_label_values[name] = per
            for j, slug in enumerate(task.label_slugs):
                out.per_label[slug][key] = float(per[j, 0])
                out.per_label_replicates.setdefault(slug, {})[key] = per[j, 1:].copy()
    if "micro_auroc" in wanted:
        # Micro average: all (unit, label) pairs as one binary problem, each pair carrying
        # its unit's weight (scikit-learn's average="micro").
        micro, _ = _ranking(
            scope,
            y.reshape(-1),
            p.reshape(-1),
            auroc=True,
            ap=False,
            batch_size=batch_size,
            cluster=np.repeat(scope.cluster, n_labels),
        )
        values["micro_auroc"] = micro[0]
    if "macro_f1" in wanted or "micro_f1" in wanted:
        yi = y.astype(np.int64)
        codes = (np.arange(n_labels) * 4 + 2 * yi + (p >= threshold)).reshape(-1)
        table = cluster_sums(
            np.repeat(scope.cluster, n_labels), scope.n_clusters, codes, 4 * n_labels
        )
        cells = replicate_sums(table, scope.counts).reshape(-1, n_labels, 4)
        per_f1 = confusion_scores(cells)["f1"].T
        values["macro_f1"] = _nanmean_labels(per_f1)
        per_label_values["macro_f1"] = per_f1
        values["micro_f1"] = confusion_scores(cells.sum(axis=1))["f1"]
    for name in wanted:
        out.add(name, values[name])
        if name in per_label_values:
            # Labels undefined in a replicate are left out of its mean: count those pairs.
            out.degenerate[name] = int(np.isnan(per_label_values[name][:, 1:]).sum())


def _length_of_stay(
    out: MetricValues,
    task: Task,
    scope: _Scope,
    y: np.ndarray,
    pred: np.ndarray,
    form: str,
    wanted: tuple[str, ...],
) -> None:
    buckets = task.buckets
    assert buckets is not None  # a length-of-stay task declares its buckets
    true_bucket = buckets.bucket(y)
    if form == "hours":
        pred_hours, pred_bucket = pred, buckets.bucket(pred)
    else:
        pred_bucket = np.argmax(pred, axis=1)
        pred_hours = buckets.hours(pred_bucket)
    k = len(buckets.mean_hours)
    table = np.hstack(
        [
            cluster_sums(scope.cluster, scope.n_clusters, true_bucket * k + pred_bucket, k * k),
            cluster_sums(
                scope.cluster,
                scope.n_clusters,
                np.zeros(y.shape, dtype=np.int64),
                1,
                weights=np.abs(y - pred_hours),
            ),
        ]
    )
    sums = replicate_sums(table, scope.counts)
    confusion = sums[:, : k * k].reshape(-1, k, k)
    total = confusion.sum(axis=(1, 2))
    values = {
        "kappa": linear_kappa(confusion),
        "accuracy": safe_divide(np.trace(confusion, axis1=1, axis2=2), total),
        "mad": safe_divide(sums[:, k * k], total),
    }
    for name in wanted:
        out.add(name, values[name])


__all__ = [
    "DECISION_REFUSAL_POLICY",
    "ECE_BINS",
    "FORMS",
    "FORM_METRICS",
    "MetricValues",
    "compute_metrics",
]
