"""Back-pressure: a burst of entries on one task never starves the others (fair queuing
per task), and the queues are shown per task, each participant seeing only their own
entries' places."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.test import override_settings
from django.utils import timezone

from leaderboard.board.models import Evaluation, Submission, Track, WorkerHost
from leaderboard.board.routing import evaluation_queue
from leaderboard.board.selectors.benchmarks import task_truth
from leaderboard.board.selectors.queues import evaluation_queue_positions, queue_overview
from leaderboard.board.services.dispatch import scoring_dispatch
from leaderboard.board.services.evaluations import evaluation_enqueue
from leaderboard.board.services.fair_queue import GPU, NEW, run_kind
from leaderboard.board.services.identity import account_create
from leaderboard.board.services.submissions import SubmissionMeta, submission_create
from leaderboard.board.services.worker_hosts import worker_host_announce, worker_host_seen
from tests.leaderboard.conftest import wait_for
from tests.leaderboard.factories import EvaluationFactory, SubmissionFactory, TaskFactory


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


# GPU runs: a run that waits for a GPU host holds none of its task's slots ------------------
def _container_track() -> Track:
    from tests.leaderboard.conftest import ensure_tracks

    ensure_tracks()
    return Track.objects.get(slug=Track.CONTAINER)


def _queued_image(task, *, gpu: bool) -> Evaluation:
    sub = SubmissionFactory(task=task, track=_container_track(), needs_gpu=gpu,
                            status="submitted", published_at=None)  # fmt: skip
    return Evaluation.objects.create(submission=sub, trigger="submission", benchmark_hash="h")


@pytest.mark.django_db
@override_settings(SCORING_IN_FLIGHT_PER_TASK=4)
def test_gpu_runs_waiting_for_a_gpu_host_do_not_hold_back_the_task_s_other_entries():
    """No GPU host: four GPU entries stay pending, saying they wait for a GPU worker, and
    hold no slot; the task's CPU and prediction-file entries are sent at once."""
    from leaderboard.board.selectors.worker_hosts import WAITING_FOR_GPU, submission_waiting_for

    task = TaskFactory()
    gpu = [_queued_image(task, gpu=True) for _ in range(4)]
    assert [evaluation_enqueue(evaluation_id=e.pk) for e in gpu] == [False] * 4
    cpu, csv = _queued_image(task, gpu=False), _queued(task)
    assert evaluation_enqueue(evaluation_id=cpu.pk) and evaluation_enqueue(evaluation_id=csv.pk)
    for run in gpu:
        run.refresh_from_db()
        assert run.status == "queued" and run.enqueued_at is None
        sub = Submission.objects.get(pk=run.submission_id)
        assert sub.status == "queued" and submission_waiting_for(submission=sub) == WAITING_FOR_GPU
    # A dispatch sends none of them either, and a burst of other entries gets the whole
    # budget.
    assert scoring_dispatch() == []
    more = [_queued(task) for _ in range(3)]
    assert [evaluation_enqueue(evaluation_id=e.pk) for e in more] == [True, True, False]


def _gpu_host(**fields) -> WorkerHost:
    host = worker_host_announce(name="celery@gpu-1", queues=[settings.GPU_RUNS_QUEUE],
                                concurrency=1, gpus=1)  # fmt: skip
    if fields:
        WorkerHost.objects.filter(pk=host.pk).update(**fields)
    return host


def _sent_ids(runs) -> list[int]:
    """The runs that hold a slot: sent, or running."""
    return sorted(
        Evaluation.objects.filter(pk__in=[r.pk for r in runs], status__in=["queued", "running"],
                                  enqueued_at__isnull=False)
        .values_list("pk", flat=True)
    )  # fmt: skip


@pytest.mark.django_db
@override_settings(SCORING_IN_FLIGHT_PER_TASK=2)
def test_a_gpu_host_that_comes_sends_the_waiting_gpu_runs_within_a_budget_of_their_own(
    django_capture_on_commit_callbacks,
):
    """GPU runs wait for a GPU host in the database; the host's announcement sends them, as
    many as their own budget, without taking the slots of the task's other entries. A
    drained host or one gone quiet takes none; heard from again, it sends them."""
    task = TaskFactory()
    gpu = [_queued_image(task, gpu=True) for _ in range(3)]
    csv = [_queued(task) for _ in range(3)]
    assert [evaluation_enqueue(evaluation_id=e.pk) for e in gpu + csv] == [
        False, False, False, True, True, False,
    ]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        _gpu_host()
    assert _sent_ids(gpu) == [gpu[0].pk, gpu[1].pk]
    assert _sent_ids(csv) == [csv[0].pk, csv[1].pk]  # the others' budget is still theirs
    assert evaluation_queue(gpu[0].pk) == settings.GPU_RUNS_QUEUE
    # The host is drained: a GPU run that finishes frees a GPU slot that nothing takes.
    WorkerHost.objects.update(drained=True)
    Evaluation.objects.filter(pk=gpu[0].pk).update(
        status="failed", error_message="done", finished_at=timezone.now()
    )
    assert scoring_dispatch() == []
    # Undrained but quiet past WORKER_HOST_STALE, it still takes none; its next heartbeat
    # sends the waiting run.
    quiet = timezone.now() - settings.WORKER_HOST_STALE - timedelta(seconds=5)
    WorkerHost.objects.update(drained=False, last_seen=quiet)
    assert scoring_dispatch() == []
    with django_capture_on_commit_callbacks(execute=True):
        worker_host_seen(name="celery@gpu-1")
    assert _sent_ids(gpu) == [gpu[1].pk, gpu[2].pk]


