"""Everything a run loads from a benchmark once: EHR arrays, images, unit lists.

Normalisation statistics come from the training split only (EHR continuous columns, image
pixels) and are recorded in the run manifest, so predictions can be reproduced from the
checkpoints alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from benchmark_data.benchmark import Benchmark
from benchmark_data.tasks import SPLITS, get_task
from scoring.baselines.data import (
    EHRNorm,
    ImageCache,
    SplitEHR,
    TaskData,
    build_task_data,
    unit_images,
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
    ) -> Workspace:
        """Load the splits and images; ``preprocessing`` (from a run manifest) fixes the
        normalisation instead of fitting it on the training split."""
        units = {(t, s): bench.units(t, s) for t in tasks for s in SPLITS}
        if preprocessing is not None:
            norm = EHRNorm.from_dict(preprocessing["ehr_norm"])
        else:
            norm = EHRNorm.fit(bench.discretized("train")[0])
        ehr = {s: SplitEHR.load(bench, s, norm) for s in SPLITS}
        meta = bench.cxr_metadata()
        images = ImageCache(size=image_size)
        images.add(bench, sorted({d for df in units.values() for d in unit_images(df)}))
        if preprocessing is not None:
            images.mean = float(preprocessing["image"]["mean"])
            images.std = float(preprocessing["image"]["std"])
        else:
            # Every training-split image, whatever the tasks: the statistics (and so every
            # model's inputs) do not depend on which tasks a run trains.
            train_ids = sorted(meta.loc[meta["split"] == "train", "dicom_id"].astype(str))
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
        )

    def data(self, task: str, split: str) -> TaskData:
        key = (task, split)
        if key not in self._data:
            self._data[key] = build_task_data(
                get_task(task),
                self.units[key],
                self.ehr[split],
                self.images,
                image_hours=self.image_hours,
                max_hours=self.max_hours,
            )
        return self._data[key]

    def preprocessing(self) -> dict[str, Any]:
        return {
            "ehr_norm": self.norm.to_dict(),
            "image": {"size": self.images.size, "mean": self.images.mean, "std": self.images.std},
        }


def resolve_image_size(encoder: str, requested: int | None) -> int:
    return int(requested) if requested else DEFAULT_IMAGE_SIZE[encoder]
