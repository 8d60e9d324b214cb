"""The ground truth a submission is scored against, in one aligned, typed structure.

A :class:`Truth` comes either from a benchmark's credentialed part
(:func:`truth_from_benchmark`) or from a labels CSV the user holds
(:func:`truth_from_csv`, e.g. their validation split). Every array is aligned with ``keys``,
the canonical unit order; validated predictions are reordered to it.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark_data.benchmark import Benchmark, ScenarioSets
from benchmark_data.sequestered import test_split
from benchmark_data.suite import Suite
from benchmark_data.tasks import AGE_BIN_LABELS, MEDMOD, Task
from scoring.errors import listing
from scoring.prediction_columns import label_aliases
from scoring.prediction_keys import EXPECTED_KEY_TEXT, KEY_KINDS, parse_key_text, shown

UNIT_SETS = ("public", "all")
ERR_UNIT_SET = "unknown test unit set {unit_set!r}; the sets are: {known}"
ERR_TRUTH_MISSING = "truth file {path} does not exist"
ERR_TRUTH_COLUMNS = (
    "truth file {path}: missing column(s) {columns} for task {task}: {task} truth files have "
    "the key column(s) {keys} and the label column(s) {labels}"
)
ERR_TRUTH_READ = "truth file {path}: cannot be read as CSV ({detail})"
ERR_TRUTH_NO_ROWS = "truth file {path}: no data rows"
ERR_TRUTH_DUPLICATES = (
    "truth file {path}: {n} unit(s) appear more than once (column(s) {columns}), first: {first}"
)
ERR_TRUTH_KEY_VALUES = (
    "truth file {path}: column {column} has {n} malformed value(s) (expected {expected}), "
    "first: {first}"
)
ERR_TRUTH_STAY_NAMES = (
    "truth file {path}: column stay holds {n} episode name(s), not stay ids (first: {first}): "
    "add a stay_id column beside stay (as MedMod's listfiles have), and episode names in "
    "prediction files are then mapped to it, or write the stay ids in column stay"
)
ERR_TRUTH_VALUES = (
    "truth file {path}: column {column} has {n} invalid value(s) (expected {detail}), "
    "first: {first}"
)
ERR_GATEWAY_ONLY = (
    "task {task} is scored through the streaming gateway only: its public test files list no "
    "units, so no prediction file is taken for it; submit a container (docs/containers.md)"
)


class TruthError(ValueError):
    """A truth (labels) file is unusable; the message says why."""


@dataclass
class Truth:
    """Labels and context of the units a task is scored on.

    ``y`` is (n,) 0/1 for binary tasks, (n, L) 0/1 for multi-label tasks and (n,) remaining
    hours for length of stay. ``clusters`` holds the bootstrap resampling unit per row
    (``subject_id``; all rows of a patient are resampled together). ``paired`` marks units
    with a chest X-ray; ``withheld[scenario]`` marks paired units whose X-ray that scenario
    withholds. ``groups[attribute]`` gives each unit's demographic group (fairness), for
    the fairness attributes ``suite`` declares, binned as it declares them.
    """

    task: Task
    keys: pd.DataFrame
    y: np.ndarray
    clusters: np.ndarray
    paired: np.ndarray
    withheld: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    stay_names: dict[str, int] = field(default_factory=dict)
    source: str = ""
    source_hash: str = ""
    benchmark_name: str = ""
    benchmark_version: str = ""
    suite: Suite = MEDMOD

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def scenarios(self) -> list[str]:
        """Scenarios this truth can score, in the suite's order: paired (when any unit is
        paired), the withheld scenarios it knows, and natural (when it differs from paired)."""
        names = ["paired"] if self.paired.any() else []
        names += [s for s in self.suite.scenarios if s in self.withheld]
        if not self.paired.all():
            names.append("natural")
        return names

    def scenario_units(self, scenario: str) -> np.ndarray:
        """Boolean mask of the units scored in a scenario."""
        if scenario == "natural":
            return np.ones(self.n, dtype=bool)
        if scenario == "paired" or scenario in self.withheld:
            return self.paired.copy()
        raise KeyError(f"unknown scenario {scenario!r}")


def _hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fairness_groups(table: pd.DataFrame, suite: Suite) -> dict[str, np.ndarray]:
    """Each unit's group for every fairness attribute of the suite whose source column the
    table holds (None where the source is blank)."""
    out: dict[str, np.ndarray] = {}
    for attr in suite.fairness:
        if attr.source not in table.columns:
            continue
        col = table[attr.source]
        if attr.edges:
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            blank = np.isnan(values)
            g = attr.bin(np.where(blank, 0.0, values))
        else:
            blank = col.isna().to_numpy()
            g = attr.bin(col.astype(object).where(~blank, None).to_numpy(dtype=object))
        g = np.array(g, dtype=object)  # a copy: the source may be read-only
        g[blank] = None
        out[attr.slug] = g
    return out


def _groups_from_demographics(
    units: pd.DataFrame, demo: pd.DataFrame, suite: Suite
) -> dict[str, np.ndarray]:
    merged = units[["stay_id"]].merge(demo, on="stay_id", how="left", validate="many_to_one")
    return fairness_groups(merged, suite)


def _paired(units: pd.DataFrame) -> np.ndarray:
    """Units with every optional modality: the ``paired`` column (0/1) of a suite's unit
    list, or, without one (MedMod), the units with a chest X-ray."""
    if "paired" in units.columns:
        return units["paired"].fillna(0).astype(bool).to_numpy()
    if "cxr_dicom_id" in units.columns:
        return units["cxr_dicom_id"].notna().to_numpy()
    return np.zeros(len(units), dtype=bool)


def _labels(df: pd.DataFrame, task: Task) -> np.ndarray:
    cols = list(task.label_columns)
    if task.kind == "los":
        return df[cols[0]].to_numpy(dtype=np.float64)
    y = df[cols].to_numpy()
    y = y.astype(np.int8)
    return y[:, 0] if task.kind == "binary" else y


def truth_from_benchmark(
    bench: Benchmark, task: str | Task, *, unit_set: str | None = None
) -> Truth:
    """Truth of a task's test split from a benchmark's credentialed part.

    ``unit_set``: ``"public"`` scores the public test unit list, ``"all"`` every clean test
    unit (the gateway asks a model for every unit; the clean ones are those of which the
    public files show nothing past their prediction time); by default the set the benchmark scores
    the task on (:meth:`Benchmark.scored_on`).
    """
    t = bench.task(task)
    which = unit_set or bench.scored_on(t.slug)
    if which not in UNIT_SETS:
        raise ValueError(ERR_UNIT_SET.format(unit_set=which, known=", ".join(UNIT_SETS)))
    keys = list(t.key_columns)
    if which == "all":
        split = test_split(bench)
        units_df = split.units(t.slug)
        if "clean" in units_df.columns:  # the units the public files say nothing more of
            units_df = units_df[units_df["clean"] == 1].reset_index(drop=True)
        labels = split.labels(t.slug)
        scenario_sets = split.scenarios(t.slug) if _paired(units_df).any() else None
    else:
        units_df = bench.units(t.slug, "test")
        labels = bench.test_labels(t.slug)
        scenario_sets = bench.scenarios(t.slug) if _paired(units_df).any() else None
    units: pd.DataFrame = units_df
    if len(labels) != len(units) or not (
        labels[keys].reset_index(drop=True).equals(units[keys].reset_index(drop=True))
    ):
        labels = units[keys].merge(labels, on=keys, how="left", validate="one_to_one")
    demo = bench.demographics()
    stays = test_split(bench).stays if which == "all" else bench.stays()
    return _units_truth(
        bench, t, units, y=_labels(labels, t), stays=stays, scenario_sets=scenario_sets,
        groups=_groups_from_demographics(units, demo, bench.suite),
    )  # fmt: skip


def _units_truth(
    bench: Benchmark,
    t: Task,
    units: pd.DataFrame,
    *,
    y: np.ndarray,
    stays: pd.DataFrame,
    scenario_sets: ScenarioSets | None,
    groups: dict[str, np.ndarray],
) -> Truth:
    stay_names: dict[str, int] = {}
    if "stay" in stays.columns:
        stay_names = dict(zip(stays["stay"].astype(str), stays["stay_id"].astype(int), strict=True))
    paired = _paired(units)
    withheld: dict[str, np.ndarray] = {}
    if scenario_sets is not None:
        stay = units["stay_id"].to_numpy()
        for name, withheld_stays in scenario_sets.withheld.items():
            withheld[name] = paired & np.isin(stay, withheld_stays)
        for ablation in bench.suite.ablations:  # a modality subset: for every paired unit
            withheld.setdefault(ablation.slug, paired.copy())
    return Truth(
        task=t,
        keys=units[list(t.key_columns)].reset_index(drop=True),
        y=y,
        clusters=units["subject_id"].to_numpy(dtype=np.int64),
        paired=paired,
        withheld=withheld,
        groups=groups,
        stay_names=stay_names,
        source=bench.uri,
        source_hash=bench.manifest_hash,
        benchmark_name=bench.name,
        benchmark_version=bench.version,
        suite=bench.suite,
    )


def units_for_validation(bench: Benchmark, task: str | Task) -> Truth:
    """A task's public test units as a participant holds them (a public export or the
    release archive): keys, pairing, scenarios and stay names, and no labels (``y`` is
    zeros). Enough for :func:`scoring.validation.read_predictions` to check a file's form and
    coverage; never for scoring."""
    t = bench.task(task)
    if bench.scored_on(t.slug) == "all":
        raise TruthError(ERR_GATEWAY_ONLY.format(task=t.slug))
    units = bench.units(t.slug, "test")
    scenario_sets = bench.scenarios(t.slug) if _paired(units).any() else None
    shape = (len(units),) if t.kind != "multilabel" else (len(units), len(t.label_columns))
    return _units_truth(
        bench, t, units, y=np.zeros(shape), stays=bench.stays(), scenario_sets=scenario_sets,
        groups={},
    )  # fmt: skip


def _key_text(col: pd.Series) -> np.ndarray:
    """Stripped text of a key column as written (blank cells are empty text)."""
    return np.asarray(
        ["" if pd.isna(v) else str(v).strip() for v in col.to_numpy(dtype=object)], dtype=object
    )


def _first(values: np.ndarray, mask: np.ndarray) -> str:
    return listing(list(dict.fromkeys(shown(str(v)) for v in values[mask][:100])))


def _truth_keys(df: pd.DataFrame, t: Task, p: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The key columns of a truth file, parsed as prediction-file keys are, and the episode
    names of its ``stay`` column mapped to its ``stay_id`` column when it has both."""
    source = {k: k for k in t.key_columns}
    if "stay_id" in t.key_columns and "stay_id" not in df.columns and "stay" in df.columns:
        source["stay_id"] = "stay"
    missing = [c for c in source.values() if c not in df.columns]
    missing += [c for c in t.label_columns if c not in df.columns]
    if missing:
        raise TruthError(
            ERR_TRUTH_COLUMNS.format(
                path=p,
                columns=listing(missing),
                task=t.slug,
                keys=", ".join(t.key_columns),
                labels=listing(t.label_columns),
            )
        )
    keys: dict[str, np.ndarray] = {}
    for key, column in source.items():
        kind = KEY_KINDS.get(key, "text")
        text = _key_text(df[column])
        parsed, malformed, names = parse_key_text(text, kind)
        if column == "stay" and names.any():
            first = _first(text, names)
            raise TruthError(ERR_TRUTH_STAY_NAMES.format(path=p, n=int(names.sum()), first=first))
        if malformed.any():
            raise TruthError(
                ERR_TRUTH_KEY_VALUES.format(
                    path=p,
                    column=column,
                    n=int(malformed.sum()),
                    expected=EXPECTED_KEY_TEXT[kind],
                    first=_first(text, malformed),
                )
            )
        if kind == "hours" and np.all(parsed == np.floor(parsed)):
            parsed = parsed.astype(np.int64)
        keys[key] = parsed
    frame = pd.DataFrame(keys)
    dup = frame.duplicated(keep="first").to_numpy()
    if dup.any():
        shown_keys = [
            parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"
            for parts in zip(*(frame[k].astype(str)[dup] for k in t.key_columns), strict=True)
        ]
        raise TruthError(
            ERR_TRUTH_DUPLICATES.format(
                path=p,
                n=int(dup.sum()),
                columns=", ".join(source.values()),
                first=listing(list(dict.fromkeys(shown_keys))),
            )
        )
    stay_names: dict[str, int] = {}
    if source.get("stay_id") == "stay_id" and "stay" in df.columns:
        stay_names = dict(
            zip(_key_text(df["stay"]), (int(v) for v in keys["stay_id"]), strict=True)
        )
        stay_names.pop("", None)
    return frame, stay_names


