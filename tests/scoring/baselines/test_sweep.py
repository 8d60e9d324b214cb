"""Training-time missingness (CareBench's protocol): which stays lose their images, what a
run with it records, and the sweep of runs over rates."""

import json
import math

import numpy as np
import pytest

from benchmark_data.benchmark import Benchmark
from scoring.baselines.cli import main
from scoring.baselines.data import ERR_MISSING_RATE, withheld_stays
from scoring.baselines.run import RunConfig
from scoring.baselines.sweep import (
    SWEEP_MANIFEST,
    check_rates,
    parse_rates,
    rate_dir,
    train_sweep,
)
from scoring.baselines.workspace import Workspace

from .fixtures import make_tiny_benchmark

TASKS = ["in-hospital-mortality", "decompensation", "radiology"]
CONFIG = RunConfig(seed=5, epochs=1, patience=1, ehr_hidden=8, epoch_steps=300, threads=1)


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    return make_tiny_benchmark(tmp_path_factory.mktemp("bench"), seed=11)


def _load(bench_dir, rate, seed=5):
    return Workspace.load(
        Benchmark.open(bench_dir),
        TASKS,
        image_size=16,
        max_hours=30,
        train_cxr_missing=rate,
        seed=seed,
    )


@pytest.mark.parametrize("n", [1, 7, 10, 57, 1000])
@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_the_share_withheld_is_exact(n, rate):
    """floor(n * rate) distinct stays of the pool are drawn, as CareBench's
    RandomState.choice(n, int(n * rate), replace=False); 0.3 of 10 is 3 despite rounding."""
    pool = np.arange(1000, 1000 + n) * 3
    drawn = withheld_stays(pool, rate, seed=42, split="train")
    assert len(drawn) == math.floor(round(n * rate, 9))
    assert len(set(drawn.tolist())) == len(drawn)
    assert set(drawn.tolist()) <= set(pool.tolist())
    if n == 10:
        assert len(drawn) == round(10 * rate)


def test_the_draw_is_seeded_by_the_run_seed_and_split_only():
    """The same seed gives the same stays whatever the pool's order; another seed or split
    another draw; rate 0 withholds nothing."""
    pool = np.arange(500)
    a = withheld_stays(pool, 0.3, seed=42, split="train")
    assert np.array_equal(a, withheld_stays(pool[::-1], 0.3, seed=42, split="train"))
    assert not np.array_equal(a, withheld_stays(pool, 0.3, seed=43, split="train"))
    assert not np.array_equal(a, withheld_stays(pool, 0.3, seed=42, split="val"))
    assert len(withheld_stays(pool, 0.0, seed=42, split="train")) == 0


def test_the_draws_are_nested():
    """A stay withheld at one rate is withheld at every higher rate."""
    pool = np.arange(10_000, 10_397)
    previous: set[int] = set()
    for rate in (0.1, 0.3, 0.5, 0.7, 0.9):
        now = set(withheld_stays(pool, rate, seed=42, split="val").tolist())
        assert previous < now
        previous = now


@pytest.mark.parametrize("rate", [1.0, 1.5, -0.1, float("nan"), "half"])
def test_a_rate_outside_zero_one_is_refused(rate):
    with pytest.raises(ValueError, match="must be at least 0 and below 1"):
        withheld_stays([1, 2, 3], rate, seed=1, split="train")
    with pytest.raises(ValueError):
        RunConfig(train_cxr_missing=rate)
    assert "{rate!r}" in ERR_MISSING_RATE


def test_every_unit_of_a_withheld_stay_loses_its_image_in_train_and_val(bench_dir):
    """Per stay, not per unit: every hourly unit and every radiology image (the CXR
    pre-training) of a withheld stay has no image; the other stays keep theirs; the test
    split is the same as without missingness."""
    base, ws = _load(bench_dir, 0.0), _load(bench_dir, 0.5)
    for split in ("train", "val"):
        drop = set(ws.withheld[split].tolist())
        assert len(drop) == math.floor(ws.with_images[split] * 0.5)
        for task in TASKS:
            before, after = base.data(task, split), ws.data(task, split)
            stay = before.seq_stay[before.ro_seq]
            held = np.isin(stay, list(drop))
            assert held.any() and (before.ro_img[held] >= 0).any()
            assert (after.ro_img[held] == -1).all()
            assert np.array_equal(after.ro_img[~held], before.ro_img[~held])
    for task in TASKS:
        a, b = base.data(task, "test"), ws.data(task, "test")
        assert np.array_equal(a.ro_img, b.ro_img) and (a.ro_img >= 0).any()


