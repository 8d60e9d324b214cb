"""The MedMod task suite as code: the one place that defines the five tasks.

Scoring, the baselines and the platform read these definitions; nothing else repeats
a label name, a bucket edge or a metric direction.

>>> TASKS["in-hospital-mortality"].primary_metric
'auroc'
>>> los_bucket([3.0, 30.0, 400.0]).tolist()
[0, 1, 9]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

TaskKind = Literal["binary", "multilabel", "los"]

SPLITS: tuple[str, ...] = ("train", "val", "test")

# MedMod Appendix B; order as in MedMod's CLASSES (alphabetical).
PHENOTYPE_NAMES: tuple[str, ...] = (
    "Acute and unspecified renal failure",
    "Acute cerebrovascular disease",
    "Acute myocardial infarction",
    "Cardiac dysrhythmias",
    "Chronic kidney disease",
    "Chronic obstructive pulmonary disease and bronchiectasis",
    "Complications of surgical procedures or medical care",
    "Conduction disorders",
    "Congestive heart failure; nonhypertensive",
    "Coronary atherosclerosis and other heart disease",
    "Diabetes mellitus with complications",
    "Diabetes mellitus without complication",
    "Disorders of lipid metabolism",
    "Essential hypertension",
    "Fluid and electrolyte disorders",
    "Gastrointestinal hemorrhage",
    "Hypertension with complications and secondary hypertension",
    "Other liver diseases",
    "Other lower respiratory disease",
    "Other upper respiratory disease",
    "Pleurisy; pneumothorax; pulmonary collapse",
    "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",
    "Respiratory failure; insufficiency; arrest (adult)",
    "Septicemia (except in labor)",
    "Shock",
)

# mimic3-benchmarks' acute / mixed / chronic grouping, in PHENOTYPE_NAMES order.
PHENOTYPE_LEVELS: tuple[str, ...] = (
    "acute", "acute", "acute", "mixed", "chronic", "chronic", "acute", "mixed", "mixed",
    "chronic", "mixed", "chronic", "chronic", "chronic", "acute", "acute", "chronic", "mixed",
    "acute", "acute", "acute", "acute", "acute", "acute", "acute",
)  # fmt: skip

# CheXpert findings as used by MedMod's radiology task (R_CLASSES).
FINDING_NAMES: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)

# Length-of-stay buckets in days (mimic3-benchmarks CustomBins): a remaining time of x hours
# falls in bucket i when LOS_BUCKET_EDGES_DAYS[i] * 24 <= x < LOS_BUCKET_EDGES_DAYS[i + 1] * 24.
LOS_BUCKET_EDGES_DAYS: tuple[float, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 14, float("inf"))
LOS_BUCKET_MEAN_HOURS: tuple[float, ...] = (
    11.450379, 35.070846, 59.206531, 83.382723, 107.487817,
    131.579534, 155.643957, 179.660558, 254.306624, 585.325890,
)  # fmt: skip
LOS_BUCKET_COLUMNS: tuple[str, ...] = tuple(f"bucket_{i}" for i in range(10))

# Demographic attributes used for fairness, and the age bins (years).
FAIRNESS_ATTRIBUTES: tuple[str, ...] = ("age_group", "gender", "race", "insurance")
AGE_BIN_EDGES: tuple[float, ...] = (18, 40, 60, 80, float("inf"))
AGE_BIN_LABELS: tuple[str, ...] = ("18-40", "40-60", "60-80", "80+")
RACE_GROUPS: tuple[str, ...] = ("WHITE", "BLACK", "HISPANIC", "ASIAN", "OTHER")

# Missing-modality scenarios (DESIGN.md, robustness). `paired` and `cxr_missing_*` score the
# same paired test units; `natural` scores all test units.
CXR_MISSING_LEVELS: tuple[int, ...] = (25, 50, 75, 100)
SCENARIOS: tuple[str, ...] = (
    "paired",
    *(f"cxr_missing_{p}" for p in CXR_MISSING_LEVELS),
    "natural",
)
DEFAULT_SCENARIO = "paired"


def slugify(name: str) -> str:
    """Snake-case slug of a label name, as used for prediction-file columns.

    >>> slugify("Congestive heart failure; nonhypertensive")
    'congestive_heart_failure_nonhypertensive'
    """
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass(frozen=True)
class MetricSpec:
    """A metric's name and direction; the scoring registry implements it."""

    name: str
    greater_is_better: bool
    title: str


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("auroc", True, "AUROC"),
        MetricSpec("auprc", True, "AUPRC (average precision)"),
        MetricSpec("brier", False, "Brier score"),
        MetricSpec("ece", False, "Expected calibration error"),
        MetricSpec("accuracy", True, "Accuracy"),
        MetricSpec("f1", True, "F1"),
        MetricSpec("precision", True, "Precision"),
        MetricSpec("recall", True, "Recall (sensitivity)"),
        MetricSpec("specificity", True, "Specificity"),
        MetricSpec("answer_rate", True, "Answer rate"),
        MetricSpec("macro_auroc", True, "Macro AUROC"),
        MetricSpec("macro_auprc", True, "Macro AUPRC"),
        MetricSpec("micro_auroc", True, "Micro AUROC"),
        MetricSpec("macro_f1", True, "Macro F1"),
        MetricSpec("micro_f1", True, "Micro F1"),
        MetricSpec("kappa", True, "Cohen's kappa (linear weights)"),
        MetricSpec("mad", False, "Mean absolute deviation (hours)"),
    )
}


