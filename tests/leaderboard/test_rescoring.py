"""Re-scoring from stored predictions: container entries are never run again, a re-score
is followed as a RescoreRun (progress, then the entries whose rank changed), and the staff
API shows it."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from leaderboard.board.models import Evaluation, RescoreRun, Submission, Track
from leaderboard.board.services.containers import (
    container_predictions_keep,
    container_predictions_name,
)
from leaderboard.board.services.evaluations import evaluation_run
from leaderboard.board.services.rescoring import (
    RESCORE_INLINE_MAX,
    SKIP_NO_PREDICTIONS,
    rescore_entry,
    rescore_fan_out,
    rescore_runs_settle,
    submission_rescore,
    submissions_rescore,
    task_rescore,
)
from leaderboard.board.services.stored_predictions import rescore_from_stored
from scoring.version import SCORER_VERSION
from tests.leaderboard.conftest import ensure_tracks, file_entry, wait_for


def _inverted(sample_csv: bytes) -> bytes:
    """The sample's predictions turned upside down: a clearly worse entry."""
    frame = pd.read_csv(io.BytesIO(sample_csv))
    frame["prediction"] = (1 - frame["prediction"]).round(6)
    return frame.to_csv(index=False).encode()


def _random_ihm(sample_csv: bytes, seed: int) -> bytes:
    frame = pd.read_csv(io.BytesIO(sample_csv))
    frame["prediction"] = np.random.default_rng(seed).random(len(frame)).round(4)
    return frame.to_csv(index=False).encode()


def _entry(task, data: bytes, name: str, *, by_worker: bool = False) -> Submission:
    """A published entry, scored here (or by the running worker, ``by_worker``)."""
    sub = file_entry(task, data, name)
    if by_worker:
        wait_for(
            lambda: Submission.objects.filter(pk=sub.pk).exclude(status__in=sub.ACTIVE_STATUSES)
            .exists(),
            timeout=120,
            what="the entry to be scored",
        )  # fmt: skip
    else:
        evaluation_run(evaluation_id=sub.evaluations.get().pk, worker="test")
    sub.refresh_from_db()
    assert sub.status == Submission.Status.PUBLISHED, sub.failure_reason
    return sub


@pytest.mark.django_db
def test_a_container_entry_is_rescored_from_its_kept_predictions_never_run_again(
    ihm_task, sample_ihm_csv, tmp_path
):
    """A scorer upgrade scores the predictions the entry's last run kept: the new run has
    no container run of its own, and its result is the same, pinned to the scorer."""
    scored = _entry(ihm_task, sample_ihm_csv, "filer")
    first = scored.evaluations.get(status="succeeded")
    container = Track.objects.get(slug=Track.CONTAINER)
    image = Submission.objects.create(
        owner=scored.owner, task=ihm_task, track=container, method_name="image",
        training_data="t", uses_ehr=True, uses_cxr=False,
        file=default_storage.save("images/a.tar", ContentFile(b"not an image")),
        sha256="a" * 64, size=12, status=Submission.Status.PUBLISHED,
    )  # fmt: skip
    Evaluation.objects.create(
        submission=image, status="succeeded", trigger="submission", report=first.report,
        summary=first.summary, scorer_version=first.scorer_version,
        benchmark_hash=first.benchmark_hash, replicates=first.replicates,
        container_run_id="kept-run-1", primary_metric=first.primary_metric,
        primary_value=first.primary_value, replicate_values=first.replicate_values,
        form=first.form, seed=first.seed,
    )  # fmt: skip
    path = tmp_path / "predictions.csv"
    path.write_bytes(sample_ihm_csv)
    assert container_predictions_keep(path=path, run_id="kept-run-1")
    assert default_storage.exists(container_predictions_name("kept-run-1"))
    # A second image whose run kept nothing: skipped, with the reason.
    unkept = Submission.objects.create(
        owner=scored.owner, task=ihm_task, track=container, method_name="old image",
        training_data="t", uses_ehr=True, uses_cxr=False, file=image.file.name,
        sha256="b" * 64, size=12, status=Submission.Status.PUBLISHED,
    )  # fmt: skip
    Evaluation.objects.create(
        submission=unkept, status="succeeded", trigger="submission", report=first.report,
        summary=first.summary, scorer_version=first.scorer_version,
        benchmark_hash=first.benchmark_hash, replicates=first.replicates,
        container_run_id="never-kept", primary_metric=first.primary_metric,
        primary_value=first.primary_value, replicate_values=first.replicate_values,
        form=first.form, seed=first.seed,
    )  # fmt: skip

    result = submissions_rescore(actor=None, submissions=[image, unkept], scope="test")
    run = RescoreRun.objects.get(pk=result.rescore_run)
    assert run.total == 1 and len(result.queued) == 1
    assert run.skipped == [{"entry": unkept.public_id, "reason": SKIP_NO_PREDICTIONS}]
    (evaluation_id,) = result.queued
    assert rescore_from_stored(evaluation_id=evaluation_id)
    again = rescore_entry(evaluation_id=evaluation_id, worker="test")
    assert again is not None and again.status == "succeeded", again and again.error_message
    assert again.container_run_id == "" and again.container_run is None
    assert again.scorer_version == SCORER_VERSION
    assert again.benchmark_hash == ihm_task.benchmark.manifest_hash
    assert again.seed == first.seed and again.replicates == first.replicates
    assert again.primary_value == pytest.approx(first.primary_value)
    assert rescore_runs_settle() == [run.pk]
    run.refresh_from_db()
    assert (run.status, run.done, run.failed) == ("finished", 1, 0)


