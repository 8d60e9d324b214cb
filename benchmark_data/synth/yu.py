"""The synthetic benchmark of the Yu et al. 2025 suite (MIMIC-Multimodal): the first 24 hours
of an ICU stay (demographics, vital-sign time series, chest X-rays and their radiology
reports) predict in-hospital mortality and an ICU stay longer than three days.

It draws the same kind of patients as the MedMod generator (:mod:`benchmark_data.synth`:
cohort, latent state, time series, images) and keeps the stays still in the ICU and alive
24 hours after admission. Every input is cut at that prediction time: the public files of
every split hold the first 24 hours only, so the test split needs no sequestered part.

- **Chest X-rays**: an admission film in the first 24 hours for most stays (more often when
  ventilated or severely ill), sometimes a second one; findings and pixels as in MedMod.
- **Radiology reports**: one per image, signed 30 minutes to 10 hours later. A report signed
  after hour 24 is not an input (:mod:`benchmark_data.notes`), so a stay may have an image
  and no report. The requisition's clinical history holds what **only the text** shows:
  a life-limiting diagnosis (more often in stays that end in death), the goals-of-care
  conversation (rising before a death) and the team's expectation of the course (a prolonged
  stay, or a transfer out in the morning), each written with the group's documentation rate,
  so notes add to EHR and images and subgroups differ in how much is documented.
- The test split keeps **one stay per patient**, drawn at random: a later stay of the same
  patient would say that the earlier one did not end in death.
- A unit is **paired** when it has an image and a report by hour 24; the scenario files
  withhold each modality from 25/50/75/100% of the paired test stays, independently.

``python -m benchmark_data synth --suite yu2025 --out DIR --scale demo --seed 42`` calls
:func:`generate_yu`; ``scripts/check_notes_signal.py`` shows the signal.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from benchmark_data import layout
from benchmark_data.benchmark import BenchmarkWriter
from benchmark_data.causal import cut_discretized, cut_timeseries
from benchmark_data.discretize import discretize_split, split_index
from benchmark_data.notes import usable_mask
from benchmark_data.store import Store
from benchmark_data.suite import Suite, builtin_suite
from benchmark_data.synth import cohort as C
from benchmark_data.synth.cxr import image_findings
from benchmark_data.synth.ehr import make_timeseries
from benchmark_data.synth.notes import (
    History,
    goals_of_care,
    notes_frame,
    radiology_rows,
    renumbered,
)
from benchmark_data.synth.scales import get_scale
from benchmark_data.synth.units import latest_image
from benchmark_data.synth.writer import (
    Progress,
    destination,
    finish_synthetic,
    render_images,
)
from benchmark_data.tasks import SPLITS

GENERATOR = "benchmark_data.synth.yu"
GENERATOR_VERSION = "2"
NAME = "yu2025-synthetic"
SUITE = "yu2025"
HORIZON_MIN = 24 * 60
LONG_STAY_MIN = 3 * 24 * 60
# Scales: the MedMod generator's cohort sizes ("paper": the MIMIC-IV-sized cohort).
SCALES = {"tiny": "tiny", "demo": "demo", "paper": "medmod"}
FIRST_DAY_FILM = 0.8  # share of stays with a chest X-ray in the first 24 hours
SECOND_FILM = 0.3
DEMOGRAPHIC_COLUMNS = ("stay_id", "subject_id", "age", "gender", "race", "insurance", "admission_type")  # fmt: skip

_LIFE_LIMITING = (
    "History of metastatic lung cancer.", "Known metastatic pancreatic cancer.",
    "End-stage liver disease.", "Advanced dementia, nursing home resident.",
    "End-stage COPD on home oxygen.",
)  # fmt: skip
_GOALS = ("DNR/DNI.", "Goals of care discussion in progress.", "Comfort-focused care being considered.")  # fmt: skip
_LONG = ("Prolonged ventilation anticipated.", "Expected prolonged ICU course.", "Tracheostomy planned.")  # fmt: skip
_SHORT = (
    "Routine post-procedure film, anticipate transfer out in the morning.",
    "Admitted for overnight monitoring.", "Stable for floor transfer.",
)  # fmt: skip


@dataclass
class _Drawn:
    stays: pd.DataFrame  # the cohort's stays still in the ICU and alive at hour 24
    phenotypes: np.ndarray
    images: pd.DataFrame
    params: pd.DataFrame
    notes: pd.DataFrame  # the reports usable at hour 24
    units: pd.DataFrame  # one per stay: keys, cxr_dicom_id, has_cxr, has_notes, paired, labels
    scenarios: pd.DataFrame  # paired test stays and what each scenario withholds


def _first_day_images(stays: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Films of the first 24 hours: ``stay`` (row), ``minute``, ``study_id``, ``dicom_id``,
    sorted by stay and time."""
    n = len(stays)
    lin = (0.9 * stays["vent"].to_numpy(dtype=float) + 0.5 * stays["sev"].to_numpy()
           + 0.3 * stays["lung_burden"].to_numpy())  # fmt: skip
    filmed = rng.random(n) < expit(C._calibrate(lin, FIRST_DAY_FILM) + lin)
    early = rng.random(n) < 0.8
    first = np.floor(rng.random(n) * np.where(early, 720, HORIZON_MIN)).astype(np.int64)
    second = rng.random(n) < SECOND_FILM
    later = first + np.floor(rng.random(n) * (HORIZON_MIN - first)).astype(np.int64)
    stay = np.r_[np.flatnonzero(filmed), np.flatnonzero(filmed & second)]
    minute = np.r_[first[filmed], later[filmed & second]]
    order = np.lexsort((minute, stay))
    stay, minute = stay[order], minute[order]
    study = rng.choice(np.arange(50_000_000, 60_000_000, dtype=np.int64), len(stay), replace=False)
    words = rng.integers(0, 2**32, size=(len(stay), 5), dtype=np.uint64)
    dicom = ["-".join(f"{w:08x}" for w in row) for row in words.tolist()]
    return pd.DataFrame({"stay": stay, "minute": minute, "study_id": study, "dicom_id": dicom})


