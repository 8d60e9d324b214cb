"""The synthetic MEDFuse-style benchmark: lab tests and notes of the first 24 hours, the
leakage rules applied to the notes, ten disease labels, and byte-identical files per seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark_data import layout
from benchmark_data.benchmark import Benchmark
from benchmark_data.synth.medfuse import LAB_PANEL, TASK, generate_medfuse
from benchmark_data.synth.yu import HORIZON_MIN


@pytest.fixture(scope="module")
def mf(tmp_path_factory):
    out = tmp_path_factory.mktemp("medfuse") / "bench"
    generate_medfuse(out, scale="tiny", seed=5)
    return Benchmark.open(out)


def test_the_same_seed_gives_the_same_files(mf, tmp_path):
    assert (
        generate_medfuse(tmp_path / "again", scale="tiny", seed=5)["files"] == mf.manifest["files"]
    )


def test_ten_disease_labels_from_labs_and_notes(mf):
    task = mf.suite.task(TASK)
    assert task.kind == "multilabel" and len(task.label_slugs) == 10
    assert task.primary_metric == "macro_f1" and task.threshold == 0.3
    assert [m.slug for m in mf.suite.modalities] == ["labs", "notes"]
    labels = mf.test_labels(TASK)
    assert list(labels.columns) == ["stay_id", "subject_id", *task.label_slugs]
    assert not set(task.label_slugs) & set(mf.units(TASK, "test").columns)


def test_inputs_end_at_hour_24_and_the_discharge_summary_is_never_one(mf):
    for split in ("train", "val", "test"):
        labs = mf.read_csv(layout.labs(split))
        assert labs["hours"].between(0, 24).all()
        assert set(labs["label"]) <= {name for name, *_ in LAB_PANEL}
        notes = mf.read_csv(layout.notes(split))
        assert (notes["store_minute"] <= HORIZON_MIN).all()
        assert "discharge" not in set(notes["note_type"])
        assert not notes["text"].str.contains("DISCHARGE SUMMARY").any()


def test_labs_follow_the_diseases_they_show_and_notes_name_the_others(mf):
    units = pd.concat([mf.units(TASK, s) for s in ("train", "val")]).set_index("stay_id")
    labs = pd.concat([mf.read_csv(layout.labs(s)) for s in ("train", "val")])
    glucose = labs[labs["label"] == "glucose"].groupby("stay_id")["value"].mean()
    dm = units["diabetes_mellitus_without_complication"].reindex(glucose.index)
    assert glucose[dm == 1].mean() > glucose[dm == 0].mean() + 25
    notes = pd.concat([mf.read_csv(layout.notes(s)) for s in ("train", "val")])
    said = (
        notes.groupby("stay_id")["text"]
        .agg(" ".join)
        .str.contains(r"\bHTN\b|hypertension", regex=True)
    )
    htn = units["essential_hypertension"].reindex(said.index)
    denied = (
        notes.groupby("stay_id")["text"].agg(" ".join).str.contains("no history of hypertension")
    )
    assert (said & ~denied)[htn == 1].mean() > 3 * (said & ~denied)[htn == 0].mean()


def test_notes_are_withheld_nested_from_the_paired_test_stays(mf):
    table = mf.read_csv(layout.scenarios(TASK))
    units = mf.units(TASK, "test")
    assert set(table["stay_id"]) == set(units.loc[units["paired"] == 1, "stay_id"])
    sets = [set(table.loc[table[f"notes_missing_{p}"] == 1, "stay_id"]) for p in (25, 50, 75, 100)]
    assert all(a <= b for a, b in zip(sets, sets[1:], strict=False)) and sets[-1] == set(table["stay_id"])  # fmt: skip
    assert np.isclose(mf.manifest["stats"]["with_notes"], pd.concat([mf.units(TASK, s) for s in ("train", "val", "test")])["has_notes"].mean(), atol=1e-4)  # fmt: skip


def test_one_test_stay_per_patient_and_note_numbers_without_gaps(mf):
    stays = mf.stays()
    assert stays.loc[stays["split"] == "test", "subject_id"].is_unique
    notes = pd.concat([mf.read_csv(layout.notes(s)) for s in ("train", "val", "test")])
    seq = notes.groupby(["stay_id", "note_type"])["note_seq"]
    assert (seq.max() == seq.size()).all()
