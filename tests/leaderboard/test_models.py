"""The database itself refuses inconsistent rows, whatever the code does."""

import pytest
from django.db import IntegrityError, transaction

from leaderboard.board.models import Benchmark, Evaluation, Submission, Task
from tests.leaderboard.factories import (
    BenchmarkFactory,
    EvaluationFactory,
    SubmissionFactory,
    SuiteFactory,
    TaskFactory,
)

pytestmark = pytest.mark.django_db


def _refused(fn):
    with pytest.raises(IntegrityError), transaction.atomic():
        fn()


def test_a_published_entry_must_be_public():
    _refused(lambda: SubmissionFactory(status="published", visibility="private"))


def test_a_failed_entry_must_say_why():
    _refused(lambda: SubmissionFactory(status="failed", failure_kind="input", failure_reason=""))
    _refused(lambda: SubmissionFactory(status="scored", failure_kind="input", failure_reason="x"))
    SubmissionFactory(status="failed", failure_kind="input", failure_reason="bad column")


def test_unknown_status_and_task_slug_are_refused():
    _refused(lambda: SubmissionFactory(status="lost"))
    # A task must be one its benchmark's suite declares ...
    with pytest.raises(IntegrityError, match="'readmission' is not declared by the suite"):
        TaskFactory(slug="readmission")
    # ... and the database refuses a slug that is no slug, whatever writes it.
    task = TaskFactory(slug="phenotyping")
    _refused(lambda: Task.objects.filter(pk=task.pk).update(slug="Pheno typing"))


def test_each_suite_has_its_own_current_benchmark():
    medmod = BenchmarkFactory(is_current=True)
    other_suite = SuiteFactory(slug="yu-2025", title="Yu et al. 2025")
    other = BenchmarkFactory(is_current=True, suite=other_suite)
    assert {medmod.pk, other.pk} == set(
        Benchmark.objects.filter(is_current=True).values_list("pk", flat=True)
    )
    _refused(lambda: BenchmarkFactory(is_current=True, suite=other_suite))


def test_an_entry_uses_at_least_one_modality_and_a_threshold_in_0_1():
    _refused(lambda: SubmissionFactory(uses_ehr=False, uses_cxr=False))
    _refused(lambda: SubmissionFactory(threshold=1.5))


def test_only_one_benchmark_of_a_suite_is_current():
    BenchmarkFactory(is_current=True)
    _refused(lambda: BenchmarkFactory(is_current=True))


def test_one_owner_cannot_enter_the_same_file_twice_for_a_task_unless_it_failed():
    first = SubmissionFactory(status="scored", visibility="private")
    _refused(lambda: SubmissionFactory(owner=first.owner, task=first.task, sha256=first.sha256))
    Submission.objects.filter(pk=first.pk).update(
        status="failed", failure_kind="input", failure_reason="bad"
    )
    SubmissionFactory(owner=first.owner, task=first.task, sha256=first.sha256)


def test_a_submission_has_at_most_one_run_in_flight():
    sub = SubmissionFactory()
    Evaluation.objects.create(submission=sub, trigger="rescore", benchmark_hash="x")
    _refused(
        lambda: Evaluation.objects.create(submission=sub, trigger="rescore", benchmark_hash="x")
    )


def test_a_succeeded_run_holds_a_report_and_a_failed_one_a_message():
    _refused(lambda: EvaluationFactory(report=None))
    _refused(lambda: EvaluationFactory(status="failed", error_message=""))
