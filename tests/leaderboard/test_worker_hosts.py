"""Queues by kind of work and worker hosts, without a worker: where each job is routed, the
GPU field of an entry and its waiting status, bin/worker's checks, drain_host's answers, and
the compose profiles of the worker hosts."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from leaderboard.board.models import Evaluation, Submission, Track, WorkerHost
from leaderboard.board.routing import evaluation_queue, route_task
from leaderboard.board.selectors.worker_hosts import WAITING_FOR_GPU, gpu_worker_available
from leaderboard.board.services import worker_hosts
from leaderboard.board.services.worker_hosts import worker_host_announce, worker_host_drain
from leaderboard.celery import app
from leaderboard.worker import celery_command, parse
from tests.leaderboard.conftest import ensure_tracks
from tests.leaderboard.factories import SubmissionFactory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tracks(benchmark):
    from django.apps import apps

    ensure_tracks()
    module = __import__(
        "leaderboard.board.migrations.0003_container_track", fromlist=["open_container_track"]
    )
    module.open_container_track(apps, None)
    return Track.objects.get(slug=Track.CONTAINER), Track.objects.get(slug=Track.PREDICTION_FILE)


def _run(sub: Submission) -> Evaluation:
    return Evaluation.objects.create(submission=sub, trigger="submission", benchmark_hash="x")


@pytest.mark.django_db
def test_each_kind_of_job_goes_to_its_queue(tracks, ihm_task):
    container, prediction_file = tracks
    cpu = _run(SubmissionFactory(task=ihm_task, track=container))
    gpu = _run(SubmissionFactory(task=ihm_task, track=container, needs_gpu=True))
    csv = _run(SubmissionFactory(task=ihm_task, track=prediction_file))
    assert evaluation_queue(cpu.pk) == settings.CPU_RUNS_QUEUE
    assert evaluation_queue(gpu.pk) == settings.GPU_RUNS_QUEUE
    assert evaluation_queue(csv.pk) == settings.SCORING_QUEUE
    # As Celery routes them (the router in settings, then the routes by name).
    router = app.amqp.router
    for ev, queue in ((cpu, settings.CPU_RUNS_QUEUE), (gpu, settings.GPU_RUNS_QUEUE),
                      (csv, settings.SCORING_QUEUE)):  # fmt: skip
        assert router.route({}, "board.evaluation_run", args=[ev.pk])["queue"].name == queue
    assert router.route({}, "board.refresh", args=[1])["queue"].name == settings.REFRESH_QUEUE
    assert router.route({}, "board.baseline_job_run", args=[1])["queue"].name == (
        settings.BASELINES_QUEUE
    )
    assert route_task("board.reap", [], {}, {}) is None  # the default (scoring) queue
    # A plain `celery worker` serves every queue but the GPU runs' and the baselines'.
    served = {q.name for q in app.conf.task_queues}
    assert served == {settings.SCORING_QUEUE, settings.REFRESH_QUEUE, settings.CPU_RUNS_QUEUE}
    assert app.conf.worker_prefetch_multiplier == 1 and app.conf.task_acks_late


def _api(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.mark.django_db
def test_a_prediction_file_cannot_ask_for_a_gpu(user, tracks, sample_ihm_csv):
    data = {
        "task": "in-hospital-mortality", "method_name": "LR", "modalities": "ehr",
        "training_data": "the benchmark's train split only", "needs_gpu": "true",
        "file": SimpleUploadedFile("p.csv", sample_ihm_csv, content_type="text/csv"),
    }  # fmt: skip
    r = _api(user).post("/api/submissions/", data, format="multipart")
    assert r.status_code == 400, r.content
    assert "track=container" in r.json()["errors"]["needs_gpu"][0]
    assert not Submission.objects.exists()


@pytest.mark.django_db
def test_a_gpu_entry_says_it_waits_for_a_gpu_worker_until_one_takes_runs(user, tracks, ihm_task):
    container, _ = tracks
    sub = SubmissionFactory(owner=user, task=ihm_task, track=container, needs_gpu=True,
                            status=Submission.Status.QUEUED)  # fmt: skip
    api = _api(user)

    def waiting() -> str:
        return api.get(f"/api/submissions/{sub.public_id}/").json()["waiting_for"]

    assert waiting() == WAITING_FOR_GPU
    # A CPU host, a drained GPU host and a GPU host gone quiet do not count.
    worker_host_announce(name="celery@cpu", queues=[settings.CPU_RUNS_QUEUE], concurrency=2,
                         gpus=0)  # fmt: skip
    worker_host_announce(name="celery@gpu-1", queues=[settings.GPU_RUNS_QUEUE], concurrency=1,
                         gpus=1)  # fmt: skip
    WorkerHost.objects.filter(name="celery@gpu-1").update(drained=True)
    worker_host_announce(name="celery@gpu-2", queues=[settings.GPU_RUNS_QUEUE], concurrency=1,
                         gpus=1)  # fmt: skip
    WorkerHost.objects.filter(name="celery@gpu-2").update(
        last_seen=timezone.now() - settings.WORKER_HOST_STALE - timedelta(seconds=1)
    )
    assert not gpu_worker_available() and waiting() == WAITING_FOR_GPU
    worker_host_announce(name="celery@gpu-2", queues=[settings.GPU_RUNS_QUEUE], concurrency=1,
                         gpus=1)  # fmt: skip
    assert gpu_worker_available() and waiting() == ""
    # A CPU entry, or a GPU entry already running, waits for nothing.
    Submission.objects.filter(pk=sub.pk).update(status=Submission.Status.RUNNING)
    WorkerHost.objects.all().delete()
    assert waiting() == ""


@pytest.mark.django_db
def test_drain_host_names_the_known_hosts_and_keeps_the_mark_for_a_host_that_is_down(
    monkeypatch,
):
    # No host here answers: a short wait for the answers keeps the test quick.
    monkeypatch.setattr(worker_hosts, "REPLY_TIMEOUT", 0.2)
    with pytest.raises(CommandError, match="no worker host is named 'nope'; known hosts: none"):
        call_command("drain_host", "nope")
    worker_host_announce(name="celery@runner-1", queues=[settings.CPU_RUNS_QUEUE],
                         concurrency=1, gpus=0)  # fmt: skip
    worker_host_announce(name="celery@runner-2", queues=[settings.CPU_RUNS_QUEUE],
                         concurrency=1, gpus=0)  # fmt: skip
    with pytest.raises(CommandError, match="known hosts: celery@runner-1, celery@runner-2"):
        call_command("drain_host", "runner-3")
    out = StringIO()
    call_command("drain_host", "runner-1", "--note", "disk swap", stdout=out)
    text = out.getvalue()
    assert "celery@runner-1: drained (cpu-runs)" in text
    assert "did not answer (down?): it reads the mark when it starts" in text
    host = WorkerHost.objects.get(name="celery@runner-1")
    assert host.drained and host.drain_note == "disk swap"
    # Announcing itself again (a restart) keeps the mark; resuming clears it.
    worker_host_announce(name="celery@runner-1", queues=[settings.CPU_RUNS_QUEUE],
                         concurrency=1, gpus=0, starting=True)  # fmt: skip
    assert WorkerHost.objects.get(name="celery@runner-1").drained
    call_command("drain_host", "celery@runner-1", "--resume", stdout=StringIO())
    assert not WorkerHost.objects.get(name="celery@runner-1").drained
    out = StringIO()
    call_command("drain_host", "--list", stdout=out)
    assert "celery@runner-2: cpu-runs; concurrency 1, 0 GPU(s)" in out.getvalue()
    with pytest.raises(CommandError, match="name the host to drain"):
        call_command("drain_host")
    assert worker_host_drain(name="runner-2").replies == []


def test_bin_worker_starts_celery_with_the_queues_and_capacity_it_is_given():
    args, extra = parse(["--queues", "scoring,cpu-runs", "--concurrency", "3", "--name", "r1",
                         "--", "--without-gossip"])  # fmt: skip
    cmd = celery_command(args, dict(settings.WORK_QUEUES)) + extra
    at = cmd.index("--queues")
    assert cmd[at + 1] == f"{settings.SCORING_QUEUE},{settings.CPU_RUNS_QUEUE}"
    assert cmd[cmd.index("--concurrency") + 1] == "3"
    assert cmd[cmd.index("--hostname") + 1] == "celery@r1" and cmd[-1] == "--without-gossip"
    for argv, message in (
        (["--queues", "gpu-runs"], "a host serving gpu-runs needs a GPU: give --gpus N"),
        (["--queues", "scoring,videos"], "unknown kind of work videos; the kinds are scoring, "
                                         "refresh, cpu-runs, gpu-runs, baselines"),
        (["--concurrency", "0"], "--concurrency must be 1 or more"),
    ):  # fmt: skip
        proc = subprocess.run([str(REPO / "bin" / "worker"), *argv], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_compose_has_a_scoring_worker_a_cpu_runner_and_a_gpu_runner_profile():
    assert shutil.which("docker-compose"), "docker-compose is not installed (bin/test installs it)"
    proc = subprocess.run(
        ["docker-compose", "-f", "docker/compose.yml", "--env-file", "docker/env.example",
         "--profile", "scoring-worker", "--profile", "cpu-runner", "--profile", "gpu-runner",
         "config"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]

    def queues(name: str) -> str:
        cmd = services[name]["command"]
        return cmd[cmd.index("--queues") + 1]

    assert queues("worker") == "scoring,refresh,cpu-runs" and "profiles" not in services["worker"]
    assert queues("scoring-worker") == "scoring,refresh"
    assert "docker.sock" not in str(services["scoring-worker"].get("volumes", []))
    for name, kinds in (("cpu-runner", "cpu-runs"), ("gpu-runner", "gpu-runs")):
        assert services[name]["profiles"] == [name] and queues(name) == kinds
        assert "/var/run/docker.sock:/var/run/docker.sock:rw" in services[name]["volumes"]
        assert services[name]["environment"]["CONTAINER_WORK_DIR"]
    gpu = services["gpu-runner"]
    assert gpu["command"][gpu["command"].index("--gpus") + 1] == "1"
    assert gpu["environment"]["WORKER_GPUS"] == "1"


@pytest.mark.django_db
def test_a_gpu_host_resumed_sends_the_gpu_runs_that_waited_for_it(
    tracks, ihm_task, monkeypatch, django_capture_on_commit_callbacks
):
    """A drained GPU host takes no GPU run: the run waits in the database, holding no slot
    of its task; resumed, the host sends it at once."""
    from leaderboard.board.services.evaluations import evaluation_enqueue
    from leaderboard.board.services.worker_hosts import worker_host_resume

    monkeypatch.setattr(worker_hosts, "REPLY_TIMEOUT", 0.2)  # no host here answers
    container, _ = tracks
    with django_capture_on_commit_callbacks(execute=True):
        worker_host_announce(name="celery@gpu-1", queues=[settings.GPU_RUNS_QUEUE],
                             concurrency=1, gpus=1)  # fmt: skip
    WorkerHost.objects.update(drained=True)
    sub = SubmissionFactory(task=ihm_task, track=container, needs_gpu=True, status="submitted")
    run = _run(sub)
    assert not evaluation_enqueue(evaluation_id=run.pk)
    run.refresh_from_db()
    assert run.enqueued_at is None
    # A drained host that restarts does not send it either.
    with django_capture_on_commit_callbacks(execute=True):
        worker_host_announce(name="celery@gpu-1", queues=[settings.GPU_RUNS_QUEUE],
                             concurrency=1, gpus=1, starting=True)  # fmt: skip
    run.refresh_from_db()
    assert run.enqueued_at is None
    with django_capture_on_commit_callbacks(execute=True):
        worker_host_resume(name="gpu-1")
    run.refresh_from_db()
    assert run.enqueued_at is not None and run.status == "queued"
