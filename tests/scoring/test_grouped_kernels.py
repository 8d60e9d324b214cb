"""The grouped AUROC kernel: every group of a partition from one stacked table equals, bit
for bit, the AUROC of the group's own rank layout with the same weights (scikit-learn's
``roc_auc_score`` with the weights as ``sample_weight``), with tied scores, ties across
groups, a group without a positive, one without a negative, and float32 weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from scoring.bootstrap import make_plan
from scoring.kernels import (
    FLOAT32_EXACT,
    auroc_from_levels,
    float32_weights,
    grouped_auroc,
    grouped_rank_layout,
    level_counts,
    rank_layout,
    score_ranks,
)


def _units(seed: int, n: int = 1500):
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, 400, n)
    y = (rng.random(n) < 0.2).astype(np.int8)
    score = np.round(0.3 * y + 0.7 * rng.random(n), 2)  # many ties
    codes = rng.integers(-1, 5, n)  # -1: in no group
    codes[(codes == 3) & (y == 1)] = 2  # group 3: no positive
    codes[(codes == 4) & (y == 0)] = 1  # group 4: no negative
    return y, score, clusters, codes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_group_equals_its_own_layout_bit_for_bit(seed):
    y, score, clusters, codes = _units(seed)
    plan = make_plan(clusters, n_replicates=100, seed=seed)
    layout = grouped_rank_layout(
        y, score_ranks(score), plan.unit_cluster, plan.n_clusters, codes, 5
    )
    weights = plan.counts_by_cluster
    w32 = float32_weights(weights, plan.n_units)
    assert w32 is not None and w32.dtype == np.float32
    got64 = grouped_auroc(layout, weights, batch_size=7)  # short rows: accumulate
    got32 = grouped_auroc(layout, w32)  # one batch: row by row
    for g in range(5):
        rows = codes == g
        own = rank_layout(y[rows], score[rows], plan.unit_cluster[rows], plan.n_clusters)
        expected = auroc_from_levels(level_counts(own, weights))
        np.testing.assert_array_equal(got64[g], expected)
        np.testing.assert_array_equal(got32[g], expected)
    assert np.isnan(got64[3]).all() and np.isnan(got64[4]).all()
    # Against scikit-learn for a group, on a few replicates.
    rows = codes == 0
    for b in range(3):
        w = plan.row_weights(rows, start=b, stop=b + 1)[0]
        assert got64[0, b] == pytest.approx(
            roc_auc_score(y[rows], score[rows], sample_weight=w), abs=1e-12
        )


def test_float32_is_used_only_where_every_sum_stays_exact():
    counts = np.array([[1.0, 3.0], [0.0, 2.0]])
    assert float32_weights(counts, 100) is not None
    assert float32_weights(counts, FLOAT32_EXACT // 4) is None
