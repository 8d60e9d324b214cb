"""Show that a benchmark carries signal: test AUROC of logistic regressions on the EHR alone,
the chest X-ray alone and both, on the paired test units.

    python scripts/check_signal.py BENCHMARK_DIR

For the synthetic benchmark each modality alone should be clearly above chance and the two
together higher still. Reads the credentialed test labels, so run it where they are.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmark_data import Benchmark
    from benchmark_data.synth.signal import format_table, signal_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", help="benchmark directory or s3:// URI")
    parser.add_argument("--phenotype", default="congestive_heart_failure_nonhypertensive")
    parser.add_argument("--finding", default="edema")
    parser.add_argument(
        "--cv", action="store_true",
        help="also pool the paired units of all splits and score out of fold (small benchmarks)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    bench = Benchmark.open(args.benchmark)
    targets = [
        ("in-hospital-mortality", "y_true"),
        ("phenotyping", args.phenotype),
        ("radiology", args.finding),
    ]
    rows = signal_table(bench, targets=targets)
    print(f"{bench.name} {bench.version}: test AUROC on paired test units")
    print(format_table(rows))
    if args.cv:
        print("\n5-fold cross-validation by patient over the paired units of all splits")
        print(format_table(signal_table(bench, targets=targets, cv=True)))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
