"""Training-time missingness, CareBench's protocol: one baselines run per rate.

At rate ``r`` a run withholds the chest X-rays of ``floor(n * r)`` of the ``n`` training
stays that have one, and likewise of the validation stays (every unit of a withheld stay loses
its image, in every task, the radiology pre-training included); the test split keeps every
image (:func:`scoring.baselines.data.withheld_stays`). A sweep directory holds one ordinary
run directory per rate and an index::

    DIR/sweep.json          the settings, and per rate its run, status and time
    DIR/rate-0.30/          a baselines run (run.json records the rate and what it withheld)

The draws are nested (a stay withheld at 0.3 is withheld at 0.5 too) and depend only on the
run seed, so a curve's points differ only by the images taken away. The point at rate 0 is
the ordinary run with the same seed and settings.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmark_data.benchmark import Benchmark
from benchmark_data.tasks import get_task
from scoring.baselines.artifacts import RUN_MANIFEST, emit, predictions_path, run_header
from scoring.baselines.run import RunConfig, resolve_models, train_run
from scoring.run_files import LOCK_NAME, read_json, run_lock, write_json

SWEEP_MANIFEST = "sweep.json"
SWEEP_KIND = "medmod-baselines-sweep"
DEFAULT_RATES = (0.1, 0.3, 0.5, 0.7, 0.9)

ERR_RATE = (
    "rate {rate!r} is not between 0 and 1: the rates of a sweep lie in (0, 1), e.g. 0.1,0.3,0.5"
)
ERR_RATE_TWICE = (
    "rates {a} and {b} name the same run directory ({name}): give rates that differ by 0.01 or more"
)
ERR_NO_RATES = "no rates given: name one or more, e.g. --rates 0.1,0.3,0.5,0.7,0.9"
ERR_NOT_SWEEP = (
    "{out} exists and is not a sweep directory (it has no sweep.json but holds files): "
    "name a new directory"
)
ERR_OTHER_SETTINGS = (
    "{out} holds a sweep made with other settings ({what}: {old} there, {new} asked): name "
    "another directory, or ask for the same settings to add rates to it"
)


def parse_rates(text: str) -> list[float]:
    """``"0.1,0.3"`` as checked rates (:func:`check_rates`)."""
    items = [v.strip() for v in str(text).split(",") if v.strip()]
    rates = []
    for item in items:
        try:
            rates.append(float(item))
        except ValueError:
            raise ValueError(ERR_RATE.format(rate=item)) from None
    return check_rates(rates)


def rate_dir(rate: float) -> str:
    """The run directory of a rate inside a sweep: ``rate-0.30``."""
    return f"rate-{rate:.2f}"


def check_rates(rates: list[float]) -> list[float]:
    """The rates, sorted, each in the open interval (0, 1) and naming a run directory of
    its own; a ValueError saying which one is wrong otherwise."""
    if not rates:
        raise ValueError(ERR_NO_RATES)
    seen: dict[str, float] = {}
    for rate in rates:
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 < rate < 1):
            raise ValueError(ERR_RATE.format(rate=rate))
        name = rate_dir(rate)
        if name in seen:
            raise ValueError(ERR_RATE_TWICE.format(a=seen[name], b=rate, name=name))
        seen[name] = float(rate)
    return sorted(seen.values())


def _settings(
    bench: Benchmark, tasks: list[str], models: list[str], config: RunConfig
) -> dict[str, Any]:
    """What every run of a sweep shares: the benchmark, tasks, models and settings (the
    thread count aside, which changes no result)."""
    cfg = {k: v for k, v in asdict(config).items() if k not in ("train_cxr_missing", "threads")}
    return {
        "benchmark": bench.manifest_hash,
        "tasks": list(tasks),
        "models": list(models),
        "config": cfg,
    }


def _check_same(out: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    for what in ("benchmark", "tasks", "models"):
        if old.get(what) != new[what]:
            raise ValueError(
                ERR_OTHER_SETTINGS.format(out=out, what=what, old=old.get(what), new=new[what])
            )
    before = old.get("config") or {}
    for key, value in new["config"].items():
        if before.get(key) != value:
            raise ValueError(
                ERR_OTHER_SETTINGS.format(
                    out=out, what=f"setting {key}", old=before.get(key), new=value
                )
            )


def run_complete(run_dir: Path, tasks: list[str], models: list[str]) -> bool:
    """Whether a rate's run holds every model of every task, with its prediction file."""
    manifest = read_json(run_dir / RUN_MANIFEST)
    done = manifest.get("tasks") or {}
    return all(
        m in done.get(t, {}) and predictions_path(run_dir, t, m).is_file()
        for t in tasks
        for m in resolve_models(models)
    )


