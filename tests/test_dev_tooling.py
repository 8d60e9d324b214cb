"""The developer tooling: the git hooks' configuration and coverage per package."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from coverage_by_package import package_of, per_package  # noqa: E402


def test_the_pre_commit_config_is_valid():
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_hooks_download_nothing_and_run_the_fast_tier_before_a_push():
    """Every hook is local and runs a program of the checkout or of .venv; ruff, mypy and the
    import contracts run before a commit, the fast tier before a push."""
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {}
    for repo in config["repos"]:
        assert repo["repo"] == "local"
        for hook in repo["hooks"]:
            assert hook["language"] == "system", hook["id"]
            hooks[hook["id"]] = hook
    for hook in hooks.values():
        words = shlex.split(hook["entry"])
        program = words[2].split()[0] if words[0] == "bash" else words[0]
        assert program.startswith((".venv/bin/", "bin/")), hook["entry"]
        if program.startswith("bin/"):
            assert (ROOT / program).is_file(), program
    assert set(hooks) == {"ruff-check", "ruff-format", "mypy", "import-contracts", "fast-tests"}
    assert "--check" in hooks["ruff-format"]["entry"]
    assert hooks["fast-tests"]["entry"].startswith("bin/test --fast")
    assert hooks["fast-tests"]["stages"] == ["pre-push"]
    assert set(config["default_install_hook_types"]) == {"pre-commit", "pre-push"}


def test_each_source_file_counts_for_its_most_specific_package():
    assert package_of(ROOT / "scoring" / "baselines" / "models.py") == "scoring/baselines"
    assert package_of(ROOT / "scoring" / "ranking.py") == "scoring"
    assert package_of(ROOT / "leaderboard" / "board" / "models.py") == "leaderboard/board"
    assert package_of(ROOT / "leaderboard" / "containers" / "archive.py") == (
        "leaderboard/containers"
    )
    assert package_of(ROOT / "leaderboard" / "settings.py") == "leaderboard"
    assert package_of(ROOT / "client" / "medmod_client" / "cli.py") == "client/medmod_client"
    assert package_of(ROOT / "tests" / "conftest.py") is None
    assert package_of(Path("/usr/lib/python3/os.py")) is None


@pytest.mark.slow  # two Python processes under coverage
def test_coverage_counts_the_python_processes_a_process_starts(tmp_path):
    """A process run under the project's coverage settings starts a second Python process
    that alone imports benchmark_data.tasks: the per-package figures count that module."""
    parent = tmp_path / "parent.py"
    parent.write_text(
        "import subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', 'import benchmark_data.tasks'], check=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    env["COVERAGE_FILE"] = str(tmp_path / ".coverage")
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "coverage", "run", "--rcfile", str(ROOT / ".coveragerc"),
         str(parent)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    combined = subprocess.run(
        [sys.executable, "-m", "coverage", "combine", "--rcfile", str(ROOT / ".coveragerc")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert combined.returncode == 0, combined.stdout + combined.stderr
    figures = per_package(str(tmp_path / ".coverage"))
    statements, run = figures["benchmark_data"]
    assert 0 < run < statements
    assert figures["scoring"][1] == 0  # counted, never imported: every statement is missed


def test_the_docker_tests_run_in_one_test_process_and_a_files_tests_together():
    from tests.conftest import DOCKER_GROUP, group_of

    assert group_of("tests/leaderboard/containers/test_gateway.py::test_a[x]") == DOCKER_GROUP
    assert group_of("tests/leaderboard/test_multi_host.py::test_b") == DOCKER_GROUP
    assert group_of("tests/leaderboard/test_api.py::test_c[1-2]") == "tests/leaderboard/test_api.py"
    assert group_of("scoring/metrics.py::scoring.metrics.auroc") == "scoring/metrics.py"


def test_a_docker_test_outside_the_listed_files_stops_the_collection(tmp_path):
    """The same rule on a test tree of its own: a file that marks a test `docker` but is not
    in DOCKER_FILES is refused with the fix in the message."""
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_addoption, pytest_collection_modifyitems  # noqa\n"
    )
    (tmp_path / "test_engine.py").write_text(
        "import pytest\n\n\n@pytest.mark.docker\ndef test_x():\n    pass\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), "-p", "no:cacheprovider",
         "-p", "no:django", "-p", "no:xdist", "-o", "markers=docker", "--rootdir", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert run.returncode != 0
    assert "uses the Docker engine: add its file to DOCKER_FILES" in run.stdout + run.stderr
