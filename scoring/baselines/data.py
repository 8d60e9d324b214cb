"""From a benchmark's public files to model inputs: EHR windows, images and read-outs.

EHR windows (rows of the discretized array, docs/benchmark-format.md):

- in-hospital mortality: rows ``0 .. 47``;
- phenotyping: the stay's rows, the last ``max_hours`` of them;
- decompensation and length of stay: one sequence per stay holding all its rows; the unit at
  hour ``t`` reads the LSTM state after row ``t - 1``, i.e. it sees rows ``0 .. t - 1`` (the
  hours complete at ``t``) and nothing later. No truncation is needed, as one causal pass
  serves every hour;
- radiology: likewise one sequence per stay, after one all-zero start row; the image taken
  ``h`` hours into the stay reads the state after rows ``0 .. floor(h) - 1``, the hours
  complete when it was taken (after the start row alone for an image of the first hour).

These are the hours the streaming gateway has revealed at the unit's prediction time
(docs/containers.md), so a model predicts the same from the gateway's messages
(:mod:`scoring.baselines.stream`) as from the files.

The 12 continuous value columns are standardised with the training split's mean and
standard deviation (clipped to +-10); one-hot and mask columns are used as they are.

Images: decoded as 8-bit grayscale, centre-cropped to a square, resized to ``size x size``
(bilinear, antialiased), scaled to [0, 1] and standardised with the mean and standard
deviation of the training images' pixels.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from PIL import Image

from benchmark_data import layout
from benchmark_data.benchmark import Benchmark, BenchmarkError
from benchmark_data.sequestered import TestSplit
from benchmark_data.tasks import Task, los_bucket
from benchmark_data.variables import N_FEATURES, VARIABLES

IHM_HOURS = 48
ERR_NO_IMAGES = (
    "the benchmark holds no image file for {n} paired chest X-ray(s) (first: {first}); "
    "the baselines read the images from public/cxr/images/"
)
Z_CLIP = 10.0


def continuous_columns() -> np.ndarray:
    """Column indices of the 12 continuous value features of the discretized array."""
    cols, pos = [], 0
    for v in VARIABLES:
        if not v.is_categorical:
            cols.append(pos)
        pos += v.width
    return np.asarray(cols, dtype=np.int64)


@dataclass(frozen=True)
class EHRNorm:
    """Mean and standard deviation of the continuous columns (training split)."""

    columns: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, arr: np.ndarray) -> EHRNorm:
        cols = continuous_columns()
        vals = arr[:, cols].astype(np.float64)
        std = vals.std(axis=0)
        return cls(cols, vals.mean(axis=0), np.where(std > 1e-6, std, 1.0))

    def apply(self, arr: np.ndarray) -> np.ndarray:
        out = np.asarray(arr, dtype=np.float32).copy()
        z = (out[:, self.columns] - self.mean) / self.std
        out[:, self.columns] = np.clip(z, -Z_CLIP, Z_CLIP).astype(np.float32)
        return out

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "columns": self.columns.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> EHRNorm:
        return cls(
            np.asarray(d["columns"], dtype=np.int64),
            np.asarray(d["mean"], dtype=np.float64),
            np.asarray(d["std"], dtype=np.float64),
        )


@dataclass
class SplitEHR:
    """A split's normalised discretized array and where each stay's rows are."""

    rows: np.ndarray  # (total hours, 76) float32
    offset: dict[int, int]
    n_hours: dict[int, int]

    @classmethod
    def load(
        cls, bench: Benchmark, split: str, norm: EHRNorm, *, whole: TestSplit | None = None
    ) -> SplitEHR:
        """A split's rows; with ``whole``, the test split's whole rows (not cut)."""
        arr, index = whole.discretized() if whole is not None else bench.discretized(split)
        if arr.ndim != 2 or arr.shape[1] != N_FEATURES:
            raise ValueError(f"discretized {split} array has shape {arr.shape}, not (n, 76)")
        stays = index["stay_id"].astype(int).tolist()
        return cls(
            rows=norm.apply(arr),
            offset=dict(zip(stays, index["offset"].astype(int).tolist(), strict=True)),
            n_hours=dict(zip(stays, index["n_hours"].astype(int).tolist(), strict=True)),
        )


def decode_image(data: bytes, *, size: int) -> np.ndarray:
    """8-bit grayscale image, centre-cropped to a square and resized to ``size x size``."""
    with Image.open(io.BytesIO(data)) as im:
        img = im.convert("L")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


class ImageCache:
    """Decoded, resized images by ``dicom_id``, plus the pixel mean and std for inputs."""

    def __init__(self, *, size: int) -> None:
        self.size = size
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        self._chunks: list[np.ndarray] = []
        self._array: np.ndarray | None = None
        self.mean = 0.5
        self.std = 0.25

    def __len__(self) -> int:
        return len(self.index)

    def add(
        self, bench: Benchmark, dicom_ids: Iterable[str], *, whole: TestSplit | None = None
    ) -> None:
        """Decode the images; ``whole`` also finds the test images the public files do not
        show (in the whole test split)."""
        new = sorted({str(d) for d in dicom_ids} - set(self.index))
        if not new:
            return

        def has(d: str) -> bool:
            return bench.has(layout.image(d)) or (
                whole is not None and bench.has(layout.sequestered_image(d))
            )

        absent = [d for d in new if not has(d)]
        if absent:
            raise BenchmarkError(ERR_NO_IMAGES.format(n=len(absent), first=", ".join(absent[:3])))
        read = whole.image_bytes if whole is not None else bench.image_bytes
        imgs = np.stack([decode_image(read(d), size=self.size) for d in new])
        for d in new:
            self.index[d] = len(self.index)
            self.names.append(d)
        self._chunks.append(imgs)
        self._array = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = (
                np.concatenate(self._chunks)
                if self._chunks
                else np.zeros((0, self.size, self.size), dtype=np.uint8)
            )
            self._chunks = [self._array]
        return self._array

    def fit_norm(self, dicom_ids: Iterable[str]) -> None:
        """Pixel mean and std of the given (training) images, on the [0, 1] scale."""
        idx = [self.index[str(d)] for d in dicom_ids if str(d) in self.index]
        if idx:
            px = self.array[np.asarray(sorted(set(idx)))].astype(np.float64) / 255.0
            self.mean = float(px.mean())
            self.std = float(max(px.std(), 1e-3))

    def ids(self, dicom_ids: pd.Series) -> np.ndarray:
        """Cache index per entry, -1 for a missing (empty) id."""
        return np.asarray(
            [self.index[str(d)] if isinstance(d, str) and d else -1 for d in dicom_ids.tolist()],
            dtype=np.int64,
        )


ERR_MISSING_RATE = (
    "the share of training stays without their chest X-ray must be at least 0 and below 1, "
    "not {rate!r}"
)


def check_missing_rate(rate: float) -> float:
    """``rate`` as a float in [0, 1), or a ValueError saying what is wrong."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValueError(ERR_MISSING_RATE.format(rate=rate)) from None
    if not 0.0 <= value < 1.0:  # NaN fails this too
        raise ValueError(ERR_MISSING_RATE.format(rate=rate))
    return value


