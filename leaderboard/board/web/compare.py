"""The compare page: two to five entries of a task side by side (thin over the selector)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from leaderboard.board.models import DEFAULT_SUITE
from leaderboard.board.selectors.compare import (
    LEVEL,
    MAX_ENTRIES,
    MIN_ENTRIES,
    ComparisonRefused,
    compare_query_parse,
    entries_compare,
)
from leaderboard.board.selectors.significance import N_PERMUTATIONS
from leaderboard.board.selectors.submissions import task_get


def task_compare(request: HttpRequest, slug: str, suite: str = DEFAULT_SUITE) -> HttpResponse:
    """``?entries=<id>,<id>[,...]`` (or ``entries`` repeated, as the board's tick boxes send
    them) and ``?reference=<id>``. A refused comparison is a 400 page saying what to change;
    an entry the viewer may not see is the 404 of a missing one."""
    task = task_get(slug=slug, suite=suite)
    context = {"task": task, "min_entries": MIN_ENTRIES, "max_entries": MAX_ENTRIES}
    try:
        ids, reference = compare_query_parse(
            entries=request.GET.getlist("entries"), reference=request.GET.get("reference")
        )
        comparison = entries_compare(
            task=task, entry_ids=ids, reference=reference, viewer=request.user
        )
    except ComparisonRefused as exc:
        return render(request, "board/compare.html", {**context, "error": exc.message}, status=400)
    context.update(
        comparison=comparison,
        ref=comparison.reference_entry,
        others=[e for e in comparison.entries if e.entry_id != comparison.reference],
        replicates=settings.SCORING_REPLICATES,
        significance=round(1 - LEVEL, 2),
        n_permutations=f"{N_PERMUTATIONS:,}",
    )
    return render(request, "board/compare.html", context)
