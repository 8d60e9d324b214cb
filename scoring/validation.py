"""Prediction-file validation: an upload in, predictions aligned with the truth out.

:func:`read_predictions` reads a CSV prediction file (optionally gzip) in chunks, checks it
against a :class:`~scoring.truth.Truth`, and returns :class:`Predictions` whose arrays follow
the truth's unit order. A file with any problem is refused whole with a
:class:`~scoring.errors.PredictionFileError` that names the column, the count and the first
five offending keys. The accepted forms and every rule are in ``docs/prediction-files.md``.

Layers: :mod:`scoring.upload` (bytes: limits, gzip, UTF-8), :mod:`scoring.prediction_columns`
(header: form and columns), :mod:`scoring.prediction_keys` (keys to truth rows), and here the
rows: values, scenarios and coverage of the units.

Tolerances: probabilities must lie in [0, 1] exactly; ``bucket_0..bucket_9`` rows must sum
to 1 within ``BUCKET_SUM_TOLERANCE`` (1e-3, absolute), which admits float32 softmax outputs
written with four or more decimals; remaining hours must be >= 0. Values out of range are
refused, never transformed: the message says what to apply (softmax to bucket logits, the
sigmoid to logits, clipping to negative hours) and shows the first offending values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from benchmark_data.suite import Suite
from benchmark_data.tasks import Task
from scoring.errors import (
    ERR_BAD_HEADER,
    ERR_BAD_KEY_VALUES,
    ERR_BUCKET_SUM,
    ERR_DECISION_VALUES,
    ERR_DUPLICATE_UNITS,
    ERR_EMPTY_FILE,
    ERR_EMPTY_VALUES,
    ERR_MALFORMED_CSV,
    ERR_MISSING_UNITS,
    ERR_NEGATIVE_HOURS,
    ERR_NO_BASE_SCENARIO,
    ERR_NO_ROWS,
    ERR_NOT_FINITE,
    ERR_NOT_NUMERIC,
    ERR_PAIRED_AND_NATURAL,
    ERR_PERIOD_NOT_WHOLE,
    ERR_PROBABILITY_RANGE,
    ERR_ROW_FIELDS,
    ERR_STAY_NAMES_UNAVAILABLE,
    ERR_TOO_MANY_ROWS,
    ERR_UNKNOWN_SCENARIO,
    ERR_UNKNOWN_UNITS,
    ERR_UNPAIRED_UNITS,
    HINT_SIGMOID,
    HINT_SOFTMAX,
    WARN_NATURAL_AS_PAIRED,
    WARN_SCENARIO_NOT_SCORED,
    PredictionFileError,
)
from scoring.prediction_columns import Layout, column_layout
from scoring.prediction_keys import EXPECTED_KEY_TEXT, UnitIndex, file_keys_text, shown
from scoring.truth import Truth
from scoring.upload import UploadStream

DEFAULT_MAX_BYTES = 256 * 2**20
DEFAULT_MAX_UNCOMPRESSED_BYTES = 1024 * 2**20
BUCKET_SUM_TOLERANCE = 1e-3
CHUNK_ROWS = 100_000
MAX_KEYS_SHOWN = 5

BASE_SCENARIO = "paired"
BUCKET_SUM_COLUMN = "bucket_0..bucket_9"


def scenario_codes(suite: Suite) -> tuple[str, ...]:
    """Scenario codes of the rows: 0 is paired (or natural, the same inputs), then the
    suite's scenarios that withhold something (MedMod: cxr_missing_*)."""
    return (BASE_SCENARIO, *(s for s in suite.scenarios if s not in (BASE_SCENARIO, "natural")))


_NAN_WORDS = frozenset({"nan", "+nan", "-nan"})
_FIELDS_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")

# The order in which problems are reported when a file has several.
_KEY_PROBLEMS = (ERR_STAY_NAMES_UNAVAILABLE, ERR_BAD_KEY_VALUES, ERR_PERIOD_NOT_WHOLE)
_VALUE_PROBLEMS = (
    ERR_EMPTY_VALUES,
    ERR_NOT_NUMERIC,
    ERR_NOT_FINITE,
    ERR_PROBABILITY_RANGE,
    ERR_NEGATIVE_HOURS,
    ERR_DECISION_VALUES,
    ERR_BUCKET_SUM,
)


