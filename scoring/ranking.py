"""Ranking entries from their stored per-replicate primary-metric values.

Every entry of a task is scored on the same bootstrap replicates (the replicate weights are
fixed per benchmark and task), so two entries can be compared pairwise without rescoring:
the difference of their metric within each replicate is a paired bootstrap sample of the
difference (Koehn 2004, "Statistical significance tests for machine translation
evaluation"). From those samples come a CI and a p-value against the leader and the best
reference baseline, a 95% interval of each entry's rank, and tiers of entries that are not
significantly different from the tier's head.

>>> a = RankInput(entry_id="a", value=0.80, replicates=[0.80, 0.82, 0.78, 0.81])
>>> b = RankInput(entry_id="b", value=0.70, replicates=[0.70, 0.71, 0.69, 0.72])
>>> [(r.entry_id, r.rank, r.tier) for r in rank_entries([b, a], greater_is_better=True)]
[('a', 1, 1), ('b', 2, 2)]
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import rankdata

from benchmark_data.tasks import METRICS, Task, get_task

ERR_REPLICATE_LENGTHS = (
    "entries were scored on different numbers of replicates ({lengths}); "
    "rescore them with the same scorer settings before ranking"
)


@dataclass(frozen=True)
class RankInput:
    """One entry to rank: its point value and its per-replicate values of the primary metric."""

    entry_id: Hashable
    value: float
    replicates: Sequence[float] | np.ndarray
    is_baseline: bool = False


class RankedEntry(NamedTuple):
    """Where an entry stands: its order, its tier's rank and its paired comparisons."""

    entry_id: Hashable
    position: int  # 1-based order by point value
    rank: int  # shared by a tier: the position of the tier's head
    tier: int  # 1-based
    rank_interval: tuple[int, int]  # 95% interval of the rank across replicates
    vs_leader: dict[str, Any] | None = None
    vs_baseline: dict[str, Any] | None = None
    is_baseline: bool = False


def paired_difference(a: np.ndarray, b: np.ndarray, *, level: float = 0.95) -> dict[str, Any]:
    """CI and two-sided p-value of the paired bootstrap difference ``a - b``.

    Replicates where either side is NaN (degenerate) are left out and counted.
    p = 2 min(P(d <= 0), P(d >= 0)), at most 1.

    >>> paired_difference(np.array([0.3, 0.4, 0.5]), np.array([0.1, 0.1, 0.1]))["p"]
    0.0
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    ok = np.isfinite(d)
    d = d[ok]
    if d.size == 0:
        return {"diff_ci": [None, None], "p": None, "replicates_used": 0}
    alpha = (1 - level) / 2
    lo, hi = np.quantile(d, [alpha, 1 - alpha])
    p = min(1.0, 2 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    return {"diff_ci": [float(lo), float(hi)], "p": p, "replicates_used": int(d.size)}


def _holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None)."""
    # Smallest first; equal p-values in their order (the index breaks the tie).
    ordered = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(ordered)
    out: list[float | None] = list(pvalues)
    running = 0.0
    for k, (p, i) in enumerate(ordered):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


def primary_direction(task: str | Task | None, greater_is_better: bool | None) -> bool:
    """Whether a larger value of the ranked metric is better: given, or the task's primary
    metric's direction."""
    if greater_is_better is not None:
        return greater_is_better
    if task is None:
        raise TypeError("rank_entries needs task= or greater_is_better=")
    t = get_task(task) if isinstance(task, str) else task
    return METRICS[t.primary_metric].greater_is_better


def order_entries(entries: Sequence[RankInput], *, greater_is_better: bool) -> list[RankInput]:
    """The entries best first by point value (a NaN value last, ties by id); refuses entries
    scored on different numbers of replicates."""
    lengths = sorted({len(e.replicates) for e in entries})
    if len(lengths) > 1:
        raise ValueError(ERR_REPLICATE_LENGTHS.format(lengths=", ".join(map(str, lengths))))
    sign = 1.0 if greater_is_better else -1.0

    def key(e: RankInput) -> tuple[float, str]:
        v = e.value if np.isfinite(e.value) else -np.inf * sign
        return (-sign * v, str(e.entry_id))

    return sorted(entries, key=key)


