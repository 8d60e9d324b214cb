"""Small truths for every task, good prediction files, and a corpus of malformed ones.

Each malformed case builds its file from a small truth and names the error code and message
fragments it must be refused with; ``tests/scoring/test_validation.py`` runs them all.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from benchmark_data.tasks import CXR_MISSING_LEVELS, LOS_BUCKET_COLUMNS, TASKS
from scoring.truth import Truth

N_STAYS = 12
FIRST_STAY = 30_000_001
FIRST_SUBJECT = 10_001
# Length-of-stay labels: remaining hours ending in .777, a pattern no key or message has.
LOS_LABEL_FRACTION = 0.777


def stay_name(subject: int) -> str:
    return f"{subject}_episode1_timeseries.csv"


def make_truth(slug: str, *, n_stays: int = N_STAYS, seed: int = 0, names: bool = True) -> Truth:
    """A small truth for a task: a third of the stays have no chest X-ray (not paired),
    every cxr_missing level withholds a nested share of the paired stays."""
    task = TASKS[slug]
    rng = np.random.default_rng(seed)
    stays = np.arange(FIRST_STAY, FIRST_STAY + n_stays)
    subjects = np.arange(FIRST_SUBJECT, FIRST_SUBJECT + n_stays)
    stay_paired = np.arange(n_stays) % 3 != 0
    if task.hourly:
        hours = 5 + (np.arange(n_stays) % 4)  # 5..8 rows per stay, t = 5, 6, ...
        stay_idx = np.repeat(np.arange(n_stays), hours)
        period = np.concatenate([np.arange(5, 5 + h) for h in hours])
        keys = pd.DataFrame({"stay_id": stays[stay_idx], "period_length": period})
    elif task.key_columns == ("dicom_id",):
        stay_idx = np.repeat(np.arange(n_stays), 2)
        dicoms = [f"{i:08x}-5e0c{i:04x}-9a1b2c3d" for i in range(len(stay_idx))]
        keys = pd.DataFrame({"dicom_id": dicoms})
        stay_paired = np.ones(n_stays, dtype=bool)
    else:
        stay_idx = np.arange(n_stays)
        keys = pd.DataFrame({"stay_id": stays})
    n = len(keys)
    if task.kind == "binary":
        y: np.ndarray = (rng.random(n) < 0.3).astype(np.int8)
    elif task.kind == "multilabel":
        y = (rng.random((n, task.n_labels)) < 0.3).astype(np.int8)
    else:
        y = 1000.0 * rng.integers(1, 9, n) + LOS_LABEL_FRACTION
    paired = stay_paired[stay_idx]
    order = rng.permutation(np.flatnonzero(stay_paired))
    withheld = {}
    for p in CXR_MISSING_LEVELS:
        chosen = np.zeros(n_stays, dtype=bool)
        chosen[order[: int(round(len(order) * p / 100))]] = True
        withheld[f"cxr_missing_{p}"] = paired & chosen[stay_idx]
    return Truth(
        task=task,
        keys=keys,
        y=y,
        clusters=subjects[stay_idx],
        paired=paired,
        withheld=withheld,
        stay_names={stay_name(int(s)): int(t) for s, t in zip(subjects, stays, strict=True)}
        if names
        else {},
        source="tests",
    )


def value_columns(truth: Truth, form: str) -> list[str]:
    task = truth.task
    if task.kind == "multilabel":
        return list(task.label_slugs)
    if form == "buckets":
        return list(LOS_BUCKET_COLUMNS)
    return ["decision"] if form == "decision" else ["prediction"]


def default_form(truth: Truth) -> str:
    return {"binary": "probability", "multilabel": "probability", "los": "hours"}[truth.task.kind]


def good_values(truth: Truth, form: str, *, seed: int = 1, rows: int | None = None) -> np.ndarray:
    """Valid values for ``rows`` rows (default: one per unit), as (rows, columns)."""
    rng = np.random.default_rng(seed)
    n = truth.n if rows is None else rows
    k = len(value_columns(truth, form))
    if form == "decision":
        v = rng.integers(0, 2, (n, 1)).astype(float)
        v[rng.random(n) < 0.2, 0] = np.nan
        return v
    if form == "hours":
        return np.round(rng.random((n, 1)) * 300, 3)
    if form == "buckets":
        raw = rng.random((n, k))
        return raw / raw.sum(axis=1, keepdims=True)
    return np.round(rng.random((n, k)), 6)


def good_frame(
    truth: Truth, form: str | None = None, *, scenarios: tuple[str, ...] = (), seed: int = 1
) -> pd.DataFrame:
    """A valid prediction table: one row per unit (per scenario when ``scenarios`` given;
    cxr_missing_* rows cover the paired units only)."""
    form = form or default_form(truth)
    parts = []
    for i, scenario in enumerate(scenarios or ("",)):
        rows = np.arange(truth.n)
        if scenario.startswith("cxr_missing"):
            rows = np.flatnonzero(truth.paired)
        part = truth.keys.iloc[rows].reset_index(drop=True).copy()
        vals = good_values(truth, form, seed=seed + i, rows=len(rows))
        for j, col in enumerate(value_columns(truth, form)):
            part[col] = vals[:, j]
        if scenario:
            part["scenario"] = scenario
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def to_csv(df: pd.DataFrame, *, float_format: str | None = None) -> bytes:
    text = df.to_csv(index=False, float_format=float_format, lineterminator="\n")
    return text.encode("utf-8")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def good_csv(truth: Truth, form: str | None = None, **kw: Any) -> bytes:
    return to_csv(good_frame(truth, form, **kw))


# --- the malformed corpus -------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """A malformed file: how to build it, and how it must be refused."""

    name: str
    task: str
    build: Callable[[Truth], bytes]
    code: str
    fragments: tuple[str, ...]
    limits: dict[str, int] = field(default_factory=dict)
    truth_names: bool = True


def _edit(
    truth: Truth, fn: Callable[[pd.DataFrame], pd.DataFrame], form: str | None = None, **kw: Any
) -> bytes:
    return to_csv(fn(good_frame(truth, form, **kw)))


def _set(col: str, row: int, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df = df.astype({col: object})
        df.loc[row, col] = value
        return df

    return fn


def _text_edit(fn: Callable[[str], str], form: str | None = None) -> Callable[[Truth], bytes]:
    return lambda t: fn(good_csv(t, form).decode()).encode()


def _corrupt_gzip(t: Truth) -> bytes:
    # A file large enough that flipped bytes land in the compressed blocks.
    data = bytearray(gz(good_csv(make_truth("decompensation", n_stays=200))))
    for i in range(40, len(data) - 20, 7):
        data[i] ^= 0x55
    return bytes(data)


def _zip(t: Truth) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("predictions.csv", good_csv(t))
    return buf.getvalue()


def _latin1(t: Truth) -> bytes:
    text = good_csv(t)
    return text[:25] + b"\xe9" + text[25:]


def _extra_field(line: int) -> Callable[[Truth], bytes]:
    def build(t: Truth) -> bytes:
        lines = good_csv(t).decode().split("\n")
        lines[line] += ",1"
        return "\n".join(lines).encode()

    return build


def _episode_names(df: pd.DataFrame) -> pd.DataFrame:
    names = [stay_name(FIRST_SUBJECT + int(s) - FIRST_STAY) for s in df["stay_id"]]
    return df.assign(stay_id=names).rename(columns={"stay_id": "stay"})


def _drop_rows(*rows: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda df: df.drop(index=list(rows)).reset_index(drop=True)


def _repeat_rows(*rows: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda df: pd.concat([df, df.iloc[list(rows)]], ignore_index=True)


def _unknown_stay(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[1, "stay_id"] = 39_999_999
    return df


def _with_scenarios(*names: str, form: str | None = None) -> Callable[[Truth], bytes]:
    return lambda t: good_csv(t, form, scenarios=names)


def _cxr_unpaired(t: Truth) -> bytes:
    df = good_frame(t, scenarios=("paired", "cxr_missing_50"))
    unpaired = np.flatnonzero(~t.paired)[0]
    extra = df.iloc[[unpaired]].assign(scenario="cxr_missing_50")
    return to_csv(pd.concat([df, extra], ignore_index=True))


def _cxr_missing_one(t: Truth) -> bytes:
    df = good_frame(t, scenarios=("paired", "cxr_missing_50"))
    last = df.index[df["scenario"] == "cxr_missing_50"][-1]
    return to_csv(df.drop(index=last))


def _too_many_rows(t: Truth) -> bytes:
    df = good_frame(t)
    return to_csv(pd.concat([df] * 7, ignore_index=True))


def _bomb(t: Truth) -> bytes:
    return gz(good_csv(t) + b"\n" * (4 << 20))


CASES: list[Case] = [
    # bytes
    Case("empty file", "in-hospital-mortality", lambda t: b"", "empty_file", ("empty",)),
    Case("blank lines only", "in-hospital-mortality", lambda t: b"\r\n \n\n", "empty_file",
         ("empty",)),
    Case("byte order mark only", "in-hospital-mortality", lambda t: b"\xef\xbb\xbf",
         "empty_file", ("empty",)),
    Case("empty gzip", "in-hospital-mortality", lambda t: gz(b""), "empty_file", ("empty",)),
    Case("over the size limit", "in-hospital-mortality", good_csv, "file_too_large",
         ("larger than the limit of 100 bytes",), limits={"max_bytes": 100}),
    Case("gzip bomb", "in-hospital-mortality", _bomb, "uncompressed_too_large",
         ("decompresses to more than the limit of 1048576 bytes", "1 MiB"),
         limits={"max_uncompressed_bytes": 1 << 20}),
    Case("plain file over the uncompressed limit", "in-hospital-mortality", good_csv,
         "uncompressed_too_large", ("more than the limit of 64 bytes",),
         limits={"max_uncompressed_bytes": 64}),
    Case("corrupt gzip", "decompensation", _corrupt_gzip, "corrupt_gzip",
         ("cannot be decompressed",)),
    Case("truncated gzip", "in-hospital-mortality", lambda t: gz(good_csv(t))[:-12],
         "corrupt_gzip", ("ends early",)),
    Case("zip archive", "in-hospital-mortality", _zip, "not_csv", ("zip archive",)),
    Case("utf-16", "in-hospital-mortality", lambda t: good_csv(t).decode().encode("utf-16"),
         "utf16", ("UTF-16",)),
    Case("latin-1 byte", "in-hospital-mortality", _latin1, "encoding",
         ("not valid UTF-8", "0xe9", "byte offset 25", "line 2")),
    Case("semicolons", "in-hospital-mortality",
         _text_edit(lambda s: s.replace(",", ";")), "wrong_delimiter", ("semicolons",)),
    Case("tabs", "decompensation", _text_edit(lambda s: s.replace(",", "\t")),
         "wrong_delimiter", ("tabs", "comma-separated")),
    Case("header too long", "in-hospital-mortality", lambda t: b"stay_id," + b"x" * 70000,
         "header_too_long", ("first line is longer",)),
    Case("unbalanced quote in header", "in-hospital-mortality",
         lambda t: b'stay_id,"prediction\n1,2\n', "bad_header", ("header row cannot be read",)),
    # header
    Case("index column", "in-hospital-mortality",
         lambda t: good_frame(t).to_csv().encode(), "unnamed_column", ("column 1",)),
    Case("duplicate column", "in-hospital-mortality",
         _text_edit(lambda s: s.replace("prediction", "prediction,prediction", 1)),
         "duplicate_columns", ("prediction",)),
    Case("y_true column", "in-hospital-mortality",
         lambda t: _edit(t, lambda df: df.assign(y_true=0)), "label_columns", ("remove column(s) y_true and keep the key and prediction columns",)),
    Case("mimic3 label columns", "phenotyping",
         lambda t: _edit(t, lambda df: df.assign(label_1=0)), "label_columns", ("label_1",)),
    Case("missing key column", "decompensation",
         lambda t: _edit(t, lambda df: df.drop(columns="period_length")),
         "missing_key_columns", ("period_length", "stay_id, period_length")),
    Case("unknown column", "in-hospital-mortality",
         lambda t: _edit(t, lambda df: df.assign(model="x")), "unknown_columns",
         ("model", "either prediction")),
    Case("prediction and decision", "in-hospital-mortality",
         lambda t: _edit(t, lambda df: df.assign(decision=1)), "prediction_and_decision",
         ("both prediction and decision",)),
    Case("hours and buckets", "length-of-stay",
         lambda t: _edit(t, lambda df: df.assign(prediction=3.0), "buckets"),
         "hours_and_buckets", ("bucket_0..bucket_9",)),
    Case("no prediction column", "in-hospital-mortality",
         lambda t: _edit(t, lambda df: df.drop(columns="prediction")), "missing_columns",
         ("prediction or decision",)),
    Case("a label slug missing", "phenotyping",
         lambda t: _edit(t, lambda df: df.drop(columns="shock")), "missing_columns",
         ("shock",)),
    Case("pred_25 missing", "phenotyping",
         lambda t: _edit(t, lambda df: df.iloc[:, :25].set_axis(
             ["stay_id", *(f"pred_{i}" for i in range(1, 25))], axis=1)),
         "missing_columns", ("pred_25",)),
    Case("a bucket missing", "length-of-stay",
         lambda t: _edit(t, lambda df: df.drop(columns="bucket_9"), "buckets"),
         "missing_columns", ("bucket_9",)),
    Case("slugs mixed with positions", "radiology",
         lambda t: _edit(t, lambda df: df.rename(columns={"atelectasis": "pred_1"})),
         "mixed_label_columns", ("pred_1",)),
    # rows
    Case("header only", "in-hospital-mortality", lambda t: b"stay_id,prediction\r\n",
         "no_rows", ("no data rows",)),
    Case("a row with an extra field", "in-hospital-mortality", _extra_field(3), "row_fields",
         ("line 4 has 3 fields", "header has 2")),
    Case("first row with an extra field", "in-hospital-mortality", _extra_field(1),
         "row_fields", ("the first data row has 3 fields",)),
    Case("unterminated quote", "in-hospital-mortality",
         lambda t: good_csv(t) + b'30000001,"0.5\n', "malformed_csv", ("cannot be read as CSV",)),
    Case("unterminated quote in the only row", "in-hospital-mortality",
         lambda t: b'stay_id,prediction\n30000001,"0.5\n', "malformed_csv",
         ("cannot be read as CSV",)),
    Case("the file seven times", "decompensation", _too_many_rows, "too_many_rows",
         ("more than", "repeats units")),
    # keys and scenarios
    Case("stay id not a number", "in-hospital-mortality",
         lambda t: _edit(t, _set("stay_id", 2, "abc")), "bad_key_values",
         ("column stay_id has 1 malformed value(s) (expected integer ids)", "abc")),
    Case("stay id with a fraction", "in-hospital-mortality",
         lambda t: _edit(t, _set("stay_id", 0, "30000001.5")), "bad_key_values",
         ("30000001.5",)),
    Case("period not whole", "length-of-stay",
         lambda t: _edit(t, _set("period_length", 3, "5.5")), "period_not_whole",
         ("not whole hours", "(30000001, 5.5)")),
    Case("period not a number", "decompensation",
         lambda t: _edit(t, _set("period_length", 0, "five")), "bad_key_values",
         ("column period_length", "numbers of hours", "five")),
    Case("empty image id", "radiology", lambda t: _edit(t, _set("dicom_id", 4, "")),
         "bad_key_values", ("column dicom_id", '""')),
    Case("episode names without a stay list", "in-hospital-mortality",
         lambda t: _edit(t, _episode_names),
         "stay_names_unavailable", ("episode names", "use stay_id"), truth_names=False),
    Case("unknown scenario", "in-hospital-mortality",
         lambda t: _edit(t, _set("scenario", 1, "cxr_missing_30"), scenarios=("paired",)),
         "unknown_scenario", ("cxr_missing_30", "30000002")),
    Case("paired and natural", "in-hospital-mortality",
         _with_scenarios("paired", "natural"), "paired_and_natural", ("both",)),
    Case("only cxr_missing rows", "in-hospital-mortality",
         _with_scenarios("cxr_missing_25"), "no_base_scenario", ("scenario paired",)),
    # coverage
    Case("unknown unit", "in-hospital-mortality", lambda t: _edit(t, _unknown_stay),
         "unknown_units", ("1 row(s)", "39999999", "column stay_id")),
    Case("unknown hourly row", "decompensation",
         lambda t: _edit(t, _set("period_length", 0, 4)), "unknown_units",
         ("(30000001, 4)", "column stay_id, period_length")),
    Case("missing units", "in-hospital-mortality", lambda t: _edit(t, _drop_rows(0, 1, 2)),
         "missing_units", ("3 of the 12 units", "30000001, 30000002, 30000003")),
    Case("missing hourly rows", "length-of-stay", lambda t: _edit(t, _drop_rows(5)),
         "missing_units", ("1 of the", "(30000002, 5)")),
    Case("duplicate units", "phenotyping", lambda t: _edit(t, _repeat_rows(3, 3, 4)),
         "duplicate_units", ("2 unit(s) appear more than once", "5 rows", "30000004")),
    Case("duplicate images", "radiology", lambda t: _edit(t, _repeat_rows(0)),
         "duplicate_units", ("00000000-5e0c0000-9a1b2c3d",)),
    Case("cxr_missing covers an unpaired unit", "in-hospital-mortality", _cxr_unpaired,
         "unpaired_units", ("cxr_missing_50", "30000001")),
    Case("cxr_missing misses a paired unit", "decompensation", _cxr_missing_one,
         "missing_units", ("in scenario cxr_missing_50",)),
    # values
    Case("empty probability", "in-hospital-mortality",
         lambda t: _edit(t, _set("prediction", 4, "")), "empty_values",
         ("column prediction has 1 empty", "30000005")),
    Case("text probability", "in-hospital-mortality",
         lambda t: _edit(t, _set("prediction", 4, "high")), "not_numeric",
         ("not numbers (high)",)),
    Case("NaN probability", "decompensation", lambda t: _edit(t, _set("prediction", 2, "NaN")),
         "not_finite", ("NaN or infinite", "(30000001, 7)")),
    Case("infinite hours", "length-of-stay", lambda t: _edit(t, _set("prediction", 0, "inf")),
         "not_finite", ("column prediction",)),
    Case("probability above 1", "in-hospital-mortality",
         lambda t: _edit(t, _set("prediction", 5, 1.5)), "probability_range",
         ("outside [0, 1]", "30000006")),
    Case("label probability below 0", "radiology",
         lambda t: _edit(t, _set("support_devices", 2, -0.1)), "probability_range",
         ("column support_devices", "(-0.1)", "apply the sigmoid")),
    Case("negative hours", "length-of-stay", lambda t: _edit(t, _set("prediction", 1, -2)),
         "negative_hours", (">= 0", "(-2)", "clip negative hours at 0")),
    Case("buckets not summing to 1", "length-of-stay",
         lambda t: _edit(t, _set("bucket_3", 1, 0.9), "buckets"), "bucket_sum",
         ("do not sum to 1", "0.001", "(30000001, 6)", "apply softmax to the logits")),
    Case("bucket above 1", "length-of-stay", lambda t: _edit(t, _set("bucket_0", 0, 1.2),
                                                             "buckets"),
         "probability_range", ("column bucket_0", "(1.2)", "apply softmax to the logits")),
    Case("decision 2", "in-hospital-mortality",
         lambda t: _edit(t, _set("decision", 0, 2), "decision"), "decision_values",
         ("other than 1, 0 or empty", "(2)")),
    Case("decision yes", "decompensation",
         lambda t: _edit(t, _set("decision", 0, "yes"), "decision"), "decision_values",
         ("(yes)",)),
]  # fmt: skip