@pytest.mark.django_db
def test_a_carried_over_container_run_is_not_taken_for_a_rescore(ihm_task):
    """A container entry's run on a benchmark it has no kept predictions for (carried
    over to a new version) goes to the container runner, not to the stored-file path."""
    ensure_tracks()
    image = Submission.objects.create(
        owner=get_user_model().objects.create_user("c1"), task=ihm_task,
        track=Track.objects.get(slug=Track.CONTAINER), method_name="image",
        training_data="t", uses_ehr=True, uses_cxr=False, file="images/x.tar",
        sha256="c" * 64, size=1, status=Submission.Status.PUBLISHED,
    )  # fmt: skip
    run = Evaluation.objects.create(
        submission=image, trigger=Evaluation.Trigger.RESCORE, benchmark_hash="new"
    )
    assert not rescore_from_stored(evaluation_id=run.pk)


@pytest.mark.django_db
def test_the_summary_lists_the_entries_whose_rank_changed(ihm_task, sample_ihm_csv):
    """Two entries swap their stored files before a re-score: the summary names both, each
    with its old and new rank."""
    good = _entry(ihm_task, sample_ihm_csv, "good")
    weak = _entry(ihm_task, _inverted(sample_ihm_csv), "weak")
    result = task_rescore(actor=None, task=ihm_task, note="scorer upgrade")
    run = RescoreRun.objects.get(pk=result.rescore_run)
    assert run.ranks_before == {str(ihm_task.pk): {good.public_id: 1, weak.public_id: 2}}
    good_bytes, weak_bytes = good.file.read(), weak.file.read()
    for sub, data in ((good, weak_bytes), (weak, good_bytes)):
        with default_storage.open(sub.file.name, "wb") as fh:
            fh.write(data)
    assert rescore_runs_settle() == []  # runs still queued
    for evaluation_id in result.queued:
        assert rescore_entry(evaluation_id=evaluation_id).status == "succeeded"
    assert rescore_runs_settle() == [run.pk]
    run.refresh_from_db()
    changes = {c["entry"]: (c["old_rank"], c["new_rank"], c["rescored"]) for c in run.rank_changes}
    assert changes == {good.public_id: (1, 2, True), weak.public_id: (2, 1, True)}
    assert {c["task"] for c in run.rank_changes} == {ihm_task.slug}


