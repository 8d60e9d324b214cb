"""The public data as a participant downloads it from the site: every file the task page and
the API list is served with the sha256 they show, nothing of the credentialed part is among
them, and nothing outside the published release can be fetched."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from io import StringIO

import pandas as pd
import pytest
from django.core.management import call_command

from benchmark_data import Benchmark, export_public
from leaderboard.board.services.downloads import benchmark_publish_downloads
from tests.leaderboard.conftest import publish_release

pytestmark = pytest.mark.django_db

TASK = "in-hospital-mortality"


@pytest.fixture
def published(benchmark):
    publish_release(benchmark)
    return benchmark


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_the_task_page_lists_the_files_with_sizes_and_checksums(anon, published):
    html = anon.get(f"/tasks/{TASK}/").content.decode()
    assert "Get the data" in html
    listing = anon.get(f"/api/tasks/{TASK}/files/").json()
    assert listing["benchmark"]["manifest_hash"] == published.manifest_hash
    names = [f["name"] for f in listing["files"]]
    assert names[0] == f"{published.name}-{published.version}-public.tar.gz"
    for name in ("inputs-train.tar.gz", "inputs-test.tar.gz", f"tasks/{TASK}/test.csv",
                 f"tasks/{TASK}/scenarios.csv", f"tasks/{TASK}/sample-predictions.csv"):  # fmt: skip
        assert name in names
    assert not any(n.startswith("tasks/") and f"tasks/{TASK}/" not in n for n in names)
    for f in listing["files"]:
        assert f["url"].startswith("http://testserver/downloads/")
        assert f'href="{f["url"].removeprefix("http://testserver")}"' in html
        assert f["sha256"] in html  # shown in full as the short form's title


def test_every_file_downloads_with_the_sha256_it_is_listed_with(anon, published):
    listing = anon.get(f"/api/benchmarks/{published.manifest_hash}/files/").json()
    sums = {}
    for f in listing["files"]:
        r = anon.get(f["url"].removeprefix("http://testserver"))
        assert r.status_code == 200, f["name"]
        data = _body(r)
        assert hashlib.sha256(data).hexdigest() == f["sha256"] == r["X-Checksum-SHA256"]
        assert len(data) == f["size"]
        assert r["Content-Disposition"].startswith("attachment;")
        if f["name"] == "SHA256SUMS":
            sums = dict(line.split("  ")[::-1] for line in data.decode().splitlines())
    assert sums and all(
        sums[f["name"]] == f["sha256"] for f in listing["files"] if f["name"] in sums
    )


@pytest.mark.slow
def test_nothing_credentialed_is_served(anon, published, demo_benchmark_dir, tmp_path):
    """The served archive is exactly the public export (the leak-free layout of the test
    split), no member is a credentialed file or holds a test label, and the test unit lists
    carry no label column."""
    bench = Benchmark.open(demo_benchmark_dir)
    listing = anon.get(f"/api/tasks/{TASK}/files/").json()
    credentialed = {
        e["sha256"] for rel, e in bench.manifest["files"].items() if rel.startswith("credentialed/")
    }
    for f in listing["files"]:
        data = _body(anon.get(f["url"].removeprefix("http://testserver")))
        members = {f["name"]: data}
        if f["name"].endswith(".tar.gz"):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
        for name, content in members.items():
            assert not name.startswith("credentialed"), name
            assert hashlib.sha256(content).hexdigest() not in credentialed, name
        if f["name"].endswith("-public.tar.gz"):
            export_public(bench, tmp_path / "export")
            expected = (tmp_path / "export" / "manifest.json").read_bytes()
            assert members["manifest.json"] == expected
    test_units = pd.read_csv(
        io.BytesIO(_body(anon.get(f"/downloads/{published.manifest_hash}/tasks/{TASK}/test.csv")))
    )
    assert "y_true" not in test_units.columns and "label" not in test_units.columns
    assert set(test_units.columns) <= {"stay_id", "subject_id", "cxr_dicom_id", "period_length"}


@pytest.mark.parametrize(
    "name",
    [
        "manifest.json",
        "credentialed/labels/in-hospital-mortality.csv",
        "../manifest.json",
        "tasks/in-hospital-mortality/../../manifest.json",
        "public/stays.csv",
        "tasks/no-such-task/test.csv",
    ],
)
def test_only_files_of_the_published_release_can_be_fetched(anon, published, name):
    r = anon.get(f"/downloads/{published.manifest_hash}/{name}")
    assert r.status_code == 404


def test_an_unknown_benchmark_and_an_unpublished_one_answer_404_with_the_reason(
    anon, benchmark, settings, tmp_path
):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "empty-storage")},
        },
    }
    assert anon.get(f"/downloads/{'0' * 64}/SHA256SUMS").status_code == 404
    r = anon.get(f"/api/tasks/{TASK}/files/")
    assert r.status_code == 404 and r.json()["code"] == "not_published"
    assert "not published yet" in anon.get(f"/tasks/{TASK}/").content.decode()


def test_a_client_holding_the_file_gets_304(anon, published):
    f = anon.get(f"/api/tasks/{TASK}/files/").json()["files"][-1]
    url = f["url"].removeprefix("http://testserver")
    r = anon.get(url, HTTP_IF_NONE_MATCH=f'"{f["sha256"]}"')
    assert r.status_code == 304
    assert anon.get(url)["Cache-Control"] == "public, max-age=31536000, immutable"


def test_benchmarks_in_the_api_point_at_their_files(anon, published):
    row = next(
        b
        for b in anon.get("/api/benchmarks/").json()
        if b["manifest_hash"] == published.manifest_hash
    )
    assert row["files_url"] == f"http://testserver/api/benchmarks/{published.manifest_hash}/files/"
    index = anon.get(row["files_url"]).json()
    assert index["benchmark"]["manifest_hash"] == published.manifest_hash
    assert json.dumps(index).count("credentialed") == 0


def test_load_benchmark_publishes_the_downloads(demo_benchmark_dir, anon):
    from tests.leaderboard.conftest import ensure_tracks

    ensure_tracks()
    out = StringIO()
    call_command("load_benchmark", str(demo_benchmark_dir), "--no-verify", stdout=out)
    assert "published its public data files" in out.getvalue()
    assert anon.get(f"/api/tasks/{TASK}/files/").status_code == 200
    out = StringIO()
    call_command("publish_downloads", stdout=out)
    assert "published medmod-synthetic" in out.getvalue() or "published " in out.getvalue()


def test_a_mimic_benchmark_offers_identifiers_and_states_the_access_terms(anon, tmp_path):
    """A benchmark built from MIMIC: its task page states the credentialed-access terms and
    the rebuild command, and what it serves holds identifiers only."""
    from leaderboard.board.services.benchmarks import benchmark_register
    from tests.benchmark_data.mimic_fixtures import build_tree, import_tree
    from tests.leaderboard.conftest import ensure_tracks

    ensure_tracks()
    tree = build_tree(tmp_path / "tree", seed=3)
    import_tree(tree, tmp_path / "bench")
    benchmark = benchmark_register(uri=str(tmp_path / "bench"))
    index = benchmark_publish_downloads(benchmark=benchmark)
    assert index["ids_only"]
    html = anon.get(f"/tasks/{TASK}/").content.decode()
    assert "Credentialed access required" in html
    assert "PhysioNet Credentialed Health Data License" in html
    assert "python -m benchmark_data rebuild-public --ids medmod-mimic-" in html
    listing = anon.get(f"/api/tasks/{TASK}/files/").json()
    assert listing["ids_only"] and "PhysioNet" in listing["terms"]
    kinds = {f["kind"] for f in listing["files"]}
    assert kinds == {"ids", "units", "scenarios", "checksums"}
    for f in listing["files"]:
        data = _body(anon.get(f["url"].removeprefix("http://testserver")))
        if f["kind"] == "ids":
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                names = set(tar.getnames())
            assert names == {
                "public/stays.csv", "public/cxr/metadata.csv", "public/suite.json", "rebuild.json"
            }  # fmt: skip
        elif f["kind"] == "units":
            columns = set(pd.read_csv(io.BytesIO(data)).columns)
            assert columns <= {"stay_id", "subject_id", "cxr_dicom_id", "period_length", "stay"}


def test_another_suites_task_page_lists_its_own_files(anon, benchmark, tmp_path):
    """A task of the Yu et al. suite: its page and its suite-scoped API list that benchmark's
    files, with the notes in its inputs archives and a sample file over its scenarios."""
    from benchmark_data.synth.yu import generate_yu
    from leaderboard.board.services.benchmarks import benchmark_register

    generate_yu(tmp_path / "yu", scale="tiny", seed=3)
    yu = benchmark_register(uri=str(tmp_path / "yu"), verify=False)
    benchmark_publish_downloads(benchmark=yu)
    slug = yu.tasks.order_by("id").first().slug
    html = anon.get(f"/suites/yu2025/tasks/{slug}/").content.decode()
    assert f'href="/api/suites/yu2025/tasks/{slug}/files/"' in html
    assert f"--task {slug}" in html and "?suite=yu2025&amp;task=" in html
    listing = anon.get(f"/api/suites/yu2025/tasks/{slug}/files/").json()
    assert listing["benchmark"]["manifest_hash"] == yu.manifest_hash
    test_inputs = next(f for f in listing["files"] if f["name"] == "inputs-test.tar.gz")
    data = _body(anon.get(test_inputs["url"].removeprefix("http://testserver")))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        assert "public/notes/test.csv.gz" in tar.getnames()
    sample = next(f for f in listing["files"] if f["kind"] == "sample")
    rows = pd.read_csv(io.BytesIO(_body(anon.get(sample["url"].removeprefix("http://testserver")))))
    assert {"paired", "notes_missing_100"} <= set(rows["scenario"])