def rank_intervals(
    replicates: Sequence[np.ndarray], *, greater_is_better: bool, level: float = 0.95
) -> list[tuple[int, int]]:
    """The ``level`` interval of each entry's rank across the replicates (1 = best; tied
    entries share the better rank). Replicates where any entry is NaN are left out; with
    none left, each entry's interval is its own position."""
    sign = 1.0 if greater_is_better else -1.0
    mat = np.vstack(replicates) * sign  # (entries, B), larger = better
    usable = np.all(np.isfinite(mat), axis=0)
    if not usable.any():
        return [(i, i) for i in range(1, len(replicates) + 1)]
    alpha = (1 - level) / 2
    # rank = 1 + number of entries strictly better in that replicate (ties share).
    ranks = rankdata(-mat[:, usable], axis=0, method="min")
    lo = np.floor(np.quantile(ranks, alpha, axis=1, method="lower")).astype(int)
    hi = np.ceil(np.quantile(ranks, 1 - alpha, axis=1, method="higher")).astype(int)
    return [(int(a), int(b)) for a, b in zip(lo, hi, strict=True)]


def tiers(replicates: Sequence[np.ndarray], *, level: float = 0.95) -> list[tuple[int, int]]:
    """``(rank, tier)`` of each entry, in order (best first): an entry joins the current
    tier when the CI of its paired difference to the tier's head covers 0, otherwise it
    heads a new tier; ``rank`` is the head's position."""
    out: list[tuple[int, int]] = []
    head, tier = 0, 1
    for i, reps in enumerate(replicates):
        if i > 0:
            lo, hi = paired_difference(reps, replicates[head], level=level)["diff_ci"]
            if lo is None or not lo <= 0 <= hi:
                head, tier = i, tier + 1
        out.append((head + 1, tier))
    return out


def comparisons(
    ordered: Sequence[RankInput],
    replicates: Sequence[np.ndarray],
    ref: int,
    *,
    level: float = 0.95,
) -> list[dict[str, Any] | None]:
    """Each entry's paired comparison with the entry at index ``ref`` (None for that one)."""
    return [
        None
        if i == ref
        else {
            "entry_id": ordered[ref].entry_id,
            "diff": float(e.value - ordered[ref].value),
            **paired_difference(replicates[i], replicates[ref], level=level),
        }
        for i, e in enumerate(ordered)
    ]


def with_holm(compared: list[dict[str, Any] | None]) -> list[dict[str, Any] | None]:
    """The comparisons with their Holm-adjusted p-value (``p_holm``) over the family."""
    adjusted = _holm([c["p"] if c else None for c in compared])
    return [
        None if c is None else {**c, "p_holm": p} for c, p in zip(compared, adjusted, strict=True)
    ]


def rank_entries(
    entries: Sequence[RankInput],
    *,
    task: str | Task | None = None,
    greater_is_better: bool | None = None,
    level: float = 0.95,
) -> list[RankedEntry]:
    """Rank entries by their primary metric, with paired-bootstrap tiers and rank intervals.

    Parameters
    ----------
    entries : sequence of RankInput
        All entries share the same replicates (same benchmark, task and scorer settings).
    task : str or Task, optional
        Gives the direction of the primary metric; or pass ``greater_is_better``.
    level : float
        Confidence level of the CIs and rank intervals.

    Returns
    -------
    list of RankedEntry, best first. An entry joins the current tier when the CI of its
    difference to the tier's head covers 0; otherwise it heads a new tier. ``rank`` is the
    head's position, so tied entries share a rank.
    """
    greater = primary_direction(task, greater_is_better)
    if not entries:
        return []
    ordered = order_entries(entries, greater_is_better=greater)
    reps = [np.asarray(e.replicates, dtype=float) for e in ordered]
    intervals = rank_intervals(reps, greater_is_better=greater, level=level)
    places = tiers(reps, level=level)
    vs_leader = with_holm(comparisons(ordered, reps, 0, level=level))
    baseline = next((i for i, e in enumerate(ordered) if e.is_baseline), None)
    vs_baseline = (
        [None] * len(ordered)
        if baseline is None
        else comparisons(ordered, reps, baseline, level=level)
    )
    rows = zip(ordered, places, intervals, vs_leader, vs_baseline, strict=True)
    return [
        RankedEntry(e.entry_id, pos, rank, tier, interval, leader, base, e.is_baseline)
        for pos, (e, (rank, tier), interval, leader, base) in enumerate(rows, start=1)
    ]
