"""The training-missingness curve of a task: test performance of the platform's reference
models against the share of training stays whose chest X-rays were withheld.

Its points are reference entries only: the ordinary entry of a model (rate 0) and its
variants from the sweep (``Submission.train_missing_rate``; ``python -m scoring.baselines
sweep``, docs/baselines.md). Each point is the entry's current run, read as the public sees
it (:func:`scoring.disclosure.participant_report`: figures rounded as on the board), in the
scenarios :data:`SCENARIOS`. Variants are never ranked on the board (``board_state``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.cache import cache

from benchmark_data.tasks import METRICS
from leaderboard.board.models import Evaluation, Submission, Task
from leaderboard.board.selectors.submissions import current_scorer_version
from scoring.disclosure import participant_report
from scoring.report_reader import ReportFormatError, read_report

# Both images at test time (does a model still use the images it saw fewer of?) and none
# (does training without images teach a model to do without them?): the two ends of the
# test-time scenarios of the board's Δ column.
SCENARIOS = ("paired", "cxr_missing_100")
SCENARIO_TITLES = {
    "paired": "Test stays with their chest X-ray (paired)",
    "cxr_missing_100": "Test stays without their chest X-ray (cxr_missing_100)",
}
CACHE_SECONDS = 3600


def variant_method_name(method_name: str, rate: float) -> str:
    """What a sweep variant of a reference model is called: ``Joint fusion (training
    images withheld: 30%)``."""
    return f"{method_name} (training images withheld: {rate:.0%})"


def _current(task: Task) -> Any:
    return Evaluation.objects.filter(
        status=Evaluation.Status.SUCCEEDED,
        scorer_version=current_scorer_version(),
        benchmark_hash=task.benchmark.manifest_hash,
        replicates=settings.SCORING_REPLICATES,
    )


def _latest_runs(task: Task, subs: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """The current run of each entry (submission id -> evaluation id)."""
    out: dict[int, int] = {}
    rows = (
        _current(task)
        .filter(submission_id__in=[s["pk"] for s in subs])
        .order_by("submission_id", "-created_at", "-id")
        .values_list("submission_id", "id")
    )
    for sub_id, ev_id in rows:
        out.setdefault(sub_id, ev_id)
    return out


def _points(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The entry's primary metric per scenario of :data:`SCENARIOS`, as published."""
    try:
        view = participant_report(read_report(report))
    except ReportFormatError:
        return {}
    curve = (view.get("robustness") or {}).get("curve") or []
    by_scenario = {p.get("scenario"): p for p in curve}
    out = {}
    for scenario in SCENARIOS:
        p = by_scenario.get(scenario)
        if p is not None and p.get("value") is not None:
            out[scenario] = {"value": p["value"], "ci": list(p.get("ci") or [None, None])}
    return out


def training_missingness_curve(*, task: Task) -> dict[str, Any] | None:
    """Per reference model with sweep variants on ``task``: its published test figures at
    training-time missingness 0 (its ordinary entry) and at each rate of the sweep, in each
    scenario. None when the task has no scored variant."""
    published = Submission.objects.filter(
        task=task, is_reference=True, status=Submission.Status.PUBLISHED
    )
    subs = list(
        published.order_by("pk").values("pk", "public_id", "method_name", "train_missing_rate")
    )
    variants = [s for s in subs if s["train_missing_rate"] is not None]
    if not variants:
        return None
    bases = {s["method_name"]: s for s in subs if s["train_missing_rate"] is None}
    models: dict[str, list[Mapping[str, Any]]] = {}
    for v in variants:
        rate = v["train_missing_rate"]
        if rate is None:  # variants all have a rate
            continue
        base = next(
            (name for name in bases if variant_method_name(name, rate) == v["method_name"]), None
        )
        if base is not None:
            models.setdefault(base, []).append(v)
    runs = _latest_runs(task, [s for group in models.values() for s in group] +
                        [bases[name] for name in models])  # fmt: skip
    if not runs:
        return None
    digest = hashlib.sha256(repr(sorted(runs.items())).encode()).hexdigest()[:32]
    key = f"train-missing:v1:{task.pk}:{current_scorer_version()}:{digest}"
    cached = cache.get(key)
    if cached is not None:
        return dict(cached)
    reports = dict(Evaluation.objects.filter(pk__in=runs.values()).values_list("pk", "report"))
    lines = []
    for name in sorted(models):
        entries = [bases[name], *sorted(models[name], key=lambda s: s["train_missing_rate"])]
        points = []
        for s in entries:
            ev = runs.get(s["pk"])
            figures = _points(reports.get(ev) or {}) if ev else {}
            if figures:
                points.append({"rate": float(s["train_missing_rate"] or 0.0),
                               "entry_id": s["public_id"], "scenarios": figures})  # fmt: skip
        if len(points) > 1:
            lines.append({"method_name": name, "points": points})
    if not lines:
        return None
    metric = task.primary_metric
    spec = METRICS.get(metric)
    curve = {
        "task": task.slug,
        "metric": metric,
        "metric_title": spec.title if spec else metric,
        "scenarios": list(SCENARIOS),
        "scenario_titles": dict(SCENARIO_TITLES),
        "models": lines,
        "note": (
            "Reference models trained with the chest X-rays of a seeded share of the training "
            "and validation stays withheld (CareBench's protocol; test split untouched). Rate 0 "
            "is the model's entry on the board; figures as published, with their 95% CIs."
        ),
    }
    cache.set(key, curve, CACHE_SECONDS)
    return curve


def training_missingness_view(*, task: Task) -> dict[str, Any] | None:
    """The curve and its figure for the task board's robustness section (None: no sweep)."""
    from leaderboard.board.sweep_plots import training_missingness_figure

    curve = training_missingness_curve(task=task)
    if curve is None:
        return None
    return {"curve": curve, "figure": training_missingness_figure(curve)}
