"""Vectorized weighted kernels: the point value and every bootstrap replicate at once.

Replicate weights are constant within a cluster (a patient), so every weighted sum a metric
needs is a linear function of the cluster weights. The kernels therefore aggregate the
selected rows once per cluster and let one matrix product with the replicate counts give the
sums of every replicate:

* threshold, calibration and bucket metrics: an ``(n_clusters, k)`` table of per-cluster sums
  (confusion cells, calibration bins, the 10 x 10 bucket table) times the counts;
* ranking metrics (AUROC, average precision): sparse per-cluster tables of the positives at
  each distinct positive score and of the negatives between and tied with those scores (rows
  sorted once), times the counts, then cumulative sums over the levels. Their size is set by
  the positives, which are rare in decompensation, and tied scores are kept together exactly
  as scikit-learn does.

The point estimate is the same computation with a weight of one per cluster. Each replicate
equals scikit-learn's value with the replicate's row weights as ``sample_weight``.

>>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.4, 0.35, 0.8])
>>> layout = rank_layout(y, s, np.arange(4), 4)
>>> auroc, ap = ranking_scores([layout], np.ones((4, 1)))
>>> float(auroc[0, 0]), round(float(ap[0, 0]), 4)
(0.75, 0.8333)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse

# Upper bound on the cells of one dense level table of a batch (levels x replicates; a batch
# holds about eight such tables), so that memory stays bounded when a label has many distinct
# positive scores.
MAX_BATCH_CELLS = 2_000_000


def cluster_sums(
    cluster: np.ndarray,
    n_clusters: int,
    codes: np.ndarray,
    n_codes: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Per-cluster sums of ``weights`` (or counts) in each of ``n_codes`` cells.

    Returns an ``(n_clusters, n_codes)`` float64 table; ``table[c, k]`` sums the rows of
    cluster ``c`` whose code is ``k``.

    >>> cluster_sums(np.array([0, 0, 1]), 2, np.array([1, 1, 0]), 2).tolist()
    [[0.0, 2.0], [1.0, 0.0]]
    """
    idx = np.asarray(cluster, dtype=np.int64) * n_codes + np.asarray(codes, dtype=np.int64)
    flat = np.bincount(idx.reshape(-1), weights=weights, minlength=n_clusters * n_codes)
    return flat.astype(np.float64, copy=False).reshape(n_clusters, n_codes)


def replicate_sums(table: np.ndarray, counts_by_cluster: np.ndarray | None) -> np.ndarray:
    """Sums of a per-cluster table with unit weights (row 0) and for each replicate.

    ``counts_by_cluster`` is ``(n_clusters, B)``; the result is ``(1 + B, k)``.
    """
    point = table.sum(axis=0, keepdims=True)
    if counts_by_cluster is None or counts_by_cluster.shape[1] == 0:
        return point
    return np.vstack([point, counts_by_cluster.T @ table])


def safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0``: an undefined ratio (no positives, no
    predicted positives, no weight) is reported as undefined, as scikit-learn does with
    ``zero_division=np.nan``, rather than as a misleading 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def confusion_scores(cells: np.ndarray) -> dict[str, np.ndarray]:
    """Threshold metrics from weighted confusion cells ``[..., (tn, fp, fn, tp)]``."""
    tn, fp, fn, tp = (cells[..., i] for i in range(4))
    return {
        "accuracy": safe_divide(tn + tp, tn + fp + fn + tp),
        "precision": safe_divide(tp, tp + fp),
        "recall": safe_divide(tp, tp + fn),
        "specificity": safe_divide(tn, tn + fp),
        "f1": safe_divide(2 * tp, 2 * tp + fp + fn),
    }


