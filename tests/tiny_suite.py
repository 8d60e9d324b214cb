"""A benchmark of the tiny suite declared in tests/benchmark_data/test_suite.py, written
from its declaration and data alone (no code of the project names it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark_data import BenchmarkWriter, layout
from benchmark_data.suite import parse_suite
from tests.benchmark_data.test_suite import TINY

N = 300


def build_tiny_suite_benchmark(dest: Path) -> pd.DataFrame:
    """300 test stays, one per patient, 60% with notes; the hidden risk drives both labels.
    Returns each stay's risk and whether it is paired (for honest predictions)."""
    suite = parse_suite(TINY)
    rng = np.random.default_rng(7)
    stay = np.arange(5000, 5000 + N)
    subject = stay + 100_000
    risk = rng.normal(size=N)
    paired = (rng.random(N) < 0.6).astype(int)
    w = BenchmarkWriter(dest)
    w.write_csv(layout.STAYS, pd.DataFrame({"stay_id": stay, "subject_id": subject, "split": "test"}))  # fmt: skip
    w.write_csv(layout.DEMOGRAPHICS, pd.DataFrame({
        "stay_id": stay, "subject_id": subject,
        "age": rng.integers(30, 99, N), "gender": rng.choice(["F", "M"], N),
    }))  # fmt: skip
    units = pd.DataFrame({"stay_id": stay, "subject_id": subject, "cxr_dicom_id": "", "paired": paired})  # fmt: skip
    order = rng.permutation(np.flatnonzero(paired))
    scen = pd.DataFrame({"stay_id": stay[paired == 1]})
    for level in (50, 100):
        hidden = set(stay[order[: round(len(order) * level / 100)]].tolist())
        scen[f"notes_missing_{level}"] = scen["stay_id"].isin(hidden).astype(int)
    death = (risk + rng.normal(scale=0.8, size=N) > 1.0).astype(int)
    diseases = {
        slug: (risk * k + rng.normal(size=N) > 0.5).astype(int)
        for slug, k in (("sepsis", 1.0), ("heart_failure", 0.5), ("aki", 0.8))
    }
    counts = {}
    for task, labels in (("mortality-24h", {"y_true": death}), ("diseases", diseases)):
        w.write_csv(layout.units(task, "test"), units)
        w.write_csv(layout.scenarios(task), scen)
        w.write_csv(layout.test_labels(task), pd.DataFrame({"stay_id": stay, "subject_id": subject, **labels}))  # fmt: skip
        counts[task] = {"test": N, "test_paired": int(paired.sum())}
    w.finish(name="tiny-suite", version="1", source={"kind": "test"}, seed=7, suite=suite,
             extra={"counts": counts})  # fmt: skip
    return pd.DataFrame({"stay_id": stay, "risk": risk, "paired": paired})
