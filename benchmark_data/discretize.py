"""Hourly discretization of the 17-variable ICU time series into 76 features.

One row per hour ``[i, i+1)`` of a stay. Value columns hold the last measurement in the
hour; an hour without one takes the previous hour's value (previous-value imputation) and,
before the first measurement, the variable's normal value. Categorical variables are one-hot
encoded. The last 17 columns are masks: 1 when the variable was measured in that hour.
Column names: :func:`benchmark_data.variables.feature_names`. This is mimic3-benchmarks'
discretizer with ``timestep=1.0``, ``impute_strategy='previous'``, ``start_time='zero'``.

>>> import pandas as pd
>>> ts = pd.DataFrame({"hours": [0.5, 2.2], "Heart Rate": [110.0, 95.0]})
>>> x = discretize(ts, 4)
>>> x.shape
(4, 76)
>>> hr = feature_names().index("Heart Rate")
>>> x[:, hr].tolist(), x[:, N_VALUE_FEATURES + VARIABLE_NAMES.index("Heart Rate")].tolist()
([110.0, 110.0, 95.0, 95.0], [1.0, 0.0, 1.0, 0.0])
"""

from __future__ import annotations

import contextlib
from typing import Literal

import numpy as np
import pandas as pd

from benchmark_data.variables import (
    N_FEATURES,
    N_VALUE_FEATURES,
    VARIABLE_NAMES,
    VARIABLES,
    Variable,
    feature_names,
)

ERR_UNKNOWN_STAYS = "time series has {n} row(s) of stays missing from the index, first: {first}"
ERR_UNKNOWN_CATEGORY = "{variable}: {n} value(s) are not one of its categories, first: {first}"
ERR_SEVERAL_STAYS = "discretize() takes one stay; the table holds {n} (use discretize_split)"
ERR_NO_HOURS = "time series has no 'hours' column"

Unknown = Literal["error", "ignore"]

__all__ = [
    "N_FEATURES",
    "discretize",
    "discretize_split",
    "encode_categories",
    "feature_names",
    "split_index",
]


def _value_columns() -> list[int]:
    """Column of each variable's first value feature."""
    cols, c = [], 0
    for v in VARIABLES:
        cols.append(c)
        c += v.width
    return cols


VALUE_COLUMN = _value_columns()


