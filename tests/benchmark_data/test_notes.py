"""The notes modality: the leakage rules, with traps, and the synthetic notes (written from
the latent state, seeded, with the signal only the text holds)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from benchmark_data.notes import usable_mask, usable_notes
from benchmark_data.synth import SCALES
from benchmark_data.synth.cohort import make_cohort
from benchmark_data.synth.cxr import FINDING_SLUGS, image_findings, schedule_images
from benchmark_data.synth.notes import NOTE_COLUMNS, make_notes, radiology_report

pytestmark = pytest.mark.slow  # generates benchmarks or trains models

CUTOFF = 48 * 60  # a mortality unit: intime + 48 h, in minutes


def test_a_note_stored_one_minute_after_the_cutoff_is_not_an_input():
    notes = pd.DataFrame({
        "note_type": ["progress", "progress", "nursing", "nursing"],
        "chart_minute": [CUTOFF - 300, CUTOFF - 300, CUTOFF - 10, CUTOFF - 5],
        "store_minute": [CUTOFF, CUTOFF + 1, np.nan, CUTOFF + 120],
        "study_id": -1,
    })  # fmt: skip
    kept = usable_notes(notes, prediction_minute=CUTOFF, own_study=None)
    # Stored at the cut-off: known. One minute after: not, though charted 5 h before. No
    # store time: its chart time counts. Charted before, signed two hours after: not.
    assert kept.index.tolist() == [0, 2]


def test_a_discharge_summary_is_never_an_input_even_one_stored_early():
    notes = pd.DataFrame(
        {
            "note_type": ["discharge", "discharge", "progress"],
            "chart_minute": [100, 5000, 90],
            "store_minute": [120, 9000, 95],  # a summary drafted early: still excluded
            "study_id": -1,
        }
    )
    assert usable_mask(notes, prediction_minute=10_000, own_study=None).tolist() == [False, False, True]  # fmt: skip


def test_the_report_of_the_images_own_study_is_not_an_input_to_its_findings():
    notes = pd.DataFrame(
        {
            "note_type": ["radiology", "radiology", "radiology"],
            "chart_minute": [600, 1200, 1200],
            "store_minute": [700, 1250, 1250],
            "study_id": [51, 52, 53],
        }
    )
    # The unit is study 52's image, predicted at its time (1200) ... and later, once its
    # report is signed: the report it is labelled from stays out; the earlier study's
    # report is an input, a same-time study's report only once stored.
    assert usable_mask(notes, prediction_minute=1200, own_study=52).tolist() == [True, False, False]  # fmt: skip
    assert usable_mask(notes, prediction_minute=1300, own_study=52).tolist() == [True, False, True]  # fmt: skip
    # For a task not labelled from reports, every signed report counts.
    assert usable_mask(notes, prediction_minute=1300, own_study=None).tolist() == [True, True, True]  # fmt: skip


@pytest.fixture(scope="module")
def drawn():
    """The tiny scale's cohort, images and findings, and the notes drawn from them."""
    scale = SCALES["demo"]
    streams = np.random.SeedSequence(3).spawn(4)
    cohort = make_cohort(scale, np.random.default_rng(streams[0]))
    images = schedule_images(cohort.stays, scale, np.random.default_rng(streams[1]))
    findings, params = image_findings(images, cohort.stays, cohort.phenotypes, np.random.default_rng(streams[2]))  # fmt: skip

    def draw() -> pd.DataFrame:
        return make_notes(cohort.stays, cohort.phenotypes, images, findings, params, np.random.default_rng(streams[3]))  # fmt: skip

    return cohort, images, findings, draw(), draw


def test_the_same_seed_gives_the_same_notes_byte_for_byte(drawn):
    *_, notes, draw = drawn
    again = draw()
    assert notes.to_csv(index=False).encode() == again.to_csv(index=False).encode()
    assert tuple(notes.columns) == NOTE_COLUMNS
    assert notes["note_id"].is_unique
    assert (notes["store_minute"] >= notes["chart_minute"]).all()


