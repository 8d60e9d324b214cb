"""The board cache: what readers and the worker share about a task's board.

The ranked board of a task is cached under a key that hashes everything its rows depend on
(``selectors.leaderboard.board_state``). With a shared cache (Redis) readers keep each
task's current key in the cache too (:func:`board_key`), stamped with the **board
generation**, a token that every write to an entry or a run replaces
(``services.boards.board_changed``, on commit): a key stamped with an older generation, or
older than ``BOARD_KEY_SECONDS``, is read again. A value is built at most once at a time per
series (:func:`cached_once`); the worker claims the builds of a board it is about to rebuild
(:func:`board_build_claim`) so that readers get the previous board meanwhile.

Reads only through the selectors; renders nothing (``renderings``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from leaderboard.board.models import Task
from leaderboard.board.selectors.leaderboard import (
    Board,
    BoardState,
    board_state,
    build_ranked,
    rendering_fingerprint,
    row_matches,
    sort_rows,
)

BOARD_CACHE_SECONDS = 24 * 3600
BUILD_LOCK_SECONDS = 60
BUILD_WAIT_SECONDS = 10.0
BUILD_CLAIM_SECONDS = 30


BOARD_GENERATION_KEY = "board:v2:generation"


def board_generation() -> str:
    """The current board generation (a token replaced by every write to an entry or a
    run); made when the cache has none."""
    generation = cache.get(BOARD_GENERATION_KEY)
    if generation is None:
        cache.add(BOARD_GENERATION_KEY, uuid.uuid4().hex, None)
        generation = cache.get(BOARD_GENERATION_KEY)
    return str(generation)


def _key_pointer(task_pk: int) -> str:
    return f"board:v2:{task_pk}:current"


@dataclass
class BoardKey:
    """The cache key of a task's board, its state when it was read for this request, and
    the board generation it was read under (None without a shared cache)."""

    key: str
    state: BoardState | None = None
    generation: str | None = None


def board_key(*, task: Task) -> BoardKey:
    """The key of the task's current board: from the cache when it was read since the last
    write (``BOARD_KEY_SECONDS`` > 0, a shared cache), else by the key query."""
    seconds = settings.BOARD_KEY_SECONDS
    if seconds <= 0:
        state = board_state(task=task)
        return BoardKey(state.key, state)
    pointer = _key_pointer(task.pk)
    found: dict[str, Any] = cache.get_many([BOARD_GENERATION_KEY, pointer])
    generation = found.get(BOARD_GENERATION_KEY) or board_generation()
    stamped = found.get(pointer)
    if stamped and stamped[0] == generation:
        return BoardKey(stamped[1], generation=generation)
    state = board_state(task=task)  # read after the generation: a write meanwhile replaces it
    board_key_remember(task=task, generation=generation, key=state.key)
    return BoardKey(state.key, state, generation)


def board_key_remember(*, task: Task, generation: str, key: str) -> None:
    """Keep a task's board key, read under ``generation`` (read before the key query)."""
    if settings.BOARD_KEY_SECONDS > 0:
        cache.set(_key_pointer(task.pk), (generation, key), settings.BOARD_KEY_SECONDS)


def board_ranks(*, task: Task) -> dict[int, int]:
    """The rank of every ranked entry of a task's board as the database holds it now
    (submission pk -> rank; decision-only entries by their own ranking): the cached board
    when it is the current one, else built here, never the previous board."""
    state = board_state(task=task)
    ranked = cache.get(state.key) or build_ranked(state)
    return {
        r.submission_id: r.rank
        for r in ranked["rows"] + ranked["decision_rows"]
        if r.rank is not None
    }


def board_series(task_pk: int, params: str = "") -> str:
    """The name of a series of cached values of a task's board: the ranked board itself
    (no ``params``), or one rendering of it (``params``: see :func:`page_params` and
    :func:`json_params`)."""
    return f"board:v2:{task_pk}" + (f":{params}" if params else "")


def page_params(query: str = "", show_all: bool = False) -> str:
    """The cache parameters of the board page for a canonical query string."""
    return f"html:{query}:{int(show_all)}"


def json_params(*, track: str = "", modality: str = "", sort: str = "rank", order: str = "") -> str:
    """The cache parameters of the board API's JSON."""
    return f"json:{modality}:{order}:{sort}:{track}"


def _lock(series: str) -> str:
    return f"{series}:building"


def board_build_claim(*, task_pk: int) -> None:
    """Claim the builds of a task's board and of its default page and JSON before a change
    commits, for the worker that will rebuild them (``services.boards.board_refresh``):
    until it has, readers get the previous board instead of building the new one. A claim
    that is not released expires after ``BUILD_CLAIM_SECONDS``."""
    for series in _claimed_series(task_pk):
        cache.add(_lock(series), "claimed", BUILD_CLAIM_SECONDS)


