"""The synthetic demo benchmark (seed 42) the tests share, generated once and kept between
runs under ``var/test-cache/``, named by a hash of ``benchmark_data``'s sources so that a
cache written by other code is never reused."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from benchmark_data.synth import GENERATOR_VERSION

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "benchmark-demo-seed42-v"


def _sources_hash() -> str:
    h = hashlib.sha256()
    for path in sorted((ROOT / "benchmark_data").rglob("*.py")):
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


BENCHMARK_CACHE = ROOT / "var" / "test-cache" / f"{PREFIX}{GENERATOR_VERSION}-{_sources_hash()}"


def demo_benchmark() -> Path:
    """The cached demo benchmark's directory, generated first when missing (by one test
    process at a time: the others wait for it)."""
    if (BENCHMARK_CACHE / "manifest.json").is_file():
        return BENCHMARK_CACHE
    BENCHMARK_CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(BENCHMARK_CACHE.parent / f"{PREFIX}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _generate()
    return BENCHMARK_CACHE


def _generate() -> None:
    if not (BENCHMARK_CACHE / "manifest.json").is_file():
        tmp = BENCHMARK_CACHE.with_name(BENCHMARK_CACHE.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "benchmark_data", "synth", "--out", str(tmp),
             "--scale", "demo", "--seed", "42"],
            check=True, cwd=ROOT, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(BENCHMARK_CACHE, ignore_errors=True)
        for old in BENCHMARK_CACHE.parent.glob(f"{PREFIX}*"):
            if old.is_dir() and not old.name.endswith(".part"):
                shutil.rmtree(old, ignore_errors=True)  # caches of other code
        tmp.rename(BENCHMARK_CACHE)