@dataclass
class Predictions:
    """A validated prediction file, aligned with the truth's units.

    Attributes
    ----------
    task : Task
    form : str
        ``"probability"`` or ``"decision"`` (binary tasks; multi-label tasks are always
        ``"probability"``), ``"hours"`` or ``"buckets"`` (length of stay).
    values : dict of str to ndarray
        Per scenario, float64 values in ``truth.keys`` row order: (n,) for binary, decision
        (1, 0, NaN for no answer) and hours; (n, L) in ``task.label_slugs`` order for
        multi-label; (n, 10) for buckets. ``"paired"`` (also given as ``natural``) covers every
        unit; each ``"cxr_missing_*"`` present covers the paired units and is NaN elsewhere.
    n_rows, size, sha256
        Data rows read; size and sha256 of the raw uploaded bytes.
    columns : list of str
        The header's column names, in file order.
    warnings : list of str
        Harmless things that were tolerated (byte order mark, mimic3 names, ...).
    """

    task: Task
    form: str
    values: dict[str, np.ndarray]
    n_rows: int
    size: int
    sha256: str
    columns: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def scenarios(self) -> list[str]:
        return list(self.values)  # in the suite's scenario order


@dataclass
class _Tally:
    """One kind of problem: how many rows, the first keys, a few offending values."""

    count: int = 0
    keys: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def add(self, mask: np.ndarray, raw_keys: list[np.ndarray], texts: Any = None) -> None:
        rows = np.flatnonzero(mask)
        if not len(rows):
            return
        self.count += len(rows)
        if len(self.keys) < MAX_KEYS_SHOWN:
            self.keys += file_keys_text(raw_keys, rows[: MAX_KEYS_SHOWN - len(self.keys)])
        if texts is not None and len(self.values) < MAX_KEYS_SHOWN:
            for t in texts[rows[:100]]:
                s = shown(str(t))
                if s not in self.values and len(self.values) < MAX_KEYS_SHOWN:
                    self.values.append(s)


@dataclass
class _Rows:
    """What the chunks of a file add up to."""

    layout: Layout
    index: UnitIndex
    tallies: dict[tuple[str, str], _Tally] = field(default_factory=dict)
    units: list[np.ndarray] = field(default_factory=list)
    scenarios: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    n_rows: int = 0
    natural: bool = False
    paired: bool = False

    @cached_property
    def codes(self) -> tuple[str, ...]:
        return scenario_codes(self.index.truth.suite)

    @cached_property
    def code_of(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.codes)} | {"natural": 0}

    def tally(self, template: str, column: str) -> _Tally:
        return self.tallies.setdefault((template, column), _Tally())


def _fail(template: str, *, tally: _Tally | None = None, **fields: Any) -> PredictionFileError:
    details: dict[str, Any] = {
        k: v for k, v in fields.items() if k in ("column", "scenario", "line", "limit")
    }
    if tally is not None:
        fields.setdefault("count", tally.count)
        fields.setdefault("keys", ", ".join(tally.keys))
        fields.setdefault("values", ", ".join(tally.values))
        details.update(count=tally.count, keys=list(tally.keys))
        if tally.values:
            details["values"] = list(tally.values)
    return PredictionFileError.from_template(template, details=details, **fields)


# --- reading the rows ---------------------------------------------------------------------
def _read_chunks(stream: UploadStream, n_columns: int) -> Iterator[pd.DataFrame]:
    """Chunks of the file as text columns; parser problems become PredictionFileError (the
    header's too: a quote opened there and never closed fails as the reader starts)."""
    reader = None
    try:
        reader = pd.read_csv(
            stream,
            header=0,
            dtype=object,
            na_filter=False,
            chunksize=CHUNK_ROWS,
            engine="c",
            encoding="utf-8",
            skip_blank_lines=True,
            skipinitialspace=True,
        )
        for chunk in reader:
            if not isinstance(chunk.index, pd.RangeIndex):
                raise _fail(
                    ERR_ROW_FIELDS,
                    where="the first data row",
                    found=n_columns + 1,
                    expected=n_columns,
                )
            if chunk.shape[1] != n_columns:
                raise _fail(ERR_BAD_HEADER, reason="its columns cannot be told apart")
            yield chunk
    except PredictionFileError:
        raise
    except pd.errors.ParserError as exc:
        text = str(exc)
        m = _FIELDS_RE.search(text)
        if m:
            line = int(m.group(2)) + stream.blank_lines_skipped
            raise _fail(
                ERR_ROW_FIELDS,
                where=f"line {line}",
                found=int(m.group(3)),
                expected=int(m.group(1)),
                line=line,
            ) from None
        reason = text.replace("Error tokenizing data. C error: ", "").strip()
        raise _fail(ERR_MALFORMED_CSV, reason=reason) from None
    except pd.errors.EmptyDataError:
        raise _fail(ERR_EMPTY_FILE) from None
    except (ValueError, TypeError, OverflowError, UnicodeError) as exc:
        raise _fail(ERR_MALFORMED_CSV, reason=str(exc)) from None
    finally:
        if reader is not None:
            reader.close()