@dataclass(frozen=True)
class Task:
    """One prediction task of the suite."""

    slug: str
    title: str
    kind: TaskKind
    key_columns: tuple[str, ...]
    label_names: tuple[str, ...]
    primary_metric: str
    metrics: tuple[str, ...]
    decision_metrics: tuple[str, ...] = ()
    hourly: bool = False
    description: str = ""
    label_slugs: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_slugs", tuple(slugify(n) for n in self.label_names))

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Label columns of unit lists and truth files: ``y_true`` for binary tasks and
        length of stay (remaining hours), the label slugs for multi-label tasks."""
        return self.label_slugs if self.kind == "multilabel" else ("y_true",)

    @property
    def is_binary(self) -> bool:
        return self.kind == "binary"

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    def metric(self, name: str) -> MetricSpec:
        return METRICS[name]

    @property
    def primary(self) -> MetricSpec:
        return METRICS[self.primary_metric]


_BINARY_DECISION_METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "answer_rate")

TASKS: dict[str, Task] = {
    t.slug: t
    for t in (
        Task(
            slug="in-hospital-mortality",
            title="In-hospital mortality",
            kind="binary",
            key_columns=("stay_id",),
            label_names=("In-hospital mortality",),
            primary_metric="auroc",
            metrics=("auroc", "auprc", "brier", "ece", "f1", "precision", "recall", "specificity"),
            decision_metrics=_BINARY_DECISION_METRICS,
            description="Death in hospital, predicted from the first 48 hours of an ICU stay.",
        ),
        Task(
            slug="phenotyping",
            title="Phenotyping",
            kind="multilabel",
            key_columns=("stay_id",),
            label_names=PHENOTYPE_NAMES,
            primary_metric="macro_auroc",
            metrics=("macro_auroc", "macro_auprc", "micro_auroc", "macro_f1", "micro_f1"),
            description="25 acute and chronic conditions coded for the stay, predicted at its end.",
        ),
        Task(
            slug="decompensation",
            title="Decompensation",
            kind="binary",
            key_columns=("stay_id", "period_length"),
            label_names=("Decompensation",),
            primary_metric="auroc",
            metrics=("auroc", "auprc", "brier", "ece", "f1", "precision", "recall", "specificity"),
            decision_metrics=_BINARY_DECISION_METRICS,
            hourly=True,
            description="Death in hospital within the next 24 hours, predicted every hour.",
        ),
        Task(
            slug="length-of-stay",
            title="Length of stay",
            kind="los",
            key_columns=("stay_id", "period_length"),
            label_names=tuple(f"LOS bucket {i}" for i in range(10)),
            primary_metric="kappa",
            metrics=("kappa", "mad", "accuracy"),
            hourly=True,
            description="Remaining time in the ICU in ten buckets, predicted every hour.",
        ),
        Task(
            slug="radiology",
            title="Radiology",
            kind="multilabel",
            key_columns=("dicom_id",),
            label_names=FINDING_NAMES,
            primary_metric="macro_auroc",
            metrics=("macro_auroc", "macro_auprc", "micro_auroc", "macro_f1", "micro_f1"),
            description="14 CheXpert findings for each AP chest X-ray taken during a stay.",
        ),
    )
}

TASK_SLUGS: tuple[str, ...] = tuple(TASKS)


def get_task(slug: str) -> Task:
    """Look a task up by slug, with a message that lists the valid ones."""
    try:
        return TASKS[slug]
    except KeyError:
        raise KeyError(f"unknown task {slug!r}; the tasks are: {', '.join(TASKS)}") from None


def los_bucket(hours: np.ndarray | list[float]) -> np.ndarray:
    """Bucket index (0-9) of remaining hours, with mimic3-benchmarks' edges."""
    h = np.asarray(hours, dtype=np.float64)
    edges = np.asarray(LOS_BUCKET_EDGES_DAYS[1:-1]) * 24.0
    return np.searchsorted(edges, h, side="right").astype(np.int64)


def los_bucket_hours(buckets: np.ndarray | list[int]) -> np.ndarray:
    """Bucket-mean hours of bucket indices (used to turn buckets into hours for MAD)."""
    return np.asarray(LOS_BUCKET_MEAN_HOURS)[np.asarray(buckets, dtype=np.int64)]


def age_group(age: np.ndarray | list[float]) -> np.ndarray:
    """Age bin label per age; ages under 18 map to the first bin (MIMIC holds adults)."""
    a = np.asarray(age, dtype=np.float64)
    idx = np.searchsorted(np.asarray(AGE_BIN_EDGES[1:-1]), a, side="right")
    return np.asarray(AGE_BIN_LABELS, dtype=object)[idx]
