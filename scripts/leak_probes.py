"""Leak probes: model-free cheats built only from a benchmark's public files, scored with the
real engine.

A probe plays a participant who wants to top a board without a model. It reads what a
prediction-file entry may read (the ``public/`` files and the file sizes in the manifest;
never ``credentialed/``), turns one family of clues into per-unit features
(``scripts/leak_features.py``), fits a small model on the train split's public labels when
it needs one (or applies a fixed rule), writes a prediction file for the test split in the
task's format and scores it with :func:`scoring.report.score_predictions` against
:func:`scoring.truth.truth_from_benchmark`.

A **leak** probe uses only what lies past the unit's prediction time (or in identifiers and
file order); in a leak-free benchmark its 95% CI covers the no-skill value (AUROC and macro
AUROC 0.5, kappa 0). A **causal control** uses what any causal model knows at the prediction
time; it may score above chance and is reported apart. See ``docs/leak-probes.md``.

Usage::

    python scripts/leak_probes.py --benchmark DIR [--replicates 1000] [--json FILE]
        [--markdown FILE] [--predictions-dir DIR] [--task SLUG ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import leak_features as lf  # noqa: E402

from benchmark_data import Benchmark, BenchmarkError, get_task  # noqa: E402
from benchmark_data.tasks import Task  # noqa: E402
from scoring.report import score_predictions  # noqa: E402
from scoring.truth import truth_from_benchmark  # noqa: E402

NO_SKILL = {"auroc": 0.5, "macro_auroc": 0.5, "kappa": 0.0}
MAX_FIT_ROWS = 200_000  # hourly train lists are subsampled (seeded) to this many rows
SEED = 20240612
ALL_TASKS = (lf.IHM, lf.PHENO, lf.DECOMP, lf.LOS, lf.RAD)
WITHIN_STAY = (lf.IHM, lf.DECOMP, lf.LOS, lf.RAD)
HOURLY = (lf.DECOMP, lf.LOS)

Rule = Callable[[pd.DataFrame, str], np.ndarray]


@dataclass(frozen=True)
class Probe:
    name: str
    kind: str  # "leak" or "causal"
    tasks: tuple[str, ...]
    reads: str
    features: tuple[str, ...] = ()
    rule: Rule | None = None

    def columns(self, task: str) -> list[str]:
        cols = list(self.features)
        if self.name == "other-task-files":
            own = {lf.DECOMP: "past_decompensation_list", lf.LOS: "past_length-of-stay_list"}
            cols = [c for c in cols if c != own.get(task)]
        if self.name == "ids-and-order" and task == lf.RAD:
            cols += ["id_study_id", "pos_meta", "id_dicom_head"]
        return cols


def _own_list_rule(f: pd.DataFrame, task: str) -> np.ndarray:
    """Length of stay: remaining = last listed period_length + 0.5 - t. Decompensation: risk
    rises as the stay's listed rows run out."""
    past = f[f"past_{task}_list"].to_numpy(dtype=float)
    return past + 0.5 if task == lf.LOS else 1.0 / (1.0 + past)


LEAK_FEATURES = (
    "past_disc", "past_ts", "ts_rows_after", "past_img", "img_after", "png_after_mean",
    "past_decompensation_list", "decompensation_rows_after", "past_length-of-stay_list",
    "length-of-stay_rows_after", "past_ihm_list", "past_pheno_img", "past_rad_list",
    "los_minus_decomp_end", "later_stays", "next_gap_h",
)  # fmt: skip
ID_FEATURES = (
    "id_stay_id", "id_subject_id", "id_hadm_id", "id_intime_h",
    "pos_stays", "pos_ts", "pos_disc", "pos_unit",
)  # fmt: skip

PROBES: tuple[Probe, ...] = (
    Probe("stay-length-index", "leak", WITHIN_STAY,
          "ehr/discretized_test_index.csv: n_hours beyond the prediction time",
          ("past_disc",)),
    Probe("timeseries-after-t", "leak", WITHIN_STAY,
          "ehr/timeseries_test.csv.gz: hours of data and rows after the prediction time",
          ("past_ts", "ts_rows_after")),
    Probe("images-after-t", "leak", WITHIN_STAY,
          "cxr/metadata.csv and image sizes: images taken after the prediction time, "
          "their timing and PNG sizes", ("past_img", "img_after", "png_after_mean")),
    Probe("unit-list-rule", "leak", HOURLY,
          "tasks/{task}/test.csv: last listed period_length of the stay, no fitting "
          "(LOS: remaining = last + 0.5 - t)", rule=_own_list_rule),
    Probe("unit-list-rows-after-t", "leak", HOURLY,
          "tasks/{task}/test.csv: the stay's rows still listed after t",
          ("decompensation_rows_after", "length-of-stay_rows_after")),
    Probe("other-task-files", "leak", WITHIN_STAY,
          "the other tasks' test lists: hourly lists' last rows, mortality listing (>= 48 h), "
          "phenotyping's image (the stay's last), radiology's images",
          ("past_decompensation_list", "past_length-of-stay_list", "past_ihm_list",
           "past_pheno_img", "past_rad_list")),
    Probe("decomp-vs-los-list-end", "leak", (lf.IHM, lf.DECOMP, lf.LOS),
          "tasks/decompensation and tasks/length-of-stay: where each stay's rows end",
          ("los_minus_decomp_end",)),
    Probe("later-stays", "leak", ALL_TASKS,
          "stays.csv: the subject's stays after this one and the hours to the next intime",
          ("later_stays", "next_gap_h")),
    Probe("ids-and-order", "leak", ALL_TASKS,
          "ids (stay, subject, hadm, study, dicom), intime, positions in stays.csv, the "
          "time series, the discretized index, metadata.csv and the unit list",
          ID_FEATURES),
    Probe("all-leaks", "leak", ALL_TASKS,
          "every leak feature above at once (gradient-boosted trees)",
          LEAK_FEATURES + ID_FEATURES),
    Probe("prediction-time", "causal", (lf.DECOMP, lf.LOS, lf.RAD),
          "the prediction time t (hourly: period_length; radiology: the image's hours)",
          ("t",)),
    Probe("inputs-up-to-t", "causal", ALL_TASKS,
          "t, time-series rows and images at or before t, the latest image's PNG size, "
          "the episode number; phenotyping (t = end of stay): the stay's length",
          ("t", "ts_rows_upto", "img_upto", "png_last_upto", "episode", "stay_len_seen")),
)  # fmt: skip


