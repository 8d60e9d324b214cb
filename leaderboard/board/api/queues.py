"""The scoring queues and the re-scores through the API.

``GET /api/queue/``: per task queue, the counts (public) and waiting times; for a signed-in
caller, their own waiting or running entries with their place. ``GET /api/rescores/`` and
``/api/rescores/<id>/`` (staff): re-scores with their progress, skipped entries and, once
finished, the entries whose rank changed.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leaderboard.board.models import RescoreRun
from leaderboard.board.selectors.queues import queue_overview
from leaderboard.board.services.rescoring import rescore_run_summary

RESCORE_LIST_LIMIT = 50


class QueueView(APIView):
    """The scoring queues: totals, one queue per task (waiting, running, re-score runs in
    flight, longest current wait and typical wait of a new entry, in seconds) and, for a
    signed-in caller, their own entries in the queues (``yours``: place and time so far)."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response(queue_overview(viewer=request.user))


class RescoreRunListView(APIView):
    """Staff: the latest re-scores, newest first, with their progress (no rank changes:
    see each one)."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        runs = RescoreRun.objects.select_related("requested_by")[:RESCORE_LIST_LIMIT]
        items = []
        for run in runs:
            item = rescore_run_summary(run=run)
            item["rank_changes"] = None if run.rank_changes is None else len(run.rank_changes)
            item["skipped"] = len(run.skipped)
            items.append(item)
        return Response({"results": items})


class RescoreRunDetailView(APIView):
    """Staff: one re-score: counts (total, done, failed, running, waiting), the entries it
    skipped and why, and once finished the entries whose rank changed per task (entry, old
    rank, new rank, whether it was among those re-scored)."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        run = RescoreRun.objects.select_related("requested_by").filter(pk=pk).first()
        if run is None:
            raise Http404(f"no re-score {pk}: the list is at /api/rescores/")
        return Response(rescore_run_summary(run=run))
