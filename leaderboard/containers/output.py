"""What a model leaves in ``/output``: size checks while it runs, and a first check of
``predictions.csv`` once it has stopped.

The output directory is written by the model, so nothing here follows a symbolic link or
opens anything but a regular file. The full validation of the prediction file is the
scoring engine's; this only catches what a submitter can fix without it (no file, not a
CSV, a missing key column).
"""

from __future__ import annotations

import codecs
import csv
import os
import shutil
import stat
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Usage:
    """Bytes and entries under a directory, counted up to a bound."""

    bytes: int
    entries: int

    def over(self, *, max_bytes: int, max_entries: int) -> bool:
        return self.bytes > max_bytes or self.entries > max_entries


def usage(root: Path, *, max_bytes: int, max_entries: int) -> Usage:
    """Size of everything under ``root`` (apparent sizes, links not followed).

    Counting stops as soon as either bound is passed, so a directory filled with millions
    of files costs no more than ``max_entries`` look-ups.
    """
    total = 0
    entries = 0
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for entry in it:
                entries += 1
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += max(st.st_size, st.st_blocks * 512)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(Path(entry.path))
                if total > max_bytes or entries > max_entries:
                    return Usage(total, entries)
    return Usage(total, entries)


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


def prepare_output_dir(path: Path, user: str) -> Path:
    """Create an empty output directory the model's ``uid:gid`` can write (a leftover of
    an earlier run in the same place is removed first)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=False)
    uid, _, gid = user.partition(":")
    if os.geteuid() == 0 and uid.isdigit():
        os.chown(path, int(uid), int(gid) if gid.isdigit() else int(uid))
        path.chmod(0o755)
    else:
        path.chmod(0o777)
    return path


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
