"""The public data of a benchmark, as participants download it from the task pages.

``benchmark_publish_downloads`` writes a benchmark's release (:mod:`benchmark_data.release`:
the public part whole and per split, per task the unit lists, scenario lists and a sample
prediction file, ``SHA256SUMS``) to the site's storage under
``public-data/{manifest hash}/``; its index ``release.json`` is written last, so a release is
listed only once every file is in place. Local files in the demo are streamed by
:func:`leaderboard.board.web.views.download`; on S3 that view answers with a pre-signed URL.

Only files of the public part ever go there: the release is built from
``export_public``'s output, and the credentialed part is never opened for it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.core.files import File
from django.core.files.storage import default_storage

from benchmark_data.release import INDEX, build_release, read_index
from leaderboard.board.models import Benchmark
from leaderboard.board.selectors.benchmarks import benchmark_open
from leaderboard.board.selectors.downloads import downloads_key, read_stored, release_prefix


def benchmark_publish_downloads(*, benchmark: Benchmark, force: bool = False) -> dict[str, Any]:
    """Build the benchmark's release and store it; returns its index. A release already
    stored is kept unless ``force``."""
    prefix = release_prefix(benchmark)
    if not force and default_storage.exists(prefix + INDEX):
        return read_index(read_stored(prefix + INDEX))
    from scoring.template import sample_predictions

    data = benchmark_open(benchmark=benchmark)
    samples = {
        t.slug: sample_predictions(data, t.slug)
        for t in benchmark.tasks.all()
        if not t.gateway_only and t.n_test_units
    }
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        out = Path(tmp) / "release"
        index = build_release(data, out, samples=samples)
        if default_storage.exists(prefix + INDEX):
            default_storage.delete(prefix + INDEX)  # unlisted while files change
        for entry in index["files"]:
            name = prefix + entry["name"]
            if default_storage.exists(name):
                default_storage.delete(name)
            with (out / entry["name"]).open("rb") as fh:
                default_storage.save(name, File(fh, name=entry["name"]))
        with (out / INDEX).open("rb") as fh:
            default_storage.save(prefix + INDEX, File(fh, name=INDEX))
    cache.delete(downloads_key(benchmark))
    return index


def _read(name: str) -> bytes:
    with default_storage.open(name, "rb") as fh:
        return bytes(fh.read())


__all__ = ["benchmark_publish_downloads"]
