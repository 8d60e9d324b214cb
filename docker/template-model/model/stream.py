"""The template model through the platform's streaming gateway (``MEDMOD_GATEWAY`` set).

The same features and weights as the batch path (predict.py), computed at each step from
what the gateway has revealed so far: the stay's complete discretized hours and the unit's
latest chest X-ray at or before the prediction time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import medmod_stream
import medmod_template as model
import numpy as np


def main(weights_path: Path) -> int:
    state: dict = {}
    images: dict[str, tuple[float, float, float]] = {}

    def setup(hello: dict) -> None:
        state["weights"] = model.load_weights(weights_path, hello)
        state["t0"] = time.perf_counter()
        state["units"] = 0
        sys.stderr.write(f"streaming {hello['task']}, scenario {hello['scenario']}\n")

    def predict(batch: medmod_stream.Batch) -> dict:
        x = np.empty((len(batch.units), len(model.EHR_FEATURES) + len(model.IMAGE_FEATURES)))
        ehr: dict[str, np.ndarray] = {}
        for i, unit in enumerate(batch.units):
            stay = unit.stay
            if stay.token not in ehr:
                rows = np.frombuffer(stay.discretized, dtype=np.float32)
                rows = rows.reshape(-1, medmod_stream.N_FEATURES)
                ehr[stay.token] = model.stay_features(rows, np.array([stay.hours]))[0]
            x[i, : len(model.EHR_FEATURES)] = ehr[stay.token]
            img = unit.image
            if img is None:
                x[i, len(model.EHR_FEATURES) :] = (0.0, 0.5, 0.5)
            else:
                if img.token not in images:
                    images[img.token] = model.image_features(img.png)
                x[i, len(model.EHR_FEATURES) :] = images[img.token]
        state["units"] += len(batch.units)
        return model.predict(model.standardize(x), state["weights"])

    code = medmod_stream.run(predict, setup=setup)
    took = time.perf_counter() - state.get("t0", 0.0)
    sys.stderr.write(f"answered {state.get('units', 0)} units in {took:.1f} s\n")
    return code