def _truth_labels(df: pd.DataFrame, t: Task, p: Path) -> pd.DataFrame:
    """The label columns as numbers, refusing values that are not labels."""
    out = pd.DataFrame(index=df.index)
    for col in t.label_columns:
        v = pd.to_numeric(df[col], errors="coerce")
        bad = v.isna() | ~np.isfinite(v)
        bad |= ~v.isin([0, 1]) if t.kind != "los" else v < 0
        bad = bad.to_numpy(dtype=bool, copy=True)
        if bad.any():
            detail = "0 or 1" if t.kind != "los" else "remaining hours >= 0"
            text = _key_text(df[col])
            raise TruthError(
                ERR_TRUTH_VALUES.format(
                    path=p, column=col, n=int(bad.sum()), detail=detail, first=_first(text, bad)
                )
            )
        out[col] = v.to_numpy(dtype=float)
    return out


def truth_from_csv(
    path: str | os.PathLike[str], task: str | Task, *, suite: Suite = MEDMOD
) -> Truth:
    """Truth from a labels CSV: key columns, label columns, optional ``subject_id`` (the
    bootstrap cluster; each unit is its own cluster without it) and optional source columns
    of the suite's fairness attributes (MedMod: ``age,gender,race,insurance``). No
    scenarios: every unit counts as paired.

    mimic3-benchmarks and MedMod listfiles are read as prediction files are: ``stay`` stands
    for ``stay_id`` when the file has no ``stay_id`` (its values must then be stay ids); beside
    ``stay_id`` its episode names are mapped to the stay ids (``Truth.stay_names``), so that
    prediction files keyed by episode names match. Label columns may carry the suite's label
    names (MedMod: ``Congestive heart failure; nonhypertensive``). Keys are checked as in
    prediction files, and a problem raises :class:`TruthError` naming the file, the column
    and the first offending values.
    """
    t = suite.task(task if isinstance(task, str) else task.slug)
    p = Path(path)
    if not p.is_file():
        raise TruthError(ERR_TRUTH_MISSING.format(path=p))
    data = p.read_bytes()
    text_columns = {"stay", "stay_id", "period_length", *t.key_columns}
    try:
        df = pd.read_csv(
            io.BytesIO(data),
            compression="gzip" if p.suffix == ".gz" else None,
            low_memory=False,
            dtype=dict.fromkeys(text_columns, str),
        )
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise TruthError(ERR_TRUTH_READ.format(path=p, detail=exc)) from None
    df.columns = [str(c).strip() for c in df.columns]
    aliases = label_aliases(t)
    df = df.rename(
        columns={c: aliases[c.casefold()] for c in df.columns if c.casefold() in aliases}
    )
    if not len(df):
        raise TruthError(ERR_TRUTH_NO_ROWS.format(path=p))
    keys, stay_names = _truth_keys(df, t, p)
    labels = _truth_labels(df, t, p)
    if "subject_id" in df.columns:
        clusters = pd.factorize(df["subject_id"])[0].astype(np.int64)
    else:
        clusters = np.arange(len(df), dtype=np.int64)
    return Truth(
        task=t,
        keys=keys,
        y=_labels(labels, t),
        clusters=clusters,
        paired=np.ones(len(df), dtype=bool),
        groups=fairness_groups(df, suite),
        stay_names=stay_names,
        source=str(p),
        source_hash=_hash_bytes(data),
        suite=suite,
    )


__all__ = [
    "AGE_BIN_LABELS",
    "UNIT_SETS",
    "Truth",
    "TruthError",
    "fairness_groups",
    "truth_from_benchmark",
    "truth_from_csv",
    "units_for_validation",
]