def test_every_image_has_its_report_and_the_report_says_its_findings(drawn):
    cohort, images, findings, notes, _ = drawn
    reports = notes[notes["note_type"] == "radiology"]
    assert len(reports) == len(images)
    assert sorted(reports["study_id"]) == sorted(images["study_id"])
    text_of = dict(zip(reports["study_id"], reports["text"].str.lower(), strict=True))
    col = FINDING_SLUGS.index("pneumothorax")
    with_ptx = images["study_id"][findings[:, col] == 1]
    without = images["study_id"][findings[:, col] == 0]
    assert len(with_ptx) > 0
    said = np.mean([bool(re.search(r"pneumothorax|ptx", text_of[s])) for s in with_ptx])
    negated = np.mean(["no pneumothorax" in text_of[s] or "no ptx" in text_of[s] or "there is no pneumothorax" in text_of[s] for s in without])  # fmt: skip
    assert said > 0.95 and negated > 0.3
    assert not any("no pneumothorax" in text_of[s] for s in with_ptx)
    every = " ".join(text_of.values())
    for phrase in ("cannot exclude", "since the prior study", "impression:", "endotracheal tube"):
        assert phrase in every or phrase.replace("cannot exclude", "possible") in every


def test_goals_of_care_are_in_the_text_only_and_carry_the_risk_of_death(drawn):
    cohort, _, _, notes, _ = drawn
    stays = cohort.stays
    early = notes[(notes["note_type"].isin(["progress", "nursing"])) & (notes["store_minute"] <= CUTOFF)]  # fmt: skip
    dnr = early["text"].str.contains("DNR|comfort-focused|hospice", regex=True)
    flagged = set(early.loc[dnr, "stay_id"])
    died = stays["died"].to_numpy().astype(bool)
    in_flagged = stays["stay_id"].isin(flagged).to_numpy()
    assert in_flagged.sum() > 20
    # Death is more common among the stays whose notes say DNR / comfort care by 48 h.
    assert died[in_flagged].mean() > 1.5 * died[~in_flagged].mean()


def test_sparser_documentation_for_the_groups_whose_vital_signs_are_sparser(drawn):
    cohort, _, _, notes, _ = drawn
    stays = cohort.stays
    day_notes = notes[notes["note_type"].isin(["progress", "nursing"])]
    per_stay = day_notes.groupby("stay_id").size().reindex(stays["stay_id"], fill_value=0).to_numpy()  # fmt: skip
    rate = per_stay / np.maximum(stays["los_min"].to_numpy() / 1440, 0.25)
    sparse = stays["ehr_keep"].to_numpy() < 0.8
    assert sparse.sum() > 20
    assert rate[sparse].mean() < 0.9 * rate[~sparse].mean()


def test_the_discharge_summary_is_stored_after_the_stay_and_names_its_diagnoses(drawn):
    cohort, _, _, notes, _ = drawn
    summaries = notes[notes["note_type"] == "discharge"]
    assert len(summaries) == len(cohort.stays)
    los = dict(zip(cohort.stays["stay_id"], cohort.stays["los_min"], strict=True))
    assert all(row.store_minute > los[row.stay_id] for row in summaries.itertuples())
    assert summaries["text"].str.contains("Discharge diagnoses").all()


def test_a_report_compares_with_the_prior_study_only_when_there_is_one():
    rng = np.random.default_rng(0)
    labels = dict.fromkeys(FINDING_SLUGS, 0) | {"pleural_effusion": 1}
    extents = {"pleural_effusion": 1.5}
    first = radiology_report(labels, extents, {}, prior=None, rng=rng)
    later = radiology_report(labels, extents, {}, prior={"pleural_effusion": 0.5}, rng=rng)
    assert "COMPARISON: None." in first and "increased" not in first
    assert "Prior study" in later and "increased" in later


# MIMIC-IV-Note ---------------------------------------------------------------------------


