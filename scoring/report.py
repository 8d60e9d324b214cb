"""The score report: validated predictions in, plain JSON out.

A report holds everything needed to publish and compare an entry without rescoring: the
inputs' hashes, the seed and replicate count, per scenario the point estimates and 95% CIs
of every metric, per-label results, fairness, robustness, plots built from aggregates, and
the per-replicate values of the primary metric. It never holds a per-unit label or score.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from benchmark_data.tasks import METRICS
from scoring import plots
from scoring.bootstrap import ReplicatePlan, make_plan, percentile_ci, replicate_seed
from scoring.curves import pr_band, reliability, roc_band
from scoring.fairness import fairness_report
from scoring.metrics import DECISION_REFUSAL_POLICY, compute_metrics
from scoring.robustness import suite_robustness
from scoring.truth import Truth
from scoring.validation import DEFAULT_MAX_BYTES, Predictions, read_predictions
from scoring.version import SCORER_VERSION

# 2: fairness gained intersections, per-group error rates and calibration, the has-image
# attribute and missing_images; reports of schema 1 lack them and still render.
REPORT_SCHEMA = 2
REPLICATE_DECIMALS = 7

Progress = Callable[[str, float], None]


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _vc(value: float, reps: np.ndarray) -> dict[str, Any]:
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
) -> tuple[dict[str, Any], np.ndarray, float]:
    task = truth.task
    mv = compute_metrics(
        task, preds.form, truth.y, values, plan=plan, rows=rows, threshold=threshold
    )
    primary = task.primary_metric if preds.form != "decision" else "accuracy"
    sec: dict[str, Any] = {
        "n_units": int(rows.sum()),
        "n_patients": int(np.unique(truth.clusters[rows]).size),
        "metrics": {m: _vc(mv.point[m], mv.replicates[m]) for m in mv.point},
        "degenerate_replicates": {m: int(n) for m, n in mv.degenerate.items() if n},
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
    sec["replicates"] = _replicate_list(mv.replicates[primary])
    return sec, mv.replicates[primary], float(mv.point[primary])


def _curves(
    truth: Truth, preds: Predictions, values: np.ndarray, rows: np.ndarray, plan: ReplicatePlan
) -> dict[str, Any]:
    """Aggregate curves for the plots: binary probability entries only (ROC, PR with bands,
    reliability); multi-label entries get micro-averaged ROC and PR bands."""
    task = truth.task
    if preds.form != "probability":
        return {}
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
        return {}
    out = {"roc": roc_band(y, p, plan=pl, rows=r), "pr": pr_band(y, p, plan=pl, rows=r)}
    if task.kind == "binary":
        out["reliability"] = reliability(y, p, rows=r, plan=pl)
    return out


def build_report(
    preds: Predictions,
    truth: Truth,
    *,
    replicates: int = 1000,
    seed: int | None = None,
    threshold: float | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score validated predictions against a truth; returns the JSON-able report.
    ``threshold``: the task's declared threshold (MedMod: 0.5) unless given."""
    task = truth.task
    threshold = task.threshold if threshold is None else threshold
    step = progress or (lambda _msg, _frac: None)
    rseed = replicate_seed(benchmark_hash=truth.source_hash, task=task.slug, seed=seed)
    plan = make_plan(truth.clusters, n_replicates=replicates, seed=rseed)
    primary = task.primary_metric if preds.form != "decision" else "accuracy"
    base = preds.values["paired"]

    scenario_names = [s for s in truth.suite.scenarios if s in truth.scenarios]
    scored = [s for s in scenario_names if s in ("paired", "natural") or s in preds.values]
    scenarios: dict[str, Any] = {}
    points: dict[str, float] = {}
    reps: dict[str, np.ndarray] = {}
    for i, s in enumerate(scored):
        step(f"scoring scenario {s}", i / (len(scored) + 2))
        values = base if s in ("paired", "natural") else preds.values[s]
        rows = truth.scenario_units(s)
        sec, r, point = _scenario_report(truth, preds, values, rows, plan, threshold)
        scenarios[s] = sec
        points[s], reps[s] = point, r

    main = "paired" if "paired" in scenarios else "natural"
    step("fairness", len(scored) / (len(scored) + 2))
    fairness = fairness_report(
        truth,
        preds.form,
        base,
        plan=plan,
        rows=truth.scenario_units(main),
        threshold=threshold,
        scenario=main,
        natural=(points["natural"], reps["natural"]) if "natural" in points else None,
    )
    robustness = suite_robustness(primary, points, reps, truth.suite)
    step("plots", (len(scored) + 1) / (len(scored) + 2))
    curves = _curves(truth, preds, base, truth.scenario_units(main), plan)

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
    report["summary"] = summarize(report)
    report["plots"] = plots.report_figures(report)
    step("done", 1.0)
    # Round-trip through JSON so the returned object is exactly what gets stored.
    return json.loads(report_json(report))


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a leaderboard row shows."""
    main = report["scenarios"][report["main_scenario"]]
    prim = report["primary_metric"]
    rob = report["robustness"]
    fair_attrs = report["fairness"].get("attributes", {})
    # Attributes scored on another scenario (the has-image groups, on every unit) are left
    # out of the row's gaps, which are all on the main scenario's units.
    gaps = {
        a: {"worst_group": v.get("worst_group"), "gap": v.get("gap")}
        for a, v in fair_attrs.items()
        if "gap" in v and v.get("scenario", report["main_scenario"]) == report["main_scenario"]
    }
    worst_gap = max(
        (v["gap"]["value"] for v in gaps.values() if v["gap"] and v["gap"]["value"] is not None),
        default=None,
    )
    return {
        "primary_metric": prim,
        "value": main["metrics"][prim]["value"],
        "ci": main["metrics"][prim]["ci"],
        "scenario": report["main_scenario"],
        "metrics": main["metrics"],
        "natural": report["scenarios"].get("natural", {}).get("metrics", {}).get(prim),
        "robustness": {
            "audc": rob.get("audc"),
            "drop_cxr_missing_100": rob.get("drops", {}).get("cxr_missing_100"),
            "scenarios_scored": rob.get("scenarios_scored", []),
            # Each withheld modality's drop at its last level, and each ablation's value.
            "drops": {
                s: d
                for curve in (rob.get("modalities") or {"": rob}).values()
                for s, d in (curve.get("drops") or {}).items()
                if s.endswith("_100")
            },
            "ablations": {
                a["scenario"]: {"value": a["value"], "ci": a["ci"]}
                for a in rob.get("ablations", [])
                if a["scenario"] != "paired"
            },
        },
        "fairness": {"max_gap": worst_gap, "attributes": gaps},
        # What bounds the row's published precision (scoring.disclosure.unit_effect).
        "counts": {
            "n": main.get("n_units"),
            "positives": (
                round(main["prevalence"] * main["n_units"])
                if main.get("prevalence") is not None
                else None
            ),
            "predicted_positive": main.get("n_predicted_positive"),
        },
    }


def report_json(report: dict[str, Any]) -> str:
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
) -> dict[str, Any]:
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
