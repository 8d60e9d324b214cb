"""Chest X-ray studies of the stays and the findings each image shows.

About half the stays get no AP chest X-ray (as in MIMIC). The others get an admission film,
often within the first hours, and more during the stay, most for ventilated patients. Each
image's 14 CheXpert labels come from the stay's latent finding grades plus per-image change
(worse before death, better before discharge); the radiology report that gives the labels
is itself a noisy reading of the grades, and the renderer draws the grades, not the labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from benchmark_data.synth import cohort as C
from benchmark_data.synth.counts import fit_image_counts
from benchmark_data.synth.scales import Scale
from benchmark_data.tasks import FINDING_NAMES, SPLITS, slugify

FINDING_SLUGS: tuple[str, ...] = tuple(slugify(n) for n in FINDING_NAMES)

# Share of stays with at least one AP image (MIMIC: roughly half of ICU stays).
PAIRED_SHARE = 0.52

# Per-image prevalence of the 14 findings in MIMIC-CXR ICU AP films (U-zeros), rounded.
# No Finding and Support Devices follow from the others and from the devices drawn.
FINDING_PREVALENCE: dict[str, float] = {
    "atelectasis": 0.30,
    "cardiomegaly": 0.22,
    "consolidation": 0.08,
    "edema": 0.20,
    "enlarged_cardiomediastinum": 0.05,
    "fracture": 0.02,
    "lung_lesion": 0.03,
    "lung_opacity": 0.30,
    "pleural_effusion": 0.30,
    "pleural_other": 0.012,
    "pneumonia": 0.09,
    "pneumothorax": 0.05,
}
REPORT_NOISE_SD = 0.3
LUNG_BURDEN_FINDINGS = ("pleural_effusion", "edema", "consolidation")


def _softplus(x: np.ndarray, k: float = 3.0) -> np.ndarray:
    return np.logaddexp(0, k * x) / k


def schedule_images(stays: pd.DataFrame, scale: Scale, rng: np.random.Generator) -> pd.DataFrame:
    """AP images of every stay with each split's exact image count.

    Returns one row per image: ``stay`` (row of ``stays``), ``minute`` since ``intime``
    (before death, before the end of the stay), ``study_id`` and ``dicom_id``; sorted by
    stay row and time.
    """
    alive_h = stays["alive_min"].to_numpy() / 60.0
    vent = stays["vent"].to_numpy().astype(float)
    lin = (
        0.9 * vent + 0.5 * stays["sev"].to_numpy() + 0.4 * np.log(alive_h / 48)
        + 0.3 * stays["lung_burden"].to_numpy()
    )  # fmt: skip
    a = C._calibrate(lin, PAIRED_SHARE)
    paired = rng.random(len(stays)) < expit(a + lin)
    counts = np.zeros(len(stays), dtype=np.int64)
    split = stays["split"].to_numpy()
    for name in SPLITS:
        idx = np.flatnonzero((split == name) & paired)
        target = scale.targets(name).images
        rate = alive_h[idx] / 24 * (0.8 + 0.3 * vent[idx])
        lam = max(target - len(idx), 0) / max(rate.sum(), 1e-9)
        n0 = 1 + rng.poisson(lam * rate)
        counts[idx] = fit_image_counts(n0, alive_h[idx], target=target, rng=rng)
    stay = np.repeat(np.arange(len(stays)), counts)
    alive = stays["alive_min"].to_numpy()[stay]
    # An admission film within the first 12 h for most, then films spread over the stay.
    early = rng.random(len(stays)) < 0.75
    first_end = np.where(early, np.minimum(stays["alive_min"].to_numpy(), 720), stays["alive_min"])
    first = np.floor(rng.random(len(stays)) * first_end).astype(np.int64)
    start = first[stay]
    minute = start + np.floor(rng.random(len(stay)) * (alive - start)).astype(np.int64)
    is_first = np.r_[True, stay[1:] != stay[:-1]] if len(stay) else np.zeros(0, dtype=bool)
    minute[is_first] = start[is_first]
    order = np.lexsort((minute, stay))
    stay, minute = stay[order], minute[order]
    study = rng.choice(np.arange(50_000_000, 60_000_000, dtype=np.int64), len(stay), replace=False)
    words = rng.integers(0, 2**32, size=(len(stay), 5), dtype=np.uint64)
    dicom = ["-".join(f"{w:08x}" for w in row) for row in words.tolist()]
    if len(set(dicom)) != len(dicom):  # pragma: no cover - 160 random bits
        raise RuntimeError("duplicate dicom_id drawn")
    return pd.DataFrame({"stay": stay, "minute": minute, "study_id": study, "dicom_id": dicom})


def image_findings(
    images: pd.DataFrame, stays: pd.DataFrame, phenotypes: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, pd.DataFrame]:
    """Labels (n_images x 14, 0/1 in ``FINDING_NAMES`` order) and drawing parameters.

    The drawing parameters are extents (0 = absent; about 1 = clearly present), heart and
    mediastinum widths, the sides and places of localized findings and the devices seen.
    """
    n = len(images)
    s = images["stay"].to_numpy()
    n_stays = len(stays)
    t = images["minute"].to_numpy().astype(float)
    ph = phenotypes[s].astype(float)

    def col(name: str) -> np.ndarray:
        return stays[name].to_numpy()[s]

    los = col("los_min").astype(float)
    ramp = np.where(col("died"), np.clip(1 - (col("death_min") - t) / 2880, 0, 1), 0.0)
    ready = np.where(col("death_in_icu"), 0.0, np.clip(1 - (los - t) / 2880, 0, 1))
    vent_now = col("vent") & (t < col("vent_end_min"))

    def img_noise(sd: float) -> np.ndarray:
        return sd * rng.standard_normal(n)

    def stay_noise(sd: float) -> np.ndarray:
        return sd * rng.standard_normal(n_stays)[s]

    weight_z = (col("weight") - 80) / 19
    g = {
        "pleural_effusion": col("g_effusion") + img_noise(0.35) + 0.8 * ramp - 0.4 * ready,
        "edema": col("g_edema") + img_noise(0.35) + 0.8 * ramp - 0.4 * ready,
        "consolidation": col("g_consolidation") + img_noise(0.35) + 0.5 * ramp - 0.3 * ready,
        "atelectasis": (
            0.9 * vent_now
            + 0.5 * col("planned")
            + 0.4 * ph[:, C.P_PLEURISY]
            + 0.3 * weight_z
            + stay_noise(0.5)
            + img_noise(0.35)
        ),  # fmt: skip
        "cardiomegaly": col("g_cardiomegaly") + img_noise(0.15),
        "enlarged_cardiomediastinum": col("g_mediastinum") + img_noise(0.15),
        "pneumothorax": col("g_pneumothorax") + 0.3 * vent_now + img_noise(0.4),
        "lung_lesion": col("lesion") + img_noise(0.1),
        "fracture": col("g_fracture") + img_noise(0.1),
        "pleural_other": col("g_pleural_other") + img_noise(0.1),
    }
    g["pneumonia"] = g["consolidation"] + 1.0 * ph[:, C.P_PNEUMONIA] + img_noise(0.3)
    theta: dict[str, float] = {}
    labels: dict[str, np.ndarray] = {}

    def threshold(name: str, grade: np.ndarray) -> None:
        read = grade + img_noise(REPORT_NOISE_SD)
        theta[name] = float(np.quantile(read, 1 - FINDING_PREVALENCE[name])) if n else 0.0
        labels[name] = (read > theta[name]).astype(np.int8)

    for name, grade in g.items():
        threshold(name, grade)
    opacity = np.max(
        [g[k] - theta[k] for k in ("consolidation", "edema", "atelectasis", "pneumonia",
                                   "lung_lesion")], axis=0,
    ) if n else np.zeros(0)  # fmt: skip
    threshold("lung_opacity", opacity)

    # Devices: endotracheal and nasogastric tubes while ventilated, central lines for the
    # sickest, pacemakers for conduction disorders, sternal wires after heart surgery.
    sev_s = stays["sev"].to_numpy()
    cvc_p = expit(-2.6 + 1.0 * sev_s + 1.2 * phenotypes[:, C.P_SHOCK]
                  + 0.6 * phenotypes[:, C.P_SEPSIS])  # fmt: skip
    cvc = (rng.random(n_stays) < cvc_p)[s]
    ng_stay = rng.random(n_stays)[s]
    ett = vent_now
    ng = np.where(ett, ng_stay < 0.6, ng_stay < 0.05)
    pacer_p = 0.35 * phenotypes[:, C.P_CONDUCTION] + 0.08 * phenotypes[:, C.P_DYSRHYTHMIA]
    pacer = (rng.random(n_stays) < pacer_p)[s]
    wires = (rng.random(n_stays) < 0.35 * phenotypes[:, C.P_CORONARY])[s]
    any_device = ett | ng | cvc | pacer | wires
    reported = rng.random(n)
    labels["support_devices"] = np.where(any_device, reported < 0.97, reported < 0.02).astype(
        np.int8
    )
    pathology = [k for k in FINDING_SLUGS if k not in ("no_finding", "support_devices")]
    labels["no_finding"] = (np.stack([labels[k] for k in pathology]).sum(0) == 0).astype(np.int8)
    y = np.stack([labels[k] for k in FINDING_SLUGS], axis=1)

    # Drawn extent grows smoothly with the grade: the lung findings that carry mortality
    # risk show in graded amounts below the reporting threshold too; the others mostly above.
    extent = {k: _softplus(g[k] - theta[k] + 0.25) for k in g}
    for k in LUNG_BURDEN_FINDINGS:
        extent[k] = _softplus(g[k] - theta[k] + 0.5, 2.0)
    side_eff = rng.choice(3, size=n_stays, p=(0.55, 0.25, 0.20))[s]  # both, right, left
    params = pd.DataFrame(
        {
            "effusion_right": extent["pleural_effusion"] * (side_eff != 2),
            "effusion_left": extent["pleural_effusion"] * (side_eff != 1) * 0.9,
            "edema": extent["edema"],
            "consolidation": extent["consolidation"],
            "pneumonia": extent["pneumonia"],
            "atelectasis": extent["atelectasis"],
            "lesion": extent["lung_lesion"],
            "pneumothorax": extent["pneumothorax"],
            "fracture": extent["fracture"],
            "pleural_other": extent["pleural_other"],
            "heart_width": np.clip(1 + 0.16 * (g["cardiomegaly"] - theta["cardiomegaly"] + 0.3),
                                   0.8, 1.45),
            "mediastinum_width": np.clip(
                1 + 0.25 * (g["enlarged_cardiomediastinum"] - theta["enlarged_cardiomediastinum"]
                            + 0.6), 0.8, 1.7),
            "hyperinflation": 0.08 * ph[:, C.P_COPD],
            "consolidation_lobe": rng.integers(0, 5, n_stays)[s],
            "right_side": (rng.random(n_stays) < 0.5)[s],
            "lesion_x": (rng.uniform(0.18, 0.55, n_stays) * rng.choice([-1, 1], n_stays))[s],
            "lesion_y": rng.uniform(-0.45, 0.25, n_stays)[s],
            "ett": ett,
            "ng": ng,
            "cvc": cvc,
            "pacer": pacer,
            "wires": wires,
            "ecg": rng.random(n) < 0.6,
            "noise": col("img_noise"),
            "rotation": img_noise(0.025) * (1 + (col("age") >= 80)),
        }
    )  # fmt: skip
    return y, params
