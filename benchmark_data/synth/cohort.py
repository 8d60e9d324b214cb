"""Patients, ICU stays, demographics and the latent clinical state behind every label.

Each stay gets a latent state: acute severity (seen through the vital signs), chronic
burdens, infection, a lung-injury factor seen only on the chest X-ray, and the image
findings' latent grades. The 25 phenotypes, ventilation, the stay's length, death and its
timing all derive from that state, so both modalities observe parts of what decides the
labels and neither sees all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr, ndtri

from benchmark_data.synth.counts import (
    LONG_STAY_MINUTES,
    choose_top_k,
    fit_losses,
    fit_row_total,
    hourly_rows,
    split_quantiles,
)
from benchmark_data.synth.scales import Scale
from benchmark_data.tasks import PHENOTYPE_NAMES, RACE_GROUPS, SPLITS, slugify

# Stays per patient: MIMIC-IV ICU patients have 1.3 stays on average.
STAYS_PER_SUBJECT_P = (0.80, 0.14, 0.04, 0.02)

RACE_P = (0.66, 0.11, 0.04, 0.03, 0.16)  # in RACE_GROUPS order
ADMISSION_TYPES = (
    "EW EMER.", "URGENT", "OBSERVATION ADMIT", "SURGICAL SAME DAY ADMISSION", "DIRECT EMER.",
    "ELECTIVE", "EU OBSERVATION", "DIRECT OBSERVATION",
)  # fmt: skip
ADMISSION_P = (0.50, 0.18, 0.08, 0.09, 0.06, 0.05, 0.02, 0.02)
PLANNED_ADMISSIONS = ("SURGICAL SAME DAY ADMISSION", "ELECTIVE")

# Length of stay: 2 h + lognormal hours, fitted to MedMod's share of stays >= 48 h (57%) and
# its ~100 hourly rows per stay; capped at 60 days.
LOS_MU, LOS_SIGMA, LOS_MIN_H, LOS_MAX_H = 4.0333, 1.106, 2.0, 1440.0

# In-hospital mortality among stays of >= 48 h (the mortality task) and shorter ones, and the
# share of deaths that happen in the ICU (the others after discharge to the ward).
MORTALITY_LONG, MORTALITY_SHORT, DEATH_IN_ICU_P = 0.13, 0.09, 0.72

# Phenotype prevalence (MedMod / mimic3-benchmarks, rounded) and the latent factors and
# earlier phenotypes that raise or lower each one's log-odds.
PHENOTYPES: tuple[tuple[str, float, dict[str, float]], ...] = (
    ("acute_and_unspecified_renal_failure", 0.21, {"sev": 0.8, "renal": 0.9, "infect": 0.3}),
    ("acute_cerebrovascular_disease", 0.07, {"neuro": 1.6, "cardio": 0.3, "age": 0.3}),
    ("acute_myocardial_infarction", 0.09, {"cardiac": 1.3, "cardio": 0.4}),
    ("cardiac_dysrhythmias", 0.34, {"cardiac": 0.9, "age": 0.6, "cardio": 0.3}),
    ("chronic_kidney_disease", 0.14, {"renal": 1.6, "age": 0.4, "metab": 0.3}),
    ("chronic_obstructive_pulmonary_disease_and_bronchiectasis", 0.12, {"lung": 1.6, "age": 0.3}),
    ("complications_of_surgical_procedures_or_medical_care", 0.20, {"planned": 1.5, "sev": 0.3}),
    ("conduction_disorders", 0.07, {"cardiac": 0.6, "age": 0.5}),
    ("congestive_heart_failure_nonhypertensive", 0.27,
     {"cardio": 1.1, "cardiac": 0.5, "age": 0.3, "renal": 0.3}),
    ("coronary_atherosclerosis_and_other_heart_disease", 0.31,
     {"cardio": 1.4, "male": 0.5, "age": 0.5, "metab": 0.3}),
    ("diabetes_mellitus_with_complications", 0.09, {"metab": 1.6, "renal": 0.5}),
    ("diabetes_mellitus_without_complication", 0.19,
     {"metab": 1.3, "diabetes_mellitus_with_complications": -2.5}),
    ("disorders_of_lipid_metabolism", 0.31, {"metab": 0.8, "cardio": 0.7, "age": 0.3}),
    ("hypertension_with_complications_and_secondary_hypertension", 0.14,
     {"renal": 1.0, "cardio": 0.6}),
    ("essential_hypertension", 0.40,
     {"cardio": 0.5, "age": 0.3, "metab": 0.3,
      "hypertension_with_complications_and_secondary_hypertension": -2.0}),
    ("fluid_and_electrolyte_disorders", 0.44, {"sev": 0.7, "renal": 0.5, "infect": 0.3}),
    ("gastrointestinal_hemorrhage", 0.07, {"bleed": 1.8, "liver": 0.5}),
    ("other_liver_diseases", 0.08, {"liver": 1.6, "bleed": 0.3}),
    ("other_lower_respiratory_disease", 0.06, {"lung": 0.7, "infect": 0.5}),
    ("other_upper_respiratory_disease", 0.04, {"lung": 0.5, "infect": 0.3}),
    ("pleurisy_pneumothorax_pulmonary_collapse", 0.08,
     {"lunginj": 0.6, "lung": 0.6, "planned": 0.3}),
    ("pneumonia_except_that_caused_by_tuberculosis_or_sexually_transmitted_disease", 0.14,
     {"infect": 1.2, "lung": 0.4, "lunginj": 0.4}),
    ("respiratory_failure_insufficiency_arrest_adult", 0.20,
     {"sev": 1.0, "lung": 0.6, "lunginj": 0.5, "infect": 0.3}),
    ("septicemia_except_in_labor", 0.14, {"infect": 1.4, "sev": 0.7}),
    ("shock", 0.08, {"sev": 1.4, "infect": 0.5, "bleed": 0.3}),
)  # fmt: skip
PHENOTYPE_SLUGS: tuple[str, ...] = tuple(slugify(n) for n in PHENOTYPE_NAMES)
assert sorted(p[0] for p in PHENOTYPES) == sorted(PHENOTYPE_SLUGS)

# Short names of the phenotypes the generator uses to shape observations.
P_RENAL_FAILURE, P_CEREBRO, P_AMI, P_DYSRHYTHMIA, P_CKD, P_COPD, P_SURGICAL = range(7)
P_CONDUCTION, P_CHF, P_CORONARY, P_DM_COMPL, P_DM, P_LIPID, P_HTN = range(7, 14)
P_FLUID, P_GI_BLEED, P_HTN_COMPL, P_LIVER, P_LOWER_RESP, P_UPPER_RESP = range(14, 20)
P_PLEURISY, P_PNEUMONIA, P_RESP_FAILURE, P_SEPSIS, P_SHOCK = range(20, 25)
assert all(
    PHENOTYPE_SLUGS[i].startswith(prefix)
    for i, prefix in ((P_RENAL_FAILURE, "acute_and"), (P_CHF, "congestive"),
                      (P_HTN, "essential"), (P_HTN_COMPL, "hypertension_with"), (P_SHOCK, "shock"))
)  # fmt: skip


@dataclass
class Cohort:
    """Every stay of the benchmark, one row each, sorted by ``stay_id``.

    ``stays`` holds ids, split, times (minutes since ``intime``), demographics, outcomes and
    the latent state; ``phenotypes`` is (n_stays, 25) 0/1 in ``PHENOTYPE_NAMES`` order.
    """

    stays: pd.DataFrame
    phenotypes: np.ndarray


def _calibrate(lin: np.ndarray, prevalence: float) -> float:
    """Intercept ``a`` with ``mean(expit(a + lin)) == prevalence`` (bisection)."""
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if expit(mid + lin).mean() < prevalence:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _unique_ids(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    return rng.choice(np.arange(low, high, dtype=np.int64), size=n, replace=False)


def _structure(scale: Scale, rng: np.random.Generator) -> pd.DataFrame:
    """Patients and their stays per split, with exactly the scale's stay counts."""
    parts = []
    n_subjects = 0
    for split in SPLITS:
        target = scale.targets(split).stays
        counts = rng.choice(
            np.arange(1, len(STAYS_PER_SUBJECT_P) + 1), size=target, p=STAYS_PER_SUBJECT_P
        )
        cum = np.cumsum(counts)
        n = int(np.searchsorted(cum, target) + 1)
        counts = counts[:n].copy()
        counts[-1] -= int(cum[n - 1] - target)
        subj = np.repeat(np.arange(n_subjects, n_subjects + n), counts)
        episode = np.concatenate([np.arange(1, c + 1) for c in counts])
        parts.append(pd.DataFrame({"subject": subj, "episode": episode, "split": split}))
        n_subjects += n
    df = pd.concat(parts, ignore_index=True)
    df["n_episodes"] = df.groupby("subject")["episode"].transform("max")
    subject_ids = _unique_ids(rng, n_subjects, 10_000_000, 20_000_000)
    df["subject_id"] = subject_ids[df["subject"].to_numpy()]
    df["stay_id"] = _unique_ids(rng, len(df), 30_000_000, 40_000_000)
    df["hadm_id"] = _unique_ids(rng, len(df), 20_000_000, 30_000_000)
    return df


