"""What a model leaves in ``/output``: a first check of ``predictions.csv`` once it has
stopped, combining the scenarios' files, and removing a run's working directory.

The size of ``/output`` is capped by the kernel (``output_volume``); ``predictions.csv`` is
copied out of it as a regular file, and nothing here follows a symbolic link. The full
validation of the prediction file is the scoring engine's; this only catches what a
submitter can fix without it (no file, not a CSV, a missing key column).
"""

from __future__ import annotations

import codecs
import csv
import os
import shutil
import stat
from pathlib import Path

import pandas as pd

from benchmark_data.tasks import Task, get_task

PREDICTIONS = "predictions.csv"
_HEAD_BYTES = 1024 * 1024  # the header line must end within this many bytes

WRONG_NOT_FILE = "it is not a regular file (a link, directory or device is not accepted)"
WRONG_EMPTY = "it is empty"
WRONG_COMPRESSED = "it is compressed; write a plain CSV"
WRONG_NOT_TEXT = "it is not UTF-8 text"
WRONG_NO_HEADER = "its first line (the header) does not end within the first 1 MiB"
WRONG_KEYS = "the header lacks the key column(s) {columns} of task {task}"
WRONG_SCENARIO = "it has a scenario column; leave it out: the platform adds the scenario"
WRONG_NO_ROWS = "it holds a header but no rows"


def check_predictions(path: Path, task: str | Task) -> str | None:
    """First check of a prediction file a model wrote: None when usable, else why not.
    ``task``: a MedMod task's slug, or a task as its suite declares it."""
    t = get_task(task) if isinstance(task, str) else task
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return WRONG_NOT_FILE
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            return WRONG_NOT_FILE
        if st.st_size == 0:
            return WRONG_EMPTY
        head = fh.read(_HEAD_BYTES)
        whole = len(head) >= st.st_size
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:4] == b"PK\x03\x04":
        return WRONG_COMPRESSED
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    newline = head.find(b"\n")
    if newline < 0 and len(head) >= _HEAD_BYTES - 3:
        return WRONG_NO_HEADER
    line = head if newline < 0 else head[:newline]
    try:
        header_text = line.decode("utf-8")
        # A multi-byte character cut at the end of the first MiB is fine.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
    except UnicodeDecodeError:
        return WRONG_NOT_TEXT
    header = [c.strip() for c in next(csv.reader([header_text.rstrip("\r")]), [])]
    keys = [
        k for k in t.key_columns if k not in header and not (k == "stay_id" and "stay" in header)
    ]
    if keys:
        return WRONG_KEYS.format(columns=", ".join(keys), task=t.slug)
    if "scenario" in header:
        return WRONG_SCENARIO
    if newline < 0 or not head[newline + 1 :].strip():
        return WRONG_NO_ROWS
    return None


def remove_tree(path: Path) -> list[str]:
    """Remove a directory tree, whatever the modes of its directories (a directory of mode
    000 is opened up first); returns what could not be removed, one line each (empty: all
    gone). Links are removed, never followed."""
    if not os.path.lexists(path):
        return []
    stack = [path]
    while stack:  # open up every directory the worker owns before removing anything
        d = stack.pop()
        try:
            st = os.lstat(d)
            if not stat.S_ISDIR(st.st_mode):
                continue
            if st.st_mode & 0o700 != 0o700 and st.st_uid == os.geteuid():
                os.chmod(d, stat.S_IMODE(st.st_mode) | 0o700)
            with os.scandir(d) as it:
                stack.extend(Path(e.path) for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue  # reported below when its removal fails
    problems: list[str] = []

    def failed(_func: object, where: str, exc_info: tuple[type, BaseException, object]) -> None:
        problems.append(f"{where}: {exc_info[1]}")

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, onerror=failed)
    else:
        try:
            os.unlink(path)
        except OSError as exc:
            problems.append(f"{path}: {exc}")
    return problems


ERR_COMBINE_COLUMNS = (
    "the prediction file of scenario {scenario} has the columns {got}, unlike scenario "
    "{first} ({want})"
)


def combine_predictions(outputs: dict[str, Path], dest: Path) -> Path:
    """One prediction file with a ``scenario`` column from the files of a submission's runs.

    Rows are copied as they are (streamed, never held whole); each file's columns are put in
    the order of the first file's. Raises ValueError when the files' columns differ.
    """
    first: str | None = None
    header: list[str] = []
    with dest.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        for scenario, path in outputs.items():
            with path.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                columns = [c.strip() for c in next(reader, [])]
                if first is None:
                    first, header = scenario, columns
                    writer.writerow([*header, "scenario"])
                elif sorted(columns) != sorted(header):
                    raise ValueError(
                        ERR_COMBINE_COLUMNS.format(
                            scenario=scenario,
                            got=", ".join(columns),
                            first=first,
                            want=", ".join(header),
                        )
                    )
                order = [columns.index(c) for c in header]
                for row in reader:
                    if row:
                        writer.writerow(
                            [*(row[i] if i < len(row) else "" for i in order), scenario]
                        )
    return dest


def keep_units(path: Path, keys: pd.DataFrame) -> None:
    """Keep the rows of a prediction file whose key columns are among ``keys`` (in place)."""
    cols = list(keys.columns)
    df = pd.read_csv(path, dtype={c: keys[c].dtype for c in cols if keys[c].dtype != object})
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"the predictions lack the key column(s) {', '.join(missing)}")
    kept = df.merge(keys.drop_duplicates(), on=cols, how="inner", sort=False)
    kept[list(df.columns)].to_csv(path, index=False, lineterminator="\n")
