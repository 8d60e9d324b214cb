"""The disclosure budget: what of a score report a participant, or the public, may see.

A stored report (:func:`scoring.report.build_report`) keeps full-precision figures, the
per-replicate values of the primary metric and the replicate seed: the board's paired tests,
rank intervals and tiers are computed from them, server-side. Everything that leaves the
platform goes through :func:`participant_report` (a whole report) or
:func:`disclose_figures` (any other payload holding figures), which bound what a response can
say about the hidden test labels:

* every figure with a CI is rounded to the decimal of the leading digit of its CI
  half-width, and never finer than the most one unit's label can move it (its
  *sensitivity*: ``1/n`` for Brier, ECE and accuracy, ``1/min(positives, negatives)`` for
  AUROC, ``1/positives`` for AUPRC and recall, ...), between 1 and 3 decimals; the CI
  bounds with it. A figure that one unit moves by more than 0.1 is suppressed. Crafted
  predictions have narrow CIs; the sensitivity floor is what keeps a single unit's label
  below one rounding step;
* no per-replicate values and no seed: with the seed, the replicate weights can be
  recomputed and each replicate's value is one more equation in the labels;
* curves only as the bootstrap median and 95% band on an 11-point grid, rounded, never the
  point curve on the 101-point grid (which pins the rank of every positive);
* metrics at the threshold are shown only when every count they divide by holds at least
  :data:`MIN_COUNTED_UNITS` units, and reliability bins only with at least
  :data:`MIN_BIN_UNITS` units: a small counted set makes the figure a label query. The
  same holds per fairness group (TPR over the group's positives, FPR over its negatives,
  selection rate and ECE over its units, each no finer than one of those units), and the
  group's label counts, kept to decide this, are never published;
* the correlation of the groups' gaps with their missing images only to one decimal, and
  only when every group's gap it uses is shown;
* plots are rebuilt from the bounded figures.

Rounding hides no science: published CIs, paired tests and tiers are computed from the
stored full-precision values; only their display is rounded. A point estimate and its CI are
rounded to the same decimals, so the rounded CI still holds the rounded estimate.

>>> round_figure(0.886044591, [0.81160316, 0.94715336])
(0.89, [0.81, 0.95])
>>> decimals_for([0.0591, 0.1096])
2
>>> decimals_for([0.3333, 0.9231])
1
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from benchmark_data.tasks import DEFAULT_SCENARIO
from scoring import plots
from scoring.report import summarize
from scoring.report_types import Robustness, ScenarioSection, ScoreReport

# A report as it may leave the platform: the sections of a ScoreReport with every figure
# bounded, no seed and no replicates, coarse curves, and a ``disclosure`` note. Its
# ``summary`` is there only when the main scenario's primary metric may be shown.
ReportView = dict[str, Any]

MAX_DECIMALS = 3
MIN_DECIMALS = 1
DEFAULT_DECIMALS = 2
MIN_COUNTED_UNITS = 20
MIN_BIN_UNITS = 30
CURVE_GRID = 11

# Keys that never leave the platform, wherever they occur in a report.
WITHHELD_KEYS = frozenset({"seed", "replicates_values", "replicate_values"})
# Figures a participant chose (their own threshold) or that count units: shown as they are.
EXEMPT_KEYS = frozenset({"threshold"})
THRESHOLD_METRICS = ("precision", "recall", "specificity", "f1")
# Metrics that one unit moves by at most 1/n whatever the labels.
PER_UNIT_METRICS = frozenset({"brier", "ece", "accuracy", "answer_rate"})

SUPPRESSED = "suppressed: fewer than {n} units counted"
NOTE_CORRELATION_HIDDEN = "not shown: a group it is computed from is too small to show its figure"


def unit_effect(metric: str, counts: dict[str, Any]) -> float | None:
    """The most one unit's label can move ``metric`` on a scenario with these counts
    (``n``, ``positives``, ``predicted_positive``); None when the counts are unknown.

    >>> unit_effect("auroc", {"n": 201, "positives": 28})
    0.03571428571428571
    >>> unit_effect("brier", {"n": 201, "positives": 28})
    0.004975124378109453
    """
    n, pos, npp = counts.get("n"), counts.get("positives"), counts.get("predicted_positive")
    if not isinstance(n, int) or n <= 0:
        return None
    if not isinstance(pos, int):
        return 1.0 / n if metric in PER_UNIT_METRICS else None
    neg = n - pos
    smallest = {
        "auroc": min(pos, neg),
        "auprc": pos,
        "recall": pos,
        "specificity": neg,
        "f1": pos if not isinstance(npp, int) else min(pos, npp),
        "precision": npp if isinstance(npp, int) else None,
    }
    if metric in smallest:
        m = smallest[metric]
        return None if m is None else (1.0 / m if m > 0 else math.inf)
    return 1.0 / n


def decimals_for(ci: Any, *, effect: float | None = None) -> int | None:
    """Decimals a figure with this 95% CI is published with: those of the leading digit of
    the CI half-width, between ``MIN_DECIMALS`` and ``MAX_DECIMALS`` (``DEFAULT_DECIMALS``
    without a usable CI), and no finer than the figure's sensitivity ``effect`` (one step
    is at least what one unit can change). None: the figure must be suppressed."""
    d = DEFAULT_DECIMALS
    if isinstance(ci, list | tuple) and len(ci) == 2 and _finite(ci[0]) and _finite(ci[1]):
        half = (float(ci[1]) - float(ci[0])) / 2.0
        d = MAX_DECIMALS if half <= 0 else -math.floor(math.log10(half))
    d = max(MIN_DECIMALS, min(MAX_DECIMALS, d))
    if effect is not None:
        if not effect < 10.0**-MIN_DECIMALS:
            return None
        d = min(d, math.floor(-math.log10(effect)))
    return d


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _round(x: Any, decimals: int) -> Any:
    if not _finite(x):
        return x
    if isinstance(x, int):
        return x
    r = round(float(x), decimals)
    return 0.0 if r == 0 else r


def round_figure(value: Any, ci: Any, *, effect: float | None = None) -> tuple[Any, Any]:
    """A point estimate and its CI rounded to the decimals the CI and sensitivity support
    (``(None, [None, None])`` when the figure is suppressed)."""
    d = decimals_for(ci, effect=effect)
    if d is None:
        return None, [None, None]
    out_ci = [_round(v, d) for v in ci] if isinstance(ci, list | tuple) else ci
    return _round(value, d), out_ci


def disclose_figures(
    obj: Any, *, decimals: int = DEFAULT_DECIMALS, max_decimals: int = MAX_DECIMALS
) -> Any:
    """A copy of a JSON-like payload with every figure bounded: ``{value, ci}`` pairs rounded
    by their CI, other floats to ``decimals``, withheld keys and replicate arrays dropped."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        has_pair = "value" in obj and "ci" in obj
        d = (decimals_for(obj.get("ci")) or DEFAULT_DECIMALS) if has_pair else decimals
        d = min(d, max_decimals)
        for k, v in obj.items():
            if k in WITHHELD_KEYS:
                continue
            if k == "replicates" and isinstance(v, list):
                continue
            if k in EXEMPT_KEYS:
                out[k] = v
            elif has_pair and k in ("value", "ci"):
                out[k] = [_round(x, d) for x in v] if isinstance(v, list) else _round(v, d)
            else:
                out[k] = disclose_figures(v, decimals=d, max_decimals=max_decimals)
        return out
    if isinstance(obj, list):
        return [disclose_figures(v, decimals=decimals, max_decimals=max_decimals) for v in obj]
    if isinstance(obj, float):
        return _round(obj, min(decimals, max_decimals))
    return obj


