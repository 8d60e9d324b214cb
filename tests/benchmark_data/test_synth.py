"""The synthetic benchmark: format conformance, exact counts, prevalences, determinism and
signal (docs/benchmark-format.md)."""

import io
import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark_data import Benchmark, layout
from benchmark_data.discretize import discretize
from benchmark_data.sequestered import test_split
from benchmark_data.suite import builtin_suite
from benchmark_data.synth import SCALES, generate
from benchmark_data.synth.cohort import PHENOTYPES, make_cohort
from benchmark_data.synth.counts import (
    choose_top_k,
    fit_image_counts,
    fit_losses,
    fit_row_total,
    hourly_rows,
    split_quantiles,
)
from benchmark_data.synth.cxr import FINDING_PREVALENCE, schedule_images
from benchmark_data.synth.scales import MEDMOD_TEST, scale_like_medmod
from benchmark_data.synth.signal import signal_table
from benchmark_data.synth.units import build_units
from benchmark_data.tasks import CXR_MISSING_LEVELS, RACE_GROUPS, SPLITS, TASK_SLUGS, TASKS
from benchmark_data.variables import VARIABLE_NAMES
from tests.benchmark_data.leak_free import check_leak_free

pytestmark = pytest.mark.slow  # generates benchmarks or trains models

