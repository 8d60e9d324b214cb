"""``medmod validate``: the platform's own check of a test prediction file, offline.

The check is the scoring engine's (``scoring.validation.read_predictions`` against
``scoring.truth.units_for_validation``, as ``python -m scoring validate`` runs it), on the
public test units the participant downloaded: either the public archive, unpacked (a
directory with ``manifest.json``), or the task's files of the site's downloads as they are
named there (``tasks/<task>/test.csv``, ``tasks/<task>/scenarios.csv``; ``public/suite.json``
and ``public/stays.csv`` from an unpacked ``inputs-test.tar.gz`` when present).

The engine (the ``scoring`` and ``benchmark_data`` packages of the repository this client
comes with, and pandas, numpy, scipy and plotly) is loaded only here, and only when this
command runs.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path
from typing import Any

from medmod_client.api import ClientError

ENGINE_MODULES = ("scoring", "benchmark_data")
SUITE_FILE = "public/suite.json"
STAYS_FILE = "public/stays.csv"


class ValidationFailed(ClientError):
    """The file, or the unit list it is checked against, is unusable; exit 2 (bad input)."""

    exit_code = 2


class EngineMissing(ClientError):
    exit_code = 2


def _checkout() -> Path | None:
    """The repository this client's source lies in (an editable install or a checkout)."""
    root = Path(__file__).resolve().parents[2]
    if all((root / m / "__init__.py").is_file() for m in ENGINE_MODULES):
        return root
    return None


def load_engine() -> dict[str, Any]:
    """The engine's functions, or :class:`EngineMissing` saying what to install."""
    names = {
        "units_for_validation": ("scoring.truth", "units_for_validation"),
        "TruthError": ("scoring.truth", "TruthError"),
        "read_predictions": ("scoring.validation", "read_predictions"),
        "ScoringInputError": ("scoring.errors", "ScoringInputError"),
        "Benchmark": ("benchmark_data.benchmark", "Benchmark"),
        "BenchmarkError": ("benchmark_data.benchmark", "BenchmarkError"),
        "BenchmarkWriter": ("benchmark_data.benchmark", "BenchmarkWriter"),
        "BUILTIN_SUITES": ("benchmark_data.suite", "BUILTIN_SUITES"),
        "builtin_suite": ("benchmark_data.suite", "builtin_suite"),
        "load_suite": ("benchmark_data.suite", "load_suite"),
        "SuiteError": ("benchmark_data.suite", "SuiteError"),
    }
    for attempt in range(2):
        try:
            return {
                key: getattr(importlib.import_module(module), attr)
                for key, (module, attr) in names.items()
            }
        except ImportError as exc:
            missing = (exc.name or "").split(".")[0]
            root = _checkout()
            if attempt == 0 and missing in ENGINE_MODULES and root is not None:
                sys.path.insert(0, str(root))
                continue
            if missing in ENGINE_MODULES:
                raise EngineMissing(
                    "validate needs the platform's scoring engine (the scoring and "
                    "benchmark_data packages of the leaderboard's repository), which is not "
                    "installed: from a checkout of the repository, pip install -e "
                    "'./client[validate]', or put the checkout on PYTHONPATH"
                ) from None
            raise EngineMissing(
                f"validate needs {missing or exc}, which is not installed: pip install "
                "-e './client[validate]' from a checkout of the leaderboard's repository"
            ) from None
    raise AssertionError("unreachable")


