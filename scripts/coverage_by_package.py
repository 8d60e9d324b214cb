"""Coverage per package from a coverage data file (``bin/test --coverage``).

The packages are those the project is made of: ``scoring/baselines`` and the two parts of
``leaderboard/board`` and ``leaderboard/containers`` are counted apart from their parents.

    python scripts/coverage_by_package.py [DATA_FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parents[1]
# Most specific first: a file counts for the first package whose folder holds it.
PACKAGES = (
    "benchmark_data",
    "scoring/baselines",
    "scoring",
    "leaderboard/board",
    "leaderboard/containers",
    "leaderboard",
    "client/medmod_client",
)


def package_of(path: Path) -> str | None:
    """The package a source file belongs to, or None outside them."""
    try:
        rel = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return None
    return next((p for p in PACKAGES if rel.startswith(p + "/")), None)


def per_package(data_file: str | None = None) -> dict[str, tuple[int, int]]:
    """``{package: (statements, statements run)}`` from the data file."""
    cov = coverage.Coverage(data_file=data_file, config_file=str(ROOT / ".coveragerc"))
    cov.load()
    totals: dict[str, list[int]] = {p: [0, 0] for p in PACKAGES}
    for name in cov.get_data().measured_files():
        package = package_of(Path(name))
        if package is None or not name.endswith(".py"):
            continue
        _, statements, _, missing, _ = cov.analysis2(name)
        totals[package][0] += len(statements)
        totals[package][1] += len(statements) - len(missing)
    return {p: (n, run) for p, (n, run) in totals.items() if n}


def main(argv: list[str]) -> int:
    rows = per_package(argv[0] if argv else None)
    if not rows:
        print("no coverage data: run bin/test --coverage first", file=sys.stderr)
        return 1
    width = max(len(p) for p in rows)
    print(f"{'package':<{width}}  statements   run  cover")
    for package, (n, run) in rows.items():
        print(f"{package:<{width}}  {n:>10}  {run:>5}  {100 * run / n:5.1f}%")
    n = sum(v[0] for v in rows.values())
    run = sum(v[1] for v in rows.values())
    print(f"{'all':<{width}}  {n:>10}  {run:>5}  {100 * run / n:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