def _record(
    out: Path, settings: dict[str, Any], header: dict[str, Any], entry: dict[str, Any] | None
) -> dict[str, Any]:
    """Create or update DIR/sweep.json under the directory's lock (several processes may fill
    one sweep, one rate each); refuse a directory made with other settings."""
    with run_lock(out):
        index = read_json(out / SWEEP_MANIFEST)
        if index:
            if index.get("kind") != SWEEP_KIND:
                raise ValueError(f"{out / SWEEP_MANIFEST} is not a sweep index")
            _check_same(out, index.get("settings") or {}, settings)
        else:
            index = {**header, "settings": settings, "runs": []}
        if entry is not None:
            runs = [r for r in index["runs"] if r["dir"] != entry["dir"]] + [entry]
            index["runs"] = sorted(runs, key=lambda r: r["rate"])
            index["rates"] = [r["rate"] for r in index["runs"]]
        write_json(out / SWEEP_MANIFEST, index)
    return index


def train_sweep(
    benchmark: str | Path,
    *,
    out: str | Path,
    tasks: list[str],
    models: list[str],
    rates: list[float],
    config: RunConfig,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``models`` (with the models they build on) on ``tasks`` once per rate, each
    into ``out/rate-R.RR`` with ``config`` and ``train_cxr_missing=R``; write
    ``out/sweep.json``. A rate whose run is already complete is kept; a directory made with
    other settings is refused. Returns the index."""
    rates = check_rates(list(rates))
    resolve_models(models)  # unknown models: a ValueError naming them
    for task in tasks:
        get_task(task)
    bench = Benchmark.open(benchmark)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} is a file, not a directory: name a directory for the sweep")
    own = {LOCK_NAME, SWEEP_MANIFEST + ".part"}  # what a sweep starting beside this one writes
    if (
        root.is_dir()
        and not (root / SWEEP_MANIFEST).exists()
        and any(p.name not in own for p in root.iterdir())
    ):
        raise ValueError(ERR_NOT_SWEEP.format(out=root))
    root.mkdir(parents=True, exist_ok=True)
    settings = _settings(bench, tasks, models, config)
    header = {**run_header(SWEEP_KIND, str(benchmark), bench), "seed": config.seed}
    _record(root, settings, header, None)
    index: dict[str, Any] = {}
    for rate in rates:
        run_dir = root / rate_dir(rate)
        t0 = time.perf_counter()
        if run_complete(run_dir, tasks, models):
            emit(f"sweep: rate {rate:.2f} already trained in {run_dir}")
            status = "kept"
        else:
            emit(f"sweep: rate {rate:.2f} into {run_dir}")
            train_run(
                benchmark,
                tasks=tasks,
                models=models,
                out=run_dir,
                config=replace(config, train_cxr_missing=rate),
                progress=progress,
                workers=workers,
            )
            status = "trained"
        manifest = read_json(run_dir / RUN_MANIFEST)
        entry = {
            "rate": rate,
            "dir": rate_dir(rate),
            "status": status,
            "models": list(manifest.get("models") or []),
            "train_missing": manifest.get("train_missing"),
            "seconds": round(time.perf_counter() - t0, 2),
            "run_seconds": (manifest.get("timings") or {}).get("total_seconds"),
        }
        index = _record(root, settings, header, entry)
    return index


def read_sweep(out: str | Path) -> dict[str, Any]:
    """A sweep's index, or a FileNotFoundError/ValueError saying why there is none."""
    path = Path(out) / SWEEP_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{out} is not a sweep directory: {SWEEP_MANIFEST} is missing")
    index = read_json(path)
    if index.get("kind") != SWEEP_KIND:
        raise ValueError(f"{path} is not a sweep index")
    return index