def _model(task: Task, n_rows: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    common = {"max_iter": 100, "random_state": SEED, "early_stopping": n_rows > 10_000}
    if task.kind == "los":
        return HistGradientBoostingRegressor(loss="absolute_error", **common)
    return HistGradientBoostingClassifier(min_samples_leaf=20, **common)


def _fit_predict(task: Task, x_train: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Fit on the train split's features and labels; probabilities (or hours) for test.
    One thread: on a shared machine OpenMP's spinning threads cost more than they give."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _fit_predict_threads(task, x_train, y, x_test)


def _fit_predict_threads(
    task: Task, x_train: np.ndarray, y: np.ndarray, x_test: np.ndarray
) -> np.ndarray:
    if task.kind == "los":
        return np.maximum(_model(task, len(y)).fit(x_train, y).predict(x_test), 0.0)
    ys = y[:, None] if y.ndim == 1 else y
    out = np.empty((len(x_test), ys.shape[1]))
    for j in range(ys.shape[1]):
        yj = ys[:, j]
        if np.all(yj == yj[0]) or np.ptp(x_train, axis=0).max(initial=0) == 0:
            out[:, j] = yj.mean()  # nothing to learn: the training prevalence
            continue
        model = _model(task, len(yj)).fit(x_train, yj)
        out[:, j] = model.predict_proba(x_test)[:, 1]
    return np.clip(out[:, 0] if y.ndim == 1 else out, 0.0, 1.0)


def _prediction_csv(task: Task, units: pd.DataFrame, values: np.ndarray) -> bytes:
    df = units[list(task.key_columns)].reset_index(drop=True).copy()
    if task.kind == "multilabel":
        for j, slug in enumerate(task.label_slugs):
            df[slug] = np.round(values[:, j], 6)
    else:
        df["prediction"] = np.round(values, 6)
    return df.to_csv(index=False, lineterminator="\n").encode()


def _scenario(report: dict[str, Any], name: str, metric: str) -> dict[str, Any] | None:
    sec = report["scenarios"].get(name)
    if sec is None:
        return None
    m = sec["metrics"][metric]
    lo, hi = m["ci"]
    v0 = NO_SKILL[metric]
    covered = lo is not None and hi is not None and lo <= v0 <= hi
    return {"value": m["value"], "ci": [lo, hi], "covers_no_skill": covered,
            "n_units": sec["n_units"]}  # fmt: skip


class TaskData:
    """Train and test features of one task, computed once for all its probes."""

    def __init__(self, train: lf.SplitFiles, test: lf.SplitFiles, task: Task) -> None:
        self.task = task
        self.test_units = test.units[task.slug]
        self.x_test = lf.unit_features(test, task.slug)
        self.x_train = lf.unit_features(train, task.slug)
        y = lf.labels(train, task.slug, task.label_columns)
        if y is None:
            raise SystemExit(f"the train unit list of {task.slug} holds no labels to fit on")
        self.y_train = y
        if len(y) > MAX_FIT_ROWS:
            keep = np.sort(np.random.default_rng(SEED).choice(len(y), MAX_FIT_ROWS, replace=False))
            self.x_train, self.y_train = self.x_train.iloc[keep], y[keep]


def run_probe(probe: Probe, data: TaskData) -> np.ndarray:
    task = data.task
    if probe.rule is not None:
        return probe.rule(data.x_test, task.slug)
    cols = probe.columns(task.slug)
    x_train = data.x_train[cols].to_numpy(dtype=np.float64)
    x_test = data.x_test[cols].to_numpy(dtype=np.float64)
    return _fit_predict(task, x_train, data.y_train, x_test)


def run_probes(
    bench: Benchmark,
    *,
    replicates: int = 1000,
    tasks: tuple[str, ...] = ALL_TASKS,
    predictions_dir: Path | None = None,
    log: Callable[[str], None] = lambda _m: None,
    skipped: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run every probe of ``tasks`` on a benchmark; one result per (task, probe). A task
    with no public test units is recorded in ``skipped`` with the reason."""
    train, test = lf.read_split(bench, "train"), lf.read_split(bench, "test")
    rows: list[dict[str, Any]] = []
    skipped = skipped if skipped is not None else {}
    for slug in tasks:
        if slug not in test.units or slug not in train.units or not len(test.units[slug]):
            # Nothing public to cheat on (e.g. a task scored through the gateway only).
            skipped[slug] = "no public test units"
            log(f"{slug}: no public test units; nothing to probe")
            continue
        task = get_task(slug)
        data = TaskData(train, test, task)
        truth = truth_from_benchmark(bench, task)
        for probe in PROBES:
            if slug not in probe.tasks:
                continue
            t0 = time.perf_counter()
            csv = _prediction_csv(task, data.test_units, run_probe(probe, data))
            if predictions_dir is not None:
                predictions_dir.mkdir(parents=True, exist_ok=True)
                (predictions_dir / f"{slug}--{probe.name}.csv").write_bytes(csv)
            report = score_predictions(csv, truth=truth, replicates=replicates)
            metric = report["primary_metric"]
            main = _scenario(report, report["main_scenario"], metric)
            natural = _scenario(report, "natural", metric)
            assert main is not None
            at_chance = main["covers_no_skill"] and (natural is None or natural["covers_no_skill"])
            rows.append({
                "task": slug, "probe": probe.name, "kind": probe.kind,
                "reads": probe.reads.replace("{task}", slug), "metric": metric,
                "no_skill": NO_SKILL[metric], "main_scenario": report["main_scenario"],
                "main": main, "natural": natural, "at_chance": at_chance,
            })  # fmt: skip
            log(f"{slug:22} {probe.name:24} {_fmt(main)}  ({time.perf_counter() - t0:.1f} s)")
    return rows


def _fmt(m: dict[str, Any] | None) -> str:
    if m is None:
        return "-"
    lo, hi = m["ci"]
    if m["value"] is None or lo is None or hi is None:
        return "undefined"
    return f"{m['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown_table(rows: list[dict[str, Any]], kind: str) -> str:
    head = "| task | probe | metric | main scenario | natural (all units) | at chance |\n"
    head += "|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['task']} | {r['probe']} | {r['metric']} | {r['main_scenario']}: {_fmt(r['main'])} "
        f"| {_fmt(r['natural'])} | {'yes' if r['at_chance'] else '**no**'} |\n"
        for r in rows
        if r["kind"] == kind
    )
    return head + body


def markdown(bench: Benchmark, rows: list[dict[str, Any]], replicates: int) -> str:
    fmt_version = bench.manifest.get("format_version")
    title = f"{bench.name} {bench.version} (format version {fmt_version})"
    n_leak = sum(r["kind"] == "leak" for r in rows)
    n_bad = sum(r["kind"] == "leak" and not r["at_chance"] for r in rows)
    return (
        f"Benchmark {title}, manifest sha256 `{bench.manifest_hash[:16]}`, "
        f"{replicates} bootstrap replicates. Leak probes above chance: {n_bad} of {n_leak}.\n\n"
        f"**Leak probes** (must score at chance):\n\n{markdown_table(rows, 'leak')}\n"
        f"**Causal controls** (information known at the prediction time; not leaks):\n\n"
        f"{markdown_table(rows, 'causal')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", required=True, help="benchmark directory or s3:// URI")
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the tables as Markdown here")
    parser.add_argument("--predictions-dir", type=Path, help="keep each probe's prediction file")
    parser.add_argument("--task", action="append", choices=ALL_TASKS, help="only these tasks")
    args = parser.parse_args(argv)
    if args.replicates < 10:
        parser.error(f"--replicates must be at least 10, got {args.replicates}")
    try:
        bench = Benchmark.open(args.benchmark)
        if not bench.has_credentialed():
            parser.error(f"{args.benchmark} holds no credentialed part: the probes need the "
                         "test labels to be scored; point --benchmark at a full benchmark")  # fmt: skip
        t0 = time.perf_counter()
        skipped: dict[str, str] = {}
        rows = run_probes(
            bench,
            replicates=args.replicates,
            tasks=tuple(args.task or ALL_TASKS),
            predictions_dir=args.predictions_dir,
            log=lambda m: print(m, file=sys.stderr, flush=True),
            skipped=skipped,
        )
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = markdown(bench, rows, args.replicates)
    if skipped:
        text += "\nNot probed (no public test units): " + ", ".join(sorted(skipped)) + ".\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        result = {
            "benchmark": {
                "name": bench.name, "version": bench.version, "hash": bench.manifest_hash,
                "format_version": bench.manifest.get("format_version"),
            },
            "replicates": args.replicates, "seconds": round(time.perf_counter() - t0, 1),
            "leaks_above_chance": sum(r["kind"] == "leak" and not r["at_chance"] for r in rows),
            "skipped": skipped,
            "probes": rows,
        }  # fmt: skip
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