def _scenario_codes(acc: _Rows, chunk: pd.DataFrame, raw_keys: list[np.ndarray]) -> np.ndarray:
    pos = acc.layout.scenario
    if pos is None:
        acc.paired = True
        return np.zeros(len(chunk), dtype=np.int8)
    codes, distinct = pd.factorize(chunk.iloc[:, pos].to_numpy(dtype=object))
    names = [str(d).strip() for d in distinct]
    code_of = acc.code_of
    mapped = np.asarray([code_of.get(s, -1) for s in names], dtype=np.int8)
    acc.natural |= "natural" in names
    acc.paired |= "paired" in names
    rows = mapped[codes]
    unknown = rows < 0
    if unknown.any():
        acc.tally(ERR_UNKNOWN_SCENARIO, "scenario").add(
            unknown, raw_keys, np.asarray(names, dtype=object)[codes]
        )
    return rows


def _check_values(acc: _Rows, chunk: pd.DataFrame, raw_keys: list[np.ndarray]) -> np.ndarray:
    """Numeric values of the chunk's value columns, tallying every bad value."""
    lay = acc.layout
    out = np.empty((len(chunk), len(lay.values)), dtype=np.float64)
    for j, (pos, name) in enumerate(zip(lay.values, lay.value_names, strict=True)):
        text = chunk.iloc[:, pos].to_numpy(dtype=object)
        v = np.asarray(pd.to_numeric(pd.Series(text, dtype=object), errors="coerce"), dtype=float)
        out[:, j] = v
        nan = np.isnan(v)
        if nan.any():
            stripped = np.asarray([str(t).strip() for t in text[nan]], dtype=object)
            empty = np.zeros(len(v), dtype=bool)
            empty[nan] = stripped == ""
            word = np.zeros(len(v), dtype=bool)
            word[nan] = [s.lower() in _NAN_WORDS for s in stripped]
            bad_text = nan & ~empty & ~word
            if lay.form == "decision":
                acc.tally(ERR_DECISION_VALUES, name).add(nan & ~empty, raw_keys, text)
            else:
                acc.tally(ERR_EMPTY_VALUES, name).add(empty, raw_keys)
                acc.tally(ERR_NOT_NUMERIC, name).add(bad_text, raw_keys, text)
                acc.tally(ERR_NOT_FINITE, name).add(word, raw_keys)
        inf = np.isinf(v)
        finite = ~nan & ~inf
        if lay.form == "decision":
            acc.tally(ERR_DECISION_VALUES, name).add(
                inf | (finite & (v != 0) & (v != 1)), raw_keys, text
            )
            continue
        acc.tally(ERR_NOT_FINITE, name).add(inf, raw_keys)
        with np.errstate(invalid="ignore"):
            if lay.form == "hours":
                acc.tally(ERR_NEGATIVE_HOURS, name).add(finite & (v < 0), raw_keys, text)
            else:
                outside = finite & ((v < 0) | (v > 1))
                acc.tally(ERR_PROBABILITY_RANGE, name).add(outside, raw_keys, text)
    if lay.form == "buckets":
        total = out.sum(axis=1)
        ok = np.isfinite(total)
        off = ok & (np.abs(np.where(ok, total, 1.0) - 1.0) > BUCKET_SUM_TOLERANCE)
        if off.any():
            sums = np.asarray([f"{x:.6g}" for x in total], dtype=object)
            acc.tally(ERR_BUCKET_SUM, BUCKET_SUM_COLUMN).add(off, raw_keys, sums)
    return out


