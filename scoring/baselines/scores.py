"""Tables of a run's results: validation metrics from the run manifest, and test scores
from the scoring engine when it is available (``scoring.score_predictions``).

The test table shows, per model and task, the primary metric on the paired test units with
its 95% bootstrap CI, and its change when every chest X-ray is withheld
(``cxr_missing_100`` minus ``paired``, a paired difference with its CI). The fusion table
compares each fusion model with the task's best unimodal model on the same bootstrap
replicates (a paired difference with its CI and p-value). Test labels are only ever read
by the scoring engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark_data.tasks import DEFAULT_SCENARIO, METRICS, get_task
from scoring.baselines.artifacts import predictions_path
from scoring.baselines.models import MODEL_NAMES

SCORES_MD = "scores.md"


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}f}"


def markdown_table(cells: dict[str, dict[str, str]], tasks: list[str], models: list[str]) -> str:
    """A markdown table of ``cells[model][task]`` strings, one row per model.

    >>> print(markdown_table({"ehr": {"phenotyping": "0.7"}}, ["phenotyping"], ["ehr"]))
    | model | phenotyping |
    |---|---|
    | ehr | 0.7 |
    """
    lines = ["| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(cells.get(m, {}).get(t, "") for t in tasks) + " |")
    return "\n".join(lines)


def _order(manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    tasks = list(manifest["tasks"])
    present = {m for t in tasks for m in manifest["tasks"][t]}
    return tasks, [m for m in MODEL_NAMES if m in present]


def validation_table(manifest: dict[str, Any]) -> str:
    """Selected-epoch validation metric (paired units; all units in parentheses)."""
    tasks, models = _order(manifest)
    cells: dict[str, dict[str, str]] = {}
    for t in tasks:
        for m, e in manifest["tasks"][t].items():
            cells.setdefault(m, {})[t] = (
                f"{_fmt(e.get('val_metric_paired'))} ({_fmt(e.get('val_metric_all'))})"
            )
    header = ", ".join(f"{t}: {get_task(t).primary_metric}" for t in tasks)
    return f"Validation, primary metric on paired units (all units): {header}\n\n" + markdown_table(
        cells, tasks, models
    )


def timing_table(manifest: dict[str, Any]) -> str:
    """Training and prediction seconds per model and task."""
    tasks, models = _order(manifest)
    cells: dict[str, dict[str, str]] = {}
    for t in tasks:
        for m, e in manifest["tasks"][t].items():
            cells.setdefault(m, {})[t] = (
                f"{e['train_seconds']:.0f} + {e['predict_seconds']:.0f} s "
                f"({e.get('epochs_run', 0)} ep)"
            )
    total = manifest.get("timings", {}).get("total_seconds")
    foot = f"\n\nTotal: {total / 60:.1f} min." if total else ""
    return (
        "Seconds to train + predict (epochs run)\n\n" + markdown_table(cells, tasks, models) + foot
    )


def _ci(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    lo, hi = (entry.get("ci") or [None, None])[:2]
    return f"{_fmt(entry['value'])} [{_fmt(lo)}, {_fmt(hi)}]"


def test_cell(report: Mapping[str, Any]) -> str:
    """``value [lo, hi]; drop d [lo, hi]`` from a score report."""
    primary = report["primary_metric"]
    main = report["scenarios"][report.get("main_scenario", "paired")]
    cell = _ci(main["metrics"].get(primary))
    drop = report.get("robustness", {}).get("drops", {}).get("cxr_missing_100")
    if drop:
        cell += f"; cxr_missing_100 {_ci(drop)}"
    return cell


def test_table(
    manifest: dict[str, Any],
    run_dir: Path,
    bench: Any,
    *,
    replicates: int,
    source: str = "predictions",
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Score every prediction file of the run (``source``: ``predictions`` made from the
    files, or ``stream`` through the gateway); returns the table and the reports."""
    import scoring
    from scoring.truth import truth_from_benchmark

    tasks, models = _order(manifest)
    cells: dict[str, dict[str, str]] = {}
    reports: dict[str, dict[str, Any]] = {}
    out = run_dir / ("scores" if source == "predictions" else "scores-stream")
    waiting: list[str] = []
    for t in tasks:
        truth = truth_from_benchmark(bench, t)
        for m in manifest["tasks"][t]:
            if not predictions_path(run_dir, t, m, source).is_file():
                waiting.append(f"{t} {m}")  # trained, not yet streamed (a run in progress)
                cells.setdefault(m, {})[t] = "no file yet"
                continue
            rep = scoring.score_predictions(
                predictions_path(run_dir, t, m, source), truth=truth, replicates=replicates
            )
            reports.setdefault(t, {})[m] = rep
            cells.setdefault(m, {})[t] = test_cell(rep)
            path = out / t / f"{m}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rep, sort_keys=True) + "\n")
    header = ", ".join(f"{t}: {get_task(t).primary_metric}" for t in tasks)
    how = "made from the files" if source == "predictions" else "through the streaming gateway"
    text = (
        f"Test ({how}), paired units, 95% CI ({replicates} patient-level bootstrap replicates); "
        f"and the change when every chest X-ray is withheld: {header}\n\n"
    )
    foot = ""
    if waiting:
        kind = "streamed prediction file" if source == "stream" else "prediction file"
        foot = f"\n\nNot scored, no {kind} yet: {', '.join(waiting)}."
    return text + markdown_table(cells, tasks, models) + foot, reports


