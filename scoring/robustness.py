"""Missing-modality robustness: how the primary metric degrades as an optional modality is
withheld (MedMod: the chest X-ray), and the modality-ablation table of a suite that declares
one (Yu et al.: EHR; + images; + notes; + images and notes).

Scenarios ``cxr_missing_25/50/75/100`` (``{prefix}_{level}`` of the suite's withheld
modality) score the same paired units as ``paired``, with the modality of a nested, seeded
subset of stays withheld. The drop of each scenario is a paired
difference on the same units and the same replicates, so its CI reflects only the change
in predictions, not resampling noise between different unit sets. The area under the
degradation curve (AUDC) integrates the primary metric over the withheld fraction 0..1 with
the trapezoid rule; it equals the mean level of the metric across the curve.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark_data.suite import Modality, Suite
from benchmark_data.tasks import MEDMOD
from scoring.bootstrap import percentile_ci
from scoring.ranking import paired_difference


def _count(n: int) -> str:
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    return words[n] if n < len(words) else str(n)


def _f(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def robustness_report(
    primary: str,
    points: dict[str, float],
    replicates: dict[str, np.ndarray],
    *,
    modality: Modality | None = MEDMOD.withheld_modality,
) -> dict[str, Any]:
    """Robustness section from the primary metric's point and replicate values per scenario.

    ``points``/``replicates`` hold the scenarios that were scored (``paired`` and any
    ``cxr_missing_*``; ``natural`` is reported beside them, outside the curve).
    ``modality`` is the one withheld along the curve (None: the suite withholds none).
    """
    all_levels = modality.withheld_levels if modality is not None else ()
    name = {p: f"{modality.scenario_prefix}_{p}" for p in all_levels} if modality else {}
    levels = [p for p in all_levels if name[p] in points]
    out: dict[str, Any] = {
        "metric": primary,
        "scenarios_scored": [s for s in points if s != "natural"],
        "scenarios_missing": [name[p] for p in all_levels if name[p] not in points],
        "drops": {},
        "curve": [],
        "audc": None,
        # What the curve withholds (the suite's modality slug and title).
        "modality": modality.slug if modality is not None else None,
        "modality_title": modality.title if modality is not None else None,
    }
    if modality is None:
        out["note"] = "the suite withholds no modality"
        return out
    if "paired" not in points:
        what = "a chest X-ray" if modality.slug == "cxr" else modality.title.lower()
        out["note"] = f"no paired units: robustness needs test units with {what}"
        return out
    base_r = replicates["paired"]
    out["curve"].append(
        {
            "scenario": "paired",
            "fraction_withheld": 0.0,
            "value": _f(points["paired"]),
            "ci": [_f(v) for v in percentile_ci(base_r)],
        }
    )
    for p in levels:
        s = name[p]
        d = paired_difference(replicates[s], base_r)
        out["drops"][s] = {
            "value": _f(points[s] - points["paired"]),
            "ci": [_f(v) for v in d["diff_ci"]],
            "p": d["p"],
        }
        out["curve"].append(
            {
                "scenario": s,
                "fraction_withheld": p / 100,
                "value": _f(points[s]),
                "ci": [_f(v) for v in percentile_ci(replicates[s])],
            }
        )
    if len(levels) == len(all_levels):
        xs = np.array([0.0, *(p / 100 for p in levels)])
        pt = np.array([points["paired"], *(points[name[p]] for p in levels)])
        rep = np.vstack([base_r, *(replicates[name[p]] for p in levels)])
        audc_point = float(np.trapezoid(pt, xs))
        audc_reps = np.trapezoid(rep, xs, axis=0)
        out["audc"] = {"value": _f(audc_point), "ci": [_f(v) for v in percentile_ci(audc_reps)]}
    else:
        out["audc_note"] = (
            f"the area under the degradation curve needs all {_count(len(all_levels))} "
            f"{modality.scenario_prefix} scenarios"
        )
    return out


def suite_robustness(
    primary: str, points: dict[str, float], replicates: dict[str, np.ndarray], suite: Suite
) -> dict[str, Any]:
    """The robustness section of a suite: the curve of its first withheld modality at the
    top level (:func:`robustness_report`), ``modalities``: every withheld modality's curve
    when it declares more than one, and ``ablations``: each modality subset's metric and its
    paired difference from ``paired`` (all modalities) when it declares ablations."""
    out = robustness_report(primary, points, replicates, modality=suite.withheld_modality)
    curves = [m for m in suite.modalities if m.withheld_levels]
    if len(curves) > 1:
        out["modalities"] = {
            m.slug: robustness_report(primary, points, replicates, modality=m) for m in curves
        }
    if suite.ablations:
        out["ablations"] = ablation_table(points, replicates, suite)
    return out


def ablation_table(
    points: dict[str, float], replicates: dict[str, np.ndarray], suite: Suite
) -> list[dict[str, Any]]:
    """One row per modality subset, the full set (``paired``) last: the primary metric with
    its CI, and the difference from the full set on the same units and replicates (negative:
    the left-out modalities helped), with its CI and p-value. Subsets not scored have no
    values."""
    full = tuple(m.slug for m in suite.modalities)
    rows: list[dict[str, Any]] = []
    for slug, title, mods in [
        *((a.slug, a.title, a.modalities) for a in suite.ablations),
        ("paired", "All modalities", full),
    ]:
        row: dict[str, Any] = {"scenario": slug, "title": title, "modalities": list(mods),
                               "value": None, "ci": [None, None], "difference": None}  # fmt: skip
        if slug in points:
            row["value"] = _f(points[slug])
            row["ci"] = [_f(v) for v in percentile_ci(replicates[slug])]
            if slug != "paired" and "paired" in points:
                d = paired_difference(replicates[slug], replicates["paired"])
                row["difference"] = {
                    "value": _f(points[slug] - points["paired"]),
                    "ci": [_f(v) for v in d["diff_ci"]],
                    "p": d["p"],
                }
        rows.append(row)
    return rows
