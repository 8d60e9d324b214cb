"""Importing MIMIC-IV, MIMIC-CXR and MIMIC-IV-Note into the Yu et al. suite, on a fixture
tree in the PhysioNet layout: the cohort (24 h in the ICU and alive), the labels, every input
cut at hour 24, and the notes' traps (a report stored a minute late, a discharge summary)
kept out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark_data import layout
from benchmark_data.benchmark import Benchmark
from benchmark_data.mimic.sources import MimicImportError
from benchmark_data.mimic.yu import import_yu
from tests.benchmark_data.mimic_fixtures import MimicTree, build_tree

TIME = "%Y-%m-%d %H:%M:%S"


def _notes(tree: MimicTree, root) -> dict[str, str]:
    """Radiology reports of the images (stored 30 min after each), the traps, and a
    discharge summary per admission; returns the trap note ids by role."""
    root.mkdir(parents=True)
    rad, detail, dis = [], [], []
    for i, img in enumerate(tree.images.drop_duplicates("study_id").itertuples()):
        hadm = tree.stays.loc[tree.stays["subject_id"] == img.subject_id, "hadm_id"]
        if hadm.empty:
            continue
        note_id = f"{img.subject_id}-RR-{i}"
        stored = img.when + pd.Timedelta(minutes=30)
        rad.append((note_id, img.subject_id, int(hadm.iloc[0]), "RR", i, img.when.strftime(TIME), stored.strftime(TIME), f"FINDINGS: report {note_id}."))  # fmt: skip
        detail.append((note_id, img.subject_id, "study_id", 1, str(img.study_id)))
    traps: dict[str, str] = {}
    for s in tree.stays.itertuples():
        if (
            s.los_h < 30
            or pd.notna(s.deathtime)
            and (s.deathtime - s.intime).total_seconds() < 86400
        ):
            continue
        late = f"{s.subject_id}-RR-late-{s.stay_id}"
        charted = s.intime + pd.Timedelta(hours=20)
        stored = s.intime + pd.Timedelta(hours=24, minutes=1)
        rad.append((late, s.subject_id, s.hadm_id, "RR", 900, charted.strftime(TIME), stored.strftime(TIME), "IMPRESSION: stored one minute after the cut-off."))  # fmt: skip
        early = f"{s.subject_id}-RR-early-{s.stay_id}"
        stored = s.intime + pd.Timedelta(hours=23, minutes=59)
        rad.append((early, s.subject_id, s.hadm_id, "RR", 901, charted.strftime(TIME), stored.strftime(TIME), "IMPRESSION: stored a minute before the cut-off."))  # fmt: skip
        traps.setdefault("late", late)
        traps.setdefault("early", early)
        ds = f"{s.subject_id}-DS-{s.stay_id}"
        stored = s.intime + pd.Timedelta(hours=2)  # a summary stored early is still never an input
        dis.append((ds, s.subject_id, s.hadm_id, "DS", 1, s.intime.strftime(TIME), stored.strftime(TIME), "DISCHARGE SUMMARY. The patient expired."))  # fmt: skip
        traps.setdefault("discharge", ds)
    cols = ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text"]  # fmt: skip
    pd.DataFrame(rad, columns=cols).to_csv(root / "radiology.csv.gz", index=False)
    pd.DataFrame(dis, columns=cols).to_csv(root / "discharge.csv", index=False)
    pd.DataFrame(detail, columns=["note_id", "subject_id", "field_name", "field_ordinal", "field_value"]).to_csv(root / "radiology_detail.csv", index=False)  # fmt: skip
    return traps


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("yu-mimic")
    tree = build_tree(root / "in", seed=3, n_subjects=40)
    traps = _notes(tree, root / "in" / "note")
    import_yu(
        medmod_root=tree.medmod_root, mimic_iv=tree.mimic_iv, mimic_cxr=tree.mimic_cxr,
        mimic_note=root / "in" / "note", out=root / "bench", test_subjects=tree.test_subjects,
        seed=7,
    )  # fmt: skip
    return tree, traps, Benchmark.open(root / "bench")


def _all_units(bench: Benchmark) -> pd.DataFrame:
    task = "mortality-24h"
    test = bench.units(task, "test").merge(bench.test_labels(task), on=["stay_id", "subject_id"])
    return pd.concat([bench.units(task, "train"), bench.units(task, "val"), test], ignore_index=True)  # fmt: skip


def test_the_cohort_is_every_stay_in_the_icu_and_alive_at_hour_24(imported):
    """... with one test stay per patient, drawn at random."""
    tree, _, bench = imported
    s = tree.stays
    alive = s["deathtime"].isna() | ((s["deathtime"] - s["intime"]).dt.total_seconds() >= 86400)
    eligible = s[(s["los_h"] >= 24) & alive]
    units = _all_units(bench)
    stays = bench.stays().set_index("stay_id")
    assert set(units["stay_id"]) <= set(eligible["stay_id"])
    not_test = eligible[eligible["split"] != "test"]
    assert set(not_test["stay_id"]) <= set(units["stay_id"])
    test_units = units[units["stay_id"].map(stays["split"]) == "test"]
    assert test_units["subject_id"].is_unique
    assert set(test_units["subject_id"]) == set(
        eligible.loc[eligible["split"] == "test", "subject_id"]
    )
    assert len(eligible[eligible["split"] == "test"]) > len(test_units)  # some were dropped
    assert bench.suite.slug == "yu2025" and bench.tasks == ["mortality-24h", "los-over-3d"]


def test_labels_are_the_admissions_death_flag_and_a_stay_over_72_hours(imported):
    tree, _, bench = imported
    by_stay = tree.stays.set_index("stay_id")
    units = _all_units(bench).set_index("stay_id")
    assert (units["y_true"] == by_stay.loc[units.index, "mortality"]).all()
    los = bench.test_labels("los-over-3d").set_index("stay_id")["y_true"]
    assert (los == (by_stay.loc[los.index, "los_h"] > 72).astype(int)).all()


def test_every_input_ends_at_hour_24(imported):
    _, _, bench = imported
    for split in ("train", "val", "test"):
        assert bench.timeseries(split)["hours"].max() <= 24
        _, index = bench.discretized(split)
        assert (index["n_hours"] == 24).all()
        notes = bench.read_csv(layout.notes(split))
        assert (notes["store_minute"] <= 24 * 60).all() and set(notes["note_type"]) <= {"radiology"}
    assert bench.cxr_metadata()["hours"].between(0, 24).all()
    assert set(bench.read_csv(layout.PUBLIC_DEMOGRAPHICS).columns) >= {"age", "gender", "race"}


def test_the_note_traps_are_excluded_and_the_note_a_minute_early_is_kept(imported):
    _, traps, bench = imported
    ids = set(
        pd.concat([bench.read_csv(layout.notes(s)) for s in ("train", "val", "test")])["note_id"]
    )
    assert traps["late"] not in ids and traps["discharge"] not in ids
    assert traps["early"] in ids


def test_paired_units_have_a_film_and_a_report_and_the_scenarios_cover_them(imported):
    _, _, bench = imported
    units = bench.units("mortality-24h", "test")
    assert (units["paired"] == (units["has_cxr"] & units["has_notes"])).all()
    assert (units["has_cxr"] == units["cxr_dicom_id"].notna()).all()
    table = bench.read_csv(layout.scenarios("mortality-24h"))
    assert set(table["stay_id"]) == set(units.loc[units["paired"] == 1, "stay_id"])
    assert {"cxr_missing_100", "notes_missing_100"} <= set(table.columns)
    assert np.all(table["cxr_missing_100"] == 1)


def test_the_notes_directory_is_required_and_named(tmp_path):
    tree = build_tree(tmp_path / "in", seed=4, n_subjects=6)
    with pytest.raises(MimicImportError, match="--mimic-note"):
        import_yu(medmod_root=tree.medmod_root, mimic_iv=tree.mimic_iv, mimic_cxr=tree.mimic_cxr,
                  mimic_note=tmp_path / "missing", out=tmp_path / "bench")  # fmt: skip
    assert not (tmp_path / "bench").exists()
