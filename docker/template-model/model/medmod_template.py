"""A small multimodal model for the five MedMod tasks: features and scores.

Features of a unit come from its EHR window in the discretized array (vital signs, Glasgow
coma scale, measurement density, hours observed) and, when the unit has a chest X-ray, from
the image (brightness and contrast of the lung fields). Every task is a linear model on the
standardized features: logistic per label for the binary and multi-label tasks, and for
length of stay a log-normal remaining time turned into the ten bucket probabilities.

Weights come from weights.json (written by train.py); without it, hand-set prior weights
(sicker vital signs and a brighter X-ray mean a higher risk) stand in.

Only numpy, pillow and the standard library are used.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

# Layout of the 76 discretized features (docs/benchmark-format.md): the 17 variables'
# value columns in this order and width (categorical ones one-hot), then 17 masks.
VARIABLE_WIDTHS = (2, 1, 1, 8, 12, 13, 12, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
VARIABLE_NAMES = (
    "Capillary refill rate", "Diastolic blood pressure", "Fraction inspired oxygen",
    "Glascow coma scale eye opening", "Glascow coma scale motor response",
    "Glascow coma scale total", "Glascow coma scale verbal response", "Glucose",
    "Heart Rate", "Height", "Mean blood pressure", "Oxygen saturation", "Respiratory rate",
    "Systolic blood pressure", "Temperature", "Weight", "pH",
)  # fmt: skip
GCS_TOTAL_CATEGORIES = ("11", "10", "13", "12", "15", "14", "3", "5", "4", "7", "6", "9", "8")
N_VALUES = sum(VARIABLE_WIDTHS)  # 59
_START = dict(zip(VARIABLE_NAMES, np.cumsum((0,) + VARIABLE_WIDTHS[:-1]).tolist(), strict=True))

# name: (how, variable, centre, scale) for the EHR features; the image features follow.
EHR_FEATURES = (
    ("hr_max", "max", "Heart Rate", 86.0, 20.0),
    ("sbp_min", "min", "Systolic blood pressure", 118.0, 20.0),
    ("rr_max", "max", "Respiratory rate", 19.0, 6.0),
    ("spo2_min", "min", "Oxygen saturation", 98.0, 4.0),
    ("temp_max", "max", "Temperature", 36.6, 0.8),
    ("gcs_last", "last", "Glascow coma scale total", 15.0, 3.0),
    ("glucose_last", "last", "Glucose", 128.0, 40.0),
    ("ph_min", "min", "pH", 7.4, 0.08),
    ("fio2_max", "max", "Fraction inspired oxygen", 0.21, 0.2),
    ("density", "density", "", 0.3, 0.2),
    ("log_hours", "log_hours", "", 3.0, 1.0),
)
IMAGE_FEATURES = (("has_image", 0.5, 0.5), ("img_mean", 0.5, 0.12), ("img_centre", 0.5, 0.12))
FEATURE_NAMES = tuple(f[0] for f in EHR_FEATURES) + tuple(f[0] for f in IMAGE_FEATURES)

# Prior weights on the standardized features: higher means sicker.
PRIOR_SEVERITY = {
    "hr_max": 0.35, "sbp_min": -0.35, "rr_max": 0.3, "spo2_min": -0.35, "temp_max": 0.15,
    "gcs_last": -0.6, "glucose_last": 0.1, "ph_min": -0.3, "fio2_max": 0.35, "density": 0.2,
    "img_centre": 0.3,
}  # fmt: skip
# Remaining hours: the bucket edges of mimic3-benchmarks (days 1..8, 14).
LOS_EDGES_HOURS = np.array([24.0 * d for d in (1, 2, 3, 4, 5, 6, 7, 8, 14)])


# Inputs ----------------------------------------------------------------------------------
def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_discretized(ehr_dir: Path, split: str) -> tuple[np.ndarray, dict[int, tuple[int, int]]]:
    """The hourly array and, per stay, its (offset, n_hours)."""
    arr = np.load(ehr_dir / f"discretized_{split}.npy", allow_pickle=False)
    index = {
        int(r["stay_id"]): (int(r["offset"]), int(r["n_hours"]))
        for r in read_csv(ehr_dir / f"discretized_{split}_index.csv")
    }
    return arr, index


def _channel(rows: np.ndarray, variable: str) -> np.ndarray:
    start = _START[variable]
    if variable == "Glascow coma scale total":
        values = np.array([float(c) for c in GCS_TOTAL_CATEGORIES])
        onehot = rows[:, start : start + len(values)]
        total = onehot.sum(axis=1)
        return np.where(total > 0, onehot @ values / np.maximum(total, 1), 15.0)
    return rows[:, start].astype(np.float64)


def stay_features(rows: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """EHR features of one stay for windows ``rows[:end]``, one per entry of ``ends``.

    Prefix statistics are computed once per stay, so hourly tasks cost one pass per stay.
    """
    n = len(rows)
    out = np.empty((len(ends), len(EHR_FEATURES)))
    if n == 0:
        for j, (_, _, _, centre, _) in enumerate(EHR_FEATURES):
            out[:, j] = centre
        return out
    idx = np.clip(ends, 1, n) - 1
    masks = rows[:, N_VALUES:].astype(np.float64)
    density = np.cumsum(masks.mean(axis=1)) / np.arange(1, n + 1)
    for j, (_, how, variable, _, _) in enumerate(EHR_FEATURES):
        if how == "density":
            out[:, j] = density[idx]
        elif how == "log_hours":
            out[:, j] = np.log1p(idx + 1)
        else:
            x = _channel(rows, variable)
            if how == "max":
                x = np.maximum.accumulate(x)
            elif how == "min":
                x = np.minimum.accumulate(x)
            out[:, j] = x[idx]
    return out


def image_features(path: Path | bytes | None) -> tuple[float, float, float]:
    """(has_image, mean brightness, brightness of the central lung fields), in [0, 1], of a
    PNG file or its bytes."""
    if path is None or (isinstance(path, Path) and not path.is_file()):
        return 0.0, 0.5, 0.5
    from PIL import Image

    source = io.BytesIO(path) if isinstance(path, bytes) else path
    with Image.open(source) as im:
        px = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    h, w = px.shape
    centre = px[h // 4 : h - h // 4, w // 6 : w - w // 6]
    return 1.0, float(px.mean()), float(centre.mean()) if centre.size else float(px.mean())


def standardize(x: np.ndarray) -> np.ndarray:
    centre = np.array([f[3] for f in EHR_FEATURES] + [f[1] for f in IMAGE_FEATURES])
    scale = np.array([f[4] for f in EHR_FEATURES] + [f[2] for f in IMAGE_FEATURES])
    return np.clip((x - centre) / scale, -6.0, 6.0)


def window_end(task: str, unit: dict[str, str], image_hours: dict[str, float]) -> int:
    """Rows of the discretized array a unit may use: ``rows[:end]``."""
    if task == "in-hospital-mortality":
        return 48
    if task in ("decompensation", "length-of-stay"):
        return math.ceil(float(unit["period_length"]))
    if task == "radiology":
        hours = image_hours.get(unit.get("dicom_id", ""), 0.0)
        return max(1, math.ceil(hours))
    return 1 << 30  # phenotyping: the whole stay


def unit_features(
    task: str,
    units: list[dict[str, str]],
    arr: np.ndarray,
    index: dict[int, tuple[int, int]],
    image_dir: Path,
    image_hours: dict[str, float],
) -> np.ndarray:
    """Standardized feature matrix (units x features) of a unit list."""
    ehr = np.empty((len(units), len(EHR_FEATURES)))
    by_stay: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        by_stay.setdefault(int(u["stay_id"]), []).append(i)
    for stay, rows_of in by_stay.items():
        offset, n = index.get(stay, (0, 0))
        rows = arr[offset : offset + n]
        ends = np.array([window_end(task, units[i], image_hours) for i in rows_of])
        ehr[rows_of] = stay_features(rows, ends)
    img = np.empty((len(units), len(IMAGE_FEATURES)))
    cache: dict[str, tuple[float, float, float]] = {}
    for i, u in enumerate(units):
        dicom = (u.get("cxr_dicom_id") or "").strip()
        if dicom and dicom not in cache:
            cache[dicom] = image_features(image_dir / f"{dicom}.png")
        img[i] = cache[dicom] if dicom else (0.0, 0.5, 0.5)
    return standardize(np.hstack([ehr, img]))


# Scores ----------------------------------------------------------------------------------
def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz and Stegun 7.1.26, error below 1.5e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))  # fmt: skip
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def prior_weights(task: dict) -> dict:
    """Hand-set weights for a task described by task.json."""
    severity = np.array([PRIOR_SEVERITY.get(f, 0.0) for f in FEATURE_NAMES])
    kind, slug = task["kind"], task["task"]
    if kind == "los":
        w = -0.4 * severity
        w[FEATURE_NAMES.index("log_hours")] = -0.2
        return {"kind": "los", "intercept": [math.log(60.0)], "coef": [w.tolist()], "sigma": 1.0}
    if kind == "binary":
        base = {"in-hospital-mortality": -2.0, "decompensation": -3.5}.get(slug, -2.0)
        return {"kind": "binary", "intercept": [base], "coef": [severity.tolist()]}
    labels = task["label_slugs"]
    coef = []
    for slug_l in labels:
        w = 0.3 * severity
        if slug == "radiology":
            w = 0.1 * severity
            w[FEATURE_NAMES.index("img_centre")] = -0.8 if slug_l == "no_finding" else 0.5
        coef.append(w.tolist())
    return {"kind": "multilabel", "labels": labels, "intercept": [-1.5] * len(labels), "coef": coef}


def load_weights(path: Path, task: dict) -> dict:
    if path.is_file():
        fitted = json.loads(path.read_text()).get(task["task"])
        if fitted and fitted.get("features") == list(FEATURE_NAMES):
            return fitted
    return prior_weights(task)


def predict(x: np.ndarray, weights: dict) -> dict[str, np.ndarray]:
    """Output columns of the prediction file: name -> values per unit."""
    b = np.asarray(weights["intercept"], dtype=np.float64)
    w = np.asarray(weights["coef"], dtype=np.float64)
    z = x @ w.T + b  # (units, labels)
    if weights["kind"] == "binary":
        return {"prediction": sigmoid(z[:, 0])}
    if weights["kind"] == "multilabel":
        p = sigmoid(z)
        return {label: p[:, j] for j, label in enumerate(weights["labels"])}
    # Length of stay: log remaining hours ~ Normal(z, sigma); probability of each bucket.
    sigma = float(weights.get("sigma", 1.0))
    cdf = normal_cdf((np.log(LOS_EDGES_HOURS)[None, :] - z[:, :1]) / sigma)
    edges = np.hstack([np.zeros((len(z), 1)), cdf, np.ones((len(z), 1))])
    probs = np.clip(np.diff(edges, axis=1), 0.0, 1.0)
    probs /= probs.sum(axis=1, keepdims=True)
    return {f"bucket_{i}": probs[:, i] for i in range(probs.shape[1])}
