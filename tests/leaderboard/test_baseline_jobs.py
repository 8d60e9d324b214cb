"""The reference baselines trained by the platform's own worker, one job per model and task.

The plan and its order, what waits for what, failures that reach the jobs built on them, a
stopped plan that resumes, the home page's progress, and one job done for real by a Celery
worker process on the baselines queue: trained, run through the streaming gateway, entered,
scored and published.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from leaderboard.board.errors import BenchmarkInvalid
from leaderboard.board.models import BaselineJob, Submission
from leaderboard.board.selectors.baselines import baseline_jobs_pending, baseline_progress
from leaderboard.board.services.baseline_jobs import (
    baseline_job_run,
    baseline_jobs_dispatch,
    baseline_jobs_plan,
)
from leaderboard.board.services.baselines import MODELS
from tests.leaderboard.conftest import ensure_tracks
from tests.leaderboard.servers import Process, app_env

J = BaselineJob.Status
IHM = "in-hospital-mortality"

synth = pytest.importorskip("benchmark_data.synth")


def _states(benchmark) -> dict[str, str]:
    return {j.key: j.status for j in BaselineJob.objects.filter(benchmark=benchmark)}


@pytest.mark.django_db
def test_the_plan_is_one_job_per_model_and_task_in_the_order_they_can_run(benchmark, tmp_path):
    jobs = baseline_jobs_plan(benchmark=benchmark, run_dir=tmp_path / "run")
    keys = [j.key for j in jobs]
    # MedMod's eight models and three of CareBench's strategies, for each of the five tasks.
    assert len(keys) == 55 and len(set(keys)) == 55
    # The radiology CXR model starts every other CXR encoder; mortality (the sample entry's
    # board) comes next, whole.
    assert keys[:12] == ["radiology/cxr"] + [f"{IHM}/{m}" for m in
                         ("ehr", "cxr", "late", "early", "joint", "medfuse", "daft", "mmtm",
                          "drfuse", "healnet", "utde")]  # fmt: skip
    by_key = {j.key: j for j in jobs}
    assert by_key["radiology/cxr"].needs == []
    assert by_key["phenotyping/cxr"].needs == ["radiology/cxr"]
    assert by_key["phenotyping/mmtm"].needs == ["phenotyping/ehr", "phenotyping/cxr"]
    assert by_key[f"{IHM}/daft"].label == "DAFT on In-hospital mortality"
    assert by_key[f"{IHM}/healnet"].needs == [f"{IHM}/ehr", f"{IHM}/cxr"]
    assert by_key[f"{IHM}/healnet"].label == "HEALNet on In-hospital mortality"
    assert all(j.status == J.WAITING for j in jobs)

    # Two at a time, in the plan's order, and only those whose needs are done.
    queued = baseline_jobs_dispatch()
    assert [BaselineJob.objects.get(pk=pk).key for pk in queued] == ["radiology/cxr", f"{IHM}/ehr"]
    assert baseline_jobs_dispatch() == []  # both slots taken
    BaselineJob.objects.filter(pk__in=queued).update(status=J.DONE)
    nxt = [BaselineJob.objects.get(pk=pk).key for pk in baseline_jobs_dispatch()]
    assert nxt == [f"{IHM}/cxr", "phenotyping/ehr"]  # IHM's fusion models wait for its CXR
    # The full set of eighteen models is one word away.
    every = baseline_jobs_plan(benchmark=benchmark, run_dir=tmp_path / "run", models=["all"])
    assert len(every) == 90 and {j.model for j in every} == set(MODELS)


@pytest.mark.django_db
def test_a_failed_job_fails_every_job_built_on_it(benchmark, tmp_path):
    baseline_jobs_plan(benchmark=benchmark, run_dir=tmp_path / "run")
    BaselineJob.objects.filter(benchmark=benchmark, task="radiology", model="cxr").update(
        status=J.FAILED, message="training failed"
    )
    baseline_jobs_dispatch()
    states = _states(benchmark)
    # Every CXR model builds on radiology's; every fusion model on its task's CXR model.
    failed = {k for k, s in states.items() if s == J.FAILED}
    assert failed == {k for k in states if not k.endswith("/ehr")}
    assert {k for k, s in states.items() if s == J.QUEUED} == {f"{IHM}/ehr", "phenotyping/ehr"}
    late = BaselineJob.objects.get(benchmark=benchmark, task=IHM, model="late")
    assert late.message == f"not trained: it builds on {IHM}/cxr, which failed"


@pytest.mark.django_db
def test_a_stopped_plan_resumes_and_done_jobs_are_kept(benchmark, tmp_path):
    run = tmp_path / "run"
    baseline_jobs_plan(benchmark=benchmark, run_dir=run)
    rows = BaselineJob.objects.filter(benchmark=benchmark)
    rows.filter(task="radiology", model="cxr").update(status=J.DONE, message="macro_auroc 0.7")
    rows.filter(task=IHM, model="ehr").update(status=J.RUNNING)  # its worker was stopped
    rows.filter(task=IHM, model="cxr").update(status=J.FAILED, message="out of memory")
    again = baseline_jobs_plan(benchmark=benchmark, run_dir=run)
    assert len(again) == 55
    states = _states(benchmark)
    assert states["radiology/cxr"] == J.DONE
    assert states[f"{IHM}/ehr"] == J.WAITING and states[f"{IHM}/cxr"] == J.WAITING
    assert BaselineJob.objects.get(benchmark=benchmark, task=IHM, model="cxr").message == ""
    assert baseline_jobs_pending() == 54


@pytest.mark.django_db
def test_a_job_left_running_outside_a_narrower_plan_waits_again_and_holds_no_place(
    benchmark, tmp_path
):
    """The whole plan, stopped with a radiology job running; then a plan of one task: the
    radiology job waits again, so two of the new plan's jobs are queued, not one."""
    run = tmp_path / "run"
    baseline_jobs_plan(benchmark=benchmark, run_dir=run)
    rows = BaselineJob.objects.filter(benchmark=benchmark)
    rows.filter(task="radiology", model="cxr").update(status=J.DONE)
    rows.filter(task="radiology", model="ehr").update(status=J.RUNNING)  # its worker stopped
    baseline_jobs_plan(benchmark=benchmark, run_dir=run, tasks=[IHM])
    states = _states(benchmark)
    assert states["radiology/ehr"] == J.WAITING
    assert states["radiology/cxr"] == J.DONE
    queued = baseline_jobs_dispatch()
    assert len(queued) == settings.BASELINE_JOBS_AT_ONCE == 2


