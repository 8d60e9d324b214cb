"""API views: parse, call one service or selector, serialize."""

from __future__ import annotations

import csv
import io
import logging

from django.conf import settings
from django.http import Http404, HttpResponse, QueryDict
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, permissions, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from leaderboard.board.api.serializers import (
    BenchmarkSerializer,
    EvaluationSerializer,
    HideSerializer,
    RescoreResultSerializer,
    SubmissionCreateSerializer,
    SubmissionSerializer,
    SuiteSerializer,
    TaskSerializer,
    TokenSerializer,
)
from leaderboard.board.board_cache import board_key, leaderboard_rows
from leaderboard.board.entry_ids import legacy_redirect
from leaderboard.board.labels import spreadsheet_safe_rows
from leaderboard.board.models import DEFAULT_SUITE, Benchmark, Evaluation, Track
from leaderboard.board.renderings import BoardQueryInvalid, board_json, board_payload, board_query
from leaderboard.board.selectors.downloads import (
    benchmark_downloads,
    download_url,
    task_downloads,
)
from leaderboard.board.selectors.leaderboard import MODALITY_FILTERS, board_csv_rows, board_state
from leaderboard.board.selectors.submissions import (
    can_see_run_logs,
    evaluation_current_for_submission,
    evaluation_get_for_viewer,
    evaluation_list_for_submission,
    evaluation_queue_positions,
    queue_summary,
    submission_get_for_viewer,
    submission_list_for_owner,
    submission_public_id_for_staff,
    suite_benchmarks,
    task_get,
    task_list,
)
from leaderboard.board.services.logins import (
    check_login_allowed,
    client_address,
    login_failed,
    login_succeeded,
)
from leaderboard.board.services.rescoring import all_rescore, submission_rescore, task_rescore
from leaderboard.board.services.submissions import (
    check_team_name,
    submission_create,
    submission_hide,
    submission_publish,
    submission_unpublish,
)
from leaderboard.board.uploads import dropped_uploads
from scoring.disclosure import participant_report
from scoring.report_reader import ReportFormatError, read_report

log = logging.getLogger(__name__)


class ReportUnreadable(exceptions.APIException):
    """A stored report this version of the platform cannot read (written by a newer scorer,
    or damaged): the reader's message says which key or version."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "report_unreadable"


class CSVRenderer(BaseRenderer):
    """Renders ``{"csv_header": [...], "csv_rows": [[...]]}``; anything else (an error) as
    a one-column table."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if isinstance(data, dict) and "csv_header" in data:
            # Text cells that a spreadsheet would run as formulas are made inert.
            writer.writerow(spreadsheet_safe_rows([data["csv_header"]])[0])
            writer.writerows(spreadsheet_safe_rows(data["csv_rows"]))
        else:
            writer.writerow(["detail"])
            writer.writerow([data.get("detail", "") if isinstance(data, dict) else data])
        return buf.getvalue().encode("utf-8")


class BenchmarkListView(APIView):
    """Registered benchmarks; the current one takes new submissions."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=BenchmarkSerializer(many=True))
    def get(self, request):
        qs = Benchmark.objects.prefetch_related("tasks").order_by("-is_current", "-created_at")
        return Response(BenchmarkSerializer(qs, many=True, context={"request": request}).data)


class SuiteListView(APIView):
    """The suites with a current benchmark: their declaration's title, inputs and tasks
    (``/api/suites/{suite}/tasks/`` lists a suite's tasks; ``/api/tasks/`` MedMod's)."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=SuiteSerializer(many=True))
    def get(self, request):
        return Response(SuiteSerializer(suite_benchmarks(), many=True).data)


