"""Matching a prediction file's key columns to the truth's units, vectorized.

:class:`UnitIndex` is built once per truth. :meth:`UnitIndex.match` takes one chunk of a
file's key columns (text, as read) and returns the truth row of every file row (-1 when it
names no unit) and the rows whose key text is malformed. Key columns are parsed per distinct
value (hourly files repeat each stay id on every row), then matched through integer codes:
each key column is coded against the truth's distinct values and the codes are combined
into one integer looked up in a hash index. No Python loop runs per row.

Key types: ``stay_id`` is an integer (``"30000123"``, ``"30000123.0"``); when it comes from
a mimic3-benchmarks ``stay`` column it may also be an episode name
(``"10011_episode1_timeseries.csv"``) mapped through ``Truth.stay_names``;
``period_length`` is a number of hours (``"48"``, ``"48.000000"``) that must be whole when
the truth's are; other keys (``dicom_id``) are text compared after trimming spaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from scoring.truth import Truth

MAX_SHOWN_CHARS = 40
_EXACT_INT = float(2**53)

# How each key column is read, with the words used when a value is malformed.
KEY_KINDS: dict[str, str] = {"stay_id": "id", "period_length": "hours"}
EXPECTED_KEY_TEXT: dict[str, str] = {
    "id": "integer ids",
    "hours": "numbers of hours",
    "text": "non-empty ids",
}


def shown(text: str) -> str:
    """A value of the user's file as shown in a message: trimmed, quoted when empty, cut."""
    text = text.strip()
    if not text:
        return '""'
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _as_text(values: np.ndarray) -> np.ndarray:
    """Stripped text of distinct raw values (object array of str)."""
    return np.asarray([str(v).strip() for v in values], dtype=object)


def _as_number(text: np.ndarray) -> np.ndarray:
    return np.asarray(pd.to_numeric(pd.Series(text, dtype=object), errors="coerce"), dtype=float)


