"""Server-rendered pages: thin views over the selectors and services."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from rest_framework.authtoken.models import Token

from benchmark_data.tasks import METRICS
from leaderboard.board.board_cache import board_key
from leaderboard.board.entry_ids import legacy_redirect
from leaderboard.board.errors import ServiceError
from leaderboard.board.models import (
    DEFAULT_SUITE,
    AuditLog,
    Evaluation,
    Submission,
    Track,
)
from leaderboard.board.renderings import (
    BoardQueryInvalid,
    board_page,
    board_query,
    entry_report_html,
)
from leaderboard.board.selectors.baselines import baseline_progress
from leaderboard.board.selectors.submissions import (
    benchmark_current,
    benchmark_tasks,
    can_see_run_logs,
    evaluation_current_for_submission,
    evaluation_get_for_viewer,
    evaluation_latest_container_run,
    evaluation_list_for_submission,
    evaluation_queue_positions,
    is_current_evaluation,
    queue_summary,
    submission_get_for_viewer,
    submission_list_for_owner,
    submission_public_id_for_staff,
    suite_benchmarks,
    task_get,
    task_list,
)
from leaderboard.board.selectors.teams import team_membership_for
from leaderboard.board.services.audit import audit_record
from leaderboard.board.services.identity import account_for, is_verified, quota_holder_ids
from leaderboard.board.services.submissions import (
    submission_create,
    submission_publish,
    submission_quota_usage,
    submission_unpublish,
    team_quota_usage,
)
from leaderboard.board.uploads import dropped_uploads, limit_text
from leaderboard.board.web.forms import SubmissionForm

log = logging.getLogger(__name__)


def home(request: HttpRequest) -> HttpResponse:
    """Every suite with a current benchmark, its tasks and their entries (MedMod first)."""
    suites = []
    for bench in suite_benchmarks():
        tasks = benchmark_tasks(
            benchmark=bench,
            n_published=Count(  # the board's entries: sweep variants are not ranked
                "submissions",
                filter=Q(
                    submissions__status=Submission.Status.PUBLISHED,
                    submissions__train_missing_rate__isnull=True,
                ),
            ),
        )
        suites.append({"suite": bench.suite, "declaration": bench.suite_declaration,
                       "benchmark": bench, "tasks": tasks})  # fmt: skip
    return render(
        request,
        "board/home.html",
        {
            "benchmark": suites[0]["benchmark"] if suites else None,
            "suites": suites,
            "queue": queue_summary(),
            "baselines": baseline_progress(),
            "limits": {
                "per_day": settings.SUBMISSIONS_PER_DAY,
                "failed_per_day": settings.FAILED_SUBMISSIONS_PER_DAY,
                "team_per_day": settings.TEAM_SUBMISSIONS_PER_DAY,
                "team_failed_per_day": settings.TEAM_FAILED_SUBMISSIONS_PER_DAY,
                "max_upload": limit_text(settings.MAX_UPLOAD_BYTES),
                "replicates": settings.SCORING_REPLICATES,
            },
        },
    )


def task_board(request: HttpRequest, slug: str, suite: str = DEFAULT_SUITE) -> HttpResponse:
    task = task_get(slug=slug, suite=suite)
    try:
        query = board_query(request.GET, task)
    except BoardQueryInvalid as exc:
        return HttpResponseBadRequest(
            f"Bad leaderboard parameters: {exc}.", content_type="text/plain; charset=utf-8"
        )
    show_all = request.GET.get("all", "") in ("1", "true", "yes")
    page = board_page(task, key=board_key(task=task), query=query, show_all=show_all)
    return render(
        request,
        "board/task_board.html",
        {
            "task": task,
            "board_html": mark_safe(page["html"]),
            "has_forest": page["has_forest"],
            "downloads": page["downloads"],
            "train_missing": page["train_missing"],
        },
    )


def _entry_page(
    request: HttpRequest,
    submission: Submission,
    evaluation: Evaluation | None,
    current: Evaluation | None,
) -> HttpResponse:
    runs = list(evaluation_list_for_submission(submission=submission))
    pending = [r.pk for r in runs if r.status == Evaluation.Status.QUEUED]
    context = {
        "sub": submission,
        "evaluation": evaluation,
        "is_current": bool(
            evaluation and is_current_evaluation(evaluation=evaluation, task=submission.task)
        ),
        "current_id": current.pk if current else None,
        "runs": runs,
        "positions": evaluation_queue_positions(evaluation_ids=pending),
        "is_owner": request.user.is_authenticated and request.user.pk == submission.owner_id,
        "container_run": evaluation_latest_container_run(submission=submission)
        if can_see_run_logs(submission=submission, viewer=request.user)
        else None,
        "audit": AuditLog.objects.filter(submission=submission).select_related("actor")[:50]
        if request.user.is_staff
        else [],
    }
    report = entry_report_html(evaluation) if evaluation else None
    if report:
        context.update(report_html=mark_safe(report["html"]), has_plots=report["has_plots"])
    return render(request, "board/entry.html", context)


def entry(request: HttpRequest, public_id: str) -> HttpResponse:
    sub = submission_get_for_viewer(public_id=public_id, viewer=request.user, with_latest=False)
    current = evaluation_current_for_submission(submission=sub)
    return _entry_page(request, sub, current, current)


def entry_evaluation(request: HttpRequest, public_id: str, evaluation_id: int) -> HttpResponse:
    sub = submission_get_for_viewer(public_id=public_id, viewer=request.user, with_latest=False)
    evaluation = evaluation_get_for_viewer(submission=sub, pk=evaluation_id)
    return _entry_page(request, sub, evaluation, evaluation_current_for_submission(submission=sub))


@login_required
@require_POST
def entry_publish(request: HttpRequest, public_id: str) -> HttpResponse:
    sub = submission_get_for_viewer(public_id=public_id, viewer=request.user)
    action = request.POST.get("action")
    try:
        if action == "publish":
            submission_publish(actor=request.user, submission=sub)
            messages.success(request, f"Entry {sub.public_id} is on the leaderboard.")
        elif action == "unpublish":
            submission_unpublish(actor=request.user, submission=sub)
            messages.success(request, f"Entry {sub.public_id} was withdrawn from the leaderboard.")
        else:
            return HttpResponseBadRequest("action must be publish or unpublish")
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("entry", public_id=sub.public_id)


def entry_legacy(request: HttpRequest, pk: int, rest: str = "") -> HttpResponse:
    """An entry's old integer address: staff are sent to its address under the public id;
    anyone else gets the 404 of an entry that does not exist."""
    public_id = submission_public_id_for_staff(pk=int(pk), viewer=request.user)
    url = reverse("entry", args=[public_id]) + rest
    return legacy_redirect(request, url)


@login_required
def submit(request: HttpRequest) -> HttpResponse:
    """The entry form of one suite (``?suite=``, MedMod by default); the page links the
    other suites' forms."""
    suites = suite_benchmarks()
    suite = (request.POST.get("suite") or request.GET.get("suite") or DEFAULT_SUITE).strip()
    benchmark = benchmark_current(suite=suite)
    if benchmark is None:
        status = 404 if suite != DEFAULT_SUITE else 200
        return render(request, "board/submit.html", {"form": None, "benchmark": None, "suite": suite, "suites": suites}, status=status)  # fmt: skip
    declaration = benchmark.suite_declaration
    if request.method == "POST":
        form = SubmissionForm(request.POST, request.FILES, suite=declaration)
        valid = form.is_valid()
        for field, message in dropped_uploads(request).items():
            # The file was dropped for its size: that is the one error of its field, not
            # also "This field is required."
            name = field if field in form.fields else None
            if name is not None:
                form.errors.pop(name, None)
            form.add_error(name, message)
            valid = False
        if valid:
            try:
                sub = submission_create(
                    owner=request.user,
                    task=task_get(slug=form.cleaned_data["task"], suite=suite),
                    track=Track.objects.get(slug=form.cleaned_data["track"]),
                    upload=form.cleaned_data.get("file"),
                    image=form.cleaned_data.get("image"),
                    meta=form.meta(),
                )
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(
                    request,
                    f"Entry {sub.public_id} ({sub.method_name}) was received and is queued for scoring.",
                )
                return redirect("my-submissions")
        status = 400
    else:
        initial = {"task": request.GET.get("task", ""), "suite": suite}
        if request.GET.get("track") == Track.CONTAINER:
            initial["track"] = Track.CONTAINER  # the container track's address (uploads.py)
        form = SubmissionForm(initial=initial, suite=declaration)
        status = 200
    holder_ids = quota_holder_ids(owner=request.user)
    membership = team_membership_for(user=request.user)
    team = membership.team if membership else None
    usage = [
        (
            t,
            submission_quota_usage(owner=request.user, task=t, holder_ids=holder_ids),
            team_quota_usage(team=team, task=t) if team else None,
        )
        for t in task_list(suite=suite)
    ]
    return render(
        request,
        "board/submit.html",
        {
            "form": form,
            "benchmark": benchmark,
            "suite": suite,
            "suites": suites,
            "usage": usage,
            "max_upload": limit_text(settings.MAX_UPLOAD_BYTES),
            "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
            "max_image": limit_text(settings.CONTAINER_MAX_UPLOAD_BYTES),
            "max_image_bytes": settings.CONTAINER_MAX_UPLOAD_BYTES,
            "account": account_for(request.user),
            "can_submit": request.user.is_staff or is_verified(request.user),
            "shares_quota": len(holder_ids) > 1,
            "team": team,
        },
        status=status,
    )


