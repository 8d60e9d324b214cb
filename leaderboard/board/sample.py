"""A sample entry for the demo: logistic regression on the first 48 hours of EHR.

It uses only the public part of a benchmark (the train split's labels and the discretized
time series), as a participant would, and writes an in-hospital mortality prediction file in
the public format. Imported by the ``demo`` command only.
"""

from __future__ import annotations

import io

import numpy as np

from benchmark_data import Benchmark

SAMPLE_TASK = "in-hospital-mortality"
SAMPLE_METHOD = "Logistic regression on 48-h EHR summaries"


def _features(bench: Benchmark, split: str, stay_ids: np.ndarray) -> np.ndarray:
    """Per stay: mean, last value and fraction measured of each discretized feature over
    the first 48 hours."""
    arr, index = bench.discretized(split)
    rows = index.set_index("stay_id").loc[stay_ids]
    out = []
    for offset, n_hours in zip(rows["offset"].to_numpy(), rows["n_hours"].to_numpy(), strict=True):
        window = arr[int(offset) : int(offset) + min(int(n_hours), 48)]
        out.append(np.concatenate([window.mean(axis=0), window[-1]]))
    return np.asarray(out, dtype=np.float64)


def sample_predictions(bench: Benchmark) -> bytes:
    """The sample entry's prediction CSV for the test split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = bench.units(SAMPLE_TASK, "train")
    test = bench.units(SAMPLE_TASK, "test")
    x_train = _features(bench, "train", train["stay_id"].to_numpy())
    x_test = _features(bench, "test", test["stay_id"].to_numpy())
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    model.fit(x_train, train["y_true"].to_numpy())
    p = model.predict_proba(x_test)[:, 1]
    buf = io.StringIO()
    buf.write("stay_id,prediction\n")
    for stay, prob in zip(test["stay_id"].to_numpy(), p, strict=True):
        buf.write(f"{int(stay)},{float(prob):.6f}\n")
    return buf.getvalue().encode()
