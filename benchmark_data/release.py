"""The files a participant downloads: a benchmark's public part, packed for each use.

A *release* is written from the public part only (``public/``, exactly what
:func:`~benchmark_data.benchmark.export_public` writes; never a file of the credentialed
part) into a local directory:

- ``{name}-{version}-public.tar.gz``: the whole public part with its own manifest, the same
  files ``python -m benchmark_data export-public`` writes; ``Benchmark.open`` reads it once
  unpacked;
- ``inputs-{split}.tar.gz``: the inputs of one split (time series, images, notes, lab
  results), with the files every split shares (stays, image metadata, demographics when the
  suite takes them as an input, the suite's declaration);
- ``tasks/{task}/{split}.csv``: a task's unit lists (labels for train and val only);
  ``tasks/{task}/scenarios.csv``: which test stays lose which input in each scenario;
  ``tasks/{task}/sample-predictions.csv``: a prediction file of the right form (the caller
  supplies it; ``scoring.template`` writes one);
- ``SHA256SUMS`` (``sha256sum -c`` reads it) and ``release.json``, the index: every file's
  size, sha256 and purpose, and the manifest hash it comes from.

A benchmark imported from MIMIC may not be redistributed: its release holds the identifiers
only (:data:`IDS_ONLY_FILES`: stays, image ids and times, unit keys without labels, scenario
lists), the parameters of the import and the sha256 of every public file, so that a
participant with credentialed access rebuilds the same public part from MIMIC
(``python -m benchmark_data rebuild-public``) and checks it file by file.

Archives are reproducible: members in name order, owner root, mode 0644, time 0, and a gzip
header without a time or a name. Nothing in them tells the order or the time the files
were made in.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark_data import layout
from benchmark_data.benchmark import (
    Benchmark,
    BenchmarkError,
    csv_bytes,
    export_public,
    sha256_file,
)
from benchmark_data.tasks import SPLITS

RELEASE_FORMAT = "medmod-release"
RELEASE_FORMAT_VERSION = 1
INDEX = "release.json"
CHECKSUMS = "SHA256SUMS"
# Files every split's inputs archive holds.
SHARED_FILES = (layout.SUITE, layout.STAYS, layout.CXR_METADATA, layout.PUBLIC_DEMOGRAPHICS)
# What a release of a MIMIC-derived benchmark may hold: identifiers, never data. Columns kept
# per file (a file not listed is left out).
IDS_ONLY_COLUMNS = {
    layout.STAYS: ("stay_id", "subject_id", "hadm_id", "split", "stay"),
    layout.CXR_METADATA: ("dicom_id", "subject_id", "study_id", "stay_id", "split"),
}
ERR_NOT_EMPTY = (
    "cannot write a release into {path}: it already holds files; give an empty directory"
)
ERR_CREDENTIALED = "refusing to release {rel}: it is not a public file"


@dataclass(frozen=True)
class ReleaseFile:
    """One downloadable file of a release."""

    name: str  # path inside the release
    kind: str  # archive, inputs, units, scenarios, sample, ids, checksums
    title: str
    size: int
    sha256: str
    task: str | None = None
    split: str | None = None


def is_mimic(bench: Benchmark) -> bool:
    """Whether the benchmark is derived from MIMIC (its data may not be redistributed)."""
    return str((bench.manifest.get("source") or {}).get("kind", "")) == "mimic"


def _tar_gz(path: Path, members: Iterable[tuple[str, Path | bytes]]) -> None:
    """A reproducible .tar.gz: members sorted by name, no owner, time or origin."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, content in sorted(members, key=lambda m: m[0]):
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if isinstance(content, bytes):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.size = content.stat().st_size
                with content.open("rb") as fh:
                    tar.addfile(info, fh)


def _split_of_file(rel: str, image_splits: Mapping[str, str]) -> str | None:
    """The split whose inputs a public file holds (None: shared, or not an input)."""
    for split in SPLITS:
        if rel in (
            layout.timeseries(split),
            layout.discretized(split),
            layout.discretized_index(split),
            layout.notes(split),
            layout.labs(split),
        ):
            return split
    prefix = layout.image("")[: -len(".png")]
    if rel.startswith(prefix) and rel.endswith(".png"):
        return image_splits.get(rel[len(prefix) : -len(".png")])
    return None


class _Writer:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: list[ReleaseFile] = []

    def add(self, name: str, kind: str, title: str, **where: str | None) -> None:
        path = self.out / name
        self.files.append(
            ReleaseFile(name, kind, title, path.stat().st_size, sha256_file(path), **where)
        )

    def write(self, name: str, data: bytes, kind: str, title: str, **where: str | None) -> None:
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.add(name, kind, title, **where)


