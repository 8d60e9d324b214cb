"""Uploads and benchmarks in S3: the django-storages backend and boto3 against an
S3-compatible server on loopback (moto's standalone server, started as a process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import boto3
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from leaderboard.board.models import Submission
from leaderboard.board.services.evaluations import evaluation_run

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

BUCKET = "leaderboard-uploads"


@pytest.fixture(scope="module")
def s3_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    yield url
    os.killpg(proc.pid, 15)
    proc.wait(timeout=20)


@pytest.fixture
def s3_uploads(s3_endpoint, settings, monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_endpoint}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": BUCKET, "location": "uploads", "endpoint_url": s3_endpoint,
                        "region_name": "us-east-1", "default_acl": None, "file_overwrite": False},
        },
    }  # fmt: skip
    return client


def test_an_upload_goes_to_s3_and_is_scored_from_there(
    s3_uploads, api, benchmark, sample_ihm_csv, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        r = api.post(
            "/api/submissions/",
            {"task": "in-hospital-mortality", "method_name": "LR", "modalities": "ehr",
             "training_data": "train split only", "file": SimpleUploadedFile("p.csv", sample_ihm_csv)},
            format="multipart",
        )  # fmt: skip
    assert r.status_code == 201, r.content
    sub = Submission.objects.get(public_id=r.json()["id"])
    key = f"uploads/{sub.file.name}"
    obj = s3_uploads.get_object(Bucket=BUCKET, Key=key)
    assert obj["Body"].read() == sample_ihm_csv
    assert default_storage.__class__.__name__ == "S3Storage"
    ev = evaluation_run(evaluation_id=sub.evaluations.get().pk, worker="test")
    assert ev.status == "succeeded", ev.error_message
    sub.refresh_from_db()
    assert sub.status == "published"


def test_a_benchmark_in_s3_is_registered_and_scored_against(
    s3_uploads, api, demo_benchmark_dir, sample_ihm_csv, django_capture_on_commit_callbacks
):
    """The credentialed benchmark can live in a bucket: the worker reads the test labels
    from there (only the files scoring needs are copied here)."""
    from io import StringIO

    from django.core.management import call_command

    from benchmark_data.store import LocalStore, S3Store, copy_tree
    from leaderboard.board.models import Benchmark
    from tests.leaderboard.conftest import ensure_tracks

    ensure_tracks()
    s3_uploads.create_bucket(Bucket="credentialed")
    src, dest = (
        LocalStore(demo_benchmark_dir),
        S3Store("credentialed", "medmod/demo", client=s3_uploads),
    )
    for prefix in ("credentialed", "public/tasks/in-hospital-mortality", "public/scenarios"):
        copy_tree(src, dest, prefix=prefix)
    for rel in ("public/stays.csv", "public/suite.json", "manifest.json"):
        dest.write_bytes(rel, src.read_bytes(rel))
    out = StringIO()
    call_command(
        "load_benchmark",
        "s3://credentialed/medmod/demo",
        "--no-verify",
        "--no-downloads",
        stdout=out,
    )
    assert "registered medmod-synthetic demo-seed42" in out.getvalue()
    assert Benchmark.objects.get().uri == "s3://credentialed/medmod/demo"
    with django_capture_on_commit_callbacks(execute=False):
        r = api.post(
            "/api/submissions/",
            {"task": "in-hospital-mortality", "method_name": "LR", "modalities": "ehr",
             "training_data": "train split only", "file": SimpleUploadedFile("p.csv", sample_ihm_csv)},
            format="multipart",
        )  # fmt: skip
    assert r.status_code == 201, r.content
    sub = Submission.objects.get(public_id=r.json()["id"])
    ev = evaluation_run(evaluation_id=sub.evaluations.get().pk, worker="test")
    assert ev.status == "succeeded", ev.error_message


def test_downloads_are_stored_in_s3_and_served_through_presigned_links(s3_uploads, anon, benchmark):
    """With S3 storage the release goes to the bucket, and a download answers with a
    pre-signed link that fetches the listed bytes (and names the file) without the site."""
    import hashlib
    import urllib.request

    from leaderboard.board.services.downloads import benchmark_publish_downloads

    benchmark_publish_downloads(benchmark=benchmark)
    keys = {
        o["Key"]
        for page in s3_uploads.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"uploads/public-data/{benchmark.manifest_hash}/"
        )
        for o in page.get("Contents", [])
    }
    listing = anon.get("/api/tasks/in-hospital-mortality/files/").json()
    assert {
        f"uploads/public-data/{benchmark.manifest_hash}/{f['name']}" for f in listing["files"]
    } <= keys
    small = next(f for f in listing["files"] if f["name"].endswith("/test.csv"))
    r = anon.get(small["url"].removeprefix("http://testserver"))
    assert r.status_code == 302
    assert "Signature=" in r["Location"] and "Expires=" in r["Location"]  # signed, expiring
    with urllib.request.urlopen(r["Location"], timeout=10) as got:
        data = got.read()
        assert 'filename="test.csv"' in got.headers["Content-Disposition"]
    assert hashlib.sha256(data).hexdigest() == small["sha256"]
