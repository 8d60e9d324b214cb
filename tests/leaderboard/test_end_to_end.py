"""End to end with a real Celery worker process on Redis and the real PostgreSQL: upload,
scoring, publication, failure, re-scoring, the reaper, and no per-unit data anywhere."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from leaderboard.board.models import Evaluation, Submission
from leaderboard.board.services.evaluations import evaluations_reap
from tests.leaderboard.conftest import wait_for
from tests.leaderboard.factories import SubmissionFactory

pytestmark = pytest.mark.django_db(transaction=True)

RESULTS = Path(__file__).resolve().parents[2] / "var" / "test-results"


def _form(content: bytes, **kw):
    data = {
        "task": "in-hospital-mortality",
        "method_name": "Logistic regression",
        "modalities": "ehr",
        "training_data": "the benchmark's train split only",
        "file": SimpleUploadedFile("predictions.csv", content, content_type="text/csv"),
    }
    data.update(kw)
    return data


def _status(pk: str) -> str:
    return Submission.objects.get(public_id=pk).status


def _truth(demo_benchmark_dir):
    from benchmark_data import Benchmark

    bench = Benchmark.open(demo_benchmark_dir)
    labels = bench.test_labels("in-hospital-mortality")
    return [str(s) for s in labels["stay_id"]], labels["y_true"].tolist()


def _walk_lists(obj, found: list[int]) -> None:
    if isinstance(obj, dict):
        for v in obj.values():
            _walk_lists(v, found)
    elif isinstance(obj, list):
        found.append(len(obj))
        for v in obj:
            _walk_lists(v, found)


def assert_no_per_unit_data(text: str, *, stay_ids: list[str], labels: list[int]) -> None:
    """No test unit's id, no label column, no array as long as the test set."""
    for sid in stay_ids:
        assert not re.search(rf"(?<![0-9a-f]){sid}(?![0-9a-f])", text), f"test stay {sid} appears"
    assert "y_true" not in text
    label_string = "".join(str(int(v)) for v in labels)
    assert label_string not in re.sub(r"[^01]", "", text) or len(label_string) < 40
    try:
        body = json.loads(text)
    except ValueError:
        return
    lengths: list[int] = []
    _walk_lists(body, lengths)
    assert len(labels) not in lengths, "an array as long as the test set is served"


@pytest.mark.slow
def test_upload_to_published_with_a_running_worker(
    celery_worker, api, user, staff_api, benchmark, sample_ihm_csv, demo_benchmark_dir
):
    t0 = time.perf_counter()
    r = api.post("/api/submissions/", _form(sample_ihm_csv), format="multipart")
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    wait_for(lambda: _status(pk) in ("published", "failed"), timeout=60, what="publication")
    latency = time.perf_counter() - t0
    sub = Submission.objects.get(public_id=pk)
    assert sub.status == "published", sub.failure_reason
    ev = sub.evaluations.get()
    assert ev.status == "succeeded" and ev.replicates == settings.SCORING_REPLICATES == 1000
    assert ev.benchmark_hash == benchmark.manifest_hash and ev.scorer_version
    assert len(ev.replicate_values) == 1000 and 0.5 < ev.primary_value < 1
    assert sub.queued_at and sub.started_at and sub.scored_at and sub.published_at
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps({
        "task": "in-hospital-mortality", "replicates": ev.replicates,
        "upload_to_published_seconds": round(latency, 2),
        "scoring_seconds": round(ev.duration_seconds, 2),
    }))  # fmt: skip
    print(f"\nupload to published: {latency:.1f} s (scoring {ev.duration_seconds:.1f} s)")
    assert latency < 15, f"upload to published took {latency:.1f} s"

    # Re-score through the staff API: a new run; the board shows it; the old one stays.
    r = staff_api.post(f"/api/submissions/{pk}/rescore/")
    assert r.status_code == 202 and r.json()["queued"] == 1
    new_id = r.json()["evaluations"][0]
    wait_for(lambda: Evaluation.objects.get(pk=new_id).is_finished, timeout=60, what="re-score")
    assert Evaluation.objects.get(pk=new_id).status == "succeeded"
    board = Client().get("/api/tasks/in-hospital-mortality/leaderboard/").json()
    assert board["rows"][0]["evaluation_id"] == new_id
    history = Client().get(f"/api/submissions/{pk}/evaluations/").json()
    assert [e["id"] for e in history] == [new_id, ev.pk]
    same = Evaluation.objects.get(pk=new_id)
    assert same.primary_value == ev.primary_value  # same seed, same replicates, same result

    # No page or API response holds a per-unit label or score.
    stay_ids, labels = _truth(demo_benchmark_dir)
    web = Client()
    web.force_login(user)
    responses = [
        web.get("/"),
        web.get("/tasks/in-hospital-mortality/"),
        web.get(f"/entries/{pk}/"),
        web.get(f"/entries/{pk}/evaluations/{ev.pk}/"),
        web.get("/me/submissions/"),
        api.get(f"/api/submissions/{pk}/"),
        api.get(f"/api/submissions/{pk}/report/"),
        api.get(f"/api/submissions/{pk}/evaluations/"),
        api.get("/api/submissions/"),
        api.get("/api/tasks/in-hospital-mortality/leaderboard/"),
        api.get("/api/tasks/in-hospital-mortality/leaderboard/?format=csv"),
    ]
    for resp in responses:
        assert resp.status_code == 200
        assert_no_per_unit_data(resp.content.decode(), stay_ids=stay_ids, labels=labels)
    page = responses[2].content.decode()
    assert "History of evaluations" in page and 'data-figure="roc"' in page


def test_a_bad_file_fails_with_a_reason_the_user_can_act_on(
    task_runner, api, benchmark, sample_ihm_csv
):
    lines = sample_ihm_csv.decode().splitlines()
    short = ("\n".join(lines[:-3]) + "\n").encode()  # three test units left out
    r = api.post("/api/submissions/", _form(short), format="multipart")
    assert r.status_code == 201
    pk = r.json()["id"]
    wait_for(lambda: _status(pk) in ("published", "failed"), timeout=60, what="scoring")
    body = api.get(f"/api/submissions/{pk}/").json()
    assert body["status"] == "failed" and body["failure_kind"] == "input"
    n = benchmark.tasks.get(slug="in-hospital-mortality").n_test_units
    assert body["failure_reason"].startswith(f"3 of the {n} units to predict have no row")
    assert "Traceback" not in body["failure_reason"]


def test_a_run_whose_worker_died_is_requeued_by_the_reaper_and_scored(
    task_runner, benchmark, sample_ihm_csv
):
    task = benchmark.tasks.get(slug="in-hospital-mortality")
    sub = SubmissionFactory(
        task=task, status="running", file=ContentFile(sample_ihm_csv, name="p.csv"),
        size=len(sample_ihm_csv),
    )  # fmt: skip
    ev = Evaluation.objects.create(
        submission=sub, trigger="submission", benchmark_hash=benchmark.manifest_hash,
        status="running", run_token=uuid.uuid4(), attempts=1, worker="lost-worker",
        started_at=timezone.now() - settings.SCORING_LEASE - timedelta(minutes=1),
    )  # fmt: skip
    result = evaluations_reap()
    assert result.requeued == [ev.pk] and result.resent == [ev.pk]
    wait_for(
        lambda: _status(sub.public_id) in ("published", "failed"), timeout=60, what="re-queued run"
    )
    ev.refresh_from_db()
    assert ev.status == "succeeded" and ev.attempts == 2
