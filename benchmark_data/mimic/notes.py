"""MIMIC-IV-Note: the radiology reports and discharge summaries of the benchmark's stays.

Inputs, under the MIMIC-IV-Note root (``note/`` of the PhysioNet release), each ``.csv`` or
``.csv.gz``:

- ``radiology.csv`` and ``discharge.csv``: ``note_id, subject_id, hadm_id, note_type,
  note_seq, charttime, storetime, text``;
- ``radiology_detail.csv``: ``note_id, subject_id, field_name, field_ordinal, field_value``;
  the rows whose ``field_name`` is ``study_id`` link a report to its MIMIC-CXR study.

A stay's notes are those of its hospital admission (``hadm_id``), with times in minutes since
the stay's ICU admission (negative before it): radiology reports charted by the stay's end,
and the admission's discharge summaries (kept so that the leakage rules of
:mod:`benchmark_data.notes` decide, in one place, that they are never an input). The
result has the columns of :data:`benchmark_data.synth.notes.NOTE_COLUMNS`, like the
synthetic notes; a note without a store time has ``store_minute`` blank.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark_data.mimic.cohort import parse_times
from benchmark_data.mimic.sources import (
    InputFiles,
    MimicImportError,
    id_column,
    read_csv,
    require_csv,
)
from benchmark_data.synth.notes import NOTE_COLUMNS

NOTE_FILE_COLUMNS = (
    "note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text",
)  # fmt: skip
DETAIL_COLUMNS = ("note_id", "subject_id", "field_name", "field_value")
KINDS = {"radiology.csv": "radiology", "discharge.csv": "discharge"}

ERR_DETAIL_STUDY = (
    "{path}: {n} study_id value(s) are not whole numbers, first: {first}; the study_id rows "
    "link a report to its MIMIC-CXR study"
)
ERR_SUBJECT_MISMATCH = (
    "{path}: {n} note(s) name an admission of another patient (hadm_id of one subject, "
    "subject_id of another), first note_id: {first}"
)


def _read_kind(root: Path, name: str, inputs: InputFiles) -> pd.DataFrame:
    path = require_csv(root, name)
    inputs.record(f"mimic-iv-note/{path.name}", path)
    df = read_csv(path, columns=NOTE_FILE_COLUMNS, dtype={"note_id": str, "note_type": str, "text": str})  # fmt: skip
    df = df[pd.to_numeric(df["hadm_id"], errors="coerce").notna()]  # outpatient: no admission
    out = pd.DataFrame(
        {
            "note_id": df["note_id"].astype(str).str.strip(),
            "subject_id": id_column(df, "subject_id", path=path),
            "hadm_id": id_column(df, "hadm_id", path=path),
            "note_type": KINDS[name],
            "charttime": parse_times(df["charttime"], path=path, column="charttime"),
            "storetime": parse_times(df["storetime"], path=path, column="storetime"),
            "text": df["text"].fillna("").astype(str),
        }
    )
    return out.assign(_path=str(path))


def _study_links(root: Path, inputs: InputFiles) -> pd.Series:
    """note_id -> MIMIC-CXR study_id, from the detail rows named ``study_id``."""
    path = require_csv(root, "radiology_detail.csv")
    inputs.record(f"mimic-iv-note/{path.name}", path)
    df = read_csv(path, columns=DETAIL_COLUMNS, dtype={"note_id": str, "field_name": str, "field_value": str})  # fmt: skip
    df = df[df["field_name"].astype(str).str.strip() == "study_id"]
    study = pd.to_numeric(df["field_value"], errors="coerce")
    bad = study.isna() | (study % 1 != 0)
    if bad.any():
        first = df.loc[bad, "field_value"].head(5).tolist()
        raise MimicImportError(ERR_DETAIL_STUDY.format(path=path, n=int(bad.sum()), first=first))
    links = pd.Series(study.astype(np.int64).to_numpy(), index=df["note_id"].astype(str).str.strip())  # fmt: skip
    return links[~links.index.duplicated(keep="first")]


def read_stay_notes(mimic_note: Path, windows: pd.DataFrame, inputs: InputFiles) -> pd.DataFrame:
    """The notes of the stays in ``windows`` (``stay_id, subject_id, hadm_id, intime,
    outtime``), one row each (:data:`NOTE_COLUMNS`), ordered by stay and the time they
    became known."""
    notes = pd.concat([_read_kind(mimic_note, name, inputs) for name in KINDS], ignore_index=True)
    links = _study_links(mimic_note, inputs)
    notes["study_id"] = notes["note_id"].map(links).fillna(-1).astype(np.int64)
    notes.loc[notes["note_type"] != "radiology", "study_id"] = -1

    merged = notes.merge(
        windows[["stay_id", "subject_id", "hadm_id", "intime", "outtime"]],
        on="hadm_id", how="inner", suffixes=("", "_stay"),
    )  # fmt: skip
    wrong = merged["subject_id"] != merged["subject_id_stay"]
    if wrong.any():
        path = merged.loc[wrong, "_path"].iloc[0]
        first = merged.loc[wrong, "note_id"].head(3).tolist()
        raise MimicImportError(ERR_SUBJECT_MISMATCH.format(path=path, n=int(wrong.sum()), first=first))  # fmt: skip

    def minutes(col: str) -> pd.Series:
        return (merged[col] - merged["intime"]).dt.total_seconds() / 60.0

    merged["chart_minute"] = minutes("charttime").round().astype("Int64")
    merged["store_minute"] = minutes("storetime").round().astype("Int64")
    by_end = merged["charttime"] <= merged["outtime"]
    merged = merged[by_end | (merged["note_type"] == "discharge")]
    known = merged["store_minute"].fillna(merged["chart_minute"])
    merged = merged.assign(_known=known).sort_values(
        ["stay_id", "_known", "note_id"], kind="stable"
    )
    merged["note_seq"] = merged.groupby(["stay_id", "note_type"]).cumcount() + 1
    return merged[list(NOTE_COLUMNS)].reset_index(drop=True)


__all__ = ["read_stay_notes"]
