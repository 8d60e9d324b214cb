"""The ``medmod-stream`` protocol, version 1: messages, the checks on a model's answers,
and the documented reasons a streamed run fails (docs/containers.md, "Streaming evaluation").

One JSON object per line, UTF-8, in both directions::

    gateway -> model   {"type": "hello", "protocol": "medmod-stream", "version": 1, ...}
    model -> gateway   {"type": "ready"}
    gateway -> model   {"type": "step", "step": 0, "time": 5.0, "stays": [...], "units": [...]}
    model -> gateway   {"type": "answer", "step": 0, "units": [...], "values": {...}}
    ...                one step per distinct prediction time, in time order
    gateway -> model   {"type": "end", "steps": N}
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from benchmark_data.tasks import Task
from benchmark_data.variables import VARIABLE_NAMES, feature_names
from leaderboard.containers.inputs import output_columns
from leaderboard.containers.results import RunStatus

PROTOCOL = "medmod-stream"
VERSION = 1

# Why a streamed run failed: reason -> the run's status. Messages are the ERR_* below.
REASONS: dict[str, RunStatus] = {
    "not_ready": RunStatus.PROTOCOL_ERROR,
    "malformed": RunStatus.PROTOCOL_ERROR,
    "wrong_step": RunStatus.PROTOCOL_ERROR,
    "unknown_units": RunStatus.PROTOCOL_ERROR,
    "missing_units": RunStatus.PROTOCOL_ERROR,
    "duplicate_units": RunStatus.PROTOCOL_ERROR,
    "wrong_values": RunStatus.PROTOCOL_ERROR,
    "answer_too_large": RunStatus.OUTPUT_TOO_LARGE,
    "stalled": RunStatus.TIMED_OUT,
    "wall_time": RunStatus.TIMED_OUT,
    "exited_early": RunStatus.CRASHED,
    "no_exit": RunStatus.TIMED_OUT,
    "exit_code": RunStatus.CRASHED,
    "out_of_memory": RunStatus.OUT_OF_MEMORY,
    "not_connected": RunStatus.PROTOCOL_ERROR,
}

ERR_NOT_READY = 'the model answered the hello with {got} instead of {{"type": "ready"}}'
ERR_MALFORMED = "the answer to step {step} is not one JSON object on one line: {detail}"
ERR_FIELD = "the answer to step {step} lacks the field {field!r} or it has the wrong type ({want})"
ERR_WRONG_STEP = (
    "an answer for step {got} arrived while step {step} was asked; answer each step once, "
    "with its own number"
)
ERR_UNKNOWN = "the answer to step {step} names {n} unit(s) not asked at this step, e.g. {some}"
ERR_MISSING = "the answer to step {step} leaves out {n} of the {asked} unit(s) asked, e.g. {some}"
ERR_DUPLICATE = "the answer to step {step} names {n} unit(s) more than once, e.g. {some}"
ERR_COLUMNS = (
    "the answer to step {step} has the value columns {got}; task {task} accepts exactly one "
    "of: {forms}"
)
ERR_COLUMNS_CHANGED = (
    "the answer to step {step} uses the columns {got}, unlike the first answer ({first}); "
    "keep one output form for the whole run"
)
ERR_LENGTH = "in the answer to step {step}, column {column!r} has {got} values for {want} units"
ERR_VALUES = "in the answer to step {step}, column {column!r}: {detail}"
ERR_TOO_LARGE = "the model sent a line of more than {limit} at step {step}; the limit per answer"
ERR_STALLED = "the model did not answer step {step} within the limit of {limit:g} s per step"
ERR_WALL = "the run passed the wall-time limit of {limit:g} s at step {step}"
ERR_EXITED = "the model closed the channel or exited at step {step} of {steps}, before the end"
ERR_NO_EXIT = "the model did not exit within {limit:g} s after the end message"
ERR_EXIT_CODE = "the model exited with code {code} after the end message"
ERR_OOM = "the model needed more than the memory limit of {limit} and was killed at step {step}"
ERR_NOT_CONNECTED = (
    "the model did not connect to the gateway socket (MEDMOD_GATEWAY) within {limit:g} s"
)


@dataclass
class Failure(Exception):
    """A run stops: ``reason`` is one of :data:`REASONS`, ``message`` is for the submitter."""

    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def encode(message: dict[str, Any]) -> bytes:
    """One protocol line."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def hello(task: Task, scenario: str, limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "hello",
        "protocol": PROTOCOL,
        "version": VERSION,
        "task": task.slug,
        "scenario": scenario,
        "kind": task.kind,
        "key_columns": list(task.key_columns),
        "label_slugs": list(task.label_slugs) if task.kind == "multilabel" else [],
        "output_columns": output_columns(task),
        "variables": list(VARIABLE_NAMES),
        "timeseries_columns": ["hours", *VARIABLE_NAMES],
        "discretized_features": feature_names(),
        "limits": limits,
    }


def end(steps: int) -> dict[str, Any]:
    return {"type": "end", "steps": steps}


def check_ready(line: bytes) -> None:
    try:
        msg = json.loads(line)
    except ValueError:
        msg = None
    if not isinstance(msg, dict) or msg.get("type") != "ready":
        shown = line[:80].decode("utf-8", errors="replace").strip() or "an empty line"
        raise Failure("not_ready", ERR_NOT_READY.format(got=repr(shown)))


