"""Small input trees in the exact formats of MedMod's MIMIC-IV extraction, MIMIC-IV and
MIMIC-CXR-JPG, filled with seeded random values (no real patient data).

- ``medmod/{task}/{train,val,test}_listfile.csv`` with ``stay,period_length,stay_id,<labels>``
  and the episode files ``medmod/{task}/{train,test}/{subject}_episode{k}_timeseries.csv``
  (``Hours`` and the 17 variables), written the way mimic3-benchmarks' ``create_*.py``
  scripts write them (``%.6f`` hours, mortality series cut at 48 h, the training listfile
  shuffled, the test listfile sorted); ``medmod/root/all_stays.csv``;
- ``mimic-iv/icu/icustays.csv.gz``, ``mimic-iv/hosp/admissions.csv.gz``,
  ``mimic-iv/hosp/patients.csv.gz``;
- ``mimic-cxr/mimic-cxr-2.0.0-metadata.csv.gz`` (``StudyDate`` YYYYMMDD, ``StudyTime``
  HHMMSS.fff without leading zeros), ``mimic-cxr/mimic-cxr-2.0.0-chexpert.csv.gz`` (1.0,
  0.0, -1.0 or blank) and, on request, noise JPEGs under ``mimic-cxr/files/``;
- ``testset.csv`` and ``valset.csv`` as MedMod's ``testset_iv.csv``: ``subject_id,flag``.

One test stay is planted with chest X-rays at known times (:class:`Planted`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from benchmark_data.tasks import FINDING_NAMES, PHENOTYPE_NAMES
from benchmark_data.variables import VARIABLES

TIME = "%Y-%m-%d %H:%M:%S"
TASK_DIRS = ("in-hospital-mortality", "decompensation", "length-of-stay", "phenotyping")
RACES = (
    "WHITE", "WHITE - OTHER EUROPEAN", "WHITE - RUSSIAN", "BLACK/AFRICAN AMERICAN",
    "BLACK/CAPE VERDEAN", "HISPANIC/LATINO - PUERTO RICAN", "HISPANIC OR LATINO",
    "SOUTH AMERICAN", "ASIAN", "ASIAN - CHINESE", "ASIAN - SOUTH EAST ASIAN", "UNKNOWN",
    "OTHER", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER", "AMERICAN INDIAN/ALASKA NATIVE",
    "MULTIPLE RACE/ETHNICITY",
)  # fmt: skip
INSURANCES = ("Medicare", "Medicaid", "Other", "Private")
ADMISSION_TYPES = ("EW EMER.", "URGENT", "ELECTIVE", "OBSERVATION ADMIT", "DIRECT EMER.")
CAREUNITS = ("Medical Intensive Care Unit (MICU)", "Cardiac Vascular Intensive Care Unit (CVICU)")
VIEWS = ("AP", "AP", "AP", "PA", "LATERAL", "LL", "")
UNKNOWN_GCS_EYE = "Opens eyes to sound"  # not one of the category strings
LABEL_VALUES = (1.0, 0.0, -1.0, np.nan)


@dataclass
class Planted:
    """A test stay of exactly 100 h, alive, with chest X-rays at known hours:

    ``ap_10h`` (AP, Edema uncertain), ``ap_30h`` (AP, exactly at 30 h 00 min .750 s),
    ``pa_40h`` (PA: never used), ``ap_45h1s`` (AP, at 45 h and 1 s), ``ap_47h_unlabelled``
    (AP, its study has no CheXpert row: never used), ``ap_60h``, ``ap_80h`` and
    ``ap_80h_b`` (two AP images of one study, in that file order), ``lateral_80h``,
    ``ap_before`` (2 h before intime) and ``ap_after`` (2 h after outtime).
    """

    stay_id: int
    subject_id: int
    intime: pd.Timestamp
    dicoms: dict[str, str] = field(default_factory=dict)
    studies: dict[str, int] = field(default_factory=dict)


@dataclass
class MimicTree:
    medmod_root: Path
    mimic_iv: Path
    mimic_cxr: Path
    test_subjects: Path
    val_subjects: Path
    cxr_images: Path | None
    stays: pd.DataFrame  # the generated stays, with split and the raw demographics
    images: pd.DataFrame  # every metadata row, with study_datetime (whole seconds)
    chexpert: pd.DataFrame  # as written (1.0, 0.0, -1.0, NaN)
    planted: Planted

    def args(self, out: Path, *extra: str) -> list[str]:
        """Command-line arguments of ``import-mimic`` for this tree."""
        return [
            "import-mimic", "--medmod-root", str(self.medmod_root), "--mimic-iv",
            str(self.mimic_iv), "--mimic-cxr", str(self.mimic_cxr), "--out", str(out), *extra,
        ]  # fmt: skip


def _dicom_id(rng: np.random.Generator) -> str:
    return "-".join(f"{int(x):08x}" for x in rng.integers(0, 2**32, size=5))


def _study_time(ts: pd.Timestamp, millis: int) -> tuple[int, str]:
    """``StudyDate`` and ``StudyTime`` as MIMIC-CXR writes them (``94512.345``)."""
    hhmmss = ts.hour * 10000 + ts.minute * 100 + ts.second
    return int(ts.strftime("%Y%m%d")), repr(round(hhmmss + millis / 1000, 3))


def _series(rng: np.random.Generator, los_h: float, *, first: float) -> pd.DataFrame:
    """An episode time series: rows at whole minutes in ``[first, los)``, each variable
    measured with some probability, values as mimic3-benchmarks writes them."""
    n = max(2, int(los_h / 3))
    minutes = np.unique(rng.integers(int(first * 60) + 1, int(los_h * 60), size=n))
    hours = np.r_[first, minutes / 60.0]
    df = pd.DataFrame({"Hours": hours})
    for var in VARIABLES:
        measured = rng.random(len(hours)) < (0.1 if var.name in ("Height", "Weight") else 0.4)
        measured[0] = var.name == "Heart Rate" or measured[0]
        if var.is_categorical:
            vals = rng.choice(np.array(var.categories, dtype=object), size=len(hours))
        else:
            base = float(var.normal)
            vals = np.round(base * (1 + 0.15 * rng.standard_normal(len(hours))), 2)
        col = pd.Series(vals, dtype=object)
        df[var.name] = col.where(measured, None)
    return df


def _write_episode(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n")


def _cohort(rng: np.random.Generator, n_subjects: int) -> pd.DataFrame:
    subjects = 10_000_000 + rng.choice(10_000_000, size=n_subjects, replace=False)
    n_test = max(3, round(0.25 * n_subjects))
    n_val = max(2, round(0.12 * n_subjects))
    split = ["test"] * n_test + ["val"] * n_val + ["train"] * (n_subjects - n_test - n_val)
    rows = []
    stay_ids = iter(30_000_000 + rng.choice(10_000_000, size=4 * n_subjects, replace=False))
    hadm_ids = iter(20_000_000 + rng.choice(10_000_000, size=4 * n_subjects, replace=False))
    for i, (sid, sp) in enumerate(zip(subjects, split, strict=True)):
        anchor_year = int(rng.integers(2110, 2180))
        anchor_age = int(rng.integers(18, 90))
        gender = "M" if rng.random() < 0.55 else "F"
        n_stays = 1 if i == 0 else int(rng.choice([1, 1, 1, 2, 3]))
        t = pd.Timestamp(anchor_year + int(rng.integers(0, 3)), 1, 1) + pd.Timedelta(
            seconds=int(rng.integers(0, 300 * 86400))
        )
        for k in range(1, n_stays + 1):
            admittime = t
            intime = admittime + pd.Timedelta(seconds=int(rng.integers(600, 6 * 3600)))
            if i == 0:  # the planted stay
                los_s = 100 * 3600
            else:
                los_s = int(np.clip(rng.lognormal(np.log(50 * 3600), 0.8), 6 * 3600, 300 * 3600))
            outtime = intime + pd.Timedelta(seconds=los_s)
            deathtime = pd.NaT
            if i != 0 and k == n_stays and rng.random() < 0.25:
                if rng.random() < 0.6:
                    deathtime = intime + pd.Timedelta(seconds=int(los_s * rng.uniform(0.4, 1.0)))
                    outtime = deathtime + pd.Timedelta(minutes=20)
                else:
                    deathtime = outtime + pd.Timedelta(hours=float(rng.uniform(1, 72)))
            dischtime = (deathtime if pd.notna(deathtime) else outtime) + pd.Timedelta(hours=30)
            rows.append(
                {
                    "subject_id": int(sid), "hadm_id": int(next(hadm_ids)),
                    "stay_id": int(next(stay_ids)), "episode": k, "split": sp,
                    "admittime": admittime, "intime": intime, "outtime": outtime,
                    "dischtime": dischtime, "deathtime": deathtime,
                    "anchor_year": anchor_year, "anchor_age": anchor_age, "gender": gender,
                    "race": str(rng.choice(RACES)), "insurance": str(rng.choice(INSURANCES)),
                    "admission_type": str(rng.choice(ADMISSION_TYPES)),
                }
            )  # fmt: skip
            t = dischtime + pd.Timedelta(days=float(rng.uniform(5, 200)))
    df = pd.DataFrame(rows)
    df["stay"] = [
        f"{s}_episode{k}_timeseries.csv" for s, k in zip(df.subject_id, df.episode, strict=True)
    ]
    df["los_h"] = (df["outtime"] - df["intime"]).dt.total_seconds() / 3600
    df["mortality"] = df["deathtime"].notna().astype(int)
    df["lived_h"] = (df["deathtime"] - df["intime"]).dt.total_seconds() / 3600
    return df


def _listfiles(
    root: Path, stays: pd.DataFrame, series: dict[int, pd.DataFrame], rng: np.random.Generator
) -> None:
    eps = 1e-6
    lines: dict[str, list[tuple]] = {t: [] for t in TASK_DIRS}
    pheno = rng.random((len(stays), len(PHENOTYPE_NAMES))) < 0.2
    for j, s in enumerate(stays.itertuples()):
        ts = series[s.stay_id]
        los = s.los_h
        first = float(ts["Hours"].iloc[0])
        part = "test" if s.split == "test" else "train"
        for task in TASK_DIRS:
            keep = ts[ts["Hours"] < (48 + eps if task == "in-hospital-mortality" else los + eps)]
            _write_episode(root / task / part / s.stay, keep)
        key = (s.split, s.stay, s.stay_id)
        if los >= 48 - eps:
            lines["in-hospital-mortality"].append((*key, "0", f"{s.mortality:d}"))
        lived = s.lived_h if s.mortality else 1e18
        for t in np.arange(0.0, min(los, lived) + eps, 1.0):
            if t > 4 and t > first:
                y = int(s.mortality and lived - t < 24)
                lines["decompensation"].append((*key, f"{t:.6f}", f"{y:d}"))
        for t in np.arange(0.0, los + eps, 1.0):
            if t > 4 and t > first:
                lines["length-of-stay"].append((*key, f"{t:.6f}", f"{los - t:.6f}"))
        labels = ",".join(str(int(v)) for v in pheno[j])
        lines["phenotyping"].append((*key, f"{los:.6f}", labels))
    shuffle = random.Random(49297)
    for task, rows in lines.items():
        head = "stay,period_length,stay_id," + (
            ",".join(PHENOTYPE_NAMES) if task == "phenotyping" else "y_true"
        )
        for split in ("train", "val", "test"):
            part = [
                (stay, period, stay_id, y) for sp, stay, stay_id, period, y in rows if sp == split
            ]
            if split == "test":
                part.sort()
            else:
                shuffle.shuffle(part)
            text = "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in part)
            (root / task / f"{split}_listfile.csv").write_text(head + "\n" + text)


def _images(rng: np.random.Generator, stays: pd.DataFrame, planted: Planted) -> pd.DataFrame:
    rows: list[dict] = []
    study_ids = iter(50_000_000 + rng.choice(10_000_000, size=2000, replace=False))

    def add(
        subject_id: int, when: pd.Timestamp, view: str, study: int | None = None
    ) -> tuple[str, int]:
        study = study if study is not None else int(next(study_ids))
        dicom = _dicom_id(rng)
        millis = int(rng.integers(0, 1000))
        rows.append({"dicom_id": dicom, "subject_id": subject_id, "study_id": study,
                     "view": view, "when": when, "millis": millis})  # fmt: skip
        return dicom, study

    p = planted
    plan = [
        ("ap_before", -2 * 3600, "AP"), ("ap_10h", 10 * 3600 + 1234, "AP"),
        ("ap_30h", 30 * 3600, "AP"), ("pa_40h", 40 * 3600, "PA"),
        ("ap_45h1s", 45 * 3600 + 1, "AP"), ("ap_47h_unlabelled", 47 * 3600, "AP"),
        ("ap_60h", 60 * 3600, "AP"), ("ap_80h", 80 * 3600, "AP"),
        ("ap_after", 102 * 3600, "AP"),
    ]  # fmt: skip
    for role, seconds, view in plan:
        dicom, study = add(p.subject_id, p.intime + pd.Timedelta(seconds=seconds), view)
        p.dicoms[role], p.studies[role] = dicom, study
    rows[[r["dicom_id"] for r in rows].index(p.dicoms["ap_30h"])]["millis"] = 750
    at80 = p.intime + pd.Timedelta(hours=80)
    p.dicoms["lateral_80h"], _ = add(p.subject_id, at80, "LATERAL", p.studies["ap_80h"])
    p.dicoms["ap_80h_b"], _ = add(p.subject_id, at80, "AP", p.studies["ap_80h"])
    for s in stays.itertuples():
        if s.stay_id == p.stay_id or rng.random() < 0.25:
            continue
        for _ in range(int(rng.integers(1, 5))):
            when = s.intime + pd.Timedelta(seconds=int(rng.uniform(-24, s.los_h + 24) * 3600))
            study = None
            for _ in range(int(rng.integers(1, 3))):
                _, study = add(s.subject_id, when, str(rng.choice(VIEWS)), study)
    for _ in range(5):  # patients with X-rays and no ICU stay
        add(int(rng.integers(10_000_000, 20_000_000)), pd.Timestamp(2150, 3, 1, 8), "AP")
    df = pd.DataFrame(rows)
    df["study_datetime"] = df["when"].dt.floor("s")
    return df


def build_tree(
    root: Path,
    *,
    seed: int = 0,
    n_subjects: int = 30,
    with_val_listfiles: bool = True,
    with_all_stays: bool = True,
    jpegs: bool = False,
) -> MimicTree:
    """Write a complete input tree under ``root`` and return where everything is."""
    rng = np.random.default_rng(seed)
    medmod, mimic_iv, mimic_cxr = root / "medmod", root / "mimic-iv", root / "mimic-cxr"
    for d in (medmod / "root", mimic_iv / "icu", mimic_iv / "hosp", mimic_cxr):
        d.mkdir(parents=True, exist_ok=True)
    stays = _cohort(rng, n_subjects)
    if not with_val_listfiles:
        stays.loc[stays["split"] == "val", "split"] = "train"
    first = stays.iloc[0]
    planted = Planted(
        stay_id=int(first.stay_id), subject_id=int(first.subject_id), intime=first.intime
    )

    series = {}
    for s in stays.itertuples():
        start = 0.5 if s.stay_id == planted.stay_id else float(rng.uniform(0.05, 6.0))
        start = min(start, s.los_h / 3)
        series[s.stay_id] = _series(rng, s.los_h, first=start)
    eye = "Glascow coma scale eye opening"
    series[planted.stay_id].loc[1, eye] = UNKNOWN_GCS_EYE
    _listfiles(medmod, stays, series, rng)

    def timefmt(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        for c in ("intime", "outtime", "admittime", "dischtime", "deathtime"):
            if c in out:
                out[c] = out[c].dt.strftime(TIME)
        return out

    icu = stays.assign(
        first_careunit=[CAREUNITS[i % 2] for i in range(len(stays))],
        last_careunit=[CAREUNITS[i % 2] for i in range(len(stays))],
        los=(stays["los_h"] / 24).round(6),
    )
    extra = icu.iloc[:3].assign(  # ICU stays no task lists (e.g. under 4 h of data)
        stay_id=[39_999_991, 39_999_992, 39_999_993], hadm_id=[29_999_991, 29_999_992, 29_999_993]
    )
    icustays = pd.concat([icu, extra])[
        [
            "subject_id",
            "hadm_id",
            "stay_id",
            "first_careunit",
            "last_careunit",
            "intime",
            "outtime",
            "los",
        ]
    ]
    timefmt(icustays).to_csv(mimic_iv / "icu/icustays.csv.gz", index=False)
    if with_all_stays:
        all_stays = icu.assign(
            mortality_inunit=0, mortality=icu["mortality"], mortality_inhospital=icu["mortality"]
        )
        timefmt(all_stays)[
            ["subject_id", "hadm_id", "stay_id", "last_careunit", "intime", "outtime", "los",
             "admittime", "dischtime", "deathtime", "race", "gender", "anchor_age",
             "mortality_inunit", "mortality", "mortality_inhospital"]
        ].to_csv(medmod / "root/all_stays.csv", index=False)  # fmt: skip
    admissions = pd.concat([stays, extra]).assign(
        admit_provider_id="P00001", admission_location="EMERGENCY ROOM",
        discharge_location="HOME", language="ENGLISH", marital_status="MARRIED",
        edregtime=lambda d: d["admittime"] - pd.Timedelta(hours=3),
        edouttime=lambda d: d["admittime"], hospital_expire_flag=lambda d: d["mortality"],
    )  # fmt: skip
    admissions = timefmt(admissions)
    for c in ("edregtime", "edouttime"):
        admissions[c] = admissions[c].dt.strftime(TIME)
    admissions[
        ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type",
         "admit_provider_id", "admission_location", "discharge_location", "insurance",
         "language", "marital_status", "race", "edregtime", "edouttime", "hospital_expire_flag"]
    ].to_csv(mimic_iv / "hosp/admissions.csv.gz", index=False)  # fmt: skip
    dod = stays.groupby("subject_id")["deathtime"].transform("max").dt.strftime("%Y-%m-%d")
    patients = stays.assign(anchor_year_group="2011 - 2013", dod=dod).drop_duplicates("subject_id")
    patients[
        ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"]
    ].to_csv(mimic_iv / "hosp/patients.csv.gz", index=False)

    images = _images(rng, stays, planted)
    dates = [_study_time(w, m) for w, m in zip(images["when"], images["millis"], strict=True)]
    descr = images["view"].map({"AP": "CHEST (PORTABLE AP)"}).fillna("CHEST (PA AND LAT)")
    meta = pd.DataFrame(
        {
            "dicom_id": images["dicom_id"], "subject_id": images["subject_id"],
            "study_id": images["study_id"], "PerformedProcedureStepDescription": descr,
            "ViewPosition": images["view"].replace("", np.nan), "Rows": 3056, "Columns": 2544,
            "StudyDate": [d for d, _ in dates], "StudyTime": [t for _, t in dates],
            "ProcedureCodeSequence_CodeMeaning": descr,
            "ViewCodeSequence_CodeMeaning": images["view"].map(
                {"AP": "antero-posterior", "PA": "postero-anterior", "LATERAL": "lateral"}
            ),
            "PatientOrientationCodeSequence_CodeMeaning": "Erect",
        }
    )  # fmt: skip
    meta.to_csv(mimic_cxr / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    studies = images.drop_duplicates("study_id")[["subject_id", "study_id"]]
    studies = studies[studies["study_id"] != planted.studies["ap_47h_unlabelled"]]
    chex = studies.sort_values(["subject_id", "study_id"]).reset_index(drop=True)
    values = rng.choice(
        np.array(LABEL_VALUES), size=(len(chex), len(FINDING_NAMES)), p=[0.2, 0.2, 0.1, 0.5]
    )
    for j, name in enumerate(FINDING_NAMES):
        chex[name] = values[:, j]
    planted_row = chex["study_id"] == planted.studies["ap_10h"]
    chex.loc[planted_row, list(FINDING_NAMES)] = np.nan
    chex.loc[planted_row, ["Edema", "Cardiomegaly", "No Finding"]] = [-1.0, 1.0, 0.0]
    chex.to_csv(mimic_cxr / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)

    cxr_images = None
    if jpegs:
        cxr_images = mimic_cxr
        for r in images.itertuples():
            sid = str(r.subject_id)
            path = (
                mimic_cxr
                / "files"
                / f"p{sid[:2]}"
                / f"p{sid}"
                / f"s{r.study_id}"
                / f"{r.dicom_id}.jpg"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, size=(300, 250), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").convert("RGB").save(path, format="JPEG", quality=80)

    subjects = stays.drop_duplicates("subject_id")
    others = [19_999_001, 19_999_002]  # in MedMod's split files, not in these listfiles
    test_lines = [
        f"{s},{int(sp == 'test')}"
        for s, sp in zip(subjects.subject_id, subjects.split, strict=True)
    ]
    val_lines = [
        f"{s},{int(sp == 'val')}" for s, sp in zip(subjects.subject_id, subjects.split, strict=True)
    ]
    (root / "testset.csv").write_text("\n".join([*test_lines, *(f"{o},1" for o in others)]) + "\n")
    (root / "valset.csv").write_text("\n".join([*val_lines, *(f"{o},0" for o in others)]) + "\n")
    if not with_val_listfiles:
        for task in TASK_DIRS:
            (medmod / task / "val_listfile.csv").unlink()
    chex_raw = chex.copy()
    return MimicTree(
        medmod_root=medmod, mimic_iv=mimic_iv, mimic_cxr=mimic_cxr,
        test_subjects=root / "testset.csv", val_subjects=root / "valset.csv",
        cxr_images=cxr_images, stays=stays, images=images, chexpert=chex_raw, planted=planted,
    )  # fmt: skip


def import_tree(tree: MimicTree, out: Path, **options: object) -> dict:
    """Run the importer on a tree (with its test-subjects file unless told otherwise)."""
    from benchmark_data.mimic import import_mimic

    kwargs: dict = {"test_subjects": tree.test_subjects, "cxr_images": tree.cxr_images}
    kwargs.update(options)
    return import_mimic(
        medmod_root=tree.medmod_root,
        mimic_iv=tree.mimic_iv,
        mimic_cxr=tree.mimic_cxr,
        out=out,
        **kwargs,
    )
