"""Synthetic clinical notes, written from the same latent patient state as the time series
and the chest X-rays.

Four kinds, as in MIMIC-IV-Note: a **radiology** report for each chest X-ray (charted at the
image, stored when it is signed), **progress** notes by the physicians about once a day,
**nursing** notes about every 8 to 12 hours, and the **discharge** summary (charted at the
end of the stay, stored after it). Each note has a chart time and a store time (minutes
since the stay's ICU admission); a note becomes known at its store time.

What the text holds:

- **Radiology reports** state the image's findings (its labels, which are mined from the
  report) in varied wording and severity words, with negations ("No pneumothorax."), hedges
  for findings near the reading threshold ("cannot exclude"), comparisons with the prior
  study of the stay, the devices seen, and boilerplate (examination, indication, sign-off).
- **Progress and nursing notes** describe the acute state the time series also shows
  (infection, mental status, kidneys, bleeding) in words, and one thing **only the text
  holds**: the goals-of-care conversation (a latent that raises the risk of death and is in
  no vital sign or image), so notes add to EHR and images.
- **Documentation differs by group**: the share of progress and nursing notes written, and
  how many topics each covers, is lower for the groups whose vital signs are also sparser
  (``ehr_keep``), so subgroups differ in how much is documented.
- **Noise**: dropped words and typing slips at a low rate, and irrelevant boilerplate.

The discharge summary names the stay's diagnoses and how it ended: it is a leak for any
task predicted before discharge, and the leakage rules (:mod:`benchmark_data.notes`) keep it
out. Everything is drawn from the generator passed in: one seed gives the same notes, byte
for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from benchmark_data.tasks import FINDING_NAMES, PHENOTYPE_NAMES, slugify

NOTE_TYPES: tuple[str, ...] = ("radiology", "progress", "nursing", "discharge")
NOTE_COLUMNS: tuple[str, ...] = (
    "note_id", "stay_id", "subject_id", "note_type", "note_seq", "chart_minute",
    "store_minute", "study_id", "text",
)  # fmt: skip

FINDING_SLUGS = tuple(slugify(n) for n in FINDING_NAMES)
# Goals-of-care conversations rise over the last five days before a death.
GOC_WINDOW_MIN = 5 * 24 * 60

# How a finding is said: present (by severity), absent (negated) and uncertain (hedged).
_PRESENT: dict[str, tuple[str, ...]] = {
    "atelectasis": ("{sev} bibasilar atelectasis", "{sev} atelectasis at the {side} base",
                    "{sev} subsegmental atelectasis"),
    "cardiomegaly": ("the heart is {sev} enlarged", "{sev} cardiomegaly",
                     "cardiac silhouette is {sev} enlarged"),
    "consolidation": ("{sev} consolidation in the {side} lower lobe", "{sev} airspace consolidation",
                      "{sev} {side} basilar consolidation"),
    "edema": ("{sev} pulmonary edema", "{sev} interstitial edema",
              "{sev} pulmonary vascular congestion with edema"),
    "enlarged_cardiomediastinum": ("the mediastinum is {sev} widened",
                                   "{sev} enlargement of the cardiomediastinal silhouette"),
    "fracture": ("{sev} displaced rib fracture on the {side}", "old healed {side} rib fractures"),
    "lung_lesion": ("a {sev} nodular opacity in the {side} upper lobe", "{sev} pulmonary nodule on the {side}"),  # fmt: skip
    "lung_opacity": ("{sev} opacities in the {side} lung", "{sev} patchy opacity at the {side} base"),  # fmt: skip
    "pleural_effusion": ("{sev} {side} pleural effusion", "{sev} {side} effusion",
                         "{side} pleural effusion, {sev}"),
    "pleural_other": ("{sev} pleural thickening on the {side}", "{side} apical pleural scarring"),
    "pneumonia": ("findings concerning for pneumonia in the {side} lower lobe",
                  "{sev} opacity compatible with pneumonia", "{side} lower lobe pneumonia"),
    "pneumothorax": ("{sev} {side} pneumothorax", "{sev} {side} apical pneumothorax"),
}  # fmt: skip
_ABSENT: dict[str, tuple[str, ...]] = {
    "atelectasis": ("No atelectasis.",),
    "cardiomegaly": ("Heart size is normal.", "The cardiac silhouette is within normal limits."),
    "consolidation": ("No focal consolidation.", "No consolidation is seen."),
    "edema": ("No pulmonary edema.", "No evidence of edema."),
    "enlarged_cardiomediastinum": ("Mediastinal contours are normal.",),
    "fracture": ("No acute osseous abnormality.", "No displaced fracture."),
    "lung_lesion": ("No suspicious nodule.",),
    "lung_opacity": ("Lungs are clear.",),
    "pleural_effusion": ("No pleural effusion.", "No effusion.", "Costophrenic angles are sharp."),
    "pleural_other": ("No pleural abnormality.",),
    "pneumonia": ("No evidence of pneumonia.",),
    "pneumothorax": ("No pneumothorax.", "There is no pneumothorax.", "No PTX."),
}
_HEDGES: tuple[str, ...] = (
    "cannot exclude {what}",
    "possible {what}",
    "{what} is not excluded",
    "questionable {what}",
    "likely {what}",
)
_HEDGE_NOUNS: dict[str, str] = {
    "atelectasis": "atelectasis", "cardiomegaly": "mild cardiomegaly",
    "consolidation": "early consolidation", "edema": "mild edema",
    "enlarged_cardiomediastinum": "mediastinal widening", "fracture": "a rib fracture",
    "lung_lesion": "a small nodule", "lung_opacity": "a subtle opacity",
    "pleural_effusion": "a small effusion", "pleural_other": "pleural thickening",
    "pneumonia": "pneumonia", "pneumothorax": "a tiny pneumothorax",
}  # fmt: skip
_IMPRESSION: dict[str, str] = {
    "atelectasis": "atelectasis", "cardiomegaly": "cardiomegaly",
    "consolidation": "consolidation", "edema": "pulmonary edema",
    "enlarged_cardiomediastinum": "widened mediastinum", "fracture": "rib fracture",
    "lung_lesion": "pulmonary nodule", "lung_opacity": "lung opacity",
    "pleural_effusion": "pleural effusion", "pleural_other": "pleural thickening",
    "pneumonia": "pneumonia", "pneumothorax": "pneumothorax",
}  # fmt: skip
_SEVERITY = ((0.6, ("trace", "minimal", "small")), (1.2, ("mild", "small", "moderate")),
             (np.inf, ("moderate", "large", "severe", "extensive")))  # fmt: skip
_INDICATIONS = (
    "Respiratory distress.",
    "Evaluate for interval change.",
    "Line placement.",
    "Hypoxia.",
    "Fever, evaluate for pneumonia.",
    "Post intubation.",
    "Shortness of breath.",
)
_SIGNOFF = (
    "I have personally reviewed the images and agree with the findings.",
    "Findings discussed with the ICU team by telephone.",
    "Dictated and signed electronically.",
    "",
)
_DEVICES = {
    "ett": "Endotracheal tube terminates {d} cm above the carina.",
    "ng": "Enteric tube courses below the diaphragm.",
    "cvc": "Right internal jugular central line tip in the SVC.",
    "pacer": "Left chest wall pacemaker with leads in good position.",
    "wires": "Median sternotomy wires are intact.",
}
_BOILERPLATE = (
    "Patient seen and examined at the bedside.", "Plan discussed with the attending.",
    "Remainder of the exam unchanged.", "Please see flowsheet for details.",
    "Lines: reviewed.", "Prophylaxis: SQ heparin, PPI.", "Code status reviewed.",
)  # fmt: skip


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _severity(extent: float, rng: np.random.Generator) -> str:
    for upper, words in _SEVERITY:
        if extent < upper:
            return _pick(rng, words)
    return "moderate"  # pragma: no cover


def _noisy(text: str, rng: np.random.Generator, rate: float = 0.01) -> str:
    """Typing slips: a few words dropped or with two letters swapped."""
    words = text.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < rate and len(words) > 8:
            continue
        if r < 2 * rate and len(w) > 4:
            i = int(rng.integers(1, len(w) - 2))
            w = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
        out.append(w)
    return " ".join(out)


def radiology_report(
    labels: dict[str, int],
    extents: dict[str, float],
    devices: dict[str, bool],
    *,
    prior: dict[str, float] | None,
    rng: np.random.Generator,
    history: str = "",
) -> str:
    """The report of one chest X-ray: its labels said in words, the devices, a comparison
    with the prior study's extents (None: the stay's first image), and boilerplate.
    ``history`` is the clinical history the requisition gives, written before the reason
    for the examination."""
    lines = [
        _pick(rng, ("EXAMINATION: CHEST (PORTABLE AP)", "EXAM: Chest radiograph, single AP view",
                    "CHEST PORT. LINE PLACEMENT")),
        f"INDICATION: {history + ' ' if history else ''}{_pick(rng, _INDICATIONS)}",
        "COMPARISON: " + ("Prior study from earlier this admission." if prior else "None."),
        "FINDINGS:",
    ]  # fmt: skip
    said: list[str] = []
    present = [k for k in _PRESENT if labels.get(k)]
    for k in present:
        extent = float(extents.get(k, 1.0))
        side = _pick(rng, ("right", "left", "bilateral"))
        what = _pick(rng, _PRESENT[k]).format(sev=_severity(extent, rng), side=side)
        if extent < 0.35 and rng.random() < 0.5:  # near the reading threshold: hedged
            what = _pick(rng, _HEDGES).format(what=_HEDGE_NOUNS[k])
        sentence = what[0].upper() + what[1:] + "."
        if prior is not None and k in prior:
            change = extent - prior[k]
            trend = (
                "unchanged" if abs(change) < 0.2 else ("increased" if change > 0 else "decreased")
            )
            verb = "is" if trend == "unchanged" else "has"
            sentence += _pick(rng, (f" This {verb} {trend} since the prior study.",
                                    f" Compared with the prior, {trend}.", f" ({trend})"))  # fmt: skip
        said.append(sentence)
    for k in _ABSENT:
        if not labels.get(k) and rng.random() < (0.6 if k in ("pneumothorax", "pleural_effusion", "consolidation", "edema") else 0.15):  # fmt: skip
            said.append(_pick(rng, _ABSENT[k]))
    rng.shuffle(said)
    seen = [k for k, on in devices.items() if on and k in _DEVICES]
    for k in seen:
        said.append(_DEVICES[k].format(d=int(rng.integers(2, 7))))
    lines.append(" ".join(said) if said else "Lungs are clear. Heart size is normal.")
    if present:
        main = ", ".join(_IMPRESSION[k] for k in present[:3])
        impression = f"{main[0].upper()}{main[1:]}."
    else:
        impression = _pick(rng, ("No acute cardiopulmonary process.", "No acute findings."))
    lines += ["IMPRESSION:", impression, _pick(rng, _SIGNOFF)]
    return _noisy("\n".join(line for line in lines if line), rng, 0.002)


def clinical_note(
    kind: str,
    state: dict[str, float],
    *,
    day: int,
    detail: float,
    rng: np.random.Generator,
) -> str:
    """A progress or nursing note on ``day`` of the stay. ``state`` holds the stay's latents
    (z-scores: ``infect``, ``neuro``, ``renal``, ``bleed``, ``sev``, ``goc``) and whether it is
    ventilated (``vent``); ``detail`` in (0, 1] is the share of topics written down."""
    topics: list[str] = []

    def maybe(text: str) -> None:
        if rng.random() < detail:
            topics.append(text)

    infect = state["infect"] + 0.3 * rng.standard_normal()
    if infect > 0.8:
        maybe(_pick(rng, ("Febrile overnight, concern for sepsis; on broad-spectrum antibiotics.",
                          "Tmax 38.9, cultures sent, started vanc/zosyn.", "Septic picture, lactate up.")))  # fmt: skip
    elif infect < -0.3:
        maybe(_pick(rng, ("Afebrile.", "No signs of infection.", "Off antibiotics.")))
    neuro = state["neuro"] + 0.3 * rng.standard_normal()
    if state.get("vent", 0) > 0:
        maybe(_pick(rng, ("Intubated and sedated.", "Remains on the ventilator, on propofol.")))
    elif neuro > 0.8:
        maybe(_pick(rng, ("Encephalopathic, not following commands.", "Delirious overnight.")))
    else:
        maybe(_pick(rng, ("Alert and oriented x3.", "A&Ox3, following commands.")))
    renal = state["renal"] + 0.3 * rng.standard_normal()
    if renal > 0.9:
        maybe(_pick(rng, ("AKI, creatinine uptrending; renal following.", "Oliguric, considering CRRT.")))  # fmt: skip
    else:
        maybe(_pick(rng, ("UOP adequate.", "Creatinine stable.")))
    if state["bleed"] > 1.2:
        maybe(_pick(rng, ("Hct drop, transfused 1u PRBC.", "Guaiac positive stools, GI aware.")))
    # Goals of care: in the text only (no vital sign or image shows it).
    goc = state["goc"] + 0.25 * rng.standard_normal()
    if goc > 1.6:
        maybe(_pick(rng, ("Family meeting held; patient made DNR/DNI.",
                          "Goals of care discussed; transitioning to comfort-focused care.",
                          "Palliative care consulted; family considering hospice.")))  # fmt: skip
    elif goc < 0:
        maybe(_pick(rng, ("Full code.", "Code status: full.")))
    if rng.random() < 0.5:
        topics.append(_pick(rng, _BOILERPLATE))
    head = (
        f"ICU PROGRESS NOTE, hospital day {day + 1}." if kind == "progress"
        else _pick(rng, ("NURSING NOTE.", "Nursing progress note.", "RN shift note."))
    )  # fmt: skip
    return _noisy(" ".join([head, *topics]), rng)


def discharge_summary(diagnoses: Sequence[str], died: bool, rng: np.random.Generator) -> str:
    """The discharge summary: the stay's coded diagnoses and how it ended."""
    dx = "; ".join(diagnoses) if diagnoses else "none coded"
    end = (
        "The patient expired."
        if died
        else _pick(
            rng,
            ("Discharged to rehab.", "Discharged home with services.", "Transferred to the floor."),
        )  # fmt: skip
    )
    return f"DISCHARGE SUMMARY. Discharge diagnoses: {dx}. {end}"


