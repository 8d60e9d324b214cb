"""Every API endpoint: the happy path, authentication and permission failures, and 400s
that name the field at fault."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from leaderboard.board.models import AuditLog, Evaluation, Submission, Track
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory, UserFactory

pytestmark = pytest.mark.django_db

CSV = b"stay_id,prediction\n1,0.5\n"


def _form(**kw):
    data = {
        "task": "in-hospital-mortality",
        "method_name": "LR baseline",
        "modalities": "ehr,cxr",
        "training_data": "train and validation splits only",
        "file": SimpleUploadedFile("pred.csv", CSV, content_type="text/csv"),
    }
    data.update(kw)
    return {k: v for k, v in data.items() if v is not None}


def test_benchmarks_and_tasks_are_public(anon, benchmark):
    r = anon.get("/api/benchmarks/")
    assert r.status_code == 200
    assert r.json()[0]["manifest_hash"] == benchmark.manifest_hash
    r = anon.get("/api/tasks/")
    slugs = [t["slug"] for t in r.json()]
    assert slugs == [
        "in-hospital-mortality",
        "phenotyping",
        "decompensation",
        "length-of-stay",
        "radiology",
    ]
    r = anon.get("/api/tasks/phenotyping/")
    body = r.json()
    assert body["primary_metric"] == "macro_auroc" and len(body["label_columns"]) == 25
    assert anon.get("/api/tasks/readmission/").status_code == 404


def test_create_a_submission_with_a_token(api, user, benchmark):
    r = api.post("/api/submissions/", _form(), format="multipart")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["status"] in ("submitted", "queued")
    assert body["modalities"] == ["ehr", "cxr"] and body["owner"] == user.username
    assert body["queue_position"] == 1 or body["status"] == "submitted"
    sub = Submission.objects.get(public_id=body["id"])
    assert sub.evaluations.count() == 1


def test_creating_needs_authentication(anon, benchmark):
    r = anon.post("/api/submissions/", _form(), format="multipart")
    assert r.status_code == 401
    assert r.json()["code"] == "not_authenticated"
    bad = anon.get("/api/submissions/", HTTP_AUTHORIZATION="Token not-a-token")
    assert bad.status_code == 401


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"task": "readmission"}, "task", "not a valid choice"),
        ({"method_name": None}, "method_name", "required"),
        ({"modalities": "ehr,mri"}, "modalities", "not a valid choice"),
        ({"training_data": "x"}, "training_data", "at least 10"),
        ({"threshold": "1.5"}, "threshold", "less than or equal to 1"),
        ({"paper_url": "not a url"}, "paper_url", "valid URL"),
        ({"file": None}, "file", "No file"),
        ({"visibility": "secret"}, "visibility", "not a valid choice"),
    ],
)
def test_bad_fields_give_a_400_naming_the_field(api, benchmark, change, field, text):
    r = api.post("/api/submissions/", _form(**change), format="multipart")
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == ("invalid_file" if field == "file" else "invalid")
    assert field in body["errors"]
    assert text in str(body["errors"][field])


def test_an_empty_file_and_a_duplicate_are_refused(api, benchmark):
    r = api.post(
        "/api/submissions/", _form(file=SimpleUploadedFile("p.csv", b"")), format="multipart"
    )
    assert r.status_code == 400 and "file" in r.json()["errors"]
    assert api.post("/api/submissions/", _form(), format="multipart").status_code == 201
    r = api.post("/api/submissions/", _form(), format="multipart")
    assert r.status_code == 409 and r.json()["code"] == "duplicate_file"


def test_a_closed_track_refuses_submissions(api, benchmark):
    Track.objects.filter(slug=Track.CONTAINER).update(is_open=False)
    r = api.post("/api/submissions/", _form(track="container"), format="multipart")
    assert r.status_code == 400 and r.json()["code"] == "track_closed"


@override_settings(SUBMISSIONS_PER_DAY=1)
def test_over_the_limit_is_a_429(api, benchmark):
    assert api.post("/api/submissions/", _form(), format="multipart").status_code == 201
    r = api.post(
        "/api/submissions/",
        _form(file=SimpleUploadedFile("b.csv", b"stay_id,prediction\n1,0.7\n")),
        format="multipart",
    )
    assert r.status_code == 429 and "daily limit" in r.json()["detail"]


@override_settings(MAX_UPLOAD_BYTES=1000)
def test_a_file_over_the_size_limit_is_refused_while_streaming(api, benchmark):
    big = b"stay_id,prediction\n" + b"1,0.5\n" * 300  # 1.8 kB
    r = api.post(
        "/api/submissions/", _form(file=SimpleUploadedFile("p.csv", big)), format="multipart"
    )
    assert r.status_code == 400
    assert "limit" in r.json()["errors"]["file"][0]
    assert not Submission.objects.exists()


@override_settings(MAX_UPLOAD_BYTES=1000)
def test_a_request_declared_far_over_the_limit_is_refused_unread(api, benchmark):
    huge = b"x" * (1024 * 1024 + 5000)
    r = api.post("/api/submissions/", data=huge, content_type="multipart/form-data; boundary=x")
    assert r.status_code == 413
    assert r.json()["code"] == "file_too_large"
    assert "1000 bytes limit" in r.json()["detail"]
    # A file sent as the body itself (not multipart) carries no file: 1 MiB at most.
    r = api.post("/api/submissions/", data=huge, content_type="text/csv")
    assert r.status_code == 413
    assert r.json()["code"] == "request_too_large"
    assert "multipart/form-data" in r.json()["detail"]


def test_my_submissions_lists_only_mine(api, user):
    mine = SubmissionFactory(owner=user, status="queued")
    Evaluation.objects.create(submission=mine, trigger="submission", benchmark_hash="h")
    SubmissionFactory()  # someone else's
    r = api.get("/api/submissions/")
    assert r.status_code == 200
    ids = [s["id"] for s in r.json()["results"]]
    assert ids == [mine.public_id]
    assert r.json()["results"][0]["queue_position"] == 1
    assert api.get("/api/submissions/?active=1").json()["results"][0]["id"] == mine.public_id


def test_an_unpublished_entry_is_visible_to_its_owner_and_staff_only(api, staff_api, anon, user):
    private = SubmissionFactory(status="scored", visibility="private")
    EvaluationFactory(submission=private)
    for client in (api, anon):
        assert client.get(f"/api/submissions/{private.public_id}/").status_code == 404
        assert client.get(f"/api/submissions/{private.public_id}/report/").status_code == 404
        assert client.get(f"/api/submissions/{private.public_id}/evaluations/").status_code == 404
    assert staff_api.get(f"/api/submissions/{private.public_id}/").status_code == 200
    own = SubmissionFactory(owner=user, status="scored", visibility="private")
    assert api.get(f"/api/submissions/{own.public_id}/").status_code == 200


def test_report_and_history_of_a_published_entry(anon):
    old = EvaluationFactory(scorer_version="0.9.0", value=0.7)
    sub = old.submission
    current = EvaluationFactory(submission=sub, value=0.8)
    r = anon.get(f"/api/submissions/{sub.public_id}/report/")
    assert r.status_code == 200 and r.json()["evaluation_id"] == current.pk
    r = anon.get(f"/api/submissions/{sub.public_id}/report/?evaluation={old.pk}")
    assert r.json()["evaluation_id"] == old.pk
    assert anon.get(f"/api/submissions/{sub.public_id}/report/?evaluation=abc").status_code == 400
    runs = anon.get(f"/api/submissions/{sub.public_id}/evaluations/").json()
    assert [e["id"] for e in runs] == [current.pk, old.pk]
    assert [e["is_current"] for e in runs] == [True, False]


def test_leaderboard_json_ranks_and_marks_references(anon):
    top = EvaluationFactory(value=0.85)
    task = top.submission.task
    ref = EvaluationFactory(submission=SubmissionFactory(task=task, is_reference=True), value=0.75)
    EvaluationFactory(submission=SubmissionFactory(task=task, uses_cxr=False), value=0.70)
    r = anon.get(f"/api/tasks/{task.slug}/leaderboard/")
    assert r.status_code == 200, r.content
    rows = r.json()["rows"]
    assert [row["entry_id"] for row in rows][0] == top.submission.public_id
    assert rows[0]["rank"] == 1 and rows[0]["vs_leader"] is None
    assert any(row["is_reference"] and row["entry_id"] == ref.submission.public_id for row in rows)
    assert rows[1]["vs_baseline"] is None or "p" in rows[1]["vs_baseline"]
    ehr_only = anon.get(f"/api/tasks/{task.slug}/leaderboard/?modality=ehr").json()["rows"]
    assert len(ehr_only) == 1 and ehr_only[0]["modalities"] == ["ehr"]
    by_auprc = anon.get(f"/api/tasks/{task.slug}/leaderboard/?sort=auprc&order=asc").json()["rows"]
    assert by_auprc[0]["metrics"]["auprc"]["value"] == pytest.approx(0.35)


def test_leaderboard_csv_export(anon):
    ev = EvaluationFactory(value=0.8)
    task = ev.submission.task
    r = anon.get(f"/api/tasks/{task.slug}/leaderboard/?format=csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode())))
    assert rows[0][:6] == [
        "rank",
        "tier",
        "rank_interval_low",
        "rank_interval_high",
        "entry_id",
        "method_name",
    ]
    assert rows[1][4] == ev.submission.public_id


@pytest.mark.parametrize("query", ["sort=height", "modality=mri", "track=zip", "order=up"])
def test_bad_leaderboard_parameters_are_a_400(anon, query):
    task = EvaluationFactory().submission.task
    r = anon.get(f"/api/tasks/{task.slug}/leaderboard/?{query}")
    assert r.status_code == 400
    assert query.split("=")[0] in r.json()["errors"]


def test_publish_and_unpublish_by_the_owner(api, user):
    sub = SubmissionFactory(owner=user, status="scored", visibility="private")
    EvaluationFactory(submission=sub)
    r = api.post(f"/api/submissions/{sub.public_id}/publish/")
    assert r.status_code == 200 and r.json()["status"] == "published"
    r = api.post(f"/api/submissions/{sub.public_id}/unpublish/")
    assert r.status_code == 200 and r.json()["status"] == "scored"
    queued = SubmissionFactory(owner=user, status="queued")
    r = api.post(f"/api/submissions/{queued.public_id}/publish/")
    assert r.status_code == 409 and "only a scored entry" in r.json()["detail"]


def test_someone_elses_published_entry_cannot_be_withdrawn(api):
    sub = EvaluationFactory().submission
    r = api.post(f"/api/submissions/{sub.public_id}/unpublish/")
    assert r.status_code == 403


def test_staff_endpoints_refuse_others(api, anon):
    sub = EvaluationFactory().submission
    for path in (f"/api/submissions/{sub.public_id}/rescore/", f"/api/submissions/{sub.public_id}/hide/",
                 f"/api/tasks/{sub.task.slug}/rescore/", "/api/rescore/"):  # fmt: skip
        assert api.post(path, {"reason": "x"}).status_code == 403
        assert anon.post(path, {"reason": "x"}).status_code == 401


def test_staff_rescore_one_a_task_and_all(staff_api, staff):
    ev = EvaluationFactory()
    sub = ev.submission
    r = staff_api.post(f"/api/submissions/{sub.public_id}/rescore/")
    assert r.status_code == 202 and r.json()["queued"] == 1
    r = staff_api.post(f"/api/tasks/{sub.task.slug}/rescore/")
    body = r.json()
    assert r.status_code == 202 and body.pop("rescore_run") is not None
    assert body == {"queued": 0, "skipped": 1, "evaluations": []}
    Evaluation.objects.filter(submission=sub, status="queued").update(
        status="failed", error_message="x", run_token=ev.run_token
    )
    r = staff_api.post("/api/rescore/")
    assert r.status_code == 202 and r.json()["queued"] == 1
    assert AuditLog.objects.filter(action="evaluation.rescore", actor=staff).count() == 2


def test_staff_hide_needs_a_reason(staff_api):
    sub = EvaluationFactory().submission
    r = staff_api.post(f"/api/submissions/{sub.public_id}/hide/", {})
    assert r.status_code == 400 and "reason" in r.json()["errors"]
    r = staff_api.post(f"/api/submissions/{sub.public_id}/hide/", {"reason": "duplicate account"})
    assert r.status_code == 200 and r.json()["visibility"] == "hidden"


def test_token_endpoint(anon):
    UserFactory(username="bob")
    r = anon.post("/api/auth/token/", {"username": "bob", "password": "a-long-test-password"})
    assert r.status_code == 200 and len(r.json()["token"]) == 40
    r = anon.post("/api/auth/token/", {"username": "bob", "password": "wrong"})
    assert r.status_code == 400 and r.json()["code"] == "invalid"


def test_queue_limits_schema_and_docs(anon):
    assert set(anon.get("/api/queue/").json()) == {"queued", "running", "queues"}
    assert anon.get("/api/limits/").json()["submissions_per_day_per_task"] >= 1
    schema = anon.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/submissions/" in schema.content
    docs = anon.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower() and b"swagger-ui" in docs.content
