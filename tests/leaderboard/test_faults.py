"""Faults on real processes: a worker killed in the middle of a run, two clients filling the
daily limit at once, many uploads at once, the database dropping the worker's connections,
and the broker restarted with messages lost. Nothing is lost and nothing is scored twice."""

from __future__ import annotations

import concurrent.futures
import hashlib
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from leaderboard.board.models import AuditLog, Evaluation, Submission
from leaderboard.board.services.evaluations import evaluations_reap
from leaderboard.board.tasks import evaluation_run_task
from tests.leaderboard import servers
from tests.leaderboard.conftest import _drop_queue, wait_for
from tests.leaderboard.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.worker]

FIELDS = {
    "task": "in-hospital-mortality",
    "modalities": "ehr",
    "training_data": "the benchmark's train split only",
}


REAP_LATER = (
    "from datetime import timedelta; from django.utils import timezone; "
    "from leaderboard.board.services.evaluations import SEND_GRACE, evaluations_reap; "
    "print(evaluations_reap(now=timezone.now() + SEND_GRACE + timedelta(seconds=1)))"
)


def variant(csv: bytes, i: int) -> bytes:
    """The sample file with every prediction nudged by i/10,000: a different file (no
    duplicate refusal) that scores like the original."""
    lines = csv.decode().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        key, p = line.rsplit(",", 1)
        out.append(f"{key},{min(1.0, float(p) + i / 10_000):.6f}")
    return ("\n".join(out) + "\n").encode()


def post(base: str, token: str, content: bytes, *, name: str) -> requests.Response:
    return requests.post(
        f"{base}/api/submissions/",
        headers={"Authorization": f"Token {token}"},
        data={**FIELDS, "method_name": name},
        files={"file": (f"{name}.csv", content, "text/csv")},
        timeout=60,
    )


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def settled(pk: str) -> bool:
    return Submission.objects.get(public_id=pk).status in ("published", "scored", "failed")


@pytest.fixture
def stack(benchmark):
    """gunicorn (3 processes) on the test database, started and stopped by the test."""
    _drop_queue()
    started: list[servers.Process] = []

    def _start(*, web: bool = True, worker: bool = True, **env: str):
        e = servers.app_env(**env)
        base = None
        if web:
            server, base = servers.start_gunicorn(e)
            started.append(server)
        w = servers.start_worker(e) if worker else None
        if w:
            started.append(w)
        return base, w, e

    yield _start
    for proc in reversed(started):
        proc.stop()


def test_a_worker_killed_mid_scoring_is_reaped_and_the_entry_scored_once(
    api, benchmark, sample_ihm_csv
):
    """SIGKILL of the worker while it scores: the run stays `running`, the reaper puts it
    back once its lease is over, a new worker scores it, and a late duplicate message of the
    same run is a no-op: one result, two attempts, the reaper's action in the audit log."""
    _drop_queue()
    # A slow first worker (20,000 replicates) so that the kill lands in the middle of a run.
    slow = servers.start_worker(servers.app_env(SCORING_REPLICATES="20000"), name="slow")
    try:
        r = api.post("/api/submissions/", {**FIELDS, "method_name": "killed",
                     "file": _upload(sample_ihm_csv)}, format="multipart")  # fmt: skip
        assert r.status_code == 201, r.content
        pk = r.json()["id"]
        ev = Evaluation.objects.get(submission__public_id=pk)
        wait_for(lambda: Evaluation.objects.get(pk=ev.pk).status == "running",
                 timeout=60, interval=0.02, what="the run to start")  # fmt: skip
        time.sleep(0.5)
        slow.kill()
    finally:
        slow.stop()
    ev.refresh_from_db()
    assert ev.status == "running" and ev.attempts == 1, "the kill came after the run ended"
    assert Submission.objects.get(public_id=pk).status == "running"

    # Within its lease the run is left alone; after it, the reaper re-queues and resends it.
    assert evaluations_reap().requeued == []
    later = timezone.now() + settings.SCORING_LEASE + timedelta(seconds=1)
    assert evaluations_reap(now=later).requeued == [ev.pk]
    assert Evaluation.objects.get(pk=ev.pk).status == "queued"

    worker = servers.start_worker(servers.app_env(), name="second")
    try:
        wait_for(lambda: settled(pk), timeout=90, what="the re-queued run")
        ev.refresh_from_db()
        assert ev.status == "succeeded" and ev.attempts == 2, ev.error_message
        assert Submission.objects.get(public_id=pk).status == "published"
        finished = ev.finished_at
        # The killed worker's message may come back later (visibility timeout): a no-op.
        evaluation_run_task.delay(ev.pk)
        wait_for(lambda: worker.log().count("succeeded in") >= 2, timeout=30,
                 what="the duplicate message to be handled")  # fmt: skip
    finally:
        worker.stop()
    assert Evaluation.objects.filter(submission__public_id=pk).count() == 1
    ev.refresh_from_db()
    assert ev.finished_at == finished and ev.attempts == 2
    assert AuditLog.objects.filter(action=AuditLog.Action.EVALUATION_REQUEUE).count() == 1


