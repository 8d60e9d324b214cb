"""What a participant can read from a benchmark's public files, as one feature row per unit.

Used by ``scripts/leak_probes.py``. Everything here comes from ``public/`` files read through
:class:`benchmark_data.Benchmark` (each read checked against the manifest) and from the file
sizes the manifest lists; nothing from ``credentialed/``. A split's features are computed
from that split's files only, so a model can be fitted on the train split (whose labels are
public) and applied to the test split.

Every quantity is taken relative to the unit's prediction time ``t`` (in-hospital
mortality: 48 h; decompensation and length of stay: ``period_length``; radiology: the
image's ``hours``; phenotyping: the end of the stay). Columns named ``past_*`` or ``*_after``
measure what a file shows beyond ``t``: a leak. The columns in :data:`CAUSAL` hold what a
causal model knows at ``t``. No function assumes that every stay has units or that the test
files cover whole stays: a source that is missing or says nothing about a stay gives 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark_data import Benchmark, layout

IHM = "in-hospital-mortality"
PHENO = "phenotyping"
DECOMP = "decompensation"
LOS = "length-of-stay"
RAD = "radiology"
IHM_HOURS = 48.0
_SPAN = 1.0e6  # hours per stay in the sorted search keys (stays last far less)

# Causal controls: known to any causal model at the prediction time.
CAUSAL = (
    "t",  # the prediction time itself
    "ts_rows_upto",  # time-series rows with hours <= t
    "img_upto",  # images taken at or before t
    "png_last_upto",  # PNG size of the latest image at or before t
    "episode",  # the stay's episode number (earlier stays of the subject)
    "stay_len_seen",  # phenotyping only (prediction at the stay's end): the stay's length
)


def _max0(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0), 0.0)


class Codes:
    """Dense codes of a split's stays, in stay_id order (-1 for a stay not in the split)."""

    def __init__(self, stay_ids: np.ndarray) -> None:
        self.ids = np.unique(np.asarray(stay_ids, dtype=np.int64))

    def __call__(self, stay: np.ndarray) -> np.ndarray:
        stay = np.asarray(stay, dtype=np.int64)
        i = np.minimum(np.searchsorted(self.ids, stay), max(len(self.ids) - 1, 0))
        ok = (self.ids[i] == stay) if len(self.ids) else np.zeros(len(stay), dtype=bool)
        return np.where(ok, i, -1)


class Events:
    """Timed events (time-series rows, images, listed units) of stays, sorted for counting
    how many of a stay's events lie at or before a time."""

    def __init__(self, stay: np.ndarray, hours: np.ndarray, codes: Codes) -> None:
        code = codes(stay)
        hours = np.asarray(hours, dtype=np.float64)
        keep = (code >= 0) & np.isfinite(hours)
        self.keys = np.sort(code[keep] * _SPAN + hours[keep])
        self.codes = codes

    def count(self, stay: np.ndarray, upto: np.ndarray | None = None) -> np.ndarray:
        """Events of each queried stay at or before ``upto`` (all of them when None)."""
        code = self.codes(stay).astype(np.float64)
        base = code * _SPAN
        lo = np.searchsorted(self.keys, base - _SPAN / 2, side="left")
        top = base + (_SPAN / 2 if upto is None else np.asarray(upto, dtype=np.float64))
        hi = np.searchsorted(self.keys, top, side="right")
        return np.where(code >= 0, hi - lo, 0).astype(np.float64)


@dataclass
class SplitFiles:
    """The public files of one split, read once."""

    split: str
    stays: pd.DataFrame  # one row per stay of the split, stay-level columns, index stay_id
    units: dict[str, pd.DataFrame]
    images: pd.DataFrame  # dicom_id, stay_id, hours, png (bytes), study_id, pos_meta
    ts: Events
    img: Events
    img_png: pd.DataFrame  # images sorted by stay and time, for the latest-image lookups
    lists: dict[str, Events]  # hourly unit lists (decompensation, length of stay)