class TaskListView(APIView):
    """The tasks of a suite's current benchmark (MedMod under ``/api/tasks/``)."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=TaskSerializer(many=True))
    def get(self, request, suite: str = DEFAULT_SUITE):
        return Response(TaskSerializer(task_list(suite=suite), many=True).data)


class TaskDetailView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=TaskSerializer)
    def get(self, request, slug: str, suite: str = DEFAULT_SUITE):
        return Response(TaskSerializer(task_get(slug=slug, suite=suite)).data)


class LeaderboardView(APIView):
    """The ranked leaderboard of a task, as JSON or CSV (``?format=csv``)."""

    permission_classes = [permissions.AllowAny]
    renderer_classes = [JSONRenderer, CSVRenderer, BrowsableAPIRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("track", str, enum=[Track.PREDICTION_FILE, Track.CONTAINER]),
            OpenApiParameter("modality", str, enum=[m for m in MODALITY_FILTERS if m]),
            OpenApiParameter("sort", str, description="rank (default) or a metric name"),
            OpenApiParameter("order", str, enum=["asc", "desc"]),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    def get(self, request, slug: str, suite: str = DEFAULT_SUITE):
        task = task_get(slug=slug, suite=suite)
        try:
            params = board_query(request.query_params, task).filters()
        except BoardQueryInvalid as exc:
            raise exceptions.ValidationError({k: [v] for k, v in exc.errors.items()}) from None
        key = board_key(task=task)
        if getattr(request.accepted_renderer, "format", "") == "json":
            return HttpResponse(
                board_json(task, key=key, **params), content_type="application/json"
            )
        state = key.state or board_state(task=task)
        board = leaderboard_rows(task=task, state=state, **params)
        if getattr(request.accepted_renderer, "format", "") == "csv":
            header, rows = board_csv_rows(board)
            response = Response({"csv_header": header, "csv_rows": rows})
            response["Content-Disposition"] = f'attachment; filename="leaderboard-{task.slug}.csv"'
            return response
        return Response(board_payload(task, board))


class SubmissionListCreateView(APIView):
    """Your submissions (GET), or a new one (POST, multipart with the file)."""

    permission_classes = [permissions.IsAuthenticated]
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    throttle_scope = "submissions"

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.request.method == "POST":
            throttles.append(ScopedRateThrottle())
        return throttles

    @extend_schema(
        parameters=[
            OpenApiParameter("active", bool, description="only entries queued or running"),
            OpenApiParameter("task", str),
        ],
        responses=SubmissionSerializer(many=True),
    )
    def get(self, request):
        task = (
            task_get(slug=request.query_params["task"])
            if request.query_params.get("task")
            else None
        )
        active = request.query_params.get("active", "").lower() in ("1", "true", "yes")
        subs = list(
            submission_list_for_owner(owner=request.user, active_only=active, task=task)[:200]
        )
        positions = evaluation_queue_positions(
            evaluation_ids=[s.pending_evaluation_id for s in subs]
        )
        ctx = {"request": request, "queue_positions": positions}
        return Response(
            {
                "queue": queue_summary(),
                "results": SubmissionSerializer(subs, many=True, context=ctx).data,
            }
        )

    @extend_schema(
        request={"multipart/form-data": SubmissionCreateSerializer},
        responses={201: SubmissionSerializer},
    )
    def post(self, request):
        return self._create(request, request.data)

    def _create(self, request, data) -> Response:
        upload_errors = dropped_uploads(request._request)
        if upload_errors:
            raise exceptions.ValidationError({k: [v] for k, v in upload_errors.items()})
        serializer = SubmissionCreateSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        task = task_get(
            slug=serializer.validated_data["task"], suite=serializer.validated_data["suite"]
        )
        track = Track.objects.get(slug=serializer.validated_data["track"])
        check_team_name(owner=request.user, team_name=serializer.validated_data["team_name"])
        submission = submission_create(
            owner=request.user,
            task=task,
            track=track,
            upload=serializer.validated_data.get("file"),
            image=serializer.validated_data.get("image"),
            meta=serializer.meta(),
        )
        sub = submission_get_for_viewer(public_id=submission.public_id, viewer=request.user)
        positions = evaluation_queue_positions(evaluation_ids=[sub.pending_evaluation_id])
        body = SubmissionSerializer(
            sub, context={"request": request, "queue_positions": positions}
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


class SubmissionImageCreateView(SubmissionListCreateView):
    """A new container-track entry (POST, multipart with the image archive in ``image``).

    The container track's own address: its body may reach ``CONTAINER_MAX_UPLOAD_BYTES``,
    while ``POST /api/submissions/`` takes at most ``MAX_UPLOAD_BYTES`` (the limit is known
    from the address before the body is read, leaderboard.board.uploads). ``track`` may be
    left out; any other track than ``container`` is refused."""

    http_method_names = ["post", "options"]
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": SubmissionCreateSerializer},
        responses={201: SubmissionSerializer},
    )
    def post(self, request):
        track = request.data.get("track") or Track.CONTAINER
        if track != Track.CONTAINER:
            raise exceptions.ValidationError({"track": [
                f"{request.path} takes container entries (a model image in the image field); "
                "a prediction file goes to POST /api/submissions/."
            ]})  # fmt: skip
        data = QueryDict(mutable=True)
        for key, values in request.data.lists():
            data.setlist(key, values)  # the uploaded files as they are, not copied
        data["track"] = Track.CONTAINER
        return self._create(request, data)


class SubmissionDetailView(APIView):
    """One entry: its status, failure reason, queue position and latest result. Unpublished
    entries are visible to their owner and staff only."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=SubmissionSerializer)
    def get(self, request, public_id: str):
        sub = submission_get_for_viewer(public_id=public_id, viewer=request.user)
        positions = evaluation_queue_positions(evaluation_ids=[sub.pending_evaluation_id])
        return Response(
            SubmissionSerializer(
                sub, context={"request": request, "queue_positions": positions}
            ).data
        )


