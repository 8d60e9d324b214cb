"""Significance tests of the difference between two entries scored on the same units.

Two tests beside the paired bootstrap of :mod:`scoring.ranking` (which gives CIs for any
metric and the board's tiers):

* :func:`paired_permutation_test`, a test of "no difference" under exchangeability: if the
  two entries were equally good, each patient's pair of predictions could have come from
  either entry. Each permutation swaps the two entries' predictions for a random half of
  the patients (all units of a patient together, as the bootstrap resamples patients) and
  recomputes ``metric(A) - metric(B)``. Any metric; exact when all ``2^patients`` swaps are
  enumerated, otherwise Monte-Carlo with the +1 correction (Phipson & Smyth 2010, "Permutation
  p-values should never be zero").
* :func:`delong_test`, DeLong, DeLong & Clarke-Pearson (1988)'s asymptotic test of two
  correlated AUROCs on the same units, computed with the fast midrank algorithm of Sun & Xu
  (2014, "Fast implementation of DeLong's algorithm for comparing the areas under correlated
  receiver operating characteristic curves", IEEE Signal Processing Letters 21(11)). AUROC
  only, and units must be independent (one unit per patient).

Every swap pattern is a row of a ``(n_permutations, n_patients)`` boolean matrix; the metrics
of all permutations are computed at once, in batches, without a Python loop over
permutations:

* additive metrics (accuracy, Brier, linear kappa) from per-patient sums of sufficient
  statistics: the permuted sums are ``sums_A + swaps @ (sums_B - sums_A)``;
* ranking metrics (AUROC, average precision, and their macro averages over labels) from the
  ``2n`` values of both entries placed on the levels the positives' values take: a
  permutation picks one of each unit's two values, the positives and negatives it picks
  per level are A's plus the swap pattern times a sparse (patients x levels) matrix, and
  from those counts come the Mann-Whitney statistic and average precision with
  scikit-learn's tie handling.
  Entry B's permuted scores pick exactly the values A's leave, so one pass gives both.

>>> y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
>>> a = np.array([0.1, 0.3, 0.8, 0.9, 0.2, 0.7, 0.4, 0.6])
>>> b = np.array([0.5, 0.3, 0.4, 0.9, 0.6, 0.7, 0.4, 0.2])
>>> r = paired_permutation_test(y, a, b, metric="auroc", n_permutations=1000, seed=0)
>>> round(r.diff, 4), r.exact, r.n_permutations, r.p
(0.4062, True, 256, 0.125)
>>> d = delong_test(y, a, b)
>>> round(d.auroc_a, 4), round(d.auroc_b, 4), round(d.se, 4), round(d.p, 3)
(1.0, 0.5938, 0.2539, 0.11)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.stats import norm

from scoring.bootstrap import SEED_BITS
from scoring.truth import Truth
from scoring.validation import Predictions

RANKING_METRICS = frozenset({"auroc", "auprc", "macro_auroc", "macro_auprc"})
ADDITIVE_METRICS = frozenset({"accuracy", "brier", "kappa"})
PERMUTATION_METRICS = RANKING_METRICS | ADDITIVE_METRICS

ERR_METRIC = "metric {metric!r} has no permutation test; available: {ok}"
ERR_SHAPES = "y, pred_a and pred_b must have the same shape; got {a}, {b} and {c}"
ERR_RANKING_SHAPE = "{metric} needs {what}; got shape {shape}"
ERR_CLUSTERS = "clusters must give one patient per unit ({n}), got {m}"
ERR_NAN = "{metric} needs finite predictions; {count} NaN or infinite value(s) given"
ERR_ONE_CLASS = "{what} needs both classes among the units: {pos} positive, {neg} negative"
ERR_PERMUTATIONS = "n_permutations must be a positive integer, got {n}"
ERR_SEED = "seed must be a non-negative integer, got {seed!r}"
ERR_LEVEL = "level must be strictly between 0 and 1, got {level}"
ERR_EXACT = (
    "an exact test enumerates 2^{p} swap patterns; at most 2^{max_p} are enumerated: use a "
    "Monte-Carlo test (exact=False)"
)
ERR_BUCKETS = "kappa needs integer buckets in 0 .. n_buckets - 1 in y and the predictions"
ERR_FORMS = "entries of forms {a!r} and {b!r} cannot be compared unit by unit"
DELONG_NOT_AUROC = "DeLong's test compares AUROCs; the primary metric here is {metric}"
DELONG_CLUSTERED = (
    "DeLong's test takes units as independent; here {units} units come from {patients} "
    "patients (a patient's rows are correlated): use the permutation test"
)

# Patients up to which an exact test may enumerate every swap pattern (2^20 rows).
MAX_EXACT_PATIENTS = 20
# Elements of the (permutations x values) work arrays held at once.
BATCH_ELEMENTS = 2_000_000
# |T_k| >= |T_obs| is decided up to floating-point noise of the sums.
TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class PermutationResult:
    """Outcome of a paired permutation test of ``metric(A) - metric(B)``.

    ``p`` is two-sided: the share of swap patterns with ``|T| >= |T_obs|``, counting the
    observed one (exact), or ``(1 + count) / (1 + n_permutations)`` (Monte-Carlo).
    """

    metric: str
    value_a: float
    value_b: float
    diff: float
    p: float
    n_permutations: int
    exact: bool
    n_patients: int
    n_units: int
    seed: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DelongResult:
    """DeLong's test of ``AUROC(A) - AUROC(B)`` on the same units."""

    auroc_a: float
    auroc_b: float
    diff: float
    variance: float
    se: float
    z: float
    p: float
    ci: tuple[float, float]
    level: float
    n_positive: int
    n_negative: int

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = list(self.ci)
        return out


