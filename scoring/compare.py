"""Paired comparisons of a few entries of one task against a reference entry.

Every entry of a task is scored on the same bootstrap replicates (the replicate weights are
fixed per benchmark and task), and a report keeps the per-replicate values of the primary
metric per scenario and per shown subgroup. The difference of two entries within each
replicate is then a paired bootstrap sample of their difference, on the same units: its CI
and p-value come from :func:`scoring.ranking.paired_difference`, the function the
leaderboard's tiers and p-values use, so the numbers are the ranking's by construction.
Nothing is rescored.

A *series* is one figure of an entry with its replicates: the primary metric in one
scenario, or in one subgroup. Series are named by the caller (any hashable key); a series
is compared only when both entries hold it.

>>> a = CompareInput("a", values={"paired": 0.80}, replicates={"paired": [0.80, 0.82, 0.78]})
>>> b = CompareInput("b", values={"paired": 0.70}, replicates={"paired": [0.70, 0.71, 0.69]})
>>> out = compare_to_reference([a, b], reference="a")
>>> round(out["b"]["paired"]["diff"], 2), out["b"]["paired"]["p"]
(-0.1, 0.0)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scoring.ranking import paired_difference

ERR_REFERENCE = "the reference {reference!r} is not one of the entries compared"
ERR_LENGTHS = (
    "series {series!r} has {a} replicates for {entry!r} and {b} for the reference: entries "
    "compared pairwise must be scored on the same replicates"
)


@dataclass(frozen=True)
class CompareInput:
    """One entry: its point value and per-replicate values (None or NaN: a degenerate
    replicate) of each series it holds."""

    entry_id: Hashable
    values: Mapping[Hashable, float | None] = field(default_factory=dict)
    replicates: Mapping[Hashable, Sequence[float | None] | np.ndarray] = field(default_factory=dict)


def as_replicates(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """Stored per-replicate values as floats, None (a degenerate replicate) as NaN."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def paired_comparison(
    value: float | None,
    replicates: Sequence[float | None] | np.ndarray,
    ref_value: float | None,
    ref_replicates: Sequence[float | None] | np.ndarray,
    *,
    level: float = 0.95,
) -> dict[str, Any]:
    """The difference ``value - ref_value`` with the paired bootstrap CI and p-value of
    :func:`scoring.ranking.paired_difference`, and whether it is significant at
    ``1 - level`` (two-sided).

    >>> r = paired_comparison(0.7, [0.70, 0.71, 0.69], 0.8, [0.80, 0.82, 0.78])
    >>> r["significant"], r["replicates_used"]
    (True, 3)
    """
    a, b = as_replicates(replicates), as_replicates(ref_replicates)
    if a.shape != b.shape:
        raise ValueError(f"{a.size} replicates against {b.size}")
    res = paired_difference(a, b, level=level)
    diff = None
    if value is not None and ref_value is not None:
        d = float(value) - float(ref_value)
        diff = d if np.isfinite(d) else None
    p = res["p"]
    return {**res, "diff": diff, "significant": p is not None and p < 1 - level}


def compare_to_reference(
    entries: Sequence[CompareInput], *, reference: Hashable, level: float = 0.95
) -> dict[Hashable, dict[Hashable, dict[str, Any]]]:
    """Paired differences of every entry but the reference to the reference, per series.

    Parameters
    ----------
    entries : sequence of CompareInput
        Entries of one task, scored on the same replicates.
    reference : hashable
        The ``entry_id`` of the entry the others are compared with.
    level : float
        Confidence level of the CIs; ``significant`` means p < 1 - level.

    Returns
    -------
    dict
        ``{entry_id: {series: {"diff", "diff_ci", "p", "replicates_used", "significant"}}}``
        for each entry other than the reference and each series both hold with replicates.
        ``diff`` is the difference of the point values (entry minus reference).

    Raises
    ------
    ValueError
        The reference is not among the entries, or a series has a different number of
        replicates in an entry than in the reference.
    """
    by_id = {e.entry_id: e for e in entries}
    if reference not in by_id:
        raise ValueError(ERR_REFERENCE.format(reference=reference))
    ref = by_id[reference]
    out: dict[Hashable, dict[Hashable, dict[str, Any]]] = {}
    for e in entries:
        if e.entry_id == reference:
            continue
        series: dict[Hashable, dict[str, Any]] = {}
        for key, reps in e.replicates.items():
            ref_reps = ref.replicates.get(key)
            if ref_reps is None or reps is None:
                continue
            if len(reps) != len(ref_reps):
                raise ValueError(
                    ERR_LENGTHS.format(series=key, a=len(reps), b=len(ref_reps), entry=e.entry_id)
                )
            series[key] = paired_comparison(
                e.values.get(key), reps, ref.values.get(key), ref_reps, level=level
            )
        out[e.entry_id] = series
    return out


__all__ = ["CompareInput", "as_replicates", "compare_to_reference", "paired_comparison"]