class SubmissionEvaluationsView(APIView):
    """Every scoring run of an entry, newest first."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=EvaluationSerializer(many=True))
    def get(self, request, public_id: str):
        sub = submission_get_for_viewer(public_id=public_id, viewer=request.user)
        current = evaluation_current_for_submission(submission=sub)
        runs = evaluation_list_for_submission(submission=sub)
        show_logs = can_see_run_logs(submission=sub, viewer=request.user)
        if show_logs:
            runs = runs.defer(None).defer("report", "replicate_values")
        ctx = {"current_ids": {current.pk} if current else set(), "show_run_logs": show_logs}
        return Response(EvaluationSerializer(runs, many=True, context=ctx).data)


class SubmissionReportView(APIView):
    """The full score report (aggregates only) of the entry's current run, or of
    ``?evaluation=ID``."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("evaluation", int)], responses={200: OpenApiTypes.OBJECT}
    )
    def get(self, request, public_id: str):
        sub = submission_get_for_viewer(public_id=public_id, viewer=request.user)
        raw = request.query_params.get("evaluation")
        evaluation: Evaluation | None
        if raw:
            if not raw.isdigit():
                raise exceptions.ValidationError({"evaluation": ["must be an evaluation id"]})
            evaluation = evaluation_get_for_viewer(submission=sub, pk=int(raw))
        else:
            evaluation = evaluation_current_for_submission(submission=sub)
        if evaluation is None or evaluation.report is None:
            raise Http404("this entry has no score report yet")
        try:
            report = read_report(evaluation.report)
        except ReportFormatError as exc:
            log.error("run %s: its stored report cannot be read: %s", evaluation.pk, exc.message)
            raise ReportUnreadable(
                f"the score report of run {evaluation.pk} cannot be shown ({exc.message}); "
                "ask the organizers to re-score the entry"
            ) from None
        return Response(
            {
                "entry_id": sub.public_id,
                "evaluation_id": evaluation.pk,
                "created_at": evaluation.created_at,
                "report": participant_report(report),
            }
        )


def _submission_for_action(request, public_id: str):
    return submission_get_for_viewer(public_id=public_id, viewer=request.user)


def _submission_after(request, public_id: str, action, **kwargs) -> Response:
    """Run a service on an entry the user can see, and answer with the entry as it is now."""
    action(actor=request.user, submission=_submission_for_action(request, public_id), **kwargs)
    return Response(
        SubmissionSerializer(
            _submission_for_action(request, public_id), context={"request": request}
        ).data
    )


@extend_schema(exclude=True)
class SubmissionLegacyView(APIView):
    """An entry's old integer address (``/api/submissions/{int}/...``): staff are sent to
    its address under the public id; anyone else gets the 404 of an entry that does not
    exist."""

    permission_classes = [permissions.AllowAny]

    def _answer(self, request, pk: str, rest: str = ""):
        public_id = submission_public_id_for_staff(pk=int(pk), viewer=request.user)
        url = reverse("api-submission", args=[public_id]) + rest
        return legacy_redirect(request._request, url)

    get = post = put = patch = delete = _answer


class SubmissionPublishView(APIView):
    """Put a scored entry on the leaderboard (owner or staff)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=SubmissionSerializer)
    def post(self, request, public_id: str):
        return _submission_after(request, public_id, submission_publish)


class SubmissionUnpublishView(APIView):
    """Withdraw an entry from the leaderboard; it stays scored and private (owner or staff)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=SubmissionSerializer)
    def post(self, request, public_id: str):
        return _submission_after(request, public_id, submission_unpublish)


