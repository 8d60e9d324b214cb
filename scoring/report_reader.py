"""Reading a stored score report: the one way into a report that was written earlier.

:func:`read_report` takes a report of any version ever written (its ``schema`` key, see
:mod:`scoring.report_types`), upgrades an older one to the current shape and checks it
against the current types, key by key. A report of a version this scorer does not know (a
newer worker wrote it) raises :class:`ReportVersionError`; one whose shape is wrong raises
:class:`ReportFormatError`, naming the key, what it should hold and what it holds.

>>> read_report({"schema": 7})
Traceback (most recent call last):
...
scoring.report_reader.ReportVersionError: report version 7 is newer than this scorer reads \
(versions 1 to 2): read it with a newer scorer
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, NotRequired, Union, cast, get_args, get_origin, get_type_hints

from scoring.report import summarize
from scoring.report_types import REPORT_SCHEMA, ScoreReport

OLDEST_SCHEMA = 1

ERR_NOT_A_REPORT = "a score report must be a JSON object, got {kind}"
ERR_NO_VERSION = "report has no version: its 'schema' key must be an integer, got {value!r}"
ERR_FUTURE = (
    "report version {version} is newer than this scorer reads (versions {oldest} to "
    "{current}): read it with a newer scorer"
)
ERR_TOO_OLD = "report version {version} was never written (the first version is {oldest})"
ERR_SHAPE = "report is malformed at {path}: expected {expected}, got {got}"
ERR_MISSING = "report is malformed at {path}: the key '{key}' is missing"


class ReportFormatError(ValueError):
    """A stored report that cannot be read; ``message`` says what is wrong and where."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ReportVersionError(ReportFormatError):
    """A report of a version this scorer does not know."""


def report_version(stored: Mapping[str, Any]) -> int:
    """The version a stored report was written in (its ``schema`` key).

    >>> report_version({"schema": 1, "task": "in-hospital-mortality"})
    1
    """
    version = stored.get("schema")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ReportFormatError(ERR_NO_VERSION.format(value=version))
    if version > REPORT_SCHEMA:
        raise ReportVersionError(
            ERR_FUTURE.format(version=version, oldest=OLDEST_SCHEMA, current=REPORT_SCHEMA)
        )
    if version < OLDEST_SCHEMA:
        raise ReportVersionError(ERR_TOO_OLD.format(version=version, oldest=OLDEST_SCHEMA))
    return version


def read_report(stored: Any) -> ScoreReport:
    """A stored report of any version as the current :class:`ScoreReport`.

    Parameters
    ----------
    stored : dict
        The report as it was stored (the JSON object :func:`scoring.report.build_report`
        returned, in whichever version wrote it).

    Returns
    -------
    ScoreReport
        A checked report of the current version: the stored one unchanged when it already
        is; otherwise a copy with every section it lacks empty (``upgraded_from`` says from
        which version).

    Raises
    ------
    ReportVersionError
        The version is unknown (newer than this scorer, or below the first).
    ReportFormatError
        A key is missing or holds the wrong kind of value; the message names it.
    """
    if not isinstance(stored, dict):
        raise ReportFormatError(ERR_NOT_A_REPORT.format(kind=_kind(stored)))
    version = report_version(stored)
    report = stored
    while version < REPORT_SCHEMA:
        report = UPGRADES[version](report)
        version += 1
    check_shape(report, ScoreReport, "report")
    return cast(ScoreReport, report)


