"""Storage: a local directory and S3 (a real moto server on loopback, over HTTP)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from benchmark_data import Benchmark, BenchmarkError, layout
from benchmark_data.__main__ import main
from benchmark_data.store import LocalStore, S3Store, StoreError, copy_tree, open_store
from tests.benchmark_data.mimic_fixtures import build_tree, import_tree


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    tree = build_tree(root / "in", seed=31, n_subjects=8)
    import_tree(tree, root / "bench", seed=2)
    return root / "bench"


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmark_data", *args],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip


def _put_tree(src: Path, bucket: str, prefix: str, *, only: str | None = None) -> None:
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if path.is_file() and (only is None or rel.startswith(only)):
            client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=path.read_bytes())


# Local ---------------------------------------------------------------------------------------


def test_local_store_write_read_list_exists(tmp_path):
    store = open_store(tmp_path / "root")
    assert isinstance(store, LocalStore) and store.list() == []
    store.write_bytes("public/a.csv", b"x\n")
    store.write_bytes("public/sub/b.bin", b"\x00\x01")
    store.write_bytes("credentialed/c.csv", b"y\n")
    assert store.read_bytes("public/sub/b.bin") == b"\x00\x01"
    assert store.exists("public/a.csv") and not store.exists("public/zz.csv")
    assert store.list() == ["credentialed/c.csv", "public/a.csv", "public/sub/b.bin"]
    assert store.list("public") == ["public/a.csv", "public/sub/b.bin"]
    assert store.local_path("public/a.csv") == tmp_path / "root" / "public" / "a.csv"
    assert not list((tmp_path / "root").rglob("*.part"))


def test_local_store_refuses_bad_names_and_reports_missing_files(tmp_path):
    store = LocalStore(tmp_path)
    for bad in ("../x", "/etc/passwd", "a//b", "a/./b"):
        with pytest.raises(StoreError, match="invalid file name"):
            store.read_bytes(bad)
    with pytest.raises(FileNotFoundError, match="nope.csv is missing from"):
        store.read_bytes("nope.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(StoreError, match="cannot read dir.csv"):
        store.read_bytes("dir.csv")


# S3 ------------------------------------------------------------------------------------------


def test_s3_store_write_read_list_exists(s3_bucket):
    store = open_store(f"s3://{s3_bucket}/bench/v1")
    assert isinstance(store, S3Store) and store.uri == f"s3://{s3_bucket}/bench/v1"
    assert store.list() == []
    store.write_bytes("public/a.csv", b"x\n")
    store.write_bytes("public/sub/b.bin", b"\x00\x01")
    store.write_bytes("credentialed/c.csv", b"y\n")
    S3Store(s3_bucket, "bench/v10").write_bytes("public/other.csv", b"z")  # a sibling prefix
    assert store.read_bytes("public/sub/b.bin") == b"\x00\x01"
    assert store.exists("public/a.csv") and not store.exists("public/zz.csv")
    assert store.list() == ["credentialed/c.csv", "public/a.csv", "public/sub/b.bin"]
    assert store.list("public") == ["public/a.csv", "public/sub/b.bin"]
    assert store.local_path("public/a.csv") is None
    with pytest.raises(FileNotFoundError, match=f"nope.csv is missing from s3://{s3_bucket}"):
        store.read_bytes("nope.csv")
    with pytest.raises(StoreError, match="invalid file name"):
        store.write_bytes("../x", b"")
    root = open_store(f"s3://{s3_bucket}")
    assert "bench/v1/public/a.csv" in root.list()


def test_s3_missing_manifest_or_bucket_is_a_clear_error(s3_bucket):
    with pytest.raises(BenchmarkError, match=f"s3://{s3_bucket}/empty is not a benchmark"):
        Benchmark.open(f"s3://{s3_bucket}/empty")
    with pytest.raises(BenchmarkError, match="NoSuchBucket"):
        Benchmark.open("s3://no-such-bucket-here/x")
    with pytest.raises(StoreError, match="no bucket"):
        open_store("s3:///prefix")


def test_copy_to_s3_then_open_and_verify_from_s3(bench_dir, s3_bucket):
    uri = f"s3://{s3_bucket}/medmod/v1"
    done = _cli("copy", str(bench_dir), uri)
    assert done.returncode == 0, done.stderr
    local, remote = Benchmark.open(bench_dir), Benchmark.open(uri)
    assert remote.manifest_hash == local.manifest_hash
    assert remote.verify() == len(local.manifest["files"])
    for task in remote.tasks:
        assert remote.units(task, "test").equals(local.units(task, "test"))
        assert remote.test_labels(task).equals(local.test_labels(task))
    arr, index = remote.discretized("val")
    arr_l, index_l = local.discretized("val")
    assert (arr == arr_l).all() and index.equals(index_l)
    assert remote.local_path(layout.STAYS) is None


def test_copy_from_s3_back_to_a_directory(bench_dir, s3_bucket, tmp_path):
    uri = f"s3://{s3_bucket}/p"
    n = copy_tree(LocalStore(bench_dir), open_store(uri))
    assert n == len(Benchmark.open(bench_dir).manifest["files"]) + 1
    assert main(["copy", uri, str(tmp_path / "back")]) == 0
    back = Benchmark.open(tmp_path / "back")
    assert back.verify() == n - 1 and back.manifest_hash == Benchmark.open(bench_dir).manifest_hash


def test_credentialed_part_in_a_separate_bucket(bench_dir, s3_env, tmp_path):
    client = boto3.client("s3", endpoint_url=s3_env)
    pub, cred = f"pub-{tmp_path.name[-8:]}".lower(), f"cred-{tmp_path.name[-8:]}".lower()
    for b in (pub, cred):
        client.create_bucket(Bucket=b)
    _put_tree(bench_dir, pub, "v1", only="public/")
    client.put_object(
        Bucket=pub, Key="v1/manifest.json", Body=(bench_dir / "manifest.json").read_bytes()
    )
    _put_tree(bench_dir, cred, "v1", only="credentialed/")
    local = Benchmark.open(bench_dir)
    both = Benchmark.open(f"s3://{pub}/v1", credentialed_uri=f"s3://{cred}/v1")
    assert both.verify() == len(local.manifest["files"])
    assert both.test_labels("radiology").equals(local.test_labels("radiology"))
    assert both.demographics().equals(local.demographics())
    public_only = Benchmark.open(f"s3://{pub}/v1")
    assert public_only.units("phenotyping", "test").equals(local.units("phenotyping", "test"))
    with pytest.raises(
        BenchmarkError, match=f"is listed in the manifest but missing from s3://{pub}/v1"
    ):
        public_only.test_labels("radiology")
    assert main(["verify", f"s3://{pub}/v1", "--credentialed", f"s3://{cred}/v1"]) == 0


def test_altered_or_unlisted_file_in_s3_is_refused(bench_dir, s3_bucket):
    uri = f"s3://{s3_bucket}/v1"
    copy_tree(LocalStore(bench_dir), open_store(uri))
    store = open_store(uri)
    store.write_bytes("public/extra.csv", b"a\n")
    with pytest.raises(BenchmarkError, match="public/extra.csv is not listed in the manifest"):
        Benchmark.open(uri).verify()
    rel = layout.scenarios("phenotyping")
    store.write_bytes(rel, store.read_bytes(rel) + b"1,1,1,1,1\n")
    with pytest.raises(BenchmarkError, match=f"benchmark file {rel} in {uri} has been altered"):
        Benchmark.open(uri).verify()


def test_unreachable_endpoint_is_a_clear_error(bench_dir, s3_env, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(BenchmarkError, match="cannot reach s3://bucket/prefix"):
        Benchmark.open("s3://bucket/prefix")
    with pytest.raises(StoreError, match="cannot reach"):
        open_store("s3://bucket/prefix").list()
    with pytest.raises(StoreError, match="cannot reach"):
        open_store("s3://bucket/prefix").exists("manifest.json")
    done = _cli("verify", "s3://bucket/prefix")
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot reach s3://bucket/prefix")
    assert "Traceback" not in done.stderr
    assert main(["copy", str(bench_dir), "s3://bucket/prefix"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot write ")