def _coarse_curve(curve: dict[str, Any], x_name: str, y_name: str) -> dict[str, Any]:
    """The curve's bootstrap median and band on ``CURVE_GRID`` points, rounded."""
    xs = curve.get(x_name) or []
    n = len(xs)
    if n < 2:
        return {}
    step = (n - 1) / (CURVE_GRID - 1)
    idx = [round(i * step) for i in range(CURVE_GRID)]
    low = curve.get(f"{y_name}_low") or [None] * n
    high = curve.get(f"{y_name}_high") or [None] * n
    mid = curve.get(f"{y_name}_median")
    if mid is None:  # reports stored before the median was kept: the band's middle
        mid = [
            None if a is None or b is None else (a + b) / 2 for a, b in zip(low, high, strict=True)
        ]
    pick = lambda v: [_round(v[i], DEFAULT_DECIMALS) for i in idx]  # noqa: E731
    return {
        x_name: pick(xs),
        y_name: pick(mid),
        f"{y_name}_low": pick(low),
        f"{y_name}_high": pick(high),
        "curve": "pointwise bootstrap median, with its 95% band, on an 11-point grid",
        "interpolation": curve.get("interpolation"),
        "n_replicates": curve.get("n_replicates"),
    }


def _reliability(rel: dict[str, Any], *, per_bin_effect: bool = False) -> dict[str, Any]:
    """Bins with at least ``MIN_BIN_UNITS`` units, rounded by their CI (``per_bin_effect``:
    and no finer than one unit of the bin's count, as the per-group diagrams are)."""
    shown, small = [], []
    for b in [*rel.get("bins", []), *rel.get("small_bins", [])]:
        entry = {"lower": b.get("lower"), "upper": b.get("upper"), "count": b.get("count")}
        if (b.get("count") or 0) < MIN_BIN_UNITS or "observed_rate" not in b:
            small.append(entry)
            continue
        effect = 1.0 / b["count"] if per_bin_effect else None
        value, ci = round_figure(b["observed_rate"], b.get("observed_ci"), effect=effect)
        entry.update(
            mean_predicted=_round(b.get("mean_predicted"), DEFAULT_DECIMALS),
            observed_rate=value,
        )
        if ci is not None:
            entry["observed_ci"] = ci
        shown.append(entry)
    shown.sort(key=lambda e: e["lower"] or 0.0)
    small.sort(key=lambda e: e["lower"] or 0.0)
    return {
        "n_bins": rel.get("n_bins"),
        "n_units": rel.get("n_units"),
        "min_bin_units": MIN_BIN_UNITS,
        "bins": shown,
        "small_bins": small,
    }


