"""Benchmark the scoring engine on a decompensation-size test set.

Generates a seeded, decompensation-shaped data set (216,663 hourly rows of about 9,000
patients, about 2% positives: the last hours before an in-hospital death, scores correlated
with the labels and within patients), then measures side by side in one run:

* the bootstrap of AUROC + AUPRC over 1,000 patient-level replicates with
  :func:`scoring.metrics.compute_metrics`;
* scikit-learn's ``roc_auc_score`` + ``average_precision_score`` called once per replicate
  with the same weights as ``sample_weight`` (a few replicates are timed and the time is
  extrapolated to the full count), and the largest difference between the two;
* the peak memory of our bootstrap (tracemalloc, in a separate untimed run);
* the cost of fairness: the whole scoring of the file (validation and report) with the
  fairness section, without it, and with the per-group scoring it replaced (one
  ``compute_metrics`` call per group), with every patient's images and with 40% of the
  patients without an image, each as ratios measured in the same run.

Usage::

    python scripts/bench_scoring.py [--replicates 1000] [--sklearn-replicates 20] [--seed 0]
    python scripts/bench_scoring.py --only fairness [--fairness-repeats 3]

Each measurement is a function returning a row of results, so further comparisons (a full
report, fairlearn's ``MetricFrame(n_boot=...)``) can be added to ``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark_data.tasks import TASKS  # noqa: E402
from scoring.bootstrap import ReplicatePlan, make_plan  # noqa: E402
from scoring.metrics import compute_metrics  # noqa: E402

N_ROWS = 216_663
N_PATIENTS = 9_000
DEATH_RATE = 0.025  # patients who die in hospital; their last 24 hours are positive
HORIZON_HOURS = 24


@dataclass(frozen=True)
class Dataset:
    """Hourly rows: label, score and patient id of each row."""

    y: np.ndarray
    p: np.ndarray
    clusters: np.ndarray


@dataclass
class Context:
    """What the benchmarks share: data, replicate plan and options."""

    data: Dataset
    plan: ReplicatePlan
    replicates: int
    sklearn_replicates: int
    batch_size: int
    repeats: int
    results: dict[str, Any]
    fairness_repeats: int = 2


def make_decompensation_like(
    *, n_rows: int = N_ROWS, n_patients: int = N_PATIENTS, seed: int = 0
) -> Dataset:
    """Seeded decompensation-shaped rows: every patient has at least one row (about 24 on
    average); a patient who dies is positive in the last ``HORIZON_HOURS`` rows; scores
    are logistic in the label, a per-patient effect and noise, with 6 decimals."""
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n_rows - n_patients, np.full(n_patients, 1 / n_patients)) + 1
    ids = rng.choice(10**8, n_patients, replace=False)
    clusters = np.repeat(ids, sizes)
    dies = np.repeat(rng.random(n_patients) < DEATH_RATE, sizes)
    ends = np.cumsum(sizes)
    hours_left = np.repeat(ends, sizes) - np.arange(n_rows)  # 1 at a patient's last row
    y = (dies & (hours_left <= HORIZON_HOURS)).astype(np.int8)
    effect = np.repeat(rng.normal(0, 0.8, n_patients), sizes)
    logit = -4.2 + 2.2 * y + effect + rng.normal(0, 1.0, n_rows)
    p = np.round(1 / (1 + np.exp(-logit)), 6)
    return Dataset(y=y, p=p, clusters=clusters)


def _ours(ctx: Context) -> dict[str, np.ndarray]:
    task = TASKS["decompensation"]
    mv = compute_metrics(
        task,
        "probability",
        ctx.data.y,
        ctx.data.p,
        plan=ctx.plan,
        metrics=["auroc", "auprc"],
        batch_size=ctx.batch_size,
    )
    return mv.replicates


def bench_ours(ctx: Context) -> dict[str, Any]:
    """Our bootstrap of AUROC + AUPRC over all replicates (best of ``repeats`` runs)."""
    times = []
    for _ in range(ctx.repeats):
        t0 = time.perf_counter()
        reps = _ours(ctx)
        times.append(time.perf_counter() - t0)
    ctx.results["ours_replicates"] = reps
    return {"ours_seconds": min(times), "ours_all_runs": times}


def bench_sklearn(ctx: Context) -> dict[str, Any]:
    """scikit-learn once per replicate on the first ``sklearn_replicates`` replicates,
    extrapolated linearly to all replicates."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    k = ctx.sklearn_replicates
    auroc, ap = np.empty(k), np.empty(k)
    t0 = time.perf_counter()
    for b in range(k):
        w = ctx.plan.row_weights(start=b, stop=b + 1)[0]
        auroc[b] = roc_auc_score(ctx.data.y, ctx.data.p, sample_weight=w)
        ap[b] = average_precision_score(ctx.data.y, ctx.data.p, sample_weight=w)
    measured = time.perf_counter() - t0
    ours = ctx.results.get("ours_replicates")
    diff = None
    if ours is not None:
        diff = max(
            float(np.max(np.abs(ours["auroc"][:k] - auroc))),
            float(np.max(np.abs(ours["auprc"][:k] - ap))),
        )
    return {
        "sklearn_measured_seconds": measured,
        "sklearn_measured_replicates": k,
        "sklearn_seconds": measured / k * ctx.replicates,
        "max_abs_difference": diff,
    }


