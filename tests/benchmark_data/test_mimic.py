"""The MIMIC importer, on small input trees in the exact MedMod / MIMIC file formats."""

from __future__ import annotations

import gzip
import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark_data import Benchmark, layout
from benchmark_data.__main__ import main
from benchmark_data.mimic import MimicImportError, map_insurance, map_race, read_subject_set
from benchmark_data.mimic.cohort import assign_splits
from benchmark_data.tasks import FINDING_NAMES, SPLITS, TASKS, slugify
from benchmark_data.variables import N_FEATURES
from tests.benchmark_data.leak_free import WholeView, check_leak_free
from tests.benchmark_data.mimic_fixtures import TASK_DIRS, MimicTree, build_tree, import_tree

HOURLY = ("decompensation", "length-of-stay")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[MimicTree, WholeView]:
    root = tmp_path_factory.mktemp("mimic")
    tree = build_tree(root / "in", seed=3, n_subjects=30, jpegs=True)
    import_tree(tree, root / "out", seed=7)
    return tree, WholeView(Benchmark.open(root / "out"))


def _listfile(tree: MimicTree, task: str, split: str) -> pd.DataFrame:
    path = tree.medmod_root / task / f"{split}_listfile.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["stay"])


def _all_units(bench: Benchmark, task: str) -> pd.DataFrame:
    return pd.concat([bench.units(task, s).assign(split=s) for s in SPLITS], ignore_index=True)


def _stay_candidates(tree: MimicTree) -> dict[int, list[tuple[pd.Timestamp, str]]]:
    """Per stay, (time, dicom_id) of the AP images with CheXpert labels taken during it."""
    labelled = set(zip(tree.chexpert.subject_id, tree.chexpert.study_id, strict=True))
    out: dict[int, list[tuple[pd.Timestamp, str]]] = {}
    for s in tree.stays.itertuples():
        out[s.stay_id] = sorted(
            (img.study_datetime, img.dicom_id)
            for img in tree.images.itertuples()
            if img.subject_id == s.subject_id
            and img.view == "AP"
            and (img.subject_id, img.study_id) in labelled
            and s.intime <= img.study_datetime <= s.outtime
        )
    return out


def _latest(cands: list[tuple[pd.Timestamp, str]], limit: pd.Timestamp) -> str | None:
    ok = [c for c in cands if c[0] <= limit]
    return max(ok)[1] if ok else None


# Counts and splits ---------------------------------------------------------------------------


def test_every_listfile_row_becomes_one_unit(imported):
    """Each EHR task has one unit per listfile row, over train, val and test together."""
    tree, bench = imported
    for task in TASK_DIRS:
        n_rows = sum(len(_listfile(tree, task, s)) for s in SPLITS)
        units = _all_units(bench, task)
        assert len(units) == n_rows > 0
        assert not units.duplicated(list(TASKS[task].key_columns)).any()
        test = units[units["split"] == "test"]
        counts = bench.manifest["counts"][task]
        assert {k: counts[k] for k in ("train", "val", "test_all", "test_all_paired")} == {
            **{s: int((units["split"] == s).sum()) for s in ("train", "val")},
            "test_all": len(test),
            "test_all_paired": int(test["cxr_dicom_id"].notna().sum()),
        }
        assert counts["test"] == len(bench.bench.units(task, "test")) <= len(test)


def test_hourly_period_lengths_become_whole_hours(imported):
    """mimic3's ``5.000000`` becomes 5; rows stay sorted by stay and hour."""
    tree, bench = imported
    for task in HOURLY:
        raw = _listfile(tree, task, "test")
        units = bench.units(task, "test")
        assert units["period_length"].dtype.kind == "i"
        assert sorted(units["period_length"]) == sorted(raw["period_length"].round().astype(int))
        assert units[["stay_id", "period_length"]].equals(
            units[["stay_id", "period_length"]].sort_values(["stay_id", "period_length"])
        )
        assert (units["period_length"] > 4).all()


