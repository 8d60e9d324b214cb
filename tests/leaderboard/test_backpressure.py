"""Back-pressure: a burst of entries on one task never starves the others (fair queuing
per task), and the queues are shown per task, each participant seeing only their own
entries' places."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.test import override_settings
from django.utils import timezone

from leaderboard.board.models import Evaluation, Submission, Track
from leaderboard.board.selectors.benchmarks import task_truth
from leaderboard.board.selectors.queues import evaluation_queue_positions, queue_overview
from leaderboard.board.services.dispatch import scoring_dispatch
from leaderboard.board.services.evaluations import evaluation_enqueue
from leaderboard.board.services.identity import account_create
from leaderboard.board.services.submissions import SubmissionMeta, submission_create
from tests.leaderboard.conftest import wait_for
from tests.leaderboard.factories import SubmissionFactory, TaskFactory


def _queued(task, owner=None) -> Evaluation:
    sub = SubmissionFactory(
        task=task, status="submitted", published_at=None, **({"owner": owner} if owner else {})
    )
    return Evaluation.objects.create(submission=sub, trigger="submission", benchmark_hash="h")


@pytest.mark.django_db
@override_settings(SCORING_IN_FLIGHT_PER_TASK=2)
def test_a_task_sends_at_most_its_budget_and_another_task_is_sent_at_once():
    busy, quiet = TaskFactory(), TaskFactory(slug="phenotyping")
    burst = [_queued(busy) for _ in range(5)]
    sent = [evaluation_enqueue(evaluation_id=e.pk) for e in burst]
    assert sent == [True, True, False, False, False]
    other = _queued(quiet)
    assert evaluation_enqueue(evaluation_id=other.pk)
    # The held runs wait in their task's queue; their entries show as queued.
    assert Submission.objects.get(pk=burst[4].submission_id).status == "queued"
    assert evaluation_queue_positions(evaluation_ids=[burst[4].pk, other.pk]) == {
        burst[4].pk: 5,
        other.pk: 1,
    }
    # Nothing frees a slot: a dispatch sends nothing; the first run finishing frees one.
    assert scoring_dispatch() == []
    Evaluation.objects.filter(pk=burst[0].pk).update(
        status="failed", error_message="done", finished_at=timezone.now()
    )
    assert scoring_dispatch() == [burst[2].pk]
    assert Evaluation.objects.filter(enqueued_at__isnull=True).count() == 2


@pytest.mark.django_db
@override_settings(SCORING_IN_FLIGHT_PER_TASK=1)
def test_the_reaper_s_resend_keeps_to_the_budget():
    from datetime import timedelta

    from leaderboard.board.services.evaluations import evaluations_reap

    task = TaskFactory()
    runs = [_queued(task) for _ in range(3)]
    Evaluation.objects.filter(pk__in=[r.pk for r in runs]).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    result = evaluations_reap()
    assert result.resent == [runs[0].pk]
    assert evaluations_reap().resent == []  # the sent one is not due again yet


@pytest.mark.django_db
def test_queue_counts_are_public_and_only_one_s_own_entries_are_named(client, anon):
    task = TaskFactory()
    me = get_user_model().objects.create_user("me", "me@example.org", "pw-queue")
    theirs = [_queued(task) for _ in range(3)]
    mine = _queued(task, owner=me)
    body = anon.get("/api/queue/").json()
    (q,) = [q for q in body["queues"] if q["task"] == task.slug]
    assert (q["waiting"], q["running"]) == (4, 0) and "yours" not in body
    assert q["longest_wait_seconds"] is not None
    client.force_login(me)
    page = client.get("/queue/")
    assert page.status_code == 200
    assert mine.submission.public_id in page.content.decode()
    assert all(t.submission.public_id not in page.content.decode() for t in theirs)
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(me)
    yours = api.get("/api/queue/").json()["yours"]
    assert [(y["entry"], y["position"]) for y in yours] == [(mine.submission.public_id, 4)]
    overview = queue_overview(viewer=None)
    assert "yours" not in overview and overview["queued"] == 4


def _random_file(truth, seed: int) -> bytes:
    """A valid prediction file of random values for every test unit (base scenario)."""
    rng = np.random.default_rng(seed)
    frame = truth.keys.copy()
    task = truth.task
    if task.kind == "multilabel":
        for slug in task.label_slugs:
            frame[slug] = rng.random(len(frame)).round(4)
    else:
        frame["prediction"] = rng.random(len(frame)).round(4)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


@pytest.mark.slow
def test_a_burst_on_one_task_does_not_starve_another(benchmark, celery_worker):
    """Ten entries on in-hospital mortality, then one on phenotyping, with one worker
    process: the phenotyping entry is scored before the burst has finished."""
    ihm = benchmark.tasks.get(slug="in-hospital-mortality")
    pheno = benchmark.tasks.get(slug="phenotyping")
    track = Track.objects.get(slug=Track.PREDICTION_FILE)
    users = []
    for i in range(11):
        u = get_user_model().objects.create_user(f"b{i}", f"b{i}@example.org", "pw-burst")
        account_create(user=u, email=u.email, confirmed=True)
        users.append(u)
    meta = SubmissionMeta(method_name="m", training_data="t", uses_ehr=True, uses_cxr=False)
    ihm_truth, pheno_truth = task_truth(task=ihm), task_truth(task=pheno)
    burst = [
        submission_create(owner=users[i], task=ihm, track=track, meta=meta,
                          upload=ContentFile(_random_file(ihm_truth, i), name="p.csv"))
        for i in range(10)
    ]  # fmt: skip
    other = submission_create(
        owner=users[10], task=pheno, track=track, meta=meta,
        upload=ContentFile(_random_file(pheno_truth, 99), name="p.csv"),
    )  # fmt: skip
    ids = [s.pk for s in burst] + [other.pk]
    wait_for(
        lambda: not Submission.objects.filter(pk__in=ids, status__in=Submission.ACTIVE_STATUSES)
        .exists(),
        timeout=300,
        what="every entry to be scored",
    )  # fmt: skip
    scored = dict(Submission.objects.filter(pk__in=ids).values_list("pk", "scored_at"))
    assert all(scored.values()), Submission.objects.filter(pk__in=ids).values("status")
    assert scored[other.pk] < max(scored[s.pk] for s in burst)
    later = sum(scored[s.pk] > scored[other.pk] for s in burst)
    assert later >= 10 - 4 - 1  # at most the task's budget (4) and the one running before it
