"""Re-scoring from stored predictions: container entries are never run again, a re-score
is followed as a RescoreRun (progress, then the entries whose rank changed), and the staff
API shows it."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
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
    SKIP_NO_PREDICTIONS,
    rescore_entry,
    rescore_runs_settle,
    submission_rescore,
    submissions_rescore,
    task_rescore,
)
from leaderboard.board.services.stored_predictions import rescore_from_stored
from leaderboard.board.services.submissions import SubmissionMeta, submission_create
from scoring.version import SCORER_VERSION
from tests.leaderboard.conftest import ensure_tracks, wait_for


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
    owner = get_user_model().objects.create_user(name, f"{name}@example.org", "pw-rescore")
    from leaderboard.board.services.identity import account_create

    account_create(user=owner, email=owner.email, confirmed=True)
    sub = submission_create(
        owner=owner,
        task=task,
        track=Track.objects.get(slug=Track.PREDICTION_FILE),
        upload=ContentFile(data, name="predictions.csv"),
        meta=SubmissionMeta(
            method_name=name, training_data="train split", uses_ehr=True, uses_cxr=False
        ),
    )
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