def _demographics(df: pd.DataFrame, rng: np.random.Generator) -> None:
    subj = df["subject"].to_numpy()
    n_subj = subj.max() + 1
    first_age = 18 + 73 * rng.beta(2.8, 1.7, n_subj)
    male = rng.random(n_subj) < 0.56
    race = rng.choice(len(RACE_GROUPS), size=n_subj, p=RACE_P)
    young = first_age < 65
    ins_young = rng.choice(3, size=n_subj, p=(0.12, 0.20, 0.68))
    ins_old = rng.choice(3, size=n_subj, p=(0.82, 0.06, 0.12))
    insurance = np.where(young, ins_young, ins_old)
    height = np.where(male, rng.normal(176, 7, n_subj), rng.normal(162, 7, n_subj))
    weight = np.where(male, 86.0, 74.0) + 19 * rng.standard_normal(n_subj)
    df["male"] = male[subj]
    df["gender"] = np.where(df["male"], "M", "F")
    df["race"] = np.asarray(RACE_GROUPS)[race[subj]]
    df["insurance"] = np.asarray(["Medicare", "Medicaid", "Other"])[insurance[subj]]
    df["height"] = np.clip(height, 145, 205)[subj]
    df["weight"] = np.clip(weight, 40, 200)[subj] + rng.normal(0, 2, len(df))
    df["first_age"] = first_age[subj]
    df["admission_type"] = np.asarray(ADMISSION_TYPES)[
        rng.choice(len(ADMISSION_TYPES), size=len(df), p=ADMISSION_P)
    ]