def _upload(content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("predictions.csv", content, content_type="text/csv")


def test_two_clients_filling_the_daily_limit_at_once_never_exceed_it(stack, user, sample_ihm_csv):
    """Two clients of one user send 4 files each at the same moment to 3 web processes; the
    limit is 3: exactly 3 are taken, 5 get a 429 quota_exceeded, none a 5xx."""
    base, _, _ = stack(worker=False, SUBMISSIONS_PER_DAY="3")
    token = token_for(user)
    barrier = threading.Barrier(8)

    def send(i: int) -> requests.Response:
        barrier.wait(timeout=30)
        return post(base, token, variant(sample_ihm_csv, i), name=f"client{i % 2}-{i}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [429] * 5, [(r.status_code, r.text[:200]) for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 429} == {"quota_exceeded"}
    assert Submission.objects.filter(owner=user).count() == 3


def test_concurrent_uploads_are_all_kept_and_scored(stack, sample_ihm_csv):
    """Eight users upload at once: eight entries, each file stored with its hash, each
    scored once by the worker."""
    base, worker, _ = stack()
    users = [UserFactory() for _ in range(8)]
    files = [variant(sample_ihm_csv, i + 1) for i in range(8)]
    barrier = threading.Barrier(8)

    def send(i: int) -> requests.Response:
        barrier.wait(timeout=30)
        return post(base, token_for(users[i]), files[i], name=f"concurrent {i}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(8)))
    assert [r.status_code for r in responses] == [201] * 8, [r.text[:200] for r in responses]
    ids = [r.json()["id"] for r in responses]
    wait_for(lambda: all(settled(pk) for pk in ids), timeout=120, what="eight runs")
    for i, pk in enumerate(ids):
        sub = Submission.objects.get(public_id=pk)
        assert sub.owner_id == users[i].pk and sub.status == "published", sub.failure_reason
        assert sub.sha256 == hashlib.sha256(files[i]).hexdigest()
        with sub.file.open("rb") as fh:
            assert fh.read() == files[i]
        assert list(sub.evaluations.values_list("status", flat=True)) == ["succeeded"]


def test_the_database_dropping_the_workers_connection_mid_run(stack, user, sample_ihm_csv):
    """PostgreSQL ends the worker's connection while it scores (as in a failover or
    `pg_terminate_backend`): the entry is still scored, once, after the reaper at worst,
    and the web processes keep answering."""
    base, worker, _ = stack(SCORING_REPLICATES="20000")
    token = token_for(user)
    r = post(base, token, variant(sample_ihm_csv, 1), name="connection dropped")
    assert r.status_code == 201
    pk = r.json()["id"]
    ev = Evaluation.objects.get(submission__public_id=pk)
    wait_for(lambda: Evaluation.objects.get(pk=ev.pk).status == "running",
             timeout=60, interval=0.02, what="the run to start")  # fmt: skip
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert len(cur.fetchall()) >= 1  # the worker's connection, held during the run
    # The worker notices when it writes the result; the task ends either way.
    wait_for(lambda: "board.evaluation_run" in worker.log() and (
        "succeeded in" in worker.log() or "raised" in worker.log() or "ERROR" in worker.log()
    ), timeout=90, what="the worker to finish the run")  # fmt: skip
    if Evaluation.objects.get(pk=ev.pk).status == "running":
        later = timezone.now() + settings.SCORING_LEASE + timedelta(seconds=1)
        assert evaluations_reap(now=later).requeued == [ev.pk]
    wait_for(lambda: settled(pk), timeout=90, what="the run to be scored")
    assert Submission.objects.get(public_id=pk).status == "published"
    assert list(
        Evaluation.objects.filter(submission__public_id=pk).values_list("status", flat=True)
    ) == ["succeeded"]
    again = requests.get(f"{base}/api/submissions/{pk}/", timeout=30)
    if again.status_code >= 500:  # a web process may meet its dropped connection once
        again = requests.get(f"{base}/api/submissions/{pk}/", timeout=30)
    assert again.status_code == 200


@pytest.mark.skipif(servers.redis_server_path() is None, reason="redis-server not installed")
def test_a_broker_restart_loses_messages_and_the_reaper_resends_them(stack, user, sample_ihm_csv):
    """A private Redis is the broker. One run's message is in Redis when it stops without
    saving; another entry arrives while it is down. After the restart, the reaper resends
    both and each is scored once."""
    port = servers.free_port()
    redis = servers.start_redis(port)
    broker = f"redis://127.0.0.1:{port}/0"
    try:
        base, worker, env = stack(worker=False, CELERY_BROKER_URL=broker)
        token = token_for(user)
        queued = post(base, token, variant(sample_ihm_csv, 1), name="in the broker")
        assert queued.status_code == 201
        redis.kill()  # like `redis-cli shutdown nosave`: the queued message is gone
        t0 = time.monotonic()
        down = post(base, token, variant(sample_ihm_csv, 2), name="broker down")
        assert down.status_code == 201, down.text[:300]
        assert time.monotonic() - t0 < 30
        ids = [queued.json()["id"], down.json()["id"]]
        assert Evaluation.objects.get(submission__public_id=ids[1]).enqueued_at is None
        ev_ids = [Evaluation.objects.get(submission__public_id=pk).pk for pk in ids]

        redis = servers.start_redis(port)
        worker = servers.start_worker(env, name="after-restart")
        try:
            # The reaper as beat runs it, its clock past the grace given to a fresh run's send.
            reap = subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", REAP_LATER], cwd=servers.ROOT,
                env={**env, "SCORING_RESEND_AFTER": "0"}, capture_output=True, text=True,
                timeout=60,
            )  # fmt: skip
            assert reap.returncode == 0, reap.stderr
            assert f"resent=[{ev_ids[0]}, {ev_ids[1]}]" in reap.stdout, reap.stdout
            try:
                wait_for(lambda: all(settled(pk) for pk in ids), timeout=60, what="resent runs")
            except AssertionError:
                raise AssertionError(f"reap: {reap.stdout} {reap.stderr}\nworker: "
                                     f"{worker.log()[-3000:]}") from None  # fmt: skip
        finally:
            worker.stop()
        for pk in ids:
            sub = Submission.objects.get(public_id=pk)
            assert sub.status == "published", sub.failure_reason
            assert list(sub.evaluations.values_list("status", flat=True)) == ["succeeded"]
    finally:
        redis.stop()