def _suite(engine: dict[str, Any], task: str, data: Path, suite: str | None) -> Any:
    """The suite the task belongs to: ``--suite`` (a shipped suite's slug or a suite.json),
    else the downloaded declaration, else the shipped suite that declares the task."""
    shipped = engine["BUILTIN_SUITES"]
    try:
        if suite and suite in shipped:
            return engine["builtin_suite"](suite)
        path = (
            Path(suite)
            if suite
            else next((p for p in (data / SUITE_FILE, data / "suite.json") if p.is_file()), None)
        )
        if path is not None:
            if not path.is_file():
                raise ValidationFailed(
                    f"--suite {suite}: neither a suite of the platform ({', '.join(shipped)}) "
                    "nor a suite.json file"
                )
            return engine["load_suite"](path.read_bytes(), name=str(path))
    except engine["SuiteError"] as exc:
        raise ValidationFailed(str(exc)) from None
    owners = [s for s in shipped if task in engine["builtin_suite"](s).task_slugs]
    if len(owners) != 1:
        where = f"the suites {', '.join(owners)} all have it" if owners else "no suite has it"
        raise ValidationFailed(f"which suite is task {task} of? {where}: give --suite")
    return engine["builtin_suite"](owners[0])


def _from_downloads(
    engine: dict[str, Any], task: str, data: Path, suite: str | None, tmp: Path
) -> Any:
    """A benchmark of the downloaded public files of one task (its test unit list, its
    scenario list, and the shared stays and suite when they are there), written with a
    manifest so that the engine reads it as it reads the public archive."""
    units = next(
        (p for p in (data / "tasks" / task / "test.csv", data / "test.csv") if p.is_file()), None
    )
    if units is None:
        raise ValidationFailed(
            f"{data} holds no test unit list of task {task}: download it first (medmod "
            f"download {task} --dir {data}), or give --data the unpacked public archive"
        )
    scenarios = next(
        (
            p
            for p in (data / "tasks" / task / "scenarios.csv", data / "scenarios.csv")
            if p.is_file()
        ),
        None,
    )
    writer = engine["BenchmarkWriter"](str(tmp))
    writer.write_bytes(f"public/tasks/{task}/test.csv", units.read_bytes())
    if scenarios is not None:
        writer.write_bytes(f"public/scenarios/{task}.csv", scenarios.read_bytes())
    stays = data / STAYS_FILE
    if stays.is_file():
        writer.write_bytes(STAYS_FILE, stays.read_bytes())
    else:  # stay ids only: a file keyed by stay names needs the shared stays.csv
        import pandas as pd

        table = pd.read_csv(units, usecols=lambda c: c in ("stay_id", "subject_id"))
        writer.write_csv(STAYS_FILE, table.drop_duplicates("stay_id"))
    writer.finish(
        name=f"downloaded files of {task}",
        version=str(data),
        source={"kind": "download"},
        seed=None,
        suite=_suite(engine, task, data, suite),
    )
    return engine["Benchmark"].open(str(tmp))


def validate(predictions: Path, *, task: str, data: Path, suite: str | None) -> list[str]:
    """Check ``predictions``; returns the lines to print (a summary, then any warnings)."""
    engine = load_engine()
    if not predictions.is_file():
        raise ValidationFailed(f"prediction file {predictions} does not exist")
    if not data.is_dir():
        raise ValidationFailed(f"--data {data}: no such directory")
    known = (
        engine["ScoringInputError"],
        engine["TruthError"],
        engine["BenchmarkError"],
        KeyError,
        ValueError,
        OSError,
    )
    with tempfile.TemporaryDirectory(prefix="medmod-validate-") as tmp:
        try:
            if (data / "manifest.json").is_file():
                bench = engine["Benchmark"].open(str(data))
            else:
                bench = _from_downloads(engine, task, data, suite, Path(tmp) / "units")
            truth = engine["units_for_validation"](bench, task)
            preds = engine["read_predictions"](str(predictions), truth=truth)
        except ValidationFailed:
            raise
        except known as exc:
            message = getattr(exc, "message", None) or (
                exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            )
            code = getattr(exc, "code", None)
            raise ValidationFailed(
                f"{predictions}: {message}" + (f" ({code})" if code else "")
            ) from None
    scenarios = ", ".join(s for s in truth.scenarios if s in preds.values)
    lines = [
        f"ok: {predictions} is a valid {preds.form} file for {truth.task.slug}: "
        f"{preds.n_rows} rows, {truth.n} test units; scenarios: {scenarios}"
    ]
    lines += [f"warning: {w}" for w in preds.warnings]
    return lines
