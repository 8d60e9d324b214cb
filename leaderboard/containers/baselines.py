"""The reference baselines run causally: every trained model of a baselines run, asked by
the streaming gateway in every scenario.

Each run starts ``python -m scoring.baselines serve`` as a local process
(:func:`~leaderboard.containers.gateway.run_stream_subprocess`): it is given the run
directory (checkpoints and preprocessing) and nothing of the benchmark; everything it
predicts from comes through the gateway's messages, one prediction time at a time. The
answers of a model's runs make one prediction file in the public format, kept to the units
its task is scored on: ``RUN/stream/{task}/{model}.csv``. ``RUN/stream.json`` records every
run (steps, units, bytes revealed, time per step), and the loader enters these files as
entries the platform ran causally (:func:`leaderboard.board.services.baselines`).

No Django and no torch here: torch lives in the model processes.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark_data import Benchmark, layout
from benchmark_data.sequestered import TestSplit, test_split
from benchmark_data.tasks import TASKS, get_task
from leaderboard.containers.gateway import build_timeline, run_stream_subprocess
from leaderboard.containers.gateway.record import StreamRecord, time_stats
from leaderboard.containers.limits import DEFAULT_LIMITS, Limits
from leaderboard.containers.output import combine_predictions, keep_units
from leaderboard.containers.results import RunStatus
from leaderboard.containers.runner import CONTAINER_SCENARIOS
from scoring.run_files import update_json

STREAM_DIR = "stream"
STREAM_MANIFEST = "stream.json"
STREAM_KIND = "medmod-baselines-stream"
REPO = Path(__file__).resolve().parents[2]

ERR_NOT_RUN = "{run} is not a baselines run: run.json is missing or not JSON"
ERR_OTHER_BENCHMARK = (
    "the run was trained on benchmark {trained}, not on {given}; stream it on the benchmark "
    "it was trained on"
)
ERR_NO_WHOLE_SPLIT = (
    "{bench} has no whole test split (credentialed/test/); the gateway needs it: stream on the "
    "full benchmark, not its public export"
)
ERR_FAILED = "{task} {model} ({scenario}): {message}{log}"


class StreamFailed(RuntimeError):
    """A baseline's streamed run failed; the message says which and why."""


def stream_path(run_dir: Path, task: str, model: str) -> Path:
    return run_dir / STREAM_DIR / task / f"{model}.csv"


def read_stream_manifest(run_dir: Path) -> dict[str, Any]:
    """The record of a run's streamed predictions, or ``{}`` when it has none."""
    path = run_dir / STREAM_MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if data.get("kind") == STREAM_KIND else {}


def scored_keys(split: TestSplit, task: str) -> pd.DataFrame:
    """Key columns of the units a task is scored on (``public`` or ``clean``)."""
    units = split.units(task)
    return units.loc[split.scored(units, task), list(get_task(task).key_columns)]


def _record_summary(record: StreamRecord) -> dict[str, Any]:
    return {
        "steps": record.steps_done,
        "units": record.units_answered,
        "revealed": record.revealed,
        "ready_seconds": round(record.ready_seconds or 0.0, 3),
        "wall_seconds": round(record.wall_time, 3),
        "gateway_step": time_stats(record.gateway_step_seconds),
        "model_step": time_stats(record.model_step_seconds),
    }


def serve_command(run_dir: Path, task: str, model: str, *, threads: int = 1) -> list[str]:
    """The command line of one baseline answering the gateway on stdin/stdout."""
    return [sys.executable, "-m", "scoring.baselines", "serve", "--run", str(run_dir),
            "--task", task, "--model", model, "--threads", str(threads)]  # fmt: skip


def _one_run(
    run_dir: Path,
    split: TestSplit,
    task: str,
    model: str,
    scenario: str,
    work: Path,
    limits: Limits,
    threads: int,
) -> tuple[Path, StreamRecord]:
    timeline = build_timeline(split, task, scenario)
    out = work / f"{task}-{model}-{scenario}.csv"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    record = run_stream_subprocess(
        serve_command(run_dir, task, model, threads=threads),
        timeline,
        output=out,
        limits=limits,
        env=env,
        cwd=REPO,
    )
    if record.status != RunStatus.SUCCEEDED:
        log = f"\n{record.log_tail.strip()}" if record.log_tail.strip() else ""
        raise StreamFailed(
            ERR_FAILED.format(
                task=task, model=model, scenario=scenario, message=record.message, log=log
            )
        )
    return out, record


