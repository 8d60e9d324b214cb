"""A very small benchmark in the on-disk format, for fast tests of the baselines.

Random EHR rows and 16-pixel images, with a latent risk per stay that shifts one vital
sign and the images' brightness and drives every label, so models have something to learn.
All five tasks, the scenario sets and the credentialed test labels are written.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from benchmark_data import layout
from benchmark_data.benchmark import BenchmarkWriter
from benchmark_data.tasks import CXR_MISSING_LEVELS, SPLITS, TASKS
from benchmark_data.variables import N_FEATURES

SPLIT_STAYS = {"train": 24, "val": 10, "test": 12}
HEART_RATE_COLUMN = 50  # "Heart Rate", a continuous value column


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def make_tiny_benchmark(root: str | Path, *, seed: int = 0) -> Path:
    """Write the benchmark under ``root``; returns its path."""
    rng = np.random.default_rng(seed)
    w = BenchmarkWriter(str(root))
    stays_rows, meta_rows = [], []
    units: dict[tuple[str, str], list[dict]] = {(t, s): [] for t in TASKS for s in SPLITS}
    scen_rows = {t: [] for t in TASKS}
    stay_id = 30000
    for split in SPLITS:
        arrays, index, offset = [], [], 0
        for _ in range(SPLIT_STAYS[split]):
            stay_id += 1
            subject = stay_id + 1000
            risk = rng.normal()
            n_hours = int(rng.integers(50, 80))
            x = rng.normal(size=(n_hours, N_FEATURES)).astype(np.float32)
            x[:, HEART_RATE_COLUMN] = 86 + 10 * risk + 5 * rng.normal(size=n_hours)
            arrays.append(x)
            index.append({"stay_id": stay_id, "offset": offset, "n_hours": n_hours})
            offset += n_hours
            stays_rows.append({"stay_id": stay_id, "subject_id": subject, "hadm_id": stay_id + 5000,
                               "split": split, "intime": "2150-01-01 00:00:00",
                               "stay": f"{subject}_episode1_timeseries.csv"})  # fmt: skip
            n_img = int(rng.integers(0, 3))
            imgs = []
            for k in range(n_img):
                dicom = f"d{stay_id}x{k}"
                hours = float(rng.uniform(0.5, n_hours - 1))
                level = np.clip(120 + 40 * risk + rng.normal(0, 10, (16, 16)), 0, 255)
                w.write_bytes(layout.image(dicom), _png(level.astype(np.uint8)))
                meta_rows.append({"dicom_id": dicom, "subject_id": subject, "study_id": stay_id * 10 + k,
                                  "stay_id": stay_id, "split": split,
                                  "study_datetime": "2150-01-01 00:00:00", "view_position": "AP",
                                  "hours": hours, "path": layout.image(dicom)})  # fmt: skip
                imgs.append((hours, dicom))
            imgs.sort()

            def latest(t: float, imgs: list = imgs) -> str | None:
                ok = [d for h, d in imgs if h <= t]
                return ok[-1] if ok else None

            died = bool(rng.random() < 1 / (1 + np.exp(-(risk - 1))))
            base = {"stay_id": stay_id, "subject_id": subject}
            units[("in-hospital-mortality", split)].append(
                {**base, "cxr_dicom_id": latest(48), "y_true": int(died)}
            )
            phen = (rng.normal(size=25) + risk > 0.5).astype(int)
            units[("phenotyping", split)].append(
                {**base, "cxr_dicom_id": latest(n_hours),
                 **dict(zip(TASKS["phenotyping"].label_slugs, phen, strict=True))}
            )  # fmt: skip
            for t in range(5, n_hours + 1):
                rem = n_hours - t
                key = {"stay_id": stay_id, "period_length": t}
                img = {"subject_id": subject, "cxr_dicom_id": latest(t)}
                units[("decompensation", split)].append(
                    {**key, **img, "y_true": int(died and rem < 24)}
                )
                units[("length-of-stay", split)].append({**key, **img, "y_true": float(rem * 3)})
            for _hours, dicom in imgs:
                find = (rng.normal(size=14) + risk > 0.3).astype(int)
                units[("radiology", split)].append(
                    {"dicom_id": dicom, "subject_id": subject, "stay_id": stay_id,
                     "cxr_dicom_id": dicom,
                     **dict(zip(TASKS["radiology"].label_slugs, find, strict=True))}
                )  # fmt: skip
        w.write_npy(layout.discretized(split), np.concatenate(arrays))
        w.write_csv(layout.discretized_index(split), pd.DataFrame(index))
    w.write_csv(layout.STAYS, pd.DataFrame(stays_rows))
    w.write_csv(layout.CXR_METADATA, pd.DataFrame(meta_rows))
    demo = [{"stay_id": r["stay_id"], "subject_id": r["subject_id"], "age": 65, "gender": "F",
             "race": "WHITE", "insurance": "Medicare", "admission_type": "URGENT"}
            for r in stays_rows]  # fmt: skip
    w.write_csv(layout.DEMOGRAPHICS, pd.DataFrame(demo))
    for (task, split), rows in units.items():
        t = TASKS[task]
        df = pd.DataFrame(rows)
        cols = [*t.key_columns, "subject_id", "stay_id", "cxr_dicom_id", *t.label_columns]
        df = df[list(dict.fromkeys(cols))].sort_values(list(t.key_columns)).reset_index(drop=True)
        if split == "test":
            w.write_csv(layout.test_labels(task), df.drop(columns=["cxr_dicom_id"]))
            df = df.drop(columns=list(t.label_columns))
            paired = df.loc[df["cxr_dicom_id"].notna(), "stay_id"].unique()
            perm = np.random.default_rng(seed + 1).permutation(paired)
            sc = pd.DataFrame({"stay_id": perm})
            for p in CXR_MISSING_LEVELS:
                k = int(round(len(perm) * p / 100))
                sc[f"cxr_missing_{p}"] = (np.arange(len(perm)) < k).astype(int)
            scen_rows[task] = sc.sort_values("stay_id")
        w.write_csv(layout.units(task, split), df)
    for task, sc in scen_rows.items():
        w.write_csv(layout.scenarios(task), pd.DataFrame(sc))
    w.finish(name="tiny-test", version="1", source={"kind": "synthetic"}, seed=seed,
             extra={"tasks": list(TASKS)})  # fmt: skip
    return Path(root)
