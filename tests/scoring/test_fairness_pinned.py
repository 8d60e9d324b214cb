"""The fairness section's figures, pinned: on seeded inputs (patients with several stays,
groups by stay, tied scores, units without an image, a group too small to show, labels
missing for some units), every figure of ``fairness_report`` - per-group values, CIs and
replicates, error rates, calibration, reliability, intersections, the has-image attribute
and the gap/missing-image correlation - equals the stored one to 1e-12.

The stored figures (``data/fairness_pinned.json``) were computed by the per-group scoring
(one ``compute_metrics`` call per group) before the grouped kernels replaced it; both
paths are also compared with each other here on more seeds. Regenerate the file only for
a change that is meant to change the figures::

    python -m tests.scoring.test_fairness_pinned --write
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmark_data.tasks import TASKS
from scoring.bootstrap import make_plan
from scoring.fairness import fairness_report
from scoring.metrics import compute_metrics
from scoring.truth import Truth

PINNED = Path(__file__).with_name("data") / "fairness_pinned.json"
TOLERANCE = 1e-12
REPLICATES = 60


def _truth(seed: int, *, n: int = 2500, missing: float = 0.4) -> Truth:
    """Mortality-like units: about 1,500 patients (some with several stays), the age group
    by stay, a rare race group (suppressed), a few units without a gender, and images
    missing more often in some groups."""
    rng = np.random.default_rng(seed)
    patients = rng.integers(0, int(n * 0.6), n)
    race = rng.choice(
        np.array(["WHITE", "BLACK", "ASIAN", "HISPANIC", "OTHER"], dtype=object), n,
        p=[0.53, 0.24, 0.12, 0.1, 0.01],
    )  # fmt: skip
    gender = rng.choice(np.array(["F", "M"], dtype=object), n)
    gender[rng.random(n) < 0.01] = None
    age = rng.choice(np.array(["18-40", "40-60", "60-80", "80+"], dtype=object), n)
    insurance = rng.choice(np.array(["Medicare", "Medicaid", "Other"], dtype=object), n)
    base = 0.12 + 0.1 * (age == "80+") + 0.05 * (race == "BLACK")
    y = (rng.random(n) < base).astype(np.int8)
    paired = rng.random(n) >= np.where(race == "HISPANIC", 1.5 * missing, missing)
    return Truth(
        task=TASKS["in-hospital-mortality"],
        keys=pd.DataFrame({"stay_id": np.arange(20_000, 20_000 + n)}),
        y=y,
        clusters=patients,
        paired=paired,
        groups={"age_group": age, "gender": gender, "race": race, "insurance": insurance},
        source_hash="b" * 64,
    )


def _scores(truth: Truth, seed: int) -> np.ndarray:
    """Scores with two decimals (many ties, some on calibration bin edges)."""
    rng = np.random.default_rng(seed + 100)
    strength = np.where(truth.paired, 0.4, 0.2)
    raw = strength * truth.y + (1 - strength) * rng.random(truth.n) ** 1.3
    return np.round(np.clip(raw, 0.0, 1.0), 2)


def _decisions(truth: Truth, p: np.ndarray, seed: int) -> np.ndarray:
    """Hard decisions with some refusals (NaN)."""
    rng = np.random.default_rng(seed + 200)
    d = (p >= 0.45).astype(np.float64)
    d[rng.random(truth.n) < 0.05] = np.nan
    return d


def fairness_case(seed: int, form: str, *, missing: float = 0.4, **kw: Any) -> dict[str, Any]:
    """The fairness section of one seeded case, as a report stores it (JSON round trip)."""
    truth = _truth(seed, missing=missing)
    p = _scores(truth, seed)
    pred = p if form == "probability" else _decisions(truth, p, seed)
    plan = make_plan(truth.clusters, n_replicates=REPLICATES, seed=seed + 7)
    primary = "auroc" if form == "probability" else "accuracy"
    nat = compute_metrics(truth.task, form, truth.y, pred, plan=plan, metrics=[primary])
    fair = fairness_report(
        truth, form, pred, plan=plan, rows=truth.paired, threshold=0.45, scenario="paired",
        natural=(nat.point[primary], nat.replicates[primary]), **kw,
    )  # fmt: skip
    return json.loads(json.dumps(fair, allow_nan=False))


CASES = [(0, "probability"), (1, "probability"), (2, "decision")]


def _case_key(seed: int, form: str) -> str:
    return f"{form}-{seed}"


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two JSON values differ (numbers by more than TOLERANCE)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: lengths {len(a)} and {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differences(x, y, f"{where}[{i}]")]  # fmt: skip
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        if math.isclose(a, b, rel_tol=0.0, abs_tol=TOLERANCE):
            return []
        return [f"{where}: {a!r} != {b!r}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


@pytest.mark.parametrize(("seed", "form"), CASES)
def test_fairness_figures_equal_the_pinned_ones(seed, form):
    pinned = json.loads(PINNED.read_text())[_case_key(seed, form)]
    got = fairness_case(seed, form)
    assert got["attributes"]["race"]["suppressed_groups"] >= 1  # the rare group
    assert "missing_images" in got and "has_cxr" in got["attributes"]
    diffs = _differences(got, pinned)
    assert not diffs, diffs[:20]


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("missing", [0.0, 0.4])
def test_grouped_kernels_give_the_per_group_scoring_figures(seed, missing):
    """On other seeds, with and without missing images, the grouped path and the
    per-group path (``per_group=True``) agree to 1e-12."""
    grouped = fairness_case(seed, "probability", missing=missing)
    per_group = fairness_case(seed, "probability", missing=missing, per_group=True)
    assert grouped["attributes"]["race"]["groups"]
    diffs = _differences(grouped, per_group)
    assert not diffs, diffs[:20]


def _write() -> None:
    PINNED.write_text(
        json.dumps({_case_key(s, f): fairness_case(s, f) for s, f in CASES}, sort_keys=True) + "\n"
    )
    print(f"wrote {PINNED} ({PINNED.stat().st_size:,} bytes)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        _write()
    else:
        raise SystemExit("usage: python -m tests.scoring.test_fairness_pinned --write")