def _read_units(bench: Benchmark, task: str, split: str) -> pd.DataFrame | None:
    if task not in bench.tasks or not bench.has(layout.units(task, split)):
        return None
    return bench.units(task, split)


def _stay_table(bench: Benchmark, split: str) -> pd.DataFrame:
    all_stays = bench.stays().reset_index(drop=True)
    all_stays["pos_stays"] = np.arange(len(all_stays)) / max(len(all_stays), 1)
    intime = pd.to_datetime(all_stays["intime"])
    all_stays["intime_h"] = (intime - pd.Timestamp("2000-01-01")).dt.total_seconds() / 3600.0
    # A subject's stays in time order: episode number, stays still to come, hours from this
    # stay's intime to the next one's (the next stay starts after this one has ended).
    order = all_stays.sort_values(["subject_id", "intime_h"], kind="stable")
    grp = order.groupby("subject_id", sort=False)
    order["episode"] = grp.cumcount() + 1
    order["later_stays"] = grp["stay_id"].transform("size") - order["episode"]
    order["next_gap_h"] = (grp["intime_h"].shift(-1) - order["intime_h"]).fillna(-1.0)
    stays = order.sort_index()
    stays = stays[stays["split"] == split].set_index("stay_id", drop=False)
    return stays


def read_split(bench: Benchmark, split: str) -> SplitFiles:
    """Read every public file of a split that the benchmark holds."""
    stays = _stay_table(bench, split)
    codes = Codes(stays.index.to_numpy())
    if bench.has(layout.timeseries(split)):
        ts = bench.read_csv(layout.timeseries(split), usecols=["stay_id", "hours"])
        first = ts.reset_index().groupby("stay_id")["index"].min() / max(len(ts), 1)
        agg = ts.groupby("stay_id")["hours"].agg(["size", "max"])
        stays["ts_rows"] = agg["size"].reindex(stays.index).fillna(0.0)
        stays["ts_last"] = agg["max"].reindex(stays.index)
        stays["pos_ts"] = first.reindex(stays.index).fillna(-1.0)
    else:
        ts = pd.DataFrame({"stay_id": [], "hours": []})
        stays["ts_rows"], stays["ts_last"], stays["pos_ts"] = 0.0, np.nan, -1.0
    if bench.has(layout.discretized_index(split)):
        idx = bench.read_csv(layout.discretized_index(split))
        idx["pos_disc"] = np.arange(len(idx)) / max(len(idx), 1)
        idx = idx.drop_duplicates("stay_id").set_index("stay_id")
        stays["disc_hours"] = idx["n_hours"].reindex(stays.index)
        stays["pos_disc"] = idx["pos_disc"].reindex(stays.index).fillna(-1.0)
    else:
        stays["disc_hours"], stays["pos_disc"] = np.nan, -1.0

    images = pd.DataFrame({"dicom_id": [], "stay_id": [], "hours": [], "study_id": []})
    if bench.has(layout.CXR_METADATA):
        meta = bench.cxr_metadata()
        meta["pos_meta"] = np.arange(len(meta)) / max(len(meta), 1)
        images = meta[meta["stay_id"].isin(stays.index)].copy()
    files = bench.manifest["files"]
    images["png"] = [
        float(files.get(layout.image(str(d)), {}).get("size", 0)) for d in images["dicom_id"]
    ]
    images["code"] = codes(images["stay_id"].to_numpy())
    images = images.sort_values(["code", "hours"], kind="stable").reset_index(drop=True)
    img_agg = images.groupby("stay_id").agg(
        img_count=("hours", "size"), img_last=("hours", "max"), png_mean=("png", "mean")
    )
    for col in img_agg.columns:
        stays[col] = img_agg[col].reindex(stays.index)
    stays["img_count"] = stays["img_count"].fillna(0.0)

    units = {t: u for t in bench.tasks if (u := _read_units(bench, t, split)) is not None}
    lists: dict[str, Events] = {}
    for task in (DECOMP, LOS):
        if task in units:
            u = units[task]
            lists[task] = Events(u["stay_id"].to_numpy(), u["period_length"].to_numpy(), codes)
            stays[f"{task}_last"] = u.groupby("stay_id")["period_length"].max()
    if IHM in units:
        stays["ihm_listed"] = stays.index.isin(units[IHM]["stay_id"]).astype(float)
    hours_of = images.set_index("dicom_id")["hours"] if len(images) else pd.Series(dtype=float)
    if PHENO in units:
        ph = units[PHENO].dropna(subset=["cxr_dicom_id"])
        ph_h = pd.Series(ph["cxr_dicom_id"].map(hours_of).to_numpy(), index=ph["stay_id"])
        stays["pheno_img_hours"] = ph_h.groupby(level=0).max().reindex(stays.index)
    if RAD in units:
        rad_h = units[RAD].assign(h=units[RAD]["dicom_id"].map(hours_of))
        stays["rad_last"] = rad_h.groupby("stay_id")["h"].max().reindex(stays.index)
    return SplitFiles(
        split=split,
        stays=stays,
        units=units,
        images=images,
        ts=Events(ts["stay_id"].to_numpy(), ts["hours"].to_numpy(dtype=float), codes),
        img=Events(images["stay_id"].to_numpy(), images["hours"].to_numpy(dtype=float), codes),
        img_png=images,
        lists=lists,
    )


