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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmark_data.suite import METRICS
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
    ctx = _Inputs(task, form, scope, y[scope.idx], pred[scope.idx], threshold, batch_size, out)
    if task.kind == "multilabel":
        _label_prevalence(ctx)
    values: dict[str, np.ndarray] = {}
    for family in FAMILIES:
        asked = tuple(m for m in family.metrics if m in wanted)
        if family.applies_to(task.kind, form) and asked:
            values.update(family.compute(ctx, asked))
    for name in wanted:
        out.add(name, values[name])
        if name in ctx.per_label_values:
            # Labels undefined in a replicate are left out of its mean: count those pairs.
            out.degenerate[name] = int(np.isnan(ctx.per_label_values[name][:, 1:]).sum())
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


@dataclass
class _Inputs:
    """What a family of metrics is computed from: the selected units' truth and
    predictions, their clusters and replicate counts, and the scoring settings. Multi-label
    families also record per-label values in ``out`` and ``per_label_values``."""

    task: Task
    form: str
    scope: _Scope
    y: np.ndarray
    p: np.ndarray
    threshold: float
    batch_size: int
    out: MetricValues
    per_label_values: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (L, 1 + B)


Compute = Callable[[_Inputs, tuple[str, ...]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Family:
    """Metrics computed together on a replicate plan (they share a kernel pass): the task
    kind and prediction forms they apply to, their names, and the function that computes
    the asked ones, each as ``(1 + B,)`` values (point value, then replicates)."""

    kind: str
    forms: tuple[str, ...]
    metrics: tuple[str, ...]
    compute: Compute

    def applies_to(self, kind: str, form: str) -> bool:
        return kind == self.kind and form in self.forms


def _ranking_binary(ctx: _Inputs, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    auc, ap = _ranking(ctx.scope, ctx.y, ctx.p, auroc="auroc" in names, ap="auprc" in names,
                       batch_size=ctx.batch_size)  # fmt: skip
    return {"auroc": auc[0], "auprc": ap[0]}


def _confusion_binary(ctx: _Inputs, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    sc = ctx.scope
    codes = 2 * ctx.y.astype(np.int64) + (ctx.p >= ctx.threshold)
    cells = replicate_sums(cluster_sums(sc.cluster, sc.n_clusters, codes, 4), sc.counts)
    return confusion_scores(cells)


def _brier(ctx: _Inputs, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    sc, yi = ctx.scope, ctx.y.astype(np.int64)
    sq = cluster_sums(sc.cluster, sc.n_clusters, np.zeros_like(yi), 1, weights=(ctx.p - yi) ** 2)
    n = cluster_sums(sc.cluster, sc.n_clusters, np.zeros_like(yi), 1)
    sums = replicate_sums(np.hstack([sq, n]), sc.counts)
    return {"brier": safe_divide(sums[:, 0], sums[:, 1])}


def _ece(ctx: _Inputs, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    sc = ctx.scope
    table = calibration_table(ctx.y.astype(np.int64), ctx.p, sc.cluster, sc.n_clusters, ECE_BINS)
    return {"ece": expected_calibration_error(replicate_sums(table, sc.counts), ECE_BINS)}


def _decisions(ctx: _Inputs, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    sc, yi, d = ctx.scope, ctx.y.astype(np.int64), ctx.p
    answered = ~np.isnan(d)
    # DECISION_REFUSAL_POLICY: a refusal is scored as the wrong answer.
    effective = np.where(answered, d, 1 - yi).astype(np.int64)
    table = np.hstack(
        [
            cluster_sums(sc.cluster, sc.n_clusters, 2 * yi + effective, 4),
            cluster_sums(sc.cluster, sc.n_clusters, answered.astype(np.int64), 2),
        ]
    )
    sums = replicate_sums(table, sc.counts)
    values = confusion_scores(sums[:, :4])
    values["answer_rate"] = safe_divide(sums[:, 5], sums[:, 4] + sums[:, 5])
    return values


def _nanmean_labels(v: np.ndarray) -> np.ndarray:
    """Mean over labels (axis 0) of the labels defined in each column; NaN if none is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return np.nanmean(v, axis=0)


def _label_prevalence(ctx: _Inputs) -> None:
    prevalence = ctx.y.mean(axis=0)
    for j, slug in enumerate(ctx.task.label_slugs):
        ctx.out.per_label.setdefault(slug, {})["prevalence"] = float(prevalence[j])


def _ranking_macro(ctx: _Inputs, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    want_auc, want_ap = "macro_auroc" in names, "macro_auprc" in names
    per_auc, per_ap = _ranking(ctx.scope, ctx.y, ctx.p, auroc=want_auc, ap=want_ap,
                               batch_size=ctx.batch_size)  # fmt: skip
    values = {}
    for name, per, key in (("macro_auroc", per_auc, "auroc"), ("macro_auprc", per_ap, "auprc")):
        if name not in names:
            continue
        values[name] = _nanmean_labels(per)
        ctx.per_label_values[name] = per
        for j, slug in enumerate(ctx.task.label_slugs):
            ctx.out.per_label[slug][key] = float(per[j, 0])
            ctx.out.per_label_replicates.setdefault(slug, {})[key] = per[j, 1:].copy()
    return values


def _ranking_micro(ctx: _Inputs, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    # Micro average: all (unit, label) pairs as one binary problem, each pair carrying its
    # unit's weight (scikit-learn's average="micro").
    micro, _ = _ranking(
        ctx.scope, ctx.y.reshape(-1), ctx.p.reshape(-1), auroc=True, ap=False,
        batch_size=ctx.batch_size, cluster=np.repeat(ctx.scope.cluster, ctx.y.shape[1]),
    )  # fmt: skip
    return {"micro_auroc": micro[0]}


def _f1_labels(ctx: _Inputs, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    sc, n_labels = ctx.scope, ctx.y.shape[1]
    yi = ctx.y.astype(np.int64)
    codes = (np.arange(n_labels) * 4 + 2 * yi + (ctx.p >= ctx.threshold)).reshape(-1)
    table = cluster_sums(np.repeat(sc.cluster, n_labels), sc.n_clusters, codes, 4 * n_labels)
    cells = replicate_sums(table, sc.counts).reshape(-1, n_labels, 4)
    per_f1 = confusion_scores(cells)["f1"].T
    ctx.per_label_values["macro_f1"] = per_f1
    return {
        "macro_f1": _nanmean_labels(per_f1),
        "micro_f1": confusion_scores(cells.sum(axis=1))["f1"],
    }


def _length_of_stay(ctx: _Inputs, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    buckets = ctx.task.buckets
    assert buckets is not None  # a length-of-stay task declares its buckets
    sc, y = ctx.scope, ctx.y
    true_bucket = buckets.bucket(y)
    if ctx.form == "hours":
        pred_hours, pred_bucket = ctx.p, buckets.bucket(ctx.p)
    else:
        pred_bucket = np.argmax(ctx.p, axis=1)
        pred_hours = buckets.hours(pred_bucket)
    k = len(buckets.mean_hours)
    table = np.hstack(
        [
            cluster_sums(sc.cluster, sc.n_clusters, true_bucket * k + pred_bucket, k * k),
            cluster_sums(sc.cluster, sc.n_clusters, np.zeros(y.shape, dtype=np.int64), 1,
                         weights=np.abs(y - pred_hours)),
        ]
    )  # fmt: skip
    sums = replicate_sums(table, sc.counts)
    confusion = sums[:, : k * k].reshape(-1, k, k)
    total = confusion.sum(axis=(1, 2))
    return {
        "kappa": linear_kappa(confusion),
        "accuracy": safe_divide(np.trace(confusion, axis1=1, axis2=2), total),
        "mad": safe_divide(sums[:, k * k], total),
    }


# The metric table: every metric the engine computes, by task kind and prediction form, and
# the function that computes it. What a metric is called and which way is better is
# benchmark_data's METRICS; which metrics a task may declare (KIND_METRICS,
# DECISION_METRICS) and FORM_METRICS follow from this table (tests/scoring/test_metrics.py).
FAMILIES: tuple[Family, ...] = (
    Family("binary", ("probability",), ("auroc", "auprc"), _ranking_binary),
    Family("binary", ("probability",), ("brier",), _brier),
    Family("binary", ("probability",), ("ece",), _ece),
    Family("binary", ("probability",),
           ("accuracy", "f1", "precision", "recall", "specificity"), _confusion_binary),
    Family("binary", ("decision",),
           ("accuracy", "precision", "recall", "specificity", "f1", "answer_rate"), _decisions),
    Family("multilabel", ("probability",), ("macro_auroc", "macro_auprc"), _ranking_macro),
    Family("multilabel", ("probability",), ("micro_auroc",), _ranking_micro),
    Family("multilabel", ("probability",), ("macro_f1", "micro_f1"), _f1_labels),
    Family("los", ("hours", "buckets"), ("kappa", "mad", "accuracy"), _length_of_stay),
)  # fmt: skip


def _form_metrics() -> dict[tuple[str, str], tuple[str, ...]]:
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for kind, forms in FORMS.items():
        for form in forms:
            names = [m for f in FAMILIES if f.applies_to(kind, form) for m in f.metrics]
            out[(kind, form)] = tuple(dict.fromkeys(names))
    return out


# (task kind, form) -> the metrics computed for it, in the table's order.
FORM_METRICS: dict[tuple[str, str], tuple[str, ...]] = _form_metrics()


@dataclass(frozen=True)
class MetricRow:
    """One row of :func:`metric_table`."""

    name: str
    title: str
    greater_is_better: bool
    kind: str
    form: str
    compute: Compute


def metric_table() -> list[MetricRow]:
    """Every metric, with its direction, the task kind and form it applies to, and the
    function that computes it: one row per (metric, kind, form)."""
    return [
        MetricRow(m, METRICS[m].title, METRICS[m].greater_is_better, kind, form, f.compute)
        for f in FAMILIES
        for form in f.forms
        for kind in (f.kind,)
        for m in f.metrics
    ]


__all__ = [
    "DECISION_REFUSAL_POLICY",
    "ECE_BINS",
    "FAMILIES",
    "FORMS",
    "FORM_METRICS",
    "Family",
    "MetricRow",
    "MetricValues",
    "compute_metrics",
    "metric_table",
]