def encode_categories(
    values: pd.Series | np.ndarray, variable: Variable, *, unknown: Unknown = "error"
) -> np.ndarray:
    """Category index of each value of a categorical variable; -1 where not measured.

    Values may be the category strings or, for numeric categories (capillary refill
    ``"1.0"``, coma scale total ``"15"``), numbers as a CSV reader returns them.
    ``unknown="ignore"`` treats values outside the categories as not measured.

    >>> from benchmark_data.variables import VARIABLES
    >>> encode_categories(pd.Series([15, None, 3]), VARIABLES[5]).tolist()
    [4, -1, 6]
    """
    cats = list(variable.categories)
    numeric: dict[float, int] = {}
    for i, c in enumerate(cats):
        with contextlib.suppress(ValueError):
            numeric.setdefault(float(c), i)
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    missing = s.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        num = s.to_numpy(dtype=np.float64, na_value=np.nan)
        codes = np.full(len(s), -1, dtype=np.int64)
    else:
        text = s.astype(object).where(~missing, None).to_numpy()
        codes = pd.Index(cats).get_indexer(text).astype(np.int64)
        todo = (codes < 0) & ~missing
        num = np.full(len(s), np.nan)
        if todo.any():
            num[todo] = pd.to_numeric(s[todo].astype(str), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
    for f, i in numeric.items():
        codes[(codes < 0) & (num == f)] = i
    bad = (codes < 0) & ~missing
    if bad.any() and unknown == "error":
        first = pd.unique(s[bad].astype(str))[:5].tolist()
        raise ValueError(
            ERR_UNKNOWN_CATEGORY.format(variable=variable.name, n=int(bad.sum()), first=first)
        )
    return codes


def split_index(stay_ids: np.ndarray | list[int], n_hours: np.ndarray | list[int]) -> pd.DataFrame:
    """The index of a stacked array: ``stay_id, offset, n_hours`` in the given order."""
    n = np.asarray(n_hours, dtype=np.int64)
    offset = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
    return pd.DataFrame({"stay_id": np.asarray(stay_ids, dtype=np.int64), "offset": offset,
                         "n_hours": n})  # fmt: skip


def discretize_split(
    timeseries: pd.DataFrame, index: pd.DataFrame, *, unknown: Unknown = "error"
) -> np.ndarray:
    """Discretize the time series of many stays at once.

    Parameters
    ----------
    timeseries
        ``stay_id, hours`` and any of the 17 variable columns (missing columns count as never
        measured; blank cells as not measured).
    index
        ``stay_id, n_hours``: the stays in the order they are stacked, and how many hourly
        rows each gets. Measurements at ``hours < 0`` or ``hours >= n_hours`` are dropped.
    unknown
        What to do with a categorical value outside its variable's categories: ``"error"``
        raises ``ValueError``; ``"ignore"`` treats it as not measured.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(index.n_hours.sum(), 76)``, stays stacked in index order.
    """
    if "hours" not in timeseries.columns:
        raise ValueError(ERR_NO_HOURS)
    stay_ids = index["stay_id"].to_numpy(dtype=np.int64)
    n_hours = index["n_hours"].to_numpy(dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_hours)[:-1]]).astype(np.int64)
    total = int(n_hours.sum())
    pos = pd.Index(stay_ids).get_indexer(timeseries["stay_id"].to_numpy(dtype=np.int64))
    if (pos < 0).any():
        first = pd.unique(timeseries["stay_id"].to_numpy()[pos < 0])[:5].tolist()
        raise ValueError(ERR_UNKNOWN_STAYS.format(n=int((pos < 0).sum()), first=first))
    hours = timeseries["hours"].to_numpy(dtype=np.float64)
    hour = np.floor(hours).astype(np.int64)
    valid = (hours >= 0) & (hour < n_hours[pos])
    row = offsets[pos] + hour
    # Sort once by (row, time); within an hour the last measurement wins, ties by file order.
    order = np.flatnonzero(valid)[np.lexsort((hours[valid], row[valid]))]
    row_sorted = row[order]
    seg_start = np.repeat(offsets, n_hours)
    arange = np.arange(total)
    out = np.zeros((total, N_FEATURES), dtype=np.float32)
    for j, var in enumerate(VARIABLES):
        if var.name not in timeseries.columns:
            src = np.full(total, -1)
            measured_rows = np.zeros(0, dtype=np.int64)
            vals = np.zeros(0)
        else:
            col = timeseries[var.name]
            if var.is_categorical:
                v = encode_categories(col, var, unknown=unknown).astype(np.float64)
                v[v < 0] = np.nan
            else:
                v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            v = v[order]
            ok = ~np.isnan(v)
            r, v = row_sorted[ok], v[ok]
            last = np.r_[r[1:] != r[:-1], True] if len(r) else np.zeros(0, dtype=bool)
            measured_rows, vals = r[last], v[last]
            src = np.full(total, -1)
            src[measured_rows] = arange[measured_rows]
            src = np.maximum.accumulate(src) if total else src
        per_row = np.full(total, np.nan)
        per_row[measured_rows] = vals
        seen = src >= seg_start
        filled = np.where(seen, per_row[np.maximum(src, 0)], np.nan)
        c = VALUE_COLUMN[j]
        if var.is_categorical:
            code = np.where(seen, filled, var.categories.index(str(var.normal))).astype(np.int64)
            out[arange, c + code] = 1.0
        else:
            out[:, c] = np.where(seen, filled, float(var.normal))
        out[measured_rows, N_VALUE_FEATURES + j] = 1.0
    return out


def discretize(timeseries: pd.DataFrame, n_hours: int, *, unknown: Unknown = "error") -> np.ndarray:
    """Discretize one stay's time series into ``n_hours`` rows of 76 float32 features.

    ``timeseries`` has an ``hours`` column (time since the stay's ``intime``) and any of the
    17 variable columns; a ``stay_id`` column, if present, must hold a single stay.
    """
    ts = timeseries
    if "stay_id" in ts.columns:
        ids = pd.unique(ts["stay_id"])
        if len(ids) > 1:
            raise ValueError(ERR_SEVERAL_STAYS.format(n=len(ids)))
    ts = ts.assign(stay_id=0)
    return discretize_split(ts, pd.DataFrame({"stay_id": [0], "n_hours": [int(n_hours)]}),
                            unknown=unknown)  # fmt: skip


assert len(VARIABLE_NAMES) == len(VALUE_COLUMN)
