"""What a participant downloads: the release of a benchmark holds its public part only,
packed reproducibly, with checksums; a MIMIC-derived benchmark's release holds identifiers
only. The sample prediction file of every task is accepted by the scorer's validation."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from benchmark_data import layout
from benchmark_data.__main__ import main as benchmark_data_cli
from benchmark_data.benchmark import Benchmark, export_public
from benchmark_data.release import CHECKSUMS, INDEX, build_release, is_mimic
from benchmark_data.synth import generate
from benchmark_data.synth.medfuse import generate_medfuse
from benchmark_data.synth.yu import generate_yu
from scoring.cli import main as scoring_cli
from scoring.template import sample_predictions
from scoring.truth import truth_from_benchmark
from scoring.validation import read_predictions
from tests.benchmark_data.mimic_fixtures import build_tree, import_tree

GENERATORS = {"medmod": generate, "yu2025": generate_yu, "medfuse": generate_medfuse}


def _samples(bench: Benchmark) -> dict[str, bytes]:
    return {t: sample_predictions(bench, t) for t in bench.tasks if len(bench.units(t, "test"))}


@pytest.fixture(scope="module", params=sorted(GENERATORS))
def released(request, tmp_path_factory) -> tuple[Benchmark, Path, dict]:
    root = tmp_path_factory.mktemp(f"release-{request.param}")
    GENERATORS[request.param](root / "bench", scale="tiny", seed=11)
    bench = Benchmark.open(root / "bench")
    index = build_release(bench, root / "release", samples=_samples(bench))
    return bench, root / "release", index


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def _released_bytes(release: Path) -> dict[str, bytes]:
    """Every file a participant gets, archives unpacked (archive/member)."""
    out: dict[str, bytes] = {}
    for path in sorted(release.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(release).as_posix()
        if name.endswith(".tar.gz"):
            out.update({f"{name}/{m}": data for m, data in _members(path).items()})
        else:
            out[name] = path.read_bytes()
    return out


def test_nothing_of_the_credentialed_part_is_released(released):
    """No file or archive member is a credentialed file, shares bytes with one (a suite that
    takes demographics as an input publishes them too: those bytes are public), or carries a
    test unit's label."""
    bench, release, _ = released
    hashes = {rel: entry["sha256"] for rel, entry in bench.manifest["files"].items()}
    public = {h for rel, h in hashes.items() if layout.is_public(rel)}
    credentialed = {h for rel, h in hashes.items() if not layout.is_public(rel)} - public
    assert credentialed
    files = _released_bytes(release)
    for name, data in files.items():
        assert "credentialed" not in name, name
        assert hashlib.sha256(data).hexdigest() not in credentialed, name
    for task in bench.tasks:
        test_units = pd.read_csv(release / "tasks" / task / "test.csv")
        assert not set(bench.task(task).label_columns) & set(test_units.columns), task


def test_the_archive_is_the_public_export_and_opens_as_a_benchmark(released, tmp_path):
    bench, release, index = released
    archive = release / f"{bench.name}-{bench.version}-public.tar.gz"
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    export_public(bench, tmp_path / "export")
    unpacked = Benchmark.open(tmp_path / "unpacked")
    assert unpacked.verify() == len(unpacked.manifest["files"])
    assert unpacked.manifest_hash == Benchmark.open(tmp_path / "export").manifest_hash
    assert unpacked.manifest_hash == index["benchmark"]["public_manifest_hash"]
    assert index["benchmark"]["manifest_hash"] == bench.manifest_hash
    assert not unpacked.has_credentialed()


def test_each_split_archive_holds_that_split_inputs_and_the_shared_files(released):
    bench, release, _ = released
    meta = bench.cxr_metadata() if bench.has(layout.CXR_METADATA) else None
    for split in ("train", "val", "test"):
        names = set(_members(release / f"inputs-{split}.tar.gz"))
        assert layout.STAYS in names and layout.SUITE in names
        others = [s for s in ("train", "val", "test") if s != split]
        for rel in names:
            assert not any(f"_{o}" in rel or f"/{o}." in rel for o in others), (split, rel)
        if meta is not None:
            images = {n for n in names if n.startswith("public/cxr/images/")}
            expected = {layout.image(d) for d in meta.loc[meta["split"] == split, "dicom_id"]}
            assert images == {e for e in expected if bench.has(e)}


def test_checksums_and_index_describe_every_file(released):
    _, release, index = released
    sums = dict(
        reversed(line.split("  ", 1))
        for line in (release / CHECKSUMS).read_text().splitlines()  # type: ignore[misc]
    )
    listed = {f["name"]: f for f in index["files"]}
    for name, entry in listed.items():
        data = (release / name).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        if name != CHECKSUMS:
            assert sums[name] == entry["sha256"]
    on_disk = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    assert on_disk == set(listed) | {INDEX}
    assert json.loads((release / INDEX).read_text()) == index


def test_archives_are_reproducible_and_say_nothing_of_when_or_in_what_order(released, tmp_path):
    """Building again gives the same bytes; members are sorted by name, dated 0 and owned
    by no one, and the gzip header has no time or name."""
    bench, release, index = released
    again = build_release(bench, tmp_path / "again", samples=_samples(bench))
    assert [(f["name"], f["sha256"]) for f in again["files"]] == [
        (f["name"], f["sha256"]) for f in index["files"]
    ]
    for path in release.glob("*.tar.gz"):
        raw = path.read_bytes()
        assert raw[4:8] == b"\0\0\0\0"  # gzip MTIME
        assert not raw[3] & 0x08  # no FNAME
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
            (0, 0, 0, "", "", 0o644)
        }


