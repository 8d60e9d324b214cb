"""A baselines run: train the models of each task, save them, predict the test split.

A run directory holds::

    run.json                          the run manifest (see below)
    train_log.jsonl                   one JSON object per model, task and epoch
    checkpoints/{task}/{model}.pt     the selected weights and the model's settings
    predictions/{task}/{model}.csv    the public prediction file, every scenario
    scores.md                         written by ``python -m scoring.baselines scores``

The manifest records the code version, seed, hyperparameters, the benchmark's name, version
and manifest hash, the normalisation statistics, and per task and model the selected epoch,
validation metrics and timings. The same seed, settings and thread count give the same
predictions (``torch.use_deterministic_algorithms``; every random stream is seeded from the
run seed, the task and the model), unless a time limit cuts training short.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from benchmark_data.benchmark import Benchmark
from benchmark_data.tasks import get_task
from scoring.baselines.models import MODEL_NAMES, UNIMODAL, Baseline, build_model
from scoring.baselines.predict import predict_scenarios, write_predictions
from scoring.baselines.training import FitOptions, evaluate, fit
from scoring.baselines.workspace import Workspace, resolve_encoder, resolve_image_size

RUN_MANIFEST = "run.json"
TRAIN_LOG = "train_log.jsonl"
RUN_KIND = "medmod-baselines-run"

# Learning rates: unimodal models and early fusion's head from scratch; the CXR model on a
# pretrained encoder and the fusion models that start from the unimodal encoders are
# fine-tuned with a smaller rate.
DEFAULT_LR: dict[str, float] = {
    "ehr": 1e-3,
    "cxr": 1e-3,
    "cxr_pretrained": 3e-4,
    "early": 1e-3,
    "joint": 3e-4,
    "medfuse": 3e-4,
    "daft": 3e-4,
    "mmtm": 3e-4,
}


@dataclass(frozen=True)
class RunConfig:
    """Hyperparameters of a run (recorded in the manifest)."""

    seed: int = 42
    epochs: int = 15
    patience: int = 3
    lr: float | None = None  # None: DEFAULT_LR per model
    ehr_hidden: int = 256
    dropout: float = 0.3
    cxr_encoder: str = "auto"
    image_size: int | None = None
    max_hours: int = 96
    epoch_steps: int | None = 20000
    cxr_pretrain: str = "radiology"
    batch_size: int = 32
    stay_batch_size: int = 16
    cxr_stay_batch_size: int = 4
    max_minutes: float | None = None
    threads: int = 1

    def model_lr(self, model: str, *, pretrained: bool = False) -> float:
        if self.lr is not None:
            return self.lr
        return DEFAULT_LR["cxr_pretrained" if model == "cxr" and pretrained else model]


def checkpoint_path(run_dir: Path, task: str, model: str) -> Path:
    return run_dir / "checkpoints" / task / f"{model}.pt"


def predictions_path(run_dir: Path, task: str, model: str) -> Path:
    return run_dir / "predictions" / task / f"{model}.csv"


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


def derived_seed(seed: int, *parts: str) -> int:
    """A stable seed for one task and model from the run seed."""
    return zlib.crc32("/".join([str(seed), *parts]).encode()) & 0x7FFFFFFF


def resolve_models(requested: list[str]) -> list[str]:
    """The requested models in training order, with the unimodal models they build on."""
    unknown = [m for m in requested if m not in MODEL_NAMES]
    if unknown:
        raise ValueError(
            f"unknown model(s) {', '.join(unknown)}; the models are {', '.join(MODEL_NAMES)}"
        )
    want = set(requested)
    if want - set(UNIMODAL):
        want |= set(UNIMODAL)
    return [m for m in MODEL_NAMES if m in want]


def _batch_size(config: RunConfig, ws: Workspace, task: str, model: str) -> int:
    """Units per batch, or stays per batch for stay sequences (fewer for the image-only
    model, whose cost is its images: radiology stays hold several)."""
    if not ws.data(task, "train").carry:
        return config.batch_size
    return config.cxr_stay_batch_size if model == "cxr" else config.stay_batch_size


def _emit(line: str) -> None:
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
            path = self.run_dir / RUN_MANIFEST
            path.write_text(json.dumps(self.manifest, indent=1, sort_keys=False) + "\n")

    def log(self, record: dict[str, Any]) -> None:
        with (self.run_dir / self.log_name).open("a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")


def _settings(config: RunConfig, task: str, model: str, encoder: str) -> dict[str, Any]:
    t = get_task(task)
    return {
        "name": model,
        "task": task,
        "kind": t.kind,
        "out_dim": 10 if t.kind == "los" else t.n_labels,
        "ehr_hidden": config.ehr_hidden,
        "dropout": config.dropout,
        "cxr_encoder": encoder,
    }


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


def _report(state: RunState, task: str, name: str) -> Callable[[dict[str, Any]], None]:
    metric = get_task(task).primary_metric

    def report(rec: dict[str, Any]) -> None:
        state.log({"task": task, "model": name, **rec})
        _emit(
            f"{task} {name}: epoch {rec['epoch']} loss {rec['train_loss']:.4f} "
            f"val {metric} {rec['val_metric']:.4f} (all units {rec['val_metric_all']:.4f}; "
            f"best epoch {rec['best_epoch']}) {rec['seconds']:.1f} s"
        )

    return report


def _train_one(
    ws: Workspace,
    task: str,
    name: str,
    config: RunConfig,
    encoder: str,
    state: RunState,
    *,
    trained: dict[str, Baseline],
    cxr_init: dict[str, torch.Tensor] | None,
    progress: bool,
    role: str = "baseline",
) -> Baseline:
    """Train (or assemble) one model, save it, write its prediction file, record it."""
    t0, c0 = time.perf_counter(), time.process_time()
    train, val, test = (ws.data(task, s) for s in ("train", "val", "test"))
    units_test = ws.units[(task, "test")]
    sets = ws.bench.scenarios(task) if units_test["cxr_dicom_id"].notna().any() else None
    bs = _batch_size(config, ws, task, name)
    seed = derived_seed(config.seed, task, name)
    torch.manual_seed(seed)
    settings = _settings(config, task, name, encoder)
    model = build_model(
        name,
        kind=settings["kind"],
        out_dim=settings["out_dim"],
        ehr_hidden=config.ehr_hidden,
        dropout=config.dropout,
        cxr_encoder=encoder,
        unimodal=trained if name not in UNIMODAL else None,
    )
    if cxr_init is not None:
        model.cxr.load_state_dict(cxr_init)  # type: ignore[union-attr]
    report = _report(state, task, name)
    entry: dict[str, Any] = {"role": role, "seed": seed}
    if cxr_init is not None:
        entry["cxr_encoder_from"] = "radiology/cxr"
    if model.trainable:
        lr = config.model_lr(name, pretrained=cxr_init is not None)
        result = fit(
            model,
            train,
            val,
            ehr_train=ws.ehr["train"],
            ehr_val=ws.ehr["val"],
            images=ws.images,
            options=FitOptions(
                lr=lr,
                epochs=config.epochs,
                patience=config.patience,
                batch_size=bs,
                epoch_steps=config.epoch_steps,
                max_seconds=None if config.max_minutes is None else config.max_minutes * 60,
                seed=seed,
            ),
            report=report,
            progress=progress,
            label=f"{task} {name}",
        )
        best = result.history[result.best_epoch - 1] if result.best_epoch else {}
        entry.update(
            lr=lr,
            epochs_run=result.epochs_run,
            best_epoch=result.best_epoch,
            stopped=result.stopped,
            val_metric=best.get("val_metric"),
            val_metric_all=best.get("val_metric_all"),
        )
    else:
        metrics = evaluate(model, val, ws.ehr["val"], ws.images, batch_size=bs)
        report({"epoch": 0, "train_loss": 0.0, **metrics, "best_epoch": 0, "seconds": 0.0})
        entry.update(epochs_run=0, best_epoch=0, stopped="no training", **metrics)
    entry["train_seconds"] = round(time.perf_counter() - t0, 2)
    ckpt = checkpoint_path(state.run_dir, task, name)
    save_checkpoint(ckpt, model, settings)
    t1 = time.perf_counter()
    df = predict_scenarios(
        model, test, units_test, sets, ehr=ws.ehr["test"], images=ws.images, batch_size=2 * bs
    )
    pred = write_predictions(df, predictions_path(state.run_dir, task, name))
    entry["predict_seconds"] = round(time.perf_counter() - t1, 2)
    entry["cpu_seconds"] = round(time.process_time() - c0, 2)
    entry["checkpoint"] = str(ckpt.relative_to(state.run_dir))
    entry["predictions"] = str(pred.relative_to(state.run_dir))
    state.manifest["tasks"].setdefault(task, {})[name] = entry
    state.save()
    val_metric = entry.get("val_metric")
    _emit(
        f"{task} {name}: selected epoch {entry['best_epoch']}, val "
        f"{get_task(task).primary_metric} {_num(val_metric)}; trained in "
        f"{entry['train_seconds']:.1f} s, predicted in {entry['predict_seconds']:.1f} s"
    )
    return model


def _num(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.4f}"


StateDict = dict[str, torch.Tensor]


def _train_task(
    ws: Workspace,
    task: str,
    names: list[str],
    config: RunConfig,
    encoder: str,
    state: RunState,
    *,
    cxr_init: StateDict | None,
    progress: bool,
    role: str = "baseline",
) -> dict[str, Baseline]:
    """Train the models of one task in order; the CXR model starts from ``cxr_init``."""
    trained: dict[str, Baseline] = {}
    for name in names:
        trained[name] = _train_one(
            ws,
            task,
            name,
            config,
            encoder,
            state,
            trained=trained,
            cxr_init=cxr_init if name == "cxr" else None,
            progress=progress,
            role=role,
        )
    return trained


def _task_worker(
    benchmark: str,
    task: str,
    names: list[str],
    config: RunConfig,
    encoder: str,
    size: int,
    preprocessing: dict[str, Any],
    cxr_init: StateDict | None,
    run_dir: Path,
) -> dict[str, Any]:
    """Train one task in a worker process; returns its manifest entries."""
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    ws = Workspace.load(
        Benchmark.open(benchmark),
        [task],
        image_size=size,
        max_hours=config.max_hours,
        preprocessing=preprocessing,
    )
    state = RunState(run_dir, {"tasks": {}}, log_name=f"{TRAIN_LOG}.{task}", persist=False)
    _train_task(ws, task, names, config, encoder, state, cxr_init=cxr_init, progress=False)
    entries: dict[str, Any] = state.manifest["tasks"][task]
    return entries


def _train_parallel(
    benchmark: str | Path,
    tasks: list[str],
    names: list[str],
    config: RunConfig,
    encoder: str,
    size: int,
    preprocessing: dict[str, Any],
    cxr_init: StateDict | None,
    state: RunState,
    *,
    jobs: int,
) -> None:
    """Train tasks in ``jobs`` processes (one thread each by default); the results are the
    same as one after the other, as every task depends only on the seed and the radiology
    CXR encoder."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {
            t: pool.submit(
                _task_worker,
                str(benchmark),
                t,
                names,
                config,
                encoder,
                size,
                preprocessing,
                cxr_init,
                state.run_dir,
            )
            for t in tasks
        }
        for t in tasks:
            state.manifest["tasks"][t] = futures[t].result()
            state.save()
    with (state.run_dir / TRAIN_LOG).open("a") as log:
        for t in tasks:
            part = state.run_dir / f"{TRAIN_LOG}.{t}"
            log.write(part.read_text())
            part.unlink()