def test_splits_are_by_subject_and_follow_the_split_files(imported):
    """Test subjects are those flagged in the test-subjects file, val those of the val
    listfiles; no subject is in two splits."""
    tree, bench = imported
    stays = bench.stays()
    assert stays.groupby("subject_id")["split"].nunique().max() == 1
    truth = tree.stays.set_index("stay_id")["split"]
    assert (stays.set_index("stay_id")["split"] == truth[stays["stay_id"]].to_numpy()).all()
    assert set(stays.loc[stays.split == "test", "subject_id"]) == read_subject_set(
        tree.test_subjects
    ) & set(tree.stays.subject_id)
    for task in TASKS:
        for split in SPLITS:
            units = bench.units(task, split)
            assert set(units["stay_id"]) <= set(stays.loc[stays.split == split, "stay_id"])
    assert bench.manifest["source"]["test_split"] == "test-subjects file"
    assert bench.manifest["source"]["val_split"] == "val listfiles"


def test_stays_table_keeps_the_mimic3_stay_names(imported):
    tree, bench = imported
    stays = bench.stays()
    assert list(stays.columns) == ["stay_id", "subject_id", "hadm_id", "split", "intime", "stay"]
    truth = tree.stays.set_index("stay_id")
    assert (stays["stay"] == truth.loc[stays["stay_id"], "stay"].to_numpy()).all()
    assert (
        stays["intime"]
        == truth.loc[stays["stay_id"], "intime"].dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy()
    ).all()


# Pairing -------------------------------------------------------------------------------------


def test_planted_stay_gets_the_latest_ap_image_before_each_prediction(imported):
    """PA, lateral and unlabelled images are never used; an image 1 s after the prediction
    time is not used; one exactly at it is."""
    tree, bench = imported
    p = tree.planted
    d = p.dicoms
    last = max(d["ap_80h"], d["ap_80h_b"])  # same time: the greater dicom_id
    ihm = bench.units("in-hospital-mortality", "test").set_index("stay_id")
    assert ihm.loc[p.stay_id, "cxr_dicom_id"] == d["ap_45h1s"]  # 47 h: unlabelled
    pheno = bench.units("phenotyping", "test").set_index("stay_id")
    assert pheno.loc[p.stay_id, "cxr_dicom_id"] == last
    expected = {
        10: None, 11: d["ap_10h"], 29: d["ap_10h"], 30: d["ap_30h"], 45: d["ap_30h"],
        46: d["ap_45h1s"], 47: d["ap_45h1s"], 59: d["ap_45h1s"], 60: d["ap_60h"],
        79: d["ap_60h"], 80: last, 100: last,
    }  # fmt: skip
    for task in HOURLY:
        units = bench.units(task, "test")
        mine = units[units["stay_id"] == p.stay_id].set_index("period_length")["cxr_dicom_id"]
        assert mine.index.min() == 5 and mine.index.max() == 100
        got = {t: (None if pd.isna(mine[t]) else mine[t]) for t in expected}
        assert got == expected, task


def test_planted_stay_radiology_units_are_one_ap_image_per_study(imported):
    tree, bench = imported
    p = tree.planted
    rad = bench.units("radiology", "test")
    mine = set(rad.loc[rad["stay_id"] == p.stay_id, "dicom_id"])
    d = p.dicoms
    assert mine == {d["ap_10h"], d["ap_30h"], d["ap_45h1s"], d["ap_60h"], d["ap_80h"]}
    assert (rad["cxr_dicom_id"] == rad["dicom_id"]).all()
    meta = bench.cxr_metadata().set_index("dicom_id")
    never = ("pa_40h", "lateral_80h", "ap_47h_unlabelled", "ap_before", "ap_after")
    assert not any(d[role] in meta.index for role in never)
    assert meta.loc[d["ap_30h"], "hours"] == 30.0
    assert meta.loc[d["ap_45h1s"], "hours"] == pytest.approx(45 + 1 / 3600, abs=1e-6)


def test_every_paired_image_is_the_latest_allowed_one(imported):
    """Against an independent pairing over the generated data: mortality up to 48 h,
    phenotyping up to the end of the stay, hourly rows up to their prediction time."""
    tree, bench = imported
    cands = _stay_candidates(tree)
    stays = tree.stays.set_index("stay_id")
    n_paired = 0
    for task in TASK_DIRS:
        units = _all_units(bench, task)
        for u in units.itertuples():
            intime = stays.loc[u.stay_id, "intime"]
            if task == "in-hospital-mortality":
                limit = intime + pd.Timedelta(hours=48)
            elif task == "phenotyping":
                limit = stays.loc[u.stay_id, "outtime"]
            else:
                limit = intime + pd.Timedelta(hours=int(u.period_length))
            got = None if pd.isna(u.cxr_dicom_id) else u.cxr_dicom_id
            assert got == _latest(cands[u.stay_id], limit), (task, u)
            n_paired += got is not None
    assert n_paired > 100