def parse_key_text(text: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values of stripped key texts of a kind (``KEY_KINDS``), the malformed ones, and the
    malformed ids that are names rather than numbers (mimic3-benchmarks episode names).

    Ids are whole numbers (``"30000123"``, ``"30000123.0"``), -1 where malformed; hours are
    finite numbers; text keys are non-empty. Prediction files and truth files share it.

    >>> parsed, bad, names = parse_key_text(
    ...     np.array(["7", "7.0", "7.5", "10011_episode1_timeseries.csv", ""], object), "id")
    >>> parsed.tolist(), bad.tolist(), names.tolist()
    ([7, 7, -1, -1, -1], [False, False, True, True, True], [False, False, False, True, False])
    """
    none = np.zeros(len(text), dtype=bool)
    if kind == "text":
        return text, text == "", none
    number = _as_number(text)
    if kind == "hours":
        return number, ~np.isfinite(number), none
    whole = np.isfinite(number) & (number == np.floor(number))
    whole &= np.abs(number) < _EXACT_INT
    parsed = np.where(whole, number, -1).astype(np.int64)
    return parsed, ~whole, ~whole & (text != "") & ~np.isfinite(number)


@dataclass
class KeyMatch:
    """The result of matching one chunk of key columns."""

    rows: np.ndarray  # truth row per file row, -1 when none
    invalid: dict[int, np.ndarray] = field(default_factory=dict)  # key position -> bad rows
    not_whole: np.ndarray | None = None  # period_length rows that are not whole hours
    names_unavailable: np.ndarray | None = None  # episode names the truth cannot map

    @property
    def malformed(self) -> np.ndarray:
        bad = np.zeros(len(self.rows), dtype=bool)
        for mask in (*self.invalid.values(), self.not_whole, self.names_unavailable):
            if mask is not None:
                bad |= mask
        return bad


class UnitIndex:
    """The truth's units as a hash index over their key columns.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from benchmark_data.tasks import TASKS
    >>> from scoring.truth import Truth
    >>> keys = pd.DataFrame({"stay_id": [7, 7, 9], "period_length": [5, 6, 5]})
    >>> truth = Truth(task=TASKS["decompensation"], keys=keys, y=np.zeros(3),
    ...               clusters=np.arange(3), paired=np.ones(3, bool))
    >>> index = UnitIndex(truth)
    >>> raw = [np.array(["9", "7", "8"], object), np.array(["5.0", " 6", "5"], object)]
    >>> index.match(raw).rows.tolist()
    [2, 1, -1]
    """

    def __init__(self, truth: Truth) -> None:
        self.truth = truth
        self.kinds = [KEY_KINDS.get(k, "text") for k in truth.task.key_columns]
        self._uniques: list[pd.Index] = []
        combined = np.zeros(truth.n, dtype=np.int64)
        for key, kind in zip(truth.task.key_columns, self.kinds, strict=True):
            codes, uniques = pd.factorize(self._truth_values(truth.keys[key], kind))
            self._uniques.append(pd.Index(uniques))
            combined = combined * max(len(uniques), 1) + codes
        self._index = pd.Index(combined)
        if not self._index.is_unique:
            raise ValueError("the truth's keys are not unique")
        self.whole_periods = True
        if "period_length" in truth.task.key_columns:
            p = truth.keys["period_length"].to_numpy(dtype=float)
            self.whole_periods = bool(np.all(p == np.floor(p)))
        self._names = {str(k).strip(): int(v) for k, v in truth.stay_names.items()}

    @staticmethod
    def _truth_values(col: pd.Series, kind: str) -> np.ndarray:
        if kind == "id":
            return col.to_numpy(dtype=np.int64)
        if kind == "hours":
            return col.to_numpy(dtype=float)
        return _as_text(col.to_numpy(dtype=object))

    def match(self, raw: list[np.ndarray], *, stay_names: bool = False) -> KeyMatch:
        """Truth rows of file rows from the raw text of their key columns.

        ``raw`` holds one object array of str per task key column, in task key order;
        ``stay_names`` says the ``stay_id`` text comes from a ``stay`` column.
        """
        n = len(raw[0]) if raw else 0
        out = KeyMatch(rows=np.full(n, -1, dtype=np.int64))
        combined = np.zeros(n, dtype=np.int64)
        valid = np.ones(n, dtype=bool)
        for pos, (kind, uniques, values) in enumerate(
            zip(self.kinds, self._uniques, raw, strict=True)
        ):
            # Parse each distinct value once: hourly files repeat a stay on every row.
            codes, distinct = pd.factorize(values, use_na_sentinel=False)
            text = _as_text(distinct)
            parsed, malformed, names = parse_key_text(text, kind)
            if kind == "id" and stay_names and names.any():
                malformed &= ~names
                if self._names:
                    parsed[names] = [self._names.get(t, -1) for t in text[names]]
                else:
                    out.names_unavailable = names[codes]
            elif kind == "hours" and self.whole_periods:
                fraction = ~malformed & (parsed != np.floor(parsed))
                if fraction.any():
                    out.not_whole = fraction[codes]
                    parsed = np.where(fraction, np.nan, parsed)
            if malformed.any():
                out.invalid[pos] = malformed[codes]
            unit_codes = uniques.get_indexer(parsed)
            unit_codes[malformed] = -1
            row_codes = unit_codes[codes]
            valid &= row_codes >= 0
            combined = combined * max(len(uniques), 1) + np.maximum(row_codes, 0)
        found = self._index.get_indexer(combined)
        out.rows = np.where(valid, found, -1).astype(np.int64)
        return out

    def truth_keys_text(self, rows: np.ndarray) -> list[str]:
        """Display text of truth units (first keys of a message)."""
        keys = self.truth.keys.iloc[np.asarray(rows, dtype=np.int64)]
        cols = []
        for key, kind in zip(self.truth.task.key_columns, self.kinds, strict=True):
            v = keys[key].to_numpy()
            if kind == "hours":
                f = v.astype(float)
                cols.append([str(int(x)) if x == np.floor(x) else repr(float(x)) for x in f])
            else:
                cols.append([str(x) for x in v])
        return [_join_key(parts) for parts in zip(*cols, strict=True)]


def file_keys_text(raw: list[np.ndarray], rows: np.ndarray) -> list[str]:
    """Display text of file rows' keys, as written in the file."""
    return [_join_key([shown(str(col[i])) for col in raw]) for i in rows]


def _join_key(parts: list[str] | tuple[str, ...]) -> str:
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"
