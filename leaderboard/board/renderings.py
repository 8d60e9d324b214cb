"""Renderings of a task's board: its page fragment and its API JSON, built from the
selectors' rows once per board key and parameters (``board_cache.cached_once``), and the one
parser of the board's query parameters that the page and the API share; and the results
part of an entry page, rendered once per scoring run.

The views and the worker (``services.boards.board_refresh``, which renders the default board
ahead of readers, and ``services.evaluations.evaluation_finish``, which renders a run's
results part as it records them) both call these; nothing here imports a view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypedDict
from urllib.parse import urlencode

from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils.html import format_html
from rest_framework.renderers import JSONRenderer

from benchmark_data.tasks import NATURAL_SCENARIO
from leaderboard.board.board_cache import (
    BoardKey,
    board_series,
    cached_once,
    json_params,
    leaderboard_rows,
    page_params,
    training_missingness_cached,
    training_missingness_key,
)
from leaderboard.board.models import Evaluation, Task, Track, modalities_label
from leaderboard.board.selectors.downloads import downloads_key, task_downloads
from leaderboard.board.selectors.leaderboard import (
    MODALITY_FILTERS,
    Board,
    board_forest_figure,
    board_state,
)
from scoring.disclosure import ReportView, participant_report
from scoring.report_reader import ReportFormatError, read_report

log = logging.getLogger(__name__)


class BoardFilters(TypedDict):
    """The filters and sort as keyword arguments of :func:`board_page_fragment` and
    :func:`board_json`."""

    track: str
    modality: str
    sort: str
    order: str


@dataclass(frozen=True)
class BoardQuery:
    """The board's checked query parameters: filters and sort."""

    track: str = ""
    modality: str = ""
    sort: str = "rank"
    order: str = ""

    def filters(self) -> BoardFilters:
        return {"track": self.track, "modality": self.modality, "sort": self.sort,
                "order": self.order}  # fmt: skip


class BoardQueryInvalid(ValueError):
    """Bad board parameters: ``errors`` maps each one to what is wrong and what to use."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def board_query(params: Mapping[str, str], task: Task) -> BoardQuery:
    """Check the board's query parameters (page and API alike)."""
    track = params.get("track", "")
    modality = params.get("modality", "").replace(" ", "+")
    sort = params.get("sort", "rank") or "rank"
    order = params.get("order", "")
    errors = {}
    if track and track not in (Track.PREDICTION_FILE, Track.CONTAINER):
        errors["track"] = f"unknown track {track!r}; use prediction-file or container"
    if modality not in MODALITY_FILTERS:
        errors["modality"] = f"unknown modality filter {modality!r}; use ehr, cxr or ehr+cxr"
    if sort not in ("rank", "primary", *task.spec.metrics):
        errors["sort"] = (
            f"cannot sort by {sort!r}; use rank or one of: {', '.join(task.spec.metrics)}"
        )
    if order not in ("", "asc", "desc"):
        errors["order"] = f"unknown order {order!r}; use asc or desc"
    if errors:
        raise BoardQueryInvalid(errors)
    return BoardQuery(track, modality, sort, order)


def board_rendering(
    task: Task,
    *,
    key: BoardKey,
    params: str,
    render: Callable[[Board], Any],
    filters: Mapping[str, str],
    claimed: bool = False,
    found: Mapping[str, Any] | None = None,
) -> Any:
    """A rendering of the task's board (``render`` of :func:`leaderboard_rows` for
    ``filters``), built once per board key and ``params`` (see :func:`page_params`,
    :func:`json_params`); ``claimed`` and ``found`` as for :func:`cached_once`."""

    def build() -> tuple[Any, bool]:
        state = key.state or board_state(task=task)
        board = leaderboard_rows(task=task, state=state, **filters)
        # Built from a newer board than the key says: served, not cached under the key.
        return render(board), board.fresh and state.key == key.key

    value, _ = cached_once(
        rendering_key(key, params),
        series=board_series(task.pk, params),
        build=build,
        claimed=claimed,
        found=found,
    )
    return value


def rendering_key(key: BoardKey, params: str) -> str:
    """The cache key of one rendering of a board (``params``: :func:`page_params`,
    :func:`json_params`)."""
    return f"{key.key}:{params}"


def board_json(
    task: Task,
    *,
    key: BoardKey,
    track: str = "",
    modality: str = "",
    sort: str = "rank",
    order: str = "",
    claimed: bool = False,
) -> bytes:
    """The board API's JSON for checked parameters. It is the same for every reader until
    the board changes: rendered once per board key and parameters (the worker renders the
    default one ahead of readers, ``services.boards.board_refresh``)."""
    filters = {"track": track, "modality": modality, "sort": sort, "order": order}
    return board_rendering(
        task,
        key=key,
        params=json_params(**filters),
        render=lambda board: JSONRenderer().render(board_payload(task, board)),
        claimed=claimed,
        filters=filters,
    )


