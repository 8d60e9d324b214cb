"""Everything a run loads from a benchmark once: EHR arrays, images, unit lists.

Normalisation statistics come from the training split only (EHR continuous columns, image
pixels) and are recorded in the run manifest, so predictions can be reproduced from the
checkpoints alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from benchmark_data import layout
from benchmark_data.benchmark import Benchmark, ScenarioSets
from benchmark_data.sequestered import TestSplit, test_split
from benchmark_data.tasks import SPLITS, get_task
from scoring.baselines.data import (
    EHRNorm,
    ImageCache,
    SplitEHR,
    TaskData,
    build_task_data,
    unit_images,
    withheld_stays,
)
from scoring.baselines.encoders import CXR_ENCODERS

# Input size per CXR encoder when not given: MedFuse's 224 for ResNet-34; 64 for the small
# network, whose last feature maps are then 2 x 2 (the resolution divided by 32).
DEFAULT_IMAGE_SIZE = {"resnet34": 224, "small": 64}


def resolve_encoder(bench: Benchmark, requested: str) -> str:
    """``auto``: the small CNN on a synthetic benchmark, ResNet-34 on real data."""
    if requested != "auto":
        if requested not in CXR_ENCODERS:
            raise ValueError(
                f"unknown CXR encoder {requested!r}; choose auto or one of {CXR_ENCODERS}"
            )
        return requested
    kind = (bench.manifest.get("source") or {}).get("kind")
    return "small" if kind == "synthetic" else "resnet34"


@dataclass
class Workspace:
    """A benchmark's inputs for the requested tasks, loaded once per run."""

    bench: Benchmark
    tasks: list[str]
    max_hours: int
    norm: EHRNorm
    ehr: dict[str, SplitEHR]
    images: ImageCache
    image_hours: dict[str, float]
    units: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    whole: TestSplit | None = None
    scored: dict[str, np.ndarray] = field(default_factory=dict)
    # Training-time missingness: per training split, the stays whose images are withheld
    # (every unit of the stay, in every task), and how many stays had an image to lose.
    withheld: dict[str, np.ndarray] = field(default_factory=dict)
    with_images: dict[str, int] = field(default_factory=dict)
    _data: dict[tuple[str, str], TaskData] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        bench: Benchmark,
        tasks: list[str],
        *,
        image_size: int,
        max_hours: int,
        preprocessing: dict[str, Any] | None = None,
        train_cxr_missing: float = 0.0,
        seed: int = 0,
    ) -> Workspace:
        """Load the splits and images; ``preprocessing`` (from a run manifest) fixes the
        normalisation instead of fitting it on the training split.

        ``train_cxr_missing``: the share of the training and of the validation stays with
        an image whose images are withheld (:func:`~scoring.baselines.data.withheld_stays`,
        drawn from ``seed``); the test split is never touched."""
        # The test split whole (every unit at every prediction time) where the benchmark
        # has it: the models predict every test unit, and each prediction file keeps the
        # units its task is scored on (public or all, Benchmark.scored_on).
        whole = test_split(bench) if bench.has(layout.TEST_STAYS) else None
        units = {(t, s): bench.units(t, s) for t in tasks for s in SPLITS if s != "test"}
        scored: dict[str, np.ndarray] = {}
        for t in tasks:
            test = whole.units(t) if whole is not None else bench.units(t, "test")
            if whole is not None:
                scored[t] = whole.scored(test, t)
            else:
                scored[t] = np.ones(len(test), dtype=bool)
            extra = [c for c in ("prediction_hours", "public", "clean") if c in test.columns]
            units[(t, "test")] = test.drop(columns=extra)
        if preprocessing is not None:
            norm = EHRNorm.from_dict(preprocessing["ehr_norm"])
        else:
            norm = EHRNorm.fit(bench.discretized("train")[0])
        ehr = {s: SplitEHR.load(bench, s, norm, whole=whole if s == "test" else None)
               for s in SPLITS}  # fmt: skip
        meta = bench.cxr_metadata()
        withheld: dict[str, np.ndarray] = {}
        with_images: dict[str, int] = {}
        for split in ("train", "val"):
            pool = meta.loc[meta["split"] == split, "stay_id"].dropna().astype(int).unique()
            with_images[split] = len(pool)
            withheld[split] = withheld_stays(pool, train_cxr_missing, seed=seed, split=split)
        if whole is not None:
            test_meta = whole.cxr_metadata()[["dicom_id", "hours"]].assign(split="test")
            meta = pd.concat([meta[meta["split"] != "test"], test_meta], ignore_index=True)
        images = ImageCache(size=image_size)
        images.add(
            bench, sorted({d for df in units.values() for d in unit_images(df)}), whole=whole
        )
        if preprocessing is not None:
            images.mean = float(preprocessing["image"]["mean"])
            images.std = float(preprocessing["image"]["std"])
        else:
            # Every training-split image, whatever the tasks: the statistics (and so every
            # model's inputs) do not depend on which tasks a run trains.
            # A withheld image is not among them: the run never sees it.
            train = meta[(meta["split"] == "train") & ~meta["stay_id"].isin(withheld["train"])]
            train_ids = sorted(train["dicom_id"].astype(str))
            images.add(bench, train_ids)
            images.fit_norm(train_ids)
        hours = dict(zip(meta["dicom_id"].astype(str), meta["hours"].astype(float), strict=True))
        return cls(
            bench=bench,
            tasks=tasks,
            max_hours=max_hours,
            norm=norm,
            ehr=ehr,
            images=images,
            image_hours=hours,
            units=units,
            whole=whole,
            scored=scored,
            withheld=withheld,
            with_images=with_images,
        )

    def data(self, task: str, split: str) -> TaskData:
        """A task's inputs for a split, without the withheld stays' images (training and
        validation splits of a run with training-time missingness)."""
        key = (task, split)
        if key not in self._data:
            data = build_task_data(
                get_task(task),
                self.units[key],
                self.ehr[split],
                self.images,
                image_hours=self.image_hours,
                max_hours=self.max_hours,
            )
            drop = self.withheld.get(split)
            if split != "test" and drop is not None and len(drop):
                data = data.without_images(drop.tolist())
            self._data[key] = data
        return self._data[key]

    def missingness(self) -> dict[str, Any]:
        """What the run withheld, for its manifest: per training split the stays that had
        an image and how many of them lost it."""
        return {
            split: {"stays_with_images": self.with_images.get(split, 0),
                    "stays_withheld": int(len(self.withheld.get(split, ())))}
            for split in ("train", "val")
        }  # fmt: skip

    def test_scenarios(self, task: str) -> ScenarioSets | None:
        """Withheld stays per scenario over the test units the models predict."""
        if not self.units[(task, "test")]["cxr_dicom_id"].notna().any():
            return None
        return self.whole.scenarios(task) if self.whole is not None else self.bench.scenarios(task)

    def scored_predictions(self, task: str, df: pd.DataFrame) -> pd.DataFrame:
        """The rows of a prediction file (every test unit, every scenario) for the units the
        task is scored on."""
        keys = list(get_task(task).key_columns)
        units = self.units[(task, "test")][keys][self.scored[task]]
        if len(units) == len(self.units[(task, "test")]):
            return df
        return df.merge(units, on=keys, how="inner", sort=False)

    def preprocessing(self) -> dict[str, Any]:
        return {
            "ehr_norm": self.norm.to_dict(),
            "image": {"size": self.images.size, "mean": self.images.mean, "std": self.images.std},
        }


def resolve_image_size(encoder: str, requested: int | None) -> int:
    return int(requested) if requested else DEFAULT_IMAGE_SIZE[encoder]
