"""The leak probes (scripts/leak_probes.py) on the demo benchmark: every leak probe, built
only from the public files, must score at chance (issue 12: a 95% CI covering the no-skill
value on the board's main scenario and on all units)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo_cache import demo_benchmark

ROOT = Path(__file__).resolve().parents[2]
REPLICATES = 1000


@pytest.fixture(scope="module")
def demo_dir() -> Path:
    """The demo benchmark (seed 42) the tests share."""
    return demo_benchmark()


@pytest.fixture(scope="module")
def probe_results(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("probes") / "probes.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "leak_probes.py"), "--benchmark", str(demo_dir),
         "--replicates", str(REPLICATES), "--json", str(out)],
        check=True, cwd=ROOT, capture_output=True,
    )  # fmt: skip
    return json.loads(out.read_text())


@pytest.mark.slow
def test_every_task_is_probed_and_scored(probe_results: dict) -> None:
    """Each of the five tasks gets leak probes and causal controls, each with a CI, unless
    the benchmark publishes no test units for it (then there is nothing to cheat on)."""
    tasks = {r["task"] for r in probe_results["probes"]}
    assert tasks | set(probe_results["skipped"]) == {
        "in-hospital-mortality", "phenotyping", "decompensation", "length-of-stay", "radiology"
    }  # fmt: skip
    assert not tasks & set(probe_results["skipped"])
    for row in probe_results["probes"]:
        lo, hi = row["main"]["ci"]
        assert lo is not None and hi is not None and lo <= hi, row
    kinds = {(r["task"], r["kind"]) for r in probe_results["probes"]}
    assert all((t, k) in kinds for t in tasks for k in ("leak", "causal"))


@pytest.mark.slow
def test_every_leak_probe_scores_at_chance(probe_results: dict) -> None:
    """No leak probe's 95% CI excludes the no-skill value (AUROC 0.5, kappa 0)."""
    above = [
        f"{r['task']} / {r['probe']}: {r['metric']} {r['main']['value']:.3f} "
        f"{r['main']['ci']} ({r['main_scenario']}), natural "
        f"{r['natural']['value'] if r['natural'] else None} (no-skill {r['no_skill']})"
        for r in probe_results["probes"]
        if r["kind"] == "leak" and not r["at_chance"]
    ]
    assert not above, "leak probes above chance:\n" + "\n".join(above)
