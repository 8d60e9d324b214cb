"""Several worker hosts on one machine, for real: two worker processes started with
bin/worker on the CPU runs' queue, each with its own Docker engine (the machine's engine, and
a second dockerd with its own socket, data root and exec root from
scripts/extra-docker-engine.sh), on the test database and the run's own Redis queues.

Shown: container runs spread over both hosts; a GPU entry waits, saying so, while no host
has a GPU; a host SIGKILLed mid-run has its run put back by the reaper and scored once by
the other; a drained host finishes its run and takes no new one, and stays drained when it
starts again. If the second engine cannot start, these tests fail (never skip).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import docker
import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from leaderboard.board.models import AuditLog, Evaluation, Submission, Track, WorkerHost
from leaderboard.board.selectors.worker_hosts import WAITING_FOR_GPU
from leaderboard.board.services.evaluations import evaluation_create, evaluations_reap
from leaderboard.board.services.worker_hosts import worker_host_drain
from leaderboard.celery import app
from leaderboard.containers import LABEL_RUN
from leaderboard.containers.executor import DockerExecutor
from tests.leaderboard import servers
from tests.leaderboard.conftest import ensure_tracks, wait_for
from tests.leaderboard.factories import SubmissionFactory, UserFactory

pytestmark = [pytest.mark.docker, pytest.mark.worker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_ARCHIVE = REPO / "var" / "containers" / "template-model.tar"
RUN_TIMEOUT = 240  # seconds for one template run (five streamed scenarios) to finish


# Fixtures ------------------------------------------------------------------------------------
def _script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def engines() -> dict[str, str]:
    """Two engines: the machine's (scripts/docker-engine.sh) and a second dockerd of this
    test run's own; DOCKER_HOST of each. The second is stopped and its data removed after."""
    first = _script(str(REPO / "scripts" / "docker-engine.sh"))
    if first.returncode != 0:
        pytest.fail(f"the Docker engine could not be started:\n{first.stderr}", pytrace=False)
    name = f"mh-{os.getpid()}"
    second = _script(str(REPO / "scripts" / "extra-docker-engine.sh"), "start", name)
    if second.returncode != 0:
        pytest.fail(f"the second Docker engine could not be started:\n{second.stderr}",
                    pytrace=False)  # fmt: skip
    try:
        yield {"a": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
               "b": second.stdout.strip().splitlines()[-1]}  # fmt: skip
    finally:
        _script(str(REPO / "scripts" / "extra-docker-engine.sh"), "purge", name)


@pytest.fixture(scope="module")
def template_archive(engines) -> Path:
    proc = _script(str(REPO / "scripts" / "build-template-image.sh"), str(TEMPLATE_ARCHIVE),
                   timeout=900)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"building the template image failed:\n{proc.stderr}", pytrace=False)
    return TEMPLATE_ARCHIVE


@pytest.fixture
def stored_image(template_archive, benchmark) -> str:
    """The template archive in the file store, as an uploaded image is kept."""
    name = "images/multi-host-template.tar"
    dest = Path(settings.MEDIA_ROOT) / name
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template_archive, dest)
    assert default_storage.exists(name)
    return name


