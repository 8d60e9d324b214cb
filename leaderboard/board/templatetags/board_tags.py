"""Formatting for the pages: numbers, CIs, metric names, dictionary look-ups."""

from __future__ import annotations

import json
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
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)


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