def _add_chunk(acc: _Rows, chunk: pd.DataFrame) -> None:
    lay = acc.layout
    raw_keys = [chunk.iloc[:, pos].to_numpy(dtype=object) for _, pos in lay.keys]
    match = acc.index.match(raw_keys, stay_names=lay.stay_names)
    for pos, mask in match.invalid.items():
        acc.tally(ERR_BAD_KEY_VALUES, lay.key_names[pos]).add(mask, raw_keys)
    if match.not_whole is not None:
        acc.tally(ERR_PERIOD_NOT_WHOLE, "period_length").add(match.not_whole, raw_keys)
    if match.names_unavailable is not None:
        acc.tally(ERR_STAY_NAMES_UNAVAILABLE, "stay").add(match.names_unavailable, raw_keys)
    unknown = (match.rows < 0) & ~match.malformed
    acc.tally(ERR_UNKNOWN_UNITS, ", ".join(lay.key_names)).add(unknown, raw_keys)
    acc.units.append(match.rows)
    acc.scenarios.append(_scenario_codes(acc, chunk, raw_keys))
    acc.values.append(_check_values(acc, chunk, raw_keys))
    acc.n_rows += len(chunk)


# --- checks over the whole file -----------------------------------------------------------
def _raise_tallied(acc: _Rows, templates: tuple[str, ...]) -> None:
    task = acc.index.truth.task
    for template in templates:
        for (tpl, column), t in acc.tallies.items():
            if tpl != template or not t.count:
                continue
            kind = dict(zip(acc.layout.key_names, acc.index.kinds, strict=True)).get(column)
            buckets = acc.layout.form == "buckets"
            raise _fail(
                template,
                tally=t,
                column=column,
                task=task.slug,
                scope="",
                expected=EXPECTED_KEY_TEXT.get(kind or "text"),
                tolerance=BUCKET_SUM_TOLERANCE,
                scenarios=", ".join(acc.index.truth.suite.scenarios),
                hint=HINT_SOFTMAX if buckets else HINT_SIGMOID,
            )


def _coverage(acc: _Rows, units: np.ndarray, scen: np.ndarray) -> None:
    """Each scenario's rows cover its units exactly once."""
    truth = acc.index.truth
    column = ", ".join(acc.layout.key_names)
    n_paired = int(truth.paired.sum())
    with_scenarios = acc.layout.scenario is not None
    if with_scenarios and not (scen == 0).any():
        raise _fail(ERR_NO_BASE_SCENARIO, n_units=truth.n, task=truth.task.slug)
    for code, name in enumerate(acc.codes):
        sel = scen == code
        if not sel.any():
            continue
        shown_name = "natural" if code == 0 and acc.natural else name
        scope = f" in scenario {shown_name}" if with_scenarios else ""
        rows = units[sel]
        required = truth.paired if code else np.ones(truth.n, dtype=bool)
        if code:
            extra = ~truth.paired[rows]
            if extra.any():
                keys = acc.index.truth_keys_text(rows[extra][:MAX_KEYS_SHOWN])
                t = _Tally(int(extra.sum()), keys)
                raise _fail(
                    ERR_UNPAIRED_UNITS, tally=t, scenario=name, n_paired=n_paired, column=column
                )
        counts = np.bincount(rows, minlength=truth.n)
        dup = np.flatnonzero(counts > 1)
        if len(dup):
            keys = acc.index.truth_keys_text(dup[:MAX_KEYS_SHOWN])
            raise _fail(
                ERR_DUPLICATE_UNITS,
                tally=_Tally(len(dup), keys),
                scope=scope,
                rows=int(counts[dup].sum()),
                column=column,
                scenario=shown_name,
            )
        missing = np.flatnonzero(required & (counts == 0))
        if len(missing):
            keys = acc.index.truth_keys_text(missing[:MAX_KEYS_SHOWN])
            raise _fail(
                ERR_MISSING_UNITS,
                tally=_Tally(len(missing), keys),
                scope=scope,
                n_units=int(required.sum()),
                column=column,
                scenario=shown_name,
            )