def board_payload(task: Task, board: Board) -> dict[str, Any]:
    """The board API's JSON body."""
    return {
        "task": task.slug,
        "benchmark": {
            "name": task.benchmark.name,
            "version": task.benchmark.version,
            "hash": task.benchmark.manifest_hash,
        },
        "scorer_version": board.scorer_version,
        "primary_metric": board.primary_metric,
        "greater_is_better": task.greater_is_better,
        "metrics": board.metrics,
        "filters": {"track": board.track, "modality": board.modality},
        "sort": {"by": board.sort, "order": board.order},
        "awaiting_rescore": board.awaiting_rescore,
        "rows": [r.as_dict() for r in board.rows],
        "decision_rows": [r.as_dict() for r in board.decision_rows],
    }


BOARD_PAGE_ROWS = 100  # rows of the board page by default; ?all=1 shows every entry


def curve_modality(suite: Any) -> str:
    """What the robustness curve withholds (the suite's first withheld modality)."""
    m = suite.withheld_modality
    return m.title.lower() if m is not None else "no input"


def robustness_columns(suite: Any) -> list[dict[str, str]]:
    """The board's robustness columns for a suite: each withheld modality's change at its
    last level (MedMod: Δ no CXR), then each ablation's primary metric."""
    cols = []
    for m in suite.modalities:
        if m.withheld_levels:
            cols.append({
                "kind": "drop", "key": m.scenarios[-1], "title": f"Δ no {modalities_label([m.slug])}",
                "help": f"Change of the primary metric with the {m.title.lower()} withheld from every paired unit",
            })  # fmt: skip
    required = {m.slug for m in suite.modalities if m.required}
    for a in suite.ablations:
        shown = [s for s in a.modalities if s == "ehr" or s not in required] or list(a.modalities)
        cols.append({"kind": "ablation", "key": a.slug, "title": f"{modalities_label(shown)} only",
                     "help": f"Primary metric with these inputs only: {a.title}"})  # fmt: skip
    return cols


