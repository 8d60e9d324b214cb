"""File names of the on-disk benchmark format (docs/benchmark-format.md).

Every part of the project builds paths through these functions, so the format is written
down once.
"""

from __future__ import annotations

FORMAT_NAME = "medmod-benchmark"
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
PUBLIC = "public"
CREDENTIALED = "credentialed"

# Public part ------------------------------------------------------------------------------
STAYS = "public/stays.csv"  # stay_id, subject_id, hadm_id, split, intime, stay
CXR_METADATA = "public/cxr/metadata.csv"
# dicom_id, subject_id, study_id, stay_id, split, study_datetime, view_position, hours, path


def timeseries(split: str) -> str:
    """Irregular time series: stay_id, hours, then the 17 variables (blank: not measured)."""
    return f"public/ehr/timeseries_{split}.csv.gz"


def discretized(split: str) -> str:
    """float32 array (total hours x 76), stays stacked in the order of the index file."""
    return f"public/ehr/discretized_{split}.npy"


def discretized_index(split: str) -> str:
    """stay_id, offset, n_hours: which rows of the discretized array belong to a stay."""
    return f"public/ehr/discretized_{split}_index.csv"


def image(dicom_id: str) -> str:
    return f"public/cxr/images/{dicom_id}.png"


def units(task: str, split: str) -> str:
    """Unit list of a task and split: key columns, subject_id, stay_id, cxr_dicom_id, and
    the label columns for train and val (never for test)."""
    return f"public/tasks/{task}/{split}.csv"


def scenarios(task: str) -> str:
    """Paired test stays of a task and whether their X-ray is withheld per scenario:
    stay_id, cxr_missing_25, cxr_missing_50, cxr_missing_75, cxr_missing_100 (0/1)."""
    return f"public/scenarios/{task}.csv"


# Credentialed part ------------------------------------------------------------------------
DEMOGRAPHICS = "credentialed/demographics.csv"
# stay_id, subject_id, age, gender, race, insurance, admission_type


def test_labels(task: str) -> str:
    """Test labels: key columns, subject_id, and the label columns."""
    return f"credentialed/labels/{task}.csv"


def is_public(rel: str) -> bool:
    return rel.startswith(PUBLIC + "/")