GoalsOfCare = Callable[[int, float], float]
History = Callable[[int, float], str]


def goals_of_care(stays: pd.DataFrame, rng: np.random.Generator) -> GoalsOfCare:
    """The goals-of-care latent of each stay at a minute: with severity and frailty, a part
    no other input shows, and a rise over the five days before a death (as the X-ray
    findings worsen before one). Returns ``f(stay row, minute)``."""
    sev = stays["sev"].to_numpy(dtype=float)
    goc = 0.5 * sev + 0.4 * stays["frailty"].to_numpy(dtype=float) + rng.standard_normal(len(stays))
    death = np.where(stays["died"].to_numpy().astype(bool), stays["death_min"].to_numpy(dtype=float), np.inf)  # fmt: skip

    def at(s: int, t: float) -> float:
        return float(goc[s] + 2.0 * np.clip(1 - (death[s] - t) / GOC_WINDOW_MIN, 0, 1))

    return at


def radiology_rows(
    images: pd.DataFrame,
    findings: np.ndarray,
    params: pd.DataFrame,
    rng: np.random.Generator,
    *,
    history: History | None = None,
) -> list[tuple]:
    """One report per image, charted at the image and signed 30 minutes to 10 hours later:
    rows ``(stay row, "radiology", chart minute, store minute, study_id, text)``.
    ``history(stay row, minute)`` gives the clinical history the requisition states, if any."""
    rows: list[tuple] = []
    img_stay = images["stay"].to_numpy()
    img_min = images["minute"].to_numpy(dtype=float)
    order = np.lexsort((img_min, img_stay))
    prior_of: dict[int, dict[str, float]] = {}
    extent_cols = {
        "pleural_effusion": params["effusion_right"].to_numpy() + params["effusion_left"].to_numpy(),
        "edema": params["edema"].to_numpy(), "consolidation": params["consolidation"].to_numpy(),
        "pneumonia": params["pneumonia"].to_numpy(), "atelectasis": params["atelectasis"].to_numpy(),
        "lung_lesion": params["lesion"].to_numpy(), "pneumothorax": params["pneumothorax"].to_numpy(),
        "fracture": params["fracture"].to_numpy(), "pleural_other": params["pleural_other"].to_numpy(),
        "cardiomegaly": (params["heart_width"].to_numpy() - 1) * 5,
        "enlarged_cardiomediastinum": (params["mediastinum_width"].to_numpy() - 1) * 4,
    }  # fmt: skip
    for i in order.tolist():
        s = int(img_stay[i])
        labels = {k: int(findings[i, j]) for j, k in enumerate(FINDING_SLUGS)}
        extents = {k: float(v[i]) for k, v in extent_cols.items()}
        extents["lung_opacity"] = max(extents["consolidation"], extents["edema"], extents["atelectasis"])  # fmt: skip
        devices = {k: bool(params[k].iloc[i]) for k in ("ett", "ng", "cvc", "pacer", "wires")}
        text = radiology_report(
            labels, extents, devices, prior=prior_of.get(s), rng=rng,
            history=history(s, img_min[i]) if history is not None else "",
        )  # fmt: skip
        prior_of[s] = extents
        store = img_min[i] + float(rng.uniform(30, 600))
        rows.append((s, "radiology", img_min[i], store, int(images["study_id"].iloc[i]), text))
    return rows


