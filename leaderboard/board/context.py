"""Template context shared by every page."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from leaderboard.board.selectors.submissions import suite_benchmarks, task_list

NAV_TASKS_KEY = "nav:v2:tasks"
NAV_TASKS_SECONDS = 60  # a newly current benchmark's tasks are in the menu within a minute


def _nav_tasks() -> list[dict[str, Any]]:
    return [
        {"slug": t.slug, "title": t.title, "url": t.board_url}
        for bench in suite_benchmarks()
        for t in task_list(benchmark=bench)
    ]


def navigation(request):
    """The tasks of every suite's current benchmark, for the menu of every page (cached briefly: the
    query would otherwise run on every request)."""
    return {"nav_tasks": cache.get_or_set(NAV_TASKS_KEY, _nav_tasks, NAV_TASKS_SECONDS)}