OTHER_COLUMNS = {
    "in-hospital-mortality": ["subject_id", "cxr_dicom_id"],
    "phenotyping": ["subject_id", "cxr_dicom_id"],
    "decompensation": ["subject_id", "cxr_dicom_id"],
    "length-of-stay": ["subject_id", "cxr_dicom_id"],
    "radiology": ["subject_id", "stay_id", "cxr_dicom_id"],
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    manifest = generate(root, scale="demo", seed=42)
    return Benchmark.open(root), manifest


@pytest.fixture(scope="module")
def units(demo):
    bench, _ = demo
    return {(t, s): bench.units(t, s) for t in TASK_SLUGS for s in SPLITS}


@pytest.fixture(scope="module")
def meta(demo):
    return demo[0].cxr_metadata().set_index("dicom_id")


# Format ---------------------------------------------------------------------------------


def test_every_file_is_listed_and_verified_and_nothing_else_is_written(demo):
    bench, manifest = demo
    assert bench.verify() == len(manifest["files"])
    on_disk = set(bench.store.list()) - {layout.MANIFEST}
    assert on_disk == set(manifest["files"])
    assert manifest["name"] == "medmod-synthetic" and manifest["version"] == "demo-seed42-g4"
    assert manifest["source"]["kind"] == "synthetic" and manifest["source"]["scale"] == "demo"
    assert manifest["source"]["generator"] == "benchmark_data.synth"
    assert manifest["tasks"] == list(TASK_SLUGS) and manifest["seed"] == 42
    assert manifest["parts"] == ["credentialed", "public"]
    # The suite is declared in the benchmark: MedMod's specification, byte for byte.
    assert manifest["suite"] == "medmod" and bench.suite == builtin_suite("medmod")
    assert bench.read_bytes(layout.SUITE) == builtin_suite("medmod").to_json()


def test_the_public_test_files_are_the_whole_test_split_cut_at_each_cutoff(demo):
    """Leak-free layout: one published stay per patient, its files up to its cutoff, the
    public units at their cutoff; the hourly tasks' test split only through the gateway."""
    bench, manifest = demo
    counts = check_leak_free(bench)
    assert counts["decompensation"] == counts["length-of-stay"] == counts["radiology"] == 0
    assert manifest["scored_on"] == {
        "in-hospital-mortality": "public", "phenotyping": "public", "decompensation": "all",
        "length-of-stay": "all", "radiology": "all",
    }  # fmt: skip
    # The gateway scores about half of the hourly rows and images: the clean ones.
    for task in ("decompensation", "length-of-stay", "radiology"):
        c = manifest["counts"][task]
        assert 0.35 < c["test_clean"] / c["test_all"] < 0.65, (task, c)
    whole = test_split(bench)
    fam = whole.stays.loc[whole.stays["published"] == 1, "family"].value_counts(normalize=True)
    assert set(fam.index) == {"mortality", "phenotyping"}
    # About half of the published stays in each family (phenotyping also takes the short
    # stays drawn for mortality).
    assert 0.25 < fam["mortality"] < 0.5
    assert counts["in-hospital-mortality"] > 250 and counts["phenotyping"] > 600


def test_unit_lists_have_the_documented_columns_and_no_test_labels(units):
    for task in TASK_SLUGS:
        t = TASKS[task]
        base = [*t.key_columns, *OTHER_COLUMNS[task]]
        for split in SPLITS:
            cols = list(units[task, split].columns)
            expected = base if split == "test" else [*base, *t.label_columns]
            assert cols == expected, (task, split)
            keys = units[task, split][list(t.key_columns)]
            assert not keys.duplicated().any()
            assert keys.equals(keys.sort_values(list(t.key_columns)).reset_index(drop=True))


def test_test_labels_follow_the_public_test_unit_order(demo, units):
    bench, _ = demo
    for task in TASK_SLUGS:
        t = TASKS[task]
        labels = bench.test_labels(task)
        keep = list(dict.fromkeys([*t.key_columns, "subject_id", "stay_id", *t.label_columns]))
        assert list(labels.columns) == keep
        test = units[task, "test"]
        assert labels[list(t.key_columns)].equals(test[list(t.key_columns)])


def test_counts_in_the_manifest_match_the_unit_lists(demo, units):
    _, manifest = demo
    for task in TASK_SLUGS:
        c = manifest["counts"][task]
        for split in SPLITS:
            assert c[split] == len(units[task, split])
        assert c["test_paired"] == units[task, "test"]["cxr_dicom_id"].notna().sum()
        assert c["test"] <= c["test_all"] and c["test_paired"] <= c["test_all_paired"]
    # The whole test split (what the gateway serves) has the scale's exact sizes.
    targets = SCALES["demo"].targets("test")
    counts = {task: manifest["counts"][task]["test_all"] for task in TASK_SLUGS}
    assert counts["phenotyping"] == targets.stays
    assert counts["in-hospital-mortality"] == targets.long_stays
    assert counts["length-of-stay"] == targets.los_rows
    assert counts["decompensation"] == targets.decompensation_rows
    assert counts["radiology"] == targets.images


def test_a_larger_test_split_leaves_train_and_validation_as_they_were():
    """The demo's test split is four times MedMod's share; train and validation keep their sizes
    (up to one unit of rounding: they are scaled from the rounded test split)."""
    plain = scale_like_medmod("plain", 340, image_size=64)
    demo = SCALES["demo"]
    for split in ("train", "val"):
        got, want = asdict(demo.targets(split)), asdict(plain.targets(split))
        assert got["stays"] == want["stays"]
        assert all(abs(got[k] - want[k]) <= 1 for k in want), (split, got, want)
    assert demo.targets("test") == MEDMOD_TEST.scaled(1360 / MEDMOD_TEST.stays)
    assert SCALES["medmod"].targets("test") == MEDMOD_TEST


def _all_stays(bench: Benchmark) -> pd.DataFrame:
    """Training and validation stays (public) and every test stay (credentialed)."""
    public = bench.stays()
    test = test_split(bench).stays.assign(split="test")[list(public.columns)]
    return pd.concat([public[public["split"] != "test"], test], ignore_index=True)


def test_splits_are_by_subject_and_stay_names_number_episodes_by_intime(demo, units):
    bench, _ = demo
    assert list(bench.stays().columns) == [
        "stay_id", "subject_id", "hadm_id", "split", "intime", "stay"
    ]  # fmt: skip
    stays = _all_stays(bench)
    assert stays.groupby("subject_id")["split"].nunique().max() == 1
    assert stays["stay_id"].is_unique and stays["hadm_id"].is_unique
    share = stays.drop_duplicates("subject_id")["split"].value_counts(normalize=True)
    # By patient, the splits hold about the shares of stays the scale sets (demo: 58/8/33).
    stays_of = {split: SCALES["demo"].targets(split).stays for split in SPLITS}
    for split in ("train", "test"):
        expected = stays_of[split] / sum(stays_of.values())
        assert share[split] == pytest.approx(expected, abs=0.03)
    ordered = stays.assign(t=pd.to_datetime(stays["intime"])).sort_values(["subject_id", "t"])
    k = ordered.groupby("subject_id").cumcount() + 1
    expected = ordered["subject_id"].astype(str) + "_episode" + k.astype(str) + "_timeseries.csv"
    assert (ordered["stay"] == expected).all()
    split_of = stays.set_index("stay_id")["split"]
    for (task, split), df in units.items():
        assert (split_of.loc[df["stay_id"]].to_numpy() == split).all(), task


def test_demographics_cover_every_stay_with_the_documented_values(demo):
    bench, _ = demo
    d = bench.demographics()
    assert list(d.columns) == ["stay_id", "subject_id", "age", "gender", "race", "insurance",
                               "admission_type"]  # fmt: skip
    assert set(d["stay_id"]) == set(_all_stays(bench)["stay_id"])
    assert set(d["gender"]) == {"M", "F"}
    assert set(d["race"]) == set(RACE_GROUPS)
    assert set(d["insurance"]) == {"Medicare", "Medicaid", "Other"}
    assert d["age"].between(18, 91).all() and 55 < d["age"].mean() < 70


def test_pairing_never_looks_ahead(demo, units, meta):
    bench, _ = demo
    hours = meta["hours"]
    stay_of = meta["stay_id"]
    by_stay = meta.reset_index().sort_values(["stay_id", "hours"]).groupby("stay_id")
    for task in ("decompensation", "length-of-stay"):
        for split in SPLITS:
            df = units[task, split]
            p = df[df["cxr_dicom_id"].notna()]
            assert (stay_of.loc[p["cxr_dicom_id"]].to_numpy() == p["stay_id"].to_numpy()).all()
            assert (hours.loc[p["cxr_dicom_id"]].to_numpy() <= p["period_length"].to_numpy()).all()
    # Brute force on a sample: the latest image at or before t, or none.
    df = units["decompensation", "train"].sample(500, random_state=0)
    for row in df.itertuples():
        imgs = by_stay.get_group(row.stay_id) if row.stay_id in by_stay.groups else None
        before = imgs[imgs["hours"] <= row.period_length] if imgs is not None else []
        expected = before["dicom_id"].iloc[-1] if len(before) else None
        assert (row.cxr_dicom_id if isinstance(row.cxr_dicom_id, str) else None) == expected
    ihm = units["in-hospital-mortality", "train"]
    p = ihm[ihm["cxr_dicom_id"].notna()]
    assert (hours.loc[p["cxr_dicom_id"]] <= 48).all()
    ph = units["phenotyping", "train"]
    latest = by_stay["dicom_id"].last()
    p = ph[ph["cxr_dicom_id"].notna()]
    assert (latest.loc[p["stay_id"]].to_numpy() == p["cxr_dicom_id"].to_numpy()).all()
    assert set(ph.loc[ph["cxr_dicom_id"].isna(), "stay_id"]).isdisjoint(meta["stay_id"])


def test_hourly_rows_are_whole_hours_after_four_and_stop_at_death(demo, units):
    bench, _ = demo
    for split in SPLITS:
        los, dec = units["length-of-stay", split], units["decompensation", split]
        if split == "test":
            los, dec = bench.test_labels("length-of-stay"), bench.test_labels("decompensation")
        assert (los["period_length"] > 4).all() and (dec["period_length"] > 4).all()
        assert (los["period_length"] % 1 == 0).all() and (los["y_true"] >= 0).all()
        # Consecutive hours, remaining time falling by one hour per row.
        g = los.groupby("stay_id")
        assert (g["period_length"].diff().dropna() == 1).all()
        assert np.allclose(g["y_true"].diff().dropna(), -1, atol=1e-5)
        # Decompensation rows are a prefix of the stay's rows; positives are its last <= 24.
        n_los, n_dec = g.size(), dec.groupby("stay_id").size()
        assert (n_dec <= n_los.loc[n_dec.index]).all()
        for _, rows in dec[dec["y_true"] == 1].groupby("stay_id"):
            assert len(rows) <= 24
        pos = dec.groupby("stay_id")["y_true"]
        assert (pos.apply(lambda y: (np.diff(y.to_numpy()) >= 0).all())).all()


def test_scenarios_are_nested_over_the_paired_test_stays(demo, units):
    bench, _ = demo
    for task in TASK_SLUGS:
        test = units[task, "test"]
        paired = set(test.loc[test["cxr_dicom_id"].notna(), "stay_id"])
        sets = bench.scenarios(task)
        assert set(sets.paired_stays) == paired
        prev: set = set()
        for p in CXR_MISSING_LEVELS:
            w = set(sets.withheld[f"cxr_missing_{p}"])
            assert prev <= w and len(w) == int(p * len(paired) / 100 + 0.5)
            prev = w
        assert prev == paired


def test_time_series_and_discretized_arrays_agree(demo):
    bench, _ = demo
    ts = bench.timeseries("val")
    x, index = bench.discretized("val")
    assert x.dtype == np.float32 and x.shape == (index["n_hours"].sum(), 76)
    assert (index["offset"] == np.r_[0, np.cumsum(index["n_hours"])[:-1]]).all()
    assert ts["hours"].ge(0).all()
    for row in index.sample(5, random_state=1).itertuples():
        one = ts[ts["stay_id"] == row.stay_id]
        assert one["hours"].max() < row.n_hours
        block = x[row.offset : row.offset + row.n_hours]
        np.testing.assert_array_equal(discretize(one, row.n_hours), block)
    # Realistic ranges and sampling: vitals about hourly, labs rarer.
    rate = ts.notna().mean()
    assert rate["Heart Rate"] > 0.4 and rate["pH"] < 0.15 and rate["Height"] < 0.05
    assert ts["Heart Rate"].dropna().between(25, 210).all() and 70 < ts["Heart Rate"].mean() < 100
    assert ts["Oxygen saturation"].max() <= 100 and 7.2 < ts["pH"].mean() < 7.5


def test_images_are_grayscale_png_of_the_scale_size_taken_during_the_stay(demo, meta):
    bench, _ = demo
    stays = bench.stays().set_index("stay_id")
    assert set(meta["view_position"]) == {"AP"}
    taken = pd.to_datetime(meta["study_datetime"])
    intime = pd.to_datetime(stays.loc[meta["stay_id"], "intime"]).to_numpy()
    hours = (taken.to_numpy() - intime) / np.timedelta64(1, "h")
    np.testing.assert_allclose(hours, meta["hours"], atol=1e-5)
    for d in meta.index[:5]:
        img = Image.open(io.BytesIO(bench.image_bytes(d)))
        assert img.mode == "L" and img.size == (64, 64) and img.format == "PNG"
        assert meta.loc[d, "path"] == layout.image(d)


# Prevalences ----------------------------------------------------------------------------


def test_prevalences_are_near_medmod(demo, units):
    bench, manifest = demo
    prev = manifest["prevalence"]
    assert 0.11 <= prev["in-hospital-mortality"] <= 0.15
    assert 0.012 <= prev["decompensation"] <= 0.035
    assert bench.test_labels("in-hospital-mortality")["y_true"].sum() >= 25
    for slug, target, _ in PHENOTYPES:
        assert prev["phenotyping"][slug] == pytest.approx(target, abs=0.05), slug
    for slug, target in FINDING_PREVALENCE.items():
        assert prev["radiology"][slug] == pytest.approx(target, abs=0.01), slug
    assert 0.4 <= prev["radiology"]["support_devices"] <= 0.85
    assert 0.4 <= manifest["stats"]["stays_without_cxr"] <= 0.6


def test_subgroups_differ_in_data_quality(demo):
    """Vital signs are sparser for Medicaid patients: fairness gaps come from the data."""
    bench, _ = demo
    x, index = bench.discretized("train")
    d = bench.demographics().set_index("stay_id")
    medicaid = np.repeat(d.loc[index["stay_id"], "insurance"].to_numpy() == "Medicaid",
                         index["n_hours"])  # fmt: skip
    hr_measured = x[:, -17 + VARIABLE_NAMES.index("Heart Rate")]
    assert hr_measured[medicaid].mean() < hr_measured[~medicaid].mean() - 0.05
    # ... and noisier: larger hour-to-hour changes in heart rate.
    ts = bench.timeseries("train").dropna(subset=["Heart Rate"])
    jump = ts.groupby("stay_id")["Heart Rate"].diff().abs().groupby(ts["stay_id"]).mean()
    is_medicaid = d.loc[jump.index, "insurance"] == "Medicaid"
    assert jump[is_medicaid].mean() > 1.2 * jump[~is_medicaid].mean()


# Determinism ----------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = generate(tmp_path / "a", scale="tiny", seed=7)
    b = generate(tmp_path / "b", scale="tiny", seed=7)
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (
        tmp_path / "b" / "manifest.json"
    ).read_bytes()
    assert a == b
    c = generate(tmp_path / "c", scale="tiny", seed=8)
    exact = ("train", "val", "test_all")  # exact counts do not depend on the seed
    for task in TASK_SLUGS:
        assert {s: c["counts"][task][s] for s in exact} == {s: a["counts"][task][s] for s in exact}
    same = {k for k in a["files"] if a["files"][k] == c["files"].get(k)}
    assert layout.STAYS not in same and layout.timeseries("test") not in same
    # Generating again into a benchmark directory replaces it whole: no stale files.
    again = generate(tmp_path / "a", scale="tiny", seed=8)
    assert again == c and Benchmark.open(tmp_path / "a").verify() == len(c["files"])
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["files"] == c["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_a_sealed_benchmark_names_no_seed_and_keeps_it_credentialed(tmp_path):
    """Whoever knows a synthetic benchmark's seed can draw its test labels again: sealed,
    the seed is in no public file, and only the credentialed record can reproduce it."""
    from benchmark_data.benchmark import export_public

    sealed = generate(tmp_path / "s", scale="tiny", seed=None, sealed=True)
    assert sealed["seed"] is None and sealed["source"]["sealed"] is True
    assert "seed" not in sealed["version"] and "sealed" in sealed["version"]
    record = json.loads((tmp_path / "s" / layout.SEALED_SEED).read_text())
    assert isinstance(record["seed"], int)
    export_public(Benchmark.open(tmp_path / "s"), tmp_path / "public")
    public = sorted(p.relative_to(tmp_path / "public").as_posix()
                    for p in (tmp_path / "public").rglob("*") if p.is_file())  # fmt: skip
    assert layout.SEALED_SEED not in public and not any(
        p.startswith("credentialed/") for p in public
    )
    text = b"".join((tmp_path / "public" / p).read_bytes() for p in public if p.endswith(".json"))
    assert str(record["seed"]).encode() not in text
    # The recorded seed draws the same data (labels included); a second sealed draw does not.
    again = generate(tmp_path / "r", scale="tiny", seed=record["seed"])
    assert (
        again["files"][layout.test_labels("in-hospital-mortality")]
        == (sealed["files"][layout.test_labels("in-hospital-mortality")])
    )
    other = generate(tmp_path / "o", scale="tiny", seed=None, sealed=True)
    assert other["version"] != sealed["version"]
    assert other["files"][layout.STAYS] != sealed["files"][layout.STAYS]


def test_a_directory_holding_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a benchmark's"):
        generate(tmp_path, scale="tiny", seed=1)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# Exact counts ---------------------------------------------------------------------------


def test_medmod_scale_reproduces_medmod_test_sizes_exactly():
    scale = SCALES["medmod"]
    cohort = make_cohort(scale, np.random.default_rng(0))
    images = schedule_images(cohort.stays, scale, np.random.default_rng(1))
    findings = np.zeros((len(images), 14), dtype=np.int8)
    u = build_units(cohort.stays, cohort.phenotypes, images, findings)
    test = {task: (df["split"] == "test").sum() for task, df in u.items()}
    assert test == {
        "in-hospital-mortality": 1242,
        "phenotyping": 2166,
        "decompensation": 216663,
        "length-of-stay": 217504,
        "radiology": 7220,
    }
    train = {task: (df["split"] == "train").sum() for task, df in u.items()}
    assert train["phenotyping"] == 7581 and train["radiology"] == 25270
    stays = cohort.stays
    assert 0.4 <= 1 - images["stay"].nunique() / len(stays) <= 0.6
    assert u["in-hospital-mortality"]["y_true"].mean() == pytest.approx(0.13, abs=0.005)
    assert 0.015 <= u["decompensation"]["y_true"].mean() <= 0.03


def test_count_helpers_hit_their_targets_exactly():
    rng = np.random.default_rng(3)
    u = rng.random(1000)
    q = split_quantiles(u, n_top=400, cut=0.6, rng=rng)
    assert (q >= 0.6).sum() == 400
    assert (np.argsort(q) == np.argsort(u)).all()  # ranks kept
    minutes = rng.integers(120, 20_000, 1000)
    long = minutes >= 2880
    fitted = fit_row_total(minutes, target=int(hourly_rows(minutes).sum()) + 777, rng=rng)
    assert hourly_rows(fitted).sum() == hourly_rows(minutes).sum() + 777
    assert ((fitted >= 2880) == long).all() and (fitted[~long] == minutes[~long]).all()
    k = fit_losses(np.array([0, 3, 10, 50]), target=40, mean=5.0, rng=rng)
    assert k.sum() == 40 and (k <= [0, 3, 10, 50]).all() and (k >= 0).all()
    n = fit_image_counts(np.array([1, 5, 9]), np.ones(3), target=6, rng=rng)
    assert n.sum() == 6 and (n >= 1).all()
    chosen = choose_top_k(np.zeros(10), k=3, eligible=np.arange(10) % 2 == 0, rng=rng)
    assert chosen.sum() == 3 and not chosen[1::2].any()
    with pytest.raises(ValueError, match="cannot reach"):
        fit_losses(np.array([1, 1]), target=5, mean=1.0, rng=rng)


# Signal ---------------------------------------------------------------------------------


def test_each_modality_carries_signal_and_fusion_carries_more(demo):
    """Mortality from simple models on the paired stays (out of fold over all splits: the
    demo's test split alone is small): each modality well above chance, both together
    higher than either."""
    bench, _ = demo
    (row,) = signal_table(bench, targets=[("in-hospital-mortality", "y_true")], cv=True)
    assert row.n_test > 400 and row.positives >= 50
    assert row.ehr > 0.68 and row.cxr > 0.68
    assert row.both > max(row.ehr, row.cxr) + 0.02