def bench_memory(ctx: Context) -> dict[str, Any]:
    """Peak memory allocated during our bootstrap (tracemalloc; not timed)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    _ours(ctx)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"ours_peak_bytes": peak}


def _truth_and_file(ctx: Context) -> tuple[Any, bytes, np.ndarray]:
    """A Truth with demographics per patient (four fairness attributes) and the matching
    prediction file (CSV bytes), for the full-report measurement."""
    import pandas as pd

    from scoring.truth import Truth

    d = ctx.data
    rng = np.random.default_rng(1)
    uniq, inv = np.unique(d.clusters, return_inverse=True)
    per_patient = {
        "age_group": rng.choice(np.array(["18-40", "40-60", "60-80", "80+"], dtype=object), uniq.size, p=[0.12, 0.3, 0.4, 0.18]),
        "gender": rng.choice(np.array(["F", "M"], dtype=object), uniq.size),
        "race": rng.choice(np.array(["WHITE", "BLACK", "HISPANIC", "ASIAN", "OTHER"], dtype=object), uniq.size, p=[0.65, 0.12, 0.05, 0.04, 0.14]),
        "insurance": rng.choice(np.array(["Medicare", "Medicaid", "Other"], dtype=object), uniq.size, p=[0.45, 0.12, 0.43]),
    }  # fmt: skip
    # Each patient's rows form one stay; period_length counts that stay's hours from 5.
    order = np.argsort(inv, kind="stable")
    stay = inv[order] + 1
    first = np.r_[0, np.flatnonzero(np.diff(stay)) + 1]
    hour = np.arange(stay.size) - np.repeat(first, np.diff(np.r_[first, stay.size])) + 5
    keys = pd.DataFrame({"stay_id": stay, "period_length": hour})
    truth = Truth(
        task=TASKS["decompensation"],
        keys=keys,
        y=d.y[order].astype(np.int8),
        clusters=d.clusters[order],
        paired=np.ones(stay.size, dtype=bool),
        groups={a: v[inv[order]] for a, v in per_patient.items()},
        source_hash="0" * 64,
    )
    csv = keys.assign(prediction=d.p[order]).to_csv(index=False).encode()
    return truth, csv, d.p[order]


def _full_report_child(conn: Any, replicates: int) -> None:
    ctx_data = make_decompensation_like()
    ctx = Context(ctx_data, None, replicates, 0, 50, 1, {})  # type: ignore[arg-type]
    truth, csv, _ = _truth_and_file(ctx)
    from scoring.report import score_predictions

    t0 = time.perf_counter()
    score_predictions(csv, truth=truth, replicates=replicates)
    elapsed = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    conn.send({"full_report_seconds": elapsed, "full_report_max_rss": rss})
    conn.close()


def bench_full_report(ctx: Context) -> dict[str, Any]:
    """The whole paired report (validation of a 216,663-row file, every metric with CIs,
    fairness over four attributes, curves and plots), in a fresh process so its peak
    memory (max RSS) is its own."""
    import multiprocessing as mp

    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_full_report_child, args=(child, ctx.replicates))
    proc.start()
    out: dict[str, Any] = parent.recv()
    proc.join()
    return out


def _without_images(truth: Any, share: float, seed: int = 5) -> Any:
    """The truth with ``share`` of its patients (seeded) without an image."""
    import dataclasses

    rng = np.random.default_rng(seed)
    _, patient = np.unique(truth.clusters, return_inverse=True)
    missing = rng.random(int(patient.max()) + 1) < share
    return dataclasses.replace(truth, paired=~missing[patient])


FAIRNESS_VARIANTS = ("without fairness", "fairness", "fairness, per group")


def bench_fairness(ctx: Context) -> dict[str, Any]:
    """Scoring a file (validation and the whole report) with and without the fairness
    section, and with the per-group scoring it replaced, on the same data with every
    patient's images and with 40% of the patients without one. The variants alternate,
    ``fairness_repeats`` times each; the best CPU time of each is kept (CPU rather than
    wall time: on a shared machine the ratios then hold)."""
    import functools

    import scoring.report as report_module
    from scoring.fairness import fairness_report

    truth, csv, _ = _truth_and_file(ctx)
    sections = {
        "without fairness": lambda *a, **k: {"attributes": {}, "intersections": {}},
        "fairness": fairness_report,
        "fairness, per group": functools.partial(fairness_report, per_group=True),
    }
    out: dict[str, Any] = {}
    for share in (0.0, 0.4):
        t = _without_images(truth, share) if share else truth
        best = dict.fromkeys(FAIRNESS_VARIANTS, float("inf"))
        try:
            for _ in range(ctx.fairness_repeats):
                for name in FAIRNESS_VARIANTS:
                    report_module.fairness_report = sections[name]  # type: ignore[assignment]
                    t0 = time.process_time()
                    report_module.score_predictions(csv, truth=t, replicates=ctx.replicates)
                    best[name] = min(best[name], time.process_time() - t0)
        finally:
            report_module.fairness_report = fairness_report
        out[f"fairness_{share:.0%}"] = best
    return {"fairness": out}


def bench_fairlearn(ctx: Context) -> dict[str, Any]:
    """fairlearn's MetricFrame(n_boot=k) for AUROC by one attribute, extrapolated to the
    full replicate count; compared with our per-group AUROC CIs for the same attribute."""
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import roc_auc_score

    truth, _, p = _truth_and_file(ctx)
    k = ctx.sklearn_replicates
    sf = truth.groups["race"]
    t0 = time.perf_counter()
    MetricFrame(
        metrics=roc_auc_score, y_true=truth.y, y_pred=p,
        sensitive_features=sf, n_boot=k, ci_quantiles=[0.025, 0.975], random_state=0,
    )  # fmt: skip
    measured = time.perf_counter() - t0
    plan = make_plan(truth.clusters, n_replicates=ctx.replicates, seed=0)
    t0 = time.perf_counter()
    for g in np.unique(sf):
        compute_metrics(
            truth.task,
            "probability",
            truth.y,
            p,
            plan=plan,
            rows=sf == g,
            metrics=["auroc"],
        )
    ours = time.perf_counter() - t0
    return {
        "fairlearn_measured_seconds": measured,
        "fairlearn_measured_replicates": k,
        "fairlearn_seconds": measured / k * ctx.replicates,
        "ours_group_seconds": ours,
    }


BENCHMARKS: list[Callable[[Context], dict[str, Any]]] = [
    bench_ours,
    bench_sklearn,
    bench_memory,
    bench_full_report,
    bench_fairlearn,
    bench_fairness,
]


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--sklearn-replicates", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fairness-repeats", type=int, default=2)
    parser.add_argument(
        "--only", choices=[b.__name__.removeprefix("bench_") for b in BENCHMARKS],
        action="append", help="run only these measurements (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    data = make_decompensation_like(seed=args.seed)
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = make_plan(data.clusters, n_replicates=args.replicates, seed=args.seed)
    t_plan = time.perf_counter() - t0
    ctx = Context(
        data, plan, args.replicates, args.sklearn_replicates, args.batch_size, args.repeats, {},
        args.fairness_repeats,
    )  # fmt: skip
    print(
        f"data: {data.y.size:,} rows, {plan.n_clusters:,} patients, "
        f"{data.y.mean():.2%} positives, {np.unique(data.p).size:,} distinct scores "
        f"(generated in {t_data:.2f} s)"
    )
    print(f"replicate plan: {args.replicates} replicates drawn in {t_plan:.2f} s")
    res: dict[str, Any] = {}
    for bench in BENCHMARKS:
        if not args.only or bench.__name__.removeprefix("bench_") in args.only:
            res.update(bench(ctx))
    _print_results(res, args, plan)
    return 0


def _print_fairness(res: dict[str, Any], args: argparse.Namespace) -> None:
    for key, best in res["fairness"].items():
        base = best["without fairness"]
        share = key.removeprefix("fairness_")
        print(
            f"scoring (validation + report), {share} of patients without an image, CPU s "
            f"(best of {args.fairness_repeats}): without fairness {base:.2f}, with fairness "
            f"{best['fairness']:.2f} (+{best['fairness'] / base - 1:.0%}), with the per-group "
            f"fairness {best['fairness, per group']:.2f} "
            f"(+{best['fairness, per group'] / base - 1:.0%}); fairness itself "
            f"{best['fairness, per group'] - base:.2f} s per group, "
            f"{best['fairness'] - base:.2f} s grouped: "
            f"{(best['fairness, per group'] - base) / max(best['fairness'] - base, 1e-9):.1f}x"
        )


def _print_results(res: dict[str, Any], args: argparse.Namespace, plan: ReplicatePlan) -> None:
    if "fairness" in res:
        _print_fairness(res, args)
    needed = ("ours_seconds", "sklearn_seconds", "ours_peak_bytes", "full_report_seconds",
              "fairlearn_seconds")  # fmt: skip
    if not all(k in res for k in needed):
        return
    print(
        f"ours, AUROC + AUPRC, {args.replicates} replicates: {res['ours_seconds']:.2f} s "
        f"(best of {args.repeats}: {', '.join(f'{t:.2f}' for t in res['ours_all_runs'])})"
    )
    print(
        f"scikit-learn, roc_auc_score + average_precision_score per replicate: "
        f"{res['sklearn_measured_seconds']:.2f} s for {res['sklearn_measured_replicates']} "
        f"replicates, extrapolated to {args.replicates}: {res['sklearn_seconds']:.1f} s"
    )
    print(f"speed-up: {res['sklearn_seconds'] / res['ours_seconds']:.0f}x")
    if res["max_abs_difference"] is not None:
        print(
            f"largest |ours - scikit-learn| on the measured replicates: {res['max_abs_difference']:.1e}"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(
        f"peak memory of our bootstrap (tracemalloc): {_mb(res['ours_peak_bytes'])}; "
        f"replicate counts table: {_mb(plan.counts.nbytes)}; process max RSS: {_mb(rss)}"
    )
    print(
        f"full paired report (validation, all metrics with CIs, fairness over 4 attributes, "
        f"curves, plots): {res['full_report_seconds']:.1f} s, peak memory (max RSS) "
        f"{_mb(res['full_report_max_rss'])}  [targets: < 15 s, < 2 GiB]"
    )
    print(
        f"fairlearn MetricFrame(n_boot={res['fairlearn_measured_replicates']}) AUROC by race: "
        f"{res['fairlearn_measured_seconds']:.1f} s, extrapolated to {args.replicates}: "
        f"{res['fairlearn_seconds']:.0f} s; ours for the same groups with {args.replicates} "
        f"replicates: {res['ours_group_seconds']:.2f} s; ratio "
        f"{res['fairlearn_seconds'] / res['ours_group_seconds']:.0f}x; versus our whole "
        f"report: {res['fairlearn_seconds'] / res['full_report_seconds']:.0f}x"
    )


if __name__ == "__main__":
    raise SystemExit(main())
