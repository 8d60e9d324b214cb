"""``python -m scoring score``: score a prediction file from the command line;
``python -m scoring validate``: check a test prediction file against the public part
(the downloaded archive, unpacked) before submitting it.

Exit 0 with the report (stdout or --out), or with the check's summary; exit 2 with a clear
message on stderr (no traceback) for bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from benchmark_data.benchmark import Benchmark, BenchmarkError
from benchmark_data.store import StoreError
from benchmark_data.suite import BUILTIN_SUITES, Suite, builtin_suite, load_suite
from benchmark_data.tasks import TASKS
from scoring.errors import ScoringInputError
from scoring.report import report_json, score_predictions
from scoring.report_types import ScoreReport
from scoring.truth import TruthError, truth_from_benchmark, truth_from_csv, units_for_validation
from scoring.validation import read_predictions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scoring", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("score", help="score a prediction file")
    p.add_argument(
        "--task", required=True, help=f"a task of the suite (MedMod: {', '.join(TASKS)})"
    )
    p.add_argument(
        "--suite",
        default="medmod",
        help="with --truth: a suite shipped with the platform (medmod, yu2025, medfuse) or the "
        "path of a benchmark's public/suite.json (with --benchmark: the benchmark's own)",
    )
    p.add_argument("--predictions", required=True, help="prediction CSV (optionally .gz)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--benchmark", help="benchmark directory or s3:// URI (test labels)")
    src.add_argument("--truth", help="labels CSV you hold, e.g. your validation split")
    p.add_argument("--credentialed", help="separate location of the benchmark's credentialed part")
    p.add_argument("--replicates", type=int, default=1000)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--threshold", type=float, default=None, help="decision threshold (default: the task's)"
    )
    p.add_argument("--out", help="write the report here instead of stdout")
    p.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    p = sub.add_parser(
        "validate",
        help="check a test prediction file against the public part, as the platform will",
    )
    p.add_argument("--task", required=True, help="a task of the benchmark's suite")
    p.add_argument(
        "--benchmark",
        required=True,
        help="the public part: the unpacked public archive of the task page (or an export)",
    )
    p.add_argument("--predictions", required=True, help="prediction CSV (optionally .gz)")
    return parser


def _validate(args: argparse.Namespace) -> int:
    """Check a file's form and coverage against the public test units; no labels needed."""
    bench = Benchmark.open(args.benchmark)
    truth = units_for_validation(bench, args.task)
    if not Path(args.predictions).is_file():
        raise ScoringInputError(f"prediction file {args.predictions} does not exist")
    preds = read_predictions(args.predictions, truth=truth)
    scenarios = ", ".join(s for s in truth.scenarios if s in preds.values)
    print(
        f"ok: {args.predictions} is a valid {preds.form} file for {truth.task.slug} on "
        f"{bench.name} {bench.version}: {preds.n_rows} rows, {truth.n} test units; "
        f"scenarios: {scenarios}"
    )
    for warning in preds.warnings:
        print(f"warning: {warning}")
    return 0


class _Bar:
    """A progress bar on a terminal; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=100, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}")

    def __call__(self, msg: str, frac: float) -> None:
        if self.bar is not None:
            self.bar.set_description(msg)
            self.bar.n = int(frac * 100)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary_line(report: ScoreReport) -> str:
    s = report["summary"]
    ci = s["ci"]
    ci_text = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci[0] is not None else "[n/a]"
    value = f"{s['value']:.4f}" if s["value"] is not None else "n/a"
    return f"{report['task']}: {s['primary_metric']} {value} 95% CI {ci_text} ({s['scenario']})"


def _suite(name: str) -> Suite:
    """A shipped suite by slug, or a suite declaration file."""
    if name in BUILTIN_SUITES:
        return builtin_suite(name)
    path = Path(name)
    if not path.is_file():
        raise ValueError(
            f"--suite {name}: neither a shipped suite ({', '.join(BUILTIN_SUITES)}) nor a file"
        )
    return load_suite(path.read_bytes(), name=str(path))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        try:
            return _validate(args)
        except (ScoringInputError, TruthError, BenchmarkError, StoreError, KeyError, ValueError) as exc:  # fmt: skip
            msg = getattr(exc, "message", None) or (exc.args[0] if isinstance(exc, KeyError) else str(exc))  # fmt: skip
            code = getattr(exc, "code", None)
            print(f"error{f' ({code})' if code else ''}: {msg}", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    bar = _Bar(sys.stderr.isatty() and not args.quiet)
    try:
        if args.benchmark:
            bench = Benchmark.open(args.benchmark, credentialed_uri=args.credentialed)
            truth = truth_from_benchmark(bench, args.task)
        else:
            suite = _suite(args.suite)
            truth = truth_from_csv(args.truth, suite.task(args.task), suite=suite)
        if not Path(args.predictions).is_file():
            raise ScoringInputError(f"prediction file {args.predictions} does not exist")
        report = score_predictions(
            args.predictions,
            truth=truth,
            replicates=args.replicates,
            seed=args.seed,
            threshold=args.threshold,
            progress=bar,
        )
    except (ScoringInputError, TruthError, BenchmarkError, StoreError, KeyError, ValueError) as exc:  # fmt: skip
        bar.close()
        msg = getattr(exc, "message", None) or (exc.args[0] if isinstance(exc, KeyError) else str(exc))  # fmt: skip
        print(f"error: {msg}", file=sys.stderr)
        return 2
    bar.close()
    text = report_json(report)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    if not args.quiet:
        print(f"{_summary_line(report)}; {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
