"""A run directory: its layout, manifest, log and checkpoints, and re-predicting from them.

::

    run.json                          the run manifest
    train_log.jsonl                   one JSON object per model, task and epoch
    checkpoints/{task}/{model}.pt     the selected weights and the model's settings
    predictions/{task}/{model}.csv    the public prediction file, every scenario
    scores/{task}/{model}.json        score reports (``python -m scoring.baselines scores``)
    scores.md                         the tables (``python -m scoring.baselines scores``)
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from benchmark_data.benchmark import Benchmark
from scoring.baselines.models import Baseline, build_model
from scoring.baselines.predict import predict_scenarios, write_predictions
from scoring.baselines.workspace import Workspace
from scoring.run_files import write_json

RUN_MANIFEST = "run.json"
TRAIN_LOG = "train_log.jsonl"
RUN_KIND = "medmod-baselines-run"


def checkpoint_path(run_dir: Path, task: str, model: str) -> Path:
    return run_dir / "checkpoints" / task / f"{model}.pt"


# Where a run's prediction files are: made from the files by ``train``/``predict``, or
# streamed through the gateway (python -m leaderboard.containers stream-baselines).
SOURCES = ("predictions", "stream")


def predictions_path(run_dir: Path, task: str, model: str, source: str = "predictions") -> Path:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; the sources are {', '.join(SOURCES)}")
    return run_dir / source / task / f"{model}.csv"


def code_version() -> str:
    """``git describe`` of the source tree when available, else the package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        if out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from benchmark_data import __version__

    return __version__


def run_header(kind: str, uri: str, bench: Any) -> dict[str, Any]:
    """The first fields of a run manifest: its kind, the code, when, and the benchmark
    (``uri``, name, version, manifest hash, suite, kind of source) it was made on."""
    return {
        "kind": kind,
        "code_version": code_version(),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "benchmark": {
            "uri": str(uri),
            "name": bench.name,
            "version": bench.version,
            "hash": bench.manifest_hash,
            "suite": bench.suite.slug,
            "source_kind": (bench.manifest.get("source") or {}).get("kind"),
        },  # fmt: skip
    }


def batch_size(config: dict[str, Any], *, stays: bool, model: str) -> int:
    """Units per batch, or stays per batch for stay sequences (fewer for the image-only
    model, whose cost is its images: radiology stays hold several). Prediction uses twice
    as many, the same in ``train`` and ``predict`` so both write the same numbers."""
    if not stays:
        return int(config["batch_size"])
    return int(config["cxr_stay_batch_size" if model == "cxr" else "stay_batch_size"])


def emit(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@dataclass
class RunState:
    """The manifest being written (saved after every model, so a stopped run keeps it) and
    the training log. A worker training one task in another process keeps its own log and
    leaves the manifest to the parent."""

    run_dir: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    log_name: str = TRAIN_LOG
    persist: bool = True

    def save(self) -> None:
        if self.persist:
            write_json(self.run_dir / RUN_MANIFEST, self.manifest)

    def log(self, record: dict[str, Any]) -> None:
        with (self.run_dir / self.log_name).open("a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")


def model_from_settings(settings: dict[str, Any]) -> Baseline:
    return build_model(
        settings["name"],
        kind=settings["kind"],
        out_dim=settings["out_dim"],
        ehr_hidden=settings["ehr_hidden"],
        dropout=settings["dropout"],
        cxr_encoder=settings["cxr_encoder"],
    )


def save_checkpoint(path: Path, model: Baseline, settings: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"settings": settings, "state_dict": model.state_dict()}, path)


def load_checkpoint(path: Path) -> Baseline:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = model_from_settings(ckpt["settings"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a baselines run: {RUN_MANIFEST} is missing")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("kind") != RUN_KIND:
        raise ValueError(f"{path} is not a baselines run manifest")
    return manifest


def predict_run(
    benchmark: str | Path, *, run_dir: str | Path, tasks: list[str] | None = None
) -> list[Path]:
    """Re-write the prediction files of a run from its checkpoints."""
    torch.use_deterministic_algorithms(True)
    run = Path(run_dir)
    manifest = read_manifest(run)
    bench = Benchmark.open(benchmark)
    if bench.manifest_hash != manifest["benchmark"]["hash"]:
        emit(
            f"warning: benchmark hash {bench.manifest_hash[:12]} differs from the run's "
            f"{manifest['benchmark']['hash'][:12]}"
        )
    todo = [t for t in manifest["tasks"] if tasks is None or t in tasks]
    cfg = manifest["config"]
    ws = Workspace.load(
        bench,
        todo,
        image_size=int(cfg["image_size"]),
        max_hours=int(cfg["max_hours"]),
        preprocessing=manifest["preprocessing"],
    )
    written: list[Path] = []
    for task in todo:
        test = ws.data(task, "test")
        units = ws.units[(task, "test")]
        sets = ws.test_scenarios(task)
        for name in manifest["tasks"][task]:
            model = load_checkpoint(checkpoint_path(run, task, name))
            bs = 2 * batch_size(cfg, stays=test.carry, model=name)
            df = predict_scenarios(
                model, test, units, sets, ehr=ws.ehr["test"], images=ws.images, batch_size=bs
            )
            df = ws.scored_predictions(task, df)
            written.append(write_predictions(df, predictions_path(run, task, name)))
            emit(f"{task} {name}: wrote {written[-1].relative_to(run)}")
    return written
