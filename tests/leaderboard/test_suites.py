"""Several suites on one platform: each has its current benchmark, its boards under its own
address, and its tasks in the API; MedMod's addresses stay as they were."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from leaderboard.board.models import Benchmark
from leaderboard.board.services.benchmarks import benchmark_register
from tests.tiny_suite import build_tiny_suite_benchmark

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny_suite_dir(tmp_path_factory):
    """A benchmark of the tiny suite on disk, written once for the module."""
    out = tmp_path_factory.mktemp("suites") / "tiny"
    build_tiny_suite_benchmark(out)
    return out


@pytest.fixture
def two_suites(benchmark, tiny_suite_dir):
    """The demo MedMod benchmark and a benchmark of the tiny suite, both registered."""
    tiny = benchmark_register(uri=str(tiny_suite_dir), verify=False)
    return benchmark, tiny


def test_each_suite_keeps_its_own_current_benchmark(two_suites):
    medmod, tiny = two_suites
    assert (medmod.suite.slug, tiny.suite.slug) == ("medmod", "tiny-notes")
    assert set(Benchmark.objects.filter(is_current=True)) == {medmod, tiny}
    assert tiny.suite.title == "Tiny notes suite"
    assert sorted(tiny.tasks.values_list("slug", flat=True)) == ["diseases", "mortality-24h"]


def test_the_home_page_lists_every_suite_with_its_boards(client, two_suites):
    html = client.get("/").content.decode()
    assert "MedMod" in html and "Tiny notes suite" in html
    assert 'href="/tasks/in-hospital-mortality/"' in html  # MedMod's addresses are unchanged
    assert 'href="/suites/tiny-notes/tasks/mortality-24h/"' in html
    assert "Clinical notes (optional)" in html


def test_a_board_lives_under_its_suite(client, two_suites):
    r = client.get("/suites/tiny-notes/tasks/mortality-24h/")
    assert r.status_code == 200 and "Mortality from the first day" in r.content.decode()
    assert client.get("/tasks/mortality-24h/").status_code == 404  # not a MedMod task
    assert client.get("/suites/tiny-notes/tasks/phenotyping/").status_code == 404
    assert client.get("/suites/medmod/tasks/phenotyping/").status_code == 200


def test_the_api_lists_no_suite_before_a_benchmark_is_loaded():
    api = APIClient()
    assert api.get("/api/suites/").json() == []  # nothing registered yet


def test_the_api_serves_each_suites_tasks_and_leaderboards(two_suites):
    api = APIClient()
    suites = api.get("/api/suites/").json()
    assert [s["slug"] for s in suites] == ["medmod", "tiny-notes"]
    tiny = suites[1]
    assert tiny["scenarios"] == ["paired", "notes_missing_50", "notes_missing_100", "vitals_only", "natural"]  # fmt: skip
    assert [m["slug"] for m in tiny["modalities"]] == ["vitals", "notes"]
    assert tiny["ablations"] == [{"slug": "vitals_only", "title": "Vital signs only", "modalities": ["vitals"]}]  # fmt: skip
    tasks = api.get("/api/suites/tiny-notes/tasks/").json()
    assert {t["slug"]: t["suite"] for t in tasks} == {"mortality-24h": "tiny-notes", "diseases": "tiny-notes"}  # fmt: skip
    assert [t["slug"] for t in api.get("/api/tasks/").json()] == [
        "in-hospital-mortality", "phenotyping", "decompensation", "length-of-stay", "radiology",
    ]  # fmt: skip
    detail = api.get("/api/suites/tiny-notes/tasks/diseases/").json()
    assert detail["primary_metric"] == "macro_f1" and detail["label_columns"] == ["sepsis", "heart_failure", "aki"]  # fmt: skip
    board = api.get("/api/suites/tiny-notes/tasks/mortality-24h/leaderboard/?format=csv")
    assert board.status_code == 200 and board["Content-Type"].startswith("text/csv")
    assert api.get("/api/tasks/mortality-24h/").status_code == 404


def test_an_entry_of_another_suite_is_submitted_scored_and_ranked_under_it(
    api, client, two_suites, tmp_path, django_capture_on_commit_callbacks
):
    import numpy as np
    import pandas as pd
    from django.core.files.uploadedfile import SimpleUploadedFile

    from leaderboard.board.models import Submission
    from leaderboard.board.services.evaluations import evaluation_run

    frame = build_tiny_suite_benchmark(tmp_path / "again")  # the same seeded data
    p = 1 / (1 + np.exp(-2 * frame["risk"].to_numpy()))
    body = pd.DataFrame({"stay_id": frame["stay_id"], "prediction": p}).to_csv(index=False).encode()
    form = {
        "suite": "tiny-notes", "task": "mortality-24h", "method_name": "Risk score",
        "modalities": "vitals", "training_data": "train and validation splits only",
        "file": SimpleUploadedFile("p.csv", body, content_type="text/csv"),
    }  # fmt: skip
    # Without the suite, the task is looked for in MedMod and refused, naming MedMod's tasks.
    r = api.post("/api/submissions/", {**form, "suite": "medmod"}, format="multipart")
    assert r.status_code == 400 and "the tasks of suite medmod are in-hospital-mortality" in str(r.json()["errors"]["task"])  # fmt: skip
    form["file"] = SimpleUploadedFile("p.csv", body, content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=False):
        r = api.post("/api/submissions/", form, format="multipart")
    assert r.status_code == 201, r.content
    sub = Submission.objects.get(public_id=r.json()["id"])
    assert sub.task.benchmark.suite.slug == "tiny-notes"
    ev = evaluation_run(evaluation_id=sub.evaluations.get().pk, worker="test")
    assert ev.status == "succeeded", ev.error_message
    assert ev.report["primary_metric"] == "auprc" and ev.report["threshold"] == 0.3
    board = APIClient().get("/api/suites/tiny-notes/tasks/mortality-24h/leaderboard/?format=json").json()  # fmt: skip
    assert [row["method_name"] for row in board["rows"]] == ["Risk score"]
    page = client.get(f"/entries/{sub.public_id}/").content.decode()
    assert "Risk score" in page and 'href="/suites/tiny-notes/tasks/mortality-24h/"' in page
    board_page = client.get("/suites/tiny-notes/tasks/mortality-24h/").content.decode()
    assert "Risk score" in board_page
    assert 'href="/api/suites/tiny-notes/tasks/mortality-24h/leaderboard/?format=csv"' in board_page


def test_the_submit_form_of_a_suite_offers_its_modalities_and_records_them(
    client, user, two_suites
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from leaderboard.board.models import Submission

    client.force_login(user)
    page = client.get("/submit/?suite=tiny-notes").content.decode()
    assert 'name="uses_vitals"' in page and 'name="uses_notes"' in page
    assert 'name="uses_ehr"' not in page and 'value="tiny-notes"' in page
    assert 'href="/submit/?suite=medmod"' in page  # the other suites' forms are linked
    form = {
        "suite": "tiny-notes", "task": "mortality-24h", "track": "prediction-file",
        "method_name": "Notes reader", "training_data": "train and val splits only",
        "visibility": "public",
    }  # fmt: skip
    r = client.post("/submit/", {**form, "file": SimpleUploadedFile("p.csv", b"stay_id,prediction\n5000,0.5\n")})  # fmt: skip
    assert r.status_code == 400
    assert "Tick the inputs your model uses (one at least): Vital signs, Clinical notes." in r.content.decode()  # fmt: skip
    r = client.post("/submit/", {**form, "uses_notes": "on", "file": SimpleUploadedFile("p.csv", b"stay_id,prediction\n5000,0.5\n")})  # fmt: skip
    assert r.status_code == 302, r.content.decode()[:2000]
    sub = Submission.objects.get()
    assert sub.task.benchmark.suite.slug == "tiny-notes"
    assert sub.modalities == ["notes"] and not sub.uses_ehr and not sub.uses_cxr
    assert sub.modalities_label == "Notes"
    assert client.get("/submit/?suite=nope").status_code == 404


def test_the_api_refuses_a_modality_the_suite_does_not_declare(api, two_suites):
    from django.core.files.uploadedfile import SimpleUploadedFile

    r = api.post("/api/submissions/", {
        "suite": "tiny-notes", "task": "mortality-24h", "method_name": "X", "modalities": "ehr,notes",
        "training_data": "train and validation splits only",
        "file": SimpleUploadedFile("p.csv", b"stay_id,prediction\n5000,0.5\n"),
    }, format="multipart")  # fmt: skip
    assert r.status_code == 400
    assert r.json()["errors"]["modalities"] == ['"ehr" is not a valid choice: the inputs of suite tiny-notes are vitals, notes.']  # fmt: skip


def test_a_suite_baselines_run_enters_its_models_with_their_modalities(client, benchmark, tmp_path):
    from benchmark_data.synth.yu import generate_yu
    from leaderboard.board.models import Submission
    from leaderboard.board.services.baselines import baselines_load
    from leaderboard.board.services.evaluations import evaluation_run
    from scoring.baselines.suites import train_suite_baselines

    generate_yu(tmp_path / "yu", scale="tiny", seed=3)
    train_suite_baselines(str(tmp_path / "yu"), tmp_path / "run", models=["ehr", "notes_tfidf", "modular"])  # fmt: skip
    benchmark_register(uri=str(tmp_path / "yu"), verify=False)
    subs = baselines_load(run_dir=tmp_path / "run")
    assert [(s.task.slug, s.method_name) for s in subs] == [
        ("mortality-24h", "EHR only (logistic regression)"),
        ("mortality-24h", "Notes only (TF-IDF + LR)"),
        ("mortality-24h", "Modular framework (Yu et al.)"),
        ("los-over-3d", "EHR only (logistic regression)"),
        ("los-over-3d", "Notes only (TF-IDF + LR)"),
        ("los-over-3d", "Modular framework (Yu et al.)"),
    ]
    assert subs[1].modalities == ["notes"] and subs[2].modalities == ["demographics", "ehr", "cxr", "notes"]  # fmt: skip
    assert all(s.is_reference and s.task.benchmark.suite.slug == "yu2025" for s in subs)
    for s in subs[:3]:
        ev = evaluation_run(evaluation_id=s.evaluations.get().pk, worker="test")
        assert ev.status == "succeeded", ev.error_message
    board = client.get("/suites/yu2025/tasks/mortality-24h/").content.decode()
    # Each withheld modality's change is a column; the ablations are in each entry's details.
    for header in ("Δ no CXR", "Δ no Notes"):
        assert f">{header}</th>" in board
    for header in ("EHR only", "EHR + CXR only", "EHR + Notes only"):
        assert f">{header}</dt>" in board
    entry = client.get(f"/entries/{subs[2].public_id}/").content.decode()
    assert 'id="ablations"' in entry and "EHR and radiology reports" in entry
    assert "notes_missing_100" in entry and "Missing modalities (robustness)" in entry
    assert Submission.objects.filter(task__benchmark__suite__slug="yu2025").count() == 6


def test_a_container_entry_of_a_suite_the_gateway_cannot_stream_is_refused_with_the_reason(
    api, two_suites
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    r = api.post("/api/submissions/", {
        "suite": "tiny-notes", "task": "mortality-24h", "track": "container", "method_name": "X",
        "modalities": "vitals", "training_data": "train and validation splits only",
        "image": SimpleUploadedFile("m.tar", b"not an image"),
    }, format="multipart")  # fmt: skip
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["code"] == "track_closed"
    assert "does not reveal vital signs or clinical notes" in body["detail"]
    assert (
        body["errors"]["track"] == [body["detail"]]
        and "Submit a prediction file instead." in body["detail"]
    )


def test_a_multilabel_suite_entry_page_shows_its_labels_and_the_notes_ablation(
    client, benchmark, tmp_path
):
    from benchmark_data.synth.medfuse import TASK, generate_medfuse
    from leaderboard.board.services.baselines import baselines_load
    from leaderboard.board.services.evaluations import evaluation_run
    from scoring.baselines.suites import train_suite_baselines

    generate_medfuse(tmp_path / "mf", scale="tiny", seed=5)
    train_suite_baselines(str(tmp_path / "mf"), tmp_path / "run", models=["labs", "modular"])
    benchmark_register(uri=str(tmp_path / "mf"), verify=False)
    subs = baselines_load(run_dir=tmp_path / "run")
    assert [s.method_name for s in subs] == ["Labs only (logistic regression)", "Modular framework (Yu et al.)"]  # fmt: skip
    for s in subs:
        ev = evaluation_run(evaluation_id=s.evaluations.get().pk, worker="test")
        assert ev.status == "succeeded", ev.error_message
        assert ev.report["primary_metric"] == "macro_f1"
    r = client.get(f"/entries/{subs[1].public_id}/")
    assert r.status_code == 200
    page = r.content.decode()
    assert "acute_and_unspecified_renal_failure" in page and "Lab tests only" in page
    assert "Missing clinical notes (robustness)" in page
    board = client.get(f"/suites/medfuse/tasks/{TASK}/").content.decode()
    assert ">Δ no Notes</th>" in board and ">Labs only</dt>" in board
    assert "as more and more units lose their clinical notes" in board


def test_the_container_track_takes_a_suite_whose_files_end_at_its_one_prediction_time(two_suites, tmp_path):  # fmt: skip
    from benchmark_data.synth.yu import generate_yu
    from leaderboard.board.errors import TrackClosed
    from leaderboard.board.services.submissions import check_gateway_streams

    generate_yu(tmp_path / "yu", scale="tiny", seed=3)
    yu = benchmark_register(uri=str(tmp_path / "yu"), verify=False)
    for task in yu.tasks.all():
        check_gateway_streams(task)  # run on its files: no refusal
    _, tiny = two_suites
    with pytest.raises(TrackClosed, match="does not reveal vital signs or clinical notes"):
        check_gateway_streams(tiny.tasks.get(slug="mortality-24h"))
