"""Irregular ICU time series of the 17 MedMod variables, from the latent state of a stay.

Vital signs are charted about hourly (sometimes twice in an hour), nursing assessments
(temperature, Glasgow coma scale, capillary refill) every four hours or so, glucose and
blood gases a few times a day and more often when ventilated, height and weight on
admission. Values follow the patient's acute state: a shared instability process, recovery
before discharge and deterioration in the hours before death. Every draw is vectorized over
all hours of a split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from benchmark_data.synth import cohort as C
from benchmark_data.variables import VARIABLE_NAMES, VARIABLES

CRR, DBP, FIO2, GCS_EYE, GCS_MOTOR, GCS_TOTAL, GCS_VERBAL, GLUCOSE, HR, HEIGHT, MBP, SPO2, RR, \
    SBP, TEMP, WEIGHT, PH = range(17)  # fmt: skip
assert VARIABLE_NAMES[GCS_VERBAL] == "Glascow coma scale verbal response"
assert VARIABLE_NAMES[PH] == "pH"

# Glasgow coma scale wording by score, in the two charting styles found in MIMIC
# (numbered and plain), as category indices of benchmark_data.variables.
_EYE_WORDS = (
    ("1 No Response", "2 To pain", "3 To speech", "4 Spontaneously"),
    # "None" (score 1) is a MIMIC category too, but CSV readers take it for a blank cell.
    ("1 No Response", "To Pain", "To Speech", "Spontaneously"),
)
_MOTOR_WORDS = (
    ("1 No Response", "2 Abnorm extensn", "3 Abnorm flexion", "4 Flex-withdraws",
     "5 Localizes Pain", "6 Obeys Commands"),
    ("No response", "Abnormal extension", "Abnormal Flexion", "Flex-withdraws",
     "Localizes Pain", "Obeys Commands"),
)  # fmt: skip
_VERBAL_WORDS = (  # scores 1-5, then intubated
    ("1 No Response", "2 Incomp sounds", "3 Inapprop words", "4 Confused", "5 Oriented",
     "1.0 ET/Trach"),
    ("No Response", "Incomprehensible sounds", "Inappropriate Words", "Confused", "Oriented",
     "No Response-ETT"),
)  # fmt: skip


def _codes(var: int, words: tuple[tuple[str, ...], ...]) -> np.ndarray:
    cats = VARIABLES[var].categories
    return np.array([[cats.index(w) for w in style] for style in words], dtype=np.int64)


EYE_CODES = _codes(GCS_EYE, _EYE_WORDS)
MOTOR_CODES = _codes(GCS_MOTOR, _MOTOR_WORDS)
VERBAL_CODES = _codes(GCS_VERBAL, _VERBAL_WORDS)
TOTAL_CODES = np.array([VARIABLES[GCS_TOTAL].categories.index(str(s)) for s in range(3, 16)])
CRR_CODES = np.array([VARIABLES[CRR].categories.index(c) for c in ("0.0", "1.0")])

# Decimals written per variable (None: categorical).
DECIMALS: dict[int, int] = {
    DBP: 0, FIO2: 2, GLUCOSE: 0, HR: 0, HEIGHT: 0, MBP: 0, SPO2: 0, RR: 0, SBP: 0,
    TEMP: 1, WEIGHT: 1, PH: 2,
}  # fmt: skip
VALUE_RANGE: dict[int, tuple[float, float]] = {
    DBP: (15, 140), FIO2: (0.21, 1.0), GLUCOSE: (35, 700), HR: (25, 210), HEIGHT: (140, 210),
    MBP: (25, 170), SPO2: (60, 100), RR: (4, 55), SBP: (50, 240), TEMP: (32.0, 41.5),
    WEIGHT: (35, 220), PH: (6.85, 7.7),
}  # fmt: skip


def _ar1(n_rows: int, starts: np.ndarray, hour: np.ndarray, phi: float, sd: float,
         rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Stationary AR(1) noise along each stay's hours, independent between stays.

    Filters all stays at once, then removes what leaked in from the previous stay: the
    filter's value at local hour ``h`` carries ``phi**(h+1)`` times the previous stay's last
    value.
    """
    e = rng.standard_normal(n_rows) * sd * np.sqrt(1 - phi**2)
    e[starts] = rng.standard_normal(len(starts)) * sd
    y = lfilter([1.0], [1.0, -phi], e)
    prev_end = np.zeros(len(starts))
    prev_end[1:] = y[starts[1:] - 1]
    stay = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n_rows)))
    return np.asarray(y - phi ** (hour + 1.0) * prev_end[stay])