@pytest.mark.django_db
def test_a_run_made_on_another_benchmark_is_refused(benchmark, tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"benchmark": {"hash": "0" * 64}}))
    with pytest.raises(BenchmarkInvalid, match="baselines of another benchmark"):
        baseline_jobs_plan(benchmark=benchmark, run_dir=run)
    assert not BaselineJob.objects.exists()


@pytest.mark.django_db
def test_asked_models_bring_what_they_build_on(benchmark, tmp_path):
    jobs = baseline_jobs_plan(
        benchmark=benchmark, run_dir=tmp_path / "r", tasks=["phenotyping"], models=["late"]
    )
    assert [j.key for j in jobs] == ["radiology/cxr", "phenotyping/ehr", "phenotyping/cxr",
                                     "phenotyping/late"]  # fmt: skip


@pytest.mark.django_db
def test_the_home_page_shows_the_progress_and_hides_logs_from_the_public(
    benchmark, tmp_path, client, staff
):
    from django.utils import timezone

    baseline_jobs_plan(benchmark=benchmark, run_dir=tmp_path / "run")
    rows = BaselineJob.objects.filter(benchmark=benchmark)
    rows.filter(task="radiology").update(status=J.DONE)
    rows.filter(task=IHM, model="ehr").update(status=J.RUNNING, started_at=timezone.now())
    rows.filter(task=IHM, model="cxr").update(
        status=J.FAILED, message="training failed (exit 1); the end of /srv/run/logs/x.log"
    )
    progress = baseline_progress()
    assert (progress.total, progress.done, progress.failed) == (55, 11, 1) and progress.active

    page = client.get("/").content.decode()
    assert "Reference baselines: 11 of 55 on the boards</strong>, 1 failed" in page
    assert "Training now: EHR only (LSTM) on In-hospital mortality" in page
    assert 'progress max="55" value="11"' in page
    assert "CXR only (CNN) on In-hospital mortality" in page
    assert "/srv/run" not in page  # a log's paths are for organizers only

    client.force_login(staff)
    assert "/srv/run/logs/x.log" in client.get("/").content.decode()

    rows.update(status=J.DONE)
    assert "baseline-progress" not in client.get("/").content.decode()


