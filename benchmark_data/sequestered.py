"""The whole test split as the streaming gateway sees it: every test unit with its
prediction time, and every test input with its time.

Format version 2 keeps the whole test split under ``credentialed/test/`` and publishes each
test stay only up to its cutoff (docs/benchmark-format.md, "The test split"). A benchmark of
format version 1 has no such part: there the public test files are whole, and the stays'
end times come from the length-of-stay labels. Either way :func:`test_split` gives the same
typed view, read only by the platform's worker.

>>> prediction_hours("in-hospital-mortality", None)
48.0
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from benchmark_data import layout
from benchmark_data.benchmark import Benchmark, BenchmarkError, ScenarioSets
from benchmark_data.tasks import get_task

MORTALITY_HOURS = 48.0
TEST = "test"

ERR_NO_TEST_PART = (
    "{uri}: the whole test split (credentialed/test/) is not in this copy of the benchmark; "
    "the streaming gateway needs the credentialed part"
)


def prediction_hours(task: str, units: pd.DataFrame | None, *, end_hours: pd.Series | None = None,
                     image_hours: pd.Series | None = None) -> np.ndarray | float:  # fmt: skip
    """Prediction time of each unit of a task, in hours since the stay's intime.

    In-hospital mortality at 48 h; decompensation and length of stay at ``period_length``;
    phenotyping at the end of the stay (``end_hours``, aligned with ``units``); radiology at
    the image's own time (``image_hours``, aligned with ``units``).
    """
    slug = get_task(task).slug
    if slug == "in-hospital-mortality":
        return MORTALITY_HOURS if units is None else np.full(len(units), MORTALITY_HOURS)
    assert units is not None
    if slug in ("decompensation", "length-of-stay"):
        return units["period_length"].to_numpy(dtype=np.float64)
    if slug == "phenotyping":
        assert end_hours is not None
        return np.asarray(end_hours, dtype=np.float64)
    assert image_hours is not None
    return np.asarray(image_hours, dtype=np.float64)


@dataclass
class TestSplit:
    """Every test stay, unit and input of a benchmark, with times.

    ``stays``: ``stay_id, subject_id, end_hours`` (the stay's end: discharge from the ICU or
    death), and in format 2 also ``family, cutoff_hours, published``.
    """

    bench: Benchmark
    sequestered: bool

    @cached_property
    def stays(self) -> pd.DataFrame:
        if self.sequestered:
            return self.bench.read_csv(layout.TEST_STAYS)
        stays = self.bench.stays()
        stays = stays[stays["split"] == TEST].drop(columns=["split"]).reset_index(drop=True)
        return stays.assign(end_hours=self._v1_end_hours(stays))

    def _v1_end_hours(self, stays: pd.DataFrame) -> np.ndarray:
        """End of each stay in a format-1 benchmark: ``period_length + y_true`` of its
        length-of-stay rows, else the last time-series row (stays under five hours)."""
        labels = self.bench.test_labels("length-of-stay")
        end = (labels["period_length"] + labels["y_true"]).groupby(labels["stay_id"]).max()
        ts = self.bench.timeseries(TEST)
        last = ts.groupby("stay_id")["hours"].max()
        out = pd.Series(stays["stay_id"]).map(end)
        out = out.fillna(pd.Series(stays["stay_id"]).map(last)).fillna(0.0)
        return np.round(out.to_numpy(dtype=np.float64), 6)

    def units(self, task: str) -> pd.DataFrame:
        """Every test unit of a task (no labels), with ``prediction_hours``, ``public`` and
        ``clean`` (the public files show nothing of it past its prediction time)."""
        slug = get_task(task).slug
        if self.sequestered:
            return self.bench.read_csv(layout.test_units(slug), dtype={"cxr_dicom_id": "string"})
        units = self.bench.units(slug, TEST)
        end = image = None
        if slug == "phenotyping":
            end = units["stay_id"].map(self.stays.set_index("stay_id")["end_hours"])
        if slug == "radiology":
            meta = self.cxr_metadata().set_index("dicom_id")["hours"]
            image = units["dicom_id"].astype(str).map(meta)
        return units.assign(
            prediction_hours=prediction_hours(slug, units, end_hours=end, image_hours=image),
            public=1,
            clean=1,
        )

    def scored(self, units: pd.DataFrame, task: str) -> np.ndarray:
        """Which rows of :meth:`units` the task is scored on: its public units, or its clean
        ones for a task scored on ``all`` (``Benchmark.scored_on``)."""
        column = "public" if self.bench.scored_on(get_task(task).slug) == "public" else "clean"
        return units[column].to_numpy() == 1

    def labels(self, task: str) -> pd.DataFrame:
        """Labels of every test unit, in the order of :meth:`units`."""
        slug = get_task(task).slug
        if self.sequestered:
            return self.bench.read_csv(layout.all_test_labels(slug))
        return self.bench.test_labels(slug)

    def timeseries(self) -> pd.DataFrame:
        """``stay_id, hours`` and the 17 variables of every test stay, whole."""
        if self.sequestered:
            return self.bench.read_csv(layout.TEST_TIMESERIES)
        return self.bench.timeseries(TEST)

    def discretized(self) -> tuple[np.ndarray, pd.DataFrame]:
        """The 76-feature hourly array of every test stay, whole, and its index."""
        if self.sequestered:
            arr = np.load(io.BytesIO(self.bench.read_bytes(layout.TEST_DISCRETIZED)))
            return arr, self.bench.read_csv(layout.TEST_DISCRETIZED_INDEX)
        return self.bench.discretized(TEST)

    def cxr_metadata(self) -> pd.DataFrame:
        """Every test image: ``dicom_id, subject_id, study_id, stay_id, study_datetime,
        view_position, hours`` (and ``published`` in format 2)."""
        if self.sequestered:
            return self.bench.read_csv(layout.TEST_CXR_METADATA, dtype={"dicom_id": "string"})
        meta = self.bench.cxr_metadata()
        meta = meta[meta["split"] == TEST].drop(columns=["split"]).reset_index(drop=True)
        return meta.drop(columns=[c for c in ("path",) if c in meta.columns])

    def image_bytes(self, dicom_id: str) -> bytes:
        """A test image's PNG bytes, published or not."""
        public = layout.image(dicom_id)
        if self.bench.has(public):
            return self.bench.read_bytes(public)
        return self.bench.read_bytes(layout.sequestered_image(dicom_id))

    def scenarios(self, task: str) -> ScenarioSets:
        """Withheld stays per scenario over every paired test stay of a task."""
        slug = get_task(task).slug
        if not self.sequestered:
            return self.bench.scenarios(slug)
        return self.bench.scenario_sets(layout.test_scenarios(slug))


def test_split(bench: Benchmark) -> TestSplit:
    """The whole test split of a benchmark (format 1 or 2); needs its credentialed part."""
    if not bench.has_credentialed():
        raise BenchmarkError(ERR_NO_TEST_PART.format(uri=bench.uri))
    return TestSplit(bench, sequestered=bench.has(layout.TEST_STAYS))


__all__ = ["MORTALITY_HOURS", "TestSplit", "prediction_hours", "test_split"]

# Named for the test split, not tests: pytest must not collect them where they are imported.
TestSplit.__test__ = False  # type: ignore[attr-defined]
test_split.__test__ = False  # type: ignore[attr-defined]
