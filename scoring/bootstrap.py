"""Patient-level bootstrap replicates shared by every submission of a task.

A :class:`ReplicatePlan` fixes, once per benchmark and task, how many times each patient
(cluster) is drawn in each replicate. All rows of a patient carry the patient's count as their
weight, so hourly rows are resampled together (row-level resampling gives intervals that are
too narrow when rows are correlated). Because every submission, scenario and fairness group
is scored with the same counts, differences between them are paired bootstrap samples.

Each replicate's metric is the metric computed with the replicate's row weights as
``sample_weight``; :mod:`scoring.metrics` computes all replicates at once from these counts.

>>> plan = make_plan(["p1", "p1", "p2", "p3"], n_replicates=4, seed=7)
>>> plan.counts.shape, plan.unit_cluster.tolist()
((4, 3), [0, 0, 1, 2])
>>> plan.counts.sum(axis=1).tolist()  # each replicate draws as many patients as there are
[3.0, 3.0, 3.0, 3.0]
>>> plan.row_weights(stop=1).shape
(1, 4)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

ERR_NO_CLUSTERS = "a replicate plan needs at least one unit"
ERR_CLUSTERS_SHAPE = "clusters must be one-dimensional (one id per unit), got shape {shape}"
ERR_REPLICATES = "n_replicates must be a positive integer, got {n}"
ERR_SEED = "seed must be a non-negative integer, got {seed!r}"
ERR_LEVEL = "level must be strictly between 0 and 1, got {level}"
ERR_ROWS = "rows must be a boolean mask of length {n} or integer indices, got {detail}"

# Seeds are kept below 2**53 so that a report's seed survives a round trip through JSON in
# any client (JavaScript numbers are exact integers only up to 2**53).
SEED_BITS = 53


# eq=False: plans hold arrays, so field-wise equality would be ambiguous; identity is used.
@dataclass(frozen=True, eq=False)
class ReplicatePlan:
    """Resample counts of each cluster (patient) in each bootstrap replicate.

    Attributes
    ----------
    n_replicates : int
        Number of replicates ``B``.
    seed : int
        Seed the counts were drawn from.
    counts : ndarray of shape (B, n_clusters), float64
        How many times each cluster is drawn in each replicate (multinomial over clusters:
        each row sums to ``n_clusters``).
    unit_cluster : ndarray of shape (n_units,), int64
        Cluster index (``0 .. n_clusters - 1``) of each unit.
    """

    n_replicates: int
    seed: int
    counts: np.ndarray
    unit_cluster: np.ndarray

    @property
    def n_clusters(self) -> int:
        return int(self.counts.shape[1])

    @property
    def n_units(self) -> int:
        return int(self.unit_cluster.shape[0])

    @cached_property
    def counts_by_cluster(self) -> np.ndarray:
        """``counts`` transposed to (n_clusters, B), C-contiguous (the layout the sparse
        kernels multiply with); a view for plans from :func:`make_plan`, else a copy made
        once per plan."""
        return np.ascontiguousarray(self.counts.T)

    def row_weights(
        self, rows: np.ndarray | None = None, *, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Weights of replicates ``start .. stop - 1`` for the selected units.

        Parameters
        ----------
        rows : ndarray of bool or int, optional
            Boolean mask over the plan's units or unit indices; all units when omitted.
        start, stop : int
            Replicate range (``stop`` defaults to ``n_replicates``).

        Returns
        -------
        ndarray of shape (stop - start, n_selected), float64
            Row ``b`` holds the ``sample_weight`` of replicate ``start + b``.

        Examples
        --------
        >>> plan = make_plan([10, 10, 20], n_replicates=3, seed=0)
        >>> w = plan.row_weights(np.array([True, True, False]), start=1)
        >>> w.shape, bool((w[:, 0] == w[:, 1]).all())
        ((2, 2), True)
        """
        idx = select_rows(rows, self.n_units)
        return np.asarray(self.counts[start:stop][:, self.unit_cluster[idx]], dtype=np.float64)


def select_rows(rows: np.ndarray | None, n: int) -> np.ndarray:
    """Integer indices of the units selected by a boolean mask or an index array."""
    if rows is None:
        return np.arange(n)
    r = np.asarray(rows)
    if r.dtype == bool:
        if r.shape != (n,):
            raise ValueError(ERR_ROWS.format(n=n, detail=f"a mask of shape {r.shape}"))
        return np.flatnonzero(r)
    if r.ndim != 1 or not np.issubdtype(r.dtype, np.integer):
        raise ValueError(ERR_ROWS.format(n=n, detail=f"dtype {r.dtype}, shape {r.shape}"))
    return r


