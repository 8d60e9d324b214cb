"""When a clinical note may be an input: the leakage rules of the notes modality.

A note is usable for a unit only when all of these hold:

1. it was **stored** at or before the unit's prediction time (its chart time when it has no
   store time): a note charted before the cut-off but signed after it was not known then;
2. it is **not a discharge summary**: every task is predicted before hospital discharge,
   and the summary names the diagnoses and the outcome;
3. it is **not the report of the unit's own study** when the task's labels are mined from
   that report (the radiology findings task): the report is the label.

Times are minutes since the stay's ICU admission, as the benchmark stores them.

>>> notes = pd.DataFrame({"note_type": ["radiology", "radiology", "progress", "discharge"],
...                       "chart_minute": [100, 200, 50, 900], "store_minute": [130, 230, 61, 60],
...                       "study_id": [7, 8, -1, -1]})
>>> usable_notes(notes, prediction_minute=200, own_study=7).index.tolist()
[2]
>>> usable_notes(notes, prediction_minute=230, own_study=None).index.tolist()
[0, 1, 2]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DISCHARGE = "discharge"
RADIOLOGY = "radiology"


def known_minute(notes: pd.DataFrame) -> np.ndarray:
    """When each note became known: its store time, or its chart time when it has none."""
    store = pd.to_numeric(notes["store_minute"], errors="coerce").to_numpy(dtype=float)
    chart = pd.to_numeric(notes["chart_minute"], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(store), chart, store)


def usable_mask(
    notes: pd.DataFrame, *, prediction_minute: float, own_study: int | None
) -> np.ndarray:
    """Which of a stay's notes a unit predicted at ``prediction_minute`` may read;
    ``own_study`` is the unit's study when the task's labels come from its report."""
    known = known_minute(notes)
    ok = ~np.isnan(known) & (known <= prediction_minute)
    ok &= notes["note_type"].to_numpy() != DISCHARGE
    if own_study is not None:
        own = (notes["note_type"].to_numpy() == RADIOLOGY) & (
            pd.to_numeric(notes["study_id"], errors="coerce").to_numpy() == own_study
        )
        ok &= ~own
    return ok


def usable_notes(
    notes: pd.DataFrame, *, prediction_minute: float, own_study: int | None
) -> pd.DataFrame:
    """The notes of :func:`usable_mask`."""
    return notes[usable_mask(notes, prediction_minute=prediction_minute, own_study=own_study)]


__all__ = ["DISCHARGE", "RADIOLOGY", "known_minute", "usable_mask", "usable_notes"]