def test_no_unit_uses_an_image_taken_after_its_prediction_time(imported):
    _, bench = imported
    meta = bench.cxr_metadata().set_index("dicom_id")
    assert set(meta["view_position"]) == {"AP"}
    for task, limit in (("in-hospital-mortality", 48), *((t, None) for t in HOURLY)):
        units = _all_units(bench, task).dropna(subset=["cxr_dicom_id"])
        img = meta.loc[units["cxr_dicom_id"]]
        assert (img["stay_id"].to_numpy() == units["stay_id"].to_numpy()).all()
        bound = limit if limit is not None else units["period_length"].to_numpy()
        assert (img["hours"].to_numpy() <= bound).all()
        assert (img["hours"].to_numpy() >= 0).all()


def test_cxr_metadata_lists_every_paired_image_with_its_split(imported):
    _, bench = imported
    meta = bench.cxr_metadata()
    assert list(meta.columns) == [
        "dicom_id", "subject_id", "study_id", "stay_id", "split", "study_datetime",
        "view_position", "hours", "path",
    ]  # fmt: skip
    assert meta["dicom_id"].is_unique
    used = set()
    for task in TASKS:
        used |= set(_all_units(bench, task)["cxr_dicom_id"].dropna())
    assert used <= set(meta["dicom_id"])
    split = bench.stays().set_index("stay_id")["split"]
    assert (meta["split"].to_numpy() == split[meta["stay_id"]].to_numpy()).all()


# Labels and demographics ---------------------------------------------------------------------


def test_chexpert_uncertain_and_blank_labels_become_zero(imported):
    tree, bench = imported
    rad = pd.concat(
        [
            bench.units("radiology", "train"),
            bench.units("radiology", "val"),
            bench.test_labels("radiology"),
        ],
        ignore_index=True,
    )
    raw = tree.chexpert.set_index("study_id")
    study = tree.images.set_index("dicom_id")["study_id"]
    for name in FINDING_NAMES:
        expected = (raw.loc[study[rad["dicom_id"]], name] == 1.0).astype(int).to_numpy()
        assert (rad[slugify(name)].to_numpy() == expected).all(), name
    planted = rad.set_index("dicom_id").loc[tree.planted.dicoms["ap_10h"]]
    assert planted["edema"] == 0 and planted["cardiomegaly"] == 1 and planted["no_finding"] == 0
    assert planted[[slugify(n) for n in FINDING_NAMES]].sum() == 1
    values = set(np.unique(tree.chexpert[list(FINDING_NAMES)].to_numpy().astype(str)))
    assert {"-1.0", "nan", "1.0", "0.0"} <= values  # the raw file has every kind


def test_test_labels_are_credentialed_and_match_the_listfiles(imported):
    tree, bench = imported
    for task in TASK_DIRS:
        t = TASKS[task]
        public = bench.units(task, "test")
        assert not set(t.label_columns) & set(public.columns)
        labels = bench.test_labels(task)
        keys = list(t.key_columns)
        assert labels[keys].equals(public[keys])
        raw = _listfile(tree, task, "test")
        raw = raw.rename(columns={n: slugify(n) for n in raw.columns})
        raw["period_length"] = raw["period_length"].round().astype(int)
        merged = labels.merge(raw, on=keys, suffixes=("", "_raw"))
        assert len(merged) == len(labels)
        for col in t.label_columns:
            assert np.allclose(merged[col], merged[f"{col}_raw"]), (task, col)


@pytest.mark.parametrize(
    ("race", "group"),
    [
        ("WHITE", "WHITE"), ("WHITE - OTHER EUROPEAN", "WHITE"), ("BLACK/AFRICAN AMERICAN", "BLACK"),
        ("BLACK/CAPE VERDEAN", "BLACK"), ("HISPANIC/LATINO - PUERTO RICAN", "HISPANIC"),
        ("HISPANIC OR LATINO", "HISPANIC"), ("SOUTH AMERICAN", "HISPANIC"), ("ASIAN", "ASIAN"),
        ("ASIAN - CHINESE", "ASIAN"), ("UNKNOWN", "OTHER"), ("UNABLE TO OBTAIN", "OTHER"),
        ("PATIENT DECLINED TO ANSWER", "OTHER"), ("AMERICAN INDIAN/ALASKA NATIVE", "OTHER"),
        ("MULTIPLE RACE/ETHNICITY", "OTHER"), ("", "OTHER"), (None, "OTHER"),
    ],
)  # fmt: skip
def test_race_strings_map_to_the_five_groups(race, group):
    assert map_race(race) == group