@pytest.mark.django_db
def test_a_gpu_entry_s_rescore_of_its_kept_predictions_is_no_gpu_run(tmp_path):
    """A re-score of the predictions a GPU entry's run kept is scored on the scoring queue:
    it needs no GPU host and takes a re-score's slot; one without kept predictions runs the
    image again, a GPU run."""
    from leaderboard.board.services.containers import container_predictions_keep
    from leaderboard.board.services.stored_predictions import rescore_from_stored

    task = TaskFactory()
    kept, unkept = (
        EvaluationFactory(
            submission=SubmissionFactory(task=task, track=_container_track(), needs_gpu=True),
            container_run_id=run_id,
        ).submission
        for run_id in ("kept-1", "")
    )
    path = tmp_path / "predictions.csv"
    path.write_text("stay_id,prediction\n1,0.5\n")
    assert container_predictions_keep(path=path, run_id="kept-1")
    runs = {
        sub.pk: Evaluation.objects.create(submission=sub, trigger="rescore",
                                          benchmark_hash=task.benchmark.manifest_hash)
        for sub in (kept, unkept)
    }  # fmt: skip
    for sub_pk, run in runs.items():
        to_gpu = evaluation_queue(run.pk) == settings.GPU_RUNS_QUEUE and not (
            rescore_from_stored(evaluation_id=run.pk)
        )
        assert to_gpu == (sub_pk == unkept.pk)
        assert run_kind(evaluation_id=run.pk) == (GPU if to_gpu else NEW)
    # No GPU host: the kept one is sent, the other waits.
    assert evaluation_enqueue(evaluation_id=runs[kept.pk].pk)
    assert not evaluation_enqueue(evaluation_id=runs[unkept.pk].pk)


@pytest.mark.django_db
def test_a_waiting_gpu_entry_says_so_in_the_queue_page_and_api(client):
    me = get_user_model().objects.create_user("gpu-me", "gpu-me@example.org", "pw-queue")
    task = TaskFactory()
    sub = SubmissionFactory(task=task, owner=me, track=_container_track(), needs_gpu=True,
                            status="submitted", published_at=None)  # fmt: skip
    run = Evaluation.objects.create(submission=sub, trigger="submission", benchmark_hash="h")
    assert not evaluation_enqueue(evaluation_id=run.pk)
    client.force_login(me)
    assert "waiting for a GPU worker" in client.get("/queue/").content.decode()
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(me)
    (yours,) = api.get("/api/queue/").json()["yours"]
    assert (yours["entry"], yours["waiting_for"]) == (sub.public_id, "waiting for a GPU worker")
    assert api.get(f"/api/submissions/{sub.public_id}/").json()["waiting_for"] == (
        "waiting for a GPU worker"
    )
    _gpu_host()
    assert api.get("/api/queue/").json()["yours"][0]["waiting_for"] == ""


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_gpu_host_that_starts_takes_the_gpu_run_that_waited_for_it():
    """A real GPU worker host: at its start it announces itself, which sends the GPU run
    that waited in the database, and it takes the run from the GPU runs' queue."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.db import connection

    from tests.leaderboard.conftest import ROOT, _drop_queue, stop_group, wait_for

    _drop_queue()
    run = _queued_image(TaskFactory(), gpu=True)
    assert not evaluation_enqueue(evaluation_id=run.pk)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leaderboard.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "VAR_DIR": str(settings.VAR_DIR),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "WORKER_GPUS": "1",
    }
    log_path = Path(settings.VAR_DIR) / f"gpu-worker-{os.getpid()}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "leaderboard.celery", "worker",
             "--loglevel", "info", "--concurrency", "1", "--queues", settings.GPU_RUNS_QUEUE,
             "--hostname", f"gpu-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(
                lambda: Evaluation.objects.filter(pk=run.pk, worker__startswith="gpu-").exists(),
                timeout=90,
                what="the GPU host to take the run",
            )
        finally:
            stop_group(proc, timeout=30)
    assert WorkerHost.objects.filter(name__startswith="gpu-", gpus=1).exists()
    assert "could not dispatch" not in log_path.read_text()
