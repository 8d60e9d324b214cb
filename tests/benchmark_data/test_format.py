"""The on-disk format: manifest checks when loading, the public export, determinism."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark_data import Benchmark, BenchmarkError, export_public, layout
from benchmark_data.__main__ import main
from benchmark_data.tasks import TASKS
from tests.benchmark_data.mimic_fixtures import MimicTree, build_tree, import_tree

# Columns that must never reach a participant: labels and fairness attributes.
LABEL_COLUMNS = {"y_true", "prediction", *(c for t in TASKS.values() for c in t.label_slugs)}
FAIRNESS_COLUMNS = {
    "age", "age_group", "gender", "race", "ethnicity", "insurance", "admission_type",
    "anchor_age", "anchor_year", "deathtime", "dod", "hospital_expire_flag", "mortality",
}  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[MimicTree, Path]:
    root = tmp_path_factory.mktemp("format")
    tree = build_tree(root / "in", seed=21, n_subjects=14)
    import_tree(tree, root / "bench", seed=5)
    return tree, root / "bench"


@pytest.fixture
def bench_dir(source: tuple[MimicTree, Path], tmp_path: Path) -> Path:
    """A fresh copy of the benchmark that a test may damage."""
    dest = tmp_path / "bench"
    shutil.copytree(source[1], dest)
    return dest


def _csv_columns(path: Path) -> list[str]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return list(pd.read_csv(io.BytesIO(data), nrows=0).columns)


# Loading -------------------------------------------------------------------------------------


def test_a_complete_benchmark_verifies(bench_dir):
    bench = Benchmark.open(bench_dir)
    manifest = json.loads((bench_dir / "manifest.json").read_text())
    assert bench.verify() == len(manifest["files"])
    on_disk = sorted(
        p.relative_to(bench_dir).as_posix() for p in bench_dir.rglob("*") if p.is_file()
    )
    assert on_disk == sorted([*manifest["files"], "manifest.json"])
    for rel, entry in manifest["files"].items():
        assert entry["size"] == (bench_dir / rel).stat().st_size


def test_missing_manifest_is_not_a_benchmark(bench_dir):
    (bench_dir / "manifest.json").unlink()
    with pytest.raises(BenchmarkError, match="is not a benchmark: manifest.json is missing"):
        Benchmark.open(bench_dir)


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"format": "other", "files": {}}', '{"format": "medmod-benchmark"}']
)
def test_invalid_manifest_is_refused(bench_dir, text):
    (bench_dir / "manifest.json").write_text(text)
    with pytest.raises(BenchmarkError, match="manifest.json is not a valid benchmark manifest"):
        Benchmark.open(bench_dir)


def test_a_listed_file_that_is_missing_is_named(bench_dir):
    rel = layout.units("radiology", "test")
    (bench_dir / rel).unlink()
    bench = Benchmark.open(bench_dir)
    with pytest.raises(BenchmarkError, match=f"{rel} is listed in the manifest but missing"):
        bench.verify()
    with pytest.raises(BenchmarkError, match=rel):
        bench.units("radiology", "test")


def test_an_altered_file_is_named_and_refused(bench_dir):
    rel = layout.all_test_labels("in-hospital-mortality")
    path = bench_dir / rel
    lines = path.read_text().splitlines()
    last = lines[-1].rsplit(",", 1)
    lines[-1] = f"{last[0]},{1 - int(last[1])}"
    path.write_text("\n".join(lines) + "\n")
    bench = Benchmark.open(bench_dir)
    with pytest.raises(BenchmarkError, match=f"benchmark file {rel} in .* has been altered"):
        bench.read_csv(rel)
    with pytest.raises(BenchmarkError, match="altered"):
        bench.verify()
    assert bench.verify(part="public") > 0


def test_an_unlisted_file_is_refused(bench_dir):
    """A file slipped in beside the listed ones (here: test labels copied into the public
    part) fails verification, and cannot be read through the benchmark."""
    stray = "public/tasks/in-hospital-mortality/test_labels.csv"
    shutil.copyfile(bench_dir / layout.test_labels("in-hospital-mortality"), bench_dir / stray)
    (bench_dir / "public/notes.txt").write_text("x")
    bench = Benchmark.open(bench_dir)
    assert bench.unlisted() == ["public/notes.txt", stray]
    with pytest.raises(
        BenchmarkError, match=r"public/notes.txt is not listed in the manifest .*\(and 1 more"
    ):
        bench.verify()
    with pytest.raises(BenchmarkError, match=f"{stray} is not listed in the manifest"):
        bench.read_bytes(stray)
    assert bench.verify(part="credentialed") > 0


def test_cli_verify_reports_errors_without_traceback(bench_dir, capsys):
    assert main(["verify", str(bench_dir)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    rel = layout.STAYS
    (bench_dir / rel).write_text("stay_id\n1\n")
    assert main(["verify", str(bench_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: benchmark file {rel} in ") and "altered" in err
    assert main(["verify", str(bench_dir / "nowhere")]) == 2
    assert "is not a benchmark" in capsys.readouterr().err


# Public export -------------------------------------------------------------------------------


def _export(bench_dir: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmark_data", "export-public", str(bench_dir), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_export_public_writes_only_public_files(source, tmp_path):
    _, bench_dir = source
    out = tmp_path / "public"
    done = _export(bench_dir, out)
    assert done.returncode == 0, done.stderr
    full = Benchmark.open(bench_dir)
    public = sorted(rel for rel in full.manifest["files"] if layout.is_public(rel))
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted([*public, "manifest.json"])
    exported = Benchmark.open(out)
    assert exported.verify() == len(public)
    assert sorted(exported.manifest["files"]) == public
    assert exported.manifest["parts"] == ["public"]
    assert exported.manifest["exported_from"] == full.manifest_hash
    assert exported.manifest["counts"] == full.manifest["counts"]
    assert not exported.has_credentialed()
    with pytest.raises(BenchmarkError, match="holds no credentialed part"):
        exported.test_labels("phenotyping")
    for task in TASKS:
        assert exported.units(task, "test").equals(full.units(task, "test"))


def test_public_export_leaks_no_label_or_fairness_attribute(source, tmp_path):
    tree, bench_dir = source
    out = tmp_path / "public"
    export_public(Benchmark.open(bench_dir), out)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not any("credentialed" in p.relative_to(out).as_posix() for p in files)
    assert "credentialed" not in (out / "manifest.json").read_text()
    n_tables = 0
    for path in files:
        if not path.name.endswith((".csv", ".csv.gz")):
            continue
        n_tables += 1
        cols = set(_csv_columns(path))
        rel = path.relative_to(out).as_posix()
        assert not cols & FAIRNESS_COLUMNS, rel
        assert not any(c.startswith("label_") for c in cols), rel
        is_labelled_list = rel.startswith("public/tasks/") and not rel.endswith("/test.csv")
        if not is_labelled_list:
            assert not cols & LABEL_COLUMNS, rel
    assert n_tables > 20
    # The test unit lists hold exactly the key columns, ids and the paired image.
    for task, t in TASKS.items():
        cols = _csv_columns(out / layout.units(task, "test"))
        assert set(cols) == {*t.key_columns, "subject_id", "stay_id", "cxr_dicom_id"}
    # And the raw values of a fairness attribute appear nowhere in the public tables.
    races = set(tree.stays["race"])
    for path in files:
        if path.name.endswith(".csv"):
            text = path.read_text()
            assert not any(f",{r}," in text or f",{r}\n" in text for r in races), path


def test_export_into_a_non_empty_location_is_refused(source, tmp_path, capsys):
    _, bench_dir = source
    out = tmp_path / "public"
    out.mkdir()
    (out / "credentialed").mkdir()
    (out / "credentialed" / "demographics.csv").write_text("old\n")
    assert main(["export-public", str(bench_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot export the public part to ")
    assert "credentialed/demographics.csv" in err


# Determinism and conventions -----------------------------------------------------------------


def test_same_inputs_and_seed_give_the_same_manifest(source, tmp_path):
    tree, bench_dir = source
    import_tree(tree, tmp_path / "again", seed=5)
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (
        bench_dir / "manifest.json"
    ).read_bytes()
    a = export_public(Benchmark.open(bench_dir), tmp_path / "pa")
    b = export_public(Benchmark.open(tmp_path / "again"), tmp_path / "pb")
    assert a == b
    assert (tmp_path / "pa" / "manifest.json").read_bytes() == (
        tmp_path / "pb" / "manifest.json"
    ).read_bytes()
    import_tree(tree, tmp_path / "other", seed=6)
    other = Benchmark.open(tmp_path / "other").manifest["files"]
    mine = Benchmark.open(bench_dir).manifest["files"]
    changed = {rel for rel in mine if mine[rel] != other.get(rel)}
    # The seed draws the scenarios' withheld stays and the test split's cutoffs: only test
    # files change; training and validation files are the same.
    assert changed and any(rel.startswith("public/scenarios/") for rel in changed)
    for rel in changed:
        assert "train" not in rel and "_val" not in rel and "/val." not in rel, rel


def test_files_follow_the_conventions(bench_dir):
    """CSV with \\n line ends and no index column; gzip with a zero timestamp."""
    for path in bench_dir.rglob("*.csv"):
        data = path.read_bytes()
        assert b"\r\n" not in data and data.endswith(b"\n"), path
        assert not data.startswith(b","), path
    for path in bench_dir.rglob("*.gz"):
        data = path.read_bytes()
        assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\x00\x00\x00\x00", path