def stream_baselines(
    run_dir: str | os.PathLike[str],
    benchmark: Benchmark,
    *,
    tasks: list[str] | None = None,
    models: list[str] | None = None,
    scenarios: tuple[str, ...] = CONTAINER_SCENARIOS,
    jobs: int = 1,
    threads: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Stream every model of a run (or those asked) in every scenario; write the prediction
    files and ``stream.json``. A model's file is written only when all its runs succeeded;
    the first failure raises :class:`StreamFailed`."""
    run = Path(run_dir).resolve()
    try:
        manifest = json.loads((run / "run.json").read_text())
    except (FileNotFoundError, ValueError):
        raise StreamFailed(ERR_NOT_RUN.format(run=run)) from None
    trained = (manifest.get("benchmark") or {}).get("hash")
    if trained and trained != benchmark.manifest_hash:
        raise StreamFailed(
            ERR_OTHER_BENCHMARK.format(trained=trained[:12], given=benchmark.manifest_hash[:12])
        )
    if not benchmark.has(layout.TEST_STAYS):
        raise StreamFailed(ERR_NO_WHOLE_SPLIT.format(bench=benchmark.uri))
    split = test_split(benchmark)
    record = read_stream_manifest(run) or _empty_record(benchmark)
    todo = [
        (t, m)
        for t in TASKS
        if t in manifest["tasks"] and (tasks is None or t in tasks)
        for m in manifest["tasks"][t]
        if models is None or m in models
    ]
    if threads is None:  # the cores shared between the runs at a time
        threads = 1 if jobs > 1 else max(1, (os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="stream-", dir=run) as tmp:
        work = Path(tmp)
        pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        try:
            futures = {
                (t, m, s): pool.submit(_one_run, run, split, t, m, s, work, limits, threads)
                for t, m in todo
                for s in scenarios
            }
            for t, m in todo:
                t0 = time.monotonic()
                outputs: dict[str, Path] = {}
                runs: dict[str, Any] = {}
                for s in scenarios:
                    path, rec = futures[(t, m, s)].result()
                    outputs[s] = path
                    runs[s] = _record_summary(rec)
                _write(run, t, m, outputs, scored_keys(split, t))
                record = _record(run, benchmark, t, m, runs)
                steps = sum(r["steps"] for r in runs.values())
                progress(f"{t} {m}: {len(runs)} scenarios, {steps} steps, "
                         f"{time.monotonic() - t0:.0f} s")  # fmt: skip
        except BaseException:
            for f in futures.values():
                f.cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return record


def _write(run: Path, task: str, model: str, outputs: dict[str, Path], keys: pd.DataFrame) -> Path:
    """One file with a scenario column, the scored units only, written whole or not at all."""
    dest = stream_path(run, task, model)
    dest.parent.mkdir(parents=True, exist_ok=True)
    combined = dest.with_name(dest.name + ".all")
    combine_predictions(outputs, combined)
    keep_units(combined, keys)
    os.replace(combined, dest)
    return dest


def _empty_record(benchmark: Benchmark) -> dict[str, Any]:
    return {
        "kind": STREAM_KIND,
        "benchmark": {"hash": benchmark.manifest_hash},
        "protocol": "medmod-stream/1",
        "runs": {},
    }


def _record(
    run: Path, benchmark: Benchmark, task: str, model: str, runs: dict[str, Any]
) -> dict[str, Any]:
    """Add one model's runs to ``stream.json``, as it is now: other processes may be
    streaming other models of the same run."""

    def add(record: dict[str, Any]) -> dict[str, Any]:
        if record.get("kind") != STREAM_KIND:
            record = _empty_record(benchmark)
        record["runs"].setdefault(task, {})[model] = runs
        return record

    return update_json(run / STREAM_MANIFEST, add)