def _some(items: Any) -> str:
    return ", ".join(sorted(str(x) for x in items)[:5])


def parse_answer(
    line: bytes,
    *,
    step: int,
    asked: list[str],
    task: Task,
    first_columns: tuple[str, ...] | None,
    position: Mapping[str, int] | None = None,
    offset: int = 0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Check one answer line against the units asked at ``step``.

    Returns the position of each answered unit in ``asked`` and the value columns (floats;
    a refused decision is NaN). Raises :class:`Failure` with the first problem found.
    ``position`` maps every token of the run to its place in the run's order of asking,
    where ``asked`` starts at ``offset`` (built once per run rather than once per step).
    """
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Failure("malformed", ERR_MALFORMED.format(step=step, detail=exc)) from None
    if not isinstance(msg, dict) or msg.get("type") != "answer":
        raise Failure("malformed", ERR_FIELD.format(step=step, field="type", want='"answer"'))
    got_step = msg.get("step")
    if not isinstance(got_step, int) or isinstance(got_step, bool):
        raise Failure("malformed", ERR_FIELD.format(step=step, field="step", want="an integer"))
    if got_step != step:
        raise Failure("wrong_step", ERR_WRONG_STEP.format(got=got_step, step=step))
    units = msg.get("units")
    if not isinstance(units, list) or not all(isinstance(u, str) for u in units):
        raise Failure("malformed", ERR_FIELD.format(step=step, field="units", want="strings"))
    values = msg.get("values")
    if not isinstance(values, dict):
        raise Failure("malformed", ERR_FIELD.format(step=step, field="values", want="object"))

    if position is None:
        position, offset = {u: i for i, u in enumerate(asked)}, 0
    if len(set(units)) != len(units):
        twice = {u for u, n in Counter(units).items() if n > 1}
        raise Failure("duplicate_units", ERR_DUPLICATE.format(step=step, n=len(twice), some=_some(twice)))  # fmt: skip
    found = np.fromiter(
        map(position.get, units, repeat(-1, len(units))), dtype=np.int64, count=len(units)
    )
    found -= offset
    bad = (found < 0) | (found >= len(asked))
    if bad.any():
        unknown = [u for u, b in zip(units, bad.tolist(), strict=True) if b]
        raise Failure("unknown_units", ERR_UNKNOWN.format(step=step, n=len(unknown), some=_some(unknown)))  # fmt: skip
    if len(units) != len(asked):
        missing = set(asked) - set(units)
        raise Failure("missing_units", ERR_MISSING.format(step=step, n=len(missing), asked=len(asked), some=_some(missing)))  # fmt: skip

    columns = tuple(values)
    forms = {name: tuple(cols) for name, cols in output_columns(task).items()}
    form = next((name for name, cols in forms.items() if sorted(cols) == sorted(columns)), None)
    if form is None:
        raise Failure("wrong_values", ERR_COLUMNS.format(
            step=step, got=", ".join(columns) or "(none)", task=task.slug,
            forms="; ".join(", ".join(c) for c in forms.values())))  # fmt: skip
    if first_columns is not None and sorted(first_columns) != sorted(columns):
        raise Failure("wrong_values", ERR_COLUMNS_CHANGED.format(
            step=step, got=", ".join(columns), first=", ".join(first_columns)))  # fmt: skip
    out: dict[str, np.ndarray] = {}
    for name in forms[form]:
        out[name] = _column(values[name], name=name, form=form, n=len(units), step=step)
    return found, out


_NUMBER_TYPES = frozenset({int, float})


def _column(raw: Any, *, name: str, form: str, n: int, step: int) -> np.ndarray:
    if not isinstance(raw, list):
        raise Failure(
            "wrong_values", ERR_VALUES.format(step=step, column=name, detail="not a list")
        )
    if len(raw) != n:
        raise Failure("wrong_values", ERR_LENGTH.format(step=step, column=name, got=len(raw), want=n))  # fmt: skip
    # One pass over the values' types (JSON gives int, float, None, bool, str, list, dict).
    kinds = set(map(type, raw))
    allowed = _NUMBER_TYPES | ({type(None)} if form == "decision" else set())
    if not kinds <= allowed:
        bad = next(v for v in raw if type(v) not in allowed)
        detail = f"{json.dumps(bad)[:40]} is not a number"
        raise Failure("wrong_values", ERR_VALUES.format(step=step, column=name, detail=detail))
    if type(None) in kinds:
        raw = [math.nan if v is None else v for v in raw]
    arr = np.array(raw, dtype=np.float64)
    if form == "decision":
        ok = np.isnan(arr) | (arr == 0) | (arr == 1)
        want = "1, 0 or null"
    elif form == "hours":
        ok = np.isfinite(arr) & (arr >= 0)
        want = "finite hours >= 0"
    else:
        ok = np.isfinite(arr) & (arr >= 0) & (arr <= 1)
        want = "probabilities in [0, 1]"
    if not ok.all():
        first = arr[~ok][0]
        detail = f"{int((~ok).sum())} value(s) are not {want}, e.g. {first!r}"
        raise Failure("wrong_values", ERR_VALUES.format(step=step, column=name, detail=detail))
    return arr