def _check_rows(acc: _Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raise the first problem found, in a fixed order; return units, scenarios, values."""
    if not acc.n_rows:
        raise _fail(ERR_NO_ROWS)
    _raise_tallied(acc, (*_KEY_PROBLEMS, ERR_UNKNOWN_SCENARIO))
    if acc.natural and acc.paired:
        raise _fail(ERR_PAIRED_AND_NATURAL)
    _raise_tallied(acc, (ERR_UNKNOWN_UNITS,))
    units = np.concatenate(acc.units)
    scen = np.concatenate(acc.scenarios)
    _coverage(acc, units, scen)
    _raise_tallied(acc, _VALUE_PROBLEMS)
    return units, scen, np.concatenate(acc.values)


def _max_rows(truth: Truth) -> int:
    return truth.n + (len(scenario_codes(truth.suite)) - 1) * int(truth.paired.sum())


def read_predictions(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    *,
    truth: Truth,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> Predictions:
    """Validate a prediction file against a truth and align its values with the truth's units.

    Parameters
    ----------
    source : path, bytes or binary file object
        The uploaded file: CSV, optionally gzip-compressed (recognised by its bytes).
    truth : Truth
        The units to predict; only keys, ``paired``, ``withheld`` and ``stay_names`` are read.
    max_bytes : int
        Largest accepted upload, in raw bytes.
    max_uncompressed_bytes : int
        Largest accepted content after decompression; decompression stops there.

    Returns
    -------
    Predictions

    Raises
    ------
    PredictionFileError
        The file is refused whole; ``.message`` names the column, the count and the first
        five offending keys; ``.code`` identifies the problem.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from benchmark_data.tasks import TASKS
    >>> truth = Truth(task=TASKS["in-hospital-mortality"],
    ...               keys=pd.DataFrame({"stay_id": [11, 12, 13]}), y=np.array([0, 1, 0]),
    ...               clusters=np.arange(3), paired=np.array([True, True, False]))
    >>> preds = read_predictions(b"stay_id,prediction\\n13,0.2\\n11,0.9\\n12,0.4\\n", truth=truth)
    >>> preds.form, preds.values["paired"].tolist()
    ('probability', [0.9, 0.4, 0.2])
    >>> read_predictions(b"stay_id,prediction\\n11,0.9\\n12,1.4\\n13,0.1\\n", truth=truth)
    Traceback (most recent call last):
    ...
    scoring.errors.PredictionFileError: column prediction has 1 value(s) outside [0, 1] (1.4), first rows: 12: predictions are probabilities: if these are logits, apply the sigmoid 1 / (1 + exp(-x))
    """
    with UploadStream(
        source, max_bytes=max_bytes, max_uncompressed_bytes=max_uncompressed_bytes
    ) as stream:
        line = stream.header_line()
        if line is None:
            raise _fail(ERR_EMPTY_FILE)
        layout = column_layout(truth.task, line)
        acc = _Rows(layout=layout, index=UnitIndex(truth))
        limit = _max_rows(truth)
        for chunk in _read_chunks(stream, len(layout.names)):
            _add_chunk(acc, chunk)
            if acc.n_rows > limit:
                raise _fail(
                    ERR_TOO_MANY_ROWS,
                    limit=limit,
                    task=truth.task.slug,
                    n_units=truth.n,
                    n_paired=int(truth.paired.sum()),
                )
        units, scen, values = _check_rows(acc)
        stream.finish()
        warnings = [*stream.warnings, *layout.warnings]
        size, sha256 = stream.size, stream.sha256

    out: dict[str, np.ndarray] = {}
    one_column = truth.task.kind != "multilabel" and layout.form != "buckets"
    for code, name in enumerate(acc.codes):
        sel = scen == code
        if not sel.any():
            continue
        full = np.full((truth.n, values.shape[1]), np.nan)
        full[units[sel]] = values[sel]
        out[name] = full[:, 0] if one_column else full
        if code and name not in truth.withheld:
            warnings.append(WARN_SCENARIO_NOT_SCORED.format(scenario=name))
    if acc.natural:
        warnings.append(WARN_NATURAL_AS_PAIRED)
    return Predictions(
        task=truth.task,
        form=layout.form,
        values=out,
        n_rows=acc.n_rows,
        size=size,
        sha256=sha256,
        columns=list(layout.names),
        warnings=warnings,
    )
