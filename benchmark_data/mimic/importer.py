"""Import MedMod-preprocessed MIMIC-IV and MIMIC-CXR files into the benchmark format.

Everything is read and checked first; the benchmark is then written into a temporary
directory next to ``out`` and renamed into place, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark_data import causal, layout
from benchmark_data.benchmark import BenchmarkWriter
from benchmark_data.discretize import split_index
from benchmark_data.mimic import cxr, ehr
from benchmark_data.mimic.cohort import (
    SplitRule,
    assign_splits,
    check_subjects,
    demographics,
    read_windows,
    stays_table,
)
from benchmark_data.mimic.listfiles import EHR_TASKS, read_all_tasks
from benchmark_data.mimic.sources import InputFiles, MimicImportError, check_dir, read_subject_set
from benchmark_data.sequestered import prediction_hours
from benchmark_data.store import LocalStore
from benchmark_data.tasks import MEDMOD, SPLITS, TASK_SLUGS, TASKS

DEFAULT_NAME = "medmod-mimic"
ERR_OUT_EXISTS = "{out} already exists and is not empty; remove it or choose another --out"
ERR_SEED = "--seed must be a non-negative integer, not {seed}"
# The seed sequence's second word for the test split's cutoffs (the scenarios use the
# task's index, 0-4).
CUTOFF_STREAM = 99
ERR_IMAGE_SIZE = "--image-size must be a positive number of pixels, not {size}"

Log = Callable[[str], None]


@dataclass(frozen=True)
class MimicInputs:
    """Where the credentialed input files are (see :func:`import_mimic`)."""

    medmod_root: Path
    mimic_iv: Path
    mimic_cxr: Path
    test_subjects: Path | None = None
    val_subjects: Path | None = None
    cxr_images: Path | None = None


@dataclass
class Imported:
    """Every table of the benchmark, before writing."""

    stays: pd.DataFrame  # stay_id, subject_id, hadm_id, split, intime, outtime, stay, ts_*
    units: dict[str, pd.DataFrame]  # task -> all units with split, labels, cxr_dicom_id
    images: pd.DataFrame  # stay images with split
    demographics: pd.DataFrame
    rule: SplitRule


def _quiet(_: str) -> None:
    pass


def _hours(seconds: pd.Series) -> pd.Series:
    return (seconds.astype(np.float64) / 3600.0).round(6)


def _pair_units(
    task: str, units: pd.DataFrame, stays: pd.DataFrame, images: pd.DataFrame
) -> pd.Series:
    """The paired image of each unit (no look-ahead; see :mod:`benchmark_data.mimic.cxr`)."""
    if task == "in-hospital-mortality":
        limit = pd.Series(cxr.IHM_HOURS * 3600, index=units.index)
    elif task == "phenotyping":
        length = stays.set_index("stay_id")["length_seconds"]
        limit = units["stay_id"].map(length)
    else:
        limit = units["period_length"] * 3600
    limits = pd.DataFrame({"stay_id": units["stay_id"].to_numpy(), "limit": limit.to_numpy()})
    return pd.Series(cxr.latest_image(limits, images).to_numpy(), index=units.index)


def collect(inputs: MimicInputs, *, seed: int, files: InputFiles, log: Log = _quiet) -> Imported:
    """Read and check every input and build the benchmark's tables."""
    root = check_dir(inputs.medmod_root, what="--medmod-root")
    mimic_iv = check_dir(inputs.mimic_iv, what="--mimic-iv")
    mimic_cxr = check_dir(inputs.mimic_cxr, what="--mimic-cxr")
    if inputs.cxr_images is not None:
        check_dir(inputs.cxr_images, what="--cxr-images")
    test_subjects = val_subjects = None
    if inputs.test_subjects is not None:
        test_subjects = read_subject_set(inputs.test_subjects)
        files.record(f"test-subjects/{inputs.test_subjects.name}", inputs.test_subjects)
    if inputs.val_subjects is not None:
        val_subjects = read_subject_set(inputs.val_subjects)
        files.record(f"val-subjects/{inputs.val_subjects.name}", inputs.val_subjects)
    log("reading the listfiles")
    tasks = read_all_tasks(root, files)

    stays = stays_table(tasks)
    windows = read_windows(root, mimic_iv, files, stays["stay_id"].to_numpy())
    check_subjects(stays, windows, "the ICU stay tables")
    stays = stays.merge(windows[["stay_id", "hadm_id", "intime", "outtime"]], on="stay_id")
    stays["length_seconds"] = (stays["outtime"] - stays["intime"]).dt.total_seconds().round()
    parts = pd.concat([t.rows[["subject_id", "part"]] for t in tasks.values()], ignore_index=True)
    split, rule = assign_splits(
        parts, test_subjects=test_subjects, val_subjects=val_subjects, seed=seed
    )
    stays["split"] = stays["subject_id"].map(split)

    log("reading the MIMIC-IV demographics")
    demo = demographics(stays, mimic_iv, files)

    log("pairing chest X-rays with stays")
    metadata = cxr.read_metadata(mimic_cxr, files)
    chexpert = cxr.read_chexpert(mimic_cxr, files)
    images = cxr.stay_images(metadata, chexpert, stays)
    images = images.merge(stays[["stay_id", "split"]], on="stay_id")

    units: dict[str, pd.DataFrame] = {}
    split_of_stay = stays.set_index("stay_id")["split"]
    for task in EHR_TASKS:
        rows = tasks[task].rows.drop(columns=["stay", "part", "ts_dir"])
        rows["split"] = rows["stay_id"].map(split_of_stay)
        rows["cxr_dicom_id"] = _pair_units(task, rows, stays, images)
        units[task] = rows
    rad = cxr.radiology_units(images, chexpert)
    rad["split"] = rad["stay_id"].map(split_of_stay)
    rad["cxr_dicom_id"] = rad["dicom_id"]
    units["radiology"] = rad
    return Imported(stays=stays, units=units, images=images, demographics=demo, rule=rule)


