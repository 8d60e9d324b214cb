"""The comparison of two to five entries of a task: parse, call the selector, serialize."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from leaderboard.board.models import DEFAULT_SUITE
from leaderboard.board.selectors.compare import (
    MAX_ENTRIES,
    MIN_ENTRIES,
    compare_query_parse,
    entries_compare,
)
from leaderboard.board.selectors.submissions import task_get

ERROR_EXAMPLE = {"detail": "…what is wrong and what to change…", "code": "invalid_comparison"}


class CompareView(APIView):
    """Entries of one task side by side: every metric with its 95% CI per entry, and the
    paired bootstrap difference of the primary metric to a reference entry (CI, p-value,
    significance at 0.05) per scenario and per subgroup, from the replicates stored when
    each entry was scored; per scenario also the p-values of a paired permutation test
    (``p_permutation``) and, for an AUROC with one unit per patient, of DeLong's test
    (``p_delong``). A difference under one rounding step carries no CI or p-value
    (``withheld``). Published entries, and your own; no per-replicate values."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(
        operation_id="tasks_compare",
        parameters=[
            OpenApiParameter(
                "entries",
                str,
                required=True,
                description=(
                    f"{MIN_ENTRIES} to {MAX_ENTRIES} entry ids of this task, separated by "
                    "commas (or the parameter repeated)"
                ),
            ),
            OpenApiParameter(
                "reference",
                str,
                description="The entry the others are compared with (default: the first)",
            ),
        ],
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description=(
                    "Fewer than two or more than five entries, an entry listed twice, a "
                    "reference not compared, an entry of another task or benchmark "
                    "version, an entry without a current result (code not_scored), or "
                    "decision-only entries mixed with probability entries"
                ),
                examples=[OpenApiExample("refused", value=ERROR_EXAMPLE)],
            ),
            404: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="No such task, or an entry that does not exist or is not yours "
                "and not published (the same answer)",
            ),
        },
    )
    def get(self, request, slug: str, suite: str = DEFAULT_SUITE):
        task = task_get(slug=slug, suite=suite)
        ids, reference = compare_query_parse(
            entries=request.query_params.getlist("entries"),
            reference=request.query_params.get("reference"),
        )
        comparison = entries_compare(
            task=task, entry_ids=ids, reference=reference, viewer=request.user
        )
        return Response(comparison.as_dict())