def _task_files(
    w: _Writer, bench: Benchmark, task: str, samples: Mapping[str, bytes], *, ids_only: bool
) -> None:
    spec = bench.task(task)
    for split in SPLITS:
        rel = layout.units(task, split)
        if not bench.has(rel):
            continue
        data = bench.read_bytes(rel)
        if ids_only:
            units = bench.units(task, split)
            data = csv_bytes(units.drop(columns=list(spec.label_columns), errors="ignore"))
        title = f"{spec.title}: {split} units" + (
            " (keys only)" if ids_only else " with labels" if split != "test" else " (no labels)"
        )
        w.write(f"tasks/{task}/{split}.csv", data, "units", title, task=task, split=split)
    if bench.has(layout.scenarios(task)):
        w.write(
            f"tasks/{task}/scenarios.csv",
            bench.read_bytes(layout.scenarios(task)),
            "scenarios",
            f"{spec.title}: inputs withheld per scenario (test stays)",
            task=task,
            split="test",
        )
    if task in samples and not ids_only:
        w.write(
            f"tasks/{task}/sample-predictions.csv",
            samples[task],
            "sample",
            f"{spec.title}: a sample prediction file (every test unit and scenario)",
            task=task,
            split="test",
        )


def _full_release(w: _Writer, bench: Benchmark, public: Path) -> dict[str, Any]:
    manifest = json.loads((public / layout.MANIFEST).read_text())
    files = sorted(manifest["files"])
    archive = f"{bench.name}-{bench.version}-public.tar.gz"
    _tar_gz(
        w.out / archive,
        [(rel, public / rel) for rel in [*files, layout.MANIFEST]],
    )
    w.add(archive, "archive", "The whole public part, with its manifest")
    image_splits: dict[str, str] = {}
    if layout.CXR_METADATA in manifest["files"]:
        meta = pd.read_csv(public / layout.CXR_METADATA, dtype={"dicom_id": "string"})
        image_splits = dict(
            zip(meta["dicom_id"].astype(str), meta["split"].astype(str), strict=True)
        )
    for split in SPLITS:
        members = [
            (rel, public / rel)
            for rel in files
            if rel in SHARED_FILES or _split_of_file(rel, image_splits) == split
        ]
        if not any(_split_of_file(rel, image_splits) == split for rel, _ in members):
            continue
        _tar_gz(w.out / f"inputs-{split}.tar.gz", members)
        w.add(
            f"inputs-{split}.tar.gz",
            "inputs",
            f"Inputs of the {split} split",
            split=split,
        )
    return manifest


def _ids_release(w: _Writer, bench: Benchmark, public: Path) -> dict[str, Any]:
    manifest = json.loads((public / layout.MANIFEST).read_text())
    members: list[tuple[str, Path | bytes]] = []
    for rel, columns in IDS_ONLY_COLUMNS.items():
        if rel in manifest["files"]:
            df = pd.read_csv(public / rel, dtype=str, keep_default_na=False)
            members.append((rel, csv_bytes(df[[c for c in columns if c in df.columns]])))
    if layout.SUITE in manifest["files"]:
        members.append((layout.SUITE, public / layout.SUITE))
    rebuild = {
        "name": bench.name,
        "version": bench.version,
        "seed": bench.seed,
        "suite": bench.suite.slug,
        "source": bench.manifest.get("source") or {},
        "public_files": {rel: manifest["files"][rel] for rel in sorted(manifest["files"])},
    }
    members.append(("rebuild.json", (json.dumps(rebuild, indent=1) + "\n").encode()))
    archive = f"{bench.name}-{bench.version}-ids.tar.gz"
    _tar_gz(w.out / archive, members)
    w.add(archive, "ids", "Identifiers, splits and the import's parameters (no MIMIC data)")
    return manifest


def build_release(
    bench: Benchmark,
    out: str | os.PathLike[str],
    *,
    samples: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write the release of a benchmark into the empty directory ``out``; returns its index.

    ``samples`` maps a task slug to a sample prediction file (CSV bytes) to ship with it.
    """
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise BenchmarkError(ERR_NOT_EMPTY.format(path=out_dir))
    ids_only = is_mimic(bench)
    w = _Writer(out_dir)
    scratch = Path(tempfile.mkdtemp(prefix="release-"))
    try:
        public = scratch / "public-part"
        export_public(bench, public)
        for rel in json.loads((public / layout.MANIFEST).read_text())["files"]:
            if not layout.is_public(rel):  # export_public writes public files only
                raise BenchmarkError(ERR_CREDENTIALED.format(rel=rel))
        public_hash = sha256_file(public / layout.MANIFEST)
        if ids_only:
            _ids_release(w, bench, public)
        else:
            _full_release(w, bench, public)
        for task in bench.tasks:
            _task_files(w, bench, task, samples or {}, ids_only=ids_only)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sums = "".join(f"{f.sha256}  {f.name}\n" for f in w.files)
    w.write(CHECKSUMS, sums.encode(), "checksums", "sha256 of every file (sha256sum -c SHA256SUMS)")
    index = {
        "format": RELEASE_FORMAT,
        "format_version": RELEASE_FORMAT_VERSION,
        "benchmark": {
            "name": bench.name,
            "version": bench.version,
            "manifest_hash": bench.manifest_hash,
            "public_manifest_hash": public_hash,
            "suite": bench.suite.slug,
        },
        "ids_only": ids_only,
        "files": [asdict(f) for f in w.files],
    }
    (out_dir / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return index


def read_index(data: bytes) -> dict[str, Any]:
    """Parse a release index (``release.json``)."""
    index = json.loads(data)
    if not isinstance(index, dict) or index.get("format") != RELEASE_FORMAT:
        raise BenchmarkError("not a release index (release.json)")
    return index


__all__ = [
    "CHECKSUMS",
    "INDEX",
    "ReleaseFile",
    "build_release",
    "is_mimic",
    "read_index",
]