def _note_tree(root, *, mismatch: bool = False):
    """A MIMIC-IV-Note tree in the release's format, with the traps of the leakage rules."""
    import gzip

    t0 = pd.Timestamp("2150-03-01 08:00:00")

    def at(minutes: float) -> str:
        return str(t0 + pd.Timedelta(minutes=minutes))

    rad = pd.DataFrame([
        # note_id, subject_id, hadm_id, note_type, note_seq, charttime, storetime, text
        ("10-RR-1", 10, 100, "RR", 1, at(600), at(630), "Small left effusion."),
        ("10-RR-2", 10, 100, "RR", 2, at(CUTOFF - 1), at(CUTOFF + 1), "Stored a minute late."),
        ("10-RR-3", 10, 100, "RR", 3, at(CUTOFF - 30), "", "No store time: chart time counts."),
        ("10-RR-4", 10, 100, "RR", 4, at(80 * 60), at(80 * 60 + 20), "After the stay's end."),
        ("10-RR-5", 10, "", "RR", 5, at(300), at(310), "Outpatient, no admission."),
        ("20-RR-1", 11 if mismatch else 20, 200, "RR", 1, at(100), at(130), "Other stay."),
    ], columns=["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text"])  # fmt: skip
    dis = pd.DataFrame(
        [
            (
                "10-DS-1",
                10,
                100,
                "DS",
                1,
                at(90 * 60),
                at(92 * 60),
                "Discharge diagnoses: sepsis. Expired.",
            ),  # fmt: skip
        ],
        columns=rad.columns,
    )
    detail = pd.DataFrame({
        "note_id": ["10-RR-1", "10-RR-1", "10-RR-2", "20-RR-1"],
        "subject_id": [10, 10, 10, 20],
        "field_name": ["study_id", "cpt_code", "study_id", "study_id"],
        "field_ordinal": [1, 1, 1, 1],
        "field_value": ["501", "71045", "502", "601"],
    })  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "radiology.csv.gz", "wt") as fh:
        rad.to_csv(fh, index=False)
    dis.to_csv(root / "discharge.csv", index=False)
    detail.to_csv(root / "radiology_detail.csv", index=False)
    windows = pd.DataFrame({
        "stay_id": [1000, 2000], "subject_id": [10, 20], "hadm_id": [100, 200],
        "intime": [t0, t0], "outtime": [t0 + pd.Timedelta(hours=72)] * 2,
    })  # fmt: skip
    return windows


def test_mimic_notes_are_read_per_stay_and_the_rules_keep_the_traps_out(tmp_path):
    from benchmark_data.mimic.notes import read_stay_notes
    from benchmark_data.mimic.sources import InputFiles

    windows = _note_tree(tmp_path / "note")
    inputs = InputFiles()
    notes = read_stay_notes(tmp_path / "note", windows, inputs)
    assert sorted(inputs.hashes) == [
        "mimic-iv-note/discharge.csv", "mimic-iv-note/radiology.csv.gz",
        "mimic-iv-note/radiology_detail.csv",
    ]  # fmt: skip
    assert tuple(notes.columns) == NOTE_COLUMNS
    stay = notes[notes["stay_id"] == 1000].set_index("note_id")
    # The outpatient report and the one charted after the stay are not the stay's notes.
    assert sorted(stay.index) == ["10-DS-1", "10-RR-1", "10-RR-2", "10-RR-3"]
    assert stay.loc["10-RR-1", "study_id"] == 501 and stay.loc["10-RR-3", "study_id"] == -1
    assert stay.loc["10-RR-1", "chart_minute"] == 600 and stay.loc["10-RR-1", "store_minute"] == 630  # fmt: skip
    assert pd.isna(stay.loc["10-RR-3", "store_minute"])
    # At 48 h: the report stored a minute late and the discharge summary stay out.
    kept = usable_notes(stay, prediction_minute=CUTOFF, own_study=None)
    assert sorted(kept.index) == ["10-RR-1", "10-RR-3"]
    # The findings of study 501's image are never read from its own report.
    kept = usable_notes(stay, prediction_minute=10**6, own_study=501)
    assert sorted(kept.index) == ["10-RR-2", "10-RR-3"]


def test_a_note_of_another_patients_admission_is_refused_naming_the_file(tmp_path):
    from benchmark_data.mimic.notes import read_stay_notes
    from benchmark_data.mimic.sources import InputFiles, MimicImportError

    windows = _note_tree(tmp_path / "note", mismatch=True)
    with pytest.raises(MimicImportError, match=r"radiology.csv.gz: 1 note\(s\) name an admission of another patient.*20-RR-1"):  # fmt: skip
        read_stay_notes(tmp_path / "note", windows, InputFiles())


def test_a_missing_note_file_names_the_path_expected(tmp_path):
    from benchmark_data.mimic.notes import read_stay_notes
    from benchmark_data.mimic.sources import InputFiles, MimicImportError

    windows = _note_tree(tmp_path / "note")
    (tmp_path / "note" / "radiology_detail.csv").unlink()
    with pytest.raises(MimicImportError, match=r"missing input file: expected .*radiology_detail.csv\[.gz\]"):  # fmt: skip
        read_stay_notes(tmp_path / "note", windows, InputFiles())