@pytest.mark.slow
def test_a_rescore_fans_out_to_a_real_worker_and_reports_progress(
    benchmark, sample_ihm_csv, staff_api, api, celery_worker
):
    """Three entries re-scored by a real Celery worker: the re-score finishes with every
    run done, the staff API shows its counts and summary, a participant gets 403."""
    task = benchmark.tasks.get(slug="in-hospital-mortality")
    subs = [
        _entry(task, _random_ihm(sample_ihm_csv, seed), f"w{seed}", by_worker=True)
        for seed in range(3)
    ]
    result = task_rescore(actor=None, task=task)
    assert len(result.queued) == 3
    wait_for(
        lambda: RescoreRun.objects.filter(pk=result.rescore_run, status="finished").exists(),
        timeout=180,
        what="the re-score to finish",
    )
    body = staff_api.get(f"/api/rescores/{result.rescore_run}/").json()
    assert (body["total"], body["done"], body["failed"], body["running"]) == (3, 3, 0, 0)
    assert body["rank_changes"] == [] and body["status"] == "finished"
    listed = staff_api.get("/api/rescores/").json()["results"]
    assert listed[0]["id"] == result.rescore_run
    assert api.get(f"/api/rescores/{result.rescore_run}/").status_code == 403
    assert staff_api.get("/api/rescores/999999/").status_code == 404
    assert all(
        Evaluation.objects.filter(submission=s, trigger="rescore", status="succeeded").count() == 1
        for s in subs
    )


@pytest.mark.django_db
def test_a_single_entry_rescore_is_a_rescore_run_too(ihm_task, sample_ihm_csv):
    sub = _entry(ihm_task, sample_ihm_csv, "single")
    result = submission_rescore(actor=None, submission=sub)
    run = RescoreRun.objects.get(pk=result.rescore_run)
    assert run.total == 1 and run.status == "running"
    assert list(run.evaluations.values_list("submission_id", flat=True)) == [sub.pk]


@pytest.mark.django_db
def test_the_admin_shows_a_rescore_s_progress_and_rank_changes(client, ihm_task):
    from tests.leaderboard.factories import UserFactory

    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    run = RescoreRun.objects.create(scope="task in-hospital-mortality", total=0)
    run.skipped = [{"entry": "abcdefghijkl", "reason": SKIP_NO_PREDICTIONS}]
    run.rank_changes = [
        {"task": "in-hospital-mortality", "entry": "mnopqrstuvwx", "method": "Fusion",
         "old_rank": 2, "new_rank": 1, "rescored": True},
    ]  # fmt: skip
    run.status = "finished"
    run.save()
    client.force_login(root)
    listing = client.get("/admin/board/rescorerun/")
    assert listing.status_code == 200 and "0 / 0 / 0" in listing.content.decode()
    page = client.get(f"/admin/board/rescorerun/{run.pk}/change/").content.decode()
    assert "mnopqrstuvwx Fusion" in page and "abcdefghijkl" in page
    assert client.get("/admin/board/rescorerun/add/").status_code == 403


