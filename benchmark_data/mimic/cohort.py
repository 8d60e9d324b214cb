"""The benchmark's stays: their ICU window, their split by patient and their demographics.

ICU windows (``intime``, ``outtime``, ``hadm_id``) come from MedMod's ``root/all_stays.csv``
where present, as MedMod pairs images with it, and otherwise from MIMIC-IV's
``icu/icustays.csv``. Demographics come from MIMIC-IV's ``hosp/admissions.csv`` and
``hosp/patients.csv``:

- ``age`` = ``anchor_age`` + (year of ``admittime`` - ``anchor_year``);
- ``race`` maps MIMIC-IV's race strings onto WHITE, BLACK, HISPANIC, ASIAN and OTHER
  (:func:`map_race`; unknown, declined and multiple races count as OTHER);
- ``insurance`` is Medicare, Medicaid or Other (private and any other payer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark_data.mimic.listfiles import EHR_TASKS, TaskRows
from benchmark_data.mimic.sources import (
    InputFiles,
    MimicImportError,
    id_column,
    read_csv,
    require_csv,
)
from benchmark_data.tasks import RACE_GROUPS

WINDOW_COLUMNS = ["subject_id", "hadm_id", "stay_id", "intime", "outtime"]

ERR_NO_WINDOWS = "missing input file: expected {all_stays}[.gz] or {icustays}[.gz]"
ERR_BAD_TIMES = "{path}: column {column} has {n} value(s) that are not times, first: {first}"
ERR_UNKNOWN_STAYS = "{n} stay(s) of the listfiles are not in {sources}, first stay_id: {first}"
ERR_SUBJECT_MISMATCH = (
    "{n} stay(s) belong to another subject in {source} than their listfile name says, "
    "first: {first}"
)
ERR_SPLIT_CONFLICT = (
    "{n} subject(s) are in the test listfiles and in the train or val listfiles of some "
    "task, first: {first}; give --test-subjects to split by a subject file"
)
ERR_NO_ADMISSION = "{n} stay(s) have no admission (hadm_id) in {path}, first hadm_id: {first}"
ERR_NO_PATIENT = "{n} subject(s) are not in {path}, first: {first}"


def map_race(race: str | float | None) -> str:
    """The fairness group of a MIMIC-IV race string.

    >>> [map_race(r) for r in ["BLACK/AFRICAN AMERICAN", "HISPANIC/LATINO - PUERTO RICAN",
    ...                        "ASIAN - CHINESE", "WHITE - RUSSIAN", "UNKNOWN", None]]
    ['BLACK', 'HISPANIC', 'ASIAN', 'WHITE', 'OTHER', 'OTHER']
    """
    if not isinstance(race, str):
        return "OTHER"
    r = race.strip().upper()
    if r.startswith("WHITE"):
        return "WHITE"
    if r.startswith("BLACK"):
        return "BLACK"
    if r.startswith("HISPANIC") or r.startswith("SOUTH AMERICAN"):
        return "HISPANIC"
    if r.startswith("ASIAN"):
        return "ASIAN"
    return "OTHER"


def map_insurance(insurance: str | float | None) -> str:
    """Medicare, Medicaid or Other.

    >>> [map_insurance(i) for i in ["Medicare", "medicaid", "Private", None]]
    ['Medicare', 'Medicaid', 'Other', 'Other']
    """
    if isinstance(insurance, str):
        for name in ("Medicare", "Medicaid"):
            if insurance.strip().lower() == name.lower():
                return name
    return "Other"


assert set(map(map_race, ["WHITE", "BLACK", "HISPANIC", "ASIAN", "X"])) == set(RACE_GROUPS)


def parse_times(values: pd.Series, *, path: Path, column: str) -> pd.Series:
    """``YYYY-MM-DD HH:MM:SS`` strings (fractions of a second allowed) as datetimes."""
    text = values.astype("string").str.strip()
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    bad = parsed.isna() & text.notna() & (text != "")
    if bad.any():
        raise MimicImportError(
            ERR_BAD_TIMES.format(
                path=path, column=column, n=int(bad.sum()), first=text[bad].head(5).tolist()
            )
        )
    return parsed.astype("datetime64[ns]")


def _read_windows(path: Path) -> pd.DataFrame:
    df = read_csv(path, columns=WINDOW_COLUMNS)
    for col in ("intime", "outtime"):
        df[col] = parse_times(df[col], path=path, column=col)
    for col in ("subject_id", "stay_id", "hadm_id"):
        df[col] = id_column(df, col, path=path)
    return df.dropna(subset=["intime", "outtime"]).drop_duplicates("stay_id")


def read_windows(
    medmod_root: Path, mimic_iv: Path, inputs: InputFiles, stay_ids: np.ndarray
) -> pd.DataFrame:
    """``subject_id, hadm_id, stay_id, intime, outtime`` of the given stays."""
    sources = []
    for root, names, label in (
        (medmod_root, ("root/all_stays.csv",), "medmod-root"),
        (mimic_iv, ("icu/icustays.csv",), "mimic-iv"),
    ):
        for name in names:
            for p in (root / name, root / f"{name}.gz"):
                if p.is_file():
                    sources.append((p, f"{label}/{p.relative_to(root).as_posix()}"))
                    break
    if not sources:
        raise MimicImportError(
            ERR_NO_WINDOWS.format(
                all_stays=medmod_root / "root/all_stays.csv", icustays=mimic_iv / "icu/icustays.csv"
            )
        )
    need = pd.Index(stay_ids)
    found: list[pd.DataFrame] = []
    for path, name in sources:
        if need.empty:
            break
        inputs.record(name, path)
        df = _read_windows(path)
        df = df[df["stay_id"].isin(need)]
        found.append(df)
        need = need.difference(df["stay_id"].astype(np.int64))
    if not need.empty:
        raise MimicImportError(
            ERR_UNKNOWN_STAYS.format(
                n=len(need),
                sources=" or ".join(str(p) for p, _ in sources),
                first=need[:5].tolist(),
            )
        )
    return pd.concat(found, ignore_index=True)


@dataclass(frozen=True)
class SplitRule:
    """How the split was decided, recorded in the manifest."""

    test: str
    val: str


def assign_splits(
    parts: pd.DataFrame,
    *,
    test_subjects: set[int] | None,
    val_subjects: set[int] | None,
    seed: int,
) -> tuple[pd.Series, SplitRule]:
    """The split of each subject (index: subject_id), from the listfile parts it came from.

    Test: the ``--test-subjects`` file when given, else the test listfiles. Val: the
    ``--val-subjects`` file when given, else the val listfiles when there are any, else a
    seeded eighth of the other subjects (MedMod's ``valset_iv.csv`` holds about 1/10 of the
    training subjects; 1/8 gives the design's 70/10/20).
    """
    by_subject = parts.groupby("subject_id")["part"].agg(set)
    if test_subjects is not None:
        is_test = by_subject.index.isin(list(test_subjects))
        test_rule = "test-subjects file"
    else:
        has_test = by_subject.map(lambda s: "test" in s)
        mixed = by_subject.map(lambda s: "test" in s and len(s) > 1)
        if mixed.any():
            raise MimicImportError(
                ERR_SPLIT_CONFLICT.format(
                    n=int(mixed.sum()), first=by_subject.index[mixed.to_numpy()][:5].tolist()
                )
            )
        is_test = has_test.to_numpy()
        test_rule = "test listfiles"
    split = pd.Series(np.where(is_test, "test", "train"), index=by_subject.index, dtype=object)
    rest = split.index[~is_test]
    if val_subjects is not None:
        val = rest[rest.isin(list(val_subjects))]
        val_rule = "val-subjects file"
    elif any("val" in s for s in by_subject):
        val = rest[by_subject[rest].map(lambda s: "val" in s).to_numpy()]
        val_rule = "val listfiles"
    else:
        ordered = np.sort(rest.to_numpy())
        n_val = int(round(len(ordered) / 8))
        rng = np.random.default_rng(seed)
        val = pd.Index(rng.choice(ordered, size=n_val, replace=False)) if n_val else rest[:0]
        val_rule = f"seeded 1/8 of the train subjects (seed {seed})"
    split[val] = "val"
    return split, SplitRule(test=test_rule, val=val_rule)


def stays_table(tasks: dict[str, TaskRows]) -> pd.DataFrame:
    """One row per stay of any task: ``stay_id, subject_id, stay, ts_task, ts_dir``, where the
    stay's episode file is read from ``{ts_task}/{ts_dir}/{stay}`` (the first task of
    ``EHR_TASKS`` that lists it)."""
    frames = []
    for rank, task in enumerate(EHR_TASKS):
        rows = tasks[task].rows
        df = rows[["stay_id", "subject_id", "stay", "ts_dir"]].drop_duplicates("stay_id")
        frames.append(df.assign(ts_task=task, rank=rank))
    df = pd.concat(frames, ignore_index=True).sort_values(["stay_id", "rank"], kind="stable")
    df = df.drop_duplicates("stay_id").drop(columns="rank")
    return df.sort_values("stay_id").reset_index(drop=True)


def check_subjects(stays: pd.DataFrame, windows: pd.DataFrame, source: str) -> None:
    merged = stays[["stay_id", "subject_id"]].merge(
        windows[["stay_id", "subject_id"]], on="stay_id", suffixes=("", "_w")
    )
    bad = merged["subject_id"] != merged["subject_id_w"]
    if bad.any():
        raise MimicImportError(
            ERR_SUBJECT_MISMATCH.format(
                n=int(bad.sum()), source=source, first=merged.loc[bad, "stay_id"].head(5).tolist()
            )
        )


def demographics(stays: pd.DataFrame, mimic_iv: Path, inputs: InputFiles) -> pd.DataFrame:
    """``stay_id, subject_id, age, gender, race, insurance, admission_type`` per stay."""
    adm_path = require_csv(mimic_iv, "hosp/admissions.csv", "core/admissions.csv")
    pat_path = require_csv(mimic_iv, "hosp/patients.csv", "core/patients.csv")
    inputs.record(f"mimic-iv/{adm_path.relative_to(mimic_iv).as_posix()}", adm_path)
    inputs.record(f"mimic-iv/{pat_path.relative_to(mimic_iv).as_posix()}", pat_path)
    adm = read_csv(
        adm_path,
        columns=["hadm_id", "admittime", "admission_type", "insurance"],
        any_of=[("race", "ethnicity")],
        dtype={"admission_type": str, "insurance": str, "race": str, "ethnicity": str},
    )
    adm = adm.rename(columns={"ethnicity": "race"})
    adm["hadm_id"] = id_column(adm, "hadm_id", path=adm_path)
    adm = adm.drop_duplicates("hadm_id")
    adm["admittime"] = parse_times(adm["admittime"], path=adm_path, column="admittime")
    pat = read_csv(
        pat_path, columns=["subject_id", "gender", "anchor_age", "anchor_year"],
        dtype={"gender": str},
    )  # fmt: skip
    pat["subject_id"] = id_column(pat, "subject_id", path=pat_path)
    pat = pat.drop_duplicates("subject_id")
    df = stays[["stay_id", "subject_id", "hadm_id"]].merge(adm, on="hadm_id", how="left")
    missing = ~df["hadm_id"].isin(adm["hadm_id"])
    if missing.any():
        raise MimicImportError(
            ERR_NO_ADMISSION.format(
                n=int(missing.sum()),
                path=adm_path,
                first=df.loc[missing, "hadm_id"].head(5).tolist(),
            )
        )
    df = df.merge(pat, on="subject_id", how="left")
    missing = ~df["subject_id"].isin(pat["subject_id"])
    if missing.any():
        first = df.loc[missing, "subject_id"].drop_duplicates().head(5).tolist()
        raise MimicImportError(
            ERR_NO_PATIENT.format(n=int(missing.sum()), path=pat_path, first=first)
        )
    year = df["admittime"].dt.year
    age = pd.to_numeric(df["anchor_age"], errors="coerce") + (
        year - pd.to_numeric(df["anchor_year"], errors="coerce")
    )
    gender = df["gender"].astype("string").str.strip().str.upper()
    return pd.DataFrame(
        {
            "stay_id": df["stay_id"].astype(np.int64),
            "subject_id": df["subject_id"].astype(np.int64),
            "age": age.astype("Int64"),
            "gender": gender.where(gender.isin(["M", "F"])),
            "race": df["race"].map(map_race),
            "insurance": df["insurance"].map(map_insurance),
            "admission_type": df["admission_type"].astype("string").str.strip(),
        }
    ).sort_values("stay_id", ignore_index=True)
