"""MedMod's task listfiles (mimic4extract output) read into tidy tables.

Each of the four EHR tasks has ``{task}/train_listfile.csv`` and ``{task}/test_listfile.csv``
(and ``val_listfile.csv`` once MedMod's ``split_train_val.py`` has run), with the header
``stay,period_length,stay_id,<labels>``. Before that split, ``{task}/train/listfile.csv`` and
``{task}/test/listfile.csv`` are read instead. The episode time series of a stay listed in
``train`` or ``val`` lie in ``{task}/train/``, those of ``test`` in ``{task}/test/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark_data.mimic.sources import (
    InputFiles,
    MimicImportError,
    find_csv,
    id_column,
    read_csv,
)
from benchmark_data.tasks import PHENOTYPE_NAMES, TASKS, slugify

# The EHR tasks, in the order their episode files are preferred as the stay's time series:
# phenotyping, length of stay and decompensation keep the whole stay, mortality the first 48 h.
EHR_TASKS: tuple[str, ...] = (
    "phenotyping",
    "length-of-stay",
    "decompensation",
    "in-hospital-mortality",
)
PARTS: tuple[str, ...] = ("train", "val", "test")
STAY_NAME = r"^(\d+)_episode(\d+)_timeseries\.csv$"
PERIOD_TOLERANCE = 1e-4

ERR_NO_LISTFILE = "missing input file: expected {expected}"
ERR_STAY_NAMES = (
    "{path}: {n} stay name(s) are not of the form {{subject_id}}_episode{{k}}_timeseries.csv, "
    "first: {first}"
)
ERR_PERIOD = (
    "{path}: period_length must be a whole number of hours (mimic3-benchmarks writes it as "
    "%.6f, e.g. 5.000000); {n} row(s) are not, first: {first}"
)
ERR_LABELS = "{path}: column {column} has {n} value(s) that are not {expected}, first: {first}"
ERR_DUPLICATES = "{task}: {n} unit(s) are listed more than once in the listfiles, first: {first}"
ERR_STAY_IDS = (
    "{n} stay(s) have a different stay_id or stay name in different listfiles, first: {first}"
)


@dataclass(frozen=True)
class TaskRows:
    """One task's listfile rows from every part: ``stay, stay_id, subject_id, part, ts_dir``,
    ``period_length`` (whole hours; hourly tasks), and the label columns (slugs)."""

    task: str
    rows: pd.DataFrame


def listfile_path(root: Path, task: str, part: str) -> Path | None:
    names = [f"{task}/{part}_listfile.csv"]
    if part != "val":
        names.append(f"{task}/{part}/listfile.csv")
    return find_csv(root, *names)


def _first(values: pd.Series | pd.DataFrame, n: int = 5) -> list[object]:
    if isinstance(values, pd.DataFrame):
        return [tuple(r) for r in values.head(n).itertuples(index=False)]
    return values.head(n).tolist()


def _label_columns(task: str) -> dict[str, str]:
    """Listfile column name -> label column of the benchmark."""
    if task == "phenotyping":
        return {name: slugify(name) for name in PHENOTYPE_NAMES}
    return {"y_true": "y_true"}


def _check_labels(df: pd.DataFrame, path: Path, task: str) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for col, slug in _label_columns(task).items():
        v = pd.to_numeric(df[col], errors="coerce")
        if task == "length-of-stay":
            bad = v.isna() | (v < 0)
            expected = "hours >= 0"
        else:
            bad = ~v.isin([0, 1])
            expected = "0 or 1"
        if bad.any():
            raise MimicImportError(
                ERR_LABELS.format(
                    path=path,
                    column=col,
                    n=int(bad.sum()),
                    expected=expected,
                    first=_first(df.loc[bad, col]),
                )  # fmt: skip
            )
        out[slug] = v.astype(np.float64) if task == "length-of-stay" else v.astype(np.int64)
    return out


def read_listfile(path: Path, task: str, part: str) -> pd.DataFrame:
    """One listfile as ``stay, stay_id, subject_id, part, ts_dir[, period_length], labels``."""
    labels = list(_label_columns(task))
    df = read_csv(path, columns=["stay", "period_length", "stay_id", *labels], dtype={"stay": str})
    stay = df["stay"].astype(str).str.strip()
    parsed = stay.str.extract(STAY_NAME)
    bad = parsed[0].isna()
    if bad.any():
        raise MimicImportError(
            ERR_STAY_NAMES.format(path=path, n=int(bad.sum()), first=_first(stay[bad]))
        )
    stay_id = id_column(df, "stay_id", path=path)
    out = pd.DataFrame(
        {
            "stay": stay,
            "stay_id": stay_id,
            "subject_id": parsed[0].astype(np.int64),
            "part": part,
            "ts_dir": "test" if part == "test" else "train",
        }
    )
    if TASKS[task].hourly:
        period = pd.to_numeric(df["period_length"], errors="coerce")
        whole = period.round()
        bad = period.isna() | ((period - whole).abs() > PERIOD_TOLERANCE)
        if bad.any():
            first = _first(
                pd.DataFrame({"stay": stay[bad], "period_length": df.loc[bad, "period_length"]})
            )
            raise MimicImportError(ERR_PERIOD.format(path=path, n=int(bad.sum()), first=first))
        out["period_length"] = whole.astype(np.int64)
    return pd.concat([out, _check_labels(df, path, task)], axis=1)


def read_task(root: Path, task: str, inputs: InputFiles) -> TaskRows:
    """Every part of a task's listfiles; train and test are required, val is optional."""
    frames = []
    for part in PARTS:
        path = listfile_path(root, task, part)
        if path is None:
            if part == "val":
                continue
            expected = (
                f"{root / task / f'{part}_listfile.csv'} or {root / task / part / 'listfile.csv'}"
            )
            raise MimicImportError(ERR_NO_LISTFILE.format(expected=expected))
        inputs.record(f"medmod-root/{path.relative_to(root).as_posix()}", path)
        frames.append(read_listfile(path, task, part))
    rows = pd.concat(frames, ignore_index=True)
    keys = list(TASKS[task].key_columns)
    dup = rows.duplicated(keys, keep=False)
    if dup.any():
        raise MimicImportError(
            ERR_DUPLICATES.format(task=task, n=int(dup.sum()), first=_first(rows.loc[dup, keys]))
        )
    return TaskRows(task=task, rows=rows)


def read_all_tasks(root: Path, inputs: InputFiles) -> dict[str, TaskRows]:
    tasks = {task: read_task(root, task, inputs) for task in EHR_TASKS}
    names = pd.concat(
        [t.rows[["stay_id", "stay"]] for t in tasks.values()], ignore_index=True
    ).drop_duplicates()
    bad = names["stay_id"].duplicated(keep=False) | names["stay"].duplicated(keep=False)
    if bad.any():
        raise MimicImportError(
            ERR_STAY_IDS.format(n=int(bad.sum()), first=_first(names[bad].sort_values("stay")))
        )
    return tasks
