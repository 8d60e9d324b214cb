"""Finding and reading the importer's input files, with messages that say what is wrong.

Every input is a CSV file, optionally gzip-compressed (``name.csv`` or ``name.csv.gz``).
A missing file is reported with the path where it was expected, a file without the needed
columns with the names of the missing columns.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark_data.benchmark import sha256_file

ERR_MISSING_FILE = "missing input file: expected {expected}"
ERR_MISSING_DIR = "{what} {path} is not a directory"
ERR_COLUMNS = "{path}: missing column(s) {columns}"
ERR_READ = "{path}: cannot be read as CSV ({detail})"
ERR_SUBJECT_FILE = "{path}: line {line}: {detail}"
ERR_IDS = "{path}: column {column} has {n} value(s) that are not whole numbers, first: {first}"
ERR_SUBJECT_HEADER = "{path}: the header has no subject_id column (columns: {columns})"


class MimicImportError(ValueError):
    """The input files are missing, malformed or inconsistent with each other."""


@dataclass
class InputFiles:
    """The input files read so far, by a name relative to their root, with their sha256."""

    hashes: dict[str, str] = field(default_factory=dict)

    def record(self, name: str, path: Path) -> None:
        self.hashes[name] = file_sha256(path)


def file_sha256(path: Path) -> str:
    return sha256_file(path)


def check_dir(path: str | Path, *, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise MimicImportError(ERR_MISSING_DIR.format(what=what, path=p))
    return p


def find_csv(root: Path, *names: str) -> Path | None:
    """The first of ``root/name`` or ``root/name.gz`` that exists, trying each name in turn."""
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def require_csv(root: Path, *names: str) -> Path:
    """Like :func:`find_csv`, but a missing file is an error naming the expected path."""
    found = find_csv(root, *names)
    if found is None:
        expected = " or ".join(f"{root / n}[.gz]" for n in names)
        raise MimicImportError(ERR_MISSING_FILE.format(expected=expected))
    return found


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def header(path: Path) -> list[str]:
    """Column names of a CSV file (whitespace stripped)."""
    try:
        with _open_text(path) as fh:
            row = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MimicImportError(ERR_READ.format(path=path, detail=exc)) from None
    return [c.strip() for c in row]


def read_csv(
    path: Path,
    *,
    columns: Sequence[str],
    dtype: dict[str, Any] | None = None,
    any_of: Sequence[Sequence[str]] = (),
) -> pd.DataFrame:
    """Read the given columns of a CSV file, after checking that the header holds them.

    ``any_of`` lists groups of alternative names (e.g. ``race`` or ``ethnicity``); the first
    name of each group found is read as well, and a group with none is reported missing.
    """
    names = header(path)
    missing = [c for c in columns if c not in names]
    chosen: list[str] = []
    for group in any_of:
        hit = next((c for c in group if c in names), None)
        if hit is None:
            missing.append(" or ".join(group))
        else:
            chosen.append(hit)
    if missing:
        raise MimicImportError(ERR_COLUMNS.format(path=path, columns=", ".join(missing)))
    wanted = [*columns, *chosen]
    try:
        df = pd.read_csv(
            path,
            usecols=lambda c: c.strip() in wanted,
            dtype=dtype,
            keep_default_na=True,
            low_memory=False,
        )
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise MimicImportError(ERR_READ.format(path=path, detail=exc)) from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def id_column(df: pd.DataFrame, column: str, *, path: Path) -> pd.Series:
    """An identifier column as int64; blanks and non-numbers are an error naming the file."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() | (values % 1 != 0)
    if bad.any():
        first = df.loc[bad, column].head(5).tolist()
        raise MimicImportError(
            ERR_IDS.format(path=path, column=column, n=int(bad.sum()), first=first)
        )
    return values.astype(np.int64)


def _is_int(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def read_subject_set(path: str | Path) -> set[int]:
    """The subjects listed in a split file such as MedMod's ``testset_iv.csv``.

    MedMod's files have no header and two columns, ``subject_id,flag``, where a flag of 1
    puts the subject in the set. Also accepted: one column of subject ids (all in the set),
    and a header row with a ``subject_id`` column; with a header, a single other column that
    holds only 0 and 1 is the flag, and otherwise every listed subject is in the set.
    """
    p = Path(path)
    if not p.is_file():
        raise MimicImportError(ERR_MISSING_FILE.format(expected=p))
    try:
        with _open_text(p) as fh:
            rows = [(i, [c.strip() for c in row]) for i, row in enumerate(csv.reader(fh), 1)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MimicImportError(ERR_READ.format(path=p, detail=exc)) from None
    rows = [(i, r) for i, r in rows if any(r)]
    if not rows:
        return set()
    subject_col, flag_col = 0, 1
    if not _is_int(rows[0][1][0]):
        names = [c.lower() for c in rows[0][1]]
        if "subject_id" not in names:
            raise MimicImportError(ERR_SUBJECT_HEADER.format(path=p, columns=rows[0][1]))
        subject_col = names.index("subject_id")
        rows = rows[1:]
        others = [j for j in range(len(names)) if j != subject_col]
        flag_col = -1
        if len(others) == 1 and all(
            len(r) > others[0] and r[others[0]] in ("0", "1") for _, r in rows
        ):
            flag_col = others[0]
    elif len(rows[0][1]) > 2:
        raise MimicImportError(
            ERR_SUBJECT_FILE.format(
                path=p, line=rows[0][0], detail="expected subject_id or subject_id,flag"
            )
        )
    members: set[int] = set()
    for line, row in rows:
        if len(row) <= subject_col or not _is_int(row[subject_col]):
            raise MimicImportError(
                ERR_SUBJECT_FILE.format(path=p, line=line, detail="subject_id is not a number")
            )
        flag = row[flag_col] if 0 <= flag_col < len(row) else "1"
        if flag not in ("0", "1"):
            raise MimicImportError(
                ERR_SUBJECT_FILE.format(path=p, line=line, detail=f"flag {flag!r} is not 0 or 1")
            )
        if flag == "1":
            members.add(int(row[subject_col]))
    return members
