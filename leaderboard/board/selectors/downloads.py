"""The published release of a benchmark, as the task pages and the API list it: its index
(``release.json``, written last by ``services.downloads.benchmark_publish_downloads``), the
files that concern a task, and the addresses they are fetched from. Reads only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.core.cache import cache
from django.core.files.storage import default_storage
from django.urls import reverse

from benchmark_data.release import CHECKSUMS, INDEX, read_index
from leaderboard.board.models import DEFAULT_SUITE, Benchmark, Task

PREFIX = "public-data"
# The index is read from storage once per process per this many seconds (a release that is
# not there yet is looked for again after this long too).
INDEX_CACHE_SECONDS = 300
# How long a pre-signed S3 download link stays valid.
PRESIGNED_SECONDS = 3600
# Terms shown beside the downloads of a benchmark derived from MIMIC.
MIMIC_TERMS = (
    "This benchmark is derived from MIMIC-IV, MIMIC-CXR-JPG and MIMIC-IV-Note, which "
    "PhysioNet distributes under the PhysioNet Credentialed Health Data License 1.5.0. Its "
    "downloads hold identifiers only. To rebuild the inputs you must be a credentialed "
    "PhysioNet user who has completed the required training in human research and signed "
    "the data use agreement of each of these projects, and you must not share the data or "
    "anything derived from it, your predictions excepted."
)


def release_prefix(benchmark: Benchmark) -> str:
    return f"{PREFIX}/{benchmark.manifest_hash}/"


def downloads_key(benchmark: Benchmark) -> str:
    """The cache key of a benchmark's release index."""
    return f"board:downloads:{benchmark.manifest_hash}"


def benchmark_downloads(
    *, benchmark: Benchmark, found: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The stored release index of a benchmark, or None when none is published yet.
    ``found``: cache values the caller has read already in one round trip (a key missing
    from it is a miss)."""
    key = downloads_key(benchmark)
    cached = found.get(key) if found is not None else cache.get(key)
    if cached is not None:
        return cached or None
    name = release_prefix(benchmark) + INDEX
    index = read_index(read_stored(name)) if default_storage.exists(name) else {}
    cache.set(key, index, INDEX_CACHE_SECONDS)
    return index or None


def read_stored(name: str) -> bytes:
    with default_storage.open(name, "rb") as fh:
        return bytes(fh.read())


def download_url(benchmark: Benchmark, name: str) -> str:
    """The site's address of a release file (the view streams it, or sends a pre-signed
    link)."""
    return reverse("download", args=[benchmark.manifest_hash, name])


def task_downloads(
    *, task: Task, absolute: Any = None, found: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """What a task page and ``/api/tasks/{slug}/files/`` list: the benchmark's files that
    concern the task (its own, and the shared archives and checksums), each with its size,
    sha256 and address. None when the benchmark has no published release. ``found`` as for
    :func:`benchmark_downloads`."""
    benchmark = task.benchmark
    index = benchmark_downloads(benchmark=benchmark, found=found)
    if index is None:
        return None
    build = absolute or (lambda url: url)
    files = [
        {**f, "url": build(download_url(benchmark, f["name"]))}
        for f in index["files"]
        if f.get("task") in (None, task.slug)
    ]
    order = {"archive": 0, "ids": 0, "inputs": 1, "units": 2, "scenarios": 3, "sample": 4}
    splits = {"train": 0, "val": 1, "test": 2}
    files.sort(
        key=lambda f: (order.get(f["kind"], 9), splits.get(f.get("split") or "", 3), f["name"])
    )
    return {
        "benchmark": {
            "name": benchmark.name,
            "version": benchmark.version,
            "manifest_hash": benchmark.manifest_hash,
            "public_manifest_hash": index["benchmark"]["public_manifest_hash"],
        },
        "ids_only": bool(index.get("ids_only")),
        "terms": MIMIC_TERMS if index.get("ids_only") else "",
        "checksums_url": build(download_url(benchmark, CHECKSUMS)),
        "suite": task.suite_slug,
        "suite_is_default": task.suite_slug == DEFAULT_SUITE,
        "files": files,
    }


def release_file(*, manifest_hash: str, name: str) -> tuple[Benchmark, dict[str, Any]] | None:
    """The benchmark and index entry of a release file, or None when there is no such
    file (any name outside the published index is unknown)."""
    benchmark = Benchmark.objects.filter(manifest_hash=manifest_hash).first()
    if benchmark is None:
        return None
    index = benchmark_downloads(benchmark=benchmark)
    if index is None:
        return None
    for entry in index["files"]:
        if entry["name"] == name:
            return benchmark, entry
    if name == INDEX:
        data = json.dumps(index).encode()
        return benchmark, {"name": INDEX, "size": len(data), "sha256": "", "kind": "index"}
    return None


def open_release_file(benchmark: Benchmark, name: str):  # -> a file object
    return default_storage.open(release_prefix(benchmark) + name, "rb")


def presigned_url(benchmark: Benchmark, name: str) -> str | None:
    """A pre-signed S3 link to a release file (None on local storage)."""
    # Only the S3 storage has a bucket; its url() takes S3 request parameters.
    storage: Any = default_storage
    if not hasattr(storage, "bucket_name"):
        return None
    filename = name.rsplit("/", 1)[-1]
    return str(
        storage.url(
            release_prefix(benchmark) + name,
            parameters={"ResponseContentDisposition": f'attachment; filename="{filename}"'},
            expire=PRESIGNED_SECONDS,
        )
    )


__all__ = [
    "MIMIC_TERMS",
    "benchmark_downloads",
    "download_url",
    "downloads_key",
    "open_release_file",
    "presigned_url",
    "release_file",
    "release_prefix",
    "task_downloads",
]
