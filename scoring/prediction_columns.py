"""A prediction file's header: which form it has and where each column is.

:func:`column_layout` reads the header of a file for a task and returns a :class:`Layout`
(the form, the positions of the key, value and scenario columns, the columns ignored) or
refuses the file with a message that says which columns were expected.

Accepted forms (``docs/prediction-files.md``):

- binary tasks: key columns + ``prediction`` (probability) or + ``decision`` (1, 0, empty);
- multi-label tasks: key columns + one probability column per label, named by its slug or by
  the label name as the suite declares it (MedMod listfiles: ``Congestive heart failure;
  nonhypertensive``), or mimic3-benchmarks' ``pred_1`` .. ``pred_N`` (read by position, in
  label order; ``pred_0`` .. ``pred_{N-1}`` too);
- length of stay: key columns + ``prediction`` (remaining hours) or ``bucket_0`` ..
  ``bucket_9`` (probabilities);
- any task: an optional ``scenario`` column.

mimic3-benchmarks and MedMod names are mapped: ``stay`` stands for ``stay_id`` (and is
ignored when ``stay_id`` is present, as in MedMod listfiles); ``period_length`` is ignored
in stay-level tasks; ``subject_id`` and ``cxr_dicom_id`` (unit-list columns) are ignored.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections import Counter
from dataclasses import dataclass

from benchmark_data.tasks import Task
from scoring.errors import (
    ERR_BAD_HEADER,
    ERR_DELIMITER,
    ERR_DUPLICATE_COLUMNS,
    ERR_HOURS_AND_BUCKETS,
    ERR_LABEL_COLUMNS,
    ERR_MISSING_COLUMNS,
    ERR_MISSING_KEY_COLUMNS,
    ERR_MIXED_LABEL_COLUMNS,
    ERR_PREDICTION_AND_DECISION,
    ERR_UNKNOWN_COLUMNS,
    ERR_UNNAMED_COLUMN,
    WARN_HEADER_WHITESPACE,
    WARN_IGNORED_COLUMNS,
    WARN_LABEL_NAMES,
    WARN_POSITION_COLUMNS,
    WARN_STAY_IGNORED,
    WARN_STAY_RENAMED,
    PredictionFileError,
    listing,
)

FORMS: tuple[str, ...] = ("probability", "decision", "hours", "buckets")
SCENARIO_COLUMN = "scenario"
# Columns of the public unit lists that a file may keep; their values are not read.
CONTEXT_COLUMNS: tuple[str, ...] = ("subject_id", "cxr_dicom_id")
# Other separators, named for the message when a header has no comma.
OTHER_DELIMITERS: tuple[tuple[str, str], ...] = (
    (";", "semicolons"),
    ("\t", "tabs"),
    ("|", "vertical bars"),
)


@dataclass(frozen=True)
class Layout:
    """Where things are in a prediction file (positions are 0-based column indices)."""

    form: str
    names: tuple[str, ...]
    keys: tuple[tuple[str, int], ...]  # (task key column, position), in task key order
    stay_names: bool  # stay_id comes from ``stay``: ids or mimic3 episode names
    values: tuple[int, ...]  # value columns in output order (label slugs, buckets)
    scenario: int | None
    warnings: tuple[str, ...]

    @property
    def key_names(self) -> tuple[str, ...]:
        """The file's names of the key columns (``stay`` when it stands for ``stay_id``)."""
        return tuple(self.names[i] for _, i in self.keys)

    @property
    def value_names(self) -> tuple[str, ...]:
        return tuple(self.names[i] for i in self.values)


def split_header(line: str) -> list[str]:
    """Column names of a header line, as CSV (quotes allowed), without surrounding spaces.

    >>> split_header(' stay_id , "prediction"')
    ['stay_id', 'prediction']
    """
    try:
        rows = list(csv.reader([line], strict=True, skipinitialspace=True))
    except csv.Error as exc:
        raise PredictionFileError.from_template(ERR_BAD_HEADER, reason=str(exc)) from None
    return [name.strip() for name in (rows[0] if rows else [])]


def _fail(template: str, **fields: object) -> PredictionFileError:
    details = {k: v for k, v in fields.items() if k in ("columns", "position", "delimiter")}
    return PredictionFileError.from_template(template, details=details, **fields)


def _join(names: list[str] | tuple[str, ...]) -> str:
    return listing(names)


def label_aliases(task: Task) -> dict[str, str]:
    """Column names that stand for a label slug: the suite's label names (as MedMod's
    listfiles write them), compared without case; empty for tasks with one label.

    >>> from benchmark_data.tasks import TASKS
    >>> label_aliases(TASKS["phenotyping"])["congestive heart failure; nonhypertensive"]
    'congestive_heart_failure_nonhypertensive'
    """
    if task.kind != "multilabel":
        return {}
    return {
        name.casefold(): slug
        for name, slug in zip(task.label_names, task.label_slugs, strict=True)
        if name != slug
    }


