"""A tiny benchmark in the on-disk format (docs/benchmark-format.md), for container tests.

Every public file a model reads and the credentialed files, at a size that builds in well
under a second: a dozen test stays, hourly rows, small PNG chest X-rays for some stays, the
five tasks' unit lists and scenarios. Values are random: the tests check the contract and
the containment, not a model's skill.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from benchmark_data import BenchmarkWriter, layout
from benchmark_data.tasks import CXR_MISSING_LEVELS, TASKS
from benchmark_data.variables import N_FEATURES, VARIABLE_NAMES

# Labels planted in the credentialed part; none of them may appear in a model's inputs.
LABEL_MARKER = "y_true"


def _png(rng: np.random.Generator, size: int = 32) -> bytes:
    pixels = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def build_tiny_benchmark(dest: Path, *, seed: int = 7, n_stays: int = 12) -> Path:
    """Write the tiny benchmark to ``dest``; returns ``dest``."""
    rng = np.random.default_rng(seed)
    w = BenchmarkWriter(dest)
    stay_ids = np.arange(30_000_001, 30_000_001 + n_stays)
    subjects = np.arange(10_000_001, 10_000_001 + n_stays)
    hours = rng.integers(50, 80, size=n_stays)
    stays = pd.DataFrame(
        {
            "stay_id": stay_ids,
            "subject_id": subjects,
            "hadm_id": stay_ids + 1_000_000,
            "split": "test",
            "intime": "2150-01-01 00:00:00",
            "stay": [f"{s}_episode1_timeseries.csv" for s in subjects],
        }
    )
    w.write_csv(layout.STAYS, stays)

    ts = pd.DataFrame(
        {"stay_id": np.repeat(stay_ids, 3), "hours": np.tile([0.5, 10.0, 30.0], n_stays)}
    )
    for name in VARIABLE_NAMES:
        ts[name] = np.nan
    ts["Heart Rate"] = rng.normal(90, 15, len(ts)).round(1)
    w.write_csv(layout.timeseries("test"), ts)
    arr = rng.normal(0, 1, size=(int(hours.sum()), N_FEATURES)).astype(np.float32)
    w.write_npy(layout.discretized("test"), arr)
    offsets = np.concatenate([[0], np.cumsum(hours)[:-1]])
    index = pd.DataFrame({"stay_id": stay_ids, "offset": offsets, "n_hours": hours})
    w.write_csv(layout.discretized_index("test"), index)

    # Two images for each of the first two thirds of the stays, at hours 10 and 40.
    imaged = stay_ids[: (2 * n_stays) // 3]
    meta_rows = []
    for k, stay in enumerate(imaged):
        for j, h in enumerate((10.0, 40.0)):
            dicom = f"img{k:03d}{j}-{stay}"
            meta_rows.append(
                {
                    "dicom_id": dicom,
                    "subject_id": int(subjects[k]),
                    "study_id": 50_000_000 + 10 * k + j,
                    "stay_id": int(stay),
                    "split": "test",
                    "study_datetime": f"2150-01-0{1 + j} 10:00:00",
                    "view_position": "AP",
                    "hours": h,
                    "path": f"cxr/images/{dicom}.png",
                }
            )
            w.write_bytes(layout.image(dicom), _png(rng))
    meta = pd.DataFrame(meta_rows)
    w.write_csv(layout.CXR_METADATA, meta)
    last_image = {int(s): g for s, g in meta.groupby("stay_id")}

    def image_at(stay: int, t: float) -> str | None:
        g = last_image.get(int(stay))
        if g is None:
            return None
        g = g[g["hours"] <= t]
        return None if g.empty else str(g["dicom_id"].iloc[-1])

    units: dict[str, pd.DataFrame] = {}
    base = {"stay_id": stay_ids, "subject_id": subjects}
    units["in-hospital-mortality"] = pd.DataFrame(
        {**base, "cxr_dicom_id": [image_at(s, 48) for s in stay_ids]}
    )
    units["phenotyping"] = pd.DataFrame(
        {**base, "cxr_dicom_id": [image_at(s, 1e9) for s in stay_ids]}
    )
    hourly = [(s, subj, t) for s, subj, n in zip(stay_ids, subjects, hours, strict=True)
              for t in range(5, int(n))]  # fmt: skip
    for task in ("decompensation", "length-of-stay"):
        units[task] = pd.DataFrame(
            {
                "stay_id": [h[0] for h in hourly],
                "period_length": [h[2] for h in hourly],
                "subject_id": [h[1] for h in hourly],
                "cxr_dicom_id": [image_at(h[0], h[2]) for h in hourly],
            }
        )
    units["radiology"] = pd.DataFrame(
        {
            "dicom_id": meta["dicom_id"],
            "subject_id": meta["subject_id"],
            "stay_id": meta["stay_id"],
            "cxr_dicom_id": meta["dicom_id"],
        }
    )
    demo = pd.DataFrame(
        {
            "stay_id": stay_ids,
            "subject_id": subjects,
            "age": rng.integers(20, 90, n_stays),
            "gender": rng.choice(["M", "F"], n_stays),
            "race": rng.choice(["WHITE", "BLACK", "ASIAN"], n_stays),
            "insurance": rng.choice(["Medicare", "Other"], n_stays),
            "admission_type": "EMERGENCY",
        }
    )
    w.write_csv(layout.DEMOGRAPHICS, demo)
    for slug, task in TASKS.items():
        u = units[slug]
        w.write_csv(layout.units(slug, "test"), u)
        paired = sorted(set(u.loc[u["cxr_dicom_id"].notna(), "stay_id"].astype(int)))
        order = rng.permutation(len(paired))
        sc = pd.DataFrame({"stay_id": paired})
        for p in CXR_MISSING_LEVELS:
            chosen = set(order[: int(np.ceil(len(paired) * p / 100))].tolist())
            sc[f"cxr_missing_{p}"] = [int(i in chosen) for i in range(len(paired))]
        w.write_csv(layout.scenarios(slug), sc)
        labels = u[list(task.key_columns)].copy()
        labels["subject_id"] = u["subject_id"]
        labels["stay_id"] = u["stay_id"]
        for col in task.label_columns:
            labels[col] = (
                rng.integers(0, 2, len(u)) if task.kind != "los" else rng.uniform(0, 300, len(u))
            )
        w.write_csv(layout.test_labels(slug), labels)
    w.finish(name="tiny", version="containers-test", source={"kind": "test"}, seed=seed,
             extra={"tasks": list(TASKS)})  # fmt: skip
    return dest
