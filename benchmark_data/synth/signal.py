"""Does a benchmark carry the intended signal? Simple models per modality and fused.

Logistic regressions on summary features of the discretized time series (mean, min, max
and last value of each feature over a window) and on image statistics (regional means on a
grid, relative to the image mean, and an intensity histogram), trained on the train split
and scored on the paired test units: the EHR alone, the chest X-ray alone, and both.
``scripts/check_signal.py`` prints the table; the package's tests assert on it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmark_data.benchmark import Benchmark

WINDOW = 48  # hours of time series summarised
GRID = 8  # image regions per side
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)
CV_C = 0.01
MAX_TRAIN = 5000  # training units per target (a seeded subset beyond that)


def ehr_features(x: np.ndarray, offsets: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Mean, min, max and last of every discretized feature over the ``WINDOW`` hours
    before ``ends`` (row counts from each stay's start at ``offsets``)."""
    ends = np.maximum(np.asarray(ends, dtype=np.int64), 1)
    starts = np.maximum(ends - WINDOW, 0)
    out = np.empty((len(ends), 4 * x.shape[1]), dtype=np.float32)
    k = np.arange(WINDOW)
    for lo in range(0, len(ends), 2048):
        sl = slice(lo, lo + 2048)
        n = ends[sl] - starts[sl]
        valid = k[None, :] < n[:, None]
        rows = offsets[sl, None] + starts[sl, None] + np.minimum(k[None, :], n[:, None] - 1)
        w = x[rows]  # (units, WINDOW, features); rows past the window repeat the last hour
        cnt = valid.sum(1)[:, None]
        mean = (w * valid[:, :, None]).sum(1) / cnt
        out[sl] = np.concatenate([mean, w.min(1), w.max(1), w[:, -1]], axis=1)
    return out


def image_features(bench: Benchmark, dicom_ids: list[str] | np.ndarray) -> np.ndarray:
    """Regional means on a ``GRID`` x ``GRID`` grid (raw and over the image mean) and a
    16-bin intensity histogram of each image."""
    feats = []
    for d in dicom_ids:
        px = np.asarray(Image.open(io.BytesIO(bench.image_bytes(str(d)))), dtype=np.float32) / 255
        s = px.shape[0] // GRID
        blocks = px[: s * GRID, : s * GRID].reshape(GRID, s, GRID, s).mean(axis=(1, 3)).ravel()
        hist = np.histogram(px, bins=16, range=(0, 1))[0] / px.size
        feats.append(np.concatenate([blocks, blocks / max(px.mean(), 1e-3), hist]))
    return np.asarray(feats, dtype=np.float32)


@dataclass
class SignalRow:
    """Test AUROC of one target from each modality and from both."""

    task: str
    target: str
    n_train: int
    n_test: int
    positives: int
    ehr: float
    cxr: float
    both: float


def _fit_auroc(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray,
               xte: np.ndarray, yte: np.ndarray) -> float:  # fmt: skip
    """Logistic regression with C picked on validation; test AUROC."""
    best, best_c = -1.0, C_GRID[0]
    if len(np.unique(yva)) == 2:
        for c in C_GRID:
            m = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
            m.fit(xtr, ytr)
            a = roc_auc_score(yva, m.predict_proba(xva)[:, 1])
            if a > best:
                best, best_c = a, c
    m = make_pipeline(StandardScaler(), LogisticRegression(C=best_c, max_iter=3000))
    m.fit(xtr, ytr)
    return float(roc_auc_score(yte, m.predict_proba(xte)[:, 1]))


class _Split:
    """Discretized array and per-stay offsets of a split."""

    def __init__(self, bench: Benchmark, split: str) -> None:
        self.x, index = bench.discretized(split)
        self.offset = dict(zip(index["stay_id"], index["offset"], strict=True))
        self.n_hours = dict(zip(index["stay_id"], index["n_hours"], strict=True))

    def features(self, stay_ids: np.ndarray, ends: np.ndarray | None = None) -> np.ndarray:
        off = np.array([self.offset[s] for s in stay_ids], dtype=np.int64)
        if ends is None:
            ends = np.array([self.n_hours[s] for s in stay_ids], dtype=np.int64)
        return ehr_features(self.x, off, ends)


