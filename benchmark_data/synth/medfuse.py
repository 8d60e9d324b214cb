"""The synthetic benchmark of the MEDFuse-style suite: the lab tests and the clinical notes of
the first 24 hours of an ICU stay predict which of ten diseases the stay is coded with
(multi-label).

The ten diseases are ten of the 25 HCUP phenotypes of the MedMod generator (the ones most
frequent in MIMIC ICU stays across organ systems): acute renal failure, COPD, congestive
heart failure, coronary atherosclerosis, diabetes without complication, lipid disorders,
essential hypertension, fluid and electrolyte disorders, pneumonia and septicemia. The
stays are the MedMod generator's, kept when still in the ICU and alive at hour 24.

- **Lab tests** (``public/labs/{split}.csv.gz``: ``stay_id, subject_id, hours, label,
  value, unit``): a panel of 14 tests drawn 1 to 3 times in the first 24 hours, some only
  for some stays (HbA1c, BNP, troponin, LDL). Their values follow the diseases a lab can
  show (creatinine and BUN the kidneys, glucose and HbA1c diabetes, WBC and lactate
  infection, BNP heart failure, troponin coronary disease) with the stay's latent state and
  noise.
- **Clinical notes** (``public/notes/{split}.csv.gz``): the admission history and physical
  and a progress or nursing note, charted in the first day and known at their store time.
  The past medical history names the chronic diseases (with omissions, negations such as
  "denies diabetes", and hedges), the assessment the acute ones ("concern for sepsis",
  "cannot exclude pneumonia"). Hypertension, lipid disorders and COPD show in no lab, so
  notes add to labs; how much is written down follows the group's documentation rate.
  Notes stored after hour 24 and the discharge summary are not inputs
  (:mod:`benchmark_data.notes`).
- The test split keeps one stay per patient, drawn at random (as the Yu et al. benchmark).
- A unit is **paired** when it has a note by hour 24; the scenario files withhold the
  notes of 25/50/75/100% of the paired test stays (nested).

``python -m benchmark_data synth --suite medfuse --out DIR --scale demo --seed 42`` calls
:func:`generate_medfuse`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from benchmark_data import layout
from benchmark_data.benchmark import BenchmarkWriter
from benchmark_data.notes import usable_mask
from benchmark_data.store import Store
from benchmark_data.suite import builtin_suite
from benchmark_data.synth import cohort as C
from benchmark_data.synth.notes import discharge_summary, notes_frame, renumbered
from benchmark_data.synth.writer import Progress, destination, finish_synthetic
from benchmark_data.synth.yu import (
    HORIZON_MIN,
    checked_seed,
    first_day_cohort,
    withheld_scenarios,
    write_notes,
    write_stays,
)
from benchmark_data.tasks import PHENOTYPE_NAMES, SPLITS

GENERATOR = "benchmark_data.synth.medfuse"
GENERATOR_VERSION = "2"
NAME = "medfuse-synthetic"
SUITE = "medfuse"
TASK = "diseases-24h"
DISEASES = (C.P_RENAL_FAILURE, C.P_COPD, C.P_CHF, C.P_CORONARY, C.P_DM, C.P_LIPID, C.P_HTN,
            C.P_FLUID, C.P_PNEUMONIA, C.P_SEPSIS)  # fmt: skip

# (label, unit, share of stays measured, draws in the first day)
LAB_PANEL = (
    ("creatinine", "mg/dL", 1.0, 3), ("bun", "mg/dL", 1.0, 3), ("sodium", "mEq/L", 1.0, 3),
    ("potassium", "mEq/L", 1.0, 3), ("bicarbonate", "mEq/L", 1.0, 3), ("glucose", "mg/dL", 1.0, 3),
    ("wbc", "K/uL", 1.0, 2), ("hemoglobin", "g/dL", 1.0, 2), ("platelets", "K/uL", 1.0, 2),
    ("lactate", "mmol/L", 0.7, 2), ("hba1c", "%", 0.35, 1), ("bnp", "pg/mL", 0.45, 1),
    ("troponin", "ng/mL", 0.55, 2), ("ldl", "mg/dL", 0.2, 1),
)  # fmt: skip

_PMH = {
    C.P_COPD: ("COPD", "COPD on home inhalers", "emphysema"),
    C.P_CHF: ("CHF", "heart failure with reduced EF", "chronic systolic heart failure"),
    C.P_CORONARY: ("CAD", "CAD s/p stent", "coronary artery disease"),
    C.P_DM: ("type 2 diabetes", "DM2 on metformin", "diabetes"),
    C.P_LIPID: ("hyperlipidemia", "HLD on a statin", "dyslipidemia"),
    C.P_HTN: ("hypertension", "HTN", "essential hypertension"),
}
_DENIED = {C.P_COPD: "no known lung disease", C.P_DM: "denies diabetes", C.P_HTN: "no history of hypertension"}  # fmt: skip
_ACUTE = {
    C.P_RENAL_FAILURE: ("AKI, creatinine up from baseline", "acute kidney injury", "possible AKI"),
    C.P_FLUID: ("hyponatremia", "electrolyte derangements, repleting", "hypokalemia"),
    C.P_PNEUMONIA: ("community-acquired pneumonia", "RLL pneumonia", "cannot exclude pneumonia"),
    C.P_SEPSIS: ("sepsis", "septic shock, on pressors", "concern for sepsis"),
}
_BOILER = ("Seen and examined.", "Plan discussed with the team.", "Full code.", "Lines reviewed.",
           "DVT prophylaxis with heparin.", "Family updated at the bedside.")  # fmt: skip


def _labs(stays: pd.DataFrame, ph: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The first day's lab tests, one row per draw, sorted by stay and time."""
    n = len(stays)
    p = ph.astype(float)
    sev = stays["sev"].to_numpy(dtype=float)
    latent = {k: stays[k].to_numpy(dtype=float) for k in ("renal", "metab", "infect", "bleed", "liver", "cardiac")}  # fmt: skip
    mean = {
        "creatinine": np.exp(
            -0.1 + 0.55 * p[:, C.P_RENAL_FAILURE] + 0.6 * p[:, C.P_CKD] + 0.12 * latent["renal"]
        ),  # fmt: skip
        "bun": 14
        + 14 * p[:, C.P_RENAL_FAILURE]
        + 16 * p[:, C.P_CKD]
        + 3 * latent["renal"]
        + 3 * sev,
        "sodium": 139
        - 3.5 * p[:, C.P_FLUID] * np.sign(rng.standard_normal(n))
        + 0.5 * latent["metab"],
        "potassium": 4.1
        + 0.5 * p[:, C.P_RENAL_FAILURE]
        - 0.4 * p[:, C.P_FLUID]
        + 0.1 * latent["renal"],
        "bicarbonate": 24 - 3.0 * p[:, C.P_SEPSIS] - 2.0 * p[:, C.P_RENAL_FAILURE] - 1.0 * sev,
        "glucose": 115 + 55 * p[:, C.P_DM] + 10 * sev + 8 * latent["metab"],
        "wbc": 8.5 + 5.0 * p[:, C.P_SEPSIS] + 3.5 * p[:, C.P_PNEUMONIA] + 1.5 * latent["infect"],
        "hemoglobin": 11.8 - 1.0 * p[:, C.P_CKD] - 0.8 * latent["bleed"].clip(0) - 0.3 * sev,
        "platelets": 230 - 55 * p[:, C.P_SEPSIS] - 30 * latent["liver"].clip(0),
        "lactate": np.exp(0.2 + 0.55 * p[:, C.P_SEPSIS] + 0.2 * sev),
        "hba1c": 5.6 + 1.9 * p[:, C.P_DM] + 0.2 * latent["metab"],
        "bnp": np.exp(4.6 + 1.7 * p[:, C.P_CHF] + 0.3 * latent["cardiac"]),
        "troponin": np.exp(
            -3.5 + 1.2 * p[:, C.P_CORONARY] + 1.5 * p[:, C.P_AMI] + 0.3 * latent["cardiac"]
        ),  # fmt: skip
        "ldl": 95 + 35 * p[:, C.P_LIPID] - 10 * p[:, C.P_CORONARY],
    }
    rel_sd = {"creatinine": 0.25, "bun": 0.25, "lactate": 0.35, "bnp": 0.5, "troponin": 0.6}
    abs_sd = {"sodium": 2.5, "potassium": 0.35, "bicarbonate": 2.0, "glucose": 30, "wbc": 2.5,
              "hemoglobin": 1.2, "platelets": 50, "hba1c": 0.5, "ldl": 22}  # fmt: skip
    # Sparser labs where the vital signs are sparser too (the group's data quality).
    keep = stays["ehr_keep"].to_numpy(dtype=float)
    rows = []
    for label, unit, share, draws in LAB_PANEL:
        measured = rng.random(n) < share * np.clip(0.6 + 0.4 * keep, 0.3, 1.0)
        for _ in range(draws):
            taken = measured & (rng.random(n) < 0.85)
            hours = np.round(rng.uniform(0, 24, n), 2)
            noise = rng.standard_normal(n)
            m = mean[label]
            value = (
                m * np.exp(rel_sd[label] * noise) if label in rel_sd else m + abs_sd[label] * noise
            )
            idx = np.flatnonzero(taken)
            rows.append(pd.DataFrame({"stay": idx, "hours": hours[idx], "label": label,
                                      "value": np.round(np.maximum(value[idx], 0.01), 2), "unit": unit}))  # fmt: skip
    labs = pd.concat(rows, ignore_index=True).sort_values(["stay", "hours", "label"], kind="stable")
    labs.insert(0, "subject_id", stays["subject_id"].to_numpy()[labs["stay"].to_numpy()])
    labs.insert(0, "stay_id", stays["stay_id"].to_numpy()[labs["stay"].to_numpy()])
    return labs.drop(columns="stay").reset_index(drop=True)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _admission_note(ph: np.ndarray, detail: float, rng: np.random.Generator) -> str:
    """History and physical: the past medical history and the assessment."""
    pmh = []
    for d, names in _PMH.items():
        if ph[d] and rng.random() < 0.85 * detail or not ph[d] and rng.random() < 0.04:
            pmh.append(_pick(rng, names))
        elif not ph[d] and d in _DENIED and rng.random() < 0.25:
            pmh.append(_DENIED[d])
    rng.shuffle(pmh)
    acute = []
    for d, names in _ACUTE.items():
        if ph[d] and rng.random() < 0.75 * detail:
            acute.append(_pick(rng, names))
        elif not ph[d] and rng.random() < 0.05:
            acute.append(_pick(rng, names[-1:]))  # hedged, and wrong
    parts = [
        _pick(rng, ("ICU ADMISSION NOTE.", "MICU H&P.", "Admission history and physical.")),
        "PMH: " + (", ".join(pmh) if pmh else "none documented") + ".",
        "A/P: "
        + ("; ".join(acute) if acute else _pick(rng, ("monitoring overnight", "stable")))
        + ".",
    ]
    if rng.random() < 0.6:
        parts.append(_pick(rng, _BOILER))
    return " ".join(parts)