class SubmissionHideView(APIView):
    """Staff: hide an entry from the leaderboard, with a reason kept in the audit log."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=HideSerializer, responses=SubmissionSerializer)
    def post(self, request, public_id: str):
        body = HideSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"]
        return _submission_after(request, public_id, submission_hide, reason=reason)


class SubmissionRescoreView(APIView):
    """Staff: score an entry again (a new run; earlier runs are kept)."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=None, responses={202: RescoreResultSerializer})
    def post(self, request, public_id: str):
        result = submission_rescore(
            actor=request.user, submission=_submission_for_action(request, public_id)
        )
        return Response(result.as_dict(), status=status.HTTP_202_ACCEPTED)


class TaskRescoreView(APIView):
    """Staff: score every scored entry of a task again."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=None, responses={202: RescoreResultSerializer})
    def post(self, request, slug: str):
        result = task_rescore(actor=request.user, task=task_get(slug=slug), from_request=True)
        return Response(result.as_dict(), status=status.HTTP_202_ACCEPTED)


class RescoreAllView(APIView):
    """Staff: score every scored entry of the current benchmark again."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=None, responses={202: RescoreResultSerializer})
    def post(self, request):
        result = all_rescore(actor=request.user, from_request=True)
        return Response(result.as_dict(), status=status.HTTP_202_ACCEPTED)


class TokenView(APIView):
    """Exchange a user name and password for your API token."""

    permission_classes = [permissions.AllowAny]
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    throttle_scope = "login"
    throttle_classes = [ScopedRateThrottle]

    @extend_schema(request=AuthTokenSerializer, responses=TokenSerializer)
    def post(self, request):
        # The same lockout as the web login (services.logins): checked before the password.
        username = str(request.data.get("username") or "")
        client = client_address(request)
        check_login_allowed(username=username, client=client)
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            if request.data.get("password"):
                login_failed(username=username, client=client)
                check_login_allowed(username=username, client=client)
            raise exceptions.ValidationError(serializer.errors)
        login_succeeded(username=username, client=client)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})


class LimitsView(APIView):
    """The platform's submission rules."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(
            {
                "submissions_per_day_per_task": settings.SUBMISSIONS_PER_DAY,
                "failed_submissions_per_day_per_task": settings.FAILED_SUBMISSIONS_PER_DAY,
                # A team's entries together, on top of each member's own limits.
                "team_submissions_per_day_per_task": settings.TEAM_SUBMISSIONS_PER_DAY,
                "team_failed_submissions_per_day_per_task": (
                    settings.TEAM_FAILED_SUBMISSIONS_PER_DAY
                ),
                "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
                "container": {
                    "max_image_bytes": settings.CONTAINER_MAX_UPLOAD_BYTES,
                    "cpus": settings.CONTAINER_CPUS,
                    "memory_bytes": settings.CONTAINER_MEMORY_MB * 1024 * 1024,
                    "pids": settings.CONTAINER_PIDS,
                    "wall_time_seconds_per_scenario": settings.CONTAINER_WALL_TIME,
                    "network": "none",
                },
                "replicates": settings.SCORING_REPLICATES,
                "day_boundary": "00:00 UTC",
            }
        )


def _no_downloads(task_or_benchmark: str) -> Response:
    return Response(
        {
            "code": "not_published",
            "detail": f"the data files of {task_or_benchmark} are not published yet; the "
            "organizers publish them with manage.py publish_downloads",
        },
        status=status.HTTP_404_NOT_FOUND,
    )


class TaskFilesView(APIView):
    """The public data of a task's benchmark: the task's unit lists, scenario list and sample
    prediction file, the archives every task shares and the checksums; each with its size,
    sha256 and download address."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str, suite: str = DEFAULT_SUITE):
        task = task_get(slug=slug, suite=suite)
        files = task_downloads(task=task, absolute=request.build_absolute_uri)
        if files is None:
            return _no_downloads(f"task {task.slug}")
        return Response(files)


class BenchmarkFilesView(APIView):
    """Every file of a benchmark's public release (by manifest hash)."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, manifest_hash: str):
        benchmark = Benchmark.objects.filter(manifest_hash=manifest_hash).first()
        if benchmark is None:
            raise Http404(f"no benchmark with manifest hash {manifest_hash!r}")
        index = benchmark_downloads(benchmark=benchmark)
        if index is None:
            return _no_downloads(f"benchmark {benchmark.name} {benchmark.version}")
        files = [
            {**f, "url": request.build_absolute_uri(download_url(benchmark, f["name"]))}
            for f in index["files"]
        ]
        return Response({**index, "files": files})
