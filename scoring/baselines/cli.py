"""Command line of the reference baselines.

::

    python -m scoring.baselines train --benchmark DIR --task TASK|all --models all|m1,m2 \\
        --out DIR [--seed N] [--epochs N] [--max-minutes M]
    python -m scoring.baselines train-model --benchmark DIR --run DIR --task TASK --model MODEL
    python -m scoring.baselines sweep --benchmark DIR --out DIR --models m1,m2 \\
        [--rates 0.1,0.3,0.5,0.7,0.9] [--tasks TASK,...] [--threads N]
    python -m scoring.baselines predict --benchmark DIR --run DIR
    python -m scoring.baselines scores --run DIR [--benchmark DIR] [--replicates N]
    python -m scoring.baselines serve --run DIR --task TASK --model MODEL

``serve`` answers the streaming gateway (protocol ``medmod-stream``) on stdin/stdout or the
socket in ``MEDMOD_GATEWAY``; ``python -m leaderboard.containers stream-baselines`` runs
every model of a run that way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchmark_data.benchmark import BenchmarkError
from benchmark_data.tasks import TASK_SLUGS


def _list(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    if value == "all":
        return list(allowed)
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(bad)}; choose all or from: {', '.join(allowed)}"
        )
    return items


def _parser() -> argparse.ArgumentParser:
    from scoring.baselines.models import MODEL_NAMES
    from scoring.baselines.run import RunConfig

    d = RunConfig()
    parser = argparse.ArgumentParser(
        prog="python -m scoring.baselines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train baselines, save checkpoints, write predictions")
    p.add_argument("--benchmark", required=True, help="benchmark directory or s3:// URI")
    p.add_argument(
        "--task",
        default="all",
        help=f"all, or tasks of the benchmark's suite (MedMod: {', '.join(TASK_SLUGS)})",
    )
    p.add_argument(
        "--models", default="all", help=f"all or a comma list of {', '.join(MODEL_NAMES)}"
    )
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--epochs", type=int, default=d.epochs, help="maximum epochs per model")
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="training time limit per model and task (minutes)",
    )
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument(
        "--lr-pretrained",
        type=float,
        default=d.lr_pretrained,
        help="learning rate of encoders that start from a trained model",
    )
    p.add_argument("--ehr-hidden", type=int, default=d.ehr_hidden)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument(
        "--cxr-encoder",
        choices=["auto", "small", "resnet34"],
        default=d.cxr_encoder,
        help="auto: small on a synthetic benchmark, resnet34 otherwise",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="input side in pixels (default 64 for small, 224 for resnet34)",
    )
    p.add_argument(
        "--max-hours",
        type=int,
        default=d.max_hours,
        help="phenotyping: use the last N hours of the stay",
    )
    p.add_argument(
        "--epoch-steps",
        type=int,
        default=d.epoch_steps,
        help="EHR rows per training epoch (a seeded sample of sequences); 0: all",
    )
    p.add_argument(
        "--hourly-row-fraction",
        type=float,
        default=d.hourly_row_fraction,
        help="share of each stay's hourly rows in the training loss (hourly tasks)",
    )
    p.add_argument(
        "--cxr-pretrain",
        choices=["radiology", "none"],
        default=d.cxr_pretrain,
        help="initialise the CXR encoders of the other tasks from the radiology CXR model",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="units per batch")
    p.add_argument(
        "--stay-batch-size",
        type=int,
        default=d.stay_batch_size,
        help="stays per batch (hourly tasks and radiology)",
    )
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="train the tasks in this many processes, one thread each (same results)",
    )
    p.add_argument("--no-predict", action="store_true", help=argparse.SUPPRESS)

    p = sub.add_parser(
        "train-model",
        help="train one model of one task into a run that others fill at the same time",
        description="Train one model of one task into RUN (started with the defaults and "
        "--seed when new; an existing run's own settings otherwise). The models it builds on "
        "must be in RUN already: a fusion model needs its task's ehr and cxr models, a cxr "
        "model needs radiology's.",
    )
    p.add_argument("--benchmark", required=True)
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--task", required=True, choices=TASK_SLUGS)
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument("--seed", type=int, default=d.seed, help="seed of a new run")

    p = sub.add_parser(
        "sweep",
        help="training-time missingness: one run per share of training images withheld",
        description="Train the models once per rate into OUT/rate-R.RR, each run withholding "
        "the chest X-rays of that share of the training and validation stays that have one "
        "(nested seeded draws; the test split keeps every image), and write OUT/sweep.json. "
        "Rates already trained in OUT are kept; OUT made with other settings is refused.",
    )
    p.add_argument("--benchmark", required=True)
    p.add_argument("--out", required=True, help="sweep directory")
    p.add_argument(
        "--models", required=True, help=f"a comma list of {', '.join(MODEL_NAMES)} (or all)"
    )
    p.add_argument("--rates", default="0.1,0.3,0.5,0.7,0.9", help="comma list of shares in (0, 1)")
    p.add_argument(
        "--tasks", default="in-hospital-mortality", help="comma list of task slugs, or all"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--epochs", type=int, default=d.epochs, help="maximum epochs per model")
    p.add_argument(
        "--max-minutes", type=float, default=None, help="training time limit per model and task"
    )
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument("--jobs", type=int, default=1, help="train a rate's tasks in N processes")

    p = sub.add_parser("predict", help="re-write a run's prediction files from its checkpoints")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--task", default="all")
    p.add_argument("--threads", type=int, default=d.threads)

    p = sub.add_parser("serve", help="answer the streaming gateway with one trained model")
    p.add_argument("--run", required=True)
    p.add_argument("--task", required=True, choices=TASK_SLUGS)
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=1)

    p = sub.add_parser("scores", help="table of a run's results (test scores when available)")
    p.add_argument("--run", required=True)
    p.add_argument("--task", default="all", help="all, or a comma list of the run's tasks")
    p.add_argument("--benchmark", help="benchmark location (default: the run's)")
    p.add_argument("--replicates", type=int, default=1000)
    p.add_argument(
        "--source",
        choices=["auto", "predictions", "stream"],
        default="auto",
        help="score the files made from the test files or those streamed through the gateway "
        "(auto: streamed when the run has them)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch

    from scoring.baselines import artifacts
    from scoring.baselines import run as runs

    try:
        if args.command in ("train", "predict"):
            torch.set_num_threads(args.threads)
        if args.command == "train" and _suite_of(args.benchmark) != "medmod":
            _train_suite(args)
        elif args.command == "train":
            tasks = _list(args.task, TASK_SLUGS, "task")
            from scoring.baselines.models import MODEL_NAMES

            models = _list(args.models, MODEL_NAMES, "model")
            config = runs.RunConfig(
                seed=args.seed,
                epochs=args.epochs,
                patience=args.patience,
                lr=args.lr,
                lr_pretrained=args.lr_pretrained,
                ehr_hidden=args.ehr_hidden,
                dropout=args.dropout,
                cxr_encoder=args.cxr_encoder,
                image_size=args.image_size,
                max_hours=args.max_hours,
                epoch_steps=args.epoch_steps or None,
                hourly_row_fraction=args.hourly_row_fraction,
                cxr_pretrain=args.cxr_pretrain,
                batch_size=args.batch_size,
                stay_batch_size=args.stay_batch_size,
                max_minutes=args.max_minutes,
                threads=args.threads,
            )
            manifest = runs.train_run(
                args.benchmark,
                tasks=tasks,
                models=models,
                out=args.out,
                config=config,
                progress=sys.stderr.isatty(),
                workers=args.jobs,
            )
            from scoring.baselines.scores import timing_table, validation_table

            print(validation_table(manifest))
            print()
            print(timing_table(manifest))
        elif args.command == "sweep":
            _sweep(args)
        elif args.command == "train-model":
            entry = runs.train_model(
                args.benchmark,
                run_dir=args.run,
                task=args.task,
                model=args.model,
                config=runs.RunConfig(seed=args.seed),
            )
            print(f"{args.task} {args.model}: selected epoch {entry['best_epoch']}, "
                  f"trained in {entry['train_seconds']:.1f} s")  # fmt: skip
        elif args.command == "predict":
            only = None if args.task == "all" else _list(args.task, TASK_SLUGS, "task")
            written = artifacts.predict_run(args.benchmark, run_dir=args.run, tasks=only)
            print(f"wrote {len(written)} prediction files")
        elif args.command == "scores":
            _scores(args)
        elif args.command == "serve":
            from scoring.baselines.stream import serve

            return serve(args.run, args.task, args.model, threads=args.threads)
    except (argparse.ArgumentTypeError, BenchmarkError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _sweep(args: argparse.Namespace) -> None:
    from scoring.baselines.models import MODEL_NAMES
    from scoring.baselines.run import RunConfig
    from scoring.baselines.sweep import parse_rates, train_sweep

    rates = parse_rates(args.rates)
    models = _list(args.models, MODEL_NAMES, "model")
    tasks = _list(args.tasks, TASK_SLUGS, "task")
    if _suite_of(args.benchmark) != "medmod":
        raise ValueError("the training-missingness sweep trains MedMod's reference models only")
    config = RunConfig(
        seed=args.seed, epochs=args.epochs, max_minutes=args.max_minutes, threads=args.threads
    )
    index = train_sweep(
        args.benchmark,
        out=args.out,
        tasks=tasks,
        models=models,
        rates=rates,
        config=config,
        workers=args.jobs,
        progress=sys.stderr.isatty(),
    )
    for run in index["runs"]:
        print(f"rate {run['rate']:.2f}: {run['dir']} ({run['status']}, {run['seconds']:.0f} s)")
    print(f"wrote {Path(args.out) / 'sweep.json'}")


def _suite_of(benchmark: str) -> str:
    from benchmark_data.benchmark import Benchmark

    return Benchmark.open(benchmark).suite.slug


def _train_suite(args: argparse.Namespace) -> None:
    """A suite beyond MedMod: its reference baselines (scoring.baselines.suites)."""
    from benchmark_data.benchmark import Benchmark
    from scoring.baselines import suites

    suite = Benchmark.open(args.benchmark).suite
    manifest = suites.train_suite_baselines(
        args.benchmark,
        args.out,
        tasks=_list(args.task, suite.task_slugs, "task"),
        models=_list(args.models, suites.suite_models(suite), "model"),
        seed=args.seed,
    )
    print(f"{suite.slug}: {len(manifest['models'])} models on {len(manifest['tasks'])} tasks "
          f"in {manifest['timings']['total_seconds']:.0f} s; run `python -m scoring.baselines "
          f"scores --run {args.out}` for the test table")  # fmt: skip


def _run_benchmark(given: str | None, run: dict[str, Any]) -> Any:
    """The benchmark named on the command line, or else the one the run recorded (as it was
    given when the run was trained, so a relative location is relative to where that was)."""
    from benchmark_data.benchmark import Benchmark

    if given:
        return Benchmark.open(given)
    recorded = str(run["benchmark"]["uri"])
    try:
        return Benchmark.open(recorded)
    except BenchmarkError as exc:
        raise BenchmarkError(
            f"{exc} (the benchmark location this run recorded when it was trained; give "
            "--benchmark DIR to name it from here)"
        ) from None


def _scores(args: argparse.Namespace) -> None:
    import scoring
    from scoring.baselines import suites
    from scoring.baselines.artifacts import read_manifest
    from scoring.baselines.scores import (
        SCORES_MD,
        fusion_table,
        stream_difference_table,
        test_table,
        timing_table,
        validation_table,
    )

    run_dir = Path(args.run)
    if suites.is_suite_run(run := suites.read_run(run_dir)):
        bench = _run_benchmark(args.benchmark, run)
        table, _ = suites.score_run(run_dir, bench, replicates=args.replicates)
        print(table)
        (run_dir / SCORES_MD).write_text("# Baselines run results\n\n" + table + "\n")
        return
    manifest = read_manifest(run_dir)
    chosen = _list(args.task, tuple(manifest["tasks"]), "task of this run")
    manifest = {**manifest, "tasks": {t: manifest["tasks"][t] for t in chosen}}
    parts = [validation_table(manifest), timing_table(manifest)]
    source = args.source
    streamed = (run_dir / "stream.json").is_file()
    if source == "auto":
        source = "stream" if streamed else "predictions"
    if hasattr(scoring, "score_predictions"):
        bench = _run_benchmark(args.benchmark, manifest)
        table, reports = test_table(
            manifest, run_dir, bench, replicates=args.replicates, source=source
        )
        missing = fusion_table(reports, scenario="cxr_missing_100")
        parts[:0] = [table, fusion_table(reports), missing]
        if streamed:
            parts.insert(2, stream_difference_table(manifest, run_dir))
    else:
        parts.append(
            "Test scores: the scoring engine is not available in this installation "
            "(scoring.score_predictions); validation metrics only."
        )
    text = "\n\n".join(parts) + "\n"
    print(text)
    (run_dir / SCORES_MD).write_text("# Baselines run results\n\n" + text)
