"""The synthetic MIMIC-shaped benchmark: seeded, with real signal in both modalities.

Patients get ICU stays with a latent clinical state; the 17 MedMod variables are charted
from it as irregular time series and AP chest X-rays are drawn from it as images; the labels
of the five tasks (in-hospital mortality, phenotyping, decompensation, length of stay,
radiology) derive from the same state. Some of that state shows only in the vital signs
(acute severity, deterioration before death, recovery before discharge), some only on the
image (the extent of effusion, edema and consolidation), so single-modality models learn
something and fusion learns more. Data quality differs by group, so fairness gaps come from
the data. The ``medmod`` scale reproduces MedMod's test-split sizes exactly.

``python -m benchmark_data synth --out DIR --scale demo --seed 42`` calls :func:`generate`;
``scripts/check_signal.py`` shows the signal.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from benchmark_data.benchmark import BenchmarkWriter
from benchmark_data.causal import scored_on
from benchmark_data.store import Store
from benchmark_data.synth.cohort import PHENOTYPE_SLUGS, Cohort, make_cohort
from benchmark_data.synth.cxr import FINDING_SLUGS, image_findings, schedule_images
from benchmark_data.synth.scales import SCALES, Scale, SplitTargets, get_scale
from benchmark_data.synth.units import TestPlan, build_units, plan_test_split
from benchmark_data.synth.writer import (
    ERR_OUT_EXISTS,
    Progress,
    destination,
    finish_synthetic,
    write_ehr,
    write_images,
    write_tables,
    write_units,
)
from benchmark_data.tasks import MEDMOD, SPLITS, TASK_SLUGS

GENERATOR = "benchmark_data.synth"
GENERATOR_VERSION = "4"
NAME = "medmod-synthetic"

__all__ = [
    "ERR_OUT_EXISTS",
    "GENERATOR_VERSION",
    "SCALES",
    "Scale",
    "SplitTargets",
    "generate",
    "get_scale",
]


@dataclass
class _Drawn:
    """Everything drawn before writing: stays, images, their drawing parameters, the unit
    lists of all splits (with labels) and the scenario tables."""

    scale: Scale
    seed: int
    cohort: Cohort
    images: pd.DataFrame
    image_params: pd.DataFrame
    units: dict[str, pd.DataFrame]
    test: TestPlan
    streams: list[np.random.SeedSequence]


def _draw(scale: Scale, seed: int) -> _Drawn:
    # Independent streams: cohort, image schedule, findings, scenarios, time series, pixels.
    streams = np.random.SeedSequence(seed).spawn(6)
    cohort = make_cohort(scale, np.random.default_rng(streams[0]))
    images = schedule_images(cohort.stays, scale, np.random.default_rng(streams[1]))
    findings, params = image_findings(
        images, cohort.stays, cohort.phenotypes, np.random.default_rng(streams[2])
    )
    units = build_units(cohort.stays, cohort.phenotypes, images, findings)
    # The scenario stream's first child draws the test split's cutoffs, one per task the
    # withheld sets.
    test = plan_test_split(cohort.stays, images, units, streams[3].spawn(len(TASK_SLUGS) + 1))
    return _Drawn(scale, seed, cohort, images, params, units, test, streams)


def generate(
    out: str | os.PathLike[str] | Store,
    *,
    scale: str = "demo",
    seed: int | None = 42,
    sealed: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate the synthetic benchmark into ``out``; returns its manifest.

    Parameters
    ----------
    out
        A directory (created, or replacing an earlier benchmark there; a directory holding
        other files is refused with ``ValueError``), an ``s3://`` URI or a store.
    scale
        ``"demo"`` (2,040 stays, 64x64 images: seconds), ``"medmod"`` (MedMod's exact
        test-split sizes, 128x128 images: minutes) or ``"tiny"`` (for tests).
    seed
        The same seed gives byte-identical files. With ``sealed`` and no seed, one is drawn
        at random.
    sealed
        Keep the seed secret: anyone who knows it can generate the benchmark again, test
        labels included. The manifest and the version then name no seed (the version holds
        a random token instead); the seed is written to ``credentialed/generator.json``
        only, which public exports leave out. Use it for any benchmark whose test labels
        are to stay hidden; the demo's published seed is for reproducing it.
    progress
        Print stage timings on stderr.
    """
    say = Progress(progress)
    if seed is None:
        if not sealed:
            raise ValueError("a seed is needed unless the benchmark is sealed")
        seed = secrets.randbits(63)
    d = _draw(get_scale(scale), seed)
    say(f"drawn: {len(d.cohort.stays):,} stays, {len(d.images):,} images")
    with destination(out) as store:
        w = BenchmarkWriter(store)
        write_tables(w, d.cohort, d.images, d.test)
        ehr_stats = write_ehr(w, d.cohort, d.streams[4].spawn(len(SPLITS)), d.test, say)
        counts = write_units(w, d.units, d.test)
        say("unit lists written")
        write_images(w, d.images, d.image_params, d.test, size=d.scale.image_size,
                     rng=np.random.default_rng(d.streams[5]), progress=say)  # fmt: skip
        say(f"{len(d.images):,} images written")
        manifest = finish_synthetic(
            w,
            name=NAME,
            scale=scale,
            seed=seed,
            sealed=sealed,
            generator=GENERATOR,
            generator_version=GENERATOR_VERSION,
            suite=MEDMOD,
            extra={
                "tasks": list(TASK_SLUGS),
                "counts": counts,
                "scored_on": scored_on(counts),
                "prevalence": _prevalence(d.units),
                "stats": _stats(d, ehr_stats),
            },
        )
    say("manifest written")
    return manifest


def _stats(d: _Drawn, ehr_stats: dict[str, int]) -> dict[str, Any]:
    stays = d.cohort.stays
    return {
        "subjects": int(stays["subject_id"].nunique()),
        "stays": len(stays),
        "images": len(d.images),
        "image_size": d.scale.image_size,
        "stays_without_cxr": round(1 - d.images["stay"].nunique() / len(stays), 4),
        **ehr_stats,
    }


def _prevalence(units: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Label rates over all splits (mean remaining hours for length of stay)."""

    def r(x: float) -> float:
        return round(float(x), 4)

    return {
        "in-hospital-mortality": r(units["in-hospital-mortality"]["y_true"].mean()),
        "decompensation": r(units["decompensation"]["y_true"].mean()),
        "length-of-stay_mean_hours": r(units["length-of-stay"]["y_true"].mean()),
        "phenotyping": {s: r(units["phenotyping"][s].mean()) for s in PHENOTYPE_SLUGS},
        "radiology": {s: r(units["radiology"][s].mean()) for s in FINDING_SLUGS},
    }
