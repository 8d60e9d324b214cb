"""Checks that a benchmark's public test files show nothing past each stay's cutoff.

Used on the synthetic benchmark and on a MIMIC import: both must write the same leak-free
layout (docs/benchmark-format.md, "The test split").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark_data import Benchmark, layout
from benchmark_data.sequestered import test_split
from benchmark_data.tasks import TASK_SLUGS, TASKS


def check_leak_free(bench: Benchmark) -> dict[str, int]:
    """Assert the public test files are the whole test split cut at each published stay's
    cutoff; returns the number of public units per task."""
    whole = test_split(bench)
    assert whole.sequestered
    stays = whole.stays.set_index("stay_id")
    published = stays.index[stays["published"] == 1]
    cutoff = stays["cutoff_hours"]

    # One published stay per patient; the public stays.csv lists exactly those test stays.
    pub = stays.loc[published]
    assert pub["subject_id"].is_unique
    public_stays = bench.stays()
    assert set(public_stays.loc[public_stays["split"] == "test", "stay_id"]) == set(published)
    assert (pub["cutoff_hours"] <= pub["end_hours"] + 1e-6).all()

    # Time series: the whole rows of published stays up to the cutoff, nothing else.
    ts, ts_all = bench.timeseries("test"), whole.timeseries()
    assert set(ts["stay_id"]) <= set(published)
    assert (ts["hours"].to_numpy() <= ts["stay_id"].map(cutoff).to_numpy() + 1e-9).all()
    expect = ts_all[ts_all["stay_id"].isin(published)]
    expect = expect[expect["hours"].to_numpy() <= expect["stay_id"].map(cutoff).to_numpy()]
    pd.testing.assert_frame_equal(ts.reset_index(drop=True), expect.reset_index(drop=True))

    # Discretized rows: the first ceil(cutoff) rows of the whole array, identical.
    arr, index = bench.discretized("test")
    arr_all, index_all = whole.discretized()
    offsets_all = index_all.set_index("stay_id")["offset"]
    assert set(index["stay_id"]) == set(published)
    for sid, off, n in index[["stay_id", "offset", "n_hours"]].itertuples(index=False):
        assert n <= np.ceil(cutoff[sid])
        start = offsets_all[sid]
        np.testing.assert_array_equal(arr[off : off + n], arr_all[start : start + n])

    # Images: the published stays' images taken by the cutoff; none of the others is public.
    meta = bench.cxr_metadata()
    meta = meta[meta["split"] == "test"]
    meta_all = whole.cxr_metadata()
    shown = meta_all["stay_id"].isin(published) & (
        meta_all["hours"].to_numpy() <= meta_all["stay_id"].map(cutoff).to_numpy() + 1e-9
    )
    assert set(meta["dicom_id"]) == set(meta_all.loc[shown, "dicom_id"])
    for d in meta_all.loc[~shown, "dicom_id"]:
        assert not bench.has(layout.image(d)) and bench.has(layout.sequestered_image(d))

    counts: dict[str, int] = {}
    for task in TASK_SLUGS:
        t = TASKS[task]
        keys = list(t.key_columns)
        units = bench.units(task, "test")
        units_all = whole.units(task)
        public_all = units_all[units_all["public"] == 1]
        assert len(units) == len(public_all)
        assert (units[keys].to_numpy() == public_all[keys].to_numpy()).all()
        at = public_all["prediction_hours"].to_numpy()
        cut = public_all["stay_id"].map(cutoff).to_numpy()
        # Every public unit is predicted at its stay's cutoff.
        np.testing.assert_allclose(at, cut, atol=1e-6)
        # Clean units: the public files show nothing of them past their prediction time.
        cut_all = units_all["stay_id"].map(cutoff).to_numpy()
        pub_all = units_all["stay_id"].isin(published).to_numpy()
        at_all = units_all["prediction_hours"].to_numpy()
        expect_clean = ~pub_all | (cut_all <= at_all + 1e-6)
        np.testing.assert_array_equal(units_all["clean"].to_numpy() == 1, expect_clean)
        assert (units_all.loc[units_all["public"] == 1, "clean"] == 1).all()
        # Public labels are the whole split's labels of the public units.
        labels = bench.test_labels(task)
        labels_all = whole.labels(task)
        merged = labels[keys].merge(labels_all, on=keys, how="left", validate="one_to_one")
        cols = list(t.label_columns)
        np.testing.assert_array_equal(merged[cols].to_numpy(), labels[cols].to_numpy())
        # The public scenario sets are the whole split's restricted to the public stays.
        sets, sets_all = bench.scenarios(task), whole.scenarios(task)
        pub_paired = set(units.loc[units["cxr_dicom_id"].notna(), "stay_id"])
        assert set(sets.paired_stays) == pub_paired
        for name, withheld in sets.withheld.items():
            assert set(withheld) == set(sets_all.withheld[name]) & pub_paired
        counts[task] = len(units)
    return counts


class WholeView:
    """A benchmark read as if its test split were public and whole: training and
    validation from ``public/``, the test split from ``credentialed/test/``. For tests that
    check what an importer or generator put in the test split."""

    def __init__(self, bench: Benchmark) -> None:
        self.bench = bench
        self.whole = test_split(bench)
        self.manifest = bench.manifest

    def stays(self) -> pd.DataFrame:
        public = self.bench.stays()
        test = self.whole.stays.assign(split="test")[list(public.columns)]
        return pd.concat([public[public["split"] != "test"], test], ignore_index=True)

    def units(self, task: str, split: str) -> pd.DataFrame:
        if split != "test":
            return self.bench.units(task, split)
        units = self.whole.units(task)
        return units.drop(columns=["prediction_hours", "public"])

    def test_labels(self, task: str) -> pd.DataFrame:
        return self.whole.labels(task)

    def demographics(self) -> pd.DataFrame:
        return self.bench.demographics()

    def timeseries(self, split: str) -> pd.DataFrame:
        return self.whole.timeseries() if split == "test" else self.bench.timeseries(split)

    def discretized(self, split: str) -> tuple[np.ndarray, pd.DataFrame]:
        return self.whole.discretized() if split == "test" else self.bench.discretized(split)

    def cxr_metadata(self) -> pd.DataFrame:
        public = self.bench.cxr_metadata()
        test = self.whole.cxr_metadata().assign(split="test")
        test["path"] = [
            layout.image(d) if self.bench.has(layout.image(d)) else ""
            for d in test["dicom_id"].astype(str)
        ]
        test = test[list(public.columns)]
        return pd.concat([public[public["split"] != "test"], test], ignore_index=True)
