"""The synthetic Yu et al. benchmark: every input cut at hour 24, the leakage rules applied
to its reports, paired units and independent nested scenarios, and byte-identical files
per seed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark_data import layout
from benchmark_data.benchmark import Benchmark
from benchmark_data.synth.yu import HORIZON_MIN, generate_yu

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.slow]


@pytest.fixture(scope="module")
def yu(tmp_path_factory):
    out = tmp_path_factory.mktemp("yu") / "bench"
    generate_yu(out, scale="tiny", seed=3)
    return Benchmark.open(out)


def test_the_same_seed_gives_the_same_files_byte_for_byte(yu, tmp_path):
    again = generate_yu(tmp_path / "again", scale="tiny", seed=3)
    assert again["files"] == yu.manifest["files"]
    other = generate_yu(tmp_path / "other", scale="tiny", seed=4)
    assert other["files"][layout.test_labels("mortality-24h")] != yu.manifest["files"][layout.test_labels("mortality-24h")]  # fmt: skip


def test_it_declares_the_yu_suite_and_is_scored_on_its_public_test_units(yu):
    assert yu.suite.slug == "yu2025"
    assert yu.tasks == ["mortality-24h", "los-over-3d"]
    assert all(yu.scored_on(t) == "public" for t in yu.tasks)
    assert not any(rel.startswith("credentialed/test/") for rel in yu.manifest["files"])


def test_no_public_input_is_later_than_hour_24(yu):
    for split in ("train", "val", "test"):
        ts = yu.timeseries(split)
        assert ts["hours"].max() <= 24
        x, index = yu.discretized(split)
        assert index["n_hours"].max() <= 24
        notes = yu.read_csv(layout.notes(split))
        assert (notes["store_minute"] <= HORIZON_MIN).all()
        assert set(notes["note_type"]) <= {"radiology"}
    assert yu.cxr_metadata()["hours"].max() <= 24


def test_public_files_hold_no_test_label_and_the_credentialed_part_does(yu):
    for task in yu.tasks:
        assert "y_true" not in yu.units(task, "test").columns
        assert "y_true" in yu.units(task, "train").columns
        labels = yu.test_labels(task)
        assert len(labels) == len(yu.units(task, "test"))
        assert set(labels["y_true"].unique()) <= {0, 1}


def test_paired_means_a_film_and_a_report_by_hour_24(yu):
    units = yu.units("mortality-24h", "test")
    notes = yu.read_csv(layout.notes("test"))
    has_notes = units["stay_id"].isin(notes["stay_id"]).astype(int)
    assert (units["has_notes"] == has_notes).all()
    assert (units["paired"] == (units["has_cxr"] & units["has_notes"])).all()
    # Some films have no report yet at hour 24: the modalities are missing apart.
    assert 0 < units["paired"].sum() < len(units)


def test_each_modality_is_withheld_nested_and_independently(yu):
    table = yu.read_csv(layout.scenarios("mortality-24h"))
    units = yu.units("mortality-24h", "test")
    assert set(table["stay_id"]) == set(units.loc[units["paired"] == 1, "stay_id"])
    for prefix in ("cxr_missing", "notes_missing"):
        sets = [set(table.loc[table[f"{prefix}_{p}"] == 1, "stay_id"]) for p in (25, 50, 75, 100)]
        assert all(a <= b for a, b in zip(sets, sets[1:], strict=False))
        assert len(sets[1]) == round(len(table) * 0.5)
    assert not table["cxr_missing_50"].equals(table["notes_missing_50"])


def test_reports_carry_history_only_the_text_shows(yu):
    """The requisition's history (a life-limiting illness, goals of care) is more common in
    stays that end in death: the notes' own signal."""
    units = pd.concat([yu.units("mortality-24h", s) for s in ("train", "val")])
    notes = pd.concat([yu.read_csv(layout.notes(s)) for s in ("train", "val")])
    flagged = notes[notes["text"].str.contains("metastatic|End-stage|DNR|comfort-focused|dementia", regex=True)]  # fmt: skip
    died = units.set_index("stay_id")["y_true"]
    rate_flagged = died.reindex(flagged["stay_id"].unique()).mean()
    rate_all = died.reindex(notes["stay_id"].unique()).mean()
    assert rate_flagged > 1.5 * rate_all


def test_the_manifest_names_the_inputs(yu):
    stats = yu.manifest["stats"]
    assert stats["reports"] > 0 and stats["images"] > 0
    assert 0 < stats["paired"] <= stats["with_cxr"]
    labels = pd.concat([yu.units("mortality-24h", "train"), yu.units("mortality-24h", "val"),
                        yu.test_labels("mortality-24h")])  # fmt: skip
    assert np.isclose(
        yu.manifest["prevalence"]["mortality-24h"], labels["y_true"].mean(), atol=1e-4
    )
    assert json.loads(json.dumps(yu.manifest)) == yu.manifest


def test_an_unknown_scale_is_refused_naming_the_scales(tmp_path):
    with pytest.raises(ValueError, match="demo, paper"):
        generate_yu(tmp_path / "x", scale="medmod")


def test_the_test_split_keeps_one_stay_per_patient(yu):
    """A later stay of the same patient would say the earlier one did not end in death."""
    stays = yu.stays()
    test = stays[stays["split"] == "test"]
    assert test["subject_id"].is_unique
    assert not stays[stays["split"] == "train"]["subject_id"].is_unique  # train keeps them all


def test_note_numbers_count_only_the_notes_shown(yu):
    notes = pd.concat([yu.read_csv(layout.notes(s)) for s in ("train", "val", "test")])
    seq = notes.groupby(["stay_id", "note_type"])["note_seq"]
    assert (seq.min() == 1).all() and (seq.max() == seq.size()).all()


@pytest.mark.parametrize("suite", ["yu2025", "medfuse"])
def test_no_identifier_or_order_in_the_public_files_tells_a_test_label(tmp_path, suite):
    """A participant's model-free cheats on the demo benchmark: stay, subject and admission
    ids, admission time, episode number and the row of the public unit list. Each AUROC's
    bootstrap interval (99.6%: twelve looks) covers 0.5."""
    from sklearn.metrics import roc_auc_score

    from benchmark_data.synth.medfuse import generate_medfuse

    (generate_yu if suite == "yu2025" else generate_medfuse)(tmp_path / "b", scale="demo", seed=42)
    bench = Benchmark.open(tmp_path / "b")
    stays = bench.stays()
    rng = np.random.default_rng(0)
    for task in bench.tasks:
        t = bench.suite.task(task)
        units = bench.units(task, "test").reset_index().merge(stays, on=["stay_id", "subject_id"])
        labels = bench.test_labels(task).set_index("stay_id").loc[units["stay_id"]]
        y = labels[t.label_columns[0]].to_numpy()
        feats = {
            "stay_id": units["stay_id"], "subject_id": units["subject_id"],
            "hadm_id": units["hadm_id"], "row": units["index"],
            "intime": pd.to_datetime(units["intime"]).astype("int64"),
            "episode": units["stay"].str.extract(r"episode(\d+)")[0].astype(int),
        }  # fmt: skip
        for name, x in feats.items():
            x = np.asarray(x, dtype=float)
            boot = []
            for _ in range(300):
                i = rng.integers(0, len(y), len(y))
                if 0 < y[i].sum() < len(i):
                    boot.append(roc_auc_score(y[i], x[i]))
            lo, hi = np.quantile(boot, [0.002, 0.998])
            assert lo <= 0.5 <= hi, (task, name, lo, hi)