def _progress_note(ph: np.ndarray, detail: float, rng: np.random.Generator) -> str:
    said = [_pick(rng, ("NURSING NOTE.", "ICU progress note, day 1.", "RN shift note."))]
    for d, names in _ACUTE.items():
        if ph[d] and rng.random() < 0.5 * detail:
            said.append(_pick(rng, names) + ".")
    if ph[C.P_COPD] and rng.random() < 0.4 * detail:
        said.append(_pick(rng, ("Nebs given for wheezing.", "On home inhalers.")))
    said.append(_pick(rng, _BOILER))
    return " ".join(said)


def _notes(stays: pd.DataFrame, ph: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Every note of the first day and the discharge summary (which the rules keep out)."""
    keep = stays["ehr_keep"].to_numpy(dtype=float)
    rows: list[tuple] = []
    for s in range(len(stays)):
        detail = float(np.clip(0.35 + 0.6 * keep[s], 0.2, 1.0))
        if rng.random() < 0.55 + 0.4 * detail:
            chart = float(rng.uniform(60, 600))
            rows.append((s, "progress", chart, chart + float(rng.uniform(30, 900)), -1,
                         _admission_note(ph[s], detail, rng)))  # fmt: skip
        if rng.random() < 0.5 * detail:
            chart = float(rng.uniform(300, 1380))
            rows.append((s, "nursing", chart, chart + float(rng.uniform(10, 120)), -1,
                         _progress_note(ph[s], detail, rng)))  # fmt: skip
        end = float(stays["los_min"].iloc[s])
        dx = [PHENOTYPE_NAMES[j] for j in np.flatnonzero(ph[s])]
        rows.append((s, "discharge", end, end + float(rng.uniform(600, 4320)), -1,
                     discharge_summary(dx, bool(stays["died"].iloc[s]), rng)))  # fmt: skip
    return notes_frame(rows, stays)


def generate_medfuse(
    out: str | os.PathLike[str] | Store,
    *,
    scale: str = "demo",
    seed: int | None = 42,
    sealed: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate the synthetic MEDFuse-style benchmark into ``out``; returns its manifest.
    Scales and seeds as in :func:`benchmark_data.synth.yu.generate_yu`."""
    seed = checked_seed(scale, seed, sealed=sealed)
    say = Progress(progress)
    suite = builtin_suite(SUITE)
    task = suite.task(TASK)
    streams = np.random.SeedSequence(seed).spawn(5)
    stays, ph = first_day_cohort(scale, np.random.default_rng(streams[0]), np.random.default_rng(streams[4]))  # fmt: skip
    labs = _labs(stays, ph, np.random.default_rng(streams[1]))
    notes = _notes(stays, ph, np.random.default_rng(streams[2]))
    notes = renumbered(notes[usable_mask(notes, prediction_minute=HORIZON_MIN, own_study=None)])
    has_notes = stays["stay_id"].isin(notes["stay_id"]).to_numpy().astype(np.int64)
    labels = pd.DataFrame(ph[:, list(DISEASES)].astype(np.int64), columns=list(task.label_slugs))
    units = pd.concat([pd.DataFrame({
        "stay_id": stays["stay_id"], "subject_id": stays["subject_id"], "split": stays["split"],
        "has_notes": has_notes, "paired": has_notes,
    }), labels], axis=1)  # fmt: skip
    scenarios = withheld_scenarios(units, suite, np.random.default_rng(streams[3]))
    say(f"drawn: {len(stays):,} stays, {len(labs):,} lab results, {len(notes):,} notes")
    cols = ["stay_id", "subject_id", "has_notes", "paired"]
    with destination(out) as store:
        w = BenchmarkWriter(store)
        write_stays(w, stays, public_demographics=False)
        write_notes(w, notes, stays)
        split_of = dict(zip(stays["stay_id"], stays["split"], strict=True))
        counts: dict[str, int] = {}
        for name in SPLITS:
            w.write_csv(layout.labs(name), labs[labs["stay_id"].map(split_of) == name].reset_index(drop=True))  # fmt: skip
            part = units[units["split"] == name].reset_index(drop=True)
            if name == "test":
                w.write_csv(layout.units(TASK, name), part[cols])
                w.write_csv(layout.test_labels(TASK), part[["stay_id", "subject_id", *task.label_slugs]])  # fmt: skip
                counts["test_paired"] = int(part["paired"].sum())
            else:
                w.write_csv(layout.units(TASK, name), part[[*cols, *task.label_slugs]])
            counts[name] = len(part)
        w.write_csv(layout.scenarios(TASK), scenarios)
        manifest = finish_synthetic(
            w,
            name=NAME,
            scale=scale,
            seed=seed,
            sealed=sealed,
            generator=GENERATOR,
            generator_version=GENERATOR_VERSION,
            suite=suite,
            extra={
                "tasks": [TASK],
                "counts": {TASK: {k: counts[k] for k in (*SPLITS, "test_paired")}},
                "scored_on": {TASK: "public"},
                "prevalence": {
                    TASK: {s: round(float(labels[s].mean()), 4) for s in task.label_slugs}
                },
                "stats": {
                    "subjects": int(stays["subject_id"].nunique()),
                    "stays": len(stays),
                    "lab_results": len(labs),
                    "notes": len(notes),
                    "with_notes": round(float(has_notes.mean()), 4),
                },  # fmt: skip
            },
        )
    say("manifest written")
    return manifest


__all__ = ["DISEASES", "GENERATOR_VERSION", "LAB_PANEL", "NAME", "generate_medfuse"]
