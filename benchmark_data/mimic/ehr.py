"""The stays' irregular time series, read from MedMod's episode files, and their hourly form.

An episode file ``{subject_id}_episode{k}_timeseries.csv`` has the columns ``Hours`` (time
since ``intime``) and the 17 variables, blank when not measured. Its rows become rows of
``timeseries_{split}.csv.gz`` (``Hours`` -> ``hours``, values as written). A continuous value
that is not a number, or a categorical value outside the variable's categories, is treated
as not measured in the discretized array and counted in the manifest's ``stats``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark_data.discretize import discretize_split, encode_categories, split_index
from benchmark_data.mimic.sources import ERR_COLUMNS, ERR_READ, MimicImportError
from benchmark_data.variables import VARIABLE_NAMES, VARIABLES

ERR_NO_EPISODE = "missing episode time series: expected {path}"
ERR_HOURS = "{path}: column Hours has {n} value(s) that are not numbers, first: {first}"


@dataclass
class SeriesStats:
    """Values the discretizer could not use, per variable."""

    unknown_categories: dict[str, int] = field(default_factory=dict)
    not_numbers: dict[str, int] = field(default_factory=dict)

    def add(self, kind: dict[str, int], name: str, n: int) -> None:
        if n:
            kind[name] = kind.get(name, 0) + n


def read_episode(path: Path) -> pd.DataFrame:
    """One episode file: ``hours`` (float) and the 17 variables as text (NA when blank)."""
    if not path.is_file():
        raise MimicImportError(ERR_NO_EPISODE.format(path=path))
    try:
        df = pd.read_csv(path, dtype=str)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise MimicImportError(ERR_READ.format(path=path, detail=exc)) from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ("Hours", *VARIABLE_NAMES) if c not in df.columns]
    if missing:
        raise MimicImportError(ERR_COLUMNS.format(path=path, columns=", ".join(missing)))
    hours = pd.to_numeric(df["Hours"], errors="coerce")
    if hours.isna().any():
        bad = df.loc[hours.isna(), "Hours"].head(5).tolist()
        raise MimicImportError(ERR_HOURS.format(path=path, n=int(hours.isna().sum()), first=bad))
    out = df[list(VARIABLE_NAMES)]
    out.insert(0, "hours", hours.astype(np.float64))
    return out


def read_split(
    stays: pd.DataFrame,
    medmod_root: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """The time series of the given stays (``stay_id, stay, ts_task, ts_dir``, in order):
    ``stay_id, hours`` and the 17 variables as text (NA when blank)."""
    frames = []
    total = len(stays)
    for i, row in enumerate(stays.itertuples(index=False)):
        df = read_episode(medmod_root / row.ts_task / row.ts_dir / row.stay)
        df.insert(0, "stay_id", np.int64(row.stay_id))
        frames.append(df)
        if progress is not None and (i + 1) % 1000 == 0:
            progress(i + 1, total)
    columns = ["stay_id", "hours", *VARIABLE_NAMES]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    ts = pd.concat(frames, ignore_index=True)[columns]
    for name in VARIABLE_NAMES:
        text = ts[name].astype("string").str.strip()
        ts[name] = text.where(text != "")
    return ts


def to_values(ts: pd.DataFrame, stats: SeriesStats) -> pd.DataFrame:
    """Continuous variables as floats (a non-number becomes NaN and is counted); categorical
    values that are not categories are counted (the discretizer ignores them)."""
    out = ts.copy()
    out["stay_id"] = out["stay_id"].astype(np.int64)
    out["hours"] = out["hours"].astype(np.float64)
    for var in VARIABLES:
        col = ts[var.name]
        present = col.notna()
        if var.is_categorical:
            codes = encode_categories(col, var, unknown="ignore")
            stats.add(stats.unknown_categories, var.name, int(((codes < 0) & present).sum()))
            out[var.name] = col.astype(object).where(present, None)
        else:
            num = pd.to_numeric(col, errors="coerce").astype(np.float64)
            stats.add(stats.not_numbers, var.name, int((num.isna() & present).sum()))
            out[var.name] = num
    return out


def discretized(
    ts: pd.DataFrame, stay_ids: np.ndarray, n_hours: np.ndarray
) -> tuple[np.ndarray, pd.DataFrame]:
    """The hourly 76-feature array of the stays (in the given order) and its index."""
    index = split_index(stay_ids, n_hours)
    arr = discretize_split(ts, index, unknown="ignore")
    return arr, index
