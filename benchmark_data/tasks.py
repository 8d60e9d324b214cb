"""The MedMod task suite: its five tasks, read from its declaration
(``benchmark_data/suites/medmod.json``, see :mod:`benchmark_data.suite`).

Scoring, the baselines and the platform read these definitions; nothing else repeats
a label name, a bucket edge or a metric direction.

>>> TASKS["in-hospital-mortality"].primary_metric
'auroc'
>>> los_bucket([3.0, 30.0, 400.0]).tolist()
[0, 1, 9]
"""

from __future__ import annotations

import numpy as np

from benchmark_data.suite import (
    METRICS,
    MetricSpec,
    Suite,
    Task,
    TaskKind,
    builtin_suite,
    slugify,
)

SPLITS: tuple[str, ...] = ("train", "val", "test")

# The MedMod suite, declared in benchmark_data/suites/medmod.json. The names below are read
# from that declaration; they are kept for the code that predates suites.
MEDMOD: Suite = builtin_suite("medmod")

TASKS: dict[str, Task] = {t.slug: t for t in MEDMOD.tasks}
TASK_SLUGS: tuple[str, ...] = tuple(TASKS)

# MedMod Appendix B; order as in MedMod's CLASSES (alphabetical).
PHENOTYPE_NAMES: tuple[str, ...] = TASKS["phenotyping"].label_names
# CheXpert findings as used by MedMod's radiology task (R_CLASSES).
FINDING_NAMES: tuple[str, ...] = TASKS["radiology"].label_names

# Length-of-stay buckets in days (mimic3-benchmarks CustomBins): a remaining time of x hours
# falls in bucket i when LOS_BUCKET_EDGES_DAYS[i] * 24 <= x < LOS_BUCKET_EDGES_DAYS[i + 1] * 24.
_LOS = TASKS["length-of-stay"].buckets
assert _LOS is not None
LOS_BUCKET_EDGES_DAYS: tuple[float, ...] = _LOS.edges_days
LOS_BUCKET_MEAN_HOURS: tuple[float, ...] = _LOS.mean_hours
LOS_BUCKET_COLUMNS: tuple[str, ...] = tuple(
    f"bucket_{i}" for i in range(len(LOS_BUCKET_MEAN_HOURS))
)

# Demographic attributes used for fairness, and the age bins (years).
FAIRNESS_ATTRIBUTES: tuple[str, ...] = MEDMOD.fairness_attributes
AGE_BIN_EDGES: tuple[float, ...] = MEDMOD.fairness_attribute("age_group").edges
AGE_BIN_LABELS: tuple[str, ...] = MEDMOD.fairness_attribute("age_group").labels
RACE_GROUPS: tuple[str, ...] = MEDMOD.fairness_attribute("race").groups

# Missing-modality scenarios (DESIGN.md, robustness). `paired` and `cxr_missing_*` score the
# same paired test units; `natural` scores all test units.
CXR_MISSING_LEVELS: tuple[int, ...] = MEDMOD.modality("cxr").withheld_levels
SCENARIOS: tuple[str, ...] = MEDMOD.scenarios
DEFAULT_SCENARIO = "paired"
NATURAL_SCENARIO = "natural"


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


__all__ = [
    "AGE_BIN_EDGES",
    "AGE_BIN_LABELS",
    "CXR_MISSING_LEVELS",
    "DEFAULT_SCENARIO",
    "FAIRNESS_ATTRIBUTES",
    "FINDING_NAMES",
    "LOS_BUCKET_COLUMNS",
    "LOS_BUCKET_EDGES_DAYS",
    "LOS_BUCKET_MEAN_HOURS",
    "MEDMOD",
    "METRICS",
    "NATURAL_SCENARIO",
    "PHENOTYPE_NAMES",
    "RACE_GROUPS",
    "SCENARIOS",
    "SPLITS",
    "TASKS",
    "TASK_SLUGS",
    "MetricSpec",
    "Suite",
    "Task",
    "TaskKind",
    "age_group",
    "get_task",
    "los_bucket",
    "los_bucket_hours",
    "slugify",
]