# Upgrades ------------------------------------------------------------------------------------
def _upgrade_1_to_2(old: dict[str, Any]) -> dict[str, Any]:
    """Version 1 to 2: fairness gains its scenario and (empty) intersections; sections
    version 1 added over its life (the robustness curve's modality, the summary's counts,
    drops and ablations) are filled in where a report stored before them lacks them."""
    report = copy.deepcopy(old)
    _require(report, ("main_scenario", "scenarios", "fairness", "robustness"), "report")
    main = report["main_scenario"]
    fairness = report["fairness"]
    if isinstance(fairness, dict):
        fairness.setdefault("scenario", main)
        fairness.setdefault("intersections", {})
    robustness = report["robustness"]
    if isinstance(robustness, dict):
        for curve in [robustness, *(robustness.get("modalities") or {}).values()]:
            if isinstance(curve, dict):
                curve.setdefault("modality", None)
                curve.setdefault("modality_title", None)
    report.setdefault("curves", {})
    report.setdefault("plots", {})
    report["schema"] = 2
    report.setdefault("upgraded_from", old["schema"])
    # The summary is rebuilt from the upgraded sections (the current summary holds more
    # than version 1's): they are checked first, so that a malformed one is named.
    for key, tp in _hints(ScoreReport).items():
        if key != "summary" and key in report:
            check_shape(report[key], tp, f"report.{key}")
    report["summary"] = summarize(cast(ScoreReport, report))
    return report


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _upgrade_1_to_2}


def _require(obj: dict[str, Any], keys: tuple[str, ...], path: str) -> None:
    for key in keys:
        if key not in obj:
            raise ReportFormatError(ERR_MISSING.format(path=path, key=key))


# Shape checks --------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_name(a) for a in get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict or typing.is_typeddict(tp):
        return "an object"
    return {int: "an integer", float: "a number", str: "text", bool: "true or false"}.get(
        tp, str(tp)
    )


_HINTS: dict[Any, dict[str, Any]] = {}


def _hints(td: Any) -> dict[str, Any]:
    if td not in _HINTS:
        _HINTS[td] = get_type_hints(td)
    return _HINTS[td]


def _matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` is of the plain type ``tp`` (no containers)."""
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def check_shape(value: Any, tp: Any, path: str) -> None:
    """Check ``value`` against the type ``tp`` (a TypedDict, ``dict[str, X]``,
    ``list[X]``, a union or a plain type), raising :class:`ReportFormatError` at the
    first key that does not fit."""
    origin = get_origin(tp)
    if origin is NotRequired:
        tp = get_args(tp)[0]
        origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return
        fits = [a for a in options if a is not type(None) and _fits_outer(value, a)]
        if not fits:
            raise ReportFormatError(
                ERR_SHAPE.format(path=path, expected=_name(tp), got=_kind(value))
            )
        errors = []
        for option in fits:
            try:
                check_shape(value, option, path)
                return
            except ReportFormatError as exc:
                errors.append(exc)
        raise errors[0]
    if typing.is_typeddict(tp):
        if not isinstance(value, dict):
            raise ReportFormatError(
                ERR_SHAPE.format(path=path, expected="an object", got=_kind(value))
            )
        required = tp.__required_keys__
        for key, sub in _hints(tp).items():
            if key in value:
                check_shape(value[key], sub, f"{path}.{key}")
            elif key in required:
                raise ReportFormatError(ERR_MISSING.format(path=path, key=key))
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise ReportFormatError(
                ERR_SHAPE.format(path=path, expected="an object", got=_kind(value))
            )
        sub = get_args(tp)[1]
        if sub is not Any:
            for key, item in value.items():
                check_shape(item, sub, f"{path}.{key}")
        return
    if origin is list:
        if not isinstance(value, list):
            raise ReportFormatError(
                ERR_SHAPE.format(path=path, expected="a list", got=_kind(value))
            )
        sub = get_args(tp)[0]
        for i, item in enumerate(value):
            check_shape(item, sub, f"{path}[{i}]")
        return
    if not _matches(value, tp):
        raise ReportFormatError(ERR_SHAPE.format(path=path, expected=_name(tp), got=_kind(value)))


def _fits_outer(value: Any, tp: Any) -> bool:
    """Whether ``value`` is the right kind at the top (object, list or plain value) for
    one option of a union: the option then decides the message of a deeper mismatch."""
    origin = get_origin(tp)
    if typing.is_typeddict(tp) or origin is dict:
        return isinstance(value, dict)
    if origin is list:
        return isinstance(value, list)
    return _matches(value, tp)


__all__ = [
    "OLDEST_SCHEMA",
    "ReportFormatError",
    "ReportVersionError",
    "check_shape",
    "read_report",
    "report_version",
]
