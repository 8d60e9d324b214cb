"""The import contracts fail when someone breaks them: a selector that imports a view
(lint-imports, the board's layers) and an import cycle within one layer (the cycle check of
scripts/check_imports.py), each made on purpose in a copy of the packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for package in ("leaderboard", "scoring", "benchmark_data"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "static", "templates"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "check_imports.py", tmp_path / "scripts")
    return tmp_path


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--no-cache"], cwd=where, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text() + "\n\n" + code + "\n")


def test_the_contracts_hold_on_the_code_as_it_is(copy):
    assert _lint(copy).returncode == 0


def test_a_selector_that_imports_a_view_breaks_the_layers(copy):
    _append(copy / "leaderboard/board/selectors/leaderboard.py",
            "def _late():\n    from leaderboard.board.web import views  # noqa: F401")  # fmt: skip
    out = _lint(copy)
    assert out.returncode == 1
    assert (
        "leaderboard.board.selectors is not allowed to import leaderboard.board.web" in out.stdout
    )


def test_a_cycle_inside_one_layer_is_found(copy):
    # selectors.leaderboard imports selectors.submissions; this closes the circle.
    _append(copy / "leaderboard/board/selectors/submissions.py",
            "def _late():\n    from leaderboard.board.selectors import leaderboard  # noqa: F401")  # fmt: skip
    out = subprocess.run([sys.executable, "scripts/check_imports.py"], cwd=copy,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 1
    assert "leaderboard.board has import cycles" in out.stderr
    cycle = next(line for line in out.stderr.splitlines() if " <-> " in line)
    assert {
        "leaderboard.board.selectors.leaderboard",
        "leaderboard.board.selectors.submissions",
    } <= set(cycle.split(" <-> "))