def test_demographics_per_stay(imported):
    """age = anchor_age + (admission year - anchor_year); Private insurance counts as Other."""
    tree, bench = imported
    demo = bench.demographics().set_index("stay_id")
    assert list(demo.columns) == [
        "subject_id",
        "age",
        "gender",
        "race",
        "insurance",
        "admission_type",
    ]
    truth = tree.stays.set_index("stay_id").loc[demo.index]
    age = truth["anchor_age"] + truth["admittime"].dt.year - truth["anchor_year"]
    assert (demo["age"] == age).all()
    assert (demo["race"] == truth["race"].map(map_race)).all()
    assert (demo["insurance"] == truth["insurance"].map(map_insurance)).all()
    assert set(demo["insurance"]) <= {"Medicare", "Medicaid", "Other"}
    assert (demo["gender"] == truth["gender"]).all()
    assert (demo["admission_type"] == truth["admission_type"]).all()


# Time series, images, scenarios, manifest ----------------------------------------------------


def test_time_series_and_discretized_arrays(imported):
    """Rows come from the full-stay episode files; one discretized row per hour of stay."""
    tree, bench = imported
    stays = tree.stays.set_index("stay_id")
    for split in SPLITS:
        ts = bench.timeseries(split)
        assert list(ts.columns[:2]) == ["stay_id", "hours"]
        mine = stays[stays["split"] == split]
        expected = 0
        for s in mine.itertuples():
            part = "test" if split == "test" else "train"
            expected += len(pd.read_csv(tree.medmod_root / "phenotyping" / part / s.stay))
        assert len(ts) == expected
        arr, index = bench.discretized(split)
        assert arr.dtype == np.float32 and arr.shape == (index["n_hours"].sum(), N_FEATURES)
        assert list(index["stay_id"]) == sorted(mine.index)
        n_hours = np.ceil(mine.loc[index["stay_id"], "los_h"].to_numpy())
        assert (index["n_hours"].to_numpy() == n_hours).all()
    stats = bench.manifest["stats"]
    assert stats["unknown_category_values"] == {"Glascow coma scale eye opening": 1}


def test_images_are_converted_to_grayscale_png(imported):
    _, whole = imported
    bench = whole.bench
    meta = bench.cxr_metadata()
    assert (meta["path"] == "public/cxr/images/" + meta["dicom_id"] + ".png").all()
    for rel in meta["path"].head(3):
        with Image.open(io.BytesIO(bench.read_bytes(rel))) as im:
            assert im.format == "PNG" and im.mode == "L"
            assert min(im.size) == 224 and im.size == (224, 269)  # 250 x 300 source


def test_scenarios_are_nested_over_the_paired_test_stays(imported):
    _, whole = imported
    for task in TASKS:
        units = whole.units(task, "test")
        paired = np.sort(units.loc[units["cxr_dicom_id"].notna(), "stay_id"].unique())
        sc = whole.bench.read_csv(layout.test_scenarios(task))
        assert list(sc["stay_id"]) == list(paired)
        n = len(paired)
        # Nested within the public stays and within the others (each rounded on its own).
        pub = sc["stay_id"].isin(whole.bench.scenarios(task).paired_stays).to_numpy()
        for part in (pub, ~pub):
            n = int(part.sum())
            prev = np.zeros(n, dtype=bool)
            for p in (25, 50, 75, 100):
                col = sc[f"cxr_missing_{p}"].to_numpy().astype(bool)[part]
                assert col.sum() == math.floor(n * p / 100 + 0.5)
                assert (col >= prev).all()
                prev = col


