"""Entrypoint of the template model: read /input, write /output/predictions.csv.

    python3 predict.py --input /input --output /output

With ``MEDMOD_GATEWAY`` set, the platform streams the test split instead (stream.py): no
/input, predictions are answered step by step through the gateway.

The contract (docs/containers.md): /input/task.json names the task and scenario,
/input/units.csv lists the units to predict (cxr_dicom_id is blank where no image is
available in this scenario), /input/ehr/ holds the test split's EHR files and
/input/cxr/images/ the images present. The output is one CSV with the task's key columns
and prediction columns, one row per unit.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import medmod_template as model


def say(message: str) -> None:
    """Progress for the run's log."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="/input", type=Path)
    parser.add_argument("--output", default="/output", type=Path)
    parser.add_argument("--weights", default=Path(__file__).with_name("weights.json"), type=Path)
    args = parser.parse_args(argv)
    if os.environ.get("MEDMOD_GATEWAY"):
        import stream

        return stream.main(args.weights)
    t0 = time.perf_counter()

    task = json.loads((args.input / "task.json").read_text())
    units = model.read_csv(args.input / "units.csv")
    arr, index = model.load_discretized(args.input / "ehr", task.get("split", "test"))
    meta_path = args.input / "cxr" / "metadata.csv"
    image_hours = {}
    if meta_path.is_file():
        for row in model.read_csv(meta_path):
            hours = (row.get("hours") or "").strip()
            image_hours[row["dicom_id"]] = float(hours) if hours else 0.0
    n_images = sum(1 for u in units if (u.get("cxr_dicom_id") or "").strip())
    say(
        f"task {task['task']}, scenario {task['scenario']}: {len(units)} units, "
        f"{n_images} with an image",
    )

    x = model.unit_features(
        task["task"], units, arr, index, args.input / "cxr" / "images", image_hours
    )
    weights = model.load_weights(args.weights, task)
    columns = model.predict(x, weights)

    keys = task["key_columns"]
    args.output.mkdir(parents=True, exist_ok=True)
    tmp = args.output / "predictions.csv.part"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow([*keys, *columns])
        values = list(columns.values())
        for i, u in enumerate(units):
            out.writerow([u[k] for k in keys] + [f"{v[i]:.6f}" for v in values])
    tmp.replace(args.output / "predictions.csv")
    source = "fitted" if "features" in weights else "prior"
    say(
        f"wrote {len(units)} predictions ({source} weights) in {time.perf_counter() - t0:.1f} s",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
