"""The scoring queues page: one queue per task, with counts and waiting times for everyone
and, for a signed-in participant, the places of their own entries."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from leaderboard.board.selectors.queues import queue_overview


def queue_page(request: HttpRequest) -> HttpResponse:
    return render(request, "board/queue.html", {"overview": queue_overview(viewer=request.user)})