@pytest.mark.django_db
@pytest.mark.slow
def test_a_job_whose_needs_are_missing_from_the_run_fails_with_the_reason(
    benchmark, tiny_benchmark_dir, tmp_path, settings
):
    """The worker's steps are real processes: training a fusion model whose unimodal models
    the run does not hold fails, and the job says why, with the end of its log. The slot it
    frees goes to the next job, whichever benchmark's it is."""
    from leaderboard.board.services.benchmarks import benchmark_register

    settings.BASELINE_JOBS_AT_ONCE = 1
    baseline_jobs_plan(benchmark=benchmark, run_dir=tmp_path / "run", tasks=[IHM], models=["late"])
    rows = BaselineJob.objects.filter(benchmark=benchmark)
    rows.exclude(model="late").update(status=J.DONE)  # marked done, but never trained
    late = rows.get(model="late")
    rows.filter(pk=late.pk).update(status=J.QUEUED)
    other = benchmark_register(uri=str(tiny_benchmark_dir), verify=False)
    (waiting,) = baseline_jobs_plan(
        benchmark=other, run_dir=tmp_path / "other", tasks=[IHM], models=["ehr"]
    )
    assert baseline_jobs_dispatch() == []  # the one slot is taken
    job = baseline_job_run(job_id=late.pk)
    assert job is not None and job.status == J.FAILED
    assert job.message.startswith("training failed (exit 2); the end of ")
    assert f"{IHM}/late builds on {IHM}/ehr, {IHM}/cxr" in job.message
    assert baseline_job_run(job_id=late.pk) is None  # a second delivery does nothing
    assert not Submission.objects.exists()
    waiting.refresh_from_db()
    assert waiting.status == J.QUEUED


@pytest.fixture(scope="module")
def tiny_benchmark_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "bench"
    synth.generate(root, scale="tiny", seed=3)
    return root


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_trains_streams_enters_and_scores_a_model(tiny_benchmark_dir, tmp_path):
    from leaderboard.board.services.benchmarks import benchmark_register

    ensure_tracks()
    bench = benchmark_register(uri=str(tiny_benchmark_dir), verify=False)
    run = tmp_path / "run"
    (job,) = baseline_jobs_plan(benchmark=bench, run_dir=run, tasks=[IHM], models=["ehr"])
    cmd = [sys.executable, "-m", "celery", "-A", "leaderboard.celery", "worker", "--loglevel",
           "info", "--concurrency", "1", "--queues", settings.BASELINES_QUEUE, "--hostname",
           f"baselines-{time.time_ns()}@%h", "--without-gossip", "--without-mingle",
           "--without-heartbeat"]  # fmt: skip
    worker = Process(cmd, env=app_env(), name="baselines-worker")
    try:
        worker.wait_for_log("ready.")
        assert baseline_jobs_dispatch() == [job.pk]
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status in (J.DONE, J.FAILED):
                break
            time.sleep(1)
        assert job.status == J.DONE, f"{job.status}: {job.message}\n{worker.log()[-3000:]}"
    finally:
        worker.stop()
    assert job.message.startswith(f"{IHM} EHR only (LSTM): auroc ")
    (public_id,) = job.submissions
    sub = Submission.objects.get(public_id=public_id)
    assert sub.is_reference and sub.streamed and sub.status == Submission.Status.PUBLISHED
    streamed = run / "stream" / IHM / "ehr.csv"
    assert sub.sha256 == hashlib.sha256(streamed.read_bytes()).hexdigest()
    assert json.loads((run / "stream.json").read_text())["runs"][IHM]["ehr"]["paired"]["steps"] > 0
    log = (run / "logs" / f"{IHM}-ehr.log").read_text()
    assert "train-model" in log and "stream-baselines" in log

    # The next run of the plan reuses it: nothing to do.
    again = baseline_jobs_plan(benchmark=bench, run_dir=run, tasks=[IHM], models=["ehr"])
    assert [j.status for j in again] == [J.DONE]
    assert baseline_jobs_dispatch() == []