def calibration_bin(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each probability; bin ``i`` is ``[i/n, (i+1)/n)``, the last one
    closed so that ``p == 1`` falls in it."""
    # i / n (correctly rounded) rather than linspace, whose 0.1 * 3 lands above 0.3 and would
    # put a score of exactly 0.3 in the bin below.
    inner = np.arange(1, n_bins) / n_bins
    return np.searchsorted(inner, np.asarray(p, dtype=np.float64), side="right")


def calibration_table(
    y: np.ndarray, p: np.ndarray, cluster: np.ndarray, n_clusters: int, n_bins: int
) -> np.ndarray:
    """Per-cluster ``[count, sum y, sum p]`` of each calibration bin: ``(C, 3 * n_bins)``,
    columns ordered count of bins 0..n-1, then sums of y, then sums of p."""
    b = calibration_bin(p, n_bins)
    return np.hstack(
        [
            cluster_sums(cluster, n_clusters, b, n_bins),
            cluster_sums(cluster, n_clusters, b, n_bins, weights=np.asarray(y, np.float64)),
            cluster_sums(cluster, n_clusters, b, n_bins, weights=np.asarray(p, np.float64)),
        ]
    )


def expected_calibration_error(sums: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE from summed calibration tables ``(..., 3 * n_bins)``.

    ``sum_b (w_b / W) |mean(y)_b - mean(p)_b|`` simplifies to ``sum_b |sy_b - sp_b| / W``;
    empty bins contribute nothing.
    """
    count = sums[..., :n_bins]
    sy = sums[..., n_bins : 2 * n_bins]
    sp = sums[..., 2 * n_bins :]
    return safe_divide(np.abs(sy - sp).sum(axis=-1), count.sum(axis=-1))


def linear_kappa(confusion: np.ndarray) -> np.ndarray:
    """Cohen's linearly weighted kappa from weighted confusion tables ``(..., K, K)``
    (rows true, columns predicted), as scikit-learn's ``cohen_kappa_score``.

    Undefined (NaN) when there is no weight or the expected disagreement is zero (a single
    bucket shared by truth and prediction), as scikit-learn's ``replace_undefined_by``.
    """
    k = confusion.shape[-1]
    idx = np.arange(k)
    w = np.abs(idx[:, None] - idx[None, :]).astype(np.float64)
    total = confusion.sum(axis=(-2, -1))
    observed = (confusion * w).sum(axis=(-2, -1))
    true_marg = confusion.sum(axis=-1)
    pred_marg = confusion.sum(axis=-2)
    expected = safe_divide(np.einsum("...i,ij,...j->...", true_marg, w, pred_marg), total)
    return 1.0 - safe_divide(observed, expected)


@dataclass(frozen=True)
class RankLayout:
    """Rows of a binary problem aggregated at its distinct positive scores.

    With ``R`` distinct positive scores ``L_0 > ... > L_{R-1}``:

    * ``pos[r, c]``: positives of cluster ``c`` scored ``L_r``;
    * ``neg_step[r, c]``: negatives of cluster ``c`` scored at least ``L_r`` but below
      ``L_{r-1}`` (no upper bound for ``r = 0``), so that the cumulative sum over ``r`` counts
      the negatives at or above each level;
    * ``neg_tied[r, c]``: negatives of cluster ``c`` scored exactly ``L_r`` (tied with
      positives).

    Negatives below ``L_{R-1}`` only enter the totals ``neg_per_cluster``.
    """

    n_levels: int
    n_clusters: int
    pos: sparse.csr_array
    neg_step: sparse.csr_array
    neg_tied: sparse.csr_array
    neg_per_cluster: np.ndarray


def _level_table(
    level: np.ndarray, cluster: np.ndarray, shape: tuple[int, int]
) -> sparse.csr_array:
    """Sparse counts of rows per (level, cluster); duplicates are summed."""
    return sparse.coo_array((np.ones(level.size), (level, cluster)), shape=shape).tocsr()


def rank_layout(
    y: np.ndarray, score: np.ndarray, cluster: np.ndarray, n_clusters: int
) -> RankLayout:
    """Sort the rows once into a :class:`RankLayout` (O(n log n))."""
    yb = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    cl = np.asarray(cluster, dtype=np.int64)
    levels = np.unique(s[yb])  # ascending
    r_count = int(levels.size)
    pos_level = r_count - 1 - np.searchsorted(levels, s[yb])
    ns, ncl = s[~yb], cl[~yb]
    below = np.searchsorted(levels, ns, side="left")  # positive levels strictly below
    tied = np.zeros(ns.shape, dtype=bool)
    inside = below < r_count
    tied[inside] = levels[below[inside]] == ns[inside]
    # Index of the highest level at or below each negative; R when below every level.
    step = r_count - below - tied
    keep = step < r_count
    shape = (r_count, n_clusters)
    return RankLayout(
        n_levels=r_count,
        n_clusters=n_clusters,
        pos=_level_table(pos_level, cl[yb], shape),
        neg_step=_level_table(step[keep], ncl[keep], shape),
        neg_tied=_level_table(step[tied], ncl[tied], shape),
        neg_per_cluster=np.bincount(ncl, minlength=n_clusters).astype(np.float64),
    )


@dataclass(frozen=True)
class LevelCounts:
    """Weighted counts at the positive score levels for a batch of ``m`` weightings."""

    pos: np.ndarray  # (R, m) positives at each level
    neg_step: np.ndarray  # (R, m) see RankLayout
    neg_tied: np.ndarray | None  # (R, m) negatives tied with each level; None if no ties
    neg_total: np.ndarray  # (m,)

    @cached_property
    def tp(self) -> np.ndarray:
        """(R, m) weighted positives scored at or above each level."""
        return np.cumsum(self.pos, axis=0)

    @cached_property
    def fp(self) -> np.ndarray:
        """(R, m) weighted negatives scored at or above each level (ties included)."""
        return np.cumsum(self.neg_step, axis=0)


def level_counts(layout: RankLayout, weights_by_cluster: np.ndarray) -> LevelCounts:
    """Counts of a batch: ``weights_by_cluster`` is ``(n_clusters, m)``."""
    w = np.ascontiguousarray(weights_by_cluster, dtype=np.float64)
    tied = layout.neg_tied @ w if layout.neg_tied.nnz else None
    return LevelCounts(layout.pos @ w, layout.neg_step @ w, tied, layout.neg_per_cluster @ w)


def _column_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a * b).sum(axis=0)`` without the temporary."""
    return np.einsum("ij,ij->j", a, b)


def auroc_from_levels(lc: LevelCounts) -> np.ndarray:
    """AUROC per weighting: ``sum_r P_r (N - fp_r + N_r / 2) / (P N)``.

    Tied positive-negative pairs count one half, which is the trapezoid of scikit-learn's
    ``roc_auc_score``. With integer weights every sum here is an exact integer (or half), so
    the only rounding is the final division. NaN when a weighting has only one class: the
    AUROC is undefined (scikit-learn raises), and the caller counts such replicates.
    """
    if lc.pos.shape[0] == 0:
        return np.full(lc.neg_total.shape, np.nan)
    p_total = lc.pos.sum(axis=0)
    n_total = lc.neg_total
    num = p_total * n_total - _column_dot(lc.pos, lc.fp)
    if lc.neg_tied is not None:
        num += 0.5 * _column_dot(lc.pos, lc.neg_tied)
    return safe_divide(num, p_total * n_total)


def average_precision_from_levels(lc: LevelCounts) -> np.ndarray:
    """Average precision per weighting: ``sum_r (P_r / P) tp_r / (tp_r + fp_r)``.

    This is scikit-learn's ``average_precision_score`` (step-wise, no interpolation):
    only thresholds that add positives contribute. NaN when a weighting has only one class
    (as for the AUROC, so both ranking metrics count the same degenerate replicates).
    """
    if lc.pos.shape[0] == 0:
        return np.full(lc.neg_total.shape, np.nan)
    tp = lc.tp
    precision = tp + lc.fp
    # Where nothing of positive weight is scored at or above a level (0/0), the level has no
    # positive weight either and its term is 0 whatever the precision: divide by 1 there.
    precision[precision == 0] = 1.0
    np.divide(tp, precision, out=precision)
    ap = safe_divide(_column_dot(lc.pos, precision), tp[-1])
    ap[lc.neg_total == 0] = np.nan
    return ap


def batch_size_for(layout: RankLayout, batch_size: int) -> int:
    """Replicates per batch: ``batch_size`` unless the level tables would exceed
    ``MAX_BATCH_CELLS`` cells."""
    return max(1, min(int(batch_size), MAX_BATCH_CELLS // max(layout.n_levels, 1)))


def ranking_scores(
    layouts: Sequence[RankLayout],
    weights_by_cluster: np.ndarray,
    *,
    batch_size: int = 50,
    auroc: bool = True,
    average_precision: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision of each layout for each column of ``weights_by_cluster``.

    The layouts (e.g. the labels of a multi-label task) share the clusters; each batch of
    weights is laid out once for all of them.

    Parameters
    ----------
    layouts : sequence of RankLayout
        Problems over the same ``n_clusters`` clusters.
    weights_by_cluster : ndarray of shape (n_clusters, m)
        Cluster weights: ones for the point value, replicate counts for the bootstrap.
    batch_size : int, default=50
        Columns per batch (lowered when a layout has many levels).
    auroc, average_precision : bool
        Which metrics to compute; the other is left NaN.

    Returns
    -------
    auroc, average_precision : ndarray of shape (n_layouts, m)
    """
    m = weights_by_cluster.shape[1]
    out_auc = np.full((len(layouts), m), np.nan)
    out_ap = np.full((len(layouts), m), np.nan)
    if not layouts:
        return out_auc, out_ap
    step = min(batch_size_for(layout, batch_size) for layout in layouts)
    for start in range(0, m, step):
        stop = min(start + step, m)
        w = np.ascontiguousarray(weights_by_cluster[:, start:stop], dtype=np.float64)
        for i, layout in enumerate(layouts):
            lc = level_counts(layout, w)
            if auroc:
                out_auc[i, start:stop] = auroc_from_levels(lc)
            if average_precision:
                out_ap[i, start:stop] = average_precision_from_levels(lc)
    return out_auc, out_ap