def scenario_counts(sec: Mapping[str, Any]) -> dict[str, Any]:
    """Units, positives and predicted positives of a stored scenario section."""
    n = sec.get("n_units")
    prev = sec.get("prevalence")
    pos = round(prev * n) if isinstance(prev, int | float) and isinstance(n, int) else None
    return {"n": n, "positives": pos, "predicted_positive": sec.get("n_predicted_positive")}


def _counted(metric: str, counts: dict[str, Any]) -> int | None:
    """The smallest set of units a threshold metric divides by."""
    n, pos, npp = counts.get("n"), counts.get("positives"), counts.get("predicted_positive")
    if not isinstance(n, int) or not isinstance(pos, int):
        return None
    npp_both = min(npp, n - npp) if isinstance(npp, int) else None
    return {
        "precision": npp_both,
        "recall": pos,
        "specificity": n - pos,
        "f1": None if npp_both is None else min(npp_both, pos),
    }[metric]


def disclose_metrics(metrics: dict[str, Any], counts: dict[str, Any]) -> tuple[dict, list]:
    """``{metric: {value, ci}}`` bounded for a scenario with these counts; the names of the
    metrics suppressed."""
    out: dict[str, Any] = {}
    suppressed = []
    for m, entry in metrics.items():
        if m in THRESHOLD_METRICS:
            size = _counted(m, counts)
            if size is None or size < MIN_COUNTED_UNITS:
                suppressed.append(m)
                continue
        if not isinstance(entry, dict):
            out[m] = disclose_figures(entry)
            continue
        value, ci = round_figure(entry.get("value"), entry.get("ci"), effect=unit_effect(m, counts))
        if value is None and entry.get("value") is not None:
            suppressed.append(m)
            continue
        out[m] = {"value": value, "ci": ci}
    return out, suppressed