def make_plan(clusters: np.ndarray, *, n_replicates: int = 1000, seed: int) -> ReplicatePlan:
    """Draw the bootstrap counts of each cluster for ``n_replicates`` replicates.

    Cluster ids are factorized in sorted order, so the plan depends on the set of ids and not
    on the order of the rows. Replicate ``b`` draws ``n_clusters`` clusters with replacement
    from its own stream (``SeedSequence(seed).spawn``), so the first replicates of a larger
    plan are those of a smaller one with the same seed.

    Parameters
    ----------
    clusters : array-like of shape (n_units,)
        The resampling unit of each row, e.g. ``subject_id``: rows of a cluster are drawn
        together.
    n_replicates : int, default=1000
        Number of bootstrap replicates.
    seed : int
        Non-negative seed (see :func:`replicate_seed`).

    Returns
    -------
    ReplicatePlan

    Examples
    --------
    >>> a = make_plan([3, 1, 2, 1], n_replicates=5, seed=1)
    >>> b = make_plan([1, 1, 2, 3], n_replicates=5, seed=1)
    >>> bool((a.counts == b.counts).all())
    True
    >>> make_plan([3, 1, 2, 1], n_replicates=2, seed=1).counts.tolist() == a.counts[:2].tolist()
    True
    """
    ids = np.asarray(clusters)
    if ids.ndim != 1:
        raise ValueError(ERR_CLUSTERS_SHAPE.format(shape=ids.shape))
    if ids.size == 0:
        raise ValueError(ERR_NO_CLUSTERS)
    if isinstance(n_replicates, bool) or int(n_replicates) != n_replicates or n_replicates < 1:
        raise ValueError(ERR_REPLICATES.format(n=n_replicates))
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(ERR_SEED.format(seed=seed))
    _, unit_cluster = np.unique(ids, return_inverse=True)
    unit_cluster = unit_cluster.astype(np.int64).reshape(-1)
    n_clusters = int(unit_cluster.max()) + 1
    # Stored cluster-major: the kernels multiply with (n_clusters, B) and select clusters
    # as rows; ``counts`` is the transposed view, so the table exists once in memory.
    by_cluster = np.empty((n_clusters, int(n_replicates)), dtype=np.float64)
    for b, child in enumerate(np.random.SeedSequence(int(seed)).spawn(int(n_replicates))):
        draws = np.random.default_rng(child).integers(0, n_clusters, size=n_clusters)
        by_cluster[:, b] = np.bincount(draws, minlength=n_clusters)
    return ReplicatePlan(
        n_replicates=int(n_replicates),
        seed=int(seed),
        counts=by_cluster.T,
        unit_cluster=unit_cluster,
    )


def replicate_seed(*, benchmark_hash: str, task: str, seed: int | None = None) -> int:
    """The replicate seed of a benchmark and task (optionally mixed with an explicit seed).

    The seed is derived from SHA-256 of the benchmark's manifest hash and the task slug, so
    every submission to a task of a benchmark version is scored on the same replicates. An
    explicit ``seed`` (e.g. from the command line) is mixed in rather than used as is, so it
    still yields different replicates for different tasks.

    Examples
    --------
    >>> s = replicate_seed(benchmark_hash="abc", task="decompensation")
    >>> s == replicate_seed(benchmark_hash="abc", task="decompensation")
    True
    >>> s != replicate_seed(benchmark_hash="abc", task="phenotyping")
    True
    >>> 0 <= s < 2**53
    True
    """
    if seed is not None and (isinstance(seed, bool) or int(seed) != seed or seed < 0):
        raise ValueError(ERR_SEED.format(seed=seed))
    text = f"medmod-replicates\x00{benchmark_hash}\x00{task}\x00{'' if seed is None else int(seed)}"
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def percentile_ci(values: np.ndarray, *, level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of replicate values, ignoring NaN (degenerate) replicates.

    Parameters
    ----------
    values : array-like of shape (B,)
        Replicate values; NaN marks a replicate where the metric is undefined.
    level : float, default=0.95
        Coverage of the interval.

    Returns
    -------
    (low, high) : tuple of float, or (None, None) when every replicate is NaN

    Examples
    --------
    >>> low, high = percentile_ci(np.arange(201.0))
    >>> round(low, 6), round(high, 6)
    (5.0, 195.0)
    >>> percentile_ci(np.array([np.nan, np.nan]))
    (None, None)
    """
    if not 0.0 < level < 1.0:
        raise ValueError(ERR_LEVEL.format(level=level))
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return None, None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(v, [alpha, 1.0 - alpha])
    return float(low), float(high)


__all__ = [
    "ReplicatePlan",
    "make_plan",
    "percentile_ci",
    "replicate_seed",
    "select_rows",
]
