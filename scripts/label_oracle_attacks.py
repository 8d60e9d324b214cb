"""Label-oracle attacks: a participant who wants the hidden test labels of in-hospital
mortality, with one identity and one day's quota of private submissions.

Each attack crafts a prediction file, reads the report the platform returns to the entry's
owner, and decodes what it can about the labels:

* ``curve_rank``: distinct scores in a known order; the precision-recall curve then gives
  the rank of each positive among the paired units;
* ``float_digit``: the natural-scenario Brier score, with predictions ``0.5 - 2**-(j+2)``
  on target units and 0.5 elsewhere, carries each target's label in one binary digit;
* ``single_unit``: one paired unit scored above all others (tied): the sign of AUROC - 0.5
  in each scenario of the file is that unit's label;
* ``subset_count``: predictions 1 on a chosen set and 0 elsewhere; precision at the
  threshold times the set's size is the number of positives in it (adaptive halving);
* ``replicate_equations``: with the seed and the subjects, the replicate weights can be
  recomputed; with one unit scored above the others, each replicate's AUROC is one linear
  equation in the labels, solved by least squares.

``combined`` spends the whole quota, every channel at once, and keeps what it learned.

Every attack always returns a guess for the units it targeted (its best decoding), so the
accuracy of the guesses can be compared with chance: the accuracy of guesses with the same
share of positives made without looking at the labels. A submission built from what was
learned (the honest model's scores, with each learned label replacing its unit's score) is
scored against the honest model itself.

Run: ``python scripts/label_oracle_attacks.py --benchmark DIR [--view participant|stored]``;
``stored`` plays against the full stored report (what the platform served before the
disclosure budget), ``participant`` against :func:`scoring.disclosure.participant_report`.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scoring.bootstrap import make_plan  # noqa: E402

TASK = "in-hospital-mortality"
CXR_SLOTS = ("cxr_missing_25", "cxr_missing_50", "cxr_missing_75", "cxr_missing_100")
DIGITS = 32  # binary digits of the Brier score used per report

Oracle = Callable[[bytes], dict[str, Any]]


@dataclass
class Units:
    """What a participant knows of the test units: ids, subjects and which are paired."""

    stay_ids: np.ndarray
    subjects: np.ndarray
    paired: np.ndarray

    @classmethod
    def from_benchmark(cls, root: Path) -> Units:
        df = pd.read_csv(root / "public" / "tasks" / TASK / "test.csv", dtype=str)
        return cls(
            stay_ids=df["stay_id"].astype(np.int64).to_numpy(),
            subjects=df["subject_id"].to_numpy(),
            paired=df["cxr_dicom_id"].fillna("").str.len().to_numpy() > 0,
        )

    @property
    def n(self) -> int:
        return int(self.stay_ids.size)


@dataclass
class Knowledge:
    """Guessed labels per unit index, and how many submissions were spent."""

    guesses: dict[int, int] = field(default_factory=dict)
    submissions: int = 0

    def learn(self, found: dict[int, int]) -> None:
        self.guesses.update(found)


def prediction_csv(units: Units, paired: np.ndarray, slots: dict[str, np.ndarray]) -> bytes:
    """A prediction file: ``paired`` for every unit, plus rows for the cxr_missing slots
    (one value per paired unit)."""
    buf = io.StringIO()
    buf.write("stay_id,prediction,scenario\n")
    for s, p in zip(units.stay_ids, paired, strict=True):
        buf.write(f"{s},{float(p)!r},paired\n")
    ids = units.stay_ids[units.paired]
    for name, vals in slots.items():
        for s, p in zip(ids, vals, strict=True):
            buf.write(f"{s},{float(p)!r},{name}\n")
    return buf.getvalue().encode()


def _metric(report: dict[str, Any], scenario: str, name: str) -> float | None:
    entry = report.get("scenarios", {}).get(scenario, {}).get("metrics", {}).get(name)
    return None if not entry else entry.get("value")


def _positives(report: dict[str, Any], scenario: str) -> int | None:
    sec = report.get("scenarios", {}).get(scenario, {})
    prev, n = sec.get("prevalence"), sec.get("n_units")
    return None if prev is None or n is None else int(round(prev * n))


# --- curve rank ----------------------------------------------------------------------------


def curve_rank_design(units: Units, rng: np.random.Generator) -> np.ndarray:
    """Distinct scores for the paired units in a random order (order = argsort desc)."""
    p = np.full(units.n, 0.5)
    idx = np.flatnonzero(units.paired)
    order = rng.permutation(idx.size)
    p[idx] = 0.02 + 0.96 * (order + 1) / (idx.size + 1)
    return p


def curve_rank_decode(report: dict[str, Any], units: Units, p: np.ndarray) -> dict[int, int]:
    """Position of the k-th positive = k / precision at the first recall grid point whose
    ceil(recall * P) is k; unhit positions are guessed negative."""
    idx = np.flatnonzero(units.paired)
    ranked = idx[np.argsort(-p[idx], kind="stable")]
    pr = report.get("curves", {}).get("pr") or {}
    total = _positives(report, "paired")
    out = {int(i): 0 for i in idx}
    if not pr or not total:
        return out
    for r, prec in zip(pr.get("recall", []), pr.get("precision", []), strict=False):
        if r is None or prec is None or prec <= 0 or r <= 0:
            continue
        k = math.ceil(r * total - 1e-9)
        pos = int(round(k / prec))
        if 1 <= pos <= ranked.size:
            out[int(ranked[pos - 1])] = 1
    return out


# --- float digits of the Brier score -------------------------------------------------------


def float_digit_design(
    units: Units, p: np.ndarray, known: dict[int, int]
) -> tuple[np.ndarray, list[int]]:
    """Encode up to ``DIGITS`` unknown unpaired units into the natural Brier score."""
    p = p.copy()
    free = [int(i) for i in np.flatnonzero(~units.paired) if int(i) not in known]
    targets = free[:DIGITS]
    p[~units.paired] = 0.5
    for j, i in enumerate(targets):
        p[i] = 0.5 - 2.0 ** -(j + 2)
    return p, targets


def float_digit_decode(
    report: dict[str, Any], units: Units, p: np.ndarray, targets: list[int], paired_y: dict
) -> dict[int, int]:
    brier = _metric(report, "natural", "brier")
    out = {i: 0 for i in targets}
    if brier is None:
        return out
    idx_p = np.flatnonzero(units.paired)
    known_part = sum((p[i] - paired_y.get(int(i), 0)) ** 2 for i in idx_p)
    unpaired = np.flatnonzero(~units.paired)
    x = units.n * brier - known_part - float(np.sum(p[unpaired] ** 2))
    for j, i in enumerate(targets):
        bit = 2.0 ** -(j + 1)
        if x >= bit - 2.0 ** -(DIGITS + 2):
            out[i] = 1
            x -= bit
    return out


# --- one unit above the others --------------------------------------------------------------


def single_unit_slots(
    units: Units, known: dict[int, int], rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    idx = np.flatnonzero(units.paired)
    free = [j for j, i in enumerate(idx) if int(i) not in known]
    picks = rng.choice(free, size=min(len(free), len(CXR_SLOTS)), replace=False)
    slots, target = {}, {}
    for name, j in zip(CXR_SLOTS, picks, strict=False):
        v = np.full(idx.size, 0.1)
        v[j] = 0.9
        slots[name] = v
        target[name] = int(idx[j])
    return slots, target


def single_unit_decode(report: dict[str, Any], target: dict[str, int]) -> dict[int, int]:
    out = {}
    for name, i in target.items():
        auc = _metric(report, name, "auroc")
        out[i] = 1 if auc is not None and auc > 0.5 else 0
    return out


# --- subset counting -----------------------------------------------------------------------


@dataclass
class Pools:
    """Sets of paired units with a known (decoded) number of positives."""

    pools: list[tuple[list[int], int]] = field(default_factory=list)

    def next_queries(self, k: int) -> list[list[int]]:
        open_ = sorted((p for p in self.pools if 0 < p[1] < len(p[0])), key=lambda p: -len(p[0]))
        return [p[0][: len(p[0]) // 2] for p in open_[:k]]

    def record(self, half: list[int], count: int) -> None:
        for n, (members, total) in enumerate(self.pools):
            if members[: len(members) // 2] == half:
                count = max(0, min(count, total, len(half)))
                rest = members[len(half) :]
                self.pools[n : n + 1] = [(half, count), (rest, max(0, total - count))]
                return

    def guesses(self) -> dict[int, int]:
        """Labels of the pools whose count settles them (none or all positive)."""
        out = {}
        for members, total in self.pools:
            if total in (0, len(members)):
                out.update({i: int(total > 0) for i in members})
        return out


def subset_slots(units: Units, queries: list[list[int]]) -> dict[str, np.ndarray]:
    idx = list(np.flatnonzero(units.paired))
    where = {int(i): j for j, i in enumerate(idx)}
    slots = {}
    for name, q in zip(CXR_SLOTS, queries, strict=False):
        v = np.zeros(len(idx))
        v[[where[i] for i in q]] = 1.0
        slots[name] = v
    return slots


def subset_decode(report: dict[str, Any], queries: list[list[int]], pools: Pools) -> None:
    for name, q in zip(CXR_SLOTS, queries, strict=False):
        prec = _metric(report, name, "precision")
        if prec is not None:
            pools.record(q, int(round(prec * len(q))))


# --- replicate equations -------------------------------------------------------------------


def replicate_design(units: Units, target: int) -> np.ndarray:
    p = np.full(units.n, 0.5)
    p[units.paired] = 0.1
    p[target] = 0.9
    return p


def replicate_decode(report: dict[str, Any], units: Units, target: int) -> dict[int, int]:
    """With the seed: AUROC_b = 0.5 + 0.5 w_bt / Wpos_b (target positive) or
    0.5 - 0.5 w_bt / Wneg_b; each replicate gives Wpos_b = sum_i w_bi y_i."""
    idx = np.flatnonzero(units.paired)
    out = {int(i): 0 for i in idx}
    sec = report.get("scenarios", {}).get("paired", {})
    reps, seed = sec.get("replicates"), report.get("seed")
    if not isinstance(reps, list) or seed is None:
        return out
    plan = make_plan(units.subjects, n_replicates=len(reps), seed=int(seed))
    w = plan.row_weights(idx)
    t = int(np.flatnonzero(idx == target)[0])
    r = np.array([np.nan if v is None else v for v in reps])
    use = np.isfinite(r) & (w[:, t] > 0) & (np.abs(r - 0.5) > 1e-6)
    if not use.any():
        return out
    positive = bool(np.median(r[use]) > 0.5)
    half = 0.5 * w[use, t] / np.abs(r[use] - 0.5)
    rhs = half if positive else w[use].sum(axis=1) - half
    y, *_ = np.linalg.lstsq(w[use], rhs, rcond=None)
    for j, i in enumerate(idx):
        out[int(i)] = int(y[j] > 0.5)
    out[int(target)] = int(positive)
    return out


# --- scoring the outcome -------------------------------------------------------------------


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    ph = k / n
    d = 1 + z * z / n
    c = (ph + z * z / (2 * n)) / d
    h = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def _h(q: float) -> float:
    return 0.0 if q <= 0 or q >= 1 else -(q * math.log2(q) + (1 - q) * math.log2(1 - q))


def outcome(
    guesses: dict[int, int], y: np.ndarray, submissions: int, *, base_rate: float
) -> dict[str, Any]:
    """Accuracy of the guesses with a 95% Wilson CI, against chance: guesses with the same
    share of positives drawn without the labels; bits gained over the prior."""
    if not guesses:
        return {"labels": 0, "accuracy": None, "ci": [0.0, 1.0], "chance": None, "bits": 0.0}
    i = np.array(sorted(guesses))
    g = np.array([guesses[k] for k in i])
    truth = y[i]
    correct = int((g == truth).sum())
    prev = base_rate
    share = float(g.mean())
    chance = share * prev + (1 - share) * (1 - prev)
    acc = correct / i.size
    lo, hi = wilson(correct, int(i.size))
    bits = max(0.0, i.size * (_h(prev) - _h(1 - acc))) if acc > chance else 0.0
    return {
        "labels": int(i.size),
        "accuracy": round(acc, 4),
        "ci": [round(lo, 4), round(hi, 4)],
        "chance": round(chance, 4),
        "above_chance": lo > chance,
        "bits": round(bits, 1),
        "bits_per_submission": round(bits / max(1, submissions), 1),
        "submissions": submissions,
    }


# --- the attacks ---------------------------------------------------------------------------


def attack_curve_rank(oracle: Oracle, units: Units, rng: np.random.Generator) -> Knowledge:
    k = Knowledge()
    p = curve_rank_design(units, rng)
    k.learn(curve_rank_decode(oracle(prediction_csv(units, p, {})), units, p))
    k.submissions = 1
    return k


def attack_float_digit(oracle: Oracle, units: Units, rng: np.random.Generator) -> Knowledge:
    k = Knowledge()
    p, targets = float_digit_design(units, np.full(units.n, 0.5), {})
    k.learn(float_digit_decode(oracle(prediction_csv(units, p, {})), units, p, targets, {}))
    k.submissions = 1
    return k


def attack_single_unit(oracle: Oracle, units: Units, rng: np.random.Generator) -> Knowledge:
    k = Knowledge()
    slots, target = single_unit_slots(units, {}, rng)
    k.learn(single_unit_decode(oracle(prediction_csv(units, np.full(units.n, 0.5), slots)), target))
    k.submissions = 1
    return k


def attack_subset_count(
    oracle: Oracle, units: Units, rng: np.random.Generator, quota: int
) -> Knowledge:
    k = Knowledge()
    first = oracle(prediction_csv(units, np.full(units.n, 0.5), {}))
    total = _positives(first, "paired") or 0
    members = [int(i) for i in rng.permutation(np.flatnonzero(units.paired))]
    pools = Pools([(members, total)])
    for _ in range(quota - 1):
        queries = pools.next_queries(len(CXR_SLOTS))
        if not queries:
            break
        report = oracle(prediction_csv(units, np.full(units.n, 0.5), subset_slots(units, queries)))
        subset_decode(report, queries, pools)
    k.learn(pools.guesses())
    k.submissions = quota
    return k


def attack_replicates(oracle: Oracle, units: Units, rng: np.random.Generator) -> Knowledge:
    k = Knowledge()
    target = int(rng.choice(np.flatnonzero(units.paired)))
    p = replicate_design(units, target)
    k.learn(replicate_decode(oracle(prediction_csv(units, p, {})), units, target))
    k.submissions = 1
    return k


def attack_combined(
    oracle: Oracle, units: Units, rng: np.random.Generator, quota: int
) -> Knowledge:
    """The whole quota, every channel in every submission: curve ranks on the paired units
    (or, once those are known, the replicate equations' design), the Brier digits on the
    unpaired ones, single units in the cxr_missing slots."""
    k = Knowledge()
    for _ in range(quota):
        p = curve_rank_design(units, rng)
        paired_known = {
            i: k.guesses[i] for i in map(int, np.flatnonzero(units.paired)) if i in k.guesses
        }
        p, targets = float_digit_design(units, p, k.guesses)
        slots, single = single_unit_slots(units, k.guesses, rng)
        report = oracle(prediction_csv(units, p, slots))
        k.submissions += 1
        paired_y = curve_rank_decode(report, units, p)
        if report.get("seed") is not None:
            paired_y.update(paired_known)
        k.learn(paired_y)
        k.learn(single_unit_decode(report, single))
        k.learn(float_digit_decode(report, units, p, targets, k.guesses))
    return k


# --- what was learned, used -----------------------------------------------------------------


def built_submission(honest: np.ndarray, guesses: dict[int, int]) -> np.ndarray:
    p = honest.copy()
    for i, label in guesses.items():
        p[i] = 0.999 if label else 0.001
    return p


def run_all(
    oracle: Oracle,
    units: Units,
    y: np.ndarray,
    *,
    quota: int,
    honest: np.ndarray,
    score: Callable[[np.ndarray], float],
    seed: int = 0,
) -> dict[str, Any]:
    """Every attack; per attack the outcome; for the combined one also the score of the
    submission built from it against the honest model's."""
    rng = np.random.default_rng(seed)
    results: dict[str, Any] = {}
    for name, run in (
        ("curve_rank", lambda: attack_curve_rank(oracle, units, rng)),
        ("float_digit", lambda: attack_float_digit(oracle, units, rng)),
        ("single_unit", lambda: attack_single_unit(oracle, units, rng)),
        ("replicate_equations", lambda: attack_replicates(oracle, units, rng)),
        ("subset_count", lambda: attack_subset_count(oracle, units, rng, quota)),
        ("combined", lambda: attack_combined(oracle, units, rng, quota)),
    ):
        k = run()
        results[name] = outcome(k.guesses, y, k.submissions, base_rate=float(y.mean()))
        if name == "combined":
            results[name]["built_score"] = round(score(built_submission(honest, k.guesses)), 4)
            results[name]["honest_score"] = round(score(honest), 4)
    return results


def engine_setup(benchmark: Path, view: str) -> tuple[Oracle, Units, np.ndarray, Callable]:
    """An oracle on the real scoring engine: the stored report, or the participant's view of
    it (what the API and the entry page serve)."""
    from benchmark_data import Benchmark
    from scoring.disclosure import participant_report
    from scoring.report import score_predictions
    from scoring.truth import truth_from_benchmark

    bench = Benchmark.open(benchmark)
    truth = truth_from_benchmark(bench, TASK)
    units = Units.from_benchmark(Path(benchmark))
    order = pd.Series(np.arange(truth.n), index=truth.keys["stay_id"].astype(np.int64))
    y = np.asarray(truth.y)[order.loc[units.stay_ids].to_numpy()]

    def oracle(csv: bytes) -> dict[str, Any]:
        report = score_predictions(csv, truth=truth, replicates=1000)
        return report if view == "stored" else participant_report(report)

    def score(p: np.ndarray) -> float:
        report = score_predictions(prediction_csv(units, p, {}), truth=truth, replicates=200)
        return float(report["summary"]["value"])

    return oracle, units, y, score


def honest_predictions(benchmark: Path, units: Units) -> np.ndarray:
    from benchmark_data import Benchmark
    from leaderboard.board.sample import sample_predictions

    df = pd.read_csv(io.BytesIO(sample_predictions(Benchmark.open(benchmark))))
    return df.set_index("stay_id").loc[units.stay_ids, "prediction"].to_numpy(dtype=float)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--benchmark", type=Path, required=True, help="the demo benchmark directory")
    ap.add_argument("--view", choices=["participant", "stored"], default="participant")
    ap.add_argument("--quota", type=int, default=5, help="submissions per day (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    oracle, units, y, score = engine_setup(args.benchmark, args.view)
    honest = honest_predictions(args.benchmark, units)
    res = run_all(oracle, units, y, quota=args.quota, honest=honest, score=score, seed=args.seed)
    print(json.dumps({"view": args.view, "base_rate": round(float(y.mean()), 4), **res}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