def test_the_import_writes_the_leak_free_test_layout(imported):
    """The same layout as the synthetic benchmark: public test files cut at each published
    stay's cutoff, the whole test split under credentialed/test/."""
    _, whole = imported
    counts = check_leak_free(whole.bench)
    assert counts["decompensation"] == counts["length-of-stay"] == counts["radiology"] == 0
    assert whole.bench.scored_on("decompensation") == "all"
    assert whole.bench.scored_on("in-hospital-mortality") == "public"


def test_manifest_source_and_verify(imported):
    _, whole = imported
    bench = whole.bench
    assert bench.verify() == len(bench.manifest["files"])
    source = bench.manifest["source"]
    assert source["kind"] == "mimic"
    assert "mimic-cxr/mimic-cxr-2.0.0-metadata.csv.gz" in source["inputs"]
    assert "medmod-root/phenotyping/test_listfile.csv" in source["inputs"]
    assert all(len(h) == 64 for h in source["inputs"].values())
    assert bench.tasks == list(TASKS)


def test_without_val_listfiles_or_all_stays(tmp_path):
    """Validation is a seeded eighth of the train subjects; ICU windows come from
    MIMIC-IV's icustays; without images the path column is empty; same seed, same bytes."""
    tree = build_tree(
        tmp_path / "in", seed=5, n_subjects=24, with_val_listfiles=False, with_all_stays=False
    )
    import_tree(tree, tmp_path / "a", seed=1, test_subjects=None)
    import_tree(tree, tmp_path / "b", seed=1, test_subjects=None)
    a, b = Benchmark.open(tmp_path / "a"), Benchmark.open(tmp_path / "b")
    sa = a.stays().drop_duplicates("subject_id")
    n_rest = int((sa["split"] != "test").sum())
    assert (sa["split"] == "val").sum() == round(n_rest / 8) > 0
    assert a.manifest["source"]["val_split"].startswith("seeded 1/8")
    assert a.manifest["source"]["test_split"] == "test listfiles"
    assert "mimic-iv/icu/icustays.csv.gz" in a.manifest["source"]["inputs"]
    assert a.manifest_bytes == b.manifest_bytes
    assert a.cxr_metadata()["path"].isna().all()
    a.verify()


def test_drawn_validation_subjects_depend_on_the_seed():
    parts = pd.DataFrame({"subject_id": np.arange(80), "part": ["train"] * 70 + ["test"] * 10})
    draws = [
        assign_splits(parts, test_subjects=None, val_subjects=None, seed=s)[0] for s in (1, 1, 2)
    ]
    assert (draws[0] == "val").sum() == 9 and (draws[0] == "test").sum() == 10
    assert draws[0].equals(draws[1]) and not draws[0].equals(draws[2])


def test_a_subject_in_test_and_train_listfiles_is_refused():
    parts = pd.DataFrame({"subject_id": [1, 1, 2], "part": ["train", "test", "train"]})
    with pytest.raises(MimicImportError, match="1 subject"):
        assign_splits(parts, test_subjects=None, val_subjects=None, seed=0)
    split, rule = assign_splits(parts, test_subjects={1}, val_subjects={2}, seed=0)
    assert split.to_dict() == {1: "test", 2: "val"} and rule.test == "test-subjects file"


# Errors --------------------------------------------------------------------------------------


@pytest.fixture
def small_tree(tmp_path: Path) -> MimicTree:
    return build_tree(tmp_path / "in", seed=11, n_subjects=8)


def _run(tree: MimicTree, out: Path, capsys, *extra: str) -> tuple[int, str]:
    rc = main(tree.args(out, *extra))
    return rc, capsys.readouterr().err