def stream_difference_table(manifest: dict[str, Any], run_dir: Path) -> str:
    """Largest absolute difference between each model's streamed predictions and those it
    made from the files, over the rows both hold (every scenario)."""
    import pandas as pd

    tasks, models = _order(manifest)
    cells: dict[str, dict[str, str]] = {}
    for t in tasks:
        keys = [*get_task(t).key_columns, "scenario"]
        for m in manifest["tasks"][t]:
            if not predictions_path(run_dir, t, m, "stream").is_file():
                continue
            files = pd.read_csv(predictions_path(run_dir, t, m))
            streamed = pd.read_csv(predictions_path(run_dir, t, m, "stream"))
            both = files.merge(streamed, on=keys, suffixes=("_f", "_s"), validate="1:1")
            cols = [c for c in files.columns if c not in keys]
            diff = (both[[f"{c}_f" for c in cols]].to_numpy()
                    - both[[f"{c}_s" for c in cols]].to_numpy())  # fmt: skip
            same = len(both) == len(files) == len(streamed)
            cells.setdefault(m, {})[t] = (
                f"{abs(diff).max():.1e}"
                if same
                else f"rows differ ({len(files)} / {len(streamed)})"
            )
    return (
        "Streamed minus made from the files: largest absolute difference of a predicted "
        "probability, every scored row of every scenario\n\n" + markdown_table(cells, tasks, models)
    )


UNIMODAL = ("ehr", "cxr")


def _main(report: dict[str, Any], scenario: str | None = None) -> dict[str, Any]:
    section: dict[str, Any] = report["scenarios"][
        scenario or report.get("main_scenario", DEFAULT_SCENARIO)
    ]
    return section


def fusion_table(
    reports: dict[str, dict[str, dict[str, Any]]], *, scenario: str | None = None
) -> str:
    """Each fusion model against the task's best unimodal model (by point estimate) on the
    paired test units: the paired bootstrap difference of the primary metric (fusion minus
    unimodal, in the direction where larger is better) with its 95% CI and two-sided
    p-value. Every report of a task was scored on the same replicates.

    With ``scenario`` (for example ``cxr_missing_100``), every model and the best unimodal
    model are taken under that scenario instead of the main one: with every image withheld
    the best unimodal model is the EHR model, and the table says which fusion strategies
    keep their gain when the image is missing."""
    from scoring.ranking import paired_difference

    tasks = list(reports)
    cells: dict[str, dict[str, str]] = {}
    best_of: dict[str, str] = {}
    for t in tasks:
        by_model = reports[t]
        primary = get_task(t).primary_metric
        sign = 1.0 if METRICS[primary].greater_is_better else -1.0

        def value(rep: dict[str, Any], primary: str = primary, sign: float = sign) -> float:
            v = _main(rep, scenario)["metrics"].get(primary, {}).get("value")
            return -np.inf if v is None else sign * float(v)

        unimodal = [m for m in UNIMODAL if m in by_model]
        if not unimodal:
            continue
        best = max(unimodal, key=lambda m: value(by_model[m]))
        best_of[t] = best
        ref = np.asarray(_main(by_model[best], scenario)["replicates"], dtype=float)
        for m, rep in by_model.items():
            if m in UNIMODAL:
                continue
            reps = np.asarray(_main(rep, scenario)["replicates"], dtype=float)
            if reps.shape != ref.shape:
                cells.setdefault(m, {})[t] = "n/a (different replicates)"
                continue
            d = paired_difference(sign * reps, sign * ref)
            lo, hi = d["diff_ci"]
            diff = value(rep) - value(by_model[best])
            cells.setdefault(m, {})[t] = (
                f"{diff:+.3f} [{_fmt(lo, 3)}, {_fmt(hi, 3)}], p={_fmt(d['p'], 3)}"
                if lo is not None
                else "n/a"
            )
    models = [m for m in MODEL_NAMES if m in cells]
    header = ", ".join(f"{t}: {best_of[t]}" for t in tasks if t in best_of)
    where = "paired units" if scenario is None else f"scenario {scenario}"
    return (
        f"Fusion minus the best unimodal model, {where}, paired bootstrap 95% CI and "
        f"p-value (best unimodal model: {header})\n\n" + markdown_table(cells, tasks, models)
    )