def unit_columns(task: str, *, labels: bool) -> list[str]:
    t = TASKS[task]
    cols = [*t.key_columns, "subject_id"]
    if "stay_id" not in t.key_columns:
        cols.append("stay_id")
    cols.append("cxr_dicom_id")
    return [*cols, *t.label_columns] if labels else cols


@dataclass
class TestCut:
    """The test split's public view: each test stay's family, cutoff and publication
    (:mod:`benchmark_data.causal`), and every test unit with its prediction time."""

    plan: pd.DataFrame  # stay_id, family, cutoff_hours, published
    end_hours: pd.Series  # by stay_id
    units: dict[str, pd.DataFrame]  # every test unit: ..., prediction_hours, public


def cut_test_split(data: Imported, *, seed: int) -> TestCut:
    """Draw the cutoffs (seeded) and mark the public test units."""
    stays = data.stays[data.stays["split"] == "test"].sort_values("stay_id")
    end = pd.Series(
        np.round(stays["length_seconds"].to_numpy(dtype=np.float64) / 3600.0, 6),
        index=stays["stay_id"].to_numpy(),
    )
    test = {t: u[u["split"] == "test"].sort_values(list(TASKS[t].key_columns), ignore_index=True)
            for t, u in data.units.items()}  # fmt: skip
    plan = causal.plan_cutoffs(
        pd.DataFrame({"stay_id": end.index, "subject_id": stays["subject_id"].to_numpy(),
                      "end_hours": end.to_numpy()}),
        mortality_stays=test["in-hospital-mortality"]["stay_id"].to_numpy(),
        hourly=test["length-of-stay"][["stay_id", "period_length"]],
        rng=np.random.default_rng([seed, CUTOFF_STREAM]),
    )  # fmt: skip
    image_hours = pd.Series(
        _hours(data.images["seconds"]).to_numpy(), index=data.images["dicom_id"].to_numpy()
    )  # fmt: skip
    units: dict[str, pd.DataFrame] = {}
    for task, df in test.items():
        hours = prediction_hours(
            task, df, end_hours=df["stay_id"].map(end),
            image_hours=df["dicom_id"].map(image_hours) if "dicom_id" in df else None,
        )  # fmt: skip
        df = df.assign(prediction_hours=np.round(hours, 6))
        units[task] = df.assign(
            public=causal.public_unit_mask(task, df, plan).astype(np.int64),
            clean=causal.clean_unit_mask(df, plan).astype(np.int64),
        )
    return TestCut(plan=plan, end_hours=end, units=units)