def _scenario(sec: dict[str, Any]) -> dict[str, Any]:
    counts = scenario_counts(sec)
    out = disclose_figures(
        {k: v for k, v in sec.items() if k not in ("n_predicted_positive", "metrics")}
    )
    out["metrics"], suppressed = disclose_metrics(sec.get("metrics", {}), counts)
    if suppressed:
        out["suppressed_metrics"] = {
            "metrics": suppressed,
            "reason": SUPPRESSED.format(n=MIN_COUNTED_UNITS),
        }
    return out


def _group_effect(units: Any, rate: float | None) -> float | None:
    """The most one unit's label can move a group's primary metric, from its size and the
    scenario's positive rate (the group's own count of positives is not used, so the
    group's decimals say nothing of it)."""
    if rate is None or not isinstance(units, int):
        return None
    smallest = units * min(rate, 1.0 - rate)
    return 1.0 / smallest if smallest >= 1 else math.inf


def _bounded(entry: Any, *, counted: Any, effect: float | None = None) -> dict[str, Any] | None:
    """A per-group ``{value, ci}`` over ``counted`` units: None (suppressed) under
    ``MIN_COUNTED_UNITS`` units or when one unit moves it by more than 0.1."""
    if not isinstance(entry, dict) or not isinstance(counted, int):
        return None
    if counted < MIN_COUNTED_UNITS or entry.get("value") is None:
        return None
    value, ci = round_figure(
        entry["value"], entry.get("ci"), effect=1.0 / counted if effect is None else effect
    )
    return None if value is None else {"value": value, "ci": ci}


