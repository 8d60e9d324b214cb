"""EHR windows, image inputs and batches built from a benchmark's public files."""

import math

import numpy as np
import pytest

from benchmark_data.benchmark import Benchmark
from benchmark_data.tasks import get_task, los_bucket
from scoring.baselines.batching import batch_order, make_batch
from scoring.baselines.data import EHRNorm, continuous_columns
from scoring.baselines.workspace import Workspace, resolve_encoder

from .fixtures import HEART_RATE_COLUMN, make_tiny_benchmark


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = make_tiny_benchmark(tmp_path_factory.mktemp("bench"), seed=3)
    bench = Benchmark.open(root)
    tasks = [
        "in-hospital-mortality",
        "phenotyping",
        "decompensation",
        "length-of-stay",
        "radiology",
    ]
    return Workspace.load(bench, tasks, image_size=16, max_hours=30)


def _rows(ws, split, stay):
    e = ws.ehr[split]
    return e.rows[e.offset[stay] : e.offset[stay] + e.n_hours[stay]]


def test_norm_standardises_only_the_continuous_columns(ws):
    arr = ws.bench.discretized("train")[0]
    z = EHRNorm.fit(arr).apply(arr)
    assert HEART_RATE_COLUMN in continuous_columns()
    assert abs(z[:, HEART_RATE_COLUMN].mean()) < 1e-3
    assert z[:, HEART_RATE_COLUMN].std() == pytest.approx(1.0, abs=1e-3)
    other = np.setdiff1d(np.arange(76), continuous_columns())
    assert np.array_equal(z[:, other], arr[:, other])


def test_mortality_reads_the_first_48_rows(ws):
    d = ws.data("in-hospital-mortality", "train")
    units = ws.units[("in-hospital-mortality", "train")]
    b = make_batch(d, np.arange(3), ws.ehr["train"], ws.images)
    assert b.x.shape[1] == 48 and b.ro_pos.tolist() == [47, 47, 47]
    for i, u in enumerate(b.units.tolist()):
        stay = int(units["stay_id"].iloc[u])
        assert np.allclose(b.x[i].numpy(), _rows(ws, "train", stay)[:48])


def test_phenotyping_reads_the_last_max_hours_rows(ws):
    d = ws.data("phenotyping", "val")
    units = ws.units[("phenotyping", "val")]
    b = make_batch(d, np.arange(2), ws.ehr["val"], ws.images)
    for i, u in enumerate(b.units.tolist()):
        stay = int(units["stay_id"].iloc[u])
        assert np.allclose(b.x[i, :30].numpy(), _rows(ws, "val", stay)[-30:])


def test_hourly_units_read_rows_before_their_hour(ws):
    """The unit at hour t reads the state after row t - 1; its image is the unit's own."""
    d = ws.data("decompensation", "train")
    units = ws.units[("decompensation", "train")]
    b = make_batch(d, np.arange(d.n_sequences), ws.ehr["train"], ws.images)
    t = units["period_length"].to_numpy()[b.units.numpy()]
    assert np.array_equal(b.ro_pos.numpy(), t - 1)
    assert b.n_readouts == len(units)
    has = units["cxr_dicom_id"].notna().to_numpy()[b.units.numpy()]
    assert np.array_equal(b.has_image.numpy(), has)
    # The image available at a unit's row is the unit's image.
    assert np.array_equal(b.step_img[b.ro_seq, b.ro_pos].numpy(), b.ro_img.numpy())


def test_radiology_window_ends_at_the_image_time(ws):
    """An image reads the hours complete when it was taken: none of the hour it falls in."""
    d = ws.data("radiology", "train")
    units = ws.units[("radiology", "train")]
    b = make_batch(d, np.arange(d.n_sequences), ws.ehr["train"], ws.images)
    assert b.has_image.all()
    hours = units["dicom_id"].map(ws.image_hours).to_numpy()[b.units.numpy()]
    expected = [math.floor(h) for h in hours]  # one leading zero row, then floor(h) rows
    assert b.ro_pos.tolist() == expected
    assert any(h != math.floor(h) for h in hours)  # some images fall inside an hour
    assert float(b.x[:, 0].abs().sum()) == 0.0


def test_withheld_stays_lose_their_images_only(ws):
    d = ws.data("length-of-stay", "test")
    stays = d.seq_stay[d.ro_seq[d.ro_img >= 0]]
    held = np.unique(stays)[:1]
    d2 = d.without_images(held)
    mine = np.isin(d.seq_stay[d.ro_seq], held)
    assert (d2.ro_img[mine] == -1).all()
    assert np.array_equal(d2.ro_img[~mine], d.ro_img[~mine])


def test_los_labels_are_buckets(ws):
    d = ws.data("length-of-stay", "train")
    units = ws.units[("length-of-stay", "train")]
    assert np.array_equal(d.y[np.argsort(d.ro_unit)], los_bucket(units["y_true"]))


def test_training_order_is_seeded_and_covers_every_sequence(ws):
    d = ws.data("phenotyping", "train")
    a = batch_order(d, batch_size=5, rng=np.random.default_rng(1))
    b = batch_order(d, batch_size=5, rng=np.random.default_rng(1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert sorted(np.concatenate(a).tolist()) == list(range(d.n_sequences))


def test_images_are_normalised_with_training_statistics(ws):
    d = ws.data("radiology", "train")
    b = make_batch(d, np.arange(d.n_sequences), ws.ehr["train"], ws.images)
    assert b.images.shape[1:] == (1, 16, 16)
    assert abs(float(b.images.mean())) < 0.2


def test_synthetic_benchmarks_get_the_small_cnn(ws):
    assert resolve_encoder(ws.bench, "auto") == "small"
    assert resolve_encoder(ws.bench, "resnet34") == "resnet34"
    assert get_task("radiology").kind == "multilabel"


def test_a_benchmark_without_image_files_is_refused_clearly(ws):
    from benchmark_data.benchmark import BenchmarkError
    from scoring.baselines.data import ImageCache

    with pytest.raises(BenchmarkError, match="no image file for 1 paired chest X-ray"):
        ImageCache(size=16).add(ws.bench, ["not-a-dicom"])
