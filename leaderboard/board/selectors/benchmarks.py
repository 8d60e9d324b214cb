"""Reads of a registered benchmark's files: opening it, and a task's ground truth."""

from __future__ import annotations

import functools

from benchmark_data import Benchmark as BenchmarkData
from benchmark_data import BenchmarkError
from benchmark_data.store import StoreError
from leaderboard.board.errors import BenchmarkInvalid
from leaderboard.board.models import Benchmark, Task


def benchmark_open(*, benchmark: Benchmark) -> BenchmarkData:
    """Open a registered benchmark and check it is still the version that was registered."""
    try:
        data = BenchmarkData.open(
            benchmark.uri, credentialed_uri=benchmark.credentialed_uri or None
        )
    except (BenchmarkError, StoreError) as exc:
        raise BenchmarkInvalid(str(exc)) from None
    if data.manifest_hash != benchmark.manifest_hash:
        raise BenchmarkInvalid(
            f"the benchmark at {benchmark.uri} has changed since it was registered: its manifest "
            f"hash is {data.manifest_hash}, not {benchmark.manifest_hash}"
        )
    return data


@functools.lru_cache(maxsize=8)
def _truth_cached(uri: str, credentialed_uri: str, manifest_hash: str, task_slug: str):
    from scoring.truth import truth_from_benchmark

    benchmark = Benchmark(uri=uri, credentialed_uri=credentialed_uri, manifest_hash=manifest_hash)
    return truth_from_benchmark(benchmark_open(benchmark=benchmark), task_slug)


def task_truth(*, task: Task):
    """The ground truth of a task (cached per worker process: the data is immutable for a
    given manifest hash)."""
    b = task.benchmark
    try:
        return _truth_cached(b.uri, b.credentialed_uri, b.manifest_hash, task.slug)
    except (BenchmarkError, StoreError) as exc:
        raise BenchmarkInvalid(str(exc)) from None
