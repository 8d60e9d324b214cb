"""Import MIMIC-IV, MIMIC-CXR and MIMIC-IV-Note into a benchmark of the Yu et al. 2025 suite
(``yu2025``): the first 24 hours of an ICU stay predict in-hospital mortality and an ICU stay
longer than three days.

The cohort is every stay of MedMod's preprocessed listfiles (whose episode files hold the 17
vital-sign and lab variables) that lasts at least 24 hours and whose patient is alive at hour
24 (in the test split, one such stay per patient, drawn at random: a later stay would say
that the earlier one did not end in death). Every input is cut at that prediction time, in
every split:

- **demographics** (an input of this suite): age, gender, race, insurance, admission type;
- **time series**: the episode rows taken in the first 24 hours, and their discretized hours;
- **chest X-rays**: AP images with CheXpert labels taken in the first 24 hours;
- **radiology reports** (MIMIC-IV-Note ``radiology.csv``, linked to their study by
  ``radiology_detail.csv``): those stored by hour 24 (:mod:`benchmark_data.notes`; a
  discharge summary never is).

Labels: ``admissions.hospital_expire_flag`` of the stay's admission (in-hospital death), and an
ICU stay (``outtime - intime``) over 72 hours. A unit is paired when it has an image and a
report by hour 24; the scenario files withhold each from 25/50/75/100% of the paired test
stays (seeded, nested, independently). As with the MedMod importer, everything is read and
checked first and the benchmark is written beside ``out`` and renamed into place.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark_data import layout
from benchmark_data.benchmark import BenchmarkWriter
from benchmark_data.mimic import cxr, ehr
from benchmark_data.mimic.cohort import (
    assign_splits,
    check_subjects,
    demographics,
    read_windows,
    stays_table,
)
from benchmark_data.mimic.importer import ERR_OUT_EXISTS, ERR_SEED, Log, _quiet
from benchmark_data.mimic.listfiles import read_all_tasks
from benchmark_data.mimic.notes import read_stay_notes
from benchmark_data.mimic.sources import (
    InputFiles,
    MimicImportError,
    check_dir,
    id_column,
    read_csv,
    read_subject_set,
    require_csv,
)
from benchmark_data.notes import RADIOLOGY, usable_mask
from benchmark_data.store import LocalStore
from benchmark_data.suite import builtin_suite
from benchmark_data.synth.yu import (
    HORIZON_MIN,
    LONG_STAY_MIN,
    one_stay_per_test_patient,
    withheld_scenarios,
    write_units,
)
from benchmark_data.tasks import SPLITS

DEFAULT_NAME = "yu2025-mimic"
SUITE = "yu2025"
SCENARIO_STREAM = 77  # the seed sequence's second word for the scenarios
PICK_STREAM = 78  # ... and for the one test stay kept per patient
HORIZON_SECONDS = HORIZON_MIN * 60
ERR_NO_FLAG = "{path}: {n} admission(s) of the cohort have no hospital_expire_flag, first hadm_id: {first}"  # fmt: skip


def _mortality(mimic_iv: Path, hadm_ids: pd.Series, files: InputFiles) -> pd.Series:
    """In-hospital death (0/1) per admission, from ``hospital_expire_flag``."""
    path = require_csv(mimic_iv, "hosp/admissions.csv", "core/admissions.csv")
    files.record(f"mimic-iv/{path.relative_to(mimic_iv).as_posix()}", path)
    adm = read_csv(path, columns=["hadm_id", "hospital_expire_flag"])
    adm["hadm_id"] = id_column(adm, "hadm_id", path=path)
    flag = pd.to_numeric(adm.drop_duplicates("hadm_id").set_index("hadm_id")["hospital_expire_flag"], errors="coerce")  # fmt: skip
    out = hadm_ids.map(flag)
    bad = out.isna() | ~out.isin([0, 1])
    if bad.any():
        first = hadm_ids[bad].head(5).tolist()
        raise MimicImportError(ERR_NO_FLAG.format(path=path, n=int(bad.sum()), first=first))
    return out.astype(np.int64)


def _deaths(mimic_iv: Path, files: InputFiles) -> pd.Series:
    """Time of death per admission (NaT when alive at discharge)."""
    path = require_csv(mimic_iv, "hosp/admissions.csv", "core/admissions.csv")
    adm = read_csv(path, columns=["hadm_id", "deathtime"])
    adm["hadm_id"] = id_column(adm, "hadm_id", path=path)
    return pd.to_datetime(adm.drop_duplicates("hadm_id").set_index("hadm_id")["deathtime"], errors="coerce")  # fmt: skip


def import_yu(
    *,
    medmod_root: str | os.PathLike[str],
    mimic_iv: str | os.PathLike[str],
    mimic_cxr: str | os.PathLike[str],
    mimic_note: str | os.PathLike[str],
    out: str | os.PathLike[str],
    test_subjects: str | os.PathLike[str] | None = None,
    val_subjects: str | os.PathLike[str] | None = None,
    cxr_images: str | os.PathLike[str] | None = None,
    seed: int = 42,
    name: str = DEFAULT_NAME,
    version: str | None = None,
    image_size: int = cxr.DEFAULT_IMAGE_SIZE,
    log: Log | None = None,
) -> dict[str, Any]:
    """Build a benchmark of the Yu et al. suite; the inputs are those of
    :func:`benchmark_data.mimic.import_mimic` plus ``mimic_note``, the MIMIC-IV-Note root
    (``radiology.csv[.gz]``, ``discharge.csv[.gz]``, ``radiology_detail.csv[.gz]``). Returns
    the manifest written."""
    if seed < 0:
        raise MimicImportError(ERR_SEED.format(seed=seed))
    dest = Path(out)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise MimicImportError(ERR_OUT_EXISTS.format(out=dest))
    log = log or _quiet
    files = InputFiles()
    root = check_dir(Path(medmod_root), what="--medmod-root")
    iv = check_dir(Path(mimic_iv), what="--mimic-iv")
    cxr_root = check_dir(Path(mimic_cxr), what="--mimic-cxr")
    note_root = check_dir(Path(mimic_note), what="--mimic-note")
    images_root = check_dir(Path(cxr_images), what="--cxr-images") if cxr_images else None
    tests = read_subject_set(Path(test_subjects)) if test_subjects else None
    vals = read_subject_set(Path(val_subjects)) if val_subjects else None

    log("reading the listfiles and the ICU stays")
    tasks = read_all_tasks(root, files)
    stays = stays_table(tasks)
    windows = read_windows(root, iv, files, stays["stay_id"].to_numpy())
    check_subjects(stays, windows, "the ICU stay tables")
    stays = stays.merge(windows[["stay_id", "hadm_id", "intime", "outtime"]], on="stay_id")
    stays["length_seconds"] = (stays["outtime"] - stays["intime"]).dt.total_seconds().round()
    death = stays["hadm_id"].map(_deaths(iv, files))
    alive_at_24 = death.isna() | ((death - stays["intime"]).dt.total_seconds() >= HORIZON_SECONDS)
    stays = stays[(stays["length_seconds"] >= HORIZON_SECONDS) & alive_at_24].reset_index(drop=True)
    parts = pd.concat([t.rows[["subject_id", "part"]] for t in tasks.values()], ignore_index=True)
    parts = parts[parts["subject_id"].isin(stays["subject_id"])]
    split, rule = assign_splits(parts, test_subjects=tests, val_subjects=vals, seed=seed)
    stays["split"] = stays["subject_id"].map(split)
    stays = stays.sort_values("stay_id", ignore_index=True)
    keep = one_stay_per_test_patient(stays, np.random.default_rng([seed, PICK_STREAM]))
    stays = stays[keep].reset_index(drop=True)
    stays["mortality"] = _mortality(iv, stays["hadm_id"], files)
    stays["long_stay"] = (stays["length_seconds"] > LONG_STAY_MIN * 60).astype(np.int64)
    stays = stays.sort_values("stay_id", ignore_index=True)
    demo = demographics(stays, iv, files)

    log("chest X-rays and radiology reports of the first 24 hours")
    images = cxr.stay_images(cxr.read_metadata(cxr_root, files), cxr.read_chexpert(cxr_root, files), stays)  # fmt: skip
    images = images[images["seconds"] <= HORIZON_SECONDS].merge(stays[["stay_id", "split"]], on="stay_id")  # fmt: skip
    notes = read_stay_notes(note_root, stays[["stay_id", "subject_id", "hadm_id", "intime", "outtime"]], files)  # fmt: skip
    notes = notes[usable_mask(notes, prediction_minute=HORIZON_MIN, own_study=None)]
    notes = notes[notes["note_type"] == RADIOLOGY].reset_index(drop=True)
    limits = pd.DataFrame({"stay_id": stays["stay_id"], "limit": HORIZON_SECONDS})
    latest = cxr.latest_image(limits, images)
    has_cxr = latest.notna().to_numpy()
    has_notes = stays["stay_id"].isin(notes["stay_id"]).to_numpy()
    units = pd.DataFrame({
        "stay_id": stays["stay_id"], "subject_id": stays["subject_id"], "split": stays["split"],
        "cxr_dicom_id": latest.to_numpy(), "has_cxr": has_cxr.astype(np.int64),
        "has_notes": has_notes.astype(np.int64), "paired": (has_cxr & has_notes).astype(np.int64),
        "mortality": stays["mortality"], "long_stay": stays["long_stay"],
    })  # fmt: skip
    suite = builtin_suite(SUITE)
    scenarios = withheld_scenarios(units, suite, np.random.default_rng([seed, SCENARIO_STREAM]))

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.partial-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        w = BenchmarkWriter(LocalStore(tmp))
        w.write_csv(layout.STAYS, pd.DataFrame({
            "stay_id": stays["stay_id"], "subject_id": stays["subject_id"],
            "hadm_id": stays["hadm_id"], "split": stays["split"],
            "intime": stays["intime"].dt.strftime("%Y-%m-%d %H:%M:%S"), "stay": stays["stay"],
        }))  # fmt: skip
        w.write_csv(layout.PUBLIC_DEMOGRAPHICS, demo)
        w.write_csv(layout.DEMOGRAPHICS, demo)
        split_of = stays.set_index("stay_id")["split"]
        for name_ in SPLITS:
            part = notes[notes["stay_id"].map(split_of) == name_]
            w.write_csv(layout.notes(name_), part.reset_index(drop=True))
        ts_stats = _write_series(w, stays, root, log)
        _write_images(w, images, images_root, image_size, log)
        counts = write_units(w, units, scenarios, suite)
        source = {
            "kind": "mimic", "importer": "benchmark_data.mimic.yu",
            "inputs": dict(sorted(files.hashes.items())), "test_split": rule.test,
            "val_split": rule.val,
            "images": (f"PNG, 8-bit grayscale, shorter side {image_size} px" if images_root
                       else "not included: fetch MIMIC-CXR-JPG"),
        }  # fmt: skip
        manifest = w.finish(
            name=name, version=version or f"mimic-seed{seed}", source=source, seed=seed,
            suite=suite,
            extra={
                "tasks": list(suite.task_slugs), "counts": counts,
                "scored_on": {t: "public" for t in suite.task_slugs},
                "stats": {"stays": len(stays), "subjects": int(stays["subject_id"].nunique()),
                          "images": len(images), "reports": len(notes), **ts_stats},
            },
        )  # fmt: skip
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _write_series(w: BenchmarkWriter, stays: pd.DataFrame, root: Path, log: Log) -> dict[str, Any]:
    """Each split's episode rows of the first 24 hours and their discretized hours."""
    stats = ehr.SeriesStats()
    for split in SPLITS:
        part = stays[stays["split"] == split]
        log(f"reading the time series of {len(part):,} {split} stays")
        ts = ehr.read_split(part, root)
        ts = ts[pd.to_numeric(ts["hours"], errors="coerce") <= HORIZON_MIN / 60].reset_index(drop=True)  # fmt: skip
        values = ehr.to_values(ts, stats)
        n_hours = np.full(len(part), HORIZON_MIN // 60, dtype=np.int64)
        arr, index = ehr.discretized(values, part["stay_id"].to_numpy(), n_hours)
        w.write_csv(layout.timeseries(split), ts)
        w.write_npy(layout.discretized(split), arr)
        w.write_csv(layout.discretized_index(split), index)
    return {"unknown_category_values": stats.unknown_categories, "values_not_numbers": stats.not_numbers}  # fmt: skip


def _write_images(w: BenchmarkWriter, images: pd.DataFrame, root: Path | None, size: int, log: Log) -> None:  # fmt: skip
    img = images.sort_values(["stay_id", "seconds", "dicom_id"])
    paths = [layout.image(d) if root is not None else "" for d in img["dicom_id"]]
    if root is not None:
        log(f"converting {len(img):,} chest X-rays to {size} px PNG")
        for row in img.itertuples():
            src = cxr.jpg_path(root, row.subject_id, row.study_id, row.dicom_id)
            w.write_bytes(layout.image(row.dicom_id), cxr.png_bytes(src, size=size))
    w.write_csv(layout.CXR_METADATA, pd.DataFrame({
        "dicom_id": img["dicom_id"], "subject_id": img["subject_id"], "study_id": img["study_id"],
        "stay_id": img["stay_id"], "split": img["split"],
        "study_datetime": img["study_datetime"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        "view_position": img["view_position"], "hours": (img["seconds"] / 3600.0).round(6),
        "path": paths,
    }))  # fmt: skip


__all__ = ["DEFAULT_NAME", "import_yu"]
