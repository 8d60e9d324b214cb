"""File names of the on-disk benchmark format (docs/benchmark-format.md).

Every part of the project builds paths through these functions, so the format is written
down once.
"""

from __future__ import annotations

FORMAT_NAME = "medmod-benchmark"
FORMAT_VERSION = 2

MANIFEST = "manifest.json"
PUBLIC = "public"
CREDENTIALED = "credentialed"

# Public part ------------------------------------------------------------------------------
# The suite's specification (benchmark_data.suite): modalities, tasks, scenarios, fairness.
# A benchmark without it (written before suites were data) is of the MedMod suite.
SUITE = "public/suite.json"
STAYS = "public/stays.csv"  # stay_id, subject_id, hadm_id, split, intime, stay
CXR_METADATA = "public/cxr/metadata.csv"
# dicom_id, subject_id, study_id, stay_id, split, study_datetime, view_position, hours, path


# Demographics as an input modality (a suite that declares one): stay_id, subject_id, age,
# gender, race, insurance, admission_type, for every split.
PUBLIC_DEMOGRAPHICS = "public/demographics.csv"


def notes(split: str) -> str:
    """Clinical notes a split's units may read (benchmark_data.notes rules already applied):
    note_id, stay_id, subject_id, note_type, note_seq, chart_minute, store_minute, study_id,
    text."""
    return f"public/notes/{split}.csv.gz"


def labs(split: str) -> str:
    """Lab tests a split's units may read (a suite that declares them): stay_id, subject_id,
    hours (since ICU admission), label, value, unit; one row per result."""
    return f"public/labs/{split}.csv.gz"


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
# A sealed synthetic benchmark's generator seed (whoever has it can draw the labels again).
SEALED_SEED = "credentialed/generator.json"
# stay_id, subject_id, age, gender, race, insurance, admission_type


def test_labels(task: str) -> str:
    """Test labels: key columns, subject_id, and the label columns."""
    return f"credentialed/labels/{task}.csv"


# The whole test split, sequestered (format version 2) -----------------------------------
# The public test files show each published stay only up to its cutoff, with the units whose
# prediction time is that cutoff (docs/benchmark-format.md, "The test split"). The whole
# test split, every unit at every prediction time, stays here for the streaming gateway and
# for scoring causal runs on it.
TEST_STAYS = "credentialed/test/stays.csv"
# stay_id, subject_id, hadm_id, intime, stay, end_hours, family, cutoff_hours, published
TEST_TIMESERIES = "credentialed/test/ehr/timeseries.csv.gz"
TEST_DISCRETIZED = "credentialed/test/ehr/discretized.npy"
TEST_DISCRETIZED_INDEX = "credentialed/test/ehr/discretized_index.csv"
TEST_CXR_METADATA = "credentialed/test/cxr/metadata.csv"
# dicom_id, subject_id, study_id, stay_id, study_datetime, view_position, hours, published


def sequestered_image(dicom_id: str) -> str:
    """A test image that the public files do not show (taken after its stay's cutoff, or of
    a stay that is not published)."""
    return f"credentialed/test/cxr/images/{dicom_id}.png"


def test_units(task: str) -> str:
    """Every test unit of a task: key columns, subject_id, stay_id, cxr_dicom_id,
    prediction_hours, public (1 when the unit is in the public test unit list); no labels."""
    return f"credentialed/test/units/{task}.csv"


def all_test_labels(task: str) -> str:
    """Labels of every test unit, in the order of :func:`test_units`."""
    return f"credentialed/test/labels/{task}.csv"


def test_scenarios(task: str) -> str:
    """Withheld stays per scenario over every paired test stay of a task (the public
    scenario file's sets are these sets restricted to the published stays)."""
    return f"credentialed/test/scenarios/{task}.csv"


def is_public(rel: str) -> bool:
    return rel.startswith(PUBLIC + "/")
