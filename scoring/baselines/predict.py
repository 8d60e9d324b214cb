"""Test-split predictions in every robustness scenario, as one public prediction file.

A model's output for a unit depends only on the unit's EHR window and on whether its image
is part of the input, so each model predicts the test split twice: once with every
available image (all units) and once with no image at all (the units of stays that have a
paired unit). Scenario ``paired`` takes the first pass for every test unit; scenario
``cxr_missing_p`` takes, for each paired unit, the second pass when the scenario withholds
its stay's images and the first otherwise.

The file has the task's key columns, ``scenario``, and ``prediction`` (binary tasks), the
label slugs (multi-label tasks) or ``bucket_0`` .. ``bucket_9`` (length of stay).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark_data.benchmark import ScenarioSets
from benchmark_data.tasks import CXR_MISSING_LEVELS, LOS_BUCKET_COLUMNS, Task
from scoring.baselines.data import ImageCache, SplitEHR, TaskData
from scoring.baselines.models import Baseline
from scoring.baselines.training import predict_proba

FLOAT_FORMAT = "%.7g"


def prediction_columns(task: Task) -> list[str]:
    """Value columns of a prediction file for the task.

    >>> from benchmark_data.tasks import TASKS
    >>> prediction_columns(TASKS["length-of-stay"])[:2]
    ['bucket_0', 'bucket_1']
    """
    if task.kind == "binary":
        return ["prediction"]
    if task.kind == "multilabel":
        return list(task.label_slugs)
    return list(LOS_BUCKET_COLUMNS)


def scenario_frame(
    task: Task,
    units: pd.DataFrame,
    sets: ScenarioSets | None,
    with_images: np.ndarray,
    without_images: np.ndarray,
) -> pd.DataFrame:
    """Rows of every scenario from the two passes (both in unit-list order)."""
    cols = prediction_columns(task)
    keys = units[list(task.key_columns)].reset_index(drop=True)
    paired = units["cxr_dicom_id"].notna().to_numpy()
    stays = units["stay_id"].to_numpy()

    def frame(name: str, rows: np.ndarray, values: np.ndarray) -> pd.DataFrame:
        df = keys.loc[rows].reset_index(drop=True)
        df.insert(len(df.columns), "scenario", name)
        return pd.concat([df, pd.DataFrame(values[rows], columns=cols)], axis=1)

    parts = [frame("paired", np.ones(len(units), dtype=bool), with_images)]
    if sets is not None and paired.any():
        for p in CXR_MISSING_LEVELS:
            name = f"cxr_missing_{p}"
            if name not in sets.withheld:
                continue
            held = np.isin(stays, sets.withheld[name])[:, None]
            parts.append(frame(name, paired, np.where(held, without_images, with_images)))
    return pd.concat(parts, ignore_index=True)


def predict_scenarios(
    model: Baseline,
    test: TaskData,
    units: pd.DataFrame,
    sets: ScenarioSets | None,
    *,
    ehr: SplitEHR,
    images: ImageCache,
    batch_size: int,
) -> pd.DataFrame:
    """The prediction file's rows for one model on a task's test split."""
    n = len(units)
    with_images = predict_proba(model, test, ehr, images, batch_size=batch_size, n_units=n)
    paired_stays = units.loc[units["cxr_dicom_id"].notna(), "stay_id"].unique()
    without_images = np.full_like(with_images, np.nan)
    if not model.uses_images:
        without_images = with_images
    elif len(paired_stays):
        seqs = np.flatnonzero(np.isin(test.seq_stay, paired_stays))
        without_images = predict_proba(
            model,
            test.without_images(paired_stays),
            ehr,
            images,
            batch_size=batch_size,
            n_units=n,
            seqs=seqs,
        )
    return scenario_frame(test.task, units, sets, with_images, without_images)


def write_predictions(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a prediction file (CSV, ``\\n`` line ends, 7 significant digits)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    values = df.select_dtypes(include="number").columns
    if df[values].isna().to_numpy().any():
        raise ValueError(f"{p.name}: predictions contain NaN")
    df.to_csv(p, index=False, lineterminator="\n", float_format=FLOAT_FORMAT)
    return p