def notes_frame(rows: list[tuple], stays: pd.DataFrame) -> pd.DataFrame:
    """Note rows ``(stay row, note_type, chart minute, store minute, study_id, text)`` as the
    table of :data:`NOTE_COLUMNS`, ordered by stay and store time, with note ids."""
    frame = pd.DataFrame(rows, columns=["stay", "note_type", "chart_minute", "store_minute", "study_id", "text"])  # fmt: skip
    frame = frame.sort_values(["stay", "store_minute"], kind="stable").reset_index(drop=True)
    frame["stay_id"] = stays["stay_id"].to_numpy()[frame["stay"].to_numpy()]
    frame["subject_id"] = stays["subject_id"].to_numpy()[frame["stay"].to_numpy()]
    frame["note_seq"] = frame.groupby(["stay", "note_type"]).cumcount() + 1
    frame["note_id"] = [f"{sid}-{t[:2].upper()}-{q}" for sid, t, q in zip(frame["stay_id"], frame["note_type"], frame["note_seq"], strict=True)]  # fmt: skip
    frame["chart_minute"] = frame["chart_minute"].round().astype(np.int64)
    frame["store_minute"] = frame["store_minute"].round().astype(np.int64)
    frame["study_id"] = frame["study_id"].astype(np.int64)
    return frame[list(NOTE_COLUMNS)]