def position_columns(task: Task, first: int = 1) -> list[str]:
    """mimic3-benchmarks' position columns ``pred_1..pred_N`` (or numbered from 0)."""
    return [f"pred_{i}" for i in range(first, first + task.n_labels)]


def expected_columns(task: Task) -> str:
    """What a file of this task holds, in words (used by the column messages)."""
    keys = _join(task.key_columns)
    if task.kind == "binary":
        values = (
            "either prediction (probability in [0, 1]) or decision (1, 0, or empty for no answer)"
        )
    elif task.kind == "multilabel":
        n = task.n_labels
        values = (
            f"one probability column per label, named by its slug ({listing(task.label_slugs, 3)})"
            f" or by its name in the suite ({listing(task.label_names, 3)}), or pred_1..pred_{n} "
            "in label order"
        )
    else:
        cols = task.bucket_columns
        values = (
            f"either prediction (remaining hours >= 0) or {cols[0]}..{cols[-1]} (probabilities "
            "summing to 1)"
        )
    return f"the key column(s) {keys}, {values}, and optionally scenario"


def _check_names(line: str, raw: list[str]) -> list[str]:
    names = [n.strip() for n in raw]
    if len(names) == 1:
        for sep, word in OTHER_DELIMITERS:
            if sep in line:
                raise _fail(ERR_DELIMITER, delimiter=word)
    for pos, name in enumerate(names, start=1):
        if not name:
            raise _fail(ERR_UNNAMED_COLUMN, position=pos)
    dups = [n for n, k in Counter(names).items() if k > 1]
    if dups:
        raise _fail(ERR_DUPLICATE_COLUMNS, columns=_join(dups))
    labels = [n for n in names if n == "y_true" or n.startswith("label_")]
    if labels:
        raise _fail(ERR_LABEL_COLUMNS, columns=_join(_runs(labels)))
    return names


def _runs(names: list[str]) -> list[str]:
    """Names with runs of consecutive numbered names (``label_1``, ``label_2``, ...) shown as
    ``label_1..label_25``.

    >>> _runs(["y_true", *(f"label_{i}" for i in range(1, 26)), "label_x"])
    ['y_true', 'label_1..label_25', 'label_x']
    """
    out: list[str] = []
    run: list[tuple[str, int]] = []

    def flush() -> None:
        if len(run) > 2:
            out.append(f"{run[0][0]}{run[0][1]}..{run[-1][0]}{run[-1][1]}")
        else:
            out.extend(f"{p}{i}" for p, i in run)
        run.clear()

    for name in names:
        m = re.fullmatch(r"(.*?_)(\d+)", name)
        if m and run and run[-1][0] == m.group(1) and run[-1][1] + 1 == int(m.group(2)):
            run.append((m.group(1), int(m.group(2))))
            continue
        flush()
        if m:
            run.append((m.group(1), int(m.group(2))))
        else:
            out.append(name)
    flush()
    return out


def _suggestion(unknown: list[str], known: list[str]) -> str:
    """ " (did you mean ...?)" for unknown names close to a known one, else ""."""
    folded = {k.casefold(): k for k in known}
    pairs = []
    for name in unknown:
        close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.8)
        if close:
            pairs.append(f"{folded[close[0]]} instead of {name}")
    return f" (did you mean {listing(pairs, 3)}?)" if pairs else ""


def _value_columns(task: Task, rest: list[str]) -> tuple[str, list[str], list[str]]:
    """Form, value columns in output order, and warnings, from the non-key columns (label
    names already read as their slugs)."""
    expected = expected_columns(task)
    if task.kind == "binary":
        known = ["prediction", "decision"]
    elif task.kind == "multilabel":
        positions = position_columns(task, 0 if "pred_0" in rest else 1)
        known = [*task.label_slugs, *positions]
    else:
        known = ["prediction", *task.bucket_columns]
    unknown = [n for n in rest if n not in known]
    if unknown:
        names = [*known, *task.label_names] if task.kind == "multilabel" else known
        raise _fail(
            ERR_UNKNOWN_COLUMNS,
            columns=_join(unknown),
            suggestion=_suggestion(unknown, names),
            task=task.slug,
            expected=expected,
        )

    if task.kind == "binary":
        if "prediction" in rest and "decision" in rest:
            raise _fail(ERR_PREDICTION_AND_DECISION)
        if "prediction" in rest:
            return "probability", ["prediction"], []
        if "decision" in rest:
            return "decision", ["decision"], []
        missing = ["prediction or decision"]
    elif task.kind == "multilabel":
        slugs = [n for n in rest if n in task.label_slugs]
        pos = [n for n in rest if n in positions]
        if slugs and pos:
            raise _fail(ERR_MIXED_LABEL_COLUMNS, slugs=_join(slugs[:3]), positions=_join(pos[:3]))
        if pos:
            missing = [n for n in positions if n not in rest]
            if not missing:
                warn = WARN_POSITION_COLUMNS.format(
                    columns=f"{positions[0]}..{positions[-1]}",
                    first=task.label_slugs[0],
                    last=task.label_slugs[-1],
                )
                return "probability", positions, [warn]
        else:
            missing = [n for n in task.label_slugs if n not in rest]
            if not missing:
                return "probability", list(task.label_slugs), []
    else:
        columns = task.bucket_columns
        buckets = [n for n in rest if n in columns]
        if "prediction" in rest and buckets:
            raise _fail(ERR_HOURS_AND_BUCKETS)
        if "prediction" in rest:
            return "hours", ["prediction"], []
        missing = [n for n in columns if n not in rest] if buckets else []
        if buckets and not missing:
            return "buckets", list(columns), []
        missing = missing or [f"prediction or {columns[0]}..{columns[-1]}"]
    raise _fail(ERR_MISSING_COLUMNS, columns=_join(missing), task=task.slug, expected=expected)