# A re-score of many entries asked for in a request: a job makes its runs ----------------------
def _scored_entries(n: int) -> list[Submission]:
    """``n`` published entries with a result each, over three tasks."""
    from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory, TaskFactory

    tasks = [
        TaskFactory(slug=s) for s in ("in-hospital-mortality", "phenotyping", "decompensation")
    ]
    return [
        EvaluationFactory(submission=SubmissionFactory(task=tasks[i % 3]), value=0.5 + i / 1000)
        .submission
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.django_db
def test_a_rescore_of_every_entry_asked_in_a_request_only_records_it_and_a_job_makes_its_runs(
    staff_api, client, monkeypatch, django_capture_on_commit_callbacks,
    django_assert_max_num_queries,
):  # fmt: skip
    """90 entries (30 a task): the request records the re-score (scope, ranks before, the
    entries) and answers, with no run, audit row or admission made; the re-score says it is
    starting, 0 of 90, in the API and the admin, until its job (on the scoring queue) has
    made the runs and sent the first of them through the fair queue."""
    from leaderboard.board import tasks
    from leaderboard.board.models import AuditLog
    from leaderboard.celery import app
    from tests.leaderboard.factories import UserFactory

    entries = _scored_entries(90)
    # One query per entry would be 90 and more.
    with django_capture_on_commit_callbacks() as callbacks, django_assert_max_num_queries(60):
        r = staff_api.post("/api/rescore/", {})
    body = r.json()
    assert r.status_code == 202, body
    assert body == {
        "queued": 0,
        "skipped": 0,
        "evaluations": [],
        "rescore_run": body["rescore_run"],
    }
    run = RescoreRun.objects.get(pk=body["rescore_run"])
    assert (run.status, run.scope, run.total) == ("starting", "all", 90)
    assert sorted(run.entries) == sorted(s.pk for s in entries) and len(run.ranks_before) == 3
    assert not Evaluation.objects.filter(trigger="rescore").exists()
    assert not AuditLog.objects.filter(action="evaluation.rescore").exists()
    assert len(callbacks) == 1  # the job's message, nothing else
    detail = staff_api.get(f"/api/rescores/{run.pk}/").json()
    assert (detail["status"], detail["total"], detail["done"], detail["waiting"]) == (
        "starting", 90, 0, 0,
    )  # fmt: skip
    assert detail["error"] == ""
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    listing = client.get("/admin/board/rescorerun/").content.decode()
    assert "0 / 0 / 90, being prepared" in listing
    assert app.amqp.router.route({}, "board.rescore_fan_out", args=[run.pk])["queue"].name == (
        settings.SCORING_QUEUE
    )
    # The message names the re-score; its job makes every run, audited, in the re-score,
    # and each task's first runs are sent through the fair queue.
    sent: list[int] = []
    monkeypatch.setattr(tasks.rescore_fan_out_task, "apply_async",
                        lambda args, **kwargs: sent.append(args[0]))  # fmt: skip
    callbacks[0]()
    assert sent == [run.pk]
    with django_capture_on_commit_callbacks(execute=True):
        tasks.rescore_fan_out_task(run.pk)
    run.refresh_from_db()
    assert (run.status, run.total, run.entries, run.skipped) == ("running", 90, [], [])
    assert run.evaluations.count() == 90
    assert AuditLog.objects.filter(action="evaluation.rescore").count() == 90
    sent = run.evaluations.filter(enqueued_at__isnull=False).count()
    assert sent == 3 * settings.RESCORE_IN_FLIGHT_PER_TASK
    detail = staff_api.get(f"/api/rescores/{run.pk}/").json()
    assert (detail["status"], detail["total"], detail["waiting"]) == ("running", 90, 90)
    # A second delivery of the job finds the re-score started and does nothing.
    assert rescore_fan_out(rescore_run_id=run.pk) is None
    assert Evaluation.objects.filter(trigger="rescore").count() == 90


@pytest.mark.django_db
def test_a_rescore_job_that_fails_is_recorded_on_the_rescore_and_makes_no_run(
    staff_api, monkeypatch, django_capture_on_commit_callbacks
):
    from leaderboard.board.models import AuditLog
    from leaderboard.board.services import rescoring

    entries = _scored_entries(RESCORE_INLINE_MAX + 1)
    made = []
    real_create = rescoring.evaluation_create

    def create(**kwargs):
        if len(made) == 5:
            raise RuntimeError("database went away")
        made.append(kwargs["submission"].pk)
        return real_create(**kwargs)

    monkeypatch.setattr(rescoring, "evaluation_create", create)
    with django_capture_on_commit_callbacks():
        result = submissions_rescore(actor=None, submissions=entries, scope="test",
                                     from_request=True)  # fmt: skip
    assert result.preparing == len(entries) and result.queued == []
    run = rescore_fan_out(rescore_run_id=result.rescore_run)
    assert run is not None and run.status == "failed"
    assert run.error == (
        "its runs could not be made (RuntimeError: database went away); no run was made: "
        "start it again"
    )
    assert not Evaluation.objects.filter(trigger="rescore").exists()  # all or none
    assert not AuditLog.objects.filter(action="evaluation.rescore").exists()
    detail = staff_api.get(f"/api/rescores/{run.pk}/").json()
    assert (detail["status"], detail["error"], detail["done"]) == ("failed", run.error, 0)
    assert detail["finished_at"] is not None
    assert rescore_fan_out(rescore_run_id=run.pk) is None  # a failed re-score stays so


@pytest.mark.django_db
def test_a_rescore_job_the_broker_did_not_take_is_sent_again_by_the_reaper(
    monkeypatch, django_capture_on_commit_callbacks
):
    from leaderboard.board import tasks

    sent: list[int] = []

    def broker_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(tasks.rescore_fan_out_task, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        result = submissions_rescore(actor=None, submissions=_scored_entries(RESCORE_INLINE_MAX + 1),
                                     scope="test", from_request=True)  # fmt: skip
    run = RescoreRun.objects.get(pk=result.rescore_run)
    assert run.status == "starting" and "could not be sent (ConnectionError" in run.error
    monkeypatch.setattr(tasks.rescore_fan_out_task, "apply_async",
                        lambda args, **kwargs: sent.append(args[0]))  # fmt: skip
    assert rescore_runs_settle() == []
    assert sent == [run.pk]
    run.refresh_from_db()
    assert run.status == "starting" and run.error == ""
    # Sent, it is not sent again until it is late.
    assert rescore_runs_settle() == [] and sent == [run.pk]


@pytest.mark.django_db
def test_a_few_entries_are_rescored_in_the_request_as_before(ihm_task, sample_ihm_csv):
    subs = [_entry(ihm_task, _random_ihm(sample_ihm_csv, seed), f"f{seed}") for seed in range(2)]
    result = submissions_rescore(actor=None, submissions=subs, scope="test", from_request=True)
    assert len(result.queued) == 2 and result.preparing == 0
    assert RescoreRun.objects.get(pk=result.rescore_run).status == "running"


def test_a_rescore_of_many_entries_from_the_api_is_run_by_a_worker(
    benchmark, sample_ihm_csv, staff_api, monkeypatch, task_runner
):
    """The job and the entries' runs done by the worker: the re-score asked for in the
    request, starting, ends finished with every run done."""
    from leaderboard.board.services import rescoring

    monkeypatch.setattr(rescoring, "RESCORE_INLINE_MAX", 1)
    task = benchmark.tasks.get(slug="in-hospital-mortality")
    for seed in range(3):
        _entry(task, _random_ihm(sample_ihm_csv, seed), f"j{seed}", by_worker=True)
    r = staff_api.post(f"/api/tasks/{task.slug}/rescore/")
    assert r.status_code == 202 and r.json()["queued"] == 0
    run_id = r.json()["rescore_run"]
    wait_for(
        lambda: RescoreRun.objects.filter(pk=run_id, status__in=["finished", "failed"]).exists(),
        timeout=180,
        what="the re-score to finish",
    )
    body = staff_api.get(f"/api/rescores/{run_id}/").json()
    assert body["status"] == "finished", body
    assert (body["total"], body["done"], body["failed"], body["error"]) == (3, 3, 0, "")


@pytest.mark.django_db
def test_the_admin_s_rescore_of_many_selected_entries_starts_a_job(
    client, django_capture_on_commit_callbacks
):
    from tests.leaderboard.factories import UserFactory

    entries = _scored_entries(RESCORE_INLINE_MAX + 1)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    with django_capture_on_commit_callbacks() as callbacks:
        r = client.post("/admin/board/submission/", {
            "action": "rescore", "_selected_action": [s.pk for s in entries],
        }, follow=True)  # fmt: skip
    run = RescoreRun.objects.get()
    assert (run.status, run.scope, run.total, len(callbacks)) == ("starting", "admin selection",
                                                                 len(entries), 1)  # fmt: skip
    message = f"Re-score number {run.pk} of {len(entries)} entries is starting"
    assert message in r.content.decode()
    assert not Evaluation.objects.filter(trigger="rescore").exists()
    RescoreRun.objects.filter(pk=run.pk).update(status="failed", error="its runs could not be made")
    page = client.get(f"/admin/board/rescorerun/{run.pk}/change/").content.decode()
    assert "Failed to start" in page and "its runs could not be made" in page