@login_required
def my_submissions(request: HttpRequest) -> HttpResponse:
    subs = list(submission_list_for_owner(owner=request.user)[:200])
    positions = evaluation_queue_positions(evaluation_ids=[s.pending_evaluation_id for s in subs])
    for s in subs:
        pending = s.pending_evaluation_id
        s.queue_position = positions.get(pending) if pending is not None else None
    return render(
        request,
        "board/my_submissions.html",
        {
            "subs": subs,
            "queue": queue_summary(),
            "any_active": any(s.pending_evaluation_id for s in subs),
        },
    )


@login_required
def api_token(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert user.is_authenticated  # login_required lets no anonymous visitor in
    if request.method == "POST":
        Token.objects.filter(user=user).delete()
        Token.objects.create(user=user)
        audit_record(actor=user, action=AuditLog.Action.TOKEN_RESET)
        messages.success(request, "A new API token was made; the old one no longer works.")
        return redirect("api-token-page")
    token, _ = Token.objects.get_or_create(user=user)
    return render(
        request,
        "board/token.html",
        {
            "token": token,
            "api_base": request.build_absolute_uri(reverse("api-tasks")).rsplit("tasks/", 1)[0],
        },
    )


def metric_help(request: HttpRequest) -> HttpResponse:
    return render(request, "board/metrics.html", {"metrics": METRICS})


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", {"message": str(exception or "")}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """The site's 500 page, rendered without the request's context processors: they read
    the database, which may be what failed (an error here leaves the server's bare page)."""
    from django.http import HttpResponseServerError
    from django.template import loader

    return HttpResponseServerError(loader.get_template("500.html").render())


def download(request: HttpRequest, manifest_hash: str, name: str) -> HttpResponseBase:
    """A file of a benchmark's public release: streamed from local storage, or a redirect
    to a pre-signed S3 link. Names outside the published index are 404s."""
    from django.http import FileResponse, Http404, HttpResponseNotModified, HttpResponseRedirect

    from leaderboard.board.selectors.downloads import (
        benchmark_downloads,
        open_release_file,
        presigned_url,
        release_file,
    )

    found = release_file(manifest_hash=manifest_hash, name=name)
    if found is None:
        raise Http404(f"no file {name!r} in the downloads of benchmark {manifest_hash[:12]}")
    benchmark, entry = found
    if entry["kind"] == "index":
        return JsonResponse(benchmark_downloads(benchmark=benchmark) or {})
    etag = f'"{entry["sha256"]}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified()
    url = presigned_url(benchmark, name)
    if url:
        return HttpResponseRedirect(url)
    response = FileResponse(
        open_release_file(benchmark, name), as_attachment=True, filename=name.rsplit("/", 1)[-1]
    )
    response["ETag"] = etag
    # A release's files never change under their address (it names the manifest hash).
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Checksum-SHA256"] = entry["sha256"]
    return response