class _Measurements:
    """Long-format measurements: (stay position, minute, variable, value)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, stay: np.ndarray, minute: np.ndarray, var: int, value: np.ndarray) -> None:
        self.parts.append((stay, minute, np.full(len(stay), var, dtype=np.int8), value))

    def wide(self, n_stays: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows (stay position, minute) sorted, and a (rows x 17) value matrix."""
        stay, minute, var, value = (np.concatenate(x) for x in zip(*self.parts, strict=True))
        key = stay.astype(np.int64) * 10_000_000 + minute
        order = np.lexsort((var, key))
        key, var, value = key[order], var[order], value[order]
        first = np.r_[True, key[1:] != key[:-1]]
        row = np.cumsum(first) - 1
        mat = np.full((int(first.sum()), len(VARIABLES)), np.nan)
        mat[row, var] = value
        keys = key[first]
        return keys // 10_000_000, keys % 10_000_000, mat


def make_timeseries(
    stays: pd.DataFrame, phenotypes: np.ndarray, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Irregular time series of the given stays (sorted by ``stay_id``).

    Returns the table ``stay_id, hours, <17 variables>`` (categorical values as their
    category strings, blank when not measured) and the index ``stay_id, n_hours`` of the
    hourly grid (``n_hours`` = length of stay rounded up to whole hours).
    """
    n = len(stays)
    los = stays["los_min"].to_numpy()
    alive = stays["alive_min"].to_numpy()
    n_hours = (los + 59) // 60
    starts = np.r_[0, np.cumsum(n_hours)[:-1]]
    total = int(n_hours.sum())
    s = np.repeat(np.arange(n), n_hours)  # stay position of each hour row
    h = np.arange(total) - starts[s]  # hour within the stay
    t = h + 0.5
    ph = phenotypes[s].astype(np.float64)

    def col(name: str) -> np.ndarray:
        return stays[name].to_numpy()[s]

    died, in_icu = col("died"), col("death_in_icu")
    death_h = col("death_min") / 60.0
    ramp = np.where(died, np.clip(1 - (death_h - t) / 36, 0, 1) ** 2, 0.0)
    ready = np.where(in_icu, 0.0, np.clip(1 - (los[s] / 60.0 - t) / 36, 0, 1))
    vent_now = col("vent") & (60 * t < col("vent_end_min"))
    inst = _ar1(total, starts, h, 0.92, 0.45, rng)
    sev = col("sev") * (1 - 0.5 * ready) + 2.2 * ramp + inst
    acute = 1 - 0.5 * ready
    noise_sd = col("ehr_noise")

    def ar(sd: float, phi: float = 0.8) -> np.ndarray:
        """Hour-to-hour fluctuation, larger for the groups whose charting is noisier."""
        return _ar1(total, starts, h, phi, sd, rng) * noise_sd

    mean = np.zeros((total, len(VARIABLES)))
    mean[:, HR] = (
        76 + 11 * sev + 5 * ph[:, C.P_DYSRHYTHMIA] + 12 * ph[:, C.P_SHOCK] * acute
        + 9 * ph[:, C.P_SEPSIS] * acute + 8 * ph[:, C.P_GI_BLEED] + 6 * ph[:, C.P_AMI]
        - 14 * ph[:, C.P_CONDUCTION] + ar(7) + ph[:, C.P_DYSRHYTHMIA] * ar(8, 0.3)
    )  # fmt: skip
    mean[:, SBP] = (
        121 - 9 * sev + 14 * ph[:, C.P_HTN] + 10 * ph[:, C.P_HTN_COMPL] + 8 * ph[:, C.P_CEREBRO]
        - 14 * ph[:, C.P_SHOCK] * acute - 8 * ph[:, C.P_GI_BLEED] + ar(9)
    )  # fmt: skip
    mean[:, DBP] = 0.5 * mean[:, SBP] + 2 + ar(5)
    mean[:, MBP] = (mean[:, SBP] + 2 * mean[:, DBP]) / 3 + ar(3)
    mean[:, RR] = (
        16.5 + 2.8 * sev + 2.5 * ph[:, C.P_PNEUMONIA] + 2 * ph[:, C.P_COPD]
        + 2 * ph[:, C.P_LOWER_RESP] + 2.5 * ph[:, C.P_RESP_FAILURE] - 2 * vent_now + ar(3)
        + 0.8 * np.maximum(col("g_edema"), 0)
    )  # fmt: skip
    spo2 = (
        98.5 - 1.3 * sev - 1.5 * ph[:, C.P_COPD] - 1.5 * ph[:, C.P_PNEUMONIA]
        - 1.0 * ph[:, C.P_CHF] - 0.4 * np.maximum(col("g_edema"), 0) + ar(1.2)
    )  # fmt: skip
    black = col("race") == "BLACK"
    mean[:, SPO2] = np.where(black, 99.0 + 0.6 * (spo2 - 98.5), spo2)
    mean[:, TEMP] = (
        36.45 + 0.25 * sev + 0.9 * ph[:, C.P_SEPSIS] * (1 - 0.6 * ready)
        + 0.4 * ph[:, C.P_PNEUMONIA] + ar(0.35)
    )  # fmt: skip
    diabetic = np.maximum(ph[:, C.P_DM], ph[:, C.P_DM_COMPL])
    mean[:, GLUCOSE] = (
        110 + 18 * sev + 55 * ph[:, C.P_DM_COMPL] + 40 * ph[:, C.P_DM] + ar(20)
        + diabetic * ar(15, 0.5)
    )  # fmt: skip
    mean[:, PH] = (
        7.44 - 0.035 * sev - 0.05 * ph[:, C.P_SHOCK] - 0.03 * ph[:, C.P_RENAL_FAILURE]
        - 0.02 * ph[:, C.P_CKD] - 0.02 * ph[:, C.P_COPD] + ar(0.03)
    )  # fmt: skip
    mean[:, FIO2] = np.where(
        vent_now,
        0.35 + 0.08 * sev + 0.1 * ph[:, C.P_RESP_FAILURE],
        0.28 + 0.05 * np.maximum(sev, 0),
    ) + ar(0.05)
    mean[:, HEIGHT] = col("height")
    mean[:, WEIGHT] = col("weight") + 0.01 * h
    meas_sd = {
        HR: 3.0, SBP: 5.0, DBP: 4.0, MBP: 4.0, RR: 2.0, SPO2: 1.0, TEMP: 0.15, GLUCOSE: 8.0,
        PH: 0.015, FIO2: 0.03, HEIGHT: 1.5, WEIGHT: 1.0,
    }  # fmt: skip

    # Glasgow coma scale: higher q is worse; sedation while ventilated.
    q = (
        1.2 * ph[:, C.P_CEREBRO] + 0.5 * np.maximum(col("neuro"), 0) + 0.45 * np.maximum(sev, 0)
        + 1.8 * vent_now + ar(0.4)
    )  # fmt: skip
    # Per stay: GCS charting style, whether capillary refill is charted (about a third),
    # the hour of the 4-hourly nursing round and of the daily weight.
    style = rng.integers(0, 2, n)[s]
    crr_charted = (rng.random(n) < 0.35)[s]
    phase = rng.integers(0, 4, n)[s]
    weigh_hour = rng.integers(0, 24, n)[s]
    crr_p = 1 / (1 + np.exp(-(-3 + 1.2 * sev + 1.5 * ph[:, C.P_SHOCK])))

    m = _Measurements()
    keep = col("ehr_keep")
    alive_row = alive[s]

    def event(p: np.ndarray | float, minute: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Hours where an event happens, its minute within the stay, and the hour rows."""
        mi = rng.integers(0, 60, total) if minute is None else minute
        minute_total = 60 * h + mi
        hit = (rng.random(total) < p) & (minute_total < alive_row)
        rows = np.flatnonzero(hit)
        return rows, minute_total[rows], s[rows]

    def put(rows: np.ndarray, minute: np.ndarray, stay: np.ndarray, var: int, p: float) -> None:
        sel = rng.random(len(rows)) < p
        r = rows[sel]
        value = mean[r, var] + rng.standard_normal(len(r)) * meas_sd[var] * noise_sd[r]
        lo, hi = VALUE_RANGE[var]
        value = np.round(np.clip(value, lo, hi), DECIMALS[var])
        m.add(stay[sel], minute[sel], var, value)

    # Vital signs, and a second set later in some unstable hours.
    first_minute = rng.integers(0, 59, total)
    second_minute = first_minute + 1 + np.floor(rng.random(total) * (59 - first_minute))
    for minute, p in (
        (first_minute, 0.93 * keep),
        (second_minute.astype(np.int64), (0.12 + 0.12 * np.clip(sev, 0, 2)) * keep),
    ):
        rows, mt, st = event(p, minute)
        for var, pv in ((HR, 0.99), (RR, 0.95), (SPO2, 0.95)):
            put(rows, mt, st, var, pv)
        bp = rng.random(len(rows)) < 0.93
        for var in (SBP, DBP, MBP):
            put(rows[bp], mt[bp], st[bp], var, 1.0 if var != MBP else 0.97)

    # Nursing assessment about every 4 h: temperature, GCS, capillary refill.
    p_nurse = np.where((h + phase) % 4 == 0, 0.9, 0.04) * keep
    rows, mt, st = event(p_nurse)
    put(rows, mt, st, TEMP, 0.9)
    g = rng.random(len(rows)) < 0.92
    r, mtg, stg = rows[g], mt[g], st[g]
    qg = q[r] + 0.3 * noise_sd[r] * rng.standard_normal(len(r))
    eye = 4 - np.searchsorted([1.0, 1.8, 2.5], qg)
    motor = 6 - np.searchsorted([1.3, 1.9, 2.4, 2.9, 3.4], qg)
    verbal = 5 - np.searchsorted([0.7, 1.4, 2.1, 2.8], qg)
    intubated = vent_now[r]
    total_score = eye + motor + np.where(intubated, 1, verbal)
    stl = style[r]
    m.add(stg, mtg, GCS_EYE, EYE_CODES[stl, eye - 1].astype(float))
    m.add(stg, mtg, GCS_MOTOR, MOTOR_CODES[stl, motor - 1].astype(float))
    m.add(stg, mtg, GCS_VERBAL, VERBAL_CODES[stl, np.where(intubated, 5, verbal - 1)] * 1.0)
    m.add(stg, mtg, GCS_TOTAL, TOTAL_CODES[total_score - 3].astype(float))
    c = crr_charted[rows] & (rng.random(len(rows)) < 0.7)
    abnormal = rng.random(int(c.sum())) < crr_p[rows[c]]
    m.add(st[c], mt[c], CRR, CRR_CODES[abnormal.astype(np.int64)].astype(float))

    # Glucose; blood gases (pH, often FiO2); FiO2 with ventilator settings.
    rows, mt, st = event((0.10 + 0.15 * diabetic) * keep)
    put(rows, mt, st, GLUCOSE, 1.0)
    rows, mt, st = event((0.03 + 0.15 * vent_now + 0.04 * ph[:, C.P_RESP_FAILURE]) * keep)
    put(rows, mt, st, PH, 1.0)
    put(rows, mt, st, FIO2, 0.7)
    rows, mt, st = event((0.01 + 0.25 * vent_now) * keep)
    put(rows, mt, st, FIO2, 1.0)

    # Height and weight on admission; weight again about daily for some.
    first_hour = (h == 0).astype(float)
    rows, mt, st = event(first_hour * 0.55)
    put(rows, mt, st, HEIGHT, 1.0)
    daily = (h % 24 == weigh_hour) & (h > 0)
    rows, mt, st = event(first_hour * 0.85 + daily * 0.35)
    put(rows, mt, st, WEIGHT, 1.0)

    pos, minute, mat = m.wide(n)
    df = pd.DataFrame(
        {
            "stay_id": stays["stay_id"].to_numpy()[pos],
            "hours": np.round(minute / 60.0, 6),
        }
    )
    for j, variable in enumerate(VARIABLES):
        if variable.is_categorical:
            cats = np.asarray(variable.categories, dtype=object)
            codes = mat[:, j]
            vals = np.full(len(codes), None, dtype=object)
            ok = ~np.isnan(codes)
            vals[ok] = cats[codes[ok].astype(np.int64)]
            df[variable.name] = vals
        elif DECIMALS[j] == 0:
            df[variable.name] = pd.array(mat[:, j], dtype="Int64")
        else:
            df[variable.name] = mat[:, j]
    index = pd.DataFrame({"stay_id": stays["stay_id"].to_numpy(), "n_hours": n_hours})
    return df, index
