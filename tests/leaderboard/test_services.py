"""Services: entering submissions, limits, the run state machine, re-scoring, reaping."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone

from leaderboard.board.errors import DuplicateSubmission, NotAllowed, QuotaExceeded, UploadInvalid
from leaderboard.board.models import AuditLog, Evaluation, Submission, Track
from leaderboard.board.services.evaluations import (
    evaluation_claim,
    evaluation_fail,
    evaluation_finish,
    evaluations_reap,
)
from leaderboard.board.services.rescoring import submission_rescore, task_rescore
from leaderboard.board.services.submissions import (
    SubmissionMeta,
    submission_create,
    submission_hide,
    submission_publish,
)
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory, fake_report

pytestmark = pytest.mark.django_db

META = SubmissionMeta(
    method_name="LR", training_data="train split only", uses_ehr=True, uses_cxr=False
)


def _upload(content: bytes = b"stay_id,prediction\n1,0.5\n", name: str = "p.csv"):
    return SimpleUploadedFile(name, content, content_type="text/csv")


def _create(user, task, content=b"stay_id,prediction\n1,0.5\n", **kw):
    track = Track.objects.get(slug="prediction-file")
    return submission_create(
        owner=user, task=task, track=track, upload=_upload(content), meta=META, **kw
    )


def test_a_new_submission_is_stored_hashed_and_queued_after_commit(
    user, ihm_task, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sub = _create(user, ihm_task)
    assert sub.status == "submitted"
    assert sub.size == 25 and len(sub.sha256) == 64
    assert sub.file.storage.exists(sub.file.name)
    assert sub.file.name.startswith("submissions/in-hospital-mortality/")
    ev = sub.evaluations.get()
    assert ev.status == "queued" and ev.trigger == "submission" and ev.triggered_by == user
    assert len(callbacks) == 1  # the message goes out only once the rows are committed
    assert AuditLog.objects.filter(action="submission.create", submission=sub, actor=user).exists()


def test_an_empty_or_non_csv_file_is_refused_with_the_field(user, ihm_task):
    with pytest.raises(UploadInvalid) as exc:
        _create(user, ihm_task, content=b"")
    assert exc.value.field == "file" and "empty" in exc.value.message
    track = Track.objects.get(slug="prediction-file")
    with pytest.raises(UploadInvalid, match="not a CSV file"):
        submission_create(
            owner=user, task=ihm_task, track=track, upload=_upload(name="p.xlsx"), meta=META
        )


def test_the_same_file_twice_is_refused_with_the_earlier_entry(user, ihm_task):
    first = _create(user, ihm_task)
    with pytest.raises(DuplicateSubmission, match=f"entry {first.public_id}"):
        _create(user, ihm_task)


@override_settings(SUBMISSIONS_PER_DAY=2, FAILED_SUBMISSIONS_PER_DAY=2)
def test_the_daily_limit_counts_failed_files_apart(user, ihm_task):
    def fail(sub):
        Submission.objects.filter(pk=sub.pk).update(
            status="failed", failure_kind="input", failure_reason="bad"
        )

    a = _create(user, ihm_task, content=b"stay_id,prediction\n1,0.1\n")
    fail(a)  # a failed file does not take one of the two regular places
    _create(user, ihm_task, content=b"stay_id,prediction\n1,0.2\n")
    c = _create(user, ihm_task, content=b"stay_id,prediction\n1,0.3\n")
    with pytest.raises(QuotaExceeded, match="daily limit of 2"):
        _create(user, ihm_task, content=b"stay_id,prediction\n1,0.4\n")
    fail(c)  # frees a regular place, but two failed files reach the failed-file limit
    with pytest.raises(QuotaExceeded, match="failed today"):
        _create(user, ihm_task, content=b"stay_id,prediction\n1,0.5\n")


@override_settings(SUBMISSIONS_PER_DAY=1)
def test_over_the_daily_limit_the_message_says_when_to_come_back(user, ihm_task):
    _create(user, ihm_task)
    with pytest.raises(QuotaExceeded) as exc:
        _create(user, ihm_task, content=b"stay_id,prediction\n1,0.9\n")
    assert "daily limit of 1" in exc.value.message and "UTC" in exc.value.message
    assert exc.value.status_code == 429


@override_settings(SUBMISSIONS_PER_DAY=1)
def test_staff_and_reference_entries_are_not_limited(staff, ihm_task):
    _create(staff, ihm_task)
    _create(staff, ihm_task, content=b"stay_id,prediction\n1,0.9\n")


def test_a_run_is_claimed_once_and_a_stale_worker_cannot_write_its_result(user, ihm_task):
    sub = _create(user, ihm_task)
    ev = sub.evaluations.get()
    claimed = evaluation_claim(evaluation_id=ev.pk, worker="w1")
    assert claimed.status == "running" and claimed.attempts == 1
    assert evaluation_claim(evaluation_id=ev.pk, worker="w2") is None  # a duplicate message
    sub.refresh_from_db()
    assert sub.status == "running"
    report = fake_report(0.5, seed=1, replicates=10, scorer_version="9.9.9",
                         benchmark_hash=ihm_task.benchmark.manifest_hash)  # fmt: skip
    report["scenarios"]["paired"]["replicates"] = [0.5] * 10
    import uuid

    assert (
        evaluation_finish(evaluation_id=ev.pk, run_token=uuid.uuid4(), report=report, duration=1)
        is None
    )
    done = evaluation_finish(
        evaluation_id=ev.pk, run_token=claimed.run_token, report=report, duration=1
    )
    assert done.status == "succeeded" and done.replicate_values == [0.5] * 10
    # a second delivery of the same result is ignored
    assert (
        evaluation_finish(
            evaluation_id=ev.pk, run_token=claimed.run_token, report=report, duration=1
        )
        is None
    )
    sub.refresh_from_db()
    assert sub.status == "published" and sub.published_at is not None
    assert Evaluation.objects.filter(submission=sub, status="succeeded").count() == 1


def test_a_file_error_fails_the_entry_with_the_reason(user, ihm_task):
    sub = _create(user, ihm_task)
    ev = evaluation_claim(evaluation_id=sub.evaluations.get().pk)
    evaluation_fail(evaluation_id=ev.pk, run_token=ev.run_token, kind="input", code="missing_units",
                    message="3 test units are missing, first: 30091958")  # fmt: skip
    sub.refresh_from_db()
    assert sub.status == "failed" and sub.failure_kind == "input"
    assert sub.failure_reason == "3 test units are missing, first: 30091958"


def test_a_private_entry_is_scored_but_not_published(user, ihm_task):
    track = Track.objects.get(slug="prediction-file")
    meta = SubmissionMeta(
        method_name="x",
        training_data="train only!",
        uses_ehr=True,
        uses_cxr=True,
        visibility="private",
    )
    sub = submission_create(owner=user, task=ihm_task, track=track, upload=_upload(), meta=meta)
    ev = evaluation_claim(evaluation_id=sub.evaluations.get().pk)
    report = fake_report(0.7, seed=1, replicates=10, scorer_version="1", benchmark_hash="h")
    evaluation_finish(evaluation_id=ev.pk, run_token=ev.run_token, report=report, duration=1)
    sub.refresh_from_db()
    assert sub.status == "scored"
    submission_publish(actor=user, submission=sub)
    sub.refresh_from_db()
    assert sub.status == "published" and sub.visibility == "public"


def test_rescoring_adds_a_run_keeps_the_old_one_and_is_audited(staff):
    ev = EvaluationFactory()
    sub = ev.submission
    result = submission_rescore(actor=staff, submission=sub)
    assert len(result.queued) == 1
    again = submission_rescore(actor=staff, submission=sub)
    assert again.queued == [] and again.skipped == [sub.pk]  # one run in flight at a time
    assert sub.evaluations.count() == 2
    assert sub.evaluations.filter(pk=ev.pk, status="succeeded").exists()
    log = AuditLog.objects.get(action="evaluation.rescore")
    assert log.actor == staff and log.submission == sub


def test_rescoring_a_task_covers_scored_entries_and_skips_failed_files(staff):
    ev = EvaluationFactory()
    task = ev.submission.task
    SubmissionFactory(task=task, status="failed", failure_kind="input", failure_reason="bad")
    SubmissionFactory(task=task, status="failed", failure_kind="system", failure_reason="lost")
    result = task_rescore(actor=staff, task=task)
    assert len(result.queued) == 2


def test_only_staff_hide_and_hidden_entries_leave_the_board(staff):
    sub = EvaluationFactory().submission
    with pytest.raises(NotAllowed):
        submission_hide(actor=sub.owner, submission=sub, reason="x")
    submission_hide(actor=staff, submission=sub, reason="label leak suspected")
    sub.refresh_from_db()
    assert sub.status == "scored" and sub.visibility == "hidden"
    with pytest.raises(NotAllowed):
        submission_publish(actor=sub.owner, submission=sub)
    entry = AuditLog.objects.get(action="submission.hide")
    assert entry.details["reason"] == "label leak suspected" and entry.actor == staff


@override_settings(SCORING_MAX_ATTEMPTS=2)
def test_the_reaper_requeues_a_dead_workers_run_then_gives_up(
    user, ihm_task, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        sub = _create(user, ihm_task)
    ev = evaluation_claim(evaluation_id=sub.evaluations.get().pk, worker="dead")
    long_ago = timezone.now() - timedelta(hours=2)
    Evaluation.objects.filter(pk=ev.pk).update(started_at=long_ago)
    result = evaluations_reap()
    assert result.requeued == [ev.pk] and ev.pk in result.resent
    ev.refresh_from_db()
    assert ev.status == "queued" and ev.run_token is None
    sub.refresh_from_db()
    assert sub.status in ("queued", "submitted")
    ev = evaluation_claim(evaluation_id=ev.pk, worker="dead again")
    assert ev.attempts == 2
    Evaluation.objects.filter(pk=ev.pk).update(started_at=long_ago)
    result = evaluations_reap()
    assert result.abandoned == [ev.pk]
    sub.refresh_from_db()
    assert sub.status == "failed" and sub.failure_kind == "system"
    assert "does not count against your limits" in sub.failure_reason
    assert AuditLog.objects.filter(action="evaluation.requeue").count() == 1
    assert AuditLog.objects.filter(action="evaluation.abandon").count() == 1


def test_the_reaper_resends_a_queued_run_whose_message_never_left(
    user, ihm_task, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        sub = _create(user, ihm_task)
    ev = sub.evaluations.get()
    Evaluation.objects.filter(pk=ev.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    result = evaluations_reap()
    assert result.resent == [ev.pk]
    ev.refresh_from_db()
    assert ev.enqueued_at is not None
    sub.refresh_from_db()
    assert sub.status == "queued"


@pytest.mark.slow
def test_a_benchmark_with_another_benchmarks_name_and_version_is_refused(tmp_path):
    """Two benchmarks of one name and version but other data (say, a benchmark regenerated
    by a newer generator under its old version) are never confused: the second is refused
    with both hashes and what to change."""
    import json

    from benchmark_data.synth import generate
    from leaderboard.board.errors import BenchmarkInvalid
    from leaderboard.board.services.benchmarks import benchmark_register

    first = generate(tmp_path / "a", scale="tiny", seed=1)
    generate(tmp_path / "b", scale="tiny", seed=2)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    manifest["version"] = first["version"]
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    benchmark_register(uri=str(tmp_path / "a"))
    with pytest.raises(BenchmarkInvalid, match="another benchmark of that name and version"):
        benchmark_register(uri=str(tmp_path / "b"))