def test_withheld_images_are_left_out_of_the_pixel_statistics(bench_dir):
    base, ws = _load(bench_dir, 0.0), _load(bench_dir, 0.7)
    assert ws.images.mean != base.images.mean
    assert ws.missingness()["train"]["stays_withheld"] == len(ws.withheld["train"]) > 0


def test_rates_are_checked():
    assert parse_rates("0.5, 0.1,0.3") == [0.1, 0.3, 0.5]
    assert rate_dir(0.3) == "rate-0.30"
    for bad in ("0", "1", "0.1,1.2", "-0.5", "x", ""):
        with pytest.raises(ValueError):
            parse_rates(bad)
    with pytest.raises(ValueError, match="same run directory"):
        check_rates([0.3, 0.301])


@pytest.mark.slow
def test_a_tiny_sweep_end_to_end(bench_dir, tmp_path, capsys):
    """The CLI trains one ordinary run per rate (with the unimodal models the fusion model
    builds on), each manifest records its rate and what it withheld, sweep.json lists them;
    asking again keeps what is done; other settings, unknown models and bad rates are
    refused with a message and exit status 2."""
    out = tmp_path / "sweep"
    common = ["--benchmark", str(bench_dir), "--out", str(out), "--tasks", "in-hospital-mortality"]
    args = ["sweep", *common, "--models", "late", "--rates", "0.3,0.6", "--seed", "5"]
    args += ["--epochs", "1"]
    assert main(args) == 0
    index = json.loads((out / SWEEP_MANIFEST).read_text())
    assert index["rates"] == [0.3, 0.6] and index["settings"]["models"] == ["late"]
    for run, rate in zip(index["runs"], (0.3, 0.6), strict=True):
        manifest = json.loads((out / run["dir"] / "run.json").read_text())
        assert manifest["config"]["train_cxr_missing"] == rate
        assert manifest["train_missing"]["rate"] == rate
        assert manifest["models"] == ["ehr", "cxr", "late"]
        for split in ("train", "val"):
            part = manifest["train_missing"][split]
            assert part["stays_withheld"] == math.floor(part["stays_with_images"] * rate)
        assert set(manifest["tasks"]) == {"radiology", "in-hospital-mortality"}
        assert (out / run["dir"] / "predictions/in-hospital-mortality/late.csv").is_file()
    first = (out / "rate-0.30/predictions/in-hospital-mortality/cxr.csv").read_bytes()
    assert first != (out / "rate-0.60/predictions/in-hospital-mortality/cxr.csv").read_bytes()
    capsys.readouterr()

    assert main([*args[:-4], "--rates", "0.3", "--seed", "5", "--epochs", "1"]) == 0
    assert "rate 0.30: rate-0.30 (kept" in capsys.readouterr().out

    assert main([*args[:-2], "--epochs", "2"]) == 2
    assert "other settings (setting epochs: 1 there, 2 asked)" in capsys.readouterr().err
    assert main(["sweep", *common, "--models", "late,nope", "--rates", "0.3"]) == 2
    assert "unknown model nope" in capsys.readouterr().err
    assert main(["sweep", *common, "--models", "late", "--rates", "0.3,1"]) == 2
    assert "rate 1.0 is not between 0 and 1" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    common[3] = str(tmp_path / "other")
    assert main(["sweep", *common, "--models", "late", "--rates", "0.3"]) == 2
    assert "is not a sweep directory" in capsys.readouterr().err


def test_train_sweep_refuses_an_unknown_model(bench_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        train_sweep(
            bench_dir, out=tmp_path, tasks=["in-hospital-mortality"], models=["nope"],
            rates=[0.5], config=CONFIG,
        )  # fmt: skip