def withheld_stays(stays: Iterable[int], rate: float, *, seed: int, split: str) -> np.ndarray:
    """The stays of ``split`` that lose their chest X-rays in a run with training-time
    missingness ``rate`` (CareBench's ``--cxr_dropout_rate``), sorted.

    ``stays`` are the split's stays that have an image; exactly ``floor(n * rate)`` of
    them are drawn. The draw is a seeded permutation of the sorted stays, from the run seed
    and the split alone, cut at the rate: the stays withheld at one rate are also withheld
    at every higher rate (nested draws, so the points of a sweep differ only by the images
    added), and every model and task of a run loses the same stays.

    >>> withheld_stays([5, 3, 9, 1], 0.5, seed=42, split="train").tolist() in (
    ...     [1, 3], [1, 5], [1, 9], [3, 5], [3, 9], [5, 9])
    True
    """
    rate = check_missing_rate(rate)
    pool = np.unique(np.fromiter((int(s) for s in stays), dtype=np.int64))
    # The small tolerance keeps floor(10 * 0.3) at 3 despite 0.3's binary rounding.
    n = int(math.floor(len(pool) * rate + 1e-9))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    key = zlib.crc32(f"train-cxr-missing/{split}".encode())
    order = np.random.default_rng([int(seed), key]).permutation(len(pool))
    return np.sort(pool[order[:n]])


def unit_images(units: pd.DataFrame) -> list[str]:
    col = units["cxr_dicom_id"]
    return sorted({str(d) for d in col[col.notna()].tolist() if str(d)})