def _no_leftovers(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_cli_imports_and_prints_where(small_tree, tmp_path, capsys):
    rc, err = _run(small_tree, tmp_path / "out", capsys, "--seed", "3", "--version", "v1")
    assert rc == 0, err
    bench = Benchmark.open(tmp_path / "out")
    assert bench.version == "v1" and bench.seed == 3
    assert bench.verify() > 0


def test_missing_input_file_names_the_expected_path(small_tree, tmp_path, capsys):
    (small_tree.mimic_cxr / "mimic-cxr-2.0.0-metadata.csv.gz").unlink()
    rc, err = _run(small_tree, tmp_path / "out", capsys)
    assert rc == 2
    assert err.startswith("error: missing input file: expected ")
    assert str(small_tree.mimic_cxr / "mimic-cxr-2.0.0-metadata.csv") in err
    assert "Traceback" not in err
    _no_leftovers(tmp_path / "out")


def test_missing_listfile_and_subject_file(small_tree, tmp_path, capsys):
    (small_tree.medmod_root / "decompensation" / "test_listfile.csv").unlink()
    rc, err = _run(small_tree, tmp_path / "out", capsys)
    assert rc == 2 and "decompensation/test_listfile.csv" in err
    rc, err = _run(
        small_tree, tmp_path / "out", capsys, "--test-subjects", str(tmp_path / "nope.csv")
    )
    assert rc == 2 and "nope.csv" in err


def test_wrong_header_names_the_missing_columns(small_tree, tmp_path, capsys):
    path = small_tree.mimic_cxr / "mimic-cxr-2.0.0-chexpert.csv.gz"
    df = pd.read_csv(path).drop(columns=["Edema", "Pneumothorax"])
    df.to_csv(path, index=False)
    rc, err = _run(small_tree, tmp_path / "out", capsys)
    assert rc == 2
    assert "mimic-cxr-2.0.0-chexpert.csv.gz: missing column(s) Edema, Pneumothorax" in err
    _no_leftovers(tmp_path / "out")


def test_fractional_period_length_is_refused(small_tree, tmp_path, capsys):
    path = small_tree.medmod_root / "length-of-stay" / "train_listfile.csv"
    lines = path.read_text().splitlines()
    stay, _, *rest = lines[1].split(",")
    lines[1] = ",".join([stay, "5.500000", *rest])
    path.write_text("\n".join(lines) + "\n")
    rc, err = _run(small_tree, tmp_path / "out", capsys)
    assert rc == 2
    assert "period_length must be a whole number of hours" in err
    assert stay in err and "5.5" in err


def test_failure_while_writing_leaves_nothing_behind(small_tree, tmp_path, capsys):
    """A missing episode file is found after writing has begun: the partial directory goes."""
    stay = pd.read_csv(small_tree.medmod_root / "phenotyping" / "test_listfile.csv")["stay"].iloc[0]
    (small_tree.medmod_root / "phenotyping" / "test" / stay).unlink()
    rc, err = _run(small_tree, tmp_path / "out", capsys)
    assert rc == 2
    assert (
        f"missing episode time series: expected {small_tree.medmod_root / 'phenotyping' / 'test' / stay}"
        in err
    )
    _no_leftovers(tmp_path / "out")


def test_out_must_be_new_or_empty(small_tree, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    rc, err = _run(small_tree, out, capsys)
    assert rc == 2 and "already exists and is not empty" in err
    assert (out / "keep.txt").read_text() == "x"


def test_missing_jpg_with_cxr_images(small_tree, tmp_path, capsys):
    images = tmp_path / "jpg"
    (images / "files").mkdir(parents=True)
    rc, err = _run(small_tree, tmp_path / "out", capsys, "--cxr-images", str(images))
    assert rc == 2 and "chest X-ray image missing: expected" in err and ".jpg" in err
    _no_leftovers(tmp_path / "out")


def test_subject_files_with_and_without_header(tmp_path):
    medmod = tmp_path / "testset.csv"
    medmod.write_text("10000001,0\n10000002,1\n\n10000003,1\n")
    assert read_subject_set(medmod) == {10000002, 10000003}
    plain = tmp_path / "plain.csv"
    plain.write_text("subject_id\n10000004\n10000005\n")
    assert read_subject_set(plain) == {10000004, 10000005}
    flagged = tmp_path / "flagged.csv.gz"
    flagged.write_bytes(gzip.compress(b"subject_id,is_test\n10000006,1\n10000007,0\n"))
    assert read_subject_set(flagged) == {10000006}
    bad = tmp_path / "bad.csv"
    bad.write_text("10000001,2\n")
    with pytest.raises(MimicImportError, match="line 1: flag '2' is not 0 or 1"):
        read_subject_set(bad)


def test_cli_subprocess_reports_errors_without_traceback(tmp_path):
    rc = subprocess.run(
        [sys.executable, "-m", "benchmark_data", "import-mimic", "--medmod-root", str(tmp_path),
         "--mimic-iv", str(tmp_path), "--mimic-cxr", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert rc.returncode == 2
    assert rc.stderr.startswith("error: missing input file: expected ")
    assert "Traceback" not in rc.stderr