def board_build_release(*, task_pk: int) -> None:
    cache.delete_many([_lock(series) for series in _claimed_series(task_pk)])


def _claimed_series(task_pk: int) -> list[str]:
    return [
        board_series(task_pk),
        board_series(task_pk, page_params()),
        board_series(task_pk, json_params()),
    ]


def cached_once(
    key: str,
    *,
    series: str,
    build: Callable[[], tuple[Any, bool]],
    claimed: bool = False,
    found: Mapping[str, Any] | None = None,
) -> tuple[Any, bool]:
    """The cached value under ``key``, built at most once at a time per ``series``.

    ``series`` names the successive values of one thing (the ranked board of a task, its
    HTML or JSON for some parameters); its latest value is remembered. On a miss, the
    request that takes the series' build lock builds the value and caches it; requests
    arriving meanwhile get the series' previous value (a board at most one build old)
    rather than each building it again, and wait for the build only when there is none.
    ``claimed``: the caller holds the lock already (:func:`board_build_claim`) and builds.
    ``build`` returns (value, fresh); a value built from a stale input is returned but not
    cached under ``key``. ``found``: cache values the caller has read already in one round
    trip (a key missing from it is a miss). Returns (value, fresh).
    """
    value = found.get(key) if found is not None else cache.get(key)
    if value is not None:
        return value, True
    latest, lock = f"{series}:latest", _lock(series)
    if not claimed and not cache.add(lock, key, BUILD_LOCK_SECONDS):
        previous = cache.get(latest)
        value = cache.get(previous) if previous else None
        if value is not None:
            return value, False
        deadline = time.monotonic() + BUILD_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.05)
            value = cache.get(key)
            if value is not None:
                return value, True
        return build()
    try:
        value, fresh = build()
        if fresh:
            cache.set_many({key: value, latest: key}, BOARD_CACHE_SECONDS)
    finally:
        cache.delete(lock)
    return value, fresh


def ranked_board(state: BoardState, *, claimed: bool = False) -> tuple[dict[str, Any], bool]:
    """The ranked board of ``state`` (from the cache, built once per key), and whether it
    is the board of ``state`` (False: the previous board, served while another request
    builds this one)."""
    return cached_once(
        state.key,
        series=board_series(state.task.pk),
        build=lambda: (build_ranked(state), True),
        claimed=claimed,
    )


def leaderboard_rows(
    *,
    task: Task,
    track: str = "",
    modality: str = "",
    sort: str = "rank",
    order: str = "",
    state: BoardState | None = None,
) -> Board:
    """The board of a task: ranked rows (all published entries are ranked together; the
    filters only choose which rows are shown), decision-only entries apart.

    One query when the ranked board is cached (the key query, :func:`board_state`; pass
    ``state`` when it has been read already), two when it is built, whatever the number of
    entries.
    """
    state = state or board_state(task=task)
    ranked, fresh = ranked_board(state)
    rows = sort_rows(
        [r for r in ranked["rows"] if row_matches(r, track=track, modality=modality)],
        sort=sort,
        order=order,
    )
    decision = [
        r for r in ranked["decision_rows"] if row_matches(r, track=track, modality=modality)
    ]
    return Board(
        task=task,
        scorer_version=state.scorer_version,
        primary_metric=task.primary_metric,
        metrics=list(task.spec.metrics),
        rows=rows,
        decision_rows=decision,
        awaiting_rescore=ranked["awaiting"],
        sort=sort or "rank",
        order=order,
        track=track,
        modality=modality,
        key=state.key,
        fresh=fresh,
    )


def training_missingness_key(*, task: Task, generation: str | None = None) -> str:
    """The cache key of a task's training-missingness view under the board generation
    (read here when not given)."""
    generation = generation or board_generation()
    return f"train-missing:v2:{task.pk}:{generation}:{rendering_fingerprint()}"


def training_missingness_cached(
    *, task: Task, generation: str | None = None, found: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The task's training-missingness curve and figure
    (:func:`~leaderboard.board.selectors.training_missingness.training_missingness_view`),
    kept under the board generation (``generation``: as read for this request): a reader of
    an unchanged board makes no query for it, and every write to an entry or a run makes
    the next reader build it again. ``found`` as for :func:`cached_once`."""
    from leaderboard.board.selectors.training_missingness import training_missingness_view

    key = training_missingness_key(task=task, generation=generation)
    cached = found.get(key) if found is not None else cache.get(key)
    if cached is not None:
        view: dict[str, Any] | None = cached["view"]
        return view
    view = training_missingness_view(task=task)
    cache.set(key, {"view": view}, settings.BOARD_KEY_SECONDS)
    return view