def _latest_png(files: SplitFiles, stay: np.ndarray, t: np.ndarray) -> np.ndarray:
    """PNG size of each stay's latest image at or before t (0 when there is none)."""
    img = files.img_png
    if not len(img):
        return np.zeros(len(stay))
    keys = img["code"].to_numpy(dtype=np.float64) * _SPAN + img["hours"].to_numpy(dtype=float)
    q = files.img.codes(stay).astype(np.float64) * _SPAN + t
    i = np.searchsorted(keys, q, side="right") - 1
    ok = i >= 0
    ok[ok] = img["stay_id"].to_numpy()[i[ok]] == stay[ok]
    return np.where(ok, img["png"].to_numpy()[np.maximum(i, 0)], 0.0)


def _prediction_time(files: SplitFiles, task: str, units: pd.DataFrame) -> np.ndarray:
    if task == IHM:
        return np.full(len(units), IHM_HOURS)
    if task in (DECOMP, LOS):
        return units["period_length"].to_numpy(dtype=np.float64)
    if task == RAD:
        hours = files.images.set_index("dicom_id")["hours"]
        return units["dicom_id"].map(hours).fillna(0.0).to_numpy(dtype=np.float64)
    return np.full(len(units), np.inf)  # phenotyping: the end of the stay


def unit_features(files: SplitFiles, task: str) -> pd.DataFrame:
    """One row per unit of ``task`` in this split, in the unit list's order."""
    units = files.units[task].reset_index(drop=True)
    stay = units["stay_id"].to_numpy()
    s = files.stays.reindex(stay)
    t = _prediction_time(files, task, units)
    tf = np.where(np.isfinite(t), t, 1e5)  # phenotyping: nothing of the stay lies after t
    f = pd.DataFrame({"stay_id": stay, "t": np.where(np.isfinite(t), t, 0.0)})

    def col(name: str) -> np.ndarray:
        if name not in s.columns:
            return np.full(len(units), np.nan)
        return s[name].to_numpy(dtype=np.float64)

    # Leaks: what the files show past t.
    f["past_disc"] = _max0(col("disc_hours") - np.ceil(tf))
    f["past_ts"] = _max0(col("ts_last") - tf)
    f["ts_rows_after"] = _max0(col("ts_rows") - files.ts.count(stay, tf))
    f["past_img"] = _max0(col("img_last") - tf)
    f["img_after"] = _max0(col("img_count") - files.img.count(stay, tf))
    png_all = _max0(col("png_mean") * col("img_count"))
    png_upto = _png_sum_upto(files, stay, tf)
    f["png_after_mean"] = np.where(
        f["img_after"] > 0, (png_all - png_upto) / np.maximum(f["img_after"], 1), 0.0
    )
    for other in (DECOMP, LOS):
        f[f"past_{other}_list"] = _max0(col(f"{other}_last") - tf)
        ev = files.lists.get(other)
        f[f"{other}_rows_after"] = 0.0 if ev is None else _max0(ev.count(stay) - ev.count(stay, tf))
    f["past_ihm_list"] = _max0(IHM_HOURS * col("ihm_listed") - tf)
    f["past_pheno_img"] = _max0(col("pheno_img_hours") - tf)
    f["past_rad_list"] = _max0(col("rad_last") - tf)
    both = np.isfinite(col(f"{DECOMP}_last")) & np.isfinite(col(f"{LOS}_last"))
    f["los_minus_decomp_end"] = np.where(both, col(f"{LOS}_last") - col(f"{DECOMP}_last"), 0.0)
    f["later_stays"] = np.nan_to_num(col("later_stays"))
    f["next_gap_h"] = np.nan_to_num(col("next_gap_h"), nan=-1.0)
    # Identifiers and positions in the files.
    for name in ("stay_id", "subject_id", "hadm_id", "intime_h"):
        f[f"id_{name}"] = np.nan_to_num(col(name))
    for name in ("pos_stays", "pos_ts", "pos_disc"):
        f[name] = np.nan_to_num(col(name), nan=-1.0)
    f["pos_unit"] = np.arange(len(units)) / max(len(units), 1)
    if task == RAD:
        meta = files.images.set_index("dicom_id")
        f["id_study_id"] = units["dicom_id"].map(meta["study_id"]).fillna(0).to_numpy(float)
        f["pos_meta"] = units["dicom_id"].map(meta["pos_meta"]).fillna(-1).to_numpy(float)
        f["id_dicom_head"] = [
            int(str(d)[:8], 16) if _is_hex(str(d)[:8]) else 0 for d in units["dicom_id"]
        ]
    # Causal controls.
    f["ts_rows_upto"] = files.ts.count(stay, tf)
    f["img_upto"] = files.img.count(stay, tf)
    f["png_last_upto"] = _latest_png(files, stay, tf)
    f["episode"] = np.nan_to_num(col("episode"))
    seen = np.fmax(np.fmax(col("ts_last"), col("disc_hours")), col("img_last"))
    f["stay_len_seen"] = np.nan_to_num(seen) if task == PHENO else 0.0
    return f


def _png_sum_upto(files: SplitFiles, stay: np.ndarray, t: np.ndarray) -> np.ndarray:
    img = files.img_png
    if not len(img):
        return np.zeros(len(stay))
    keys = img["code"].to_numpy(dtype=np.float64) * _SPAN + img["hours"].to_numpy(dtype=float)
    cum = np.concatenate([[0.0], np.cumsum(img["png"].to_numpy(dtype=np.float64))])
    code = files.img.codes(stay).astype(np.float64)
    base = code * _SPAN
    lo = np.searchsorted(keys, base - _SPAN / 2, side="left")
    hi = np.searchsorted(keys, base + t, side="right")
    return np.where(code >= 0, cum[hi] - cum[lo], 0.0)


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def labels(files: SplitFiles, task: str, columns: tuple[str, ...]) -> np.ndarray | None:
    """The public labels of a train or val unit list (None when the list has none)."""
    units = files.units[task]
    if not all(c in units.columns for c in columns):
        return None
    y = units[list(columns)].to_numpy(dtype=np.float64)
    return y[:, 0] if len(columns) == 1 else y
