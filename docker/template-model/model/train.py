"""Fit the template model's weights on a benchmark's public train split.

    python3 train.py --benchmark BENCHMARK_DIR --out weights.json [--tasks ...]

Runs outside the container, before `docker build` (the image then carries weights.json).
Logistic regression per label (Newton's method with a small ridge penalty) for the binary
and multi-label tasks; for length of stay a ridge regression of log remaining hours, whose
residual spread sets the bucket probabilities.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import medmod_template as model
import numpy as np

TASKS = {
    "in-hospital-mortality": "binary",
    "phenotyping": "multilabel",
    "decompensation": "binary",
    "length-of-stay": "los",
    "radiology": "multilabel",
}
NOT_LABELS = {"stay_id", "subject_id", "period_length", "dicom_id", "cxr_dicom_id"}


def say(message: str) -> None:
    """Progress for the run's log."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1.0, steps: int = 25):
    """Intercept and coefficients of an L2-penalised logistic regression."""
    xb = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(xb.shape[1])
    penalty = np.full(xb.shape[1], ridge)
    penalty[0] = 0.0
    for _ in range(steps):
        p = model.sigmoid(xb @ w)
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return float(w[0]), w[1:]


def fit_task(bench: Path, task: str, kind: str, max_rows: int, rng: np.random.Generator) -> dict:
    public = bench / "public"
    units = model.read_csv(public / "tasks" / task / "train.csv")
    if len(units) > max_rows:
        keep = np.sort(rng.choice(len(units), size=max_rows, replace=False))
        units = [units[i] for i in keep]
    arr, index = model.load_discretized(public / "ehr", "train")
    hours = {
        r["dicom_id"]: float(r.get("hours") or 0.0)
        for r in model.read_csv(public / "cxr" / "metadata.csv")
    }
    x = model.unit_features(task, units, arr, index, public / "cxr" / "images", hours)
    features = list(model.FEATURE_NAMES)
    if kind == "los":
        y = np.log(np.maximum([float(u["y_true"]) for u in units], 1.0))
        xb = np.hstack([np.ones((len(x), 1)), x])
        w = np.linalg.solve(xb.T @ xb + np.diag([0.0] + [1.0] * x.shape[1]), xb.T @ y)
        sigma = float(np.std(y - xb @ w))
        return {"kind": "los", "features": features, "intercept": [float(w[0])],
                "coef": [w[1:].tolist()], "sigma": max(sigma, 0.1)}  # fmt: skip
    labels = ["y_true"] if kind == "binary" else [c for c in units[0] if c not in NOT_LABELS]
    intercepts, coefs = [], []
    for label in labels:
        y = np.array([float(u[label]) for u in units])
        b, w = fit_logistic(x, y)
        intercepts.append(b)
        coefs.append(w.tolist())
    out = {"kind": kind, "features": features, "intercept": intercepts, "coef": coefs}
    if kind == "multilabel":
        out["labels"] = labels
    return out


def _rounded(value):
    """Weights with 6 decimals: plenty for the scores, and a readable file."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", required=True, type=Path)
    parser.add_argument("--out", default=Path(__file__).with_name("weights.json"), type=Path)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--max-rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    weights = {}
    for task in args.tasks:
        weights[task] = fit_task(args.benchmark, task, TASKS[task], args.max_rows, rng)
        say(f"fitted {task}")
    args.out.write_text(json.dumps(_rounded(weights), indent=1) + "\n")
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
