"""Every replicate of every metric equals scikit-learn's value with the replicate's row
weights as ``sample_weight`` (ECE: a direct loop), and the point value equals the unweighted
value; plus the properties a bootstrap must have."""

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    cohen_kappa_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from benchmark_data.tasks import TASKS, los_bucket, los_bucket_hours
from scoring.bootstrap import make_plan, percentile_ci
from scoring.metrics import (
    DECISION_REFUSAL_POLICY,
    ERR_FORM,
    ERR_METRIC,
    compute_metrics,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")

TOL = 1e-9
N_REPS = 25
MORTALITY = TASKS["in-hospital-mortality"]
DECOMP = TASKS["decompensation"]
PHENO = TASKS["phenotyping"]
LOS = TASKS["length-of-stay"]

# (patients, mean rows per patient): one unit per patient, and an hourly-like layout.
LAYOUTS = {"stay": (600, 1), "hourly": (40, 30)}


def _clusters(rng, n_patients, rows_per):
    sizes = rng.poisson(rows_per - 1, n_patients) + 1 if rows_per > 1 else np.ones(n_patients, int)
    ids = rng.choice(10**6, n_patients, replace=False)  # arbitrary, unsorted patient ids
    return np.repeat(ids, sizes)


def _binary(seed, layout, *, prevalence=0.15, decimals=1):
    """Clustered binary data with heavily tied scores (rounded) correlated with labels."""
    rng = np.random.default_rng(seed)
    clusters = _clusters(rng, *LAYOUTS[layout])
    n = clusters.size
    y = (rng.random(n) < prevalence).astype(np.int8)
    p = np.clip(0.3 * y + rng.beta(2, 5, n), 0, 1).round(decimals)
    return clusters, y, p


def _both_classes(y, w):
    return (w * y).sum() > 0 and (w * (1 - y)).sum() > 0


def _ece_loop(y, p, w, n_bins=10):
    """Direct ECE: sum over bins of (bin weight / total) |mean y - mean p|."""
    total, ece = w.sum(), 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (p >= lo) & ((p < hi) if b < n_bins - 1 else (p <= hi))
        wb = w[inside].sum()
        if wb > 0:
            gap = np.average(y[inside], weights=w[inside]) - np.average(
                p[inside], weights=w[inside]
            )
            ece += wb / total * abs(gap)
    return ece


def _sk_binary_probability(y, p, w, threshold):
    yhat = (p >= threshold).astype(int)
    ranked = _both_classes(y, w)
    kw = {"sample_weight": w, "zero_division": np.nan}
    return {
        "auroc": roc_auc_score(y, p, sample_weight=w) if ranked else np.nan,
        "auprc": average_precision_score(y, p, sample_weight=w) if ranked else np.nan,
        "brier": brier_score_loss(y, p, sample_weight=w),
        "ece": _ece_loop(y, p, w),
        "accuracy": accuracy_score(y, yhat, sample_weight=w),
        "f1": f1_score(y, yhat, **kw),
        "precision": precision_score(y, yhat, **kw),
        "recall": recall_score(y, yhat, **kw),
        "specificity": recall_score(y, yhat, pos_label=0, **kw),
    }


def _assert_matches(mv, reference, y_sel, p_sel, weights, names):
    """Row 0 of the reference is the unweighted point value, then one row per replicate."""
    expected = reference(y_sel, p_sel, np.ones(len(y_sel)))
    for name in names:
        assert mv.point[name] == pytest.approx(expected[name], abs=TOL, nan_ok=True), name
    for b in range(weights.shape[0]):
        expected = reference(y_sel, p_sel, weights[b])
        for name in names:
            got = mv.replicates[name][b]
            assert got == pytest.approx(expected[name], abs=TOL, nan_ok=True), (name, b)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_probability_replicates_equal_sklearn_with_weights(seed, layout):
    """AUROC, AP, Brier, ECE and the threshold metrics of each replicate equal scikit-learn's
    weighted values, with heavy ties and on a subset of the units."""
    clusters, y, p = _binary(seed, layout, decimals=(1, 2, 8)[seed])  # 8: few ties
    rows = np.random.default_rng(seed).random(y.size) < 0.8
    plan = make_plan(clusters, n_replicates=N_REPS, seed=seed)
    threshold = 0.4
    names = [*MORTALITY.metrics, "accuracy"]
    mv = compute_metrics(
        MORTALITY, "probability", y, p, plan=plan, rows=rows, threshold=threshold,
        metrics=names, batch_size=7,
    )  # fmt: skip
    _assert_matches(
        mv,
        lambda yy, pp, w: _sk_binary_probability(yy, pp, w, threshold),
        y[rows],
        p[rows],
        plan.row_weights(rows),
        names,
    )


def test_ece_bins_are_equal_width_with_the_last_closed():
    """Scores exactly on the bin edges (0.3, 1.0, 0.0) fall in the bin they open, as in the
    direct loop; weighted ECE equals the loop in every replicate."""
    rng = np.random.default_rng(5)
    clusters = _clusters(rng, 80, 5)
    y = (rng.random(clusters.size) < 0.4).astype(np.int8)
    p = rng.choice(np.arange(11) / 10, clusters.size)
    plan = make_plan(clusters, n_replicates=N_REPS, seed=3)
    mv = compute_metrics(
        MORTALITY, "probability", y, p, plan=plan, metrics=["ece", "accuracy", "brier"]
    )
    _assert_matches(
        mv,
        lambda yy, pp, w: _sk_binary_probability(yy, pp, w, 0.5),
        y,
        p,
        plan.row_weights(),
        ["ece", "accuracy", "brier"],
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_decision_metrics_count_refusals_as_wrong_answers(seed):
    """Decision entries: each replicate equals scikit-learn on the decisions with each refusal
    replaced by the wrong answer; answer rate is the weighted share answered."""
    clusters, y, _ = _binary(seed, "hourly", prevalence=0.3)
    rng = np.random.default_rng(seed + 10)
    d = np.where(rng.random(y.size) < 0.75, y, 1 - y).astype(float)
    d[rng.random(y.size) < 0.15] = np.nan
    plan = make_plan(clusters, n_replicates=N_REPS, seed=seed)
    mv = compute_metrics(DECOMP, "decision", y, d, plan=plan)
    assert "wrong answer" in DECISION_REFUSAL_POLICY

    def reference(yy, dd, w):
        eff = np.where(np.isnan(dd), 1 - yy, dd).astype(int)
        kw = {"sample_weight": w, "zero_division": np.nan}
        return {
            "accuracy": accuracy_score(yy, eff, sample_weight=w),
            "precision": precision_score(yy, eff, **kw),
            "recall": recall_score(yy, eff, **kw),
            "specificity": recall_score(yy, eff, pos_label=0, **kw),
            "f1": f1_score(yy, eff, **kw),
            "answer_rate": np.average(~np.isnan(dd), weights=w),
        }

    assert set(mv.point) == set(DECOMP.decision_metrics)
    _assert_matches(mv, reference, y, d, plan.row_weights(), DECOMP.decision_metrics)


def _multilabel(seed, n_labels):
    rng = np.random.default_rng(seed)
    clusters = _clusters(rng, 300, 1.5)
    n = clusters.size
    prevalence = rng.uniform(0.05, 0.5, n_labels)
    prevalence[0] = 3 / n  # a rare label: some replicates hold none of its positives
    y = (rng.random((n, n_labels)) < prevalence).astype(np.int8)
    p = np.clip(0.25 * y + rng.beta(2, 4, (n, n_labels)), 0, 1).round(2)
    return clusters, y, p


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.slow
def test_multilabel_replicates_equal_sklearn_and_count_degenerate_labels(seed):
    """Macro AUROC/AUPRC are the mean over the labels defined in each replicate; micro AUROC,
    macro and micro F1 equal scikit-learn; per-label values match; labels left out of a
    replicate's mean are counted."""
    clusters, y, p = _multilabel(seed, PHENO.n_labels)
    plan = make_plan(clusters, n_replicates=N_REPS, seed=seed)
    mv = compute_metrics(PHENO, "probability", y, p, plan=plan, threshold=0.45)

    def per_label(yy, pp, w, fn):
        return np.array(
            [
                fn(yy[:, j], pp[:, j], sample_weight=w) if _both_classes(yy[:, j], w) else np.nan
                for j in range(yy.shape[1])
            ]
        )

    def reference(yy, pp, w):
        yhat = (pp >= 0.45).astype(int)
        kw = {"sample_weight": w, "zero_division": np.nan}
        return {
            "macro_auroc": np.nanmean(per_label(yy, pp, w, roc_auc_score)),
            "macro_auprc": np.nanmean(per_label(yy, pp, w, average_precision_score)),
            "micro_auroc": roc_auc_score(yy, pp, average="micro", sample_weight=w),
            "macro_f1": f1_score(yy, yhat, average="macro", **kw),
            "micro_f1": f1_score(yy, yhat, average="micro", **kw),
        }

    _assert_matches(mv, reference, y, p, plan.row_weights(), PHENO.metrics)
    weights = plan.row_weights()
    slug = PHENO.label_slugs[0]
    expected = [
        roc_auc_score(y[:, 0], p[:, 0], sample_weight=w) if _both_classes(y[:, 0], w) else np.nan
        for w in weights
    ]
    np.testing.assert_allclose(mv.per_label_replicates[slug]["auroc"], expected, atol=TOL)
    assert mv.per_label[slug]["prevalence"] == pytest.approx(y[:, 0].mean())
    assert mv.per_label[slug]["auprc"] == pytest.approx(average_precision_score(y[:, 0], p[:, 0]))
    excluded = sum(not _both_classes(y[:, j], w) for w in weights for j in range(PHENO.n_labels))
    assert excluded > 0
    assert mv.degenerate["macro_auroc"] == excluded


def _los(seed):
    rng = np.random.default_rng(seed)
    clusters = _clusters(rng, 50, 25)
    n = clusters.size
    y = rng.exponential(90, n).round()
    y[:20] = [24.0 * k for k in range(20)]  # exactly on bucket edges
    hours = np.clip(y * rng.lognormal(0, 0.5, n), 0, None).round()
    buckets = rng.dirichlet(np.ones(10), n)
    buckets[np.arange(n), los_bucket(y)] += rng.random(n) < 0.4  # some signal
    return clusters, y, hours, buckets


@pytest.mark.parametrize("form", ["hours", "buckets"])
@pytest.mark.parametrize("seed", [0, 1])
def test_length_of_stay_replicates_equal_sklearn(seed, form):
    """Linear kappa over the 10 buckets, MAD in hours and bucket accuracy equal scikit-learn /
    numpy with the replicate weights, for hours and bucket-probability predictions."""
    clusters, y, hours, buckets = _los(seed)
    pred = hours if form == "hours" else buckets
    plan = make_plan(clusters, n_replicates=N_REPS, seed=seed)
    mv = compute_metrics(LOS, form, y, pred, plan=plan)

    def reference(yy, pp, w):
        tb = los_bucket(yy)
        if form == "hours":
            pb, ph = los_bucket(pp), pp
        else:
            pb = np.argmax(pp, axis=1)
            ph = los_bucket_hours(pb)
        return {
            "kappa": cohen_kappa_score(
                tb, pb, weights="linear", labels=list(range(10)), sample_weight=w
            ),
            "mad": np.average(np.abs(yy - ph), weights=w),
            "accuracy": accuracy_score(tb, pb, sample_weight=w),
        }

    _assert_matches(mv, reference, y, pred, plan.row_weights(), LOS.metrics)


def test_one_class_replicates_are_nan_and_counted():
    """A replicate without positives has an undefined AUROC and AP: NaN, counted in
    ``degenerate``; thresholds metrics with a zero denominator are NaN too."""
    rng = np.random.default_rng(7)
    clusters = np.arange(60)
    y = np.zeros(60, np.int8)
    y[0] = 1  # one positive patient: about a third of replicates miss it
    p = rng.random(60)
    plan = make_plan(clusters, n_replicates=200, seed=1)
    mv = compute_metrics(MORTALITY, "probability", y, p, plan=plan)
    missing = plan.counts[:, plan.unit_cluster[0]] == 0
    assert 30 < missing.sum() < 120
    for name in ("auroc", "auprc", "recall"):
        assert np.array_equal(np.isnan(mv.replicates[name]), missing), name
        assert mv.degenerate[name] == missing.sum()
    assert mv.degenerate["brier"] == 0
    assert percentile_ci(mv.replicates["auroc"])[0] is not None


def test_row_order_does_not_change_any_value():
    """Shuffling the rows (with their cluster ids) gives the same plan and the same values."""
    clusters, y, p = _binary(3, "hourly")
    plan = make_plan(clusters, n_replicates=50, seed=9)
    mv = compute_metrics(DECOMP, "probability", y, p, plan=plan)
    perm = np.random.default_rng(0).permutation(y.size)
    plan2 = make_plan(clusters[perm], n_replicates=50, seed=9)
    mv2 = compute_metrics(DECOMP, "probability", y[perm], p[perm], plan=plan2)
    for name in DECOMP.metrics:
        assert mv2.point[name] == pytest.approx(mv.point[name], abs=1e-12)
        np.testing.assert_allclose(mv2.replicates[name], mv.replicates[name], atol=1e-12)


def test_same_seed_same_values_and_another_seed_other_replicates():
    clusters, y, p = _binary(4, "stay")
    a = compute_metrics(MORTALITY, "probability", y, p, plan=make_plan(clusters, seed=5))
    b = compute_metrics(MORTALITY, "probability", y, p, plan=make_plan(clusters, seed=5))
    c = compute_metrics(MORTALITY, "probability", y, p, plan=make_plan(clusters, seed=6))
    assert np.array_equal(a.replicates["auroc"], b.replicates["auroc"])
    assert not np.array_equal(a.replicates["auroc"], c.replicates["auroc"])
    assert a.point == b.point == c.point


@pytest.mark.parametrize("seed", range(4))
def test_ci_contains_the_point_estimate(seed):
    clusters, y, p = _binary(seed, "hourly", decimals=3)
    mv = compute_metrics(DECOMP, "probability", y, p, plan=make_plan(clusters, seed=seed))
    for name in DECOMP.metrics:
        low, high = percentile_ci(mv.replicates[name])
        assert low <= mv.point[name] <= high, name


def test_a_metric_subset_gives_the_same_values_as_the_full_set():
    clusters, y, p = _multilabel(2, PHENO.n_labels)
    plan = make_plan(clusters, n_replicates=30, seed=2)
    full = compute_metrics(PHENO, "probability", y, p, plan=plan)
    one = compute_metrics(PHENO, "probability", y, p, plan=plan, metrics=["macro_auroc"])
    assert list(one.point) == ["macro_auroc"]
    assert one.point["macro_auroc"] == full.point["macro_auroc"]
    np.testing.assert_array_equal(one.replicates["macro_auroc"], full.replicates["macro_auroc"])
    assert "auprc" not in one.per_label[PHENO.label_slugs[1]]


def test_without_a_plan_only_point_values_are_computed():
    clusters, y, p = _binary(0, "stay")
    mv = compute_metrics(MORTALITY, "probability", y, p, plan=None)
    assert mv.point["auroc"] == pytest.approx(roc_auc_score(y, p), abs=TOL)
    assert mv.replicates["auroc"].shape == (0,)
    assert mv.degenerate["auroc"] == 0


def test_an_empty_selection_is_undefined_everywhere():
    clusters, y, p = _binary(0, "stay")
    plan = make_plan(clusters, n_replicates=10, seed=0)
    mv = compute_metrics(
        MORTALITY, "probability", y, p, plan=plan, rows=np.zeros(y.size, dtype=bool)
    )
    assert all(np.isnan(v) for v in mv.point.values())
    assert all(n == 10 for n in mv.degenerate.values())


def test_wrong_form_metric_or_shape_is_refused_with_a_message():
    clusters, y, p = _binary(0, "stay")
    with pytest.raises(ValueError, match="does not apply"):
        compute_metrics(LOS, "probability", y, p, plan=None)
    with pytest.raises(ValueError, match="not available"):
        compute_metrics(MORTALITY, "probability", y, p, plan=None, metrics=["kappa"])
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(MORTALITY, "probability", y, p[:-1], plan=None)
    assert "{form" in ERR_FORM and "{names}" in ERR_METRIC


# The metric table --------------------------------------------------------------------------
def test_the_metric_table_is_the_one_place_a_metric_is_declared():
    from benchmark_data.suite import DECISION_METRICS, KIND_METRICS, METRICS
    from scoring.metrics import FAMILIES, FORM_METRICS, FORMS, metric_table

    computed = {m for f in FAMILIES for m in f.metrics}
    assert computed == set(METRICS)  # each metric has a direction and a title, and a function
    # What a suite may declare is what the engine computes.
    for kind in KIND_METRICS:
        for form in FORMS[kind]:
            if form != "decision":
                assert set(FORM_METRICS[(kind, form)]) == set(KIND_METRICS[kind]), (kind, form)
    assert set(FORM_METRICS[("binary", "decision")]) == set(DECISION_METRICS)
    rows = {(r.name, r.kind, r.form): r for r in metric_table()}
    assert rows[("mad", "los", "buckets")].greater_is_better is False
    assert rows[("auroc", "binary", "probability")].title == "AUROC"
    assert ("auroc", "binary", "decision") not in rows
    # No metric is computed twice for one kind and form.
    for kind, forms in FORMS.items():
        for form in forms:
            names = [m for f in FAMILIES if f.applies_to(kind, form) for m in f.metrics]
            assert len(names) == len(set(names)), (kind, form)


FORM_TASKS = {
    ("binary", "probability"): "in-hospital-mortality",
    ("binary", "decision"): "in-hospital-mortality",
    ("multilabel", "probability"): "phenotyping",
    ("los", "hours"): "length-of-stay",
    ("los", "buckets"): "length-of-stay",
}


@pytest.mark.parametrize(("kind", "form"), list(FORM_TASKS))
def test_every_registered_metric_is_computed_for_every_form_that_lists_it(kind, form):
    from scoring.metrics import FORM_METRICS

    task = TASKS[FORM_TASKS[(kind, form)]]
    assert task.kind == kind
    rng = np.random.default_rng(7)
    n = 240
    if kind == "multilabel":
        y = rng.integers(0, 2, size=(n, task.n_labels))
        pred = np.clip(y * 0.3 + rng.random((n, task.n_labels)) * 0.7, 0, 1)
    elif kind == "los":
        y = rng.gamma(2.0, 60.0, size=n)
        pred = (y * rng.uniform(0.5, 1.5, size=n) if form == "hours"
                else rng.dirichlet(np.ones(len(task.bucket_columns)), size=n))  # fmt: skip
    else:
        y = rng.integers(0, 2, size=n)
        p = np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)
        pred = (p >= 0.5).astype(float) if form == "decision" else p
    plan = make_plan(np.arange(n) // 2, n_replicates=30, seed=1)
    wanted = FORM_METRICS[(kind, form)]
    mv = compute_metrics(task, form, y, pred, plan=plan, metrics=wanted)
    assert set(mv.point) == set(wanted)
    for name in wanted:
        assert np.isfinite(mv.point[name]), name
        assert mv.replicates[name].shape == (30,), name
        assert mv.degenerate[name] == 0, name
