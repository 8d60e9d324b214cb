"""The ``/input`` tree a model sees in one scenario, built from a benchmark's public part.

Layout (docs/containers.md)::

    task.json                      task, scenario, key and output columns
    units.csv                      the units to predict: the public test unit list (paired
                                   units only in cxr_missing_*); cxr_dicom_id blank where withheld
    stays.csv                      test stays: stay_id, subject_id, hadm_id, intime, stay
    ehr/timeseries_test.csv.gz     as in the benchmark (public/ehr/)
    ehr/discretized_test.npy
    ehr/discretized_test_index.csv
    cxr/metadata.csv               the images present (radiology: every unit's image, path
                                   empty where withheld)
    cxr/images/{dicom_id}.png      only those images

A suite whose inputs the public files hold only up to its one prediction time (Yu et al.,
MEDFuse: :func:`cut_at_prediction_time`) also gets, with what each scenario withholds left
out:

    demographics.csv               its demographics, when they are an input of the suite
    notes/notes_test.csv.gz        the notes of its stays (not the withheld stays')
    labs/labs_test.csv.gz          their lab results
    cxr/...                        every image of its stays (not the withheld stays')

Only ``public/`` files of the benchmark are read; test labels never reach the tree.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark_data import layout
from benchmark_data.benchmark import Benchmark, csv_bytes, gzip_bytes
from benchmark_data.suite import Suite
from benchmark_data.tasks import DEFAULT_SCENARIO, NATURAL_SCENARIO, Task, get_task

INPUT_FORMAT = "medmod-container-input"
INPUT_FORMAT_VERSION = 1
TEST = "test"

ERR_SCENARIO = "unknown scenario {scenario!r}; the scenarios are: {known}"
ERR_LABELS_IN_TEST = "the public test unit list of {task} carries label column(s) {columns}"
ERR_NOT_PUBLIC = "refusing to put {rel} into a model's inputs: it is not a public file"
ERR_DEST = "the input directory {dest} exists and is not empty"

_FILE_MODE = 0o644
_DIR_MODE = 0o755


def output_columns(task: str | Task) -> dict[str, list[str]]:
    """Accepted prediction columns (besides the key columns) per output form of a task
    (a slug names a MedMod task)."""
    t = get_task(task) if isinstance(task, str) else task
    if t.kind == "binary":
        return {"probability": ["prediction"], "decision": ["decision"]}
    if t.kind == "los":
        return {"buckets": list(t.bucket_columns), "hours": ["prediction"]}
    return {"probabilities": list(t.label_slugs)}


def is_image_scenario(bench: Benchmark, scenario: str) -> bool:
    """Whether a scenario of the benchmark's suite withholds chest X-rays (MedMod:
    ``cxr_missing_*``)."""
    return any(m.slug == "cxr" and scenario in m.scenarios for m in bench.suite.modalities)


def paired_only(bench: Benchmark, scenario: str) -> bool:
    """Whether a scenario asks the paired units only (every scenario but ``paired`` and
    ``natural``: those that withhold a modality or keep a subset)."""
    return scenario not in (DEFAULT_SCENARIO, NATURAL_SCENARIO)


def _paired_units(units: pd.DataFrame) -> pd.Series:
    if "paired" in units.columns:
        return units["paired"].fillna(0).astype(bool)
    return units["cxr_dicom_id"].notna()


def withheld_by_modality(bench: Benchmark, task: str, scenario: str) -> dict[str, set[int]]:
    """Test stays each optional modality is withheld from in a scenario: a modality's
    ``{prefix}_{level}`` withholds it from the stays of the scenario file; an ablation
    withholds every optional modality it leaves out from every paired stay."""
    suite = bench.suite
    if scenario not in suite.scenarios:
        raise ValueError(ERR_SCENARIO.format(scenario=scenario, known=", ".join(suite.scenarios)))
    for m in suite.modalities:
        if scenario in m.scenarios:
            sets = bench.scenarios(task)
            return {m.slug: {int(s) for s in sets.withheld.get(scenario, ())}}
    for a in suite.ablations:
        if scenario == a.slug:
            units = bench.units(task, TEST)
            paired = {int(s) for s in units.loc[_paired_units(units), "stay_id"]}
            return {m.slug: set(paired) for m in suite.modalities if not m.required and m.slug not in a.modalities}  # fmt: skip
    return {}


def withheld_stays(bench: Benchmark, task: str, scenario: str) -> set[int]:
    """Test stays whose chest X-rays a scenario withholds (none for paired and natural)."""
    return withheld_by_modality(bench, task, scenario).get("cxr", set())


def one_prediction_time(suite: Suite) -> bool:
    """Whether every task of a suite (other than MedMod) is predicted at the same fixed time
    after admission (Yu et al., MEDFuse: 24 h)."""
    if suite.slug == "medmod":
        return False
    times = {(t.prediction_time.anchor, t.prediction_time.hours) for t in suite.tasks}
    return len(times) == 1 and next(iter(times))[0] == "admission"


def cut_at_prediction_time(bench: Benchmark) -> bool:
    """True when the public test files hold every test input only up to the one prediction
    time of every task: a benchmark of such a suite without a sequestered test part, as the
    Yu et al. and MEDFuse generators and importer write them. A container then reads them as
    files (each unit's inputs end at its prediction time), and :func:`prepare_inputs` checks
    the files again."""
    return one_prediction_time(bench.suite) and not bench.has(layout.TEST_STAYS)


def container_scenarios(source: Benchmark | Suite) -> tuple[str, ...]:
    """The scenarios a container is run in: every scenario of the (benchmark's) suite but
    ``natural``, whose inputs are ``paired``'s (the scorer takes both from the paired run)."""
    suite = source.suite if isinstance(source, Benchmark) else source
    return tuple(s for s in suite.scenarios if s != NATURAL_SCENARIO)


ERR_PAST_PREDICTION = (
    "{what} of the test split extend past the prediction time ({hours:g} h after admission): "
    "the public files of this benchmark are not cut at it, so they cannot be a model's inputs"
)


def _check_cut(what: str, hours: pd.Series, limit: float) -> None:
    h = pd.to_numeric(hours, errors="coerce")
    if (h > limit + 1e-9).any():
        raise ValueError(ERR_PAST_PREDICTION.format(what=what, hours=limit))


def _public(rel: str) -> str:
    if not layout.is_public(rel):
        raise ValueError(ERR_NOT_PUBLIC.format(rel=rel))
    return rel


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    path.write_bytes(data)
    path.chmod(_FILE_MODE)


def _copy_public(bench: Benchmark, rel: str, dest: Path) -> None:
    """Copy one public file (checked against the manifest) to ``dest``."""
    local = bench.local_path(_public(rel))  # reads and checks the sha256
    dest.parent.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    if local is not None:
        shutil.copyfile(local, dest)
        dest.chmod(_FILE_MODE)
    else:
        _write(dest, bench.read_bytes(rel))


def prepare_inputs(
    benchmark: Benchmark,
    task: str,
    scenario: str,
    dest: str | os.PathLike[str],
    *,
    link_from: str | os.PathLike[str] | None = None,
) -> Path:
    """Build the ``/input`` tree of one task and scenario in ``dest`` (created; must be empty).

    ``link_from`` names an input tree already built for the same task and benchmark (e.g.
    the ``paired`` one): its EHR files and images are hard-linked instead of read again.
    Returns ``dest``.
    """
    t = benchmark.task(task)
    hidden = withheld_by_modality(benchmark, t.slug, scenario)
    withheld = hidden.get("cxr", set())
    first_day = cut_at_prediction_time(benchmark)
    root = Path(dest)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(ERR_DEST.format(dest=root))
    root.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    root.chmod(_DIR_MODE)
    source = Path(link_from) if link_from is not None else None

    units = benchmark.units(t.slug, TEST)
    leaked = [c for c in t.label_columns if c in units.columns]
    if leaked:
        raise ValueError(ERR_LABELS_IN_TEST.format(task=t.slug, columns=", ".join(leaked)))
    if "cxr_dicom_id" not in units.columns:
        units["cxr_dicom_id"] = pd.Series(pd.NA, index=units.index, dtype="string")
    if paired_only(benchmark, scenario):
        # These scenarios score the paired units only (docs/benchmark-format.md, Scenarios).
        units = units[_paired_units(units).to_numpy()].reset_index(drop=True)
    if withheld:
        hide = units["stay_id"].astype("int64").isin(withheld)
        units.loc[hide, "cxr_dicom_id"] = pd.NA
    if "has_cxr" in units.columns and withheld:
        units.loc[units["stay_id"].astype("int64").isin(withheld), "has_cxr"] = 0
    if "has_notes" in units.columns and hidden.get("notes"):
        units.loc[units["stay_id"].astype("int64").isin(hidden["notes"]), "has_notes"] = 0
    _write(root / "units.csv", csv_bytes(units))
    present = sorted(set(units["cxr_dicom_id"].dropna().astype(str)))
    unit_stays = set(units["stay_id"].astype("int64"))
    if first_day:
        limit = float(t.prediction_time.hours or 0.0)
        present = _first_day_inputs(benchmark, root, units, hidden, limit)

    stays = benchmark.stays()
    stays = stays[stays["split"] == TEST].drop(columns=["split"])
    _write(root / "stays.csv", csv_bytes(stays))

    ehr = [layout.timeseries(TEST), layout.discretized(TEST), layout.discretized_index(TEST)]
    for rel in ehr:
        if not benchmark.has(rel):
            continue
        target = root / "ehr" / Path(rel).name
        _link_or(source / "ehr" / Path(rel).name if source else None, target, benchmark, rel)

    # Metadata of the images present; for radiology also of the withheld unit images, whose
    # time still sets the unit's EHR window (their path is left empty).
    listed = set(present)
    if "dicom_id" in t.key_columns:
        listed |= set(units["dicom_id"].astype(str))
    if benchmark.has(layout.CXR_METADATA):
        meta = benchmark.cxr_metadata()
        meta = meta[meta["dicom_id"].astype(str).isin(listed)].copy()
        meta = meta.drop(columns=[c for c in ("split",) if c in meta.columns])
    else:
        meta = pd.DataFrame({"dicom_id": sorted(listed)})
    shown = set(present)
    meta["path"] = [
        f"cxr/images/{d}.png" if d in shown else "" for d in meta["dicom_id"].astype(str)
    ]
    _write(root / "cxr" / "metadata.csv", csv_bytes(meta))
    images = root / "cxr" / "images"
    images.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    for dicom_id in present:
        name = f"{dicom_id}.png"
        _link_or(
            source / "cxr" / "images" / name if source else None,
            images / name,
            benchmark,
            layout.image(dicom_id),
        )

    task_json: dict[str, Any] = {
        "format": INPUT_FORMAT,
        "format_version": INPUT_FORMAT_VERSION,
        "task": t.slug,
        "scenario": scenario,
        "split": TEST,
        "kind": t.kind,
        "key_columns": list(t.key_columns),
        "label_slugs": list(t.label_slugs) if t.kind == "multilabel" else [],
        "output_columns": output_columns(t),
        "output": "/output/predictions.csv",
        "benchmark": {"name": benchmark.name, "version": benchmark.version},
        "units": len(units),
        "images": len(present),
        "withheld_stays": len(withheld),
        "suite": benchmark.suite.slug,
        "modalities": [m.slug for m in benchmark.suite.modalities],
        "withheld": {m: len(v & unit_stays) for m, v in hidden.items()},
    }
    _write(root / "task.json", (json.dumps(task_json, indent=1) + "\n").encode())
    for d in (root, root / "ehr", root / "cxr", images, root / "notes", root / "labs"):
        if d.exists():
            d.chmod(_DIR_MODE)
    return root


def _first_day_inputs(
    bench: Benchmark, root: Path, units: pd.DataFrame, hidden: dict[str, set[int]], limit: float
) -> list[str]:
    """Write the demographics, notes and lab results of the units' stays (what a scenario
    withholds left out), after checking that no public test input is later than the
    prediction time; returns the images to show: every image of the units' stays, but the
    withheld stays'."""
    stays = set(units["stay_id"].astype("int64"))
    if bench.has(layout.timeseries(TEST)):
        _check_cut("time-series rows", bench.timeseries(TEST)["hours"], limit)
    if bench.has(layout.PUBLIC_DEMOGRAPHICS):
        demo = bench.read_csv(layout.PUBLIC_DEMOGRAPHICS)
        _write(root / "demographics.csv", csv_bytes(demo[demo["stay_id"].isin(stays)]))
    if bench.has(layout.notes(TEST)):
        notes = bench.read_csv(layout.notes(TEST))
        _check_cut("notes", notes["store_minute"].fillna(notes["chart_minute"]) / 60.0, limit)
        keep = notes["stay_id"].isin(stays - hidden.get("notes", set()))
        _write(root / "notes" / "notes_test.csv.gz", gzip_bytes(csv_bytes(notes[keep])))
    if bench.has(layout.labs(TEST)):
        labs = bench.read_csv(layout.labs(TEST))
        _check_cut("lab results", labs["hours"], limit)
        keep = labs["stay_id"].isin(stays - hidden.get("labs", set()))
        _write(root / "labs" / "labs_test.csv.gz", gzip_bytes(csv_bytes(labs[keep])))
    if not bench.has(layout.CXR_METADATA):
        return []
    meta = bench.cxr_metadata()
    meta = meta[meta["split"] == TEST]
    _check_cut("chest X-rays", meta["hours"], limit)
    shown = meta["stay_id"].isin(stays - hidden.get("cxr", set()))
    return sorted(meta.loc[shown, "dicom_id"].astype(str))


def _link_or(existing: Path | None, target: Path, bench: Benchmark, rel: str) -> None:
    """Hard-link ``existing`` (a file of a tree built before) to ``target``, else copy
    ``rel`` from the benchmark."""
    if existing is not None and existing.is_file() and not existing.is_symlink():
        target.parent.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
        try:
            os.link(existing, target)
            return
        except OSError:
            pass
    _copy_public(bench, rel, target)