def _canonical_names(task: Task, names: list[str]) -> tuple[list[str], list[str]]:
    """The header with label names read as their slugs, and the names so read; a label
    given twice (by name and by slug) refuses the file."""
    aliases = label_aliases(task)
    canonical = [aliases.get(n.casefold(), n) if n not in task.label_slugs else n for n in names]
    renamed = [n for n, c in zip(names, canonical, strict=True) if n != c]
    twice = [c for c, k in Counter(canonical).items() if k > 1]
    if twice:
        both = [
            " and ".join(n for n, c in zip(names, canonical, strict=True) if c == slug)
            + f" (label {slug})"
            for slug in twice
        ]
        raise _fail(ERR_DUPLICATE_COLUMNS, columns=_join(both))
    return canonical, renamed


def column_layout(task: Task, line: str) -> Layout:
    """Read a header line for a task into a :class:`Layout`, or refuse it.

    Parameters
    ----------
    task : Task
        The task the file is for.
    line : str
        The header line (the file's first non-blank line), without its line end.

    Examples
    --------
    >>> from benchmark_data.tasks import TASKS
    >>> lay = column_layout(TASKS["decompensation"], "stay,period_length,prediction")
    >>> lay.form, lay.keys, lay.stay_names, lay.values
    ('probability', (('stay_id', 0), ('period_length', 1)), True, (2,))
    """
    raw = split_header(line)
    names = _check_names(line, raw)
    warnings: list[str] = []
    if any(r != n for r, n in zip(raw, names, strict=True)):
        warnings.append(WARN_HEADER_WHITESPACE)
    canonical, renamed = _canonical_names(task, names)
    if renamed:
        pairs = [f"{n} as {canonical[names.index(n)]}" for n in renamed]
        warnings.append(WARN_LABEL_NAMES.format(count=len(renamed), pairs=listing(pairs, 2)))
    where = {n: i for i, n in enumerate(canonical)}

    keys: list[tuple[str, int]] = []
    from_stay = False
    missing = []
    for key in task.key_columns:
        if key in where:
            keys.append((key, where[key]))
        elif key == "stay_id" and "stay" in where:
            keys.append((key, where["stay"]))
            from_stay = True
            warnings.append(WARN_STAY_RENAMED)
        else:
            missing.append(key)
    if missing:
        raise _fail(
            ERR_MISSING_KEY_COLUMNS,
            columns=_join(missing),
            task=task.slug,
            keys=_join(task.key_columns),
        )
    used = {i for _, i in keys}
    if "stay_id" in task.key_columns and not from_stay and "stay" in where:
        warnings.append(WARN_STAY_IGNORED)
        used.add(where["stay"])

    ignorable = {*CONTEXT_COLUMNS, "period_length", "stay_id", "stay"} - set(task.key_columns)
    ignored = [n for n in canonical if n in ignorable and where[n] not in used]
    if ignored:
        warnings.append(
            WARN_IGNORED_COLUMNS.format(
                columns=_join(ignored), task=task.slug, keys=_join(task.key_columns)
            )
        )
    scenario = where.get(SCENARIO_COLUMN)
    skip = used | {where[n] for n in ignored} | ({scenario} if scenario is not None else set())
    rest = [n for i, n in enumerate(canonical) if i not in skip]
    form, value_names, more = _value_columns(task, rest)
    return Layout(
        form=form,
        names=tuple(names),
        keys=tuple(keys),
        stay_names=from_stay,
        values=tuple(where[n] for n in value_names),
        scenario=scenario,
        warnings=(*warnings, *more),
    )
