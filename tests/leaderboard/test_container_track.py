"""The container track from upload to leaderboard: a `docker save` archive through the API,
checked at upload, run by a real Celery worker on the real Docker engine once per scenario,
scored like a prediction file and published as a verified entry; broken images end failed
with a reason (and a log tail) only their owner sees."""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import docker
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from leaderboard.board.models import Evaluation, Submission, Task, Track
from leaderboard.containers import LABEL_RUN, get_client, new_run_id
from tests.leaderboard.conftest import ensure_tracks, wait_for
from tests.leaderboard.factories import SubmissionFactory, UserFactory

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_ARCHIVE = REPO / "var" / "containers" / "template-model.tar"
TEMPLATE_TAG = "medmod/template-model:latest"
BUSYBOX = Path("/usr/bin/busybox")
CXR_MISSING = ["cxr_missing_25", "cxr_missing_50", "cxr_missing_75", "cxr_missing_100"]
CRASH_LINE = "could not read weights-v2.json: no such file"
# The container track's upload address: a body up to CONTAINER_MAX_UPLOAD_BYTES.
IMAGES = "/api/submissions/images/"


# Fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    """The real Docker engine, started by scripts/docker-engine.sh when needed."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "docker-engine.sh")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"the Docker engine could not be started:\n{proc.stderr}", pytrace=False)
    return get_client()


