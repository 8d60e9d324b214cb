"""The score report: validated predictions in, plain JSON out.

A report holds everything needed to publish and compare an entry without rescoring: the
inputs' hashes, the seed and replicate count, per scenario the point estimates and 95% CIs
of every metric, per-label results, fairness, robustness, plots built from aggregates, and
the per-replicate values of the primary metric. It never holds a per-unit label or score.
Its types, and its version (the ``schema`` key), are in :mod:`scoring.report_types`; a
stored report is read back, whatever its version, with :func:`scoring.report_reader.read_report`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, BinaryIO, cast

import numpy as np

from benchmark_data.tasks import DEFAULT_SCENARIO, METRICS, NATURAL_SCENARIO
from scoring import plots
from scoring.bootstrap import ReplicatePlan, make_plan, percentile_ci, replicate_seed
from scoring.curves import pr_band, reliability, roc_band
from scoring.fairness import fairness_report
from scoring.metrics import DECISION_REFUSAL_POLICY, compute_metrics
from scoring.report_types import (
    REPORT_SCHEMA,
    Curves,
    Estimate,
    GapSummary,
    ScenarioSection,
    ScoreReport,
    Summary,
)
from scoring.robustness import suite_robustness
from scoring.truth import Truth
from scoring.validation import DEFAULT_MAX_BYTES, Predictions, read_predictions
from scoring.version import SCORER_VERSION

REPLICATE_DECIMALS = 7

Progress = Callable[[str, float], None]


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _vc(value: float, reps: np.ndarray) -> Estimate:
    lo, hi = percentile_ci(reps)
    return {"value": _f(value), "ci": [_f(lo), _f(hi)]}


def _replicate_list(r: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), REPLICATE_DECIMALS) for v in r]


def _scenario_report(
    truth: Truth,
    preds: Predictions,
    values: np.ndarray,
    rows: np.ndarray,
    plan: ReplicatePlan,
    threshold: float,
) -> tuple[ScenarioSection, np.ndarray, float]:
    task = truth.task
    mv = compute_metrics(
        task, preds.form, truth.y, values, plan=plan, rows=rows, threshold=threshold
    )
    primary = task.primary_metric if preds.form != "decision" else "accuracy"
    sec: ScenarioSection = {
        "n_units": int(rows.sum()),
        "n_patients": int(np.unique(truth.clusters[rows]).size),
        "metrics": {m: _vc(mv.point[m], mv.replicates[m]) for m in mv.point},
        "degenerate_replicates": {m: int(n) for m, n in mv.degenerate.items() if n},
        "replicates": _replicate_list(mv.replicates[primary]),
    }
    if task.kind == "binary":
        sec["prevalence"] = _f(np.mean(truth.y[rows]))
        # Units predicted positive (from the predictions alone): what the disclosure budget
        # needs to tell whether precision counts a set too small to publish.
        v = values[rows]
        positive = v == 1 if preds.form == "decision" else v >= threshold
        sec["n_predicted_positive"] = int(np.count_nonzero(positive))
    if mv.per_label:
        sec["per_label"] = {
            slug: {
                **{
                    m: _vc(v, mv.per_label_replicates[slug][m])
                    for m, v in vals.items()
                    if m in mv.per_label_replicates.get(slug, {})
                },
                **{
                    m: _f(v)
                    for m, v in vals.items()
                    if m not in mv.per_label_replicates.get(slug, {})
                },
            }
            for slug, vals in mv.per_label.items()
        }
    return sec, mv.replicates[primary], float(mv.point[primary])


def _curves(
    truth: Truth, preds: Predictions, values: np.ndarray, rows: np.ndarray, plan: ReplicatePlan
) -> Curves:
    """Aggregate curves for the plots: binary probability entries only (ROC, PR with bands,
    reliability); multi-label entries get micro-averaged ROC and PR bands."""
    task = truth.task
    if preds.form != "probability":
        return Curves()
    if task.kind == "binary":
        y, p, r, pl = truth.y, values, rows, plan
    elif task.kind == "multilabel":
        n_labels = task.n_labels
        y = truth.y.reshape(-1)
        p = values.reshape(-1)
        r = np.repeat(rows, n_labels)
        pl = ReplicatePlan(
            n_replicates=plan.n_replicates,
            seed=plan.seed,
            counts=plan.counts,
            unit_cluster=np.repeat(plan.unit_cluster, n_labels),
        )
    else:
        return Curves()
    out = Curves(roc=cast(Any, roc_band(y, p, plan=pl, rows=r)),
                 pr=cast(Any, pr_band(y, p, plan=pl, rows=r)))  # fmt: skip
    if task.kind == "binary":
        out["reliability"] = cast(Any, reliability(y, p, rows=r, plan=pl))
    return out


def build_report(
    preds: Predictions,
    truth: Truth,
    *,
    replicates: int = 1000,
    seed: int | None = None,
    threshold: float | None = None,
    progress: Progress | None = None,
) -> ScoreReport:
    """Score validated predictions against a truth; returns the report (plain JSON).
    ``threshold``: the task's declared threshold (MedMod: 0.5) unless given."""
    task = truth.task
    threshold = task.threshold if threshold is None else threshold
    step = progress or (lambda _msg, _frac: None)
    rseed = replicate_seed(benchmark_hash=truth.source_hash, task=task.slug, seed=seed)
    plan = make_plan(truth.clusters, n_replicates=replicates, seed=rseed)
    primary = task.primary_metric if preds.form != "decision" else "accuracy"
    base = preds.values[DEFAULT_SCENARIO]
    whole = (DEFAULT_SCENARIO, NATURAL_SCENARIO)  # scored on the file's own rows

    scenario_names = [s for s in truth.suite.scenarios if s in truth.scenarios]
    scored = [s for s in scenario_names if s in whole or s in preds.values]
    scenarios: dict[str, ScenarioSection] = {}
    points: dict[str, float] = {}
    reps: dict[str, np.ndarray] = {}
    for i, s in enumerate(scored):
        step(f"scoring scenario {s}", i / (len(scored) + 2))
        values = base if s in whole else preds.values[s]
        rows = truth.scenario_units(s)
        sec, r, point = _scenario_report(truth, preds, values, rows, plan, threshold)
        scenarios[s] = sec
        points[s], reps[s] = point, r

    main = DEFAULT_SCENARIO if DEFAULT_SCENARIO in scenarios else NATURAL_SCENARIO
    step("fairness", len(scored) / (len(scored) + 2))
    fairness = fairness_report(
        truth,
        preds.form,
        base,
        plan=plan,
        rows=truth.scenario_units(main),
        threshold=threshold,
        scenario=main,
        natural=(
            (points[NATURAL_SCENARIO], reps[NATURAL_SCENARIO])
            if NATURAL_SCENARIO in points
            else None
        ),
    )
    robustness = suite_robustness(primary, points, reps, truth.suite)
    step("plots", (len(scored) + 1) / (len(scored) + 2))
    curves = _curves(truth, preds, base, truth.scenario_units(main), plan)

    # The sections built elsewhere (fairness, robustness: plain dicts) are typed here; the
    # round trip through read_report in the tests checks them against the types.
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "task": task.slug,
        "scorer_version": SCORER_VERSION,
        "seed": rseed,
        "replicates": replicates,
        "resampling": "patients (subject_id): all rows of a patient together, multinomial",
        "ci": "percentile, 95%",
        "benchmark": {
            "name": truth.benchmark_name,
            "version": truth.benchmark_version,
            "hash": truth.source_hash,
        },
        "predictions": {
            "sha256": preds.sha256,
            "size": preds.size,
            "rows": preds.n_rows,
            "form": preds.form,
            "scenarios": sorted(preds.values),
        },
        "threshold": threshold if task.kind != "los" else None,
        "primary_metric": primary,
        "greater_is_better": METRICS[primary].greater_is_better,
        "main_scenario": main,
        "scenarios": scenarios,
        "fairness": fairness,
        "robustness": robustness,
        "curves": curves,
    }
    if preds.form == "decision":
        report["decision_policy"] = DECISION_REFUSAL_POLICY
    if preds.warnings:
        report["predictions"]["warnings"] = list(preds.warnings)
    typed = cast(ScoreReport, report)
    typed["summary"] = summarize(typed)
    typed["plots"] = plots.report_figures(report)
    step("done", 1.0)
    # Round-trip through JSON so the returned object is exactly what gets stored.
    return cast(ScoreReport, json.loads(report_json(typed)))


