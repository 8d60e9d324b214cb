"""Replicate plans: patient-level multinomial counts, reproducible and order-independent,
shared by every submission of a benchmark's task."""

import numpy as np
import pytest

from scoring.bootstrap import (
    ERR_LEVEL,
    ERR_SEED,
    SEED_BITS,
    make_plan,
    percentile_ci,
    replicate_seed,
)


def _clusters(seed=0, n_patients=200):
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**7, n_patients, replace=False)
    return np.repeat(ids, rng.integers(1, 30, n_patients))


def test_each_replicate_draws_as_many_patients_as_there_are():
    clusters = _clusters()
    plan = make_plan(clusters, n_replicates=300, seed=1)
    n_patients = np.unique(clusters).size
    assert plan.counts.shape == (300, n_patients) == (plan.n_replicates, plan.n_clusters)
    assert np.all(plan.counts.sum(axis=1) == n_patients)
    assert np.all(plan.counts >= 0) and np.all(plan.counts == np.round(plan.counts))
    # Multinomial with equal probabilities: each patient is drawn once on average, and about
    # 1 - 1/e of the patients appear in a replicate.
    assert plan.counts.mean() == pytest.approx(1.0)
    assert (plan.counts > 0).mean() == pytest.approx(1 - np.exp(-1), abs=0.02)


def test_all_rows_of_a_patient_share_the_patients_weight():
    clusters = _clusters(1)
    plan = make_plan(clusters, n_replicates=20, seed=0)
    w = plan.row_weights()
    assert w.shape == (20, clusters.size)
    for cid in np.unique(clusters)[:10]:
        cols = w[:, clusters == cid]
        assert np.all(cols == cols[:, :1])


def test_clusters_are_numbered_in_sorted_id_order_so_row_order_does_not_matter():
    clusters = _clusters(2)
    perm = np.random.default_rng(0).permutation(clusters.size)
    a = make_plan(clusters, n_replicates=50, seed=4)
    b = make_plan(clusters[perm], n_replicates=50, seed=4)
    assert np.array_equal(a.counts, b.counts)
    assert np.array_equal(a.row_weights()[:, perm], b.row_weights())
    order = np.argsort(np.unique(clusters))
    assert np.array_equal(np.unique(a.unit_cluster), order)


def test_string_ids_are_accepted():
    plan = make_plan(np.array(["s2", "s1", "s2", "s3"]), n_replicates=5, seed=0)
    assert plan.unit_cluster.tolist() == [1, 0, 1, 2]


def test_same_seed_same_counts_other_seed_other_counts_and_plans_extend():
    clusters = _clusters(3)
    a = make_plan(clusters, n_replicates=100, seed=7)
    assert np.array_equal(a.counts, make_plan(clusters, n_replicates=100, seed=7).counts)
    assert not np.array_equal(a.counts, make_plan(clusters, n_replicates=100, seed=8).counts)
    small = make_plan(clusters, n_replicates=10, seed=7)
    assert np.array_equal(small.counts, a.counts[:10])


def test_row_weights_select_units_and_replicates():
    clusters = _clusters(4)
    plan = make_plan(clusters, n_replicates=30, seed=2)
    mask = np.random.default_rng(1).random(clusters.size) < 0.3
    full = plan.row_weights()
    assert np.array_equal(plan.row_weights(mask), full[:, mask])
    assert np.array_equal(plan.row_weights(np.flatnonzero(mask)), full[:, mask])
    assert np.array_equal(plan.row_weights(mask, start=5, stop=9), full[5:9][:, mask])
    assert plan.row_weights().dtype == np.float64
    with pytest.raises(ValueError, match="boolean mask"):
        plan.row_weights(mask[:-1])


def test_plan_arguments_are_checked():
    with pytest.raises(ValueError, match="at least one unit"):
        make_plan(np.array([]), seed=0)
    with pytest.raises(ValueError, match="positive integer"):
        make_plan([1, 2], n_replicates=0, seed=0)
    with pytest.raises(ValueError, match="non-negative integer"):
        make_plan([1, 2], seed=-1)


def test_replicate_seed_is_fixed_per_benchmark_and_task():
    s = replicate_seed(benchmark_hash="h1", task="decompensation")
    assert s == replicate_seed(benchmark_hash="h1", task="decompensation")
    others = {
        replicate_seed(benchmark_hash="h2", task="decompensation"),
        replicate_seed(benchmark_hash="h1", task="phenotyping"),
        replicate_seed(benchmark_hash="h1", task="decompensation", seed=0),
        replicate_seed(benchmark_hash="h1", task="decompensation", seed=1),
    }
    assert s not in others and len(others) == 4
    assert all(0 <= x < 2**SEED_BITS for x in [s, *others])
    with pytest.raises(ValueError, match=ERR_SEED.split("{")[0]):
        replicate_seed(benchmark_hash="h1", task="t", seed=-3)


def test_percentile_ci_ignores_nan_replicates():
    rng = np.random.default_rng(0)
    v = rng.normal(size=1000)
    assert percentile_ci(v) == pytest.approx(tuple(np.quantile(v, [0.025, 0.975])))
    with_nan = np.concatenate([v, [np.nan] * 50])
    assert percentile_ci(with_nan) == percentile_ci(v)
    assert percentile_ci(v, level=0.9) == pytest.approx(tuple(np.quantile(v, [0.05, 0.95])))
    assert percentile_ci(np.full(10, np.nan)) == (None, None)
    assert percentile_ci(np.array([])) == (None, None)
    with pytest.raises(ValueError, match=ERR_LEVEL.split("{")[0]):
        percentile_ci(v, level=1.0)
