"""Formatting for the pages: numbers, CIs, metric names, dictionary look-ups."""

from __future__ import annotations

import math
from typing import Any

from django import template

from benchmark_data.tasks import METRICS

register = template.Library()


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _short(value: float, digits: int) -> str:
    """At most ``digits`` decimals, and no more than the value has: published figures are
    rounded to the precision their CI supports (docs/scoring.md, "Disclosure budget"), and a
    padded 0.840 would claim a digit the platform did not publish."""
    text = f"{value:.{int(digits)}f}"
    if "." in text:
        text = text.rstrip("0")
        if text.endswith("."):
            text += "0"
    return text


@register.filter
def num(value: Any, digits: int = 3) -> str:
    """A number with at most ``digits`` decimals, or an en dash when there is none."""
    if isinstance(value, dict):
        value = value.get("value")
    if not _finite(value):
        return "–"
    return _short(value, digits)


@register.filter
def ci(value: Any, digits: int = 3) -> str:
    """A 95% CI ``[lo, hi]`` (or a dict holding ``ci``) as text."""
    if isinstance(value, dict):
        value = value.get("ci")
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(_finite(v) for v in value)
    ):
        return ""  # a bare figure (e.g. a label's prevalence) has no interval
    return f"[{_short(value[0], digits)}, {_short(value[1], digits)}]"


@register.filter
def pvalue(value: Any) -> str:
    if not _finite(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


@register.filter
def metric_title(name: str) -> str:
    spec = METRICS.get(name)
    return spec.title if spec else str(name).replace("_", " ")


@register.filter
def metric_short(name: str) -> str:
    short = {"macro_auroc": "Macro AUROC", "macro_auprc": "Macro AUPRC", "micro_auroc": "Micro AUROC",
             "kappa": "Kappa", "mad": "MAD (h)", "ece": "ECE", "brier": "Brier"}  # fmt: skip
    if name in short:
        return short[name]
    spec = METRICS.get(name)
    return spec.title.split(" (")[0] if spec else str(name)


@register.filter
def better(name: str) -> str:
    spec = METRICS.get(name)
    if spec is None:
        return ""
    return "higher is better" if spec.greater_is_better else "lower is better"


@register.filter
def get(mapping: Any, key: Any) -> Any:
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None


@register.filter
def duration(seconds: Any) -> str:
    if not _finite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


@register.filter
def short_hash(value: Any) -> str:
    return str(value or "")[:12]


# The rank bar beside each rank: ranks 1..N laid along RANK_BAR_WIDTH units of an inline SVG.
RANK_BAR_WIDTH = 60


@register.filter
def rank_scale(rows: Any) -> int:
    """The last rank the board's rank bars run to: the number of ranked entries, or more when
    a filter shows some of them (positions and intervals are the whole board's)."""
    n = 0
    for r in rows or ():
        interval = getattr(r, "rank_interval", None) or (0, 0)
        n = max(n, getattr(r, "position", None) or 0, *(int(v) for v in interval if _finite(v)))
    return max(n, len(rows or ()))


@register.filter
def rank_bar(row: Any, n: Any) -> dict[str, float] | None:
    """Where a row's rank bar draws its 95% rank interval and its rank over ranks 1..``n``
    (SVG user units; the page's policy allows no style attributes), or None without an
    interval."""
    interval = getattr(row, "rank_interval", None)
    rank = getattr(row, "rank", None)
    if (
        rank is None
        or not interval
        or len(interval) != 2
        or not all(_finite(v) for v in (*interval, rank, n))
    ):
        return None
    n = max(int(n), int(interval[1]), int(rank), 1)
    slot = RANK_BAR_WIDTH / n
    low, high = sorted(int(v) for v in interval)
    x = (low - 1) * slot
    width = max((high - low + 1) * slot, 3.0)
    x = min(x, RANK_BAR_WIDTH - width)
    mark = min(max((int(rank) - 0.5) * slot - 1.0, 0.0), RANK_BAR_WIDTH - 2.0)
    return {"x": round(x, 2), "width": round(width, 2), "mark": round(mark, 2),
            "full": RANK_BAR_WIDTH, "n": n}  # fmt: skip


@register.simple_tag
def board_layout(secondary: Any, robustness_columns: Any, sort: Any, rows: Any) -> dict[str, Any]:
    """What the board's table shows in its row and what each entry's detail row holds.

    The row keeps the rank, entry, team, inputs, the primary metric, the metric the board is
    sorted by, the change with each withheld modality, the fairness gap and the p-value; the
    detail row holds every secondary metric, the robustness AUDC and the ablations. Also which
    marks the rows carry, for the legend under the table."""
    secondary = list(secondary or ())
    columns = list(robustness_columns or ())
    drops = [c for c in columns if c.get("kind") == "drop"]
    sorted_metric = sort if sort in secondary else ""
    rows = list(rows or ())
    return {
        "sorted_metric": sorted_metric,
        "row_robustness": drops,
        "detail_robustness": [c for c in columns if c.get("kind") != "drop"],
        # rank, entry, team, inputs, primary, fairness gap, p vs leader, details
        "columns": 8 + len(drops) + (1 if sorted_metric else 0),
        "has_reference": any(getattr(r, "is_reference", False) for r in rows),
        "has_verified": any(getattr(r, "is_verified", False) for r in rows),
        "has_self_reported": any(
            not getattr(r, "is_verified", False) and not getattr(r, "is_reference", False)
            for r in rows
        ),
        "has_reference_not_causal": any(
            getattr(r, "is_reference", False) and not getattr(r, "is_verified", False) for r in rows
        ),
    }
