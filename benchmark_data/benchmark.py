"""Reading and writing a benchmark: manifest, hash checks, typed accessors.

>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> w = BenchmarkWriter(root)
>>> w.write_bytes("public/hello.txt", b"hi")
>>> _ = w.finish(name="doc", version="1", source={"kind": "example"}, seed=0)
>>> Benchmark.open(root).read_bytes("public/hello.txt")
b'hi'
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark_data import layout
from benchmark_data.store import Store, StoreError, open_store
from benchmark_data.suite import Suite, SuiteError, Task, load_suite
from benchmark_data.tasks import MEDMOD, SPLITS

ERR_NO_MANIFEST = "{uri} is not a benchmark: manifest.json is missing"
ERR_BAD_MANIFEST = "{uri}: manifest.json is not a valid benchmark manifest ({detail})"
ERR_MISSING = "benchmark file {rel} is listed in the manifest but missing from {uri}"
ERR_ALTERED = (
    "benchmark file {rel} in {uri} has been altered: sha256 {actual} does not match "
    "the manifest's {expected}"
)
ERR_UNLISTED = "benchmark file {rel} is not listed in the manifest of {uri}"
ERR_UNLISTED_MORE = " (and {n} more unlisted file(s))"
ERR_EXPORT_NOT_EMPTY = (
    "cannot export the public part to {uri}: it already holds files (first: {first}); "
    "export into an empty location"
)
ERR_NO_PART = "{uri} holds no {part} part: {rel} is not in this copy of the benchmark"


class BenchmarkError(Exception):
    """A benchmark is missing, incomplete or has been altered."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def csv_bytes(df: pd.DataFrame) -> bytes:
    """Deterministic CSV encoding used for every table of the format."""
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def gzip_bytes(data: bytes) -> bytes:
    """gzip with a zero timestamp and no file name, so the same data gives the same bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=6) as fh:
        fh.write(data)
    return buf.getvalue()


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


class BenchmarkWriter:
    """Writes files into a store and records their hashes; ``finish`` writes the manifest."""

    def __init__(self, dest: str | os.PathLike[str] | Store) -> None:
        self.store: Store = open_store(dest) if isinstance(dest, (str, os.PathLike)) else dest
        self.files: dict[str, dict[str, Any]] = {}

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.store.write_bytes(rel, data)
        self.files[rel] = {"sha256": sha256_bytes(data), "size": len(data)}

    def write_csv(self, rel: str, df: pd.DataFrame) -> None:
        data = csv_bytes(df)
        self.write_bytes(rel, gzip_bytes(data) if rel.endswith(".gz") else data)

    def write_npy(self, rel: str, arr: np.ndarray) -> None:
        self.write_bytes(rel, npy_bytes(arr))

    def finish(
        self,
        *,
        name: str,
        version: str,
        source: dict[str, Any],
        seed: int | None,
        extra: dict[str, Any] | None = None,
        suite: Suite | None = None,
    ) -> dict[str, Any]:
        """Write ``manifest.json`` listing every file written (and, given a suite, its
        specification as ``public/suite.json``); returns the manifest."""
        if suite is not None:
            self.write_bytes(layout.SUITE, suite.to_json())
            extra = {"suite": suite.slug, **(extra or {})}
        manifest: dict[str, Any] = {
            "format": layout.FORMAT_NAME,
            "format_version": layout.FORMAT_VERSION,
            "name": name,
            "version": version,
            "source": source,
            "seed": seed,
            "parts": sorted({rel.split("/", 1)[0] for rel in self.files}),
            **(extra or {}),
            "files": dict(sorted(self.files.items())),
        }
        data = (json.dumps(manifest, indent=1, sort_keys=False) + "\n").encode()
        self.store.write_bytes(layout.MANIFEST, data)
        return manifest


@dataclass(frozen=True)
class ScenarioSets:
    """Paired test stays of a task and the stays whose X-ray each scenario withholds."""

    paired_stays: np.ndarray
    withheld: dict[str, np.ndarray]  # scenario name -> stay ids


class Benchmark:
    """A benchmark opened for reading. Every file read is checked against the manifest.

    ``credentialed`` optionally points at a separate store holding the ``credentialed/``
    files (e.g. a private bucket while the public part is a local copy).
    """

    def __init__(self, store: Store, *, credentialed: Store | None = None) -> None:
        self.store = store
        self.credentialed_store = credentialed or store
        try:
            raw = store.read_bytes(layout.MANIFEST)
        except FileNotFoundError:
            raise BenchmarkError(ERR_NO_MANIFEST.format(uri=store.uri)) from None
        except StoreError as exc:
            raise BenchmarkError(str(exc)) from None
        self.manifest_bytes = raw
        try:
            manifest = json.loads(raw)
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
            if manifest.get("format") != layout.FORMAT_NAME:
                raise ValueError(f"format is {manifest.get('format')!r}")
            if not isinstance(manifest.get("files"), dict):
                raise ValueError("no file list")
        except ValueError as exc:
            raise BenchmarkError(ERR_BAD_MANIFEST.format(uri=store.uri, detail=exc)) from None
        self.manifest: dict[str, Any] = manifest

    @classmethod
    def open(
        cls,
        uri: str | os.PathLike[str],
        *,
        credentialed_uri: str | os.PathLike[str] | None = None,
    ) -> Benchmark:
        return cls(
            open_store(uri),
            credentialed=open_store(credentialed_uri) if credentialed_uri else None,
        )

    # Identity ---------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        return self.store.uri

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def seed(self) -> int | None:
        return self.manifest.get("seed")

    @cached_property
    def manifest_hash(self) -> str:
        """sha256 of manifest.json: identifies the exact data every score was made on."""
        return sha256_bytes(self.manifest_bytes)

    @cached_property
    def suite(self) -> Suite:
        """The suite the benchmark declares (``public/suite.json``); MedMod for a benchmark
        written before suites were declared."""
        if not self.has(layout.SUITE):
            return MEDMOD
        try:
            return load_suite(self.read_bytes(layout.SUITE), name=layout.SUITE)
        except SuiteError as exc:
            raise BenchmarkError(f"{self.uri}: {exc}") from None

    def task(self, task: str | Task) -> Task:
        """A task of the benchmark's suite, by slug (a :class:`Task` is looked up by its
        slug, so that a task of another suite is refused)."""
        return self.suite.task(task.slug if isinstance(task, Task) else task)

    @property
    def tasks(self) -> list[str]:
        declared = self.suite.task_slugs
        return [t for t in self.manifest.get("tasks", list(declared)) if t in declared]

    def scored_on(self, task: str) -> str:
        """``public``: the task's test split is scored on its public test unit list (every
        kind of entry); ``all``: on every test unit, through the streaming gateway only
        (docs/benchmark-format.md, "The test split"). Format-1 benchmarks: ``public``."""
        return str(self.manifest.get("scored_on", {}).get(self.task(task).slug, "public"))

    def has_credentialed(self) -> bool:
        return any(not layout.is_public(rel) for rel in self.manifest["files"])

    # Raw access -------------------------------------------------------------------------
    def _store_for(self, rel: str) -> Store:
        return self.store if layout.is_public(rel) else self.credentialed_store

    def read_bytes(self, rel: str) -> bytes:
        """Read a file and check it against the manifest's sha256."""
        entry = self.manifest["files"].get(rel)
        if entry is None:
            if rel.startswith(layout.CREDENTIALED + "/") and not self.has_credentialed():
                raise BenchmarkError(ERR_NO_PART.format(uri=self.uri, part="credentialed", rel=rel))
            raise BenchmarkError(ERR_UNLISTED.format(rel=rel, uri=self.uri))
        store = self._store_for(rel)
        try:
            data = store.read_bytes(rel)
        except FileNotFoundError:
            raise BenchmarkError(ERR_MISSING.format(rel=rel, uri=store.uri)) from None
        except StoreError as exc:
            raise BenchmarkError(str(exc)) from None
        actual = sha256_bytes(data)
        if actual != entry["sha256"]:
            raise BenchmarkError(
                ERR_ALTERED.format(rel=rel, uri=store.uri, actual=actual, expected=entry["sha256"])
            )
        return data

    def has(self, rel: str) -> bool:
        return rel in self.manifest["files"]

    def unlisted(self, *, part: str | None = None) -> list[str]:
        """Files in the benchmark's location(s) that the manifest does not list (besides
        ``manifest.json``): stray or left-over files that are no part of this benchmark."""
        files = self.manifest["files"]
        stores = [(self.store, "")]
        if self.credentialed_store is not self.store:
            stores.append((self.credentialed_store, layout.CREDENTIALED))
        found: set[str] = set()
        for store, prefix in stores:
            try:
                names = store.list(prefix)
            except StoreError as exc:
                raise BenchmarkError(str(exc)) from None
            found.update(rel for rel in names if rel != layout.MANIFEST and rel not in files)
        return sorted(rel for rel in found if part is None or rel.startswith(part + "/"))

    def verify(self, *, part: str | None = None) -> int:
        """Check every listed file (or those of one part) against its sha256, and that no
        unlisted file lies beside them; returns the number of files checked."""
        n = 0
        for rel in self.manifest["files"]:
            if part is None or rel.startswith(part + "/"):
                self.read_bytes(rel)
                n += 1
        extra = self.unlisted(part=part)
        if extra:
            message = ERR_UNLISTED.format(rel=extra[0], uri=self.uri)
            if len(extra) > 1:
                message += ERR_UNLISTED_MORE.format(n=len(extra) - 1)
            raise BenchmarkError(message)
        return n

    def read_csv(self, rel: str, **kwargs: Any) -> pd.DataFrame:
        data = self.read_bytes(rel)
        if rel.endswith(".gz"):
            data = gzip.decompress(data)
        return pd.read_csv(io.BytesIO(data), **kwargs)

    def local_path(self, rel: str) -> Path | None:
        """Path of a file on local disk (after a hash check), or None for remote stores."""
        self.read_bytes(rel)
        return self._store_for(rel).local_path(rel)

    # Typed accessors --------------------------------------------------------------------
    def stays(self) -> pd.DataFrame:
        return self.read_csv(layout.STAYS)

    def units(self, task: str, split: str) -> pd.DataFrame:
        """Unit list of a task and split (labels included for train and val only)."""
        self.task(task)
        if split not in SPLITS:
            raise KeyError(f"unknown split {split!r}; the splits are {', '.join(SPLITS)}")
        return self.read_csv(layout.units(task, split), dtype={"cxr_dicom_id": "string"})

    def test_labels(self, task: str) -> pd.DataFrame:
        """Credentialed test labels of a task."""
        self.task(task)
        return self.read_csv(layout.test_labels(task))

    def demographics(self) -> pd.DataFrame:
        return self.read_csv(layout.DEMOGRAPHICS)

    def scenarios(self, task: str) -> ScenarioSets:
        """Withheld stays per scenario over the public test units' paired stays."""
        return self.scenario_sets(layout.scenarios(task))

    def scenario_sets(self, rel: str) -> ScenarioSets:
        """A scenario file: stay_id, then one 0/1 column per scenario of the suite that
        withholds a modality (MedMod: cxr_missing_25 ... cxr_missing_100)."""
        df = self.read_csv(rel)
        declared = {s for m in self.suite.modalities for s in m.scenarios}
        withheld = {
            col: df.loc[df[col].astype(bool), "stay_id"].to_numpy()
            for col in df.columns
            if col in declared
        }
        return ScenarioSets(paired_stays=df["stay_id"].to_numpy(), withheld=withheld)

    def cxr_metadata(self) -> pd.DataFrame:
        return self.read_csv(layout.CXR_METADATA, dtype={"dicom_id": "string"})

    def timeseries(self, split: str) -> pd.DataFrame:
        return self.read_csv(layout.timeseries(split))

    def discretized(self, split: str) -> tuple[np.ndarray, pd.DataFrame]:
        """The 76-feature hourly array of a split and its index (stay_id, offset, n_hours)."""
        arr = np.load(io.BytesIO(self.read_bytes(layout.discretized(split))), allow_pickle=False)
        return arr, self.read_csv(layout.discretized_index(split))

    def image_bytes(self, dicom_id: str) -> bytes:
        return self.read_bytes(layout.image(dicom_id))


