"""Errors a user can act on, and the messages that explain them.

A :class:`ScoringInputError` carries a ``message`` written for the person who uploaded the
input (shown as is on the web and in API responses), a stable ``code`` that clients can switch
on, and JSON-able ``details`` (column, count, first offending keys). Messages name columns,
counts, the uploaded file's own keys and values, and limits; they never hold a label or a
per-unit score from the ground truth.

Every prediction-file message is a template below; ``PREDICTION_FILE_CODES`` gives its code.

>>> err = PredictionFileError.from_template(ERR_EMPTY_FILE)
>>> err.code, err.message
('empty_file', 'the file is empty: a prediction file is a CSV file with a header row')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Lists in a message (columns, labels) are cut to this many names, then "and N more".
MAX_LISTED = 5


def listing(names: Iterable[str], limit: int = MAX_LISTED) -> str:
    """Names joined by commas, cut to the first ``limit`` with "and N more".

    >>> listing(["a", "b"])
    'a, b'
    >>> listing([f"pred_{i}" for i in range(1, 26)])
    'pred_1, pred_2, pred_3, pred_4, pred_5 and 20 more'
    """
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


class ScoringInputError(ValueError):
    """Bad input from a user.

    Attributes
    ----------
    message : str
        Safe to show to the user: it never holds a label or a per-unit score.
    code : str
        A stable identifier of the problem (``"missing_units"``, ...).
    details : dict
        JSON-able facts behind the message: ``column``, ``count``, ``keys`` (the first
        offending keys, as text), ``scenario``, ``line``, ``offset``, ``limit``.
    """

    default_code = "invalid_input"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details: dict[str, Any] = dict(details or {})

    def as_dict(self) -> dict[str, Any]:
        """The error as a JSON-able dict (``code``, ``message``, ``details``)."""
        return {"code": self.code, "message": self.message, "details": self.details}


class PredictionFileError(ScoringInputError):
    """A prediction file is refused whole; the message says what is wrong and where."""

    default_code = "invalid_prediction_file"

    @classmethod
    def from_template(
        cls, template: str, *, details: dict[str, Any] | None = None, **fields: Any
    ) -> PredictionFileError:
        """Build the error of a message template (one of the ``ERR_*`` constants)."""
        return cls(template.format(**fields), code=PREDICTION_FILE_CODES[template], details=details)


# --- Bytes: size, compression, encoding -------------------------------------------------------
ERR_FILE_TOO_LARGE = "the file is larger than the limit of {limit} bytes ({limit_text})"
ERR_UNCOMPRESSED_TOO_LARGE = (
    "the file decompresses to more than the limit of {limit} bytes ({limit_text}); "
    "decompression was stopped there"
)
ERR_CORRUPT_GZIP = "the file starts like gzip but cannot be decompressed ({reason})"
ERR_NOT_CSV = "the file is {kind}, not a CSV file: upload a CSV file, optionally gzip-compressed"
ERR_UTF16 = "the file is UTF-16 encoded: save it as UTF-8"
ERR_ENCODING = (
    "the file is not valid UTF-8: byte 0x{byte} at byte offset {offset} (line {line}) cannot "
    "be decoded; save the file as UTF-8"
)
ERR_EMPTY_FILE = "the file is empty: a prediction file is a CSV file with a header row"
ERR_HEADER_TOO_LONG = (
    "the first line is longer than {limit} bytes: a prediction file starts with a short header row"
)

# --- Header ---------------------------------------------------------------------------------
ERR_DELIMITER = (
    "the header row is separated by {delimiter}, not commas: prediction files are comma-separated"
)
ERR_BAD_HEADER = "the header row cannot be read as CSV ({reason})"
ERR_UNNAMED_COLUMN = (
    "column {position} of the header has no name (an index column or a trailing comma?)"
)
ERR_DUPLICATE_COLUMNS = "column(s) {columns} appear more than once in the header: keep one of each"
ERR_LABEL_COLUMNS = (
    "the file carries label columns: remove column(s) {columns} and keep the key and "
    "prediction columns (a prediction file holds predictions only)"
)
ERR_MISSING_KEY_COLUMNS = "missing key column(s) {columns}: {task} files are keyed by {keys}"
ERR_UNKNOWN_COLUMNS = "unknown column(s) {columns}{suggestion}: {task} files have {expected}"
ERR_PREDICTION_AND_DECISION = (
    "the file has both prediction and decision columns: give probabilities (prediction) or "
    "decisions (decision), not both"
)
ERR_HOURS_AND_BUCKETS = (
    "the file has both prediction (hours) and bucket_0..bucket_9 columns: give one form only"
)
ERR_MIXED_LABEL_COLUMNS = (
    "the file mixes label-name columns ({slugs}) with position columns ({positions}): use one "
    "naming only"
)
ERR_MISSING_COLUMNS = "missing column(s) {columns}: {task} files have {expected}"

# --- Rows -----------------------------------------------------------------------------------
ERR_NO_ROWS = "the file has a header row but no data rows"
ERR_ROW_FIELDS = (
    "{where} has {found} fields but the header has {expected}: every row needs one value per column"
)
ERR_MALFORMED_CSV = "the file cannot be read as CSV: {reason}"
ERR_TOO_MANY_ROWS = (
    "the file has more than {limit} rows, more than {task} files can have ({n_units} units, "
    "plus {n_paired} paired units per cxr_missing scenario): it repeats units or names "
    "unknown ones"
)

# --- Keys and scenarios ---------------------------------------------------------------------
ERR_BAD_KEY_VALUES = (
    "column {column} has {count} malformed value(s) (expected {expected}), first rows: {keys}"
)
ERR_PERIOD_NOT_WHOLE = (
    "column period_length has {count} value(s) that are not whole hours, first rows: {keys}"
)
ERR_STAY_NAMES_UNAVAILABLE = (
    "column stay holds episode names ({keys}) but this benchmark does not list them: use stay_id"
)
ERR_UNKNOWN_SCENARIO = (
    "column scenario has {count} value(s) that are not scenarios ({values}), first rows: "
    "{keys}; the scenarios are {scenarios}"
)
ERR_PAIRED_AND_NATURAL = (
    "the file has rows for both scenario paired and scenario natural: they are the same "
    "predictions (every available image); give them once, as paired"
)
ERR_NO_BASE_SCENARIO = (
    "the file has no rows for scenario paired: predictions made with every available image "
    "are required for all {n_units} {task} units"
)

# --- Coverage of the units ------------------------------------------------------------------
ERR_UNKNOWN_UNITS = (
    "{count} row(s){scope} name units that are not in the {task} set being scored "
    "(column {column}), first: {keys}"
)
ERR_UNPAIRED_UNITS = (
    "scenario {scenario} must cover exactly the {n_paired} units with a chest X-ray; {count} "
    "row(s) are units without one, first: {keys}"
)
ERR_DUPLICATE_UNITS = (
    "{count} unit(s) appear more than once{scope} ({rows} rows in all, column {column}), "
    "first: {keys}"
)
ERR_MISSING_UNITS = (
    "{count} of the {n_units} units to predict{scope} have no row (column {column}), first: {keys}"
)

# --- Values ---------------------------------------------------------------------------------
ERR_EMPTY_VALUES = "column {column} has {count} empty value(s), first rows: {keys}"
ERR_NOT_NUMERIC = (
    "column {column} has {count} value(s) that are not numbers ({values}), first rows: {keys}"
)
ERR_NOT_FINITE = "column {column} has {count} NaN or infinite value(s), first rows: {keys}"
ERR_PROBABILITY_RANGE = (
    "column {column} has {count} value(s) outside [0, 1] ({values}), first rows: {keys}: {hint}"
)
ERR_NEGATIVE_HOURS = (
    "column {column} has {count} negative value(s) ({values}), first rows: {keys}: remaining "
    "hours must be >= 0; clip negative hours at 0"
)
ERR_BUCKET_SUM = (
    "{count} row(s) have bucket_0..bucket_9 probabilities that do not sum to 1 within "
    "{tolerance} (sums: {values}), first rows: {keys}: {hint}"
)
ERR_DECISION_VALUES = (
    "column decision has {count} value(s) other than 1, 0 or empty ({values}), first rows: {keys}"
)

# What to change, appended to the value messages above (``{hint}``).
HINT_SOFTMAX = (
    "bucket_0..bucket_9 are the probabilities of the ten buckets: apply softmax to the logits "
    "of each row"
)
HINT_SIGMOID = (
    "predictions are probabilities: if these are logits, apply the sigmoid 1 / (1 + exp(-x))"
)

PREDICTION_FILE_CODES: dict[str, str] = {
    ERR_FILE_TOO_LARGE: "file_too_large",
    ERR_UNCOMPRESSED_TOO_LARGE: "uncompressed_too_large",
    ERR_CORRUPT_GZIP: "corrupt_gzip",
    ERR_NOT_CSV: "not_csv",
    ERR_UTF16: "utf16",
    ERR_ENCODING: "encoding",
    ERR_EMPTY_FILE: "empty_file",
    ERR_HEADER_TOO_LONG: "header_too_long",
    ERR_DELIMITER: "wrong_delimiter",
    ERR_BAD_HEADER: "bad_header",
    ERR_UNNAMED_COLUMN: "unnamed_column",
    ERR_DUPLICATE_COLUMNS: "duplicate_columns",
    ERR_LABEL_COLUMNS: "label_columns",
    ERR_MISSING_KEY_COLUMNS: "missing_key_columns",
    ERR_UNKNOWN_COLUMNS: "unknown_columns",
    ERR_PREDICTION_AND_DECISION: "prediction_and_decision",
    ERR_HOURS_AND_BUCKETS: "hours_and_buckets",
    ERR_MIXED_LABEL_COLUMNS: "mixed_label_columns",
    ERR_MISSING_COLUMNS: "missing_columns",
    ERR_NO_ROWS: "no_rows",
    ERR_ROW_FIELDS: "row_fields",
    ERR_MALFORMED_CSV: "malformed_csv",
    ERR_TOO_MANY_ROWS: "too_many_rows",
    ERR_BAD_KEY_VALUES: "bad_key_values",
    ERR_PERIOD_NOT_WHOLE: "period_not_whole",
    ERR_STAY_NAMES_UNAVAILABLE: "stay_names_unavailable",
    ERR_UNKNOWN_SCENARIO: "unknown_scenario",
    ERR_PAIRED_AND_NATURAL: "paired_and_natural",
    ERR_NO_BASE_SCENARIO: "no_base_scenario",
    ERR_UNKNOWN_UNITS: "unknown_units",
    ERR_UNPAIRED_UNITS: "unpaired_units",
    ERR_DUPLICATE_UNITS: "duplicate_units",
    ERR_MISSING_UNITS: "missing_units",
    ERR_EMPTY_VALUES: "empty_values",
    ERR_NOT_NUMERIC: "not_numeric",
    ERR_NOT_FINITE: "not_finite",
    ERR_PROBABILITY_RANGE: "probability_range",
    ERR_NEGATIVE_HOURS: "negative_hours",
    ERR_BUCKET_SUM: "bucket_sum",
    ERR_DECISION_VALUES: "decision_values",
}

# --- Warnings: harmless things that were tolerated ------------------------------------------
WARN_BOM = "a UTF-8 byte order mark at the start of the file was ignored"
WARN_HEADER_WHITESPACE = "spaces around column names were removed"
WARN_STAY_RENAMED = "column stay (mimic3-benchmarks name) was read as stay_id"
WARN_STAY_IGNORED = "column stay was ignored: the file also has stay_id"
WARN_IGNORED_COLUMNS = "column(s) {columns} were ignored: {task} units are keyed by {keys}"
WARN_POSITION_COLUMNS = (
    "columns {columns} were read by position, in label order, as the labels {first}..{last}"
)
WARN_LABEL_NAMES = "{count} column(s) named by label were read as the label slugs ({pairs})"
WARN_NATURAL_AS_PAIRED = (
    "scenario natural was read as paired: both are predictions made with every available image"
)
WARN_SCENARIO_NOT_SCORED = (
    "scenario {scenario} was checked but cannot be scored: the truth defines no withheld images "
    "for it"
)
