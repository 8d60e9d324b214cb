"""Template context shared by every page."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.urls import reverse

from leaderboard.board.models import DEFAULT_SUITE
from leaderboard.board.selectors.submissions import benchmark_tasks, suite_benchmarks

NAV_TASKS_KEY = "nav:v3:tasks"


def short_title(title: str) -> str:
    """A suite's name for the menu: its title up to a colon or parenthesis.

    >>> short_title("MIMIC-Multimodal (Yu et al. 2025)"), short_title("MEDFuse: lab tests")
    ('MIMIC-Multimodal', 'MEDFuse')
    """
    return re.split(r"[:(]", title, maxsplit=1)[0].strip() or title


def _nav_tasks() -> list[dict[str, Any]]:
    """The default suite's boards, then one entry per other suite (its section of the home
    page, which lists its boards): the menu stays one line however many suites there are."""
    out: list[dict[str, Any]] = []
    for bench in suite_benchmarks():
        if bench.suite.slug == DEFAULT_SUITE:
            out += [{"slug": t.slug, "title": t.title, "url": t.board_url} for t in benchmark_tasks(benchmark=bench)]  # fmt: skip
        else:
            url = reverse("home") + f"#suite-{bench.suite.slug}"
            out.append({"slug": bench.suite.slug, "title": short_title(bench.suite.title), "url": url})  # fmt: skip
    return out


def navigation(request):
    """The tasks of every suite's current benchmark, for the menu of every page (cached briefly: the
    query would otherwise run on every request)."""
    return {"nav_tasks": cache.get_or_set(NAV_TASKS_KEY, _nav_tasks, settings.NAV_TASKS_SECONDS)}