@pytest.fixture
def hosts(engines, transactional_db, django_db_setup):
    """Start worker hosts by name on engine a or b: bin/worker --queues cpu-runs."""
    started: dict[str, servers.Process] = {}

    def start(label: str, engine: str, node: str | None = None) -> str:
        node = node or f"{label}-{os.getpid()}-{time.time_ns()}"
        env = servers.app_env(DOCKER_HOST=engines[engine], WORKER_HEARTBEAT="2",
                              PYTHON=sys.executable)  # fmt: skip
        cmd = [str(REPO / "bin" / "worker"), "--queues", "cpu-runs",
               "--concurrency", "1", "--gpus", "0", "--name", node, "--",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
        proc = servers.Process(cmd, env=env, name=label)
        proc.wait_for_log("ready.")
        started[node] = proc
        return f"celery@{node}"

    start.procs = started  # type: ignore[attr-defined]
    yield start
    for proc in started.values():
        proc.stop(timeout=60)
    # A run cut short by the test's end leaves its container: remove the test's runs'.
    run_ids = [r for r in Evaluation.objects.values_list("container_run_id", flat=True) if r]
    if run_ids:
        engine_a = docker.DockerClient(base_url=engines["a"])
        DockerExecutor(client_factory=lambda: engine_a).reap(run_ids=run_ids)


def _entry(image: str, task, track, **kw) -> Submission:
    return SubmissionFactory(
        owner=UserFactory(), task=task, track=track, file=image, uses_ehr=True,
        uses_cxr=True, status=Submission.Status.SUBMITTED, **kw,
    )  # fmt: skip


def _queue(sub: Submission) -> Evaluation:
    ev = evaluation_create(submission=sub, trigger="submission")
    assert ev is not None
    return ev


def _done(*evs: Evaluation, timeout: float = RUN_TIMEOUT) -> list[Evaluation]:
    ids = [e.pk for e in evs]
    wait_for(
        lambda: Evaluation.objects.filter(pk__in=ids, status__in=["succeeded", "failed"]).count()
        == len(ids),
        timeout=timeout, interval=0.5, what=f"runs {ids}",
    )  # fmt: skip
    return [Evaluation.objects.get(pk=i) for i in ids]


def _running_on(ev: Evaluation, timeout: float = 60) -> str:
    wait_for(
        lambda: Evaluation.objects.filter(pk=ev.pk, status="running").exclude(
            container_run_id=""
        ).exists(),
        timeout=timeout, what=f"run {ev.pk} to start",
    )  # fmt: skip
    return Evaluation.objects.get(pk=ev.pk).worker


def _consumes(node: str) -> list[str] | None:
    """The queues a host consumes, as it answers (None: no answer)."""
    answer = app.control.inspect([node], timeout=3).active_queues() or {}
    return None if node not in answer else [q["name"] for q in answer[node]]


def _created_on(docker_host: str, run_id: str, since: int) -> list[dict]:
    """The engine's events of containers created for the run since ``since``."""
    client = docker.DockerClient(base_url=docker_host)
    events = client.events(
        since=since, until=int(time.time()) + 1, decode=True,
        filters={"type": "container", "event": "create", "label": f"{LABEL_RUN}={run_id}"},
    )  # fmt: skip
    return list(events)


def _logs(hosts) -> str:
    return "\n".join(f"--- {n}\n{p.log()[-2000:]}" for n, p in hosts.procs.items())


@pytest.fixture
def track(benchmark):
    ensure_tracks()
    module = __import__(
        "leaderboard.board.migrations.0003_container_track", fromlist=["open_container_track"]
    )
    from django.apps import apps

    module.open_container_track(apps, None)
    return Track.objects.get(slug=Track.CONTAINER)


@pytest.fixture
def ihm(benchmark):
    return benchmark.tasks.get(slug="in-hospital-mortality")


# Tests ---------------------------------------------------------------------------------------
def test_runs_spread_over_two_hosts_and_a_gpu_entry_waits_saying_so(
    engines, hosts, stored_image, track, ihm
):
    """Two entries at once, two idle hosts each taking one message at a time: one run on
    each host's engine, both scored. A GPU entry meanwhile stays queued (no host serves
    the GPU runs' queue) and its status says it waits for a GPU worker."""
    since = int(time.time()) - 1
    a, b = hosts("host-a", "a"), hosts("host-b", "b")
    gpu = _entry(stored_image, ihm, track, needs_gpu=True)
    gpu_ev = _queue(gpu)
    evs = [_queue(_entry(stored_image, ihm, track)) for _ in range(2)]
    done = _done(*evs)
    assert [e.status for e in done] == ["succeeded", "succeeded"], _logs(hosts)
    assert {e.worker for e in done} == {a, b}
    # Each host ran its model on its own engine: the engines' event logs say which created
    # each run's containers.
    for e in done:
        mine, other = ("a", "b") if e.worker == a else ("b", "a")
        assert _created_on(engines[mine], e.container_run_id, since)
        assert not _created_on(engines[other], e.container_run_id, since)
    for e in done:
        assert e.container_run["status"] == "succeeded"
        assert Submission.objects.get(evaluations=e).status == "published"

    gpu_ev.refresh_from_db()
    gpu.refresh_from_db()
    assert gpu_ev.status == "queued" and gpu_ev.attempts == 0 and gpu.status == "queued"
    owner = APIClient()
    owner.force_authenticate(gpu.owner)  # an entry not yet published is its owner's to see
    body = owner.get(f"/api/submissions/{gpu.public_id}/").json()
    assert body["needs_gpu"] is True and body["waiting_for"] == WAITING_FOR_GPU, body
    web = Client()
    web.force_login(gpu.owner)
    page = web.get(f"/entries/{gpu.public_id}/").content.decode()
    assert WAITING_FOR_GPU in page
    # Both hosts recorded themselves: CPU runs only, no GPU.
    recorded = {h.name: h for h in WorkerHost.objects.all()}
    assert {a, b} <= set(recorded)
    assert all(recorded[n].queues == [settings.CPU_RUNS_QUEUE] and recorded[n].gpus == 0
               for n in (a, b))  # fmt: skip


def test_a_host_killed_mid_run_has_its_run_scored_once_by_the_other(
    hosts, stored_image, track, ihm
):
    """SIGKILL of host a's worker while its model runs: the run stays `running` on a dead
    host; past its lease the reaper puts it back, host b runs and scores it: one run row,
    two attempts, one result, one re-queue in the audit log. The container host a left on
    its engine is removed by the executor's reaping of that engine."""
    a = hosts("host-a", "a")
    sub = _entry(stored_image, ihm, track)
    ev = _queue(sub)
    assert _running_on(ev) == a
    first_run = Evaluation.objects.get(pk=ev.pk).container_run_id
    engine_a = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST",
                                                           "unix:///var/run/docker.sock"))  # fmt: skip
    wait_for(lambda: engine_a.containers.list(filters={"label": f"{LABEL_RUN}={first_run}"}),
             timeout=120, what="host a's model container")  # fmt: skip
    time.sleep(1.0)  # well inside the run
    next(iter(hosts.procs.values())).kill()

    b = hosts("host-b", "b")
    assert Evaluation.objects.get(pk=ev.pk).status == "running"  # nobody else takes it
    later = timezone.now() + settings.CONTAINER_LEASE + timedelta(seconds=1)
    reaped = evaluations_reap(now=later)
    assert reaped.requeued == [ev.pk] and first_run in reaped.container_run_ids
    (ev,) = _done(ev)
    assert ev.status == "succeeded", _logs(hosts)
    assert ev.worker == b and ev.attempts == 2 and ev.container_run_id != first_run
    assert Evaluation.objects.filter(submission=sub).count() == 1
    assert Evaluation.objects.filter(submission=sub, status="succeeded").count() == 1
    requeues = AuditLog.objects.filter(action=AuditLog.Action.EVALUATION_REQUEUE, evaluation=ev)
    assert requeues.count() == 1
    sub.refresh_from_db()
    assert sub.status == "published"

    # Host a's engine still holds the dead run's container; reaping that engine removes it.
    left = engine_a.containers.list(all=True, filters={"label": f"{LABEL_RUN}={first_run}"})
    report = DockerExecutor(client_factory=lambda: engine_a).reap(run_ids=[first_run])
    assert len(report.containers) == len(left)
    assert not engine_a.containers.list(all=True, filters={"label": f"{LABEL_RUN}={first_run}"})


