"""Command line for operators: ``python -m leaderboard.containers {inspect,run,cleanup}``.

inspect ARCHIVE                        the upload checks, as a submitter would see them
run ARCHIVE --benchmark DIR --task T --work DIR [--scenario S ...]
                                       every scenario, with timings and overhead
cleanup --max-age SECONDS              remove leftovers of runs older than that, and any
                                       run's container past its deadline
watchdog [--interval S] [--heartbeat FILE]
                                       remove runs' containers past their deadline, every
                                       S seconds, until stopped (SIGTERM or SIGINT)
stream-baselines --run DIR --benchmark DIR [--task T ...] [--model M ...] [--jobs N]
                                       the reference baselines of a training run, through the
                                       streaming gateway in every scenario (RUN/stream/)
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from benchmark_data import Benchmark, BenchmarkError
from benchmark_data.tasks import DEFAULT_SCENARIO
from leaderboard.containers.archive import ImageArchiveError, inspect_image_archive
from leaderboard.containers.baselines import StreamFailed, stream_baselines
from leaderboard.containers.engine import EngineError, cleanup_stale, watch_deadlines
from leaderboard.containers.inputs import container_scenarios, prepare_inputs
from leaderboard.containers.limits import DEFAULT_LIMITS
from leaderboard.containers.runner import run_all_scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leaderboard.containers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="check an image archive as an upload")
    p.add_argument("archive")
    p = sub.add_parser("prepare-inputs", help="build the /input tree of a task and scenario")
    p.add_argument("benchmark", help="benchmark directory (the public export is enough)")
    p.add_argument("--task", required=True)
    p.add_argument("--scenario", default=DEFAULT_SCENARIO)
    p.add_argument("--out", required=True)
    p = sub.add_parser("run", help="run an image archive in every scenario of a task")
    p.add_argument("archive")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--work", required=True, help="work directory (inputs and predictions)")
    p.add_argument("--scenario", action="append", help="repeat to choose scenarios")
    p.add_argument("--wall-time", type=float, default=DEFAULT_LIMITS.wall_time)
    p.add_argument("--show-logs", action="store_true", help="print each run's log tail")
    p.add_argument("--stream", action="store_true",
                   help="run through the streaming gateway (no /input; needs the whole test split)")  # fmt: skip
    p = sub.add_parser("stream-baselines",
                       help="run a baselines run's models through the streaming gateway")  # fmt: skip
    p.add_argument("--run", required=True, help="baselines run directory")
    p.add_argument("--benchmark", required=True, help="the benchmark it was trained on")
    p.add_argument("--task", action="append", help="repeat to choose tasks (default: all)")
    p.add_argument("--model", action="append", help="repeat to choose models (default: all)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time")
    p.add_argument(
        "--threads", type=int, help="torch threads of each model (default: the cores / jobs)"
    )
    p = sub.add_parser("cleanup", help="remove leftovers of runs older than --max-age")
    p.add_argument("--max-age", type=float, required=True, help="seconds")
    p = sub.add_parser("watchdog", help="remove runs' containers past their deadline, in a loop")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between rounds")
    p.add_argument("--heartbeat", help="file touched after each round (for a health check)")
    args = parser.parse_args(argv)
    try:
        if args.command == "inspect":
            print(json.dumps(inspect_image_archive(args.archive).summary(), indent=1))
        elif args.command == "prepare-inputs":
            root = prepare_inputs(
                Benchmark.open(args.benchmark), args.task, args.scenario, args.out
            )
            print(f"wrote the /input tree of {args.task}, scenario {args.scenario}, to {root}")
        elif args.command == "run":
            bench = Benchmark.open(args.benchmark)
            run = run_all_scenarios(
                args.archive,
                benchmark=bench,
                task=args.task,
                work_dir=args.work,
                scenarios=tuple(args.scenario or container_scenarios(bench)),
                limits=DEFAULT_LIMITS.with_(wall_time=args.wall_time),
                mode="stream" if args.stream else "batch",
            )
            print(json.dumps(run.summary(), indent=1, default=str))
            if args.show_logs:
                for scenario, result in run.results.items():
                    print(f"--- log of {scenario} ---\n{result.log_tail}")
            return 0 if run.ok else 1
        elif args.command == "stream-baselines":
            record = stream_baselines(
                args.run,
                Benchmark.open(args.benchmark),
                tasks=args.task,
                models=args.model,
                jobs=args.jobs,
                threads=args.threads,
            )
            n = sum(len(m) for m in record["runs"].values())
            print(f"streamed {n} baseline models; predictions in {args.run}/stream/")
        elif args.command == "cleanup":
            report = cleanup_stale(args.max_age)
            print(json.dumps(report.__dict__, indent=1))
            return 1 if report.errors else 0
        elif args.command == "watchdog":
            _watchdog(args.interval, args.heartbeat)
    except ImageArchiveError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    except StreamFailed as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (BenchmarkError, ValueError, KeyError, FileExistsError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    return 0


def _watchdog(interval: float, heartbeat: str | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if interval <= 0:
        raise ValueError(f"--interval must be a positive number of seconds, not {interval:g}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    beat = Path(heartbeat) if heartbeat else None

    def on_round(report: object) -> None:
        if beat is not None:
            beat.touch()

    logging.info("deadline watchdog: checking every %g s", interval)
    watch_deadlines(interval=interval, stop=stop, on_round=on_round)


if __name__ == "__main__":
    sys.exit(main())
