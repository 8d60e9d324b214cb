"""Show that notes add to the other inputs on a synthetic suite benchmark (Yu et al.: EHR
and images; MEDFuse: lab tests): train the suite's reference baselines, score them with the
scoring engine, and print per task the paired difference between all modalities and all but
the notes (notes withheld from every paired test unit) with its 95% bootstrap CI.

    python scripts/check_notes_signal.py [--suite yu2025|medfuse] [--scale demo] [--seed 42]
        [--work DIR]

Exits 1 unless, on each task, at least one fusion model (modular, late, early) has that
difference's CI above 0. Reads the credentialed test labels through the scoring engine, so
run it where they are.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmark_data.benchmark import Benchmark
    from benchmark_data.synth.medfuse import generate_medfuse
    from benchmark_data.synth.yu import generate_yu
    from scoring.baselines.suites import notes_add, score_run, train_suite_baselines

    generators = {"yu2025": generate_yu, "medfuse": generate_medfuse}

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="yu2025", choices=list(generators))
    parser.add_argument("--scale", default="demo", choices=["demo", "paper"])
    parser.add_argument("--seed", type=int, default=42, help="the benchmark's seed")
    parser.add_argument("--model-seed", type=int, default=42)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--work", help="folder for the benchmark and the run (default: a temporary one)")  # fmt: skip
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        bench = work / "benchmark"
        generators[args.suite](bench, scale=args.scale, seed=args.seed)
        train_suite_baselines(str(bench), work / "baselines", seed=args.model_seed)
        table, reports = score_run(work / "baselines", replicates=args.replicates)
        suite = Benchmark.open(bench).suite
    print(table)
    found = notes_add(reports, suite)
    print()
    for task, models in found.items():
        print(f"{task}: notes add with a CI above 0 for {', '.join(models) or 'no fusion model'}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0 if all(found.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