def permutation_seed(*, benchmark_hash: str, task: str) -> int:
    """The swap-pattern seed of a benchmark and task: every comparison on a task draws the
    same permutations, so a result can be reproduced (and cached).

    >>> s = permutation_seed(benchmark_hash="abc", task="phenotyping")
    >>> s == permutation_seed(benchmark_hash="abc", task="phenotyping"), 0 <= s < 2**53
    (True, True)
    """
    text = f"medmod-permutations\x00{benchmark_hash}\x00{task}"
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


# --- swap patterns --------------------------------------------------------------------------


def _patients(clusters: np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    if clusters is None:
        return np.arange(n), n
    c = np.asarray(clusters)
    if c.ndim != 1 or c.shape[0] != n:
        raise ValueError(ERR_CLUSTERS.format(n=n, m=c.shape[0] if c.ndim else 0))
    _, inverse = np.unique(c, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse, int(inverse.max()) + 1 if n else 0


def _swap_patterns(
    n_patients: int, n_permutations: int, seed: int, exact: bool | None
) -> tuple[np.ndarray, bool]:
    """Rows of swap indicators (True: the patient's predictions are swapped). Exact: every
    pattern, the identity first; otherwise the identity then ``n_permutations`` random rows."""
    if exact is None:
        exact = n_patients <= MAX_EXACT_PATIENTS and 2**n_patients <= n_permutations
    if exact:
        if n_patients > MAX_EXACT_PATIENTS:
            raise ValueError(ERR_EXACT.format(p=n_patients, max_p=MAX_EXACT_PATIENTS))
        codes = np.arange(2**n_patients, dtype=np.int64)
        bits = (codes[:, None] >> np.arange(n_patients)) & 1
        return bits.astype(bool), True
    rng = np.random.default_rng(seed)
    random = rng.random((n_permutations, n_patients)) < 0.5
    return np.vstack([np.zeros((1, n_patients), dtype=bool), random]), False


# --- additive metrics -----------------------------------------------------------------------


def _additive(
    metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, n_buckets: int | None
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Per-unit sufficient statistics of each entry and the metric from their sums."""
    if metric == "accuracy":
        # NaN (a refused decision) never equals the truth: scored as a wrong answer.
        stats_a = np.column_stack([a == y, np.ones_like(a)]).astype(float)
        stats_b = np.column_stack([b == y, np.ones_like(b)]).astype(float)
        return stats_a, stats_b, lambda s: s[:, 0] / s[:, 1]
    if metric == "brier":
        for v in (a, b):
            if not np.isfinite(v).all():
                raise ValueError(ERR_NAN.format(metric=metric, count=int((~np.isfinite(v)).sum())))
        stats_a = np.column_stack([(a - y) ** 2, np.ones_like(a)])
        stats_b = np.column_stack([(b - y) ** 2, np.ones_like(b)])
        return stats_a, stats_b, lambda s: s[:, 0] / s[:, 1]
    # kappa: one-hot cells of the (true bucket, predicted bucket) confusion table.
    k = n_buckets if n_buckets is not None else int(max(y.max(), a.max(), b.max())) + 1
    for v in (y, a, b):
        if not (np.isfinite(v).all() and (v == np.round(v)).all() and v.min() >= 0 and v.max() < k):
            raise ValueError(ERR_BUCKETS)
    yi = y.astype(np.int64)
    eye = np.eye(k * k)
    stats_a = eye[yi * k + a.astype(np.int64)]
    stats_b = eye[yi * k + b.astype(np.int64)]

    def kappa(s: np.ndarray) -> np.ndarray:
        from scoring.kernels import linear_kappa

        return np.asarray(linear_kappa(s.reshape(-1, k, k)), dtype=float)

    return stats_a, stats_b, kappa


def _additive_statistics(
    metric: str,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    patient: np.ndarray,
    n_patients: int,
    swaps: np.ndarray,
    n_buckets: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    stats_a, stats_b, f = _additive(metric, y, a, b, n_buckets)
    d = stats_a.shape[1]
    sums_a = np.zeros((n_patients, d))
    sums_b = np.zeros((n_patients, d))
    np.add.at(sums_a, patient, stats_a)
    np.add.at(sums_b, patient, stats_b)
    total_a, total = sums_a.sum(axis=0), sums_a.sum(axis=0) + sums_b.sum(axis=0)
    perm_a = total_a + swaps.astype(float) @ (sums_b - sums_a)
    return f(perm_a), f(total - perm_a)


# --- ranking metrics ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """One binary problem with both entries' values sorted together, reduced to the ``R``
    distinct values held by some positive (ascending): per such level, the positives at it,
    the negatives tied with it, and the negatives below it but above the level before
    (negatives above every positive count only in the totals). A permutation's counts are
    A's plus the swap pattern times a sparse (patients x slots) matrix; entry B's permuted
    scores pick exactly the values A's leave, so B's counts are the totals minus A's."""

    pos_a: np.ndarray  # (R,) positives of A at each level
    neg_a: np.ndarray  # (2R,) negatives of A: [below level r, tied with level r]
    pos_total: np.ndarray  # A and B together
    neg_total: np.ndarray
    pos_swap: sparse.csr_matrix  # (patients, R): a patient's swap moves its positives
    neg_swap: sparse.csr_matrix  # (patients, 2R)
    n_pos: int
    n_neg: int


def _layout(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, patient: np.ndarray, n_patients: int
) -> _Layout:
    n = y.shape[0]
    positive = y.astype(bool)
    values = np.concatenate([a, b])
    both = np.concatenate([positive, positive])
    levels = np.unique(values[both])
    r = levels.shape[0]
    # Slot of every value: its level for a positive; for a negative, r + its level when tied
    # with one, else the first level above it (r: above every level, dropped below).
    at = np.searchsorted(levels, values, side="left")
    tied = (at < r) & (levels[np.minimum(at, r - 1)] == values)
    slot = np.where(both, at, np.where(tied, r + at, at))
    keep = both | (slot < r) | tied
    sa, sb = slot[:n], slot[n:]
    ka, kb = keep[:n], keep[n:]

    def counts(sel: np.ndarray, slots: np.ndarray, size: int) -> np.ndarray:
        return np.bincount(slots[sel], minlength=size)[:size].astype(float)

    def swap_matrix(units: np.ndarray, size: int) -> sparse.csr_matrix:
        # Swapping a unit's patient moves the unit from its slot in A to its slot in B.
        into, out_of = units & kb, units & ka
        rows = np.concatenate([patient[into], patient[out_of]])
        cols = np.concatenate([sb[into], sa[out_of]])
        data = np.concatenate([np.ones(into.sum()), -np.ones(out_of.sum())])
        return sparse.csr_matrix((data, (rows, cols)), shape=(n_patients, size))

    pos_a = counts(positive, sa, r)
    neg_a = counts(~positive & ka, sa, 2 * r)
    return _Layout(
        pos_a=pos_a,
        neg_a=neg_a,
        pos_total=pos_a + counts(positive, sb, r),
        neg_total=neg_a + counts(~positive & kb, sb, 2 * r),
        pos_swap=swap_matrix(positive, r),
        neg_swap=swap_matrix(~positive, 2 * r),
        n_pos=int(positive.sum()),
        n_neg=int((~positive).sum()),
    )


def _from_levels(pos: np.ndarray, neg: np.ndarray, n_pos: int, n_neg: int, kind: str) -> np.ndarray:
    """AUROC or average precision of each row from the positives per level and the
    negatives below and tied with each level (columns: levels in ascending order)."""
    r = pos.shape[1]
    step, tied = neg[:, :r], neg[:, r:]
    # Negatives strictly below level r: those below each level up to r, and those tied
    # with the levels before it.
    below = np.cumsum(step, axis=1) + np.cumsum(tied, axis=1) - tied
    if kind == "auroc":
        return (pos * (below + 0.5 * tied)).sum(axis=1) / (n_pos * n_neg)
    # Average precision (scikit-learn's step-wise sum over distinct thresholds, descending):
    # a level holding positives adds (its positives / n_pos) x precision at its value.
    tp = n_pos - (np.cumsum(pos, axis=1) - pos)  # positives at or above the level
    fp = n_neg - below
    precision = np.divide(tp, tp + fp, out=np.zeros(tp.shape), where=pos > 0)
    return (pos * precision).sum(axis=1) / n_pos


def _ranking_batch(lay: _Layout, swaps: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Metric of A's and B's permuted scores for a batch of swap patterns (rows)."""
    pos_a = lay.pos_a + np.asarray(swaps @ lay.pos_swap)
    neg_a = lay.neg_a + np.asarray(swaps @ lay.neg_swap)
    return (
        _from_levels(pos_a, neg_a, lay.n_pos, lay.n_neg, kind),
        _from_levels(lay.pos_total - pos_a, lay.neg_total - neg_a, lay.n_pos, lay.n_neg, kind),
    )


def _ranking_statistics(
    metric: str,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    patient: np.ndarray,
    swaps: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    macro = metric.startswith("macro_")
    kind = "auroc" if metric.endswith("auroc") else "auprc"
    if macro and y.ndim != 2:
        raise ValueError(ERR_RANKING_SHAPE.format(metric=metric, what="(n, labels)", shape=y.shape))
    if not macro and y.ndim != 1:
        raise ValueError(ERR_RANKING_SHAPE.format(metric=metric, what="(n,)", shape=y.shape))
    for v in (a, b):
        if not np.isfinite(v).all():
            raise ValueError(ERR_NAN.format(metric=metric, count=int((~np.isfinite(v)).sum())))
    y2, a2, b2 = (v.reshape(v.shape[0], -1) for v in (y, a, b))
    n_pos = y2.sum(axis=0)
    # Labels with a single class have no AUROC; the macro mean is over the others, as
    # scoring.metrics takes it (the labels, hence the defined set, never change).
    defined = np.flatnonzero((n_pos > 0) & (n_pos < y2.shape[0]))
    if defined.size == 0:
        pos = int(n_pos.sum())
        raise ValueError(ERR_ONE_CLASS.format(what=metric, pos=pos, neg=int(y2.size - pos)))
    n_patients = swaps.shape[1]
    layouts = [_layout(y2[:, j], a2[:, j], b2[:, j], patient, n_patients) for j in defined]
    k = swaps.shape[0]
    out_a = np.zeros(k)
    out_b = np.zeros(k)
    levels = max(lay.pos_a.shape[0] for lay in layouts)
    batch = max(1, BATCH_ELEMENTS // (3 * levels))
    for start in range(0, k, batch):
        rows = swaps[start : start + batch].astype(float)
        for lay in layouts:
            va, vb = _ranking_batch(lay, rows, kind)
            out_a[start : start + batch] += va
            out_b[start : start + batch] += vb
    return out_a / len(layouts), out_b / len(layouts)


# --- the tests ------------------------------------------------------------------------------


def paired_permutation_test(
    y: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    *,
    metric: str,
    clusters: np.ndarray | None = None,
    n_permutations: int = 1000,
    seed: int = 0,
    exact: bool | None = None,
    n_buckets: int | None = None,
) -> PermutationResult:
    """Paired permutation test of ``metric(A) - metric(B)`` on the same units.

    Parameters
    ----------
    y : ndarray
        Truth: ``(n,)`` 0/1 for ``auroc``, ``auprc``, ``brier`` and decision ``accuracy``;
        ``(n, L)`` 0/1 for ``macro_auroc`` and ``macro_auprc``; ``(n,)`` bucket indices for
        ``kappa`` and bucket ``accuracy``.
    pred_a, pred_b : ndarray
        The two entries' predictions, aligned with ``y`` and of its shape: probabilities,
        decisions (1, 0, NaN for a refusal, a wrong answer) or bucket indices.
    metric : str
        One of :data:`PERMUTATION_METRICS`.
    clusters : ndarray, optional
        Patient of each unit: all units of a patient are swapped together. Each unit is its
        own patient when omitted.
    n_permutations : int, default=1000
        Random swap patterns of a Monte-Carlo test.
    seed : int, default=0
        Seed of the swap patterns (``np.random.default_rng``).
    exact : bool, optional
        Enumerate all ``2^patients`` swap patterns. By default, exactly when there are no
        more patterns than ``n_permutations``.
    n_buckets : int, optional
        Buckets of ``kappa`` (by default, one more than the largest bucket seen).

    Returns
    -------
    PermutationResult

    Examples
    --------
    >>> y = np.array([1, 0, 1, 0, 1, 0])
    >>> a, b = np.array([0.9, 0.1, 0.8, 0.3, 0.7, 0.2]), np.array([0.4, 0.6, 0.5, 0.3, 0.7, 0.8])
    >>> r = paired_permutation_test(y, a, b, metric="auroc", clusters=[1, 1, 2, 2, 3, 3])
    >>> r.exact, r.n_permutations, round(r.diff, 4), r.p
    (True, 8, 0.5556, 0.25)
    """
    if metric not in PERMUTATION_METRICS:
        raise ValueError(
            ERR_METRIC.format(metric=metric, ok=", ".join(sorted(PERMUTATION_METRICS)))
        )
    if (
        isinstance(n_permutations, bool)
        or int(n_permutations) != n_permutations
        or n_permutations < 1
    ):
        raise ValueError(ERR_PERMUTATIONS.format(n=n_permutations))
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(ERR_SEED.format(seed=seed))
    y = np.asarray(y, dtype=float)
    a = np.asarray(pred_a, dtype=float)
    b = np.asarray(pred_b, dtype=float)
    if not y.shape == a.shape == b.shape:
        raise ValueError(ERR_SHAPES.format(a=y.shape, b=a.shape, c=b.shape))
    n = y.shape[0]
    patient, n_patients = _patients(clusters, n)
    swaps, is_exact = _swap_patterns(n_patients, int(n_permutations), int(seed), exact)
    if metric in RANKING_METRICS:
        va, vb = _ranking_statistics(metric, y, a, b, patient, swaps)
    else:
        va, vb = _additive_statistics(metric, y, a, b, patient, n_patients, swaps, n_buckets)
    t = va - vb
    observed = t[0]  # the identity pattern comes first
    extreme = np.abs(t) >= abs(observed) - TIE_TOLERANCE * max(1.0, abs(observed))
    # Exact: the share of all patterns (the identity among them). Monte-Carlo: the +1
    # correction counts the observed pattern once among the random ones.
    count = extreme.sum() if is_exact else 1 + extreme[1:].sum()
    p = float(count / t.size)
    return PermutationResult(
        metric=metric,
        value_a=float(va[0]),
        value_b=float(vb[0]),
        diff=float(observed),
        p=min(1.0, p),
        n_permutations=int(t.size if is_exact else t.size - 1),
        exact=is_exact,
        n_patients=n_patients,
        n_units=n,
        seed=None if is_exact else int(seed),
    )


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties sharing the mean of their positions (Sun & Xu's
    "midranks").

    >>> midranks(np.array([0.3, 0.1, 0.3, 0.5])).tolist()
    [2.5, 1.0, 2.5, 4.0]
    """
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    n = x.shape[0]
    # Positions i..j-1 (0-based) of a group of ties get the midrank (i + 1 + j) / 2.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], n]
    group_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(n)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def delong_test(
    y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, *, level: float = 0.95
) -> DelongResult:
    """DeLong's test of two correlated AUROCs on the same units (Sun & Xu's fast algorithm).

    With ``m`` positives ``X`` and ``n`` negatives ``Y``, and for each score: ``T_X`` the
    midranks of the positives among the positives, ``T_Y`` those of the negatives among the
    negatives and ``T_Z`` those of every unit among all, the structural components are
    ``V10_i = (T_Z_i - T_X_i) / n`` and ``V01_j = 1 - (T_Z_j - T_Y_j) / m``, the AUROC is the
    mean of ``V10``, and ``S = S10 / m + S01 / n`` with ``S10``, ``S01`` the 2x2 sample
    covariances of the components. ``Var(AUC_A - AUC_B) = S_aa + S_bb - 2 S_ab``.

    Parameters
    ----------
    y : ndarray of shape (n,)
        0/1 labels; both classes, at least two units of each.
    score_a, score_b : ndarray of shape (n,)
        The two entries' scores (any monotone scale).
    level : float, default=0.95
        Coverage of the normal CI of the difference.

    Returns
    -------
    DelongResult
        ``z = diff / se`` and two-sided ``p``; with zero variance, ``z`` is 0 (and ``p`` 1)
        for equal AUROCs, infinite (``p`` 0) otherwise.

    Examples
    --------
    >>> r = delong_test([1, 1, 0, 0, 1, 0], [0.9, 0.8, 0.3, 0.4, 0.35, 0.1],
    ...                 [0.6, 0.7, 0.65, 0.2, 0.5, 0.55])
    >>> round(r.auroc_a, 4), round(r.auroc_b, 4), round(r.se, 4)
    (0.8889, 0.6667, 0.3143)
    """
    if not 0.0 < level < 1.0:
        raise ValueError(ERR_LEVEL.format(level=level))
    y = np.asarray(y).astype(float).reshape(-1)
    scores = np.vstack([np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)])
    if scores.shape[1] != y.shape[0]:
        raise ValueError(ERR_SHAPES.format(a=y.shape, b=scores[0].shape, c=scores[1].shape))
    if not np.isfinite(scores).all():
        raise ValueError(
            ERR_NAN.format(metric="DeLong's test", count=int((~np.isfinite(scores)).sum()))
        )
    positive = y == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise ValueError(ERR_ONE_CLASS.format(what="DeLong's test (two of each)", pos=m, neg=n))
    x, yy = scores[:, positive], scores[:, ~positive]
    tx = np.vstack([midranks(r) for r in x])
    ty = np.vstack([midranks(r) for r in yy])
    tz = np.vstack([midranks(r) for r in np.hstack([x, yy])])
    auc = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    s = np.cov(v10) / m + np.cov(v01) / n
    diff = float(auc[0] - auc[1])
    var = max(0.0, float(s[0, 0] + s[1, 1] - 2.0 * s[0, 1]))
    se = math.sqrt(var)
    # Zero variance (e.g. both scores separate the classes perfectly): no spread to scale by.
    z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    p = float(2.0 * norm.sf(abs(z)))
    half = float(norm.ppf(0.5 + level / 2.0)) * se
    return DelongResult(
        auroc_a=float(auc[0]),
        auroc_b=float(auc[1]),
        diff=diff,
        variance=var,
        se=se,
        z=z,
        p=min(1.0, p),
        ci=(diff - half, diff + half),
        level=level,
        n_positive=m,
        n_negative=n,
    )


def _unit_values(truth: Truth, preds: Predictions, scenario: str) -> np.ndarray | None:
    if scenario in ("paired", "natural"):
        return preds.values.get("paired")
    return preds.values.get(scenario)


def _as_metric_inputs(
    truth: Truth, form: str, y: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Truth and predictions as the permutation test takes them: length of stay as the
    true and predicted bucket indices (``hours`` bucketed, ``buckets`` by argmax, as
    :mod:`scoring.metrics` scores them)."""
    buckets = truth.task.buckets
    if truth.task.kind != "los" or buckets is None:
        return y, values
    pred = buckets.bucket(values) if form == "hours" else np.argmax(values, axis=1)
    return buckets.bucket(y), np.asarray(pred)


def compare_predictions(
    truth: Truth,
    pred_a: Predictions,
    pred_b: Predictions,
    *,
    metric: str,
    scenarios: list[str],
    n_permutations: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """The permutation test of ``metric`` (and DeLong's test when it is a binary task's
    AUROC and each unit is its own patient) of entry A against entry B, per scenario.

    Parameters
    ----------
    truth : Truth
        The units, labels and patients (``truth.clusters``) of the task.
    pred_a, pred_b : Predictions
        The two entries' validated prediction files.
    metric : str
        The metric compared (the task's primary metric for the entries' form).
    scenarios : list of str
        Scenarios to test; one an entry's file does not hold is left out.

    Returns
    -------
    dict
        ``{scenario: {"permutation": {...} or None, "delong": {...} or None,
        "reasons": [...]}}``: the results' ``as_dict()``; ``reasons`` says why a test is
        None (one class among the units, DeLong on clustered units or another metric).
    """
    if pred_a.form != pred_b.form and truth.task.kind != "los":
        raise ValueError(ERR_FORMS.format(a=pred_a.form, b=pred_b.form))
    n_buckets = len(truth.task.buckets.mean_hours) if truth.task.buckets is not None else None
    out: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        va, vb = _unit_values(truth, pred_a, scenario), _unit_values(truth, pred_b, scenario)
        if va is None or vb is None or scenario not in truth.scenarios:
            continue
        rows = truth.scenario_units(scenario)
        y, a = _as_metric_inputs(truth, pred_a.form, truth.y[rows], va[rows])
        _, b = _as_metric_inputs(truth, pred_b.form, truth.y[rows], vb[rows])
        clusters = truth.clusters[rows]
        entry: dict[str, Any] = {"permutation": None, "delong": None, "reasons": []}
        try:
            entry["permutation"] = paired_permutation_test(
                y, a, b, metric=metric, clusters=clusters, n_permutations=n_permutations,
                seed=seed, n_buckets=n_buckets,
            ).as_dict()  # fmt: skip
        except ValueError as exc:
            entry["reasons"].append(f"permutation test: {exc}")
        if metric != "auroc" or truth.task.kind != "binary" or pred_a.form != "probability":
            entry["reasons"].append(DELONG_NOT_AUROC.format(metric=metric))
        elif (patients := np.unique(clusters).size) < rows.sum():
            entry["reasons"].append(
                DELONG_CLUSTERED.format(units=int(rows.sum()), patients=patients)
            )
        else:
            try:
                entry["delong"] = delong_test(y, a, b, level=level).as_dict()
            except ValueError as exc:
                entry["reasons"].append(f"DeLong's test: {exc}")
        out[scenario] = entry
    return out


__all__ = [
    "MAX_EXACT_PATIENTS",
    "PERMUTATION_METRICS",
    "DelongResult",
    "PermutationResult",
    "compare_predictions",
    "delong_test",
    "midranks",
    "paired_permutation_test",
    "permutation_seed",
]
