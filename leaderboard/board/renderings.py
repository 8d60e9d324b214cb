"""Renderings of a task's board: its page fragment and its API JSON, built from the
selectors' rows once per board key and parameters (``board_cache.cached_once``), and the one
parser of the board's query parameters that the page and the API share.

The views and the worker (``services.boards.board_refresh``, which renders the default ones
ahead of readers) both call these; nothing here imports a view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypedDict
from urllib.parse import urlencode

from django.template.loader import render_to_string
from rest_framework.renderers import JSONRenderer

from leaderboard.board.board_cache import (
    BoardKey,
    board_series,
    cached_once,
    json_params,
    leaderboard_rows,
    page_params,
)
from leaderboard.board.models import Task, Track, modalities_label
from leaderboard.board.selectors.leaderboard import (
    MODALITY_FILTERS,
    Board,
    board_forest_figure,
    board_state,
)


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
    claimed: bool = False,
    **filters: str,
) -> Any:
    """A rendering of the task's board (``render`` of :func:`leaderboard_rows` for
    ``filters``), built once per board key and ``params`` (see :func:`page_params`,
    :func:`json_params`); ``claimed`` as for :func:`cached_once`."""

    def build() -> tuple[Any, bool]:
        state = key.state or board_state(task=task)
        board = leaderboard_rows(task=task, state=state, **filters)
        # Built from a newer board than the key says: served, not cached under the key.
        return render(board), board.fresh and state.key == key.key

    value, _ = cached_once(
        f"{key.key}:{params}", series=board_series(task.pk, params), build=build, claimed=claimed
    )
    return value


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
        **filters,
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
) -> dict[str, Any]:
    """The board page's content for checked parameters: {"html", "has_forest"}.

    It holds nothing user-specific (the navigation and login are in the base template), so
    it is rendered once per board key, filters, sort and page size, and the worker renders
    the default one ahead of readers (``services.boards.board_refresh``).
    """
    query = urlencode(
        [(k, v) for k, v in (("track", track), ("modality", modality), ("order", order)) if v]
        + ([("sort", sort)] if sort != "rank" else [])
    )

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
        track=track,
        modality=modality,
        sort=sort,
        order=order,
    )
