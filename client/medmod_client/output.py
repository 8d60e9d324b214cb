"""Terminal output: plain tables, figures with their confidence intervals, a progress bar."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO


def figure(value: Any) -> str:
    """A metric value as the API gives it (already rounded to what it may show)."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.2e}"
    return str(value)


def interval(ci: Any) -> str:
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return ""
    return f"[{figure(ci[0])}, {figure(ci[1])}]"


def cut(text: Any, width: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()
) -> str:
    """Columns padded to their widest cell; ``right`` lists the columns aligned right."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def line(row: Sequence[str]) -> str:
        parts = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)
        ]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class Bar:
    """A one-line progress bar on a terminal (stderr); nothing at all when stderr is not one,
    so that output captured by a program holds no control characters."""

    def __init__(self, label: str, *, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self._last = 0.0
        self._drawn = False

    def update(self, fraction: float, note: str = "", *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1 and fraction < 1:
            return
        self._last = now
        columns = shutil.get_terminal_size((80, 20)).columns
        width = max(10, min(30, columns - len(self.label) - len(note) - 12))
        fraction = min(max(fraction, 0.0), 1.0)
        done = int(round(fraction * width))
        text = f"{self.label} [{'#' * done}{'.' * (width - done)}] {fraction * 100:3.0f}% {note}"
        self.stream.write("\r" + cut(text, columns - 1).ljust(columns - 1))
        self.stream.flush()
        self._drawn = True

    def bytes(self, done: int, total: int) -> None:
        note = f"{size(done)} of {size(total)}" if total else size(done)
        self.update(done / total if total else 0.0, note)

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