def _latents(df: pd.DataFrame, rng: np.random.Generator) -> None:
    """Subject-level chronic burdens and stay-level acute state (z-scores)."""
    subj = df["subject"].to_numpy()
    n_subj, n = subj.max() + 1, len(df)
    age_z = (df["first_age"].to_numpy() - 64) / 16

    def chronic() -> np.ndarray:
        return rng.standard_normal(n_subj)[subj]

    df["planned"] = df["admission_type"].isin(PLANNED_ADMISSIONS).astype(float)
    emergency = df["admission_type"].str.contains("EMER").to_numpy().astype(float)
    df["cardio"] = chronic() + 0.5 * age_z
    df["metab"] = chronic()
    df["renal"] = chronic() + 0.3 * age_z + 0.3 * df["metab"]
    df["lung"] = chronic()
    df["liver"] = chronic()
    df["lesion"] = chronic() + 0.3 * df["lung"] + 0.3 * age_z
    df["frailty"] = chronic() + 0.3 * age_z
    df["sev"] = rng.standard_normal(n) + 0.3 * emergency - 0.5 * df["planned"] + 0.3 * df["frailty"]
    df["infect"] = rng.standard_normal(n)
    df["cardiac"] = 0.6 * rng.standard_normal(n) + 0.6 * df["cardio"]
    df["neuro"] = rng.standard_normal(n)
    df["bleed"] = rng.standard_normal(n)
    # Lung injury: seen only on the chest X-ray (effusion, edema, consolidation extent).
    df["lunginj"] = rng.standard_normal(n)


