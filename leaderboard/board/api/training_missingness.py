"""``/api/tasks/<slug>/training-missingness/``: the figures of the task's
training-missingness curve (reference models only; docs/baselines.md)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from leaderboard.board.board_cache import training_missingness_cached
from leaderboard.board.models import DEFAULT_SUITE
from leaderboard.board.selectors.submissions import task_get


class TrainingMissingnessView(APIView):
    """Test primary metric (with its 95% CI, as published) of the reference models against
    the share of training stays whose chest X-rays were withheld, per test scenario; the
    plotly figure of the task board. ``models`` is empty when no sweep is on the task."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, slug: str, suite: str = DEFAULT_SUITE):
        task = task_get(slug=slug, suite=suite)
        view = training_missingness_cached(task=task)
        if view is None:
            return Response({"task": task.slug, "metric": task.primary_metric, "models": [],
                             "figure": None})  # fmt: skip
        return Response({**view["curve"], "figure": view["figure"]})