def _history(stays: pd.DataFrame, rng: np.random.Generator) -> History:
    """The clinical history a requisition states: the text-only signal (module docstring)."""
    n = len(stays)
    goc_at = goals_of_care(stays, rng)
    life_limiting = 1.1 * stays["died"].to_numpy(dtype=float) + rng.standard_normal(n)
    log_los = np.log(stays["los_min"].to_numpy(dtype=float))
    outlook = (log_los - log_los.mean()) / log_los.std() + 0.9 * rng.standard_normal(n)
    detail = np.clip(0.35 + 0.6 * stays["ehr_keep"].to_numpy(dtype=float), 0.2, 1.0)

    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))]

    def at(s: int, minute: float) -> str:
        said = []
        if life_limiting[s] > 1.4 and rng.random() < detail[s]:
            said.append(pick(_LIFE_LIMITING))
        if goc_at(s, minute) > 1.6 and rng.random() < detail[s]:
            said.append(pick(_GOALS))
        if outlook[s] > 0.9 and rng.random() < detail[s]:
            said.append(pick(_LONG))
        elif outlook[s] < -0.9 and rng.random() < detail[s]:
            said.append(pick(_SHORT))
        return " ".join(said)

    return at


def one_stay_per_test_patient(stays: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Which stays to keep: every stay of the training and validation splits, and one test
    stay per patient drawn at random (not from the outcome). A later stay of the same
    patient would tell that the earlier one did not end in death."""
    test = (stays["split"] == "test").to_numpy()
    draw = rng.random(len(stays))
    order = pd.DataFrame({"subject_id": stays["subject_id"].to_numpy(), "draw": draw})
    first = order[test].sort_values(["subject_id", "draw"], kind="stable").drop_duplicates("subject_id")  # fmt: skip
    keep = ~test
    keep[first.index.to_numpy()] = True
    return keep


def checked_seed(scale: str, seed: int | None, *, sealed: bool) -> int:
    """The seed to draw with (a random one for a sealed benchmark without one), after
    checking the scale."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; the scales are: {', '.join(SCALES)}")
    if seed is None:
        if not sealed:
            raise ValueError("a seed is needed unless the benchmark is sealed")
        seed = secrets.randbits(63)
    return seed