def _phenotypes(df: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    factors = {
        k: df[k].to_numpy(dtype=float)
        for k in ("sev", "renal", "infect", "neuro", "cardio", "cardiac", "lung", "planned",
                  "metab", "bleed", "liver", "lunginj", "male")
    }  # fmt: skip
    factors["age"] = (df["first_age"].to_numpy() - 64) / 16
    labels: dict[str, np.ndarray] = {}
    for slug, prevalence, weights in PHENOTYPES:
        lin = np.zeros(len(df))
        for name, w in weights.items():
            lin += w * (labels[name] if name in labels else factors[name])
        a = _calibrate(lin, prevalence)
        labels[slug] = (rng.random(len(df)) < expit(a + lin)).astype(np.float64)
    return np.stack([labels[s] for s in PHENOTYPE_SLUGS], axis=1).astype(np.int8)


def _image_latents(df: pd.DataFrame, ph: np.ndarray, rng: np.random.Generator) -> None:
    """Latent grades of the chest X-ray findings (stay level; images add their own noise)."""
    n = len(df)
    age_z = (df["first_age"].to_numpy() - 64) / 16
    inj = df["lunginj"].to_numpy()

    def noise(sd: float = 0.6) -> np.ndarray:
        return sd * rng.standard_normal(n)

    df["g_effusion"] = (
        0.8 * ph[:, P_CHF] + 0.5 * ph[:, P_PLEURISY] + 0.3 * ph[:, P_LIVER]
        + 0.3 * ph[:, P_SEPSIS] + 0.6 * inj + noise()
    )  # fmt: skip
    df["g_edema"] = (
        0.9 * ph[:, P_CHF] + 0.4 * ph[:, P_RENAL_FAILURE] + 0.3 * ph[:, P_FLUID] + 0.6 * inj
        + noise()
    )  # fmt: skip
    df["g_consolidation"] = (
        1.3 * ph[:, P_PNEUMONIA] + 0.3 * ph[:, P_LOWER_RESP] + 0.6 * inj + noise()
    )
    df["g_cardiomegaly"] = 1.0 * ph[:, P_CHF] + 0.4 * df["cardio"] + 0.3 * age_z + noise()
    df["g_mediastinum"] = 0.5 * df["g_cardiomegaly"] + 0.3 * age_z + noise(0.8)
    df["g_pneumothorax"] = 1.6 * ph[:, P_PLEURISY] + 0.3 * df["lung"] + noise()
    df["g_fracture"] = noise(1.0) + 0.3 * age_z
    df["g_pleural_other"] = noise(1.0) + 0.3 * df["lung"]
    # What the mortality risk sees of the lungs: visible only on the image.
    df["lung_burden"] = (df["g_effusion"] + df["g_edema"] + 0.5 * df["g_consolidation"]) / 2.5


def _ventilation(df: pd.DataFrame, ph: np.ndarray, rng: np.random.Generator) -> None:
    lin = (
        1.0 * df["sev"] + 1.8 * ph[:, P_RESP_FAILURE] + 0.8 * np.maximum(df["neuro"], 0)
        + 0.8 * df["planned"]
    ).to_numpy()  # fmt: skip
    a = _calibrate(lin, 0.40)
    df["vent"] = rng.random(len(df)) < expit(a + lin)


def _los_quantiles(df: pd.DataFrame, ph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    z = (
        0.5 * df["sev"] + 0.5 * df["vent"] + 0.3 * df["infect"] + 0.25 * df["lung_burden"]
        - 0.3 * df["planned"] + 0.3 * ph[:, P_SEPSIS]
    ).to_numpy()  # fmt: skip
    z = (z - z.mean()) / z.std()
    rho = 0.55
    return np.asarray(expit(1.702 * (rho * z + np.sqrt(1 - rho**2) * rng.standard_normal(len(z)))))


def _los_minutes(u: np.ndarray) -> np.ndarray:
    hours = LOS_MIN_H + np.exp(LOS_MU + LOS_SIGMA * ndtri(u))
    return np.round(np.minimum(hours, LOS_MAX_H) * 60).astype(np.int64)


def _outcomes(df: pd.DataFrame, ph: np.ndarray, scale: Scale, rng: np.random.Generator) -> None:
    """Length of stay, death and its time, with each split's exact unit counts."""
    n = len(df)
    u = _los_quantiles(df, ph, rng)
    cut = float(np.clip((np.log(48 - LOS_MIN_H) - LOS_MU) / LOS_SIGMA, -8, 8))
    cut_u = float(ndtr(cut))
    los = np.zeros(n, dtype=np.int64)
    age_z = (df["first_age"].to_numpy() - 64) / 16
    risk = (
        0.9 * df["sev"] + 1.4 * df["lung_burden"] + 0.45 * age_z + 0.5 * ph[:, P_SHOCK]
        + 0.4 * ph[:, P_SEPSIS] + 0.3 * ph[:, P_RESP_FAILURE] + 0.3 * ph[:, P_CEREBRO]
        + 0.4 * rng.standard_normal(n)
    ).to_numpy()  # fmt: skip
    died = np.zeros(n, dtype=bool)
    in_icu = rng.random(n) < DEATH_IN_ICU_P
    death = np.full(n, -1, dtype=np.int64)
    last_stay = (df["episode"] == df["n_episodes"]).to_numpy()
    for split in SPLITS:
        t = scale.targets(split)
        idx = np.flatnonzero(df["split"].to_numpy() == split)
        uq = split_quantiles(u[idx], n_top=t.long_stays, cut=cut_u, rng=rng)
        m = _los_minutes(uq)
        top = uq >= cut_u
        m = np.where(top, np.maximum(m, LONG_STAY_MINUTES), np.minimum(m, LONG_STAY_MINUTES - 1))
        m = fit_row_total(m, target=t.los_rows, rng=rng)
        los[idx] = m
        long = m >= LONG_STAY_MINUTES
        # Only a patient's last stay can end in death.
        d = np.zeros(len(idx), dtype=bool)
        for group, rate in ((long, MORTALITY_LONG), (~long, MORTALITY_SHORT)):
            k = int(round(rate * group.sum()))
            d |= choose_top_k(risk[idx], k=k, eligible=group & last_stay[idx], rng=rng)
        died[idx] = d
        # Deaths in the ICU end the stay: the patient dies k whole hours before the stay's
        # last hour, which removes k decompensation rows.
        icu = d & in_icu[idx]
        lost_target = t.los_rows - t.decompensation_rows
        if hourly_rows(m[icu]).sum() < lost_target:
            # Small splits: move deaths on the ward into the ICU until the rows can be met.
            ward = np.flatnonzero(d & ~icu)
            ward = ward[np.argsort(-hourly_rows(m[ward]), kind="stable")]
            need = np.cumsum(hourly_rows(m[ward])) + hourly_rows(m[icu]).sum()
            icu[ward[: int(np.searchsorted(need, lost_target)) + 1]] = True
            in_icu[idx] = np.where(d, icu, in_icu[idx])
        rows = hourly_rows(m[icu])
        k_lost = fit_losses(rows, target=lost_target, mean=lost_target / max(icu.sum(), 1), rng=rng)
        last_hour = m[icu] // 60
        frac = m[icu] - 60 * last_hour
        death_icu = 60 * (last_hour - k_lost) + np.floor(rng.random(icu.sum()) * frac)
        # Stays too short for hourly rows: the death still comes at or before the end.
        death_icu = np.minimum(death_icu, m[icu]).astype(np.int64)
        after = d & ~icu
        death_after = m[after] + np.round(60 * (0.5 + rng.exponential(60.0, after.sum())))
        dd = np.full(len(idx), -1, dtype=np.int64)
        dd[icu] = death_icu
        dd[after] = death_after.astype(np.int64)
        death[idx] = dd
    df["los_min"] = los
    df["died"] = died
    df["death_in_icu"] = died & in_icu
    df["death_min"] = death
    # Minutes during which the patient is alive in the ICU (measurements, images).
    df["alive_min"] = np.where(df["death_in_icu"], np.maximum(death, 1), los)
    df["risk"] = risk


def _times(df: pd.DataFrame, rng: np.random.Generator) -> None:
    """``intime`` of every stay (a patient's stays in order, apart by days to years), age at
    admission, and the end of mechanical ventilation."""
    n = len(df)
    start = np.datetime64("2110-01-01T00:00", "m")
    span = int((np.datetime64("2200-01-01T00:00", "m") - start).astype(np.int64))
    gap = np.round(1440 * (2 + rng.exponential(250.0, n))).astype(np.int64)
    first = rng.integers(0, span, n)
    order = np.lexsort((df["episode"].to_numpy(), df["subject"].to_numpy()))
    offset = np.zeros(n, dtype=np.int64)
    los, ep = df["los_min"].to_numpy(), df["episode"].to_numpy()
    subj = df["subject"].to_numpy()
    for pos, i in enumerate(order):  # patients have few stays; one pass in stay order
        if ep[i] == 1:
            offset[i] = first[i]
        else:
            prev = order[pos - 1]
            assert subj[prev] == subj[i]
            offset[i] = offset[prev] + los[prev] + gap[i]
    df["intime"] = start + offset.astype("timedelta64[m]")
    years = (offset - offset[order][np.searchsorted(subj[order], subj, side="left")]) / 525_960
    df["age"] = np.minimum(np.floor(df["first_age"].to_numpy() + years), 91).astype(np.int64)
    # Ventilated survivors are extubated 4-48 h before discharge.
    gap_h = rng.uniform(4, 48, n)
    end = np.where(df["died"], df["alive_min"], np.maximum(0.4 * los, los - 60 * gap_h)).astype(
        np.int64
    )
    df["vent_end_min"] = np.where(df["vent"], end, 0)


def _subgroup_noise(df: pd.DataFrame) -> None:
    """Data quality differs by group, so fairness gaps come from the data itself.

    Vital signs are noisier and sparser for Medicaid patients, for the HISPANIC and OTHER
    groups and for patients over 80; pulse oximetry reads high and flat for BLACK patients
    (occult hypoxemia); X-rays of heavier and older patients are noisier.
    """
    medicaid = (df["insurance"] == "Medicaid").to_numpy()
    race_noisy = df["race"].isin(["HISPANIC", "OTHER"]).to_numpy()
    old = (df["age"] >= 80).to_numpy()
    df["ehr_noise"] = 1 + 0.8 * medicaid + 0.5 * race_noisy + 0.4 * old
    df["ehr_keep"] = 1 - 0.3 * medicaid - 0.15 * race_noisy - 0.15 * old
    weight_z = (df["weight"].to_numpy() - 80) / 19
    df["img_noise"] = 1 + 0.5 * old + 0.4 * np.maximum(weight_z, 0)


def make_cohort(scale: Scale, rng: np.random.Generator) -> Cohort:
    """All stays of a benchmark at ``scale``, drawn from ``rng``."""
    df = _structure(scale, rng)
    _demographics(df, rng)
    _latents(df, rng)
    ph = _phenotypes(df, rng)
    _image_latents(df, ph, rng)
    _ventilation(df, ph, rng)
    _outcomes(df, ph, scale, rng)
    _times(df, rng)
    _subgroup_noise(df)
    order = np.argsort(df["stay_id"].to_numpy(), kind="stable")
    df = df.iloc[order].reset_index(drop=True)
    return Cohort(stays=df, phenotypes=ph[order])
