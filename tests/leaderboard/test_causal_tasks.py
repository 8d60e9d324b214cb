"""Tasks scored through the streaming gateway only, and how entries are labelled by how
causally they were run (docs/platform.md, "Causal runs")."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from leaderboard.board.models import Submission, Track
from tests.leaderboard.conftest import ensure_tracks
from tests.leaderboard.factories import EvaluationFactory

pytestmark = pytest.mark.django_db

HOURLY_CSV = b"stay_id,period_length,prediction\n1,5,0.1\n"


def _form(task: str, **kw):
    data = {
        "task": task,
        "method_name": "Hourly model",
        "modalities": "ehr",
        "training_data": "train split only",
        "file": SimpleUploadedFile("pred.csv", HOURLY_CSV, content_type="text/csv"),
    }
    data.update(kw)
    return data


@pytest.mark.parametrize("task", ["decompensation", "length-of-stay", "radiology"])
def test_a_prediction_file_for_a_gateway_only_task_is_refused_with_the_way_to_submit(
    api, benchmark, task
):
    """The public test files list no units of tasks with several prediction times per stay:
    a file is refused before anything is stored or counted, and the message names the
    container track and the gateway."""
    r = api.post("/api/submissions/", _form(task), format="multipart")
    assert r.status_code == 400, r.content
    body = r.json()
    text = str(body)
    assert "container track" in text and "streaming gateway" in text
    assert "several prediction times per stay" in text
    assert Submission.objects.count() == 0


def test_tasks_say_which_are_scored_through_the_gateway_only(anon, benchmark):
    tasks = {t["slug"]: t for t in anon.get("/api/tasks/").json()}
    assert tasks["decompensation"]["gateway_only"] is True
    assert tasks["length-of-stay"]["gateway_only"] is True
    assert tasks["in-hospital-mortality"]["gateway_only"] is False
    assert tasks["phenotyping"]["gateway_only"] is False
    assert tasks["radiology"]["gateway_only"] is True
    # The gateway-only tasks count their clean test units; the others their public ones.
    assert tasks["decompensation"]["n_test_units"] > 50_000
    assert tasks["in-hospital-mortality"]["n_test_units"] < 400


def test_the_board_and_exports_say_which_entries_were_run_causally(anon, benchmark):
    """A prediction file is marked as not run causally, a container entry (streamed by the
    gateway) as causal, in the board JSON, the CSV export and the entry API."""
    task = benchmark.tasks.get(slug="in-hospital-mortality")
    file_ev = EvaluationFactory(value=0.8, submission__task=task)
    ensure_tracks()  # a transactional test run before this one flushed them
    container = Track.objects.get(slug=Track.CONTAINER)
    box_ev = EvaluationFactory(value=0.7, submission__task=task, submission__track=container)
    board = anon.get("/api/tasks/in-hospital-mortality/leaderboard/").json()
    causal = {row["entry_id"]: row["causal"] for row in board["rows"]}
    assert causal == {file_ev.submission.public_id: False, box_ev.submission.public_id: True}
    csv = anon.get("/api/tasks/in-hospital-mortality/leaderboard/?format=csv").content.decode()
    header, *rows = csv.strip().splitlines()
    col = header.split(",").index("causal")
    got = {r.split(",")[header.split(",").index("entry_id")]: r.split(",")[col] for r in rows}
    assert got == {file_ev.submission.public_id: "0", box_ev.submission.public_id: "1"}
    entry = anon.get(f"/api/submissions/{box_ev.submission.public_id}/").json()
    assert entry["causal"] is True and entry["verification"] == "verified"
    page = anon.get("/tasks/in-hospital-mortality/").content.decode()
    assert "verified · causal" in page and "self-reported · not run causally" in page


def test_container_entries_follow_a_new_benchmark_and_their_history_says_why(anon):
    """A new benchmark version changes every entry's inputs: container entries move to it
    and are re-run through the gateway, with a note in their history; earlier runs stay;
    prediction files stay on their benchmark."""
    from django.core.management import call_command

    from leaderboard.board.models import AuditLog, Benchmark, Evaluation
    from tests.leaderboard.factories import BenchmarkFactory, TaskFactory

    old = BenchmarkFactory(is_current=True, version="demo-seed42")
    old_task = TaskFactory(benchmark=old)
    ensure_tracks()  # a transactional test run before this one flushed them
    container = Track.objects.get(slug=Track.CONTAINER)
    box = EvaluationFactory(
        value=0.7, submission__task=old_task, submission__track=container
    ).submission  # fmt: skip
    file_entry = EvaluationFactory(value=0.8, submission__task=old_task).submission
    Benchmark.objects.filter(pk=old.pk).update(is_current=False)
    new = BenchmarkFactory(is_current=True, version="demo-seed42-g4")
    new_task = TaskFactory(benchmark=new)

    call_command("rescore", "--carry-containers")

    box.refresh_from_db()
    file_entry.refresh_from_db()
    assert box.task == new_task and file_entry.task == old_task
    runs = list(Evaluation.objects.filter(submission=box).order_by("created_at", "id"))
    assert [r.status for r in runs] == ["succeeded", "queued"]
    assert runs[0].benchmark_hash == old.manifest_hash
    assert runs[1].benchmark_hash == new.manifest_hash
    assert "streaming gateway" in runs[1].note and str(old) in runs[1].note
    assert AuditLog.objects.filter(action=AuditLog.Action.RESCORE, submission=box).exists()
    api_runs = anon.get(f"/api/submissions/{box.public_id}/evaluations/").json()
    notes = [r["note"] for r in api_runs]
    assert any("streaming gateway" in n for n in notes)
    page = anon.get(f"/entries/{box.public_id}/").content.decode()
    assert "Re-run through the streaming gateway on benchmark" in page
    # Carried once: a second call finds nothing left to move.
    call_command("rescore", "--carry-containers")
    assert Evaluation.objects.filter(submission=box).count() == 2