def _hours_needed(data: Imported) -> pd.Series:
    """Per stay, the hourly rows its units read: 48 for mortality, ``period_length`` for the
    hourly tasks (never more than the stay's length, but kept as a floor)."""
    ihm = data.units["in-hospital-mortality"]
    parts = [pd.Series(cxr.IHM_HOURS, index=ihm["stay_id"].unique())]
    for task in ("decompensation", "length-of-stay"):
        parts.append(data.units[task].groupby("stay_id")["period_length"].max())
    return pd.concat(parts).groupby(level=0).max()


def _write_ehr(
    writer: BenchmarkWriter, data: Imported, cut: TestCut, root: Path, log: Log
) -> dict[str, Any]:
    """Time series and discretized arrays per split (the test split whole under
    ``credentialed/test/``, cut in ``public/``); returns what the discretizer skipped."""
    stats = ehr.SeriesStats()
    need = _hours_needed(data)
    for split in SPLITS:
        stays = data.stays[data.stays["split"] == split].sort_values("stay_id")
        log(f"reading the time series of {len(stays):,} {split} stays")
        ts = ehr.read_split(stays, root, progress=lambda i, n: log(f"  {i:,} of {n:,} stays"))
        values = ehr.to_values(ts, stats)
        n_hours = np.maximum(
            np.ceil(stays["length_seconds"].to_numpy() / 3600.0).astype(np.int64),
            stays["stay_id"].map(need).fillna(0).to_numpy(dtype=np.int64),
        )
        n_hours = np.maximum(n_hours, 1)
        arr, index = ehr.discretized(values, stays["stay_id"].to_numpy(), n_hours)
        if split == "test":
            writer.write_csv(layout.TEST_TIMESERIES, ts)
            writer.write_npy(layout.TEST_DISCRETIZED, arr)
            writer.write_csv(layout.TEST_DISCRETIZED_INDEX, index)
            ts = causal.cut_timeseries(ts, cut.plan)
            arr, index = causal.cut_discretized(arr, index, cut.plan)
            index = split_index(index["stay_id"], index["n_hours"])
        writer.write_csv(layout.timeseries(split), ts)
        writer.write_npy(layout.discretized(split), arr)
        writer.write_csv(layout.discretized_index(split), index)
    return {
        "unknown_category_values": stats.unknown_categories,
        "values_not_numbers": stats.not_numbers,
    }


