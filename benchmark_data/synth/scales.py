"""Sizes of the synthetic benchmark: the exact unit counts each split is built to.

The ``medmod`` scale reproduces the test-split sizes of MedMod's MIMIC-IV benchmark exactly;
train and validation are 3.5 and 0.5 times the test split (about 70/10/20 by patient).
Smaller scales keep MedMod's ratios (hourly rows per stay, images per stay, share of stays
of 48 hours or more). The demo's test split is four times as large relative to its training
split (44/6/50 by stay): the training split stays small enough for CPU training in minutes
while the public part of the test split (about half of the test stays per task family,
:mod:`benchmark_data.causal`) has enough deaths for confidence intervals that separate
models.

>>> SCALES["medmod"].targets("test").decompensation_rows
216663
>>> SCALES["medmod"].targets("train").stays
7581
>>> [SCALES["demo"].targets(split).stays for split in ("train", "val", "test")]
[1190, 170, 1360]
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark_data.tasks import SPLITS

# Train and validation relative to the test split (70/10/20).
SPLIT_FACTORS: dict[str, float] = {"train": 3.5, "val": 0.5, "test": 1.0}


@dataclass(frozen=True)
class SplitTargets:
    """Exact sizes of one split's unit lists.

    ``stays`` is the phenotyping unit count (every stay), ``long_stays`` the in-hospital
    mortality count (stays of 48 hours or more), ``los_rows`` and ``decompensation_rows`` the
    hourly row counts and ``images`` the radiology unit count (AP images taken in a stay).
    """

    stays: int
    long_stays: int
    los_rows: int
    decompensation_rows: int
    images: int

    def scaled(self, factor: float) -> SplitTargets:
        """The same ratios at ``factor`` times the size (rounded half up)."""

        def r(x: float) -> int:
            return int(x * factor + 0.5)

        return SplitTargets(
            stays=r(self.stays),
            long_stays=r(self.long_stays),
            los_rows=r(self.los_rows),
            decompensation_rows=r(self.decompensation_rows),
            images=r(self.images),
        )


# MedMod's test split (MIMIC-IV + MIMIC-CXR).
MEDMOD_TEST = SplitTargets(
    stays=2166, long_stays=1242, los_rows=217504, decompensation_rows=216663, images=7220
)


@dataclass(frozen=True)
class Scale:
    """A named size of the synthetic benchmark."""

    name: str
    test: SplitTargets
    image_size: int
    test_multiple: float = 1.0

    def targets(self, split: str) -> SplitTargets:
        """Exact unit counts of a split."""
        if split not in SPLITS:
            raise KeyError(f"unknown split {split!r}; the splits are {', '.join(SPLITS)}")
        if split == "test":
            return self.test
        return self.test.scaled(SPLIT_FACTORS[split] / self.test_multiple)


def scale_like_medmod(
    name: str, stays: int, *, image_size: int, test_multiple: float = 1.0
) -> Scale:
    """A scale with MedMod's ratios whose test split would have ``stays`` stays at MedMod's
    70/10/20 split; ``test_multiple`` makes the test split that many times larger while
    train and validation keep their sizes."""
    test = MEDMOD_TEST.scaled(stays * test_multiple / MEDMOD_TEST.stays)
    return Scale(name, test, image_size, test_multiple)


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        Scale("medmod", MEDMOD_TEST, image_size=128),
        # 2,040 stays: CPU baselines train in minutes on 1,190 training stays; 680 test
        # stays, of which 390 mortality stays with about 50 deaths.
        scale_like_medmod("demo", 340, image_size=64, test_multiple=4.0),
        # For the package's own tests.
        scale_like_medmod("tiny", 40, image_size=32),
    )
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise KeyError(f"unknown scale {name!r}; the scales are: {', '.join(SCALES)}") from None
