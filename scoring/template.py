"""A sample prediction file for a task, from a benchmark's public part only.

It has the form a participant's file must have (docs/prediction-files.md): one ``paired``
row per public test unit, and one row per paired unit in every scenario of the suite that
withholds an input. Its values are the train split's label rates (a model that ignores its
inputs), so it scores as a floor, never as an entry worth publishing; for length of stay,
the train split's median remaining hours.

"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark_data.benchmark import Benchmark, csv_bytes
from scoring.prediction_columns import SCENARIO_COLUMN
from scoring.validation import BASE_SCENARIO, scenario_codes

ERR_NO_PUBLIC_UNITS = (
    "task {task} lists no public test units: it is scored through the streaming gateway only "
    "(container entries), so it has no prediction file"
)


def _rates(bench: Benchmark, task: str) -> dict[str, float]:
    spec = bench.task(task)
    train = bench.units(task, "train")
    out: dict[str, float] = {}
    if spec.kind == "los":
        hours = pd.to_numeric(train[spec.label_columns[0]], errors="coerce")
        out["prediction"] = round(float(np.nanmedian(hours)), 2)
    elif spec.kind == "binary":
        out["prediction"] = round(float(train[spec.label_columns[0]].mean()), 4)
    else:
        for column, slug in zip(spec.label_columns, spec.label_slugs, strict=True):
            out[slug] = round(float(train[column].mean()), 4)
    return out


def sample_predictions(bench: Benchmark, task: str) -> bytes:
    """The sample prediction file (CSV bytes) of a task's public test units."""
    spec = bench.task(task)
    units = bench.units(task, "test")
    if units.empty:
        raise ValueError(ERR_NO_PUBLIC_UNITS.format(task=task))
    keys = units[list(spec.key_columns)].reset_index(drop=True)
    values = _rates(bench, task)
    if "paired" in units.columns:
        paired = units["paired"].fillna(0).astype(bool).to_numpy()
    elif "cxr_dicom_id" in units.columns:
        paired = units["cxr_dicom_id"].notna().to_numpy()
    else:
        paired = np.zeros(len(units), dtype=bool)
    frames = [keys.assign(**{SCENARIO_COLUMN: BASE_SCENARIO})]
    for scenario in scenario_codes(bench.suite)[1:]:
        if paired.any():
            frames.append(keys[paired].assign(**{SCENARIO_COLUMN: scenario}))
    out = pd.concat(frames, ignore_index=True)
    for column, value in values.items():
        out[column] = value
    return csv_bytes(out)


__all__ = ["ERR_NO_PUBLIC_UNITS", "sample_predictions"]
