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
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class RankedEntry:
    entry_id: Hashable
    position: int  # 1-based order by point value
    rank: int  # shared by a tier: the position of the tier's head
    tier: int  # 1-based
    rank_interval: tuple[int, int]  # 95% interval of the rank across replicates
    vs_leader: dict[str, Any] | None = None
    vs_baseline: dict[str, Any] | None = None
    is_baseline: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


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
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    ordered = sorted(idx, key=lambda i: pvalues[i])  # type: ignore[arg-type, return-value]
    m = len(ordered)
    out: list[float | None] = list(pvalues)
    running = 0.0
    for k, i in enumerate(ordered):
        p = pvalues[i]
        assert p is not None
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


def _compare(
    entry: RankInput, ref: RankInput, reps: dict[Hashable, np.ndarray], *, level: float
) -> dict[str, Any]:
    res = paired_difference(reps[entry.entry_id], reps[ref.entry_id], level=level)
    return {"entry_id": ref.entry_id, "diff": float(entry.value - ref.value), **res}


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
    if greater_is_better is None:
        if task is None:
            raise TypeError("rank_entries needs task= or greater_is_better=")
        t = get_task(task) if isinstance(task, str) else task
        greater_is_better = METRICS[t.primary_metric].greater_is_better
    if not entries:
        return []
    lengths = sorted({len(e.replicates) for e in entries})
    if len(lengths) > 1:
        raise ValueError(ERR_REPLICATE_LENGTHS.format(lengths=", ".join(map(str, lengths))))
    sign = 1.0 if greater_is_better else -1.0

    def key(e: RankInput) -> tuple[float, str]:
        v = e.value if np.isfinite(e.value) else -np.inf * sign
        return (-sign * v, str(e.entry_id))

    ordered = sorted(entries, key=key)
    reps = {e.entry_id: np.asarray(e.replicates, dtype=float) for e in ordered}

    # Rank within each replicate (1 = best); replicates where any entry is NaN are left out.
    mat = np.vstack([reps[e.entry_id] for e in ordered]) * sign  # (entries, B), larger = better
    usable = np.all(np.isfinite(mat), axis=0)
    alpha = (1 - level) / 2
    if usable.any():
        m = mat[:, usable]
        # rank = 1 + number of entries strictly better in that replicate (ties share).
        ranks = rankdata(-m, axis=0, method="min")
        lo = np.floor(np.quantile(ranks, alpha, axis=1, method="lower")).astype(int)
        hi = np.ceil(np.quantile(ranks, 1 - alpha, axis=1, method="higher")).astype(int)
    else:
        lo = hi = np.arange(1, len(ordered) + 1)

    leader = ordered[0]
    baselines = [e for e in ordered if e.is_baseline]
    best_baseline = baselines[0] if baselines else None

    out: list[RankedEntry] = []
    head = leader
    tier = 1
    for pos, e in enumerate(ordered, start=1):
        if pos > 1:
            vs_head = paired_difference(reps[e.entry_id], reps[head.entry_id], level=level)
            ci = vs_head["diff_ci"]
            tied = ci[0] is not None and ci[0] <= 0 <= ci[1]
            if not tied:
                head, tier = e, tier + 1
        head_pos = next(i for i, x in enumerate(ordered, start=1) if x is head)
        out.append(
            RankedEntry(
                entry_id=e.entry_id,
                position=pos,
                rank=head_pos,
                tier=tier,
                rank_interval=(int(lo[pos - 1]), int(hi[pos - 1])),
                vs_leader=None if e is leader else _compare(e, leader, reps, level=level),
                vs_baseline=(
                    None
                    if best_baseline is None or e is best_baseline
                    else _compare(e, best_baseline, reps, level=level)
                ),
                is_baseline=e.is_baseline,
            )
        )
    adjusted = _holm([r.vs_leader["p"] if r.vs_leader else None for r in out])
    for r, p in zip(out, adjusted, strict=True):
        if r.vs_leader is not None:
            r.vs_leader["p_holm"] = p
    return out
