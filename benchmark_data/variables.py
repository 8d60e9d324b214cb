"""The 17 clinical variables of MedMod (Appendix A) and their discretized form.

The discretized form follows mimic3-benchmarks' discretizer: one row per hour, the last
value in the hour, previous-value imputation then the normal value, categorical channels
one-hot encoded, and one mask bit per channel (1 when the hour had a measurement):
5 one-hot channels (2 + 8 + 12 + 13 + 12) + 12 continuous + 17 masks = 76 features.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    name: str
    normal: str | float
    categories: tuple[str, ...] = ()
    unit: str = ""

    @property
    def is_categorical(self) -> bool:
        return bool(self.categories)

    @property
    def width(self) -> int:
        return len(self.categories) if self.categories else 1


VARIABLES: tuple[Variable, ...] = (
    Variable("Capillary refill rate", "0.0", ("0.0", "1.0")),
    Variable("Diastolic blood pressure", 59.0, unit="mmHg"),
    Variable("Fraction inspired oxygen", 0.21, unit="fraction"),
    Variable(
        "Glascow coma scale eye opening",
        "4 Spontaneously",
        (
            "To Pain", "3 To speech", "1 No Response", "4 Spontaneously",
            "None", "To Speech", "Spontaneously", "2 To pain",
        ),
    ),
    Variable(
        "Glascow coma scale motor response",
        "6 Obeys Commands",
        (
            "1 No Response", "3 Abnorm flexion", "Abnormal extension", "No response",
            "4 Flex-withdraws", "Localizes Pain", "Flex-withdraws", "Obeys Commands",
            "Abnormal Flexion", "6 Obeys Commands", "5 Localizes Pain", "2 Abnorm extensn",
        ),
    ),
    Variable(
        "Glascow coma scale total",
        "15",
        ("11", "10", "13", "12", "15", "14", "3", "5", "4", "7", "6", "9", "8"),
    ),
    Variable(
        "Glascow coma scale verbal response",
        "5 Oriented",
        (
            "1 No Response", "No Response", "Confused", "Inappropriate Words", "Oriented",
            "No Response-ETT", "5 Oriented", "Incomprehensible sounds", "1.0 ET/Trach",
            "4 Confused", "2 Incomp sounds", "3 Inapprop words",
        ),
    ),
    Variable("Glucose", 128.0, unit="mg/dL"),
    Variable("Heart Rate", 86.0, unit="bpm"),
    Variable("Height", 170.0, unit="cm"),
    Variable("Mean blood pressure", 77.0, unit="mmHg"),
    Variable("Oxygen saturation", 98.0, unit="%"),
    Variable("Respiratory rate", 19.0, unit="breaths/min"),
    Variable("Systolic blood pressure", 118.0, unit="mmHg"),
    Variable("Temperature", 36.6, unit="C"),
    Variable("Weight", 81.0, unit="kg"),
    Variable("pH", 7.4),
)  # fmt: skip

VARIABLE_NAMES: tuple[str, ...] = tuple(v.name for v in VARIABLES)
N_VALUE_FEATURES: int = sum(v.width for v in VARIABLES)  # 59
N_FEATURES: int = N_VALUE_FEATURES + len(VARIABLES)  # 76


def feature_names() -> list[str]:
    """Names of the 76 discretized features, in column order (values, then masks)."""
    names: list[str] = []
    for v in VARIABLES:
        if v.is_categorical:
            names.extend(f"{v.name}->{c}" for c in v.categories)
        else:
            names.append(v.name)
    names.extend(f"mask->{v.name}" for v in VARIABLES)
    return names


assert N_VALUE_FEATURES == 59 and N_FEATURES == 76