def task_order(tasks: list[str], *, pretrain: bool) -> list[str]:
    """Radiology first when its CXR model initialises the other tasks' image encoders."""
    if pretrain and "radiology" in tasks:
        return ["radiology", *(t for t in tasks if t != "radiology")]
    return list(tasks)


def train_run(
    benchmark: str | Path,
    *,
    tasks: list[str],
    models: list[str],
    out: str | Path,
    config: RunConfig,
    progress: bool = False,
    jobs: int = 1,
) -> dict[str, Any]:
    """Train every requested model on every requested task and predict the test splits.

    With ``jobs`` > 1 the tasks after radiology are trained in that many processes."""
    t_start = time.perf_counter()
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    bench = Benchmark.open(benchmark)
    for task in tasks:
        get_task(task)
    order = resolve_models(models)
    pretrain = config.cxr_pretrain == "radiology" and "cxr" in order
    run_tasks = task_order(tasks, pretrain=pretrain)
    rest = [t for t in run_tasks if not (pretrain and t == "radiology")]
    parallel = jobs > 1 and len(rest) > 1
    # This process trains radiology (or only its CXR model, to pretrain the image encoder)
    # and, unless the other tasks go to worker processes, those too.
    load_tasks = (["radiology"] if pretrain else []) + ([] if parallel else rest)
    encoder = resolve_encoder(bench, config.cxr_encoder)
    size = resolve_image_size(encoder, config.image_size)
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / TRAIN_LOG).unlink(missing_ok=True)
    _emit(f"loading {bench.name} {bench.version}: tasks {', '.join(load_tasks) or 'none'}")
    t0 = time.perf_counter()
    ws = Workspace.load(bench, load_tasks, image_size=size, max_hours=config.max_hours)
    load_seconds = round(time.perf_counter() - t0, 2)
    _emit(f"loaded {len(ws.images)} images ({size} px) and the EHR splits in {load_seconds:.1f} s")
    state = RunState(run_dir)
    state.manifest = {
        "kind": RUN_KIND,
        "code_version": code_version(),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "benchmark": {
            "uri": str(benchmark),
            "name": bench.name,
            "version": bench.version,
            "hash": bench.manifest_hash,
            "source_kind": (bench.manifest.get("source") or {}).get("kind"),
        },
        "seed": config.seed,
        "config": {**asdict(config), "cxr_encoder": encoder, "image_size": size},
        "torch": {"version": torch.__version__, "threads": torch.get_num_threads(), "jobs": jobs},
        "models": order,
        "preprocessing": ws.preprocessing(),
        "timings": {"load_seconds": load_seconds},
        "tasks": {},
    }
    state.save()
    cxr_init: StateDict | None = None
    if pretrain:
        # The radiology CXR model comes first: it initialises the other tasks' encoders.
        names = order if "radiology" in tasks else ["cxr"]
        role = "baseline" if "radiology" in tasks else "pretraining"
        trained = _train_task(
            ws,
            "radiology",
            names,
            config,
            encoder,
            state,
            cxr_init=None,
            progress=progress,
            role=role,
        )
        cxr_init = copy.deepcopy(trained["cxr"].cxr.state_dict())  # type: ignore[union-attr]
    if parallel:
        _train_parallel(
            benchmark,
            rest,
            order,
            config,
            encoder,
            size,
            ws.preprocessing(),
            cxr_init,
            state,
            jobs=jobs,
        )
    else:
        for task in rest:
            _train_task(
                ws, task, order, config, encoder, state, cxr_init=cxr_init, progress=progress
            )
    state.manifest["timings"]["total_seconds"] = round(time.perf_counter() - t_start, 2)
    state.save()
    return state.manifest


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
        _emit(
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
        sets = bench.scenarios(task) if units["cxr_dicom_id"].notna().any() else None
        bs = 2 * (cfg["stay_batch_size"] if test.carry else cfg["batch_size"])
        for name in manifest["tasks"][task]:
            model = load_checkpoint(checkpoint_path(run, task, name))
            df = predict_scenarios(
                model, test, units, sets, ehr=ws.ehr["test"], images=ws.images, batch_size=bs
            )
            written.append(write_predictions(df, predictions_path(run, task, name)))
            _emit(f"{task} {name}: wrote {written[-1].relative_to(run)}")
    return written