def test_sample_prediction_files_pass_the_scorers_validation(released):
    bench, release, _ = released
    for task in bench.tasks:
        path = release / "tasks" / task / "sample-predictions.csv"
        if not len(bench.units(task, "test")):
            assert not path.exists()  # scored through the gateway only
            continue
        truth = truth_from_benchmark(bench, task)
        preds = read_predictions(path.read_bytes(), truth=truth)
        assert set(preds.values) >= set(truth.scenarios) - {"natural"}


def test_a_release_goes_into_an_empty_directory_only(released, tmp_path):
    bench, _, _ = released
    (tmp_path / "stale.csv").write_text("stay_id,label\n")
    with pytest.raises(Exception, match="already holds files"):
        build_release(bench, tmp_path)


@pytest.fixture(scope="module")
def mimic_release(tmp_path_factory) -> tuple[Benchmark, Path, dict]:
    root = tmp_path_factory.mktemp("mimic-release")
    tree = build_tree(root / "tree", seed=3)
    import_tree(tree, root / "bench")
    bench = Benchmark.open(root / "bench")
    return bench, root / "release", build_release(bench, root / "release", samples={})


def test_a_mimic_release_holds_identifiers_and_no_mimic_data(mimic_release):
    bench, release, index = mimic_release
    assert is_mimic(bench) and index["ids_only"]
    files = _released_bytes(release)
    names = set(files)
    assert not any("/ehr/" in n or "/images/" in n or "/notes/" in n for n in names)
    assert not any(n.endswith("-public.tar.gz") or "/inputs-" in n for n in names)
    archive = next(n for n in names if n.endswith("-ids.tar.gz/public/stays.csv"))
    stays = pd.read_csv(io.BytesIO(files[archive]))
    assert set(stays.columns) <= {"stay_id", "subject_id", "hadm_id", "split", "stay"}
    for task in bench.tasks:
        for split in ("train", "val", "test"):
            units = pd.read_csv(release / "tasks" / task / f"{split}.csv")
            assert not set(bench.task(task).label_columns) & set(units.columns)
    rebuild = json.loads(next(v for k, v in files.items() if k.endswith("/rebuild.json")))
    public = {rel for rel in bench.manifest["files"] if layout.is_public(rel)}
    assert set(rebuild["public_files"]) == public
    assert rebuild["seed"] == bench.seed


def test_gzip_members_decompress(released):
    _, release, _ = released
    for path in release.glob("*.tar.gz"):
        assert gzip.decompress(path.read_bytes())


def test_a_participant_rebuilds_the_mimic_public_part_from_their_own_copy(tmp_path):
    """With the identifiers archive and the same MIMIC files, ``rebuild-public`` writes the
    public part the organizers have, file for file, and none of the credentialed part."""
    tree = build_tree(tmp_path / "tree", seed=3)
    import_tree(tree, tmp_path / "bench")
    bench = Benchmark.open(tmp_path / "bench")
    build_release(bench, tmp_path / "release", samples={})
    ids = next((tmp_path / "release").glob("*-ids.tar.gz"))
    argv = [
        "rebuild-public", "--ids", str(ids), "--medmod-root", str(tree.medmod_root),
        "--mimic-iv", str(tree.mimic_iv), "--mimic-cxr", str(tree.mimic_cxr),
        "--cxr-images", str(tree.cxr_images), "--test-subjects", str(tree.test_subjects),
        "--out", str(tmp_path / "public"),
    ]  # fmt: skip
    assert benchmark_data_cli(argv) == 0
    rebuilt = Benchmark.open(tmp_path / "public")
    rebuilt.verify()
    assert not rebuilt.has_credentialed()
    public = {r: e for r, e in bench.manifest["files"].items() if layout.is_public(r)}
    assert rebuilt.manifest["files"] == public


def test_rebuild_names_the_input_that_differs_and_writes_nothing(tmp_path, capsys):
    tree = build_tree(tmp_path / "tree", seed=3)
    import_tree(tree, tmp_path / "bench")
    build_release(Benchmark.open(tmp_path / "bench"), tmp_path / "release", samples={})
    ids = next((tmp_path / "release").glob("*-ids.tar.gz"))
    admissions = next(Path(tree.mimic_iv).rglob("admissions.csv*"))
    admissions.write_bytes(admissions.read_bytes() + b"\n")
    argv = [
        "rebuild-public", "--ids", str(ids), "--medmod-root", str(tree.medmod_root),
        "--mimic-iv", str(tree.mimic_iv), "--mimic-cxr", str(tree.mimic_cxr),
        "--test-subjects", str(tree.test_subjects), "--out", str(tmp_path / "public"),
    ]  # fmt: skip
    assert benchmark_data_cli(argv) == 2
    err = capsys.readouterr().err
    assert "differ from those the benchmark was built from" in err
    assert "admissions" in err
    assert not (tmp_path / "public").exists()


def test_validate_checks_a_test_file_against_the_unpacked_archive(released, tmp_path, capsys):
    """``python -m scoring validate`` needs only the public archive: the sample file passes;
    a file short of units fails with the scorer's own message and code."""
    bench, release, _ = released
    with tarfile.open(release / f"{bench.name}-{bench.version}-public.tar.gz", "r:gz") as tar:
        tar.extractall(tmp_path / "public", filter="data")
    task = next(t for t in bench.tasks if len(bench.units(t, "test")))
    sample = release / "tasks" / task / "sample-predictions.csv"
    argv = ["validate", "--task", task, "--benchmark", str(tmp_path / "public")]
    assert scoring_cli([*argv, "--predictions", str(sample)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {sample} is a valid")
    short = tmp_path / "short.csv"
    short.write_text("\n".join(sample.read_text().splitlines()[:-3]) + "\n")
    assert scoring_cli([*argv, "--predictions", str(short)]) == 2
    assert "error (" in capsys.readouterr().err
