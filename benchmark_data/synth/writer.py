"""Writing a generated benchmark in the on-disk format (docs/benchmark-format.md)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark_data import causal, layout
from benchmark_data.benchmark import BenchmarkWriter
from benchmark_data.discretize import discretize_split, split_index
from benchmark_data.store import LocalStore, Store, open_store
from benchmark_data.suite import Suite
from benchmark_data.synth.cohort import Cohort
from benchmark_data.synth.ehr import make_timeseries
from benchmark_data.synth.render import BATCH, png_bytes, render_batch
from benchmark_data.synth.units import TestPlan
from benchmark_data.tasks import SPLITS, TASKS

WRITE_THREADS = 4
ERR_OUT_EXISTS = (
    "{out} exists and holds files that are not a benchmark's; remove them or choose another --out"
)


class Progress:
    """Stage timings on stderr when enabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            sys.stderr.write(f"[{time.perf_counter() - self.t0:6.1f} s] {message}\n")
            sys.stderr.flush()


def _is_benchmark_or_empty(dest: Path) -> bool:
    """True when ``dest`` is an empty directory or holds exactly a benchmark's files (its
    manifest and files it lists), so it may be replaced."""
    if not dest.is_dir():
        return False
    present = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    if not present:
        return True
    try:
        listed = set(json.loads((dest / layout.MANIFEST).read_bytes())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return present <= listed | {layout.MANIFEST}


@contextmanager
def destination(out: str | os.PathLike[str] | Store) -> Iterator[Store]:
    """The store to write to. A local directory is written beside its final place and moved
    in when complete, replacing an earlier benchmark there; a directory holding anything
    else is refused. ``s3://`` URIs and stores are written in place."""
    if not isinstance(out, (str, os.PathLike)):
        yield out
        return
    if str(out).startswith("s3://"):
        yield open_store(out)
        return
    dest = Path(out)
    if dest.exists() and not _is_benchmark_or_empty(dest):
        raise ValueError(ERR_OUT_EXISTS.format(out=dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    tmp = dest.parent / f".{dest.name}.partial-{token}"
    tmp.mkdir()
    try:
        yield LocalStore(tmp)
        old = dest.parent / f".{dest.name}.old-{token}"
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def synthetic_identity(
    *, scale: str, seed: int, sealed: bool, generator: str, generator_version: str
) -> tuple[str, dict[str, Any]]:
    """A synthetic benchmark's version and source record. The generator's version names the
    data: a benchmark drawn by another generator is other data, and a platform keeps both
    apart (name and version are unique). A sealed benchmark's version holds a random token
    instead of its seed."""
    version = (
        f"{scale}-sealed{secrets.token_hex(4)}-g{generator_version}"
        if sealed
        else f"{scale}-seed{seed}-g{generator_version}"
    )
    source = {
        "kind": "synthetic", "generator": generator, "generator_version": generator_version,
        "scale": scale, **({"sealed": True} if sealed else {}),
    }  # fmt: skip
    return version, source


def finish_synthetic(
    w: BenchmarkWriter, *, name: str, scale: str, seed: int, sealed: bool, generator: str,
    generator_version: str, suite: Suite, extra: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Write a synthetic benchmark's manifest (and, when sealed, its seed to the credentialed
    part only: whoever has it can draw the test labels again); returns the manifest."""
    if sealed:
        w.write_bytes(layout.SEALED_SEED, (json.dumps({"seed": seed, "scale": scale}) + "\n").encode())  # fmt: skip
    version, source = synthetic_identity(
        scale=scale, seed=seed, sealed=sealed, generator=generator,
        generator_version=generator_version,
    )  # fmt: skip
    return w.finish(name=name, version=version, source=source,
                    seed=None if sealed else seed, suite=suite, extra=extra)  # fmt: skip


def _datetime_text(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.Series(values).dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object))


def write_tables(w: BenchmarkWriter, cohort: Cohort, images: pd.DataFrame, test: TestPlan) -> None:
    """stays.csv, the credentialed demographics and the chest X-ray metadata: the public
    files show the published test stays and their images up to the cutoff; the whole test
    split's go to ``credentialed/test/``."""
    st = cohort.stays
    intime = st["intime"].to_numpy().astype("datetime64[s]")
    stays = pd.DataFrame({
        "stay_id": st["stay_id"], "subject_id": st["subject_id"], "hadm_id": st["hadm_id"],
        "split": st["split"], "intime": _datetime_text(intime),
        "stay": [f"{s}_episode{k}_timeseries.csv"
                 for s, k in zip(st["subject_id"], st["episode"], strict=True)],
    })  # fmt: skip
    plan = test.stays.set_index("stay_id")
    is_test = stays["split"] == "test"
    shown = ~is_test | stays["stay_id"].map(plan["published"]).eq(1)
    w.write_csv(layout.STAYS, stays[shown.to_numpy()])
    whole = stays[is_test.to_numpy()].drop(columns="split").merge(
        test.stays.drop(columns="subject_id"), on="stay_id", how="left", validate="one_to_one"
    )  # fmt: skip
    w.write_csv(layout.TEST_STAYS, whole)
    w.write_csv(layout.DEMOGRAPHICS, st[["stay_id", "subject_id", "age", "gender", "race",
                                         "insurance", "admission_type"]])  # fmt: skip
    s = images["stay"].to_numpy()
    minute = images["minute"].to_numpy()
    taken = intime[s] + (60 * minute).astype("timedelta64[s]")
    meta = pd.DataFrame({
        "dicom_id": images["dicom_id"], "subject_id": st["subject_id"].to_numpy()[s],
        "study_id": images["study_id"], "stay_id": st["stay_id"].to_numpy()[s],
        "split": st["split"].to_numpy()[s], "study_datetime": _datetime_text(taken),
        "view_position": "AP", "hours": np.round(minute / 60.0, 6),
        "path": [layout.image(d) for d in images["dicom_id"]],
    })  # fmt: skip
    published = _image_published(meta, test)
    w.write_csv(layout.CXR_METADATA, meta[published])
    test_meta = meta[(meta["split"] == "test").to_numpy()].drop(columns=["split", "path"])
    w.write_csv(layout.TEST_CXR_METADATA,
                test_meta.assign(published=published[meta["split"] == "test"].astype(np.int64)))  # fmt: skip


def _image_published(meta: pd.DataFrame, test: TestPlan) -> np.ndarray:
    """Which images the public files show: training and validation ones, and test images
    of published stays taken at or before the cutoff."""
    is_test = (meta["split"] == "test").to_numpy()
    return ~is_test | causal.image_published(meta, test.plan())


def write_ehr(
    w: BenchmarkWriter, cohort: Cohort, rng_seeds: list[np.random.SeedSequence], test: TestPlan,
    progress: Progress,
) -> dict[str, int]:  # fmt: skip
    """Per split: the irregular time series, the discretized array and its index. The test
    split is written whole to ``credentialed/test/ehr/`` and cut at each published stay's
    cutoff to ``public/ehr/``."""
    counts: dict[str, int] = {}
    split = cohort.stays["split"].to_numpy()
    for name, seed in zip(SPLITS, rng_seeds, strict=True):
        sel = split == name
        ts, index = make_timeseries(
            cohort.stays[sel].reset_index(drop=True), cohort.phenotypes[sel],
            np.random.default_rng(seed),
        )  # fmt: skip
        x = discretize_split(ts, index)
        if name == "test":
            w.write_csv(layout.TEST_TIMESERIES, ts)
            w.write_npy(layout.TEST_DISCRETIZED, x)
            w.write_csv(layout.TEST_DISCRETIZED_INDEX,
                        split_index(index["stay_id"], index["n_hours"]))  # fmt: skip
            ts = causal.cut_timeseries(ts, test.plan())
            x, index = causal.cut_discretized(x, index, test.plan())
        w.write_csv(layout.timeseries(name), ts)
        w.write_npy(layout.discretized(name), x)
        w.write_csv(layout.discretized_index(name), split_index(index["stay_id"], index["n_hours"]))
        counts[f"timeseries_rows_{name}"] = len(ts)
        counts[f"hourly_rows_{name}"] = len(x)
        progress(f"time series {name}: {len(ts):,} rows, {len(x):,} hours")
    return counts


def write_images(
    w: BenchmarkWriter, images: pd.DataFrame, params: pd.DataFrame, test: TestPlan, *, size: int,
    rng: np.random.Generator, progress: Progress,
) -> None:  # fmt: skip
    """Render and write every image: test images the public files do not show go to the
    sequestered part."""
    rad = test.units["radiology"]  # every test image is a radiology unit
    shown = causal.image_published(
        pd.DataFrame({"stay_id": rad["stay_id"], "hours": rad["prediction_hours"]}), test.plan()
    )
    sequestered = set(rad.loc[~shown, "dicom_id"])
    render_images(
        w, images, params, size=size, rng=rng, progress=progress,
        path=lambda d: layout.sequestered_image(d) if d in sequestered else layout.image(d),
    )  # fmt: skip


def render_images(
    w: BenchmarkWriter, images: pd.DataFrame, params: pd.DataFrame, *, size: int,
    rng: np.random.Generator, progress: Progress, path: Callable[[str], str] = layout.image,
) -> None:  # fmt: skip
    """Render the images (``dicom_id`` and drawing parameters per row) in batches and write
    each to ``path(dicom_id)``.

    Rendering is sequential (one random stream); PNG encoding and writing, mostly waiting
    on the file system or network, run in a few threads. File contents do not depend on
    the order of writes, and the manifest lists files sorted.
    """
    dicom = images["dicom_id"].to_numpy()

    def encode_and_write(d: str, px: np.ndarray) -> None:
        w.write_bytes(path(d), png_bytes(px))

    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        pending: list[Future[None]] = []
        for start in range(0, len(images), BATCH):
            stop = min(start + BATCH, len(images))
            pixels = render_batch(params.iloc[start:stop].reset_index(drop=True), size, rng)
            for f in pending:  # keep at most one batch in flight
                f.result()
            pending = [
                pool.submit(encode_and_write, d, px)
                for d, px in zip(dicom[start:stop], pixels, strict=True)
            ]
            if (start // BATCH) % 100 == 99:
                progress(f"images: {stop:,} of {len(images):,}")
        for f in pending:
            f.result()


def write_units(
    w: BenchmarkWriter, units: dict[str, pd.DataFrame], test: TestPlan
) -> dict[str, Any]:
    """Unit lists (labels in train and val only), test labels and scenario files: the
    public test units and their labels, and every test unit under ``credentialed/test/``."""
    counts: dict[str, Any] = {}
    for task, df in units.items():
        t = TASKS[task]
        labels = list(t.label_columns)
        keep = [*t.key_columns, "subject_id", "stay_id", *labels]
        c: dict[str, int] = {}
        for name in SPLITS:
            if name == "test":
                whole = test.units[task].drop(columns="split").reset_index(drop=True)
                part = whole[whole["public"] == 1].drop(
                    columns=["prediction_hours", "public", "clean"]
                )
                part = part.reset_index(drop=True)
                w.write_csv(layout.units(task, name), part.drop(columns=labels))
                w.write_csv(layout.test_labels(task), part[list(dict.fromkeys(keep))])
                w.write_csv(layout.test_units(task), whole.drop(columns=labels))
                w.write_csv(layout.all_test_labels(task), whole[list(dict.fromkeys(keep))])
                c["test_paired"] = int(part["cxr_dicom_id"].notna().sum())
                c["test_all"] = len(whole)
                c["test_all_paired"] = int(whole["cxr_dicom_id"].notna().sum())
                clean = whole[whole["clean"] == 1]
                c["test_clean"] = len(clean)
                c["test_clean_paired"] = int(clean["cxr_dicom_id"].notna().sum())
            else:
                part = df[df["split"] == name].drop(columns="split").reset_index(drop=True)
                w.write_csv(layout.units(task, name), part)
            c[name] = len(part)
        keys = ("test_paired", "test_all", "test_all_paired", "test_clean", "test_clean_paired")
        counts[task] = {s: c[s] for s in (*SPLITS, *keys)}
        w.write_csv(layout.scenarios(task), test.scenarios[task])
        w.write_csv(layout.test_scenarios(task), test.all_scenarios[task])
    return counts