def _group_extras(ge: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A group's error rates and calibration as they may be published, and the names of
    those suppressed. Each is bounded by the units it divides by: TPR by the group's
    positives, FPR by its negatives, the selection rate and ECE by its units; reliability
    bins by their own count. The group's label counts themselves are never published."""
    lc = ge.get("label_counts") or {}
    units = ge.get("n_units")
    counted = {
        "tpr": lc.get("positives"),
        "fpr": lc.get("negatives"),
        "selection_rate": units,
        "ece": units,
    }
    out: dict[str, Any] = {}
    hidden: list[str] = []
    for key, n in counted.items():
        if key not in ge:
            continue
        b = _bounded(ge[key], counted=n)
        if b is None:
            hidden.append(key)
        else:
            out[key] = b
    if isinstance(ge.get("reliability"), dict):
        out["reliability"] = _reliability(ge["reliability"], per_bin_effect=True)
    return out, hidden


def _fairness_entry(entry: dict[str, Any], rate: float | None) -> dict[str, Any]:
    """One attribute (or intersection) of the fairness section, bounded."""
    groups: dict[str, Any] = {}
    hidden = int(entry.get("suppressed_groups") or 0)
    for g, ge in (entry.get("groups") or {}).items():
        value, ci = round_figure(
            ge.get("value"), ge.get("ci"), effect=_group_effect(ge.get("n_units"), rate)
        )
        if value is None:
            hidden += 1
            continue
        shown = {"value": value, "ci": ci, "n_units": ge.get("n_units")}
        if "n_patients" in ge:
            shown["n_patients"] = ge["n_patients"]
        extras, suppressed = _group_extras(ge)
        shown.update(extras)
        if suppressed:
            shown["suppressed_metrics"] = suppressed
        groups[g] = shown
    a: dict[str, Any] = {"groups": groups, "suppressed_groups": hidden}
    for k in ("scenario", "attributes"):
        if k in entry:
            a[k] = entry[k]
    if "demographic_parity_ratio" in entry:  # selection rates: predictions only
        a["demographic_parity_ratio"] = disclose_figures(entry["demographic_parity_ratio"])
    if hidden == 0:
        for k in ("gap", "worst_group", "equalized_odds_ratio"):
            if k in entry:
                a[k] = disclose_figures(entry[k])
    return a


def _rate(counts: dict[str, Any]) -> float | None:
    n, pos = counts.get("n"), counts.get("positives")
    return pos / n if isinstance(n, int) and isinstance(pos, int) and n else None


def _missing_images(sec: dict[str, Any], rate: float | None) -> dict[str, Any]:
    """Each group's gap (bounded as a difference of two group figures: twice a group's
    sensitivity) and missing share, and the correlation, to one decimal and only when every
    group it uses has its gap shown."""
    out = disclose_figures(
        {k: v for k, v in sec.items() if k not in ("groups", "correlation", "overall")}
    )
    out["overall"] = disclose_figures(sec.get("overall"), max_decimals=MIN_DECIMALS)
    groups = []
    complete = True
    for g in sec.get("groups") or []:
        effect = _group_effect(g.get("n_units"), rate)
        gap = g.get("gap") or {}
        value, ci = round_figure(
            gap.get("value"), gap.get("ci"), effect=None if effect is None else 2.0 * effect
        )
        if value is None:
            complete = False
            continue
        groups.append(
            {
                "attribute": g.get("attribute"),
                "group": g.get("group"),
                "n_units": g.get("n_units"),
                "gap": {"value": value, "ci": ci},
                "missing_share": _round(g.get("missing_share"), DEFAULT_DECIMALS),
            }
        )
    out["groups"] = groups
    corr = sec.get("correlation")
    if corr is not None and complete:
        out["correlation"] = disclose_figures(corr, max_decimals=MIN_DECIMALS)
    else:
        out["correlation"] = None
        if corr is not None:
            out["note"] = NOTE_CORRELATION_HIDDEN
    return out


def _fairness(fair: dict[str, Any], scenarios: dict[str, Any], main: Any) -> dict[str, Any]:
    """Per-group figures whose group is large enough for their sensitivity; the gap, worst
    group and equalized odds ratio only when every group is shown."""
    skip = ("attributes", "intersections", "missing_images")
    out = disclose_figures({k: v for k, v in fair.items() if k not in skip})
    main_rate = _rate(scenario_counts(scenarios.get(main) or {}))

    def rate_of(entry: dict[str, Any]) -> float | None:
        s = entry.get("scenario")
        return main_rate if s is None else _rate(scenario_counts(scenarios.get(s) or {}))

    out["attributes"] = {
        attr: _fairness_entry(entry, rate_of(entry))
        for attr, entry in (fair.get("attributes") or {}).items()
    }
    if "intersections" in fair:
        out["intersections"] = {
            key: _fairness_entry(entry, main_rate)
            for key, entry in (fair.get("intersections") or {}).items()
        }
    if isinstance(fair.get("missing_images"), dict):
        sec = fair["missing_images"]
        natural_rate = _rate(scenario_counts(scenarios.get(sec.get("scenario")) or {}))
        out["missing_images"] = _missing_images(sec, natural_rate)
    return out


def disclose_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A stored leaderboard summary (``report["summary"]``) as a board row may show it."""
    counts = summary.get("counts") or {}
    # The natural scenario's and the fairness figures have no counts here: one decimal.
    out = disclose_figures(
        {k: v for k, v in summary.items() if k not in ("metrics", "value", "ci", "counts")},
        max_decimals=MIN_DECIMALS,
    )
    out["metrics"], _ = disclose_metrics(summary.get("metrics") or {}, counts)
    prim = summary.get("primary_metric")
    out["value"], out["ci"] = round_figure(
        summary.get("value"), summary.get("ci"), effect=unit_effect(str(prim), counts)
    )
    return out


def _robustness(rob: Robustness, scenarios: Mapping[str, ScenarioSection]) -> dict[str, Any]:
    """Scenario values, drops and AUDC rounded with the primary metric's sensitivity on
    the paired units (a drop, a difference of two figures, with twice of it)."""
    paired = scenarios.get(DEFAULT_SCENARIO)
    effect = unit_effect(rob["metric"], scenario_counts(dict(paired) if paired else {}))
    out = disclose_figures({k: v for k, v in rob.items() if k not in ("curve", "drops", "audc")})

    def bounded(entry: Any, scale: float = 1.0) -> Any:
        if not isinstance(entry, dict) or "value" not in entry:
            return entry
        value, ci = round_figure(
            entry["value"], entry.get("ci"), effect=None if effect is None else scale * effect
        )
        return {**disclose_figures(entry), "value": value, "ci": ci}

    out["curve"] = [bounded(c) for c in rob["curve"]]
    out["drops"] = {s: bounded(d, 2.0) for s, d in rob["drops"].items()}
    out["audc"] = bounded(rob["audc"])
    return out


def participant_report(report: ScoreReport) -> ReportView:
    """The report as a participant (the entry's owner included) or the public sees it.

    Parameters
    ----------
    report : ScoreReport
        A report of the current version (full precision, with replicates and seed): a
        stored one goes through :func:`scoring.report_reader.read_report` first.

    Returns
    -------
    ReportView
        The same sections with bounded figures, coarse curves, no seed and no per-replicate
        values; ``summary`` and ``plots`` rebuilt from them; ``disclosure`` says how.
    """
    view: dict[str, Any] = {}
    for k, v in report.items():
        if k in WITHHELD_KEYS or k in ("scenarios", "curves", "plots", "summary"):
            continue
        view[k] = disclose_figures(v)
    scenarios = report["scenarios"]
    main = report["main_scenario"]
    view["scenarios"] = {s: _scenario(dict(sec)) for s, sec in scenarios.items()}
    view["fairness"] = _fairness(dict(report["fairness"]), dict(scenarios), main)
    view["robustness"] = _robustness(report["robustness"], scenarios)
    curves = report["curves"]
    coarse: dict[str, Any] = {}
    if "roc" in curves:
        coarse["roc"] = _coarse_curve(dict(curves["roc"]), "fpr", "tpr")
    if "pr" in curves:
        coarse["pr"] = _coarse_curve(dict(curves["pr"]), "recall", "precision")
    if "reliability" in curves:
        coarse["reliability"] = _reliability(dict(curves["reliability"]))
    view["curves"] = {k: v for k, v in coarse.items() if v}
    if report["primary_metric"] in view["scenarios"][main]["metrics"]:
        # The view holds the report's sections, bounded: its summary is built the same way.
        view["summary"] = summarize(cast(ScoreReport, view))
    # Error bars are differences of rounded figures: their float tails are rounded away.
    view["plots"] = disclose_figures(plots.report_figures(view), decimals=MAX_DECIMALS)
    view["disclosure"] = {
        "rounding": "each figure to the decimal of its CI half-width's leading digit (1 to 3)",
        "curves": f"bootstrap median and 95% band on {CURVE_GRID} points",
        "min_counted_units": MIN_COUNTED_UNITS,
        "min_bin_units": MIN_BIN_UNITS,
        "withheld": "per-replicate values and the resampling seed",
    }
    return view


__all__ = [
    "CURVE_GRID",
    "MAX_DECIMALS",
    "MIN_BIN_UNITS",
    "MIN_COUNTED_UNITS",
    "ReportView",
    "decimals_for",
    "disclose_figures",
    "participant_report",
    "round_figure",
]