def _write_cxr(
    writer: BenchmarkWriter, data: Imported, cut: TestCut, images_root: Path | None, size: int,
    log: Log,
) -> None:  # fmt: skip
    img = data.images.sort_values(["stay_id", "seconds", "dicom_id"])
    is_test = (img["split"] == "test").to_numpy()
    hours = _hours(img["seconds"])
    shown = ~is_test | causal.image_published(
        pd.DataFrame({"stay_id": img["stay_id"], "hours": hours}), cut.plan
    )
    paths = pd.Series("", index=img.index, dtype=object)
    if images_root is not None:
        log(f"converting {len(img):,} chest X-rays to {size} px PNG")
        for i, row in enumerate(img.itertuples()):
            src = cxr.jpg_path(images_root, row.subject_id, row.study_id, row.dicom_id)
            published = bool(shown[i])
            rel = (
                layout.image(row.dicom_id) if published else layout.sequestered_image(row.dicom_id)
            )
            writer.write_bytes(rel, cxr.png_bytes(src, size=size))
            paths[row.Index] = rel if published else ""
            if (i + 1) % 1000 == 0:
                log(f"  {i + 1:,} of {len(img):,} images")
    meta = pd.DataFrame(
        {
            "dicom_id": img["dicom_id"],
            "subject_id": img["subject_id"],
            "study_id": img["study_id"],
            "stay_id": img["stay_id"],
            "split": img["split"],
            "study_datetime": img["study_datetime"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "view_position": img["view_position"],
            "hours": hours,
            "path": paths,
        }
    )
    writer.write_csv(layout.CXR_METADATA, meta[shown])
    whole = meta[is_test].drop(columns=["split", "path"])
    writer.write_csv(
        layout.TEST_CXR_METADATA, whole.assign(published=shown[is_test].astype(np.int64))
    )


def write_benchmark(
    writer: BenchmarkWriter,
    data: Imported,
    inputs: MimicInputs,
    *,
    seed: int,
    image_size: int,
    log: Log = _quiet,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write every file; returns the manifest's ``counts`` and ``stats``."""
    stays = data.stays.sort_values("stay_id")
    cut = cut_test_split(data, seed=seed)
    table = pd.DataFrame(
        {
            "stay_id": stays["stay_id"],
            "subject_id": stays["subject_id"],
            "hadm_id": stays["hadm_id"],
            "split": stays["split"],
            "intime": stays["intime"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "stay": stays["stay"],
        }
    )
    is_test = table["split"] == "test"
    published = table["stay_id"].map(cut.plan.set_index("stay_id")["published"]).eq(1)
    writer.write_csv(layout.STAYS, table[~is_test | published])
    whole = table[is_test].drop(columns="split")
    whole = whole.assign(end_hours=whole["stay_id"].map(cut.end_hours).to_numpy())
    writer.write_csv(layout.TEST_STAYS, whole.merge(cut.plan, on="stay_id", validate="one_to_one"))
    counts: dict[str, Any] = {}
    for task in TASK_SLUGS:
        t = TASKS[task]
        units = data.units[task].sort_values(list(t.key_columns), ignore_index=True)
        c: dict[str, int] = {}
        for split in ("train", "val"):
            part = units[units["split"] == split]
            writer.write_csv(layout.units(task, split), part[unit_columns(task, labels=True)])
            c[split] = len(part)
        test_all = cut.units[task]
        public = test_all["public"].to_numpy() == 1
        test = test_all[public]
        cols = unit_columns(task, labels=False)
        writer.write_csv(layout.units(task, "test"), test[cols])
        c["test"] = len(test)
        c["test_paired"] = int(test["cxr_dicom_id"].notna().sum())
        c["test_all"] = len(test_all)
        c["test_all_paired"] = int(test_all["cxr_dicom_id"].notna().sum())
        clean = test_all[test_all["clean"] == 1]
        c["test_clean"] = len(clean)
        c["test_clean_paired"] = int(clean["cxr_dicom_id"].notna().sum())
        counts[task] = c
        label_cols = [*cols[:-1], *t.label_columns]
        writer.write_csv(layout.test_labels(task), test[label_cols])
        writer.write_csv(
            layout.test_units(task), test_all[[*cols, "prediction_hours", "public", "clean"]]
        )
        writer.write_csv(layout.all_test_labels(task), test_all[label_cols])
        rng = np.random.default_rng([seed, TASK_SLUGS.index(task)])
        whole_sets, public_sets = causal.stratified_scenarios(test_all, public, rng)
        writer.write_csv(layout.scenarios(task), public_sets)
        writer.write_csv(layout.test_scenarios(task), whole_sets)
    writer.write_csv(layout.DEMOGRAPHICS, data.demographics)
    _write_cxr(writer, data, cut, inputs.cxr_images, image_size, log)
    ts_stats = _write_ehr(writer, data, cut, Path(inputs.medmod_root), log)
    stats = {
        "stays": len(stays),
        "subjects": int(stays["subject_id"].nunique()),
        "stays_per_split": {s: int((stays["split"] == s).sum()) for s in SPLITS},
        "images": len(data.images),
        **ts_stats,
    }
    return counts, stats


def import_mimic(
    *,
    medmod_root: str | os.PathLike[str],
    mimic_iv: str | os.PathLike[str],
    mimic_cxr: str | os.PathLike[str],
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
    """Build a benchmark directory from MedMod's preprocessed MIMIC-IV and MIMIC-CXR files.

    Parameters
    ----------
    medmod_root
        MedMod's ``mimic4extract`` output: ``{task}/{train,val,test}_listfile.csv`` and the
        episode files under ``{task}/train/`` and ``{task}/test/`` for the four EHR tasks;
        ``root/all_stays.csv`` if present.
    mimic_iv
        MIMIC-IV: ``hosp/admissions.csv[.gz]``, ``hosp/patients.csv[.gz]`` and, unless
        ``root/all_stays.csv`` covers every stay, ``icu/icustays.csv[.gz]``.
    mimic_cxr
        MIMIC-CXR-JPG: ``mimic-cxr-2.0.0-metadata.csv[.gz]``, ``mimic-cxr-2.0.0-chexpert.csv[.gz]``.
    out
        The benchmark directory to create; it must not exist or be empty.
    test_subjects, val_subjects
        Split files (MedMod's ``testset_iv.csv`` / ``valset_iv.csv``). Without them the test
        split is that of the listfiles, and validation that of the val listfiles or, if there
        are none, a seeded eighth of the training subjects.
    cxr_images
        MIMIC-CXR-JPG's image root (holding ``files/``). When given, every listed image is
        converted to ``public/cxr/images/{dicom_id}.png`` (8-bit grayscale, shorter side
        ``image_size`` px); otherwise ``path`` is empty and participants fetch MIMIC-CXR-JPG.
    seed
        Seeds the validation subjects (when drawn) and the scenarios' withheld stays.
    log
        Called with a line of progress now and then.

    Returns
    -------
    dict
        The manifest written.
    """
    if seed < 0:
        raise MimicImportError(ERR_SEED.format(seed=seed))
    if image_size < 1:
        raise MimicImportError(ERR_IMAGE_SIZE.format(size=image_size))
    dest = Path(out)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise MimicImportError(ERR_OUT_EXISTS.format(out=dest))
    log = log or _quiet
    inputs = MimicInputs(
        medmod_root=Path(medmod_root),
        mimic_iv=Path(mimic_iv),
        mimic_cxr=Path(mimic_cxr),
        test_subjects=Path(test_subjects) if test_subjects is not None else None,
        val_subjects=Path(val_subjects) if val_subjects is not None else None,
        cxr_images=Path(cxr_images) if cxr_images is not None else None,
    )
    files = InputFiles()
    data = collect(inputs, seed=seed, files=files, log=log)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.partial-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        writer = BenchmarkWriter(LocalStore(tmp))
        counts, stats = write_benchmark(
            writer, data, inputs, seed=seed, image_size=image_size, log=log
        )
        source = {
            "kind": "mimic",
            "importer": "benchmark_data.mimic",
            "inputs": dict(sorted(files.hashes.items())),
            "test_split": data.rule.test,
            "val_split": data.rule.val,
            "images": (
                f"PNG, 8-bit grayscale, shorter side {image_size} px"
                if inputs.cxr_images is not None
                else "not included: fetch MIMIC-CXR-JPG"
            ),
        }
        manifest = writer.finish(
            name=name,
            version=version or f"mimic-seed{seed}",
            source=source,
            seed=seed,
            suite=MEDMOD,
            extra={
                "tasks": list(TASK_SLUGS),
                "counts": counts,
                "scored_on": causal.scored_on(counts),
                "stats": stats,
            },
        )
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
