"""A baselines run: train the models of each task, save them, predict the test split.

The run directory is described in :mod:`scoring.baselines.artifacts`. The manifest records
the code version, seed, hyperparameters, the benchmark's name, version and manifest hash,
the normalisation statistics, and per task and model the selected epoch, validation
metrics and timings. The same seed, settings and thread count give the same predictions
(``torch.use_deterministic_algorithms``; every random stream is seeded from the run seed,
the task and the model), unless a time limit cuts training short.
"""

from __future__ import annotations

import copy
import multiprocessing
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from benchmark_data.benchmark import Benchmark
from benchmark_data.tasks import get_task
from scoring.baselines.artifacts import (
    RUN_KIND,
    RUN_MANIFEST,
    TRAIN_LOG,
    RunState,
    batch_size,
    checkpoint_path,
    emit,
    model_from_settings,
    predictions_path,
    run_header,
    save_checkpoint,
)
from scoring.baselines.data import check_missing_rate
from scoring.baselines.models import (
    MODEL_NAMES,
    STARTS_FROM_UNIMODAL,
    UNIMODAL,
    Baseline,
    build_model,
    cxr_of,
)
from scoring.baselines.predict import predict_scenarios, write_predictions
from scoring.baselines.training import FitOptions, evaluate, fit
from scoring.baselines.workspace import Workspace, resolve_encoder, resolve_image_size
from scoring.run_files import read_json, run_lock, write_json


@dataclass(frozen=True)
class RunConfig:
    """Hyperparameters of a run (recorded in the manifest)."""

    seed: int = 42
    epochs: int = 15
    patience: int = 3
    lr: float = 1e-3  # parameters trained from scratch
    lr_pretrained: float = 1e-4  # encoders that start from a trained model
    ehr_hidden: int = 256
    dropout: float = 0.3
    cxr_encoder: str = "auto"
    image_size: int | None = None
    max_hours: int = 96
    epoch_steps: int | None = 20000
    hourly_row_fraction: float = 0.25
    cxr_pretrain: str = "radiology"
    batch_size: int = 32
    stay_batch_size: int = 16
    cxr_stay_batch_size: int = 4
    max_minutes: float | None = None
    threads: int = 1
    # Training-time missingness (CareBench's protocol): the share of the training and
    # validation stays with an image whose images the run withholds; the test split keeps
    # every image (Workspace.load, scoring.baselines.data.withheld_stays).
    train_cxr_missing: float = 0.0

    def __post_init__(self) -> None:
        check_missing_rate(self.train_cxr_missing)


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


