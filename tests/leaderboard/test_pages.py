"""Web pages: they render, list pages cost a fixed number of queries, forms explain their
errors, and POSTs need the CSRF token."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from leaderboard.board.context import navigation
from leaderboard.board.models import Evaluation, Submission
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory

pytestmark = pytest.mark.django_db


def _board(n: int, task=None):
    first = EvaluationFactory(value=0.9)
    task = task or first.submission.task
    for i in range(n - 1):
        EvaluationFactory(
            submission=SubmissionFactory(task=task, is_reference=(i == 0), uses_cxr=bool(i % 2)),
            value=0.6 + 0.01 * i,
        )
    return task


def _queries(client, url) -> int:
    navigation(None)  # the menu's tasks: cached for every page after the first
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(url)
    assert r.status_code == 200, r.content[:500]
    return len(ctx.captured_queries)


def test_pages_render(client, benchmark):
    for url in (
        "/",
        "/tasks/in-hospital-mortality/",
        "/metrics/",
        "/accounts/login/",
        "/accounts/signup/",
    ):
        r = client.get(url)
        assert r.status_code == 200, url
    assert client.get("/tasks/readmission/").status_code == 404
    assert client.get("/submit/").status_code == 302  # log in first


def test_the_home_page_states_the_personal_and_the_team_daily_limits(client, benchmark, settings):
    """The rules on the home page give a person's limits and a team's own, as configured:
    a team's limit is its own, not the person's shared among members."""
    settings.SUBMISSIONS_PER_DAY, settings.FAILED_SUBMISSIONS_PER_DAY = 4, 9
    settings.TEAM_SUBMISSIONS_PER_DAY, settings.TEAM_FAILED_SUBMISSIONS_PER_DAY = 12, 20
    text = " ".join(client.get("/").content.decode().split())
    assert "Rules: 4 submissions per task per day (UTC) per person" in text
    assert "up to 9 a day" in text
    assert "a team has a limit of its own, 12 submissions per task per day and 20 failed" in text
    assert "members of one team, share them" not in text


def test_the_home_page_reads_each_suite_declaration_once(client, benchmark, monkeypatch):
    """Every task of a suite shares its benchmark's parsed declaration: the page does not
    serialize and look up the declaration once per task."""
    from leaderboard.board import models

    calls: list[str] = []
    parse = models._parsed

    def counted(spec_json: str):
        calls.append(spec_json)
        return parse(spec_json)

    monkeypatch.setattr(models, "_parsed", counted)
    assert benchmark.tasks.count() == 5
    assert client.get("/").status_code == 200
    assert len(calls) <= 2  # the menu's tasks (then cached) and the page's
    calls.clear()
    assert client.get("/").status_code == 200
    assert len(calls) <= 1


@pytest.mark.django_db
def test_the_home_page_counts_the_runs_waiting_and_being_scored(client, benchmark):
    E = Evaluation.Status
    for status in (E.QUEUED, E.QUEUED, E.RUNNING, E.SUCCEEDED):
        EvaluationFactory(status=status)
    EvaluationFactory(status=E.FAILED, error_message="the file has no header")
    text = " ".join(client.get("/").content.decode().split())
    assert "Scoring queue: 2 waiting, 1 running" in text


@pytest.mark.parametrize(
    "url", ["/tasks/in-hospital-mortality/", "/api/tasks/in-hospital-mortality/leaderboard/", "/"]
)
def test_list_pages_cost_the_same_number_of_queries_for_3_or_12_entries(client, url):
    task = _board(3)
    assert task.slug == "in-hospital-mortality"
    few = _queries(client, url)
    _board(9, task=task)
    assert Submission.objects.filter(status="published").count() == 12
    assert _queries(client, url) == few
    assert few <= 8


def test_my_submissions_costs_the_same_for_2_or_10_entries(client, user):
    client.force_login(user)
    for _ in range(2):
        Evaluation.objects.create(
            submission=SubmissionFactory(owner=user, status="queued"),
            trigger="submission",
            benchmark_hash="h",
        )
    few = _queries(client, "/me/submissions/")
    for _ in range(4):
        Evaluation.objects.create(
            submission=SubmissionFactory(owner=user, status="queued"),
            trigger="submission",
            benchmark_hash="h",
        )
        EvaluationFactory(submission=SubmissionFactory(owner=user))
    assert _queries(client, "/me/submissions/") == few
    assert _queries(client, "/api/submissions/") <= few + 2


def test_the_board_marks_reference_rows_and_ranks(client):
    task = _board(4)
    html = client.get(f"/tasks/{task.slug}/").content.decode()
    assert 'class="reference' in html and "reference</span>" in html
    assert "forest-figure" in html and "vendor/plotly.min.js" in html
    assert "Δ no CXR" in html


def test_the_entry_page_shows_results_history_and_hides_private_entries(client, user):
    ev = EvaluationFactory(value=0.81)
    old = EvaluationFactory(submission=ev.submission, scorer_version="0.1.0", value=0.7)
    html = client.get(f"/entries/{ev.submission.public_id}/").content.decode()
    # The run history shows the published precision (one decimal without counts).
    assert "History of evaluations" in html and "0.8 <span" in html and "0.810" not in html
    assert (
        client.get(f"/entries/{ev.submission.public_id}/evaluations/{old.pk}/").status_code == 200
    )
    private = SubmissionFactory(status="scored", visibility="private")
    assert client.get(f"/entries/{private.public_id}/").status_code == 404
    client.force_login(private.owner)
    assert client.get(f"/entries/{private.public_id}/").status_code == 200


def test_the_submit_form_explains_errors(client, user, benchmark):
    client.force_login(user)
    r = client.get("/submit/")
    assert r.status_code == 200 and b'data-max-bytes="' in r.content
    r = client.post("/submit/", {"task": "in-hospital-mortality", "method_name": "", "training_data": "short",
                                 "visibility": "public", "track": "prediction-file"})  # fmt: skip
    assert r.status_code == 400
    html = r.content.decode()
    assert "This field is required." in html  # method name, file
    assert "Tick the inputs your model uses" in html
    assert "at least 10 characters" in html


def test_the_submit_form_creates_an_entry(client, user, benchmark):
    client.force_login(user)
    r = client.post("/submit/", {
        "task": "in-hospital-mortality", "track": "prediction-file", "method_name": "My model",
        "uses_ehr": "on", "training_data": "train and val splits only", "visibility": "public",
        "file": SimpleUploadedFile("p.csv", b"stay_id,prediction\n1,0.5\n"),
    })  # fmt: skip
    assert r.status_code == 302 and r["Location"] == "/me/submissions/"
    sub = Submission.objects.get()
    assert sub.method_name == "My model" and sub.uses_ehr and not sub.uses_cxr


def test_forms_need_the_csrf_token(user, benchmark):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    r = client.post("/submit/", {"task": "in-hospital-mortality"})
    assert r.status_code == 403
    r = client.post("/accounts/token/")
    assert r.status_code == 403


def test_signup_logs_in_and_the_token_page_shows_a_token(client):
    r = client.post("/accounts/signup/", {"username": "carol", "email": "c@example.org",
                                          "password1": "a-Strong-pass-42", "password2": "a-Strong-pass-42"})  # fmt: skip
    assert r.status_code == 302
    r = client.get("/accounts/token/")
    assert r.status_code == 200 and b'id="token"' in r.content
    old = r.context["token"].key
    client.post("/accounts/token/")
    assert client.get("/accounts/token/").context["token"].key != old
    r = Client().post("/accounts/signup/", {"username": "dave", "password1": "x", "password2": "y"})
    assert r.status_code == 400 and b"password fields didn" in r.content


def test_admin_pages_and_the_rescore_action(client):
    from leaderboard.board.models import AuditLog
    from tests.leaderboard.factories import UserFactory

    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    ev = EvaluationFactory()
    sub = ev.submission
    for url in ("/admin/", "/admin/board/submission/", f"/admin/board/submission/{sub.pk}/change/",
                "/admin/board/evaluation/", f"/admin/board/evaluation/{ev.pk}/change/",
                "/admin/board/benchmark/", "/admin/board/task/", "/admin/board/track/",
                "/admin/board/auditlog/"):  # fmt: skip
        assert client.get(url).status_code == 200, url
    listed = client.get("/admin/board/submission/").content.decode()
    assert f'<span title="{sub.task.benchmark}">{sub.task.slug}</span>' in listed
    assert f">{sub.public_id}</a>" in listed and sub.team_label in listed
    r = client.post("/admin/board/submission/", {"action": "rescore", "_selected_action": [sub.pk]})
    assert r.status_code == 302
    assert sub.evaluations.count() == 2
    assert AuditLog.objects.filter(action="evaluation.rescore", actor=admin).exists()
    client.post("/admin/board/submission/", {"action": "hide", "_selected_action": [sub.pk]})
    sub.refresh_from_db()
    assert sub.visibility == "hidden"