def first_day_cohort(
    scale: str, rng: np.random.Generator, pick: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """The cohort's stays still in the ICU and alive at hour 24 (one per patient in the test
    split, drawn with ``pick``), and their phenotypes."""
    cohort = C.make_cohort(get_scale(SCALES[scale]), rng)
    alive = (cohort.stays["alive_min"] >= HORIZON_MIN).to_numpy()
    stays = cohort.stays[alive].reset_index(drop=True)
    keep = one_stay_per_test_patient(stays, pick)
    return stays[keep].reset_index(drop=True), cohort.phenotypes[alive][keep]


def withheld_scenarios(units: pd.DataFrame, suite: Suite, rng: np.random.Generator) -> pd.DataFrame:
    """For the paired test stays: each optional modality withheld at each level, nested
    (the stays withheld at 25% are among those withheld at 50%), independently per modality."""
    stays = np.sort(
        units.loc[(units["split"] == "test") & (units["paired"] == 1), "stay_id"].to_numpy()
    )
    table = pd.DataFrame({"stay_id": stays})
    for m in suite.modalities:
        if not m.withheld_levels:
            continue
        perm = rng.permutation(stays)
        for level, name in zip(m.withheld_levels, m.scenarios, strict=True):
            hidden = perm[: round(len(perm) * level / 100)]
            table[name] = np.isin(stays, hidden).astype(np.int64)
    return table


def _draw(scale: str, seed: int, suite: Suite) -> tuple[_Drawn, list[np.random.SeedSequence]]:
    # Independent streams: cohort, images, findings, history, notes, scenarios, time series,
    # pixels.
    streams = np.random.SeedSequence(seed).spawn(9)
    stays, phenotypes = first_day_cohort(
        scale, np.random.default_rng(streams[0]), np.random.default_rng(streams[8])
    )
    images = _first_day_images(stays, np.random.default_rng(streams[1]))
    findings, params = image_findings(images, stays, phenotypes, np.random.default_rng(streams[2]))
    history = _history(stays, np.random.default_rng(streams[3]))
    reports = notes_frame(
        radiology_rows(images, findings, params, np.random.default_rng(streams[4]), history=history),
        stays,
    )  # fmt: skip
    reports = renumbered(reports[usable_mask(reports, prediction_minute=HORIZON_MIN, own_study=None)])  # fmt: skip
    n = len(stays)
    latest = latest_image(
        images["stay"].to_numpy(), images["minute"].to_numpy(), images["dicom_id"].to_numpy(),
        np.arange(n), np.full(n, HORIZON_MIN),
    )  # fmt: skip
    has_cxr = np.array([d is not None for d in latest])
    has_notes = stays["stay_id"].isin(reports["stay_id"]).to_numpy()
    units = pd.DataFrame({
        "stay_id": stays["stay_id"], "subject_id": stays["subject_id"], "split": stays["split"],
        "cxr_dicom_id": latest, "has_cxr": has_cxr.astype(np.int64),
        "has_notes": has_notes.astype(np.int64), "paired": (has_cxr & has_notes).astype(np.int64),
        "mortality": stays["died"].astype(np.int64),
        "long_stay": (stays["los_min"] > LONG_STAY_MIN).astype(np.int64),
    })  # fmt: skip
    scenarios = withheld_scenarios(units, suite, np.random.default_rng(streams[5]))
    return _Drawn(stays, phenotypes, images, params, reports, units, scenarios), streams


def write_stays(w: BenchmarkWriter, st: pd.DataFrame, *, public_demographics: bool) -> None:
    """stays.csv, and the demographics: credentialed (the fairness attributes' source), and
    public too when they are an input modality of the suite."""
    intime = st["intime"].to_numpy().astype("datetime64[s]")
    w.write_csv(layout.STAYS, pd.DataFrame({
        "stay_id": st["stay_id"], "subject_id": st["subject_id"], "hadm_id": st["hadm_id"],
        "split": st["split"], "intime": pd.Series(intime).dt.strftime("%Y-%m-%d %H:%M:%S"),
        "stay": [f"{s}_episode{k}_timeseries.csv" for s, k in zip(st["subject_id"], st["episode"], strict=True)],
    }))  # fmt: skip
    demo = st[list(DEMOGRAPHIC_COLUMNS)]
    if public_demographics:
        w.write_csv(layout.PUBLIC_DEMOGRAPHICS, demo)
    w.write_csv(layout.DEMOGRAPHICS, demo)


def write_notes(w: BenchmarkWriter, notes: pd.DataFrame, stays: pd.DataFrame) -> None:
    """Each split's usable notes (the leakage rules applied before)."""
    split_of = dict(zip(stays["stay_id"], stays["split"], strict=True))
    for name in SPLITS:
        part = notes[notes["stay_id"].map(split_of) == name]
        w.write_csv(layout.notes(name), part.reset_index(drop=True))


def _write_tables(w: BenchmarkWriter, d: _Drawn) -> None:
    st = d.stays
    write_stays(w, st, public_demographics=True)
    intime = st["intime"].to_numpy().astype("datetime64[s]")
    s = d.images["stay"].to_numpy()
    minute = d.images["minute"].to_numpy()
    taken = intime[s] + (60 * minute).astype("timedelta64[s]")
    w.write_csv(layout.CXR_METADATA, pd.DataFrame({
        "dicom_id": d.images["dicom_id"], "subject_id": st["subject_id"].to_numpy()[s],
        "study_id": d.images["study_id"], "stay_id": st["stay_id"].to_numpy()[s],
        "split": st["split"].to_numpy()[s],
        "study_datetime": pd.Series(taken).dt.strftime("%Y-%m-%d %H:%M:%S"),
        "view_position": "AP", "hours": np.round(minute / 60.0, 6),
        "path": [layout.image(x) for x in d.images["dicom_id"]],
    }))  # fmt: skip
    write_notes(w, d.notes, st)


def _write_ehr(
    w: BenchmarkWriter, d: _Drawn, seeds: list[np.random.SeedSequence]
) -> dict[str, int]:
    """Each split's time series and discretized hours, cut at hour 24."""
    counts: dict[str, int] = {}
    split = d.stays["split"].to_numpy()
    for name, seed in zip(SPLITS, seeds, strict=True):
        sel = split == name
        sub = d.stays[sel].reset_index(drop=True)
        ts, index = make_timeseries(sub, d.phenotypes[sel], np.random.default_rng(seed))
        x = discretize_split(ts, index)
        plan = pd.DataFrame({"stay_id": sub["stay_id"], "cutoff_hours": HORIZON_MIN / 60, "published": 1})  # fmt: skip
        ts = cut_timeseries(ts, plan)
        x, index = cut_discretized(x, index, plan)
        w.write_csv(layout.timeseries(name), ts)
        w.write_npy(layout.discretized(name), x)
        w.write_csv(layout.discretized_index(name), split_index(index["stay_id"], index["n_hours"]))
        counts[f"timeseries_rows_{name}"] = len(ts)
        counts[f"hourly_rows_{name}"] = len(x)
    return counts


_LABEL_OF = {"mortality-24h": "mortality", "los-over-3d": "long_stay"}


def write_units(
    w: BenchmarkWriter, units: pd.DataFrame, scenarios: pd.DataFrame, suite: Suite
) -> dict[str, dict[str, int]]:
    """Unit lists (labels in train and val only), test labels and scenario files of the two
    tasks; ``units`` has one row per stay with ``split`` and the ``mortality`` and
    ``long_stay`` labels."""
    counts: dict[str, dict[str, int]] = {}
    cols = ["stay_id", "subject_id", "cxr_dicom_id", "has_cxr", "has_notes", "paired"]
    for task in suite.tasks:
        label = task.label_columns[0]
        df = units.rename(columns={_LABEL_OF[task.slug]: label})
        c: dict[str, int] = {}
        for name in SPLITS:
            part = df[df["split"] == name].reset_index(drop=True)
            if name == "test":
                w.write_csv(layout.units(task.slug, name), part[cols])
                w.write_csv(layout.test_labels(task.slug), part[["stay_id", "subject_id", label]])
                c["test_paired"] = int(part["paired"].sum())
            else:
                w.write_csv(layout.units(task.slug, name), part[[*cols, label]])
            c[name] = len(part)
        counts[task.slug] = {k: c[k] for k in (*SPLITS, "test_paired")}
        w.write_csv(layout.scenarios(task.slug), scenarios)
    return counts


def generate_yu(
    out: str | os.PathLike[str] | Store,
    *,
    scale: str = "demo",
    seed: int | None = 42,
    sealed: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate the synthetic Yu et al. benchmark into ``out``; returns its manifest.

    ``scale``: ``"demo"`` (seconds), ``"paper"`` (the MIMIC-IV-sized cohort of the MedMod
    generator: minutes) or ``"tiny"``. ``seed`` and ``sealed`` as in
    :func:`benchmark_data.synth.generate`: the same seed gives byte-identical files.
    """
    seed = checked_seed(scale, seed, sealed=sealed)
    say = Progress(progress)
    suite = builtin_suite(SUITE)
    d, streams = _draw(scale, seed, suite)
    say(f"drawn: {len(d.stays):,} stays, {len(d.images):,} images, {len(d.notes):,} reports")
    size = get_scale(SCALES[scale]).image_size
    with destination(out) as store:
        w = BenchmarkWriter(store)
        _write_tables(w, d)
        ehr_stats = _write_ehr(w, d, streams[6].spawn(len(SPLITS)))
        counts = write_units(w, d.units, d.scenarios, suite)
        render_images(w, d.images, d.params, size=size, rng=np.random.default_rng(streams[7]), progress=say)  # fmt: skip
        say(f"{len(d.images):,} images written")
        u = d.units
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
                "tasks": list(suite.task_slugs),
                "counts": counts,
                "scored_on": {t: "public" for t in suite.task_slugs},
                "prevalence": {
                    "mortality-24h": round(float(u["mortality"].mean()), 4),
                    "los-over-3d": round(float(u["long_stay"].mean()), 4),
                },
                "stats": {
                    "subjects": int(d.stays["subject_id"].nunique()),
                    "stays": len(d.stays),
                    "images": len(d.images),
                    "reports": len(d.notes),
                    "image_size": size,
                    "with_cxr": round(float(u["has_cxr"].mean()), 4),
                    "with_notes": round(float(u["has_notes"].mean()), 4),
                    "paired": round(float(u["paired"].mean()), 4),
                    **ehr_stats,
                },  # fmt: skip
            },
        )
    say("manifest written")
    return manifest


__all__ = [
    "GENERATOR_VERSION",
    "HORIZON_MIN",
    "checked_seed",
    "NAME",
    "SCALES",
    "first_day_cohort",
    "one_stay_per_test_patient",
    "generate_yu",
    "withheld_scenarios",
    "write_notes",
    "write_stays",
    "write_units",
]