def test_a_drained_host_finishes_its_run_and_new_runs_go_elsewhere(hosts, stored_image, track, ihm):
    """Host a runs an entry; it is drained: it stops consuming at once, finishes that run,
    and the two entries that come next both run on host b, one after the other, host a
    taking neither once its run is done. Started again, host a reads its mark and consumes
    no queue."""
    a = hosts("host-a", "a")
    first = _queue(_entry(stored_image, ihm, track))
    assert _running_on(first) == a
    b = hosts("host-b", "b")
    result = worker_host_drain(name=a, note="maintenance")
    assert result.answered and result.host.drained
    # The host applies the command on its next turn of its event loop: within moments.
    wait_for(lambda: _consumes(a) == [], timeout=20, what=f"{a} to stop consuming")
    later = [_queue(_entry(stored_image, ihm, track)) for _ in range(2)]
    done = _done(first, *later, timeout=3 * RUN_TIMEOUT)
    assert [e.status for e in done] == ["succeeded"] * 3, _logs(hosts)
    assert [e.worker for e in done] == [a, b, b]

    # Restarted, the drained host consumes nothing.
    name = a.split("@", 1)[1]
    hosts.procs.pop(name).stop(timeout=60)
    assert hosts("host-a", "a", node=name) == a
    assert "is drained: it consumes no queue" in hosts.procs[name].log()
    assert _consumes(a) == []
