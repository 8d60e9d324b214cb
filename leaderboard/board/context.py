"""Template context shared by every page."""

from __future__ import annotations

from leaderboard.board.selectors.submissions import task_list


def navigation(request):
    return {"nav_tasks": task_list()}