def _report(state: RunState, task: str, name: str) -> Callable[[dict[str, Any]], None]:
    metric = get_task(task).primary_metric

    def report(rec: dict[str, Any]) -> None:
        state.log({"task": task, "model": name, **rec})
        emit(
            f"{task} {name}: epoch {rec['epoch']} loss {rec['train_loss']:.4f} "
            f"val {metric} {rec['val_metric']:.4f} (paired units {rec['val_metric_paired']:.4f}, "
            f"all {rec['val_metric_all']:.4f}; "
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
    sets = ws.test_scenarios(task)
    bs = batch_size(asdict(config), stays=train.carry, model=name)
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
        cxr_of(model).load_state_dict(cxr_init)
    report = _report(state, task, name)
    entry: dict[str, Any] = {"role": role, "seed": seed}
    if cxr_init is not None:
        entry["cxr_encoder_from"] = "radiology/cxr"
    if model.trainable:
        # Encoders taken from trained models are fine-tuned at the smaller rate.
        from_trained = cxr_init is not None or (name in STARTS_FROM_UNIMODAL)
        result = fit(
            model,
            train,
            val,
            ehr_train=ws.ehr["train"],
            ehr_val=ws.ehr["val"],
            images=ws.images,
            options=FitOptions(
                lr=config.lr,
                lr_pretrained=config.lr_pretrained if from_trained else None,
                epochs=config.epochs,
                patience=config.patience,
                batch_size=bs,
                epoch_steps=config.epoch_steps,
                readout_fraction=config.hourly_row_fraction if get_task(task).hourly else 1.0,
                max_seconds=None if config.max_minutes is None else config.max_minutes * 60,
                seed=seed,
            ),
            report=report,
            progress=progress,
            label=f"{task} {name}",
        )
        best = result.history[result.best_epoch - 1] if result.best_epoch else {}
        entry.update(
            lr=config.lr,
            lr_pretrained=config.lr_pretrained if from_trained else None,
            epochs_run=result.epochs_run,
            best_epoch=result.best_epoch,
            stopped=result.stopped,
            val_metric=best.get("val_metric"),
            val_metric_paired=best.get("val_metric_paired"),
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
    pred = write_predictions(
        ws.scored_predictions(task, df), predictions_path(state.run_dir, task, name)
    )
    entry["predict_seconds"] = round(time.perf_counter() - t1, 2)
    entry["cpu_seconds"] = round(time.process_time() - c0, 2)
    entry["checkpoint"] = str(ckpt.relative_to(state.run_dir))
    entry["predictions"] = str(pred.relative_to(state.run_dir))
    state.manifest["tasks"].setdefault(task, {})[name] = entry
    state.save()
    val_metric = entry.get("val_metric")
    emit(
        f"{task} {name}: selected epoch {entry['best_epoch']}, val "
        f"{get_task(task).primary_metric} {_num(val_metric)}; trained in "
        f"{entry['train_seconds']:.1f} s, predicted in {entry['predict_seconds']:.1f} s"
    )
    return model


def _num(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.4f}"


StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TaskJob:
    """Models to train for one task: ``names`` in order, on top of the already trained
    ``done`` (name -> checkpoint contents); the CXR model starts from ``cxr_init``."""

    task: str
    names: tuple[str, ...]
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    cxr_init: StateDict | None = None
    role: str = "baseline"


def _train_task(
    ws: Workspace,
    job: TaskJob,
    config: RunConfig,
    encoder: str,
    state: RunState,
    *,
    progress: bool,
) -> dict[str, Baseline]:
    trained: dict[str, Baseline] = {}
    for name, ckpt in job.done.items():
        trained[name] = model_from_settings(ckpt["settings"])
        trained[name].load_state_dict(ckpt["state_dict"])
    for name in job.names:
        trained[name] = _train_one(
            ws,
            job.task,
            name,
            config,
            encoder,
            state,
            trained=trained,
            cxr_init=job.cxr_init if name == "cxr" else None,
            progress=progress,
            role=job.role,
        )
    return trained


def _task_worker(
    benchmark: str,
    job: TaskJob,
    config: RunConfig,
    encoder: str,
    size: int,
    preprocessing: dict[str, Any],
    run_dir: Path,
) -> dict[str, Any]:
    """Train one task in a worker process; returns its manifest entries."""
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    ws = Workspace.load(
        Benchmark.open(benchmark),
        [job.task],
        image_size=size,
        max_hours=config.max_hours,
        preprocessing=preprocessing,
        train_cxr_missing=config.train_cxr_missing,
        seed=config.seed,
    )
    state = RunState(run_dir, {"tasks": {}}, log_name=f"{TRAIN_LOG}.{job.task}", persist=False)
    _train_task(ws, job, config, encoder, state, progress=False)
    entries: dict[str, Any] = state.manifest["tasks"].get(job.task, {})
    return entries


def _train_parallel(
    benchmark: str | Path,
    jobs: list[TaskJob],
    config: RunConfig,
    encoder: str,
    size: int,
    state: RunState,
    *,
    workers: int,
    preprocessing: dict[str, Any],
) -> None:
    """Train tasks in ``workers`` processes (one thread each by default). The results are
    those of training them one after the other: a task depends only on the seed and the
    models it is given."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [
            pool.submit(
                _task_worker,
                str(benchmark),
                job,
                config,
                encoder,
                size,
                preprocessing,
                state.run_dir,
            )
            for job in jobs
        ]
        for job, fut in zip(jobs, futures, strict=True):
            state.manifest["tasks"].setdefault(job.task, {}).update(fut.result())
            state.save()
    with (state.run_dir / TRAIN_LOG).open("a") as log:
        for job in jobs:
            part = state.run_dir / f"{TRAIN_LOG}.{job.task}"
            if part.exists():
                log.write(part.read_text())
                part.unlink()


def _checkpoint(model: Baseline, settings: dict[str, Any]) -> dict[str, Any]:
    return {"settings": settings, "state_dict": copy.deepcopy(model.state_dict())}


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
    workers: int = 1,
) -> dict[str, Any]:
    """Train every requested model on every requested task and predict the test splits.

    With ``workers`` > 1 the tasks are trained in that many processes, after the radiology
    CXR model."""
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
    n_jobs = len(rest) + (1 if pretrain and "radiology" in tasks else 0)
    parallel = workers > 1 and n_jobs > 1
    # This process trains the radiology CXR model (which initialises the other tasks' image
    # encoders) and, unless they go to worker processes, the other models and tasks too.
    load_tasks = (["radiology"] if pretrain else []) + ([] if parallel else rest)
    encoder = resolve_encoder(bench, config.cxr_encoder)
    size = resolve_image_size(encoder, config.image_size)
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / TRAIN_LOG).unlink(missing_ok=True)
    emit(f"loading {bench.name} {bench.version}: tasks {', '.join(load_tasks) or 'none'}")
    t0 = time.perf_counter()
    ws = Workspace.load(
        bench,
        load_tasks,
        image_size=size,
        max_hours=config.max_hours,
        train_cxr_missing=config.train_cxr_missing,
        seed=config.seed,
    )
    load_seconds = round(time.perf_counter() - t0, 2)
    emit(f"loaded {len(ws.images)} images ({size} px) and the EHR splits in {load_seconds:.1f} s")
    state = RunState(run_dir)
    state.manifest = {
        **run_header(RUN_KIND, str(benchmark), bench),
        "seed": config.seed,
        "config": {**asdict(config), "cxr_encoder": encoder, "image_size": size},
        "torch": {
            "version": torch.__version__,
            "threads": torch.get_num_threads(),
            "workers": workers,
        },
        "models": order,
        "preprocessing": ws.preprocessing(),
        "train_missing": {"rate": config.train_cxr_missing, **ws.missingness()},
        "timings": {"load_seconds": load_seconds},
        "tasks": {},
    }
    state.save()
    jobs: list[TaskJob] = []
    cxr_init: StateDict | None = None
    if pretrain:
        # The radiology CXR model comes first: it initialises the other tasks' encoders.
        role = "baseline" if "radiology" in tasks else "pretraining"
        rad = TaskJob("radiology", ("cxr",), role=role)
        cxr = _train_task(ws, rad, config, encoder, state, progress=progress)["cxr"]
        cxr_init = copy.deepcopy(cxr_of(cxr).state_dict())
        if "radiology" in tasks:
            done = {"cxr": _checkpoint(cxr, _settings(config, "radiology", "cxr", encoder))}
            jobs.append(TaskJob("radiology", tuple(n for n in order if n != "cxr"), done))
    jobs += [TaskJob(t, tuple(order), cxr_init=cxr_init) for t in rest]
    if parallel:
        _train_parallel(
            benchmark,
            jobs,
            config,
            encoder,
            size,
            state,
            workers=workers,
            preprocessing=ws.preprocessing(),
        )
    else:
        for job in jobs:
            _train_task(ws, job, config, encoder, state, progress=progress)
    state.manifest["timings"]["total_seconds"] = round(time.perf_counter() - t_start, 2)
    state.save()
    return state.manifest


def model_needs(task: str, model: str, *, pretrain: bool) -> list[tuple[str, str]]:
    """The trained models (task, model) that ``model`` of ``task`` builds on: a fusion model
    on its task's two unimodal models; a CXR model on the radiology CXR model that
    initialises its encoder (``cxr_pretrain="radiology"``)."""
    needs: list[tuple[str, str]] = []
    if model == "cxr" and pretrain and task != "radiology":
        needs.append(("radiology", "cxr"))
    if model not in UNIMODAL:
        needs += [(task, m) for m in UNIMODAL]
    return needs


def _start_run(
    run_dir: Path, benchmark: str | Path, bench: Benchmark, config: RunConfig, models: list[str]
) -> dict[str, Any]:
    """The manifest of a new run filled one model at a time: the header, the settings and
    the normalisation fitted on the training split (which no task changes)."""
    encoder = resolve_encoder(bench, config.cxr_encoder)
    size = resolve_image_size(encoder, config.image_size)
    ws = Workspace.load(
        bench,
        [],
        image_size=size,
        max_hours=config.max_hours,
        train_cxr_missing=config.train_cxr_missing,
        seed=config.seed,
    )
    return {
        **run_header(RUN_KIND, str(benchmark), bench),
        "seed": config.seed,
        "config": {**asdict(config), "cxr_encoder": encoder, "image_size": size},
        "torch": {"version": torch.__version__, "threads": config.threads, "workers": 1},
        "models": resolve_models(models),
        "preprocessing": ws.preprocessing(),
        "train_missing": {"rate": config.train_cxr_missing, **ws.missingness()},
        "timings": {},
        "tasks": {},
    }


def train_model(
    benchmark: str | Path,
    *,
    run_dir: str | Path,
    task: str,
    model: str,
    config: RunConfig | None = None,
    models: list[str] | None = None,
    role: str = "baseline",
) -> dict[str, Any]:
    """Train one model of one task into a run directory, which may be filled by other
    processes at the same time: its checkpoint, prediction file and manifest entry.

    The run is started on first use with ``config`` (and ``models``, the run's planned
    models); later calls take the run's own settings, so every model of a run is trained
    alike. The models it builds on (:func:`model_needs`) must be in the run already. The
    results are those of ``train_run``: a model depends only on the seed, the run's
    normalisation and the models it is given."""
    bench = Benchmark.open(benchmark)
    get_task(task)
    run = Path(run_dir)
    with run_lock(run):
        manifest = read_json(run / RUN_MANIFEST)
        if not manifest:
            manifest = _start_run(
                run, benchmark, bench, config or RunConfig(), models or list(MODEL_NAMES)
            )
            write_json(run / RUN_MANIFEST, manifest)
    if manifest.get("kind") != RUN_KIND:
        raise ValueError(f"{run / RUN_MANIFEST} is not a baselines run manifest")
    if manifest["benchmark"]["hash"] != bench.manifest_hash:
        raise ValueError(
            f"{run} was started on benchmark {manifest['benchmark']['hash'][:12]}, not on "
            f"{bench.manifest_hash[:12]}: use another run directory"
        )
    known = {f.name for f in fields(RunConfig)}
    cfg = RunConfig(**{k: v for k, v in manifest["config"].items() if k in known})
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    needs = model_needs(task, model, pretrain=cfg.cxr_pretrain == "radiology")
    missing = [
        f"{t}/{m}"
        for t, m in needs
        if m not in manifest["tasks"].get(t, {}) or not checkpoint_path(run, t, m).is_file()
    ]
    if missing:
        raise ValueError(
            f"{task}/{model} builds on {', '.join(missing)}, which {run} does not hold yet: "
            "train those first"
        )
    ws = Workspace.load(
        bench,
        [task],
        image_size=int(cfg.image_size or 0),
        max_hours=cfg.max_hours,
        preprocessing=manifest["preprocessing"],
        train_cxr_missing=cfg.train_cxr_missing,
        seed=cfg.seed,
    )
    trained: dict[str, Baseline] = {}
    cxr_init: StateDict | None = None
    for t, m in needs:
        ckpt = torch.load(checkpoint_path(run, t, m), map_location="cpu", weights_only=True)
        dep = model_from_settings(ckpt["settings"])
        dep.load_state_dict(ckpt["state_dict"])
        if t == task:
            trained[m] = dep
        else:  # the radiology CXR model: its encoder starts this task's
            cxr_init = copy.deepcopy(cxr_of(dep).state_dict())
    log_name = f"{TRAIN_LOG}.{task}.{model}"
    state = RunState(run, {"tasks": {}}, log_name=log_name, persist=False)
    _train_one(
        ws,
        task,
        model,
        cfg,
        str(cfg.cxr_encoder),
        state,
        trained=trained,
        cxr_init=cxr_init,
        progress=False,
        role=role,
    )
    entry = state.manifest["tasks"][task][model]
    with run_lock(run):
        manifest = read_json(run / RUN_MANIFEST)
        manifest["tasks"].setdefault(task, {})[model] = entry
        write_json(run / RUN_MANIFEST, manifest)
        part = run / log_name
        if part.exists():
            with (run / TRAIN_LOG).open("a") as log:
                log.write(part.read_text())
            part.unlink()
    return entry
