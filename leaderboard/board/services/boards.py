"""Keeping the cached leaderboards current: writes mark them changed, the worker rebuilds.

Every write to an entry or a run replaces the board generation once its transaction
commits (:func:`board_changed`, called by the model signals), so readers stop trusting the
board keys they kept (``board_cache.board_key``). A change that moves a board (a
run that published an entry, a publication, a withdrawal, a hidden entry) also asks the
worker to rebuild that task's board and its default page and API renderings
(:func:`board_refresh_later`), so the readers that follow find them in the cache instead
of one of them paying for the build. Both are only worth doing with a cache shared by the
web processes and the worker (``BOARD_CACHE_SHARED``).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from leaderboard.board.board_cache import (
    BOARD_GENERATION_KEY,
    BoardKey,
    board_build_claim,
    board_build_release,
    board_generation,
    board_key_remember,
    ranked_board,
    training_missingness_cached,
)
from leaderboard.board.models import Task
from leaderboard.board.renderings import board_json, board_page_fragment
from leaderboard.board.selectors.leaderboard import board_state

log = logging.getLogger(__name__)


def _new_generation() -> None:
    try:
        cache.set(BOARD_GENERATION_KEY, uuid.uuid4().hex, None)
    except Exception:  # the cache is down: readers fall back to the key query anyway
        log.exception("could not mark the leaderboards changed")


def board_changed() -> None:
    """Mark every board changed once the current transaction commits: readers read their
    keys again on their next request."""
    if settings.BOARD_KEY_SECONDS > 0:
        transaction.on_commit(_new_generation)


def _send_refresh(task_id: int) -> None:
    from leaderboard.board.tasks import board_refresh_task

    try:
        board_refresh_task.apply_async(args=(task_id,), retry=False)
    except Exception:  # the broker is down: the next reader builds the board instead
        log.warning("could not ask the worker to rebuild the board of task %s", task_id)
        board_build_release(task_pk=task_id)


def board_refresh_later(*, task_id: int) -> None:
    """Ask the worker to rebuild the board of a task once the current transaction commits,
    and claim the builds for it now: until it has rebuilt them, readers get the previous
    board instead of building the new one themselves."""
    if settings.BOARD_CACHE_SHARED:
        try:
            board_build_claim(task_pk=task_id)
        except Exception:
            log.exception("could not claim the rebuild of the board of task %s", task_id)
        transaction.on_commit(lambda: _send_refresh(task_id))


def board_refresh(*, task_id: int) -> dict[str, Any]:
    """Build the ranked board of a task and render its default page content and API JSON
    into the cache; what is there already is kept. Returns the key and what it took."""
    t0 = time.perf_counter()
    task = Task.objects.select_related("benchmark").get(pk=task_id)
    generation = board_generation()  # before the key query, as readers do
    state = board_state(task=task)
    board_key_remember(task=task, generation=generation, key=state.key)
    try:  # the builds were claimed for this refresh (or nobody holds them): build them
        _, fresh = ranked_board(state, claimed=True)
        key = BoardKey(state.key, state)
        board_page_fragment(task, key=key, claimed=True)
        board_json(task, key=key, claimed=True)
        training_missingness_cached(task=task)  # the robustness section under the board
    finally:
        board_build_release(task_pk=task.pk)
    seconds = time.perf_counter() - t0
    log.info("board of %s: %s in %.2f s", task.slug, state.key, seconds)
    return {"task": task.slug, "key": state.key, "fresh": fresh, "seconds": round(seconds, 3)}
