"""Hostile input against the real server: every API operation fuzzed from the OpenAPI
schema (schemathesis, bounded examples) as an anonymous caller and as a signed-in user,
and a gzip bomb uploaded through the API. A bad input is a 4xx, never a 5xx or a traceback;
the bomb fails as the user's fault and the worker lives on."""

from __future__ import annotations

import gzip
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings

from leaderboard.board.models import Submission
from tests.leaderboard import servers
from tests.leaderboard.conftest import _drop_queue, wait_for
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.worker]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
# Staff-only operations change many rows at once; they are fuzzed as a plain user (403).
LEAKS = (b"Traceback", b'File "/', b"django.db", b"psycopg", b"SECRET_KEY")


def _fuzz_operation(operation, *, headers: dict[str, str], failures: list[str]) -> int:
    calls = 0

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(case=operation.as_strategy())
    def run(case):
        nonlocal calls
        calls += 1
        response = case.call(headers=headers, timeout=30)
        body = response.content or b""
        if response.status_code >= 500 or any(leak in body for leak in LEAKS):
            failures.append(
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{body[:300]!r} (query={case.query!r}, body={str(case.body)[:200]!r})"
            )

    run()
    return calls


def test_the_api_fuzzed_from_its_schema_never_answers_5xx_or_a_traceback(benchmark, user):
    from rest_framework.authtoken.models import Token
    from schemathesis.openapi import from_url

    # A published entry so that the id-taking operations meet a real one too.
    EvaluationFactory(submission=SubmissionFactory(owner=user, task=benchmark.tasks.get(
        slug="in-hospital-mortality")))  # fmt: skip
    _drop_queue()
    env = servers.app_env(API_ANON_RATE="100000/minute", API_USER_RATE="100000/minute",
                          API_SUBMISSION_RATE="100000/minute")  # fmt: skip
    server, base = servers.start_gunicorn(env, workers=2)
    try:
        schema = from_url(f"{base}/api/schema/?format=json")
        token = Token.objects.get_or_create(user=user)[0].key
        failures: list[str] = []
        calls = 0
        operations = [op.ok() for op in schema.get_all_operations()]
        assert len(operations) >= 15
        for operation in operations:
            for headers in ({}, {"Authorization": f"Token {token}"}):
                calls += _fuzz_operation(operation, headers=headers, failures=failures)
        log = server.log()
    finally:
        server.stop()
    print(f"\nfuzzed {len(operations)} operations with {calls} requests")
    assert not failures, "\n".join(failures[:20])
    assert "Traceback" not in log, log[-3000:]


def test_a_gzip_bomb_uploaded_through_the_api_fails_as_the_users_fault(
    celery_worker, api, user, benchmark
):
    """A .csv.gz of 400 KiB that inflates to 256 MiB of rows: accepted as an upload (the size
    on the wire is small), then refused by the scorer at a bound, as the user's fault; the
    worker lives on."""
    member = gzip.compress(b"1,0.5\n" * 174_763, mtime=0, compresslevel=9)  # 1 MiB of rows
    bomb = gzip.compress(b"stay_id,prediction\n", mtime=0) + member * 256
    assert len(bomb) < 1024 * 1024
    r = api.post("/api/submissions/", {
        "task": "in-hospital-mortality", "method_name": "bomb", "modalities": "ehr",
        "training_data": "none: a hostile file",
        "file": SimpleUploadedFile("predictions.csv.gz", bomb, content_type="application/gzip"),
    }, format="multipart")  # fmt: skip
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    wait_for(lambda: Submission.objects.get(public_id=pk).status in ("failed", "published"),
             timeout=120, what="the bomb to be refused")  # fmt: skip
    sub = Submission.objects.get(public_id=pk)
    assert sub.status == "failed" and sub.failure_kind == "input", sub.failure_reason
    # Refused at a bound, never inflated in full: the row cap (a file cannot hold more rows
    # than the task's units and scenarios) or the decompression limit, whichever comes first.
    reason = sub.failure_reason
    assert "decompresses to more than the limit" in reason or "rows, more than" in reason, reason
    assert sub.evaluations.get().duration_seconds < 30
    assert celery_worker.poll() is None  # the worker is still there
    detail = api.get(f"/api/submissions/{pk}/").json()
    assert detail["failure_reason"] == reason


# Authorization: what tests/leaderboard/test_api.py and test_pages.py do not cover already.
def test_a_published_report_does_not_open_another_entrys_private_run(api, anon):
    """`?evaluation=` names a run: one of another, private entry is not served through a
    public entry's report, nor its history page through the public entry's URL."""
    public = EvaluationFactory().submission
    private_run = EvaluationFactory(
        submission=SubmissionFactory(status="scored", visibility="private")
    )
    for client in (api, anon):
        r = client.get(f"/api/submissions/{public.public_id}/report/?evaluation={private_run.pk}")
        assert r.status_code in (400, 404), r.content
    web = Client()
    assert web.get(f"/entries/{public.public_id}/evaluations/{private_run.pk}/").status_code == 404
    owner_page = f"/entries/{private_run.submission.public_id}/evaluations/{private_run.pk}/"
    assert web.get(owner_page).status_code == 404


def test_someone_elses_private_entry_cannot_be_published_from_the_web(user):
    private = SubmissionFactory(status="scored", visibility="private")
    EvaluationFactory(submission=private)
    web = Client()
    web.force_login(user)
    r = web.post(f"/entries/{private.public_id}/publish/", {"action": "publish"})
    assert r.status_code in (403, 404)
    private.refresh_from_db()
    assert private.status == "scored" and private.visibility == "private"


def test_the_api_with_a_session_needs_the_csrf_token_to_write(user):
    """Pages call the API with their session; a write without the CSRF token is refused
    (a cross-site form cannot publish or withdraw an entry)."""
    own = SubmissionFactory(owner=user, status="scored", visibility="private")
    EvaluationFactory(submission=own)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/api/submissions/").status_code == 200
    r = browser.post(f"/api/submissions/{own.public_id}/publish/")
    assert r.status_code == 403, r.content
    own.refresh_from_db()
    assert own.status == "scored"


def test_an_owner_cannot_publish_an_entry_staff_hid(api, user, staff_api):
    sub = EvaluationFactory(submission=SubmissionFactory(owner=user)).submission
    assert (
        staff_api.post(f"/api/submissions/{sub.public_id}/hide/", {"reason": "copied"}).status_code
        == 200
    )
    r = api.post(f"/api/submissions/{sub.public_id}/publish/")
    assert r.status_code in (403, 409), r.content
    sub.refresh_from_db()
    assert sub.visibility == "hidden" and sub.status != "published"


def test_the_admin_is_for_staff_only(user):
    web = Client()
    web.force_login(user)
    for path in ("/admin/", "/admin/board/submission/", "/admin/board/evaluation/"):
        r = web.get(path)
        assert r.status_code == 302 and "/admin/login/" in r["Location"], (path, r.status_code)