@pytest.fixture(scope="session")
def template_archive(engine) -> Path:
    """The template model's archive (scripts/build-template-image.sh; cached)."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "build-template-image.sh"), str(TEMPLATE_ARCHIVE)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"building the template image failed:\n{proc.stderr}", pytrace=False)
    return TEMPLATE_ARCHIVE


def _saved_image(client, tmp: Path, name: str, dockerfile: str) -> Path:
    """Build a tiny image (a static busybox on scratch) and `docker save` it."""
    if not BUSYBOX.is_file():
        pytest.fail(f"{BUSYBOX} is missing: install Debian's busybox-static (bin/test does)")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        tar.add(BUSYBOX, arcname="busybox")
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    tag = f"medmod-test/{name}:{uuid.uuid4().hex[:8]}"
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    dest = tmp / f"{name}.tar"
    try:
        with dest.open("wb") as out:
            for chunk in client.images.get(tag).save(named=True):
                out.write(chunk)
    finally:
        client.images.remove(tag, force=True)
    return dest


@pytest.fixture(scope="session")
def crashing_archive(engine, tmp_path_factory) -> Path:
    """A model that prints why it fails and exits with code 1."""
    return _saved_image(
        engine, tmp_path_factory.mktemp("crash"), "crash",
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        f'ENTRYPOINT ["/bin/busybox", "sh", "-c", "echo starting; echo \'{CRASH_LINE}\' >&2; '
        'exit 1"]\n',
    )  # fmt: skip


@pytest.fixture(scope="session")
def no_entrypoint_archive(engine, tmp_path_factory) -> Path:
    """A real `docker save` archive of an image with neither ENTRYPOINT nor CMD."""
    return _saved_image(
        engine, tmp_path_factory.mktemp("noentry"), "noentry",
        "FROM scratch\nCOPY busybox /bin/busybox\n",
    )  # fmt: skip


@pytest.fixture
def container_track(benchmark):
    """The tracks as the migrations leave them: the container track open (0003)."""
    from django.apps import apps

    ensure_tracks()
    module = __import__(
        "leaderboard.board.migrations.0003_container_track", fromlist=["open_container_track"]
    )
    module.open_container_track(apps, None)
    return Track.objects.get(slug=Track.CONTAINER)


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _form(path: Path | None, **kw):
    data = {
        "task": "in-hospital-mortality",
        "track": "container",
        "method_name": "Template model",
        "modalities": "ehr,cxr",
        "training_data": "the benchmark's train split only (weights.json of the template)",
    }
    if path is not None:
        data["image"] = SimpleUploadedFile(
            path.name, path.read_bytes(), content_type="application/x-tar"
        )
    data.update(kw)
    return data


# Upload checks (no worker) ---------------------------------------------------------------------
@pytest.mark.django_db
def test_an_archive_without_entrypoint_is_refused_at_upload_with_the_reason(
    api, container_track, no_entrypoint_archive
):
    """The runner's archive check runs before anything is stored or queued: a 400 that says
    the image declares neither ENTRYPOINT nor CMD, and no entry is recorded."""
    r = api.post(IMAGES, _form(no_entrypoint_archive), format="multipart")
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["code"] == "invalid_image"
    assert "neither ENTRYPOINT nor CMD" in body["errors"]["image"][0]
    assert not Submission.objects.exists()


@pytest.mark.django_db
def test_a_container_entry_without_an_image_or_with_a_csv_is_a_clear_400(api, container_track):
    r = api.post(IMAGES, _form(None), format="multipart")
    assert r.status_code == 400 and "image" in r.json()["errors"]
    csv = SimpleUploadedFile("p.csv", b"stay_id,prediction\n1,0.5\n", content_type="text/csv")
    r = api.post(IMAGES, _form(None, file=csv), format="multipart")
    assert r.status_code == 400 and "docker save" in r.json()["errors"]["image"][0]
    junk = SimpleUploadedFile("model.tar", b"not a tar at all" * 100)
    r = api.post(IMAGES, {**_form(None), "image": junk}, format="multipart")
    assert r.status_code == 400 and r.json()["code"] == "invalid_image"
    assert "not a tar archive" in r.json()["detail"]


@pytest.mark.django_db
def test_an_image_over_its_own_limit_is_refused_while_it_streams(
    api, container_track, crashing_archive, settings
):
    """The image field has CONTAINER_MAX_UPLOAD_BYTES, apart from the file limit: an archive
    over it is cut as it streams (the body itself, the archive and the form's fields, is
    within the limit and 1 MiB more, so it is read)."""
    settings.CONTAINER_MAX_UPLOAD_BYTES = 1024 * 1024
    assert 1024 * 1024 < crashing_archive.stat().st_size < 2 * 1024 * 1024 - 4096
    r = api.post(IMAGES, _form(crashing_archive), format="multipart")
    assert r.status_code == 400
    assert "image archive is larger than the 1 MiB limit" in r.json()["errors"]["image"][0]


# The whole flow with a real worker -------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_template_image_runs_to_a_verified_entry_and_a_crash_is_shown_to_its_owner_only(
    container_track, template_archive, crashing_archive, sample_ihm_csv, celery_worker
):
    t0 = time.monotonic()
    owner = UserFactory(username="modeller")
    other = UserFactory(username="someone-else")
    api = _client_for(owner)

    # 1. The template image through the API, and a prediction file for comparison.
    r = api.post(IMAGES, _form(template_archive), format="multipart")
    assert r.status_code == 201, r.content
    image_id = r.json()["id"]
    assert r.json()["track"] == "container" and r.json()["verification"] == "verified"
    upload_time = time.monotonic() - t0
    csv = SimpleUploadedFile("predictions.csv", sample_ihm_csv, content_type="text/csv")
    r = api.post(
        "/api/submissions/",
        {**_form(None, track="prediction-file", method_name="Logistic regression",
                 modalities="ehr"), "file": csv},
        format="multipart",
    )  # fmt: skip
    assert r.status_code == 201, r.content
    file_id = r.json()["id"]

    # 2. The crashing model.
    r = api.post(IMAGES, _form(crashing_archive, method_name="Crashes"), format="multipart")
    assert r.status_code == 201, r.content
    crash_id = r.json()["id"]

    wait_for(
        lambda: Submission.objects.get(public_id=image_id).status in ("published", "failed"),
        timeout=300, what="the template image's run",
    )  # fmt: skip
    image_done = time.monotonic() - t0
    wait_for(
        lambda: all(
            Submission.objects.get(public_id=pk).status in ("published", "failed")
            for pk in (file_id, crash_id)
        ),
        timeout=300, what="the other entries",
    )  # fmt: skip
    sub = Submission.objects.get(public_id=image_id)
    assert sub.status == "published", (sub.failure_code, sub.failure_reason,
                                       celery_worker.log_path.read_text()[-3000:])  # fmt: skip

    # The run: every scenario succeeded, the report has all four cxr_missing scenarios.
    ev = Evaluation.objects.get(submission=sub, status="succeeded")
    runs = ev.container_run["runs"]
    assert set(runs) == {"paired", *CXR_MISSING}
    assert all(r["status"] == "succeeded" for r in runs.values())
    # Each scenario was streamed by the gateway: the record holds its steps, the bytes it
    # revealed and the time per step; every unit of the whole test split was asked.
    for r in runs.values():
        stream = r["stream"]
        assert stream["mode"] == "stream" and stream["steps"]["done"] == stream["steps"]["total"]
        assert stream["units"]["answered"] == stream["units"]["total"] > 0
        assert sum(stream["bytes_revealed"].values()) > 0 and stream["gateway_step_time"]
    assert runs["paired"]["stream"]["units"]["total"] > sub.task.n_test_units
    assert set(ev.report["scenarios"]) >= {"paired", "natural", *CXR_MISSING}
    robustness = ev.report["robustness"]
    assert set(robustness["drops"]) == set(CXR_MISSING)
    assert robustness["audc"]["value"] is not None
    assert ev.summary["robustness"]["scenarios_scored"] == ["paired", *CXR_MISSING]

    # 3. The board: verified vs self-reported, in JSON, CSV and HTML.
    anon = APIClient()
    board = anon.get("/api/tasks/in-hospital-mortality/leaderboard/").json()
    labels = {row["entry_id"]: row["verification"] for row in board["rows"]}
    assert labels == {image_id: "verified", file_id: "self-reported scenarios"}
    image_row = next(row for row in board["rows"] if row["entry_id"] == image_id)
    assert image_row["robustness"]["audc"]["value"] is not None
    text = anon.get("/api/tasks/in-hospital-mortality/leaderboard/?format=csv").content.decode()
    header, *lines = text.strip().splitlines()
    col = header.split(",").index("verification")
    assert {line.split(",")[col] for line in lines} == {"verified", "self-reported scenarios"}
    page = Client().get("/tasks/in-hospital-mortality/").content.decode()
    assert '<span class="tag verified"' in page and "verified · causal" in page
    assert "self-reported · not run causally" in page
    entry_page = Client().get(f"/entries/{image_id}/").content.decode()
    assert (
        "verified · causal</span> run by the platform through the streaming gateway" in entry_page
    )
    assert "Container run" not in entry_page  # the run record is the owner's
    assert anon.get(f"/api/submissions/{image_id}/").json()["verification"] == "verified"
    for run in anon.get(f"/api/submissions/{image_id}/evaluations/").json():
        assert run["container_run"] is None and run["container_logs"] is None
    owner_runs = api.get(f"/api/submissions/{image_id}/evaluations/").json()
    assert owner_runs[0]["container_run"]["runs"]["cxr_missing_100"]["status"] == "succeeded"

    # 4. The crash: failed, with the exit code, and the log tail for the owner only.
    crash = Submission.objects.get(public_id=crash_id)
    assert crash.status == "failed" and crash.failure_kind == "input"
    assert crash.failure_code == "container_crashed"
    assert "exited at step 0 of 1" in crash.failure_reason  # the gateway saw it go
    assert "Exit code 1" in crash.failure_reason
    body = api.get(f"/api/submissions/{crash_id}/").json()
    assert body["status"] == "failed" and "code 1" in body["failure_reason"]
    runs = api.get(f"/api/submissions/{crash_id}/evaluations/").json()
    assert CRASH_LINE in runs[0]["container_logs"]["paired"]
    assert runs[0]["container_run"]["runs"]["cxr_missing_25"]["status"] == "skipped"
    web = Client()
    web.force_login(owner)
    owner_page = web.get(f"/entries/{crash_id}/").content.decode()
    assert "Why it failed" in owner_page and CRASH_LINE in owner_page
    assert _client_for(other).get(f"/api/submissions/{crash_id}/").status_code == 404
    assert anon.get(f"/api/submissions/{crash_id}/evaluations/").status_code == 404
    stranger = Client()
    stranger.force_login(other)
    assert stranger.get(f"/entries/{crash_id}/").status_code == 404
    board_text = anon.get("/api/tasks/in-hospital-mortality/leaderboard/").content.decode()
    assert CRASH_LINE not in board_text

    # Nothing of the runs is left on the engine.
    client = get_client()
    assert not client.containers.list(all=True, filters={"label": LABEL_RUN})
    timings = {
        "upload_s": round(upload_time, 1),
        "template_published_s": round(image_done, 1),
        "run_seconds": {s: r["wall_time"] for s, r in ev.container_run["runs"].items()},
        "load_s": ev.container_run["load_time"],
        "evaluation_s": round(ev.duration_seconds, 1),
    }
    print("container track timings:", timings)


# The reaper ------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_reaper_requeues_a_dead_workers_container_run_and_removes_its_container(
    container_track, template_archive, engine
):
    """A worker died mid-run: past CONTAINER_LEASE its run goes back to the queue and the
    beat task removes the container it left running on the engine."""
    from leaderboard.board.tasks import reap_task

    task = Task.objects.get(slug="in-hospital-mortality", benchmark__is_current=True)
    sub = SubmissionFactory(track=container_track, task=task, status=Submission.Status.RUNNING)
    run_id = new_run_id(timezone.now() - timedelta(minutes=5))
    ev = Evaluation.objects.create(
        submission=sub, trigger="submission", benchmark_hash="x", status="running",
        run_token=uuid.uuid4(), attempts=1, container_run_id=run_id,
        started_at=timezone.now() - settings.CONTAINER_LEASE - timedelta(seconds=5),
    )  # fmt: skip
    # A file's lease is shorter: a container run within its own lease is left alone.
    young = Evaluation.objects.filter(pk=ev.pk)
    young.update(started_at=timezone.now() - settings.SCORING_LEASE - timedelta(seconds=5))
    assert reap_task()["requeued"] == 0
    young.update(started_at=timezone.now() - settings.CONTAINER_LEASE - timedelta(seconds=5))

    left = engine.containers.run(
        TEMPLATE_TAG, ["python3", "-c", "import time; time.sleep(300)"], detach=True,
        labels={LABEL_RUN: run_id}, network_mode="none",
    )  # fmt: skip
    try:
        result = reap_task()
        assert result["requeued"] == 1 and result["containers_removed"] >= 1
        ev.refresh_from_db()
        assert ev.status == "queued"
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(left.id)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            left.remove(force=True)


# The web form --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_submission_form_takes_an_image_and_answers_a_bad_one_on_the_page(
    user, container_track, no_entrypoint_archive, crashing_archive
):
    """The form shows the image field; a refused archive comes back as a 400 page naming the
    problem next to the field; a good archive is stored under images/ and queued."""
    web = Client()
    web.force_login(user)
    page = web.get("/submit/").content.decode()
    assert 'name="image"' in page and 'value="container"' in page
    assert "(not open yet)" not in page

    def post(path: Path):
        data = _form(None, uses_ehr="on", uses_cxr="on", visibility="public")
        data["image"] = SimpleUploadedFile(path.name, path.read_bytes())
        return web.post("/submit/", data)

    r = post(no_entrypoint_archive)
    assert r.status_code == 400
    assert "neither ENTRYPOINT nor CMD" in r.content.decode()
    r = post(crashing_archive)
    assert r.status_code == 302, r.content.decode()[-2000:]
    sub = Submission.objects.get(owner=user)
    assert sub.track.slug == "container" and sub.file.name.startswith("images/")
    assert sub.verification == "verified"