def renumbered(notes: pd.DataFrame) -> pd.DataFrame:
    """The notes an input may hold, numbered among themselves: ``note_seq`` and the id count
    only these, so a gap in the numbers cannot tell that a note not yet stored exists."""
    out = notes.reset_index(drop=True).copy()
    out["note_seq"] = out.groupby(["stay_id", "note_type"]).cumcount() + 1
    out["note_id"] = [f"{sid}-{t[:2].upper()}-{q}" for sid, t, q in zip(out["stay_id"], out["note_type"], out["note_seq"], strict=True)]  # fmt: skip
    return out


def make_notes(
    stays: pd.DataFrame,
    phenotypes: np.ndarray,
    images: pd.DataFrame,
    findings: np.ndarray,
    params: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Every note of every stay, one row each (:data:`NOTE_COLUMNS`), ordered by stay and
    store time.

    ``stays`` is the cohort (``stay_id``, ``subject_id``, ``los_min``, ``died``, ``death_min``, latents,
    ``vent``, ``vent_end_min``, ``ehr_keep``, ``frailty``); ``images``/``findings``/``params``
    come from :func:`benchmark_data.synth.cxr.image_findings` (one row per image, ``stay``
    the cohort row).
    """
    n = len(stays)
    goc_at = goals_of_care(stays, rng)
    los = stays["los_min"].to_numpy(dtype=float)
    keep = stays["ehr_keep"].to_numpy(dtype=float) if "ehr_keep" in stays else np.ones(n)
    died = stays["died"].to_numpy().astype(bool)
    vent = stays["vent"].to_numpy().astype(bool)
    vent_end = stays["vent_end_min"].to_numpy(dtype=float) if "vent_end_min" in stays else np.zeros(n)  # fmt: skip
    latent = {k: stays[k].to_numpy(dtype=float) for k in ("infect", "neuro", "renal", "bleed")}
    sev = stays["sev"].to_numpy(dtype=float)

    rows = radiology_rows(images, findings, params, rng)

    # Progress notes about once a day, nursing notes every 8 to 12 hours, fewer and shorter
    # where documentation is sparse.
    for s in range(n):
        detail = float(np.clip(0.35 + 0.6 * keep[s], 0.2, 1.0))
        state = {k: float(v[s]) for k, v in latent.items()} | {"sev": float(sev[s])}
        t = float(rng.uniform(240, 900))
        day = 0
        while t < los[s]:
            if rng.random() < detail:
                state["vent"] = float(vent[s] and t < vent_end[s])
                state["goc"] = goc_at(s, t)
                text = clinical_note("progress", state, day=day, detail=detail, rng=rng)
                rows.append((s, "progress", t, t + float(rng.uniform(20, 240)), -1, text))
            t += float(rng.uniform(1200, 1700))
            day += 1
        t = float(rng.uniform(60, 480))
        while t < los[s]:
            if rng.random() < detail:
                state["vent"] = float(vent[s] and t < vent_end[s])
                state["goc"] = goc_at(s, t)
                text = clinical_note("nursing", state, day=int(t // 1440), detail=detail, rng=rng)
                rows.append((s, "nursing", t, t + float(rng.uniform(10, 120)), -1, text))
            t += float(rng.uniform(480, 720))
        dx = [PHENOTYPE_NAMES[j] for j in np.flatnonzero(phenotypes[s])]
        end = los[s]
        rows.append((s, "discharge", end, end + float(rng.uniform(600, 4320)), -1,
                     discharge_summary(dx, bool(died[s]), rng)))  # fmt: skip

    return notes_frame(rows, stays)


__all__ = [
    "NOTE_COLUMNS",
    "NOTE_TYPES",
    "clinical_note",
    "discharge_summary",
    "goals_of_care",
    "make_notes",
    "notes_frame",
    "radiology_report",
    "radiology_rows",
    "renumbered",
]