def _labelled(bench: Benchmark, task: str, split: str) -> pd.DataFrame:
    units = bench.units(task, split)
    if split != "test":
        return units
    keys = [c for c in ("dicom_id", "stay_id", "period_length") if c in units.columns]
    labels = bench.test_labels(task).drop(columns=["subject_id"], errors="ignore")
    labels = labels.drop(columns=[c for c in ("stay_id",) if c not in keys], errors="ignore")
    return units.merge(labels, on=keys, how="left", validate="one_to_one")


DEFAULT_TARGETS: tuple[tuple[str, str], ...] = (
    ("in-hospital-mortality", "y_true"),
    ("phenotyping", "congestive_heart_failure_nonhypertensive"),
    ("radiology", "edema"),
)


def _target_data(
    bench: Benchmark, splits: dict[str, _Split], hours: pd.Series, task: str, target: str
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per split: EHR features, image features, labels and subject ids of the paired units
    (a seeded subset of at most ``MAX_TRAIN`` training units)."""
    data = {}
    for split, sp in splits.items():
        u = _labelled(bench, task, split)
        u = u[u["cxr_dicom_id"].notna()]
        if split == "train" and len(u) > MAX_TRAIN:
            u = u.sample(MAX_TRAIN, random_state=0).sort_index()
        u = u.reset_index(drop=True)
        if task == "in-hospital-mortality":
            ends = np.full(len(u), WINDOW)
        elif task == "radiology":  # the EHR up to the image
            ends = np.ceil(hours.loc[u["dicom_id"]].to_numpy()).astype(np.int64)
        else:
            ends = None
        e = sp.features(u["stay_id"].to_numpy(), ends)
        c = image_features(bench, u["cxr_dicom_id"].to_numpy())
        data[split] = (e, c, u[target].to_numpy().astype(int), u["subject_id"].to_numpy())
    return data


_MODALITIES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "ehr": lambda e, c: e,
    "cxr": lambda e, c: c,
    "both": lambda e, c: np.concatenate([e, c], axis=1),
}


def signal_table(
    bench: Benchmark, *, targets: Sequence[tuple[str, str]] = DEFAULT_TARGETS, cv: bool = False
) -> list[SignalRow]:
    """AUROC from the EHR, the chest X-ray and both, for each ``(task, label column)`` of
    ``targets`` (binary or multi-label tasks), on the paired units.

    By default the models train on the train split (C picked on validation) and are scored
    on the test split. With ``cv=True`` the paired units of all splits are pooled and scored
    out of fold (5 folds by patient, fixed C): steadier on a small benchmark.
    """
    splits = {s: _Split(bench, s) for s in ("train", "val", "test")}
    hours = bench.cxr_metadata().set_index("dicom_id")["hours"]
    rows: list[SignalRow] = []
    for task, target in targets:
        data = _target_data(bench, splits, hours, task, target)
        res = {}
        for name, pick in _MODALITIES.items():
            x = {s: pick(e, c) for s, (e, c, _, _) in data.items()}
            y = {s: v[2] for s, v in data.items()}
            if cv:
                groups = np.concatenate([v[3] for v in data.values()])
                res[name] = _cv_auroc(np.concatenate(list(x.values())),
                                      np.concatenate(list(y.values())), groups)  # fmt: skip
            else:
                res[name] = _fit_auroc(x["train"], y["train"], x["val"], y["val"],
                                       x["test"], y["test"])  # fmt: skip
        n_train = sum(len(v[2]) for v in data.values()) if cv else len(data["train"][2])
        test = np.concatenate([v[2] for v in data.values()]) if cv else data["test"][2]
        rows.append(SignalRow(task, target, n_train, len(test), int(test.sum()),
                              res["ehr"], res["cxr"], res["both"]))  # fmt: skip
    return rows


def _cv_auroc(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, folds: int = 5) -> float:
    """Out-of-fold AUROC of a logistic regression (folds by patient)."""
    pred = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        m = make_pipeline(StandardScaler(), LogisticRegression(C=CV_C, max_iter=3000))
        m.fit(x[train], y[train])
        pred[test] = m.predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, pred))


def format_table(rows: list[SignalRow]) -> str:
    """The table printed by ``scripts/check_signal.py``."""
    head = (f"{'task':<22} {'target':<40} {'train':>6} {'test':>6} {'pos':>5}"
            f" {'EHR':>6} {'CXR':>6} {'both':>6}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.task:<22} {r.target[:40]:<40} {r.n_train:>6} {r.n_test:>6} {r.positives:>5}"
            f" {r.ehr:>6.3f} {r.cxr:>6.3f} {r.both:>6.3f}"
        )
    return "\n".join(lines)