def open_benchmark(
    uri: str | os.PathLike[str], *, credentialed_uri: str | os.PathLike[str] | None = None
) -> Benchmark:
    """Open a benchmark directory or S3 prefix."""
    return Benchmark.open(uri, credentialed_uri=credentialed_uri)


def export_public(bench: Benchmark, dest: str | os.PathLike[str] | Store) -> dict[str, Any]:
    """Write the public part of a benchmark (every ``public/`` file, checked) with a manifest
    that lists only those files; returns the new manifest.

    The destination must be empty: files left there by an earlier copy (say, test labels)
    would otherwise sit beside the export.
    """
    writer = BenchmarkWriter(dest)
    try:
        present = writer.store.list()
    except StoreError as exc:
        raise BenchmarkError(str(exc)) from None
    if present:
        raise BenchmarkError(ERR_EXPORT_NOT_EMPTY.format(uri=writer.store.uri, first=present[0]))
    for rel in bench.manifest["files"]:
        if layout.is_public(rel):
            writer.write_bytes(rel, bench.read_bytes(rel))
    extra = {
        k: v
        for k, v in bench.manifest.items()
        if k
        not in ("format", "format_version", "name", "version", "source", "seed", "parts", "files")
    }
    extra["exported_from"] = bench.manifest_hash
    return writer.finish(
        name=bench.name,
        version=bench.version,
        source=bench.manifest["source"],
        seed=bench.seed,
        extra=extra,
    )