def summarize(report: ScoreReport) -> Summary:
    """The few numbers a leaderboard row shows."""
    main_name = report["main_scenario"]
    main = report["scenarios"][main_name]
    prim = report["primary_metric"]
    rob = report["robustness"]
    # Attributes scored on another scenario (the has-image groups, on every unit) are left
    # out of the row's gaps, which are all on the main scenario's units.
    gaps: dict[str, GapSummary] = {
        a: {"worst_group": v.get("worst_group"), "gap": v["gap"]}
        for a, v in report["fairness"]["attributes"].items()
        if "gap" in v and v.get("scenario", main_name) == main_name
    }
    worst_gap = max(
        (g["value"] for v in gaps.values() if (g := v["gap"]) and g["value"] is not None),
        default=None,
    )
    natural = report["scenarios"].get(NATURAL_SCENARIO)
    prevalence = main.get("prevalence")
    return {
        "primary_metric": prim,
        "value": main["metrics"][prim]["value"],
        "ci": main["metrics"][prim]["ci"],
        "scenario": main_name,
        "metrics": main["metrics"],
        "natural": natural["metrics"].get(prim) if natural is not None else None,
        "robustness": {
            "audc": rob["audc"],
            "drop_cxr_missing_100": rob["drops"].get("cxr_missing_100"),
            "scenarios_scored": rob["scenarios_scored"],
            # Each withheld modality's drop at its last level, and each ablation's value.
            "drops": {
                s: d
                for curve in (rob.get("modalities") or {"": rob}).values()
                for s, d in curve["drops"].items()
                if s.endswith("_100")
            },
            "ablations": {
                a["scenario"]: {"value": a["value"], "ci": a["ci"]}
                for a in rob.get("ablations", [])
                if a["scenario"] != DEFAULT_SCENARIO
            },
        },
        "fairness": {"max_gap": worst_gap, "attributes": gaps},
        # What bounds the row's published precision (scoring.disclosure.unit_effect).
        "counts": {
            "n": main["n_units"],
            "positives": (round(prevalence * main["n_units"]) if prevalence is not None else None),
            "predicted_positive": main.get("n_predicted_positive"),
        },
    }


def report_json(report: ScoreReport | dict[str, Any]) -> str:
    """Canonical JSON text of a report (sorted keys): the same inputs give the same bytes."""
    return json.dumps(report, sort_keys=True, separators=(",", ":"), allow_nan=False)


def score_predictions(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    *,
    truth: Truth,
    replicates: int = 1000,
    seed: int | None = None,
    threshold: float | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Progress | None = None,
) -> ScoreReport:
    """Validate a prediction file and score it (at the task's declared threshold unless
    ``threshold`` is given).

    Raises
    ------
    scoring.PredictionFileError
        The file is refused whole; ``.message`` says what is wrong and where.
    """
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if replicates < 10:
        raise ValueError(f"at least 10 replicates are needed, got {replicates}")
    preds = read_predictions(source, truth=truth, max_bytes=max_bytes)
    return build_report(
        preds, truth, replicates=replicates, seed=seed, threshold=threshold, progress=progress
    )
