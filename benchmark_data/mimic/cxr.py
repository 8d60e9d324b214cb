"""Chest X-rays: which images belong to which stay, and which one each unit may use.

MedMod's pairing (``src/data/utils.py``), with the look-ahead removed:

- the study time is ``StudyDate`` + ``StudyTime`` truncated to whole seconds;
- only ``ViewPosition == "AP"`` images whose study has a row in the CheXpert labels count;
- an image belongs to a stay when ``intime <= study time <= outtime`` (the latest such stay
  if two of a subject's stays overlap);
- a unit is paired with the latest of its stay's images taken at or before its prediction
  time: ``intime + 48 h`` for in-hospital mortality, ``outtime`` for phenotyping,
  ``intime + period_length`` for decompensation and length of stay (MedMod uses the end of
  the stay there, which leaks later images into earlier hours). Ties in time go to the
  greater ``dicom_id``;
- radiology units are the stays' images, one per study (the first of the study in the
  metadata file, as MedMod's ``get_all_cxr``), with the study's CheXpert findings, where
  1.0 is positive and 0.0, -1.0 (uncertain) and blank are negative (U-zeros).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from benchmark_data.mimic.sources import (
    InputFiles,
    MimicImportError,
    id_column,
    read_csv,
    require_csv,
)
from benchmark_data.tasks import FINDING_NAMES, slugify

METADATA = "mimic-cxr-2.0.0-metadata.csv"
CHEXPERT = "mimic-cxr-2.0.0-chexpert.csv"
METADATA_COLUMNS = ["dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime"]
VIEW = "AP"
IHM_HOURS = 48
DEFAULT_IMAGE_SIZE = 224

ERR_STUDY_TIME = "{path}: {n} image(s) have an invalid StudyDate/StudyTime, first dicom_id: {first}"
ERR_NO_IMAGE = "chest X-ray image missing: expected {path}"
ERR_BAD_IMAGE = "chest X-ray image {path} cannot be decoded ({detail})"


def study_datetimes(date: pd.Series, time: pd.Series) -> pd.Series:
    """``StudyDate`` (YYYYMMDD) and ``StudyTime`` (HHMMSS.fff, leading zeros dropped) as
    datetimes, truncated to whole seconds as MedMod does; NaT where invalid."""
    d = pd.to_numeric(date, errors="coerce")
    t = pd.to_numeric(time, errors="coerce")
    ok = d.notna() & t.notna() & (t >= 0) & (t < 240000)
    d_txt = d.where(ok, 0).astype(np.int64).astype(str)
    t_txt = np.floor(t.where(ok, 0)).astype(np.int64).astype(str).str.zfill(6)
    parsed = pd.to_datetime(d_txt + " " + t_txt, format="%Y%m%d %H%M%S", errors="coerce")
    return parsed.where(ok).astype("datetime64[ns]")


def read_metadata(mimic_cxr: Path, inputs: InputFiles) -> pd.DataFrame:
    """``dicom_id, subject_id, study_id, view_position, study_datetime, order`` of every
    image (``order``: the row in the metadata file)."""
    path = require_csv(mimic_cxr, METADATA)
    inputs.record(f"mimic-cxr/{path.name}", path)
    df = read_csv(path, columns=METADATA_COLUMNS, dtype={"dicom_id": str, "ViewPosition": str})
    dt = study_datetimes(df["StudyDate"], df["StudyTime"])
    bad = dt.isna()
    if bad.any():
        first = df.loc[bad, "dicom_id"].head(5).tolist()
        raise MimicImportError(ERR_STUDY_TIME.format(path=path, n=int(bad.sum()), first=first))
    return pd.DataFrame(
        {
            "dicom_id": df["dicom_id"].astype(str).str.strip(),
            "subject_id": id_column(df, "subject_id", path=path),
            "study_id": id_column(df, "study_id", path=path),
            "view_position": df["ViewPosition"].astype("string").str.strip(),
            "study_datetime": dt,
            "order": np.arange(len(df), dtype=np.int64),
        }
    )


def read_chexpert(mimic_cxr: Path, inputs: InputFiles) -> pd.DataFrame:
    """``subject_id, study_id`` and the 14 finding slugs as 0/1 (1.0 -> 1, else 0)."""
    path = require_csv(mimic_cxr, CHEXPERT)
    inputs.record(f"mimic-cxr/{path.name}", path)
    df = read_csv(path, columns=["subject_id", "study_id", *FINDING_NAMES])
    out = pd.DataFrame(
        {
            "subject_id": id_column(df, "subject_id", path=path),
            "study_id": id_column(df, "study_id", path=path),
        }
    )
    for name in FINDING_NAMES:
        out[slugify(name)] = (pd.to_numeric(df[name], errors="coerce") == 1.0).astype(np.int64)
    return out.drop_duplicates(["subject_id", "study_id"])


def stay_images(
    metadata: pd.DataFrame, chexpert: pd.DataFrame, stays: pd.DataFrame
) -> pd.DataFrame:
    """The AP images with CheXpert labels taken during a stay, one stay per image.

    ``stays``: ``stay_id, subject_id, intime, outtime``. Returns the metadata columns plus
    ``stay_id`` and ``seconds`` (since ``intime``), sorted by ``stay_id, seconds, dicom_id``.
    """
    ap = metadata[metadata["view_position"] == VIEW]
    labelled = ap.merge(chexpert[["subject_id", "study_id"]], on=["subject_id", "study_id"])
    df = labelled.merge(stays[["stay_id", "subject_id", "intime", "outtime"]], on="subject_id")
    df["seconds"] = (df["study_datetime"] - df["intime"]).dt.total_seconds().round()
    length = (df["outtime"] - df["intime"]).dt.total_seconds()
    df = df[(df["seconds"] >= 0) & (df["seconds"] <= length)]
    df = df.sort_values(["dicom_id", "intime"]).drop_duplicates("dicom_id", keep="last")
    df = df.assign(seconds=df["seconds"].astype(np.int64))
    df = df.drop(columns=["intime", "outtime"])
    return df.sort_values(["stay_id", "seconds", "dicom_id"], ignore_index=True)


def latest_image(limits: pd.DataFrame, images: pd.DataFrame) -> pd.Series:
    """For each row of ``limits`` (``stay_id, limit``: seconds since ``intime``), the
    ``dicom_id`` of its stay's latest image with ``seconds <= limit``, or NA.

    >>> imgs = pd.DataFrame({"stay_id": [1, 1], "seconds": [10, 20], "dicom_id": ["a", "b"]})
    >>> limits = pd.DataFrame({"stay_id": [1, 1, 1, 2], "limit": [5, 10, 30, 99]})
    >>> latest_image(limits, imgs).tolist()
    [<NA>, 'a', 'b', <NA>]
    """
    left = limits[["stay_id", "limit"]].astype(np.int64).assign(row=np.arange(len(limits)))
    left = left.sort_values("limit", kind="stable")
    right = images[["stay_id", "seconds", "dicom_id"]].astype({"stay_id": np.int64})
    right = right.sort_values(["seconds", "dicom_id"], kind="stable")
    merged = pd.merge_asof(
        left,
        right,
        left_on="limit",
        right_on="seconds",
        by="stay_id",
        direction="backward",
        allow_exact_matches=True,
    )
    out = merged.sort_values("row")["dicom_id"].astype("string")
    return out.reset_index(drop=True).rename("cxr_dicom_id")


def radiology_units(images: pd.DataFrame, chexpert: pd.DataFrame) -> pd.DataFrame:
    """``dicom_id, subject_id, stay_id`` and the 14 finding labels: one image per study."""
    first = images.sort_values("order").drop_duplicates("study_id")
    units = first[["dicom_id", "subject_id", "stay_id", "study_id"]].merge(
        chexpert, on=["subject_id", "study_id"]
    )
    return units.drop(columns="study_id").sort_values("dicom_id", ignore_index=True)


def jpg_path(root: Path, subject_id: int, study_id: int, dicom_id: str) -> Path:
    """Where MIMIC-CXR-JPG keeps an image: ``files/p{sid[:2]}/p{sid}/s{study}/{dicom}.jpg``
    (``root`` may be the directory holding ``files/`` or ``files/`` itself)."""
    sid = str(subject_id)
    base = root / "files" if (root / "files").is_dir() else root
    return base / f"p{sid[:2]}" / f"p{sid}" / f"s{study_id}" / f"{dicom_id}.jpg"


def png_bytes(path: Path, *, size: int = DEFAULT_IMAGE_SIZE) -> bytes:
    """An image as an 8-bit grayscale PNG whose shorter side is ``size`` pixels (bilinear,
    aspect ratio kept)."""
    if not path.is_file():
        raise MimicImportError(ERR_NO_IMAGE.format(path=path))
    try:
        with Image.open(path) as im:
            gray = im.convert("L")
    except (UnidentifiedImageError, OSError) as exc:
        raise MimicImportError(ERR_BAD_IMAGE.format(path=path, detail=exc)) from None
    w, h = gray.size
    scale = size / min(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    buf = io.BytesIO()
    gray.resize(new, Image.Resampling.BILINEAR).save(buf, format="PNG")
    return buf.getvalue()