def score_ranks(score: np.ndarray) -> np.ndarray:
    """Dense rank of each score (0 for the lowest; tied scores share a rank): the one sort
    of an entry's scores that :func:`grouped_auroc` reuses for every grouping of its units.

    >>> score_ranks(np.array([0.3, 0.1, 0.3, 0.7])).tolist()
    [1, 0, 1, 2]
    """
    _, inverse = np.unique(np.asarray(score, dtype=np.float64), return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


@dataclass(frozen=True)
class GroupedRankLayout:
    """The :class:`RankLayout` of every group of a partition of the units, stacked.

    The ``L`` rows are the groups' positive score levels, group after group (the highest
    group code first), each group's levels from its highest score down, so that a group's
    rows are its own :class:`RankLayout`'s rows. ``table`` stacks, over the clusters:

    * ``L`` rows of the positives at each level;
    * ``L`` rows of the negatives of each step, a tied negative counting one half at its
      level and the other half at the group's next level down, so that the cumulative sum
      down a group's rows is ``fp - tied / 2`` (negatives above each level, ties halved);
    * ``G`` rows of each group's negatives.

    One sparse product with the weights gives all of them for every group and weighting.
    """

    n_groups: int
    starts: np.ndarray  # (G,) first row of each group's levels
    n_levels: np.ndarray  # (G,) levels of each group (0: no positive)
    table: sparse.csr_array  # (2 L + G, n_clusters)

    @property
    def total_levels(self) -> int:
        return int(self.n_levels.sum())


def grouped_rank_layout(
    y: np.ndarray,
    ranks: np.ndarray,
    cluster: np.ndarray,
    n_clusters: int,
    codes: np.ndarray,
    n_groups: int,
) -> GroupedRankLayout:
    """The stacked layout of the groups ``codes`` (``0 .. n_groups - 1``; -1: a unit in no
    group) from the units' score ``ranks`` (:func:`score_ranks`): no sort of the scores,
    one sort of the positives' (group, rank) keys."""
    codes = np.asarray(codes, dtype=np.int64)
    ranks = np.asarray(ranks, dtype=np.int64)
    yb = np.asarray(y).astype(bool)
    cl = np.asarray(cluster, dtype=np.int64)
    width = int(ranks.max()) + 1 if ranks.size else 1
    member = codes >= 0
    pos, neg = member & yb, member & ~yb
    pkey = codes[pos] * width + ranks[pos]
    levels = np.unique(pkey)  # ascending: group, then score
    total = int(levels.size)
    first = np.searchsorted(levels, np.arange(n_groups, dtype=np.int64) * width)
    count = np.searchsorted(levels, np.arange(1, n_groups + 1, dtype=np.int64) * width) - first
    # Rows run down from the top level of the highest group: ascending index k is row
    # total - 1 - k, and a group's rows start at total - first - count.
    starts = total - first - count
    pos_row = total - 1 - np.searchsorted(levels, pkey)
    ng = codes[neg]
    nkey = ng * width + ranks[neg]
    at = np.searchsorted(levels, nkey, side="left")
    below = at - first[ng]  # the group's levels strictly below each negative
    tied = np.zeros(nkey.shape, dtype=bool)
    inside = below < count[ng]
    tied[inside] = levels[at[inside]] == nkey[inside]
    step = count[ng] - below - tied  # as in rank_layout, within the group
    keep = step < count[ng]
    neg_row = starts[ng] + step
    ncl = cl[neg]
    # A tied negative: one half at its level, the other half from the next level down on
    # (none when its level is the group's last).
    half_on = tied & (step + 1 < count[ng])
    rows = np.concatenate(
        [pos_row, total + neg_row[keep], total + neg_row[half_on] + 1, 2 * total + ng]
    )
    cols = np.concatenate([cl[pos], ncl[keep], ncl[half_on], ncl])
    data = np.concatenate(
        [
            np.ones(pos_row.size),
            np.where(tied[keep], 0.5, 1.0),
            np.full(int(half_on.sum()), 0.5),
            np.ones(ng.size),
        ]
    )
    table = sparse.coo_array((data, (rows, cols)), shape=(2 * total + n_groups, n_clusters))
    return GroupedRankLayout(n_groups, starts, count, table.tocsr())


# Whole numbers and halves below 2**23 are exact in float32, and so is every sum of them
# that stays below it.
FLOAT32_EXACT = 2**23
# Cells of the dense tables of one batch of grouped_auroc (levels x weightings; about four
# such tables are alive at once).
GROUPED_BATCH_CELLS = 8_000_000


def float32_weights(counts_by_cluster: np.ndarray, n_units: int) -> np.ndarray | None:
    """Replicate counts (whole numbers, as a :class:`~scoring.bootstrap.ReplicatePlan`
    draws them) in float32 when :func:`grouped_auroc`'s sums over up to ``2 * n_units``
    units stay exact in float32 with them (the largest count times ``2 * n_units`` below
    2**23); else None."""
    w = np.asarray(counts_by_cluster)
    if w.size == 0 or 2.0 * n_units * float(np.max(w)) >= FLOAT32_EXACT:
        return None
    return w.astype(np.float32)


def _running_sums(x: np.ndarray) -> np.ndarray:
    """Cumulative sums down the rows of a C-ordered ``(R, m)`` table, in place: row by row
    when rows are long (numpy's accumulate along the first axis walks the columns, three
    times slower here), with accumulate when they are short."""
    if x.shape[1] < 64:
        return np.add.accumulate(x, axis=0, out=x)
    for i in range(1, x.shape[0]):
        np.add(x[i - 1], x[i], out=x[i])
    return x


def grouped_auroc(
    layout: GroupedRankLayout, weights_by_cluster: np.ndarray, *, batch_size: int | None = None
) -> np.ndarray:
    """AUROC of each group for each column of ``weights_by_cluster``: ``(G, m)``.

    Each group's value is :func:`auroc_from_levels` of its own layout with the same
    weights, bit for bit: every sum is an exact integer (or half) whatever order it is
    summed in, and the last step is the same division. Float32 weights (from
    :func:`float32_weights`, which checks that every sum stays exact) run the sparse
    product and the running sums in float32; the products and their sums are float64.
    All weightings go in one batch unless ``batch_size`` or the size of the tables
    (``GROUPED_BATCH_CELLS``) says fewer. A group without a positive, or without a
    negative in a weighting, is NaN there.
    """
    g_count = layout.n_groups
    total = layout.total_levels
    m = weights_by_cluster.shape[1]
    out = np.full((g_count, m), np.nan)
    has = np.flatnonzero(layout.n_levels > 0)
    if has.size == 0:
        return out
    starts = layout.starts[has]
    order = np.argsort(starts)
    seg = starts[order]  # each group's first row, in row order
    groups = has[order]
    before = np.maximum(seg - 1, 0)  # the running total just above each group's rows
    weights = weights_by_cluster
    table = layout.table
    if weights.dtype == np.float32:
        table = table.astype(np.float32)
    else:
        weights = weights.astype(np.float64, copy=False)
    # Sums each group's rows (row order) by one sparse product.
    owner = np.repeat(np.arange(has.size), layout.n_levels[groups])
    by_group = sparse.csr_array(
        (np.ones(total), (owner, np.arange(total))), shape=(has.size, total)
    )
    limit = GROUPED_BATCH_CELLS // max(2 * total, 1)
    step = max(1, min(m if batch_size is None else int(batch_size), limit))
    for lo in range(0, m, step):
        hi = min(lo + step, m)
        w = weights if (lo, hi) == (0, m) else np.ascontiguousarray(weights[:, lo:hi])
        sums = table @ w
        pos = sums[:total]
        # Running sums down the rows, in the product's type (exact: see above).
        below = _running_sums(sums[total : 2 * total])
        p_total = by_group @ pos.astype(np.float64)
        # A group's cumulative sum is the running one less the one above its rows.
        above = np.where((seg > 0)[:, None], below[before], 0).astype(np.float64)
        num = by_group @ np.multiply(pos, below, dtype=np.float64) - above * p_total
        n_total = sums[2 * total :][groups].astype(np.float64)
        pn = p_total * n_total
        out[groups, lo:hi] = safe_divide(pn - num, pn)
    return out


__all__ = [
    "GroupedRankLayout",
    "LevelCounts",
    "RankLayout",
    "auroc_from_levels",
    "average_precision_from_levels",
    "calibration_bin",
    "calibration_table",
    "cluster_sums",
    "confusion_scores",
    "expected_calibration_error",
    "float32_weights",
    "grouped_auroc",
    "grouped_rank_layout",
    "level_counts",
    "linear_kappa",
    "rank_layout",
    "ranking_scores",
    "replicate_sums",
    "safe_divide",
    "score_ranks",
]