@dataclass
class TaskData:
    """Sequences and read-outs of one task and split (see :mod:`scoring.baselines.batch`).

    Sequence ``i`` is ``seq_len[i]`` input rows: ``seq_lead[i]`` all-zero start rows, then
    rows ``seq_offset[i] ..`` of the split array. Read-outs are grouped by sequence: those
    of sequence ``i`` are ``ro_start[i] .. ro_start[i + 1] - 1``. With ``carry`` (stay
    sequences of the hourly tasks and radiology) a unit's image is available from its row
    on; otherwise (one sequence per unit) at every row.
    """

    task: Task
    carry: bool
    seq_stay: np.ndarray
    seq_offset: np.ndarray
    seq_len: np.ndarray
    seq_lead: np.ndarray
    ro_start: np.ndarray
    ro_seq: np.ndarray
    ro_pos: np.ndarray
    ro_img: np.ndarray
    ro_unit: np.ndarray
    y: np.ndarray | None

    @property
    def n_sequences(self) -> int:
        return len(self.seq_stay)

    @property
    def n_readouts(self) -> int:
        return len(self.ro_seq)

    @property
    def n_steps(self) -> int:
        return int(self.seq_len.sum())

    def without_images(self, stays: Iterable[int]) -> TaskData:
        """The same inputs with the images of the given stays withheld."""
        drop = np.isin(self.seq_stay[self.ro_seq], np.fromiter(stays, dtype=np.int64))
        return replace(self, ro_img=np.where(drop, -1, self.ro_img))

    def readouts_of(self, seqs: np.ndarray) -> np.ndarray:
        """Indices of the read-outs of the given sequences, in sequence order."""
        parts = [np.arange(self.ro_start[s], self.ro_start[s + 1]) for s in seqs]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _labels(task: Task, units: pd.DataFrame) -> np.ndarray | None:
    cols = list(task.label_columns)
    if not set(cols) <= set(units.columns):
        return None
    if task.kind == "los":
        return los_bucket(units[cols[0]].to_numpy(dtype=np.float64))
    y = units[cols].to_numpy(dtype=np.float32)
    return y[:, 0] if task.kind == "binary" else y


def _floor(values: Iterable[float]) -> np.ndarray:
    """Whole hours complete at each time: hour ``i`` covers ``[i, i + 1)``."""
    return np.asarray([math.floor(float(x)) for x in values], dtype=np.int64)


def build_task_data(
    task: Task,
    units: pd.DataFrame,
    ehr: SplitEHR,
    images: ImageCache,
    *,
    image_hours: dict[str, float] | None = None,
    max_hours: int = 96,
) -> TaskData:
    """Sequences and read-outs for a task's unit list.

    Hourly tasks and radiology get one sequence per stay with a read-out per unit (radiology
    sequences start with one all-zero row, so an image taken in the first hour reads the
    state after it); in-hospital mortality and phenotyping one sequence per unit.
    """
    stay = units["stay_id"].to_numpy(dtype=np.int64)
    img = images.ids(units["cxr_dicom_id"])
    missing = sorted({int(s) for s in stay if int(s) not in ehr.offset})
    if missing:
        raise ValueError(
            f"{task.slug}: {len(missing)} stay(s) without EHR rows, first {missing[:5]}"
        )
    n = len(units)
    carry = task.hourly or task.slug == "radiology"
    if carry:
        if task.hourly:
            time = units["period_length"].to_numpy(dtype=np.float64)
            lead = 0
        else:
            if image_hours is None:
                raise ValueError("radiology windows need the images' hours")
            time = np.asarray([image_hours[str(d)] for d in units["dicom_id"].tolist()])
            lead = 1
        seq_stay, ro_seq = np.unique(stay, return_inverse=True)
        nh = np.asarray([ehr.n_hours[int(s)] for s in seq_stay], dtype=np.int64)
        end = np.minimum(np.maximum(_floor(time), 0), nh[ro_seq])
        if lead == 0:
            end = np.maximum(end, 1)
        ro_pos = end - 1 + lead
        seq_len = np.zeros(len(seq_stay), dtype=np.int64)
        np.maximum.at(seq_len, ro_seq, ro_pos + 1)
        seq_offset = np.asarray([ehr.offset[int(s)] for s in seq_stay], dtype=np.int64)
        seq_lead = np.full(len(seq_stay), lead, dtype=np.int64)
    else:
        nh = np.asarray([ehr.n_hours[int(s)] for s in stay], dtype=np.int64)
        if task.slug == "in-hospital-mortality":
            end, start = np.minimum(nh, IHM_HOURS), np.zeros(n, dtype=np.int64)
        else:
            end = nh
            start = np.maximum(0, end - max_hours)
        length = end - start
        seq_lead = (length == 0).astype(np.int64)
        seq_offset = np.asarray([ehr.offset[int(s)] for s in stay], dtype=np.int64) + start
        seq_len = length + seq_lead
        seq_stay = stay
        ro_seq = np.arange(n, dtype=np.int64)
        ro_pos = seq_len - 1
    by_seq = np.argsort(ro_seq, kind="stable")
    counts = np.bincount(ro_seq, minlength=len(seq_stay))
    y = _labels(task, units)
    return TaskData(
        task=task,
        carry=carry,
        seq_stay=np.asarray(seq_stay, dtype=np.int64),
        seq_offset=seq_offset,
        seq_len=seq_len,
        seq_lead=seq_lead,
        ro_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        ro_seq=ro_seq[by_seq].astype(np.int64),
        ro_pos=ro_pos[by_seq].astype(np.int64),
        ro_img=img[by_seq],
        ro_unit=by_seq.astype(np.int64),
        y=None if y is None else y[by_seq],
    )
