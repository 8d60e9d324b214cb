"""Unit lists of the five tasks, their chest X-ray pairing, and the scenario files.

Pairing never looks ahead: an hourly row gets the latest AP image taken at or before its
prediction time, a mortality unit the latest image of the first 48 hours, a phenotyping
unit the latest image of the stay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark_data import causal
from benchmark_data.sequestered import prediction_hours
from benchmark_data.synth.cohort import PHENOTYPE_SLUGS
from benchmark_data.synth.counts import FIRST_ROW_HOUR, LONG_STAY_MINUTES
from benchmark_data.synth.cxr import FINDING_SLUGS
from benchmark_data.tasks import TASKS

_KEY = 10_000_000  # minutes per stay in the pairing key (stays last < 60 days)


def latest_image(
    image_stay: np.ndarray,
    image_minute: np.ndarray,
    dicom_ids: np.ndarray,
    stay: np.ndarray,
    limit: np.ndarray,
) -> np.ndarray:
    """For each (stay, limit) query, the dicom_id of the stay's latest image taken at or
    before ``limit`` minutes (``None`` when there is none). Images must be sorted by stay,
    then time.

    >>> latest_image(np.array([0, 0, 1]), np.array([10, 50, 5]), np.array(["a", "b", "c"]),
    ...              np.array([0, 0, 0, 1, 2]), np.array([5, 10, 60, 60, 60])).tolist()
    [None, 'a', 'b', 'c', None]
    """
    keys = image_stay.astype(np.int64) * _KEY + image_minute
    q = stay.astype(np.int64) * _KEY + limit
    i = np.searchsorted(keys, q, side="right") - 1
    ok = i >= 0
    ok[ok] = image_stay[i[ok]] == stay[ok]
    out = np.full(len(stay), None, dtype=object)
    out[ok] = np.asarray(dicom_ids, dtype=object)[i[ok]]
    return out


def hourly_grid(end_minutes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stay row, t) of every whole hour ``t > 4`` up to each stay's end, in order."""
    n = np.maximum(0, np.asarray(end_minutes) // 60 - (FIRST_ROW_HOUR - 1))
    rows = np.repeat(np.arange(len(n)), n)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    t = np.arange(len(rows)) - np.repeat(starts, n) + FIRST_ROW_HOUR
    return rows, t.astype(np.int64)


def build_units(
    stays: pd.DataFrame,
    phenotypes: np.ndarray,
    images: pd.DataFrame,
    findings: np.ndarray,
) -> dict[str, pd.DataFrame]:
    """Unit lists of every task for all splits, with labels and a ``split`` column.

    Column order follows docs/benchmark-format.md: key columns, ``subject_id``, (``stay_id``),
    ``cxr_dicom_id``, then the label columns.
    """
    img_stay = images["stay"].to_numpy()
    img_min = images["minute"].to_numpy()
    dicom = images["dicom_id"].to_numpy(dtype=object)
    los = stays["los_min"].to_numpy()
    died = stays["died"].to_numpy()
    death = stays["death_min"].to_numpy()
    sid = stays["stay_id"].to_numpy()
    subj = stays["subject_id"].to_numpy()
    split = stays["split"].to_numpy()

    def pair(rows: np.ndarray, limit: np.ndarray) -> np.ndarray:
        return latest_image(img_stay, img_min, dicom, rows, limit)

    out: dict[str, pd.DataFrame] = {}
    long = np.flatnonzero(los >= LONG_STAY_MINUTES)
    out["in-hospital-mortality"] = pd.DataFrame({
        "stay_id": sid[long], "subject_id": subj[long],
        "cxr_dicom_id": pair(long, np.full(len(long), LONG_STAY_MINUTES)),
        "y_true": died[long].astype(np.int64), "split": split[long],
    })  # fmt: skip
    allr = np.arange(len(stays))
    ph = pd.DataFrame(phenotypes.astype(np.int64), columns=list(PHENOTYPE_SLUGS))
    out["phenotyping"] = pd.concat(
        [pd.DataFrame({"stay_id": sid, "subject_id": subj, "cxr_dicom_id": pair(allr, los)}),
         ph, pd.DataFrame({"split": split})], axis=1,
    )  # fmt: skip
    end = np.where(died, np.minimum(los, death), los)
    rows, t = hourly_grid(end)
    out["decompensation"] = pd.DataFrame({
        "stay_id": sid[rows], "period_length": t, "subject_id": subj[rows],
        "cxr_dicom_id": pair(rows, 60 * t),
        "y_true": (died[rows] & (death[rows] - 60 * t < 24 * 60)).astype(np.int64),
        "split": split[rows],
    })  # fmt: skip
    rows, t = hourly_grid(los)
    out["length-of-stay"] = pd.DataFrame({
        "stay_id": sid[rows], "period_length": t, "subject_id": subj[rows],
        "cxr_dicom_id": pair(rows, 60 * t),
        "y_true": np.round((los[rows] - 60 * t) / 60.0, 6), "split": split[rows],
    })  # fmt: skip
    rad = pd.concat(
        [pd.DataFrame({"dicom_id": dicom, "subject_id": subj[img_stay], "stay_id": sid[img_stay],
                       "cxr_dicom_id": dicom}),
         pd.DataFrame(findings.astype(np.int64), columns=list(FINDING_SLUGS)),
         pd.DataFrame({"split": split[img_stay]})], axis=1,
    )  # fmt: skip
    out["radiology"] = rad.sort_values("dicom_id", kind="stable").reset_index(drop=True)
    for task, df in out.items():
        assert list(df.columns[: len(TASKS[task].key_columns)]) == list(TASKS[task].key_columns)
    return out


@dataclass
class TestPlan:
    """The test split's public view (:mod:`benchmark_data.causal`): each test stay's
    family, cutoff and publication, every test unit with its prediction time and whether it
    is public, and the scenario tables of the whole test split and of its public part."""

    stays: pd.DataFrame  # stay_id, end_hours, family, cutoff_hours, published
    units: dict[str, pd.DataFrame]  # every test unit: ..., prediction_hours, public, labels
    scenarios: dict[str, pd.DataFrame]  # public paired stays
    all_scenarios: dict[str, pd.DataFrame]  # every paired test stay

    def plan(self) -> pd.DataFrame:
        return self.stays[["stay_id", "family", "cutoff_hours", "published"]]


def plan_test_split(
    stays: pd.DataFrame,
    images: pd.DataFrame,
    units: dict[str, pd.DataFrame],
    seeds: list[np.random.SeedSequence],
) -> TestPlan:
    """Cut the test split: one seed per task for its withheld sets, the last for the
    cutoffs."""
    test = stays["split"].to_numpy() == "test"
    tstays = pd.DataFrame({
        "stay_id": stays["stay_id"].to_numpy()[test],
        "subject_id": stays["subject_id"].to_numpy()[test],
        "end_hours": np.round(stays["los_min"].to_numpy()[test] / 60.0, 6),
    })  # fmt: skip
    tunits = {task: df[df["split"] == "test"].reset_index(drop=True) for task, df in units.items()}
    plan = causal.plan_cutoffs(
        tstays,
        mortality_stays=tunits["in-hospital-mortality"]["stay_id"].to_numpy(),
        hourly=tunits["length-of-stay"][["stay_id", "period_length"]],
        rng=np.random.default_rng(seeds[-1]),
    )
    end = tstays.set_index("stay_id")["end_hours"]
    image_hours = pd.Series(
        images["minute"].to_numpy() / 60.0, index=images["dicom_id"].to_numpy()
    )  # fmt: skip
    out: dict[str, pd.DataFrame] = {}
    scen: dict[str, pd.DataFrame] = {}
    all_scen: dict[str, pd.DataFrame] = {}
    for (task, df), seed in zip(tunits.items(), seeds[:-1], strict=True):
        hours = prediction_hours(
            task, df, end_hours=df["stay_id"].map(end),
            image_hours=df["dicom_id"].map(image_hours) if "dicom_id" in df else None,
        )  # fmt: skip
        df = df.assign(prediction_hours=np.round(hours, 6))
        public = causal.public_unit_mask(task, df, plan)
        clean = causal.clean_unit_mask(df, plan)
        out[task] = df.assign(public=public.astype(np.int64), clean=clean.astype(np.int64))
        all_scen[task], scen[task] = causal.stratified_scenarios(
            df, public, np.random.default_rng(seed)
        )
    return TestPlan(tstays.merge(plan, on="stay_id"), out, scen, all_scen)