def board_page_fragment(
    task: Task,
    *,
    key: BoardKey,
    track: str = "",
    modality: str = "",
    sort: str = "rank",
    order: str = "",
    show_all: bool = False,
    claimed: bool = False,
    found: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The board page's content for checked parameters: {"html", "has_forest"}.

    It holds nothing user-specific (the navigation and login are in the base template), so
    it is rendered once per board key, filters, sort and page size, and the worker renders
    the default one ahead of readers (``services.boards.board_refresh``). ``claimed`` and
    ``found`` as for :func:`cached_once`.
    """
    query = _page_query(track=track, modality=modality, sort=sort, order=order)

    def render(board: Board) -> dict[str, Any]:
        shown = board.rows if show_all else board.rows[:BOARD_PAGE_ROWS]
        forest = board_forest_figure(replace(board, rows=shown))
        html = render_to_string(
            "board/task_board_content.html",
            {
                "task": task,
                "board": board,
                "shown_rows": shown,
                "more_rows": len(board.rows) > len(shown),
                "show_all": show_all,
                "forest": forest,
                "secondary": [m for m in board.metrics if m != board.primary_metric],
                "robustness_columns": robustness_columns(task.benchmark.suite_declaration),
                "audc_modality": curve_modality(task.benchmark.suite_declaration),
                "tracks": Track.objects.all(),
                "modalities": MODALITY_FILTERS,
                "metric_names": board.metrics,
                "query": query,
            },
        )
        return {"html": html, "has_forest": bool(forest)}

    return board_rendering(
        task,
        key=key,
        params=page_params(query, show_all),
        render=render,
        claimed=claimed,
        found=found,
        filters={"track": track, "modality": modality, "sort": sort, "order": order},
    )


def _page_query(*, track: str, modality: str, sort: str, order: str) -> str:
    """The canonical query string of the board page's filters and sort."""
    return urlencode(
        [(k, v) for k, v in (("track", track), ("modality", modality), ("order", order)) if v]
        + ([("sort", sort)] if sort != "rank" else [])
    )


def board_page(
    task: Task, *, key: BoardKey, query: BoardQuery, show_all: bool = False
) -> dict[str, Any]:
    """What a task's board page shows under its header, for checked parameters (``query``,
    from :func:`board_query`): the board's content ({"html", "has_forest"}:
    :func:`board_page_fragment`), the task's downloads (``downloads``) and its
    training-missingness curve (``train_missing``).

    The three are cached apart (per board key, per release, per board generation) and read
    here in one round trip to the cache; each one missing is then built as its own function
    builds it.
    """
    filters = query.filters()
    keys = [
        rendering_key(key, page_params(_page_query(**filters), show_all)),
        downloads_key(task.benchmark),
        training_missingness_key(task=task, generation=key.generation),
    ]
    found = cache.get_many(keys)
    fragment = board_page_fragment(task, key=key, show_all=show_all, found=found, **filters)
    return {
        **fragment,
        "downloads": task_downloads(task=task, found=found),
        "train_missing": training_missingness_cached(
            task=task, generation=key.generation, found=found
        ),
    }


# The summaries of a fairness attribute, shown under its table of groups.
FAIRNESS_SUMMARIES = (
    ("worst_group", "Worst group"),
    ("gap", "Gap (best − worst group)"),
    ("demographic_parity_ratio", "Demographic parity ratio"),
    ("equalized_odds_ratio", "Equalized odds ratio"),
    ("suppressed_groups", "Groups not shown (too small)"),
)


# Per-group figures at the threshold and of calibration, in the order of their table.
GROUP_RATE_KEYS = ("tpr", "fpr", "selection_rate", "ece")


def _fairness_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """An attribute's (or intersection's) groups and the summaries under its table."""
    summaries = [
        {
            "key": key,
            "label": label,
            "value": entry[key],
            "is_estimate": isinstance(entry[key], dict),
        }  # fmt: skip
        for key, label in FAIRNESS_SUMMARIES
        if entry.get(key) is not None
    ]
    return {"groups": entry["groups"], "summaries": summaries, "scenario": entry.get("scenario")}


def report_sections(view: ReportView) -> dict[str, Any]:
    """What the entry page shows of a report (its participant view), in display order."""
    main = view["main_scenario"]
    scenarios = view["scenarios"]
    primary = view["primary_metric"]
    robustness = view["robustness"]
    # The suite's scenario order (the report's scenario dict is stored with sorted keys).
    order = [*robustness["scenarios_scored"], NATURAL_SCENARIO]
    order += sorted(set(scenarios) - set(order))
    drops = dict(robustness["drops"])
    for curve in (robustness.get("modalities") or {}).values():
        drops.update(curve["drops"])
    rows = [
        {
            "name": name,
            "metric": sec["metrics"].get(primary),
            "n_units": sec["n_units"],
            "n_patients": sec["n_patients"],
            "degenerate": sec["degenerate_replicates"].get(primary),
            "drop": drops.get(name),
        }
        for name in dict.fromkeys(order)
        if (sec := scenarios.get(name)) is not None
    ]
    main_sec = scenarios[main]
    per_label = main_sec.get("per_label") or {}
    label_metrics = list(dict.fromkeys(m for vals in per_label.values() for m in vals))
    fairness = view["fairness"]
    attributes = [
        {"name": attr, **_fairness_entry(entry)} for attr, entry in fairness["attributes"].items()
    ]
    intersections = [
        {"name": key.replace(" x ", " × "), **_fairness_entry(entry)}
        for key, entry in fairness["intersections"].items()
    ]
    # Per-group error rates and calibration (binary tasks, reports of version 2 on).
    rates = [
        {"attribute": a["name"], "group": g, **v}
        for a in attributes
        for g, v in a["groups"].items()
        if any(k in v for k in GROUP_RATE_KEYS) or v.get("suppressed_metrics")
    ]
    return {
        "main": main,
        "primary": primary,
        "metrics": main_sec["metrics"],
        "scenarios": rows,
        "per_label": per_label,
        "label_metrics": label_metrics,
        "fairness": fairness,
        "fairness_attributes": attributes,
        "fairness_intersections": intersections,
        "fairness_rates": rates,
        "missing_images": fairness.get("missing_images"),
        "robustness": robustness,
        "several_modalities": len(robustness.get("modalities") or {}) > 1,
        "ablations": robustness.get("ablations") or [],
        "plots": view["plots"],
    }


ENTRY_REPORT_SECONDS = 7 * 24 * 3600
REPORT_UNREADABLE = (
    '<p class="notice" id="report-unreadable">The score report of this run cannot be shown '
    "({message}); ask the organizers to re-score the entry, which writes a new one.</p>"
)


def entry_report_html(evaluation: Evaluation) -> dict[str, Any] | None:
    """The results part of an entry page: {"html", "has_plots"}, or None without a report.

    A finished run's report never changes, so it is rendered once per run and cached; the
    report itself is only read then (the page's selectors leave it out).
    """
    finished = evaluation.finished_at.timestamp() if evaluation.finished_at else 0
    key = f"entry-report:v2:{evaluation.pk}:{finished}"
    succeeded = evaluation.status == Evaluation.Status.SUCCEEDED
    cached = cache.get(key) if succeeded else None
    if cached is not None:
        return cached
    if not evaluation.report:
        return None
    try:
        report = read_report(evaluation.report)
    except ReportFormatError as exc:
        log.error("run %s: its stored report cannot be read: %s", evaluation.pk, exc.message)
        return {"html": format_html(REPORT_UNREADABLE, message=exc.message), "has_plots": False}
    sections = report_sections(participant_report(report))
    cached = {
        "html": render_to_string("board/entry_report.html", {"sections": sections}),
        "has_plots": bool(sections["plots"]),
    }
    if succeeded:
        cache.set(key, cached, ENTRY_REPORT_SECONDS)
    return cached
