"""A benchmark suite as a declared specification: its modalities, its tasks, the
missing-modality scenarios they give, and the fairness attributes with their bins.

A suite is data (docs/benchmark-format.md, "The suite specification"): a JSON document in
the benchmark (``public/suite.json``, hashed by the manifest) that the scorer, the container
inputs, the baselines and the platform read. The suites the project generates ship as
package data under ``benchmark_data/suites/``. :func:`parse_suite` checks a document
field by field and refuses a malformed one with :class:`SuiteError`, whose message names
the field.

>>> suite = builtin_suite("medmod")
>>> suite.task("radiology").label_names[:2]
('Atelectasis', 'Cardiomegaly')
>>> suite.scenarios[:3]
('paired', 'cxr_missing_25', 'cxr_missing_50')
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any, Literal

import numpy as np

SPEC_NAME = "medmod-suite"
SPEC_VERSION = 1

TaskKind = Literal["binary", "multilabel", "los"]
KINDS: tuple[str, ...] = ("binary", "multilabel", "los")
ANCHORS: tuple[str, ...] = ("admission", "every_hour", "stay_end", "image")

ERR_FIELD = "{where}: {problem}"
ERR_NOT_JSON = "the suite specification {name} is not valid JSON: {detail}"


class SuiteError(ValueError):
    """A suite specification is malformed; the message names the field and says what to fix."""


def slugify(name: str) -> str:
    """Snake-case slug of a label name, as used for prediction-file columns.

    >>> slugify("Congestive heart failure; nonhypertensive")
    'congestive_heart_failure_nonhypertensive'
    """
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass(frozen=True)
class MetricSpec:
    """A metric's name and direction; the scoring registry implements it."""

    name: str
    greater_is_better: bool
    title: str


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("auroc", True, "AUROC"),
        MetricSpec("auprc", True, "AUPRC (average precision)"),
        MetricSpec("brier", False, "Brier score"),
        MetricSpec("ece", False, "Expected calibration error"),
        MetricSpec("accuracy", True, "Accuracy"),
        MetricSpec("f1", True, "F1"),
        MetricSpec("precision", True, "Precision"),
        MetricSpec("recall", True, "Recall (sensitivity)"),
        MetricSpec("specificity", True, "Specificity"),
        MetricSpec("answer_rate", True, "Answer rate"),
        MetricSpec("macro_auroc", True, "Macro AUROC"),
        MetricSpec("macro_auprc", True, "Macro AUPRC"),
        MetricSpec("micro_auroc", True, "Micro AUROC"),
        MetricSpec("macro_f1", True, "Macro F1"),
        MetricSpec("micro_f1", True, "Micro F1"),
        MetricSpec("kappa", True, "Cohen's kappa (linear weights)"),
        MetricSpec("mad", False, "Mean absolute deviation (hours)"),
    )
}

# The metrics the scoring engine computes for each label kind (probabilities, or hours and
# buckets for length of stay) and for yes/no decisions of a binary task: what a suite may
# declare. They restate scoring's metric table (scoring.metrics.FAMILIES, which computes
# them); tests/scoring/test_metrics.py keeps the two equal.
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "binary": (
        "auroc",
        "auprc",
        "brier",
        "ece",
        "accuracy",
        "f1",
        "precision",
        "recall",
        "specificity",
    ),  # fmt: skip
    "multilabel": ("macro_auroc", "macro_auprc", "micro_auroc", "macro_f1", "micro_f1"),
    "los": ("kappa", "mad", "accuracy"),
}
DECISION_METRICS: tuple[str, ...] = (
    "accuracy", "precision", "recall", "specificity", "f1", "answer_rate",
)  # fmt: skip


@dataclass(frozen=True)
class PredictionTime:
    """When a task's units are predicted, in hours since the stay's ICU admission:
    ``admission`` at ``hours`` after it; ``every_hour`` at each listed hour of the stay;
    ``stay_end`` at the stay's end; ``image`` at the image's time."""

    anchor: str
    hours: float | None = None

    def describe(self) -> str:
        return {
            "admission": f"at admission + {self.hours:g} h",
            "every_hour": "at every hour of the stay",
            "stay_end": "at the end of the stay",
            "image": "at the image's time",
        }[self.anchor]


@dataclass(frozen=True)
class Buckets:
    """Length-of-stay buckets: remaining hours ``x`` fall in bucket ``i`` when
    ``edges_days[i] * 24 <= x < edges_days[i + 1] * 24``; ``mean_hours`` turn a bucket back
    into hours for the mean absolute deviation."""

    edges_days: tuple[float, ...]
    mean_hours: tuple[float, ...]

    def bucket(self, hours: np.ndarray | list[float]) -> np.ndarray:
        h = np.asarray(hours, dtype=np.float64)
        edges = np.asarray(self.edges_days[1:-1]) * 24.0
        return np.searchsorted(edges, h, side="right").astype(np.int64)

    def hours(self, buckets: np.ndarray | list[int]) -> np.ndarray:
        return np.asarray(self.mean_hours)[np.asarray(buckets, dtype=np.int64)]


@dataclass(frozen=True)
class Task:
    """One prediction task of a suite."""

    slug: str
    title: str
    kind: TaskKind
    key_columns: tuple[str, ...]
    label_names: tuple[str, ...]
    primary_metric: str
    metrics: tuple[str, ...]
    decision_metrics: tuple[str, ...] = ()
    hourly: bool = False
    description: str = ""
    prediction_time: PredictionTime = PredictionTime("stay_end")
    threshold: float = 0.5
    modalities: tuple[str, ...] = ()
    label_groups: tuple[str, ...] = ()
    buckets: Buckets | None = None
    suite: str = ""
    label_slugs: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_slugs", tuple(slugify(n) for n in self.label_names))

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Label columns of unit lists and truth files: ``y_true`` for binary tasks and
        length of stay (remaining hours), the label slugs for multi-label tasks."""
        return self.label_slugs if self.kind == "multilabel" else ("y_true",)

    @property
    def bucket_columns(self) -> tuple[str, ...]:
        """Columns of a length-of-stay prediction file's ``buckets`` form (empty otherwise)."""
        return tuple(f"bucket_{i}" for i in range(len(self.buckets.mean_hours))) if self.buckets else ()  # fmt: skip

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    def metric(self, name: str) -> MetricSpec:
        return METRICS[name]

    @property
    def primary(self) -> MetricSpec:
        return METRICS[self.primary_metric]


@dataclass(frozen=True)
class Modality:
    """An input of the suite. An optional one is withheld in the scenarios
    ``{scenario_prefix}_{level}`` from that share of the paired test stays."""

    slug: str
    title: str
    required: bool
    withheld_levels: tuple[int, ...] = ()
    scenario_prefix: str = ""

    @property
    def scenarios(self) -> tuple[str, ...]:
        return tuple(f"{self.scenario_prefix}_{p}" for p in self.withheld_levels)


@dataclass(frozen=True)
class Ablation:
    """A modality subset scored as its own column (Yu et al.'s ablation table)."""

    slug: str
    title: str
    modalities: tuple[str, ...]


@dataclass(frozen=True)
class FairnessAttribute:
    """A subgroup attribute: a column of the demographics, binned (``edges``/``labels``) or
    grouped (``groups``, every other value in ``other``), or taken as it is."""

    slug: str
    title: str
    source: str
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    other: str = "OTHER"

    def bin(self, values: np.ndarray | list[Any]) -> np.ndarray:
        """Each value's subgroup."""
        if self.edges:
            a = np.asarray(values, dtype=np.float64)
            idx = np.searchsorted(np.asarray(self.edges[1:-1]), a, side="right")
            return np.asarray(self.labels, dtype=object)[idx]
        out = np.asarray(values, dtype=object)
        if self.groups:
            keep = set(self.groups)
            out = np.asarray([v if v in keep else self.other for v in out.tolist()], dtype=object)
        return out


@dataclass(frozen=True)
class Suite:
    """A suite: what its benchmarks hold and how their entries are scored."""

    slug: str
    title: str
    description: str
    citation: str
    modalities: tuple[Modality, ...]
    tasks: tuple[Task, ...]
    ablations: tuple[Ablation, ...]
    fairness: tuple[FairnessAttribute, ...]
    natural: bool
    spec: Mapping[str, Any] = field(repr=False, compare=False, hash=False, default_factory=dict)

    @property
    def task_slugs(self) -> tuple[str, ...]:
        return tuple(t.slug for t in self.tasks)

    def _find(self, items: tuple[Any, ...], slug: str, what: str, *, listed: bool = False) -> Any:
        for item in items:
            if item.slug == slug:
                return item
        known = f"; the {what}s are: {', '.join(i.slug for i in items)}" if listed else ""
        raise KeyError(f"unknown {what} {slug!r} in suite {self.slug}{known}")

    def task(self, slug: str) -> Task:
        """A task by slug, with a message that lists the suite's tasks."""
        return self._find(self.tasks, slug, "task", listed=True)

    def modality(self, slug: str) -> Modality:
        return self._find(self.modalities, slug, "modality")

    def ablation(self, slug: str) -> Ablation:
        return self._find(self.ablations, slug, "ablation")

    @cached_property
    def scenarios(self) -> tuple[str, ...]:
        """``paired`` (every optional modality present), each optional modality withheld at
        each of its levels, the ablations, then ``natural`` (every unit as it comes)."""
        out = ["paired"]
        for m in self.modalities:
            out += m.scenarios
        out += [a.slug for a in self.ablations]
        if self.natural:
            out.append("natural")
        return tuple(out)

    @property
    def withheld_modality(self) -> Modality | None:
        """The optional modality whose withheld levels make the robustness curve (the first
        one declared with levels), or None."""
        return next((m for m in self.modalities if m.withheld_levels), None)

    @property
    def fairness_attributes(self) -> tuple[str, ...]:
        return tuple(f.slug for f in self.fairness)

    def fairness_attribute(self, slug: str) -> FairnessAttribute:
        return self._find(self.fairness, slug, "fairness attribute")

    def to_json(self) -> bytes:
        """The specification as the benchmark stores it (canonical: sorted keys, indented)."""
        return (json.dumps(dict(self.spec), indent=1, sort_keys=True) + "\n").encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()


# Parsing ----------------------------------------------------------------------------------


class _Reader:
    """Typed access to one object of the document, with errors that name the field."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise SuiteError(ERR_FIELD.format(where=where, problem="must be a JSON object"))
        self.data, self.where = data, where

    def fail(self, key: str, problem: str) -> SuiteError:
        return SuiteError(ERR_FIELD.format(where=f"{self.where}.{key}", problem=problem))

    def check_keys(self, allowed: set[str]) -> None:
        extra = sorted(set(self.data) - allowed)
        if extra:
            raise self.fail(extra[0], f"unknown field; the fields are: {', '.join(sorted(allowed))}")  # fmt: skip

    def has(self, key: str) -> bool:
        return key in self.data

    def text(self, key: str, default: str | None = None, *, slug: bool = False) -> str:
        v = self.data.get(key, default)
        if v is None:
            raise self.fail(key, "is required (a string)")
        if v == "" and default == "":  # an optional text left out
            return v
        if not isinstance(v, str) or not v.strip():
            raise self.fail(key, f"must be a non-empty string, not {json.dumps(v)}")
        if slug and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,38}", v):
            raise self.fail(key, f"{v!r} is not a slug: lower-case letters, digits, - and _, at most 39")  # fmt: skip
        return v

    def flag(self, key: str, default: bool) -> bool:
        v = self.data.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, f"must be true or false, not {json.dumps(v)}")
        return v

    def number(self, key: str, default: float | None = None) -> float:
        v = self.data.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(key, f"must be a finite number, not {json.dumps(v)}")
        return float(v)

    def seq(self, key: str, *, required: bool = True, nonempty: bool = True) -> list[Any]:
        if key not in self.data:
            if required:
                raise self.fail(key, "is required (a list)")
            return []
        v = self.data[key]
        if not isinstance(v, list):
            raise self.fail(key, f"must be a list, not {json.dumps(v)[:40]}")
        if nonempty and not v:
            raise self.fail(key, "must not be empty")
        return v

    def strings(self, key: str, *, required: bool = True, nonempty: bool = True) -> tuple[str, ...]:  # fmt: skip
        items = self.seq(key, required=required, nonempty=nonempty)
        for i, v in enumerate(items):
            if not isinstance(v, str) or not v.strip():
                raise self.fail(f"{key}[{i}]", f"must be a non-empty string, not {json.dumps(v)}")
        if len(set(items)) != len(items):
            twice = next(v for i, v in enumerate(items) if v in items[:i])
            raise self.fail(key, f"names {twice!r} twice")
        return tuple(items)


def _unique(reader: _Reader, key: str, slugs: list[str]) -> None:
    for i, s in enumerate(slugs):
        if s in slugs[:i]:
            raise reader.fail(f"{key}[{i}].slug", f"{s!r} is used twice")


def _modality(r: _Reader) -> Modality:
    r.check_keys({"slug", "title", "required", "withheld_levels", "scenario_prefix"})
    slug = r.text("slug", slug=True)
    required = r.flag("required", False)
    levels = r.seq("withheld_levels", required=False, nonempty=False)
    for i, p in enumerate(levels):
        if isinstance(p, bool) or not isinstance(p, int) or not 0 < p <= 100:
            raise r.fail(f"withheld_levels[{i}]", f"must be a whole percentage in 1-100, not {json.dumps(p)}")  # fmt: skip
    if required and levels:
        raise r.fail("withheld_levels", "a required modality is never withheld; leave it out")
    prefix = r.text("scenario_prefix", f"{slug}_missing", slug=True)
    return Modality(slug, r.text("title"), required, tuple(levels), prefix)


def _prediction_time(r: _Reader) -> PredictionTime:
    r.check_keys({"anchor", "hours"})
    anchor = r.text("anchor")
    if anchor not in ANCHORS:
        raise r.fail("anchor", f"{anchor!r} is not one of: {', '.join(ANCHORS)}")
    if anchor == "admission":
        hours = r.number("hours")
        if hours <= 0:
            raise r.fail("hours", f"must be above 0, not {hours:g}")
        return PredictionTime(anchor, hours)
    if r.has("hours"):
        raise r.fail("hours", f"applies to the anchor 'admission' only, not {anchor!r}")
    return PredictionTime(anchor)


def _edges(r: _Reader, key: str, *, at_least: int) -> list[float]:
    """Increasing bin edges; a last ``null`` is no upper end (infinity)."""
    raw = r.seq(key)
    values: list[float] = []
    for i, e in enumerate(raw):
        if e is None and i == len(raw) - 1:
            values.append(math.inf)
        elif isinstance(e, bool) or not isinstance(e, (int, float)):
            raise r.fail(f"{key}[{i}]", f"must be a number (null for no upper end), not {json.dumps(e)}")  # fmt: skip
        else:
            values.append(float(e))
    if len(values) < at_least or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        words = {2: "two", 3: "three"}.get(at_least, str(at_least))
        raise r.fail(key, f"must be at least {words} increasing edges")
    return values


def _buckets(r: _Reader) -> Buckets:
    r.check_keys({"edges_days", "mean_hours"})
    values = _edges(r, "edges_days", at_least=3)
    means = r.seq("mean_hours")
    if len(means) != len(values) - 1:
        raise r.fail("mean_hours", f"must hold one value per bucket ({len(values) - 1}), not {len(means)}")  # fmt: skip
    for i, m in enumerate(means):
        if isinstance(m, bool) or not isinstance(m, (int, float)) or m < 0:
            raise r.fail(f"mean_hours[{i}]", f"must be hours >= 0, not {json.dumps(m)}")
    return Buckets(tuple(values), tuple(float(m) for m in means))


TASK_FIELDS = {
    "slug", "title", "description", "kind", "key_columns", "labels", "label_groups",
    "prediction_time", "primary_metric", "metrics", "decision_metrics", "threshold",
    "modalities", "buckets",
}  # fmt: skip


def _task(r: _Reader, suite: str, modalities: tuple[str, ...]) -> Task:
    r.check_keys(TASK_FIELDS)
    slug = r.text("slug", slug=True)
    kind = r.text("kind")
    if kind not in KINDS:
        raise r.fail("kind", f"{kind!r} is not one of: {', '.join(KINDS)}")
    keys = r.strings("key_columns")
    for i, k in enumerate(keys):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", k):
            raise r.fail(f"key_columns[{i}]", f"{k!r} is not a column name (lower-case, digits, _)")  # fmt: skip
    labels = r.strings("labels")
    if kind == "binary" and len(labels) != 1:
        raise r.fail("labels", f"a binary task has one label, not {len(labels)}")
    slugs = [slugify(n) for n in labels]
    if len(set(slugs)) != len(slugs):
        twice = next(s for i, s in enumerate(slugs) if s in slugs[:i])
        raise r.fail("labels", f"two labels give the same column {twice!r}")
    groups = tuple(r.seq("label_groups", required=False))  # may repeat: acute, chronic...
    if groups and len(groups) != len(labels):
        raise r.fail("label_groups", f"must hold one group per label ({len(labels)}), not {len(groups)}")  # fmt: skip
    for i, g in enumerate(groups):
        if not isinstance(g, str) or not g:
            raise r.fail(f"label_groups[{i}]", f"must be a non-empty string, not {json.dumps(g)}")
    when = _prediction_time(_Reader(r.data.get("prediction_time"), f"{r.where}.prediction_time"))
    hourly = when.anchor == "every_hour"
    if hourly and keys[-1:] != ("period_length",):
        raise r.fail("key_columns", "a task predicted every hour ends its keys with 'period_length'")  # fmt: skip
    allowed = KIND_METRICS[kind]
    metrics = r.strings("metrics")
    for i, m in enumerate(metrics):
        if m not in allowed:
            raise r.fail(f"metrics[{i}]", f"{m!r} is not computed for a {kind} task; the metrics are: {', '.join(allowed)}")  # fmt: skip
    primary = r.text("primary_metric")
    if primary not in metrics:
        raise r.fail("primary_metric", f"{primary!r} must be one of the task's metrics: {', '.join(metrics)}")  # fmt: skip
    decisions = r.strings("decision_metrics", required=False, nonempty=False)
    if decisions and kind != "binary":
        raise r.fail("decision_metrics", "only a binary task takes yes/no decisions")
    for i, m in enumerate(decisions):
        if m not in DECISION_METRICS:
            raise r.fail(f"decision_metrics[{i}]", f"{m!r} is not a decision metric; they are: {', '.join(DECISION_METRICS)}")  # fmt: skip
    threshold = r.number("threshold", 0.5)
    if not 0.0 < threshold < 1.0:
        raise r.fail("threshold", f"must be a probability strictly between 0 and 1, not {threshold:g}")  # fmt: skip
    used = r.strings("modalities", required=False) if r.has("modalities") else modalities
    for i, m in enumerate(used):
        if m not in modalities:
            raise r.fail(f"modalities[{i}]", f"{m!r} is not a modality of the suite: {', '.join(modalities)}")  # fmt: skip
    buckets = None
    if kind == "los":
        if not r.has("buckets"):
            raise r.fail("buckets", "is required for a length-of-stay task (edges_days, mean_hours)")  # fmt: skip
        buckets = _buckets(_Reader(r.data["buckets"], f"{r.where}.buckets"))
        if len(labels) != len(buckets.mean_hours):
            raise r.fail("labels", f"must name each of the {len(buckets.mean_hours)} buckets, not {len(labels)}")  # fmt: skip
    elif r.has("buckets"):
        raise r.fail("buckets", f"applies to a length-of-stay task only, not a {kind} task")
    return Task(
        slug=slug,
        title=r.text("title"),
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        key_columns=keys,
        label_names=labels,
        primary_metric=primary,
        metrics=metrics,
        decision_metrics=decisions,
        hourly=hourly,
        description=r.text("description", ""),
        prediction_time=when,
        threshold=threshold,
        modalities=tuple(used),
        label_groups=groups,
        buckets=buckets,
        suite=suite,
    )


def _fairness(r: _Reader) -> FairnessAttribute:
    r.check_keys({"slug", "title", "source", "edges", "labels", "groups", "other"})
    slug = r.text("slug", slug=True)
    edges: list[float] = []
    if r.has("edges"):
        edges = _edges(r, "edges", at_least=2)
        labels = r.strings("labels")
        if len(labels) != len(edges) - 1:
            raise r.fail("labels", f"must name each of the {len(edges) - 1} bins, not {len(labels)}")  # fmt: skip
    elif r.has("labels"):
        raise r.fail("labels", "names the bins of 'edges'; give edges too")
    else:
        labels = ()
    groups = r.strings("groups", required=False)
    if groups and edges:
        raise r.fail("groups", "an attribute is binned (edges) or grouped (groups), not both")
    return FairnessAttribute(
        slug=slug,
        title=r.text("title"),
        source=r.text("source", slug),
        edges=tuple(edges),
        labels=labels,
        groups=groups,
        other=r.text("other", "OTHER"),
    )


def parse_suite(data: Any, *, name: str = "suite") -> Suite:
    """The suite a specification document declares; :class:`SuiteError` naming the field
    when it is malformed."""
    r = _Reader(data, name)
    r.check_keys({
        "spec", "spec_version", "slug", "title", "description", "citation", "modalities",
        "tasks", "ablations", "fairness", "natural",
    })  # fmt: skip
    if r.text("spec") != SPEC_NAME:
        raise r.fail("spec", f"must be {SPEC_NAME!r}, not {r.data['spec']!r}")
    version = r.data.get("spec_version")
    if version != SPEC_VERSION:
        raise r.fail("spec_version", f"must be {SPEC_VERSION} (the version this code reads), not {json.dumps(version)}")  # fmt: skip
    slug = r.text("slug", slug=True)
    mods = tuple(
        _modality(_Reader(m, f"{name}.modalities[{i}]")) for i, m in enumerate(r.seq("modalities"))
    )
    _unique(r, "modalities", [m.slug for m in mods])
    if not any(m.required for m in mods):
        raise r.fail("modalities", "at least one modality must be required (present for every unit)")  # fmt: skip
    mod_slugs = tuple(m.slug for m in mods)
    tasks = tuple(
        _task(_Reader(t, f"{name}.tasks[{i}]"), slug, mod_slugs)
        for i, t in enumerate(r.seq("tasks"))
    )
    _unique(r, "tasks", [t.slug for t in tasks])
    ablations = []
    for i, a in enumerate(r.seq("ablations", required=False, nonempty=False)):
        ar = _Reader(a, f"{name}.ablations[{i}]")
        ar.check_keys({"slug", "title", "modalities"})
        used = ar.strings("modalities")
        for j, m in enumerate(used):
            if m not in mod_slugs:
                raise ar.fail(f"modalities[{j}]", f"{m!r} is not a modality of the suite: {', '.join(mod_slugs)}")  # fmt: skip
        missing = [m.slug for m in mods if m.required and m.slug not in used]
        if missing:
            raise ar.fail("modalities", f"must keep the required modality {missing[0]!r}")
        ablations.append(Ablation(ar.text("slug", slug=True), ar.text("title"), used))
    fairness = tuple(
        _fairness(_Reader(f, f"{name}.fairness[{i}]"))
        for i, f in enumerate(r.seq("fairness", required=False, nonempty=False))
    )
    _unique(r, "fairness", [f.slug for f in fairness])
    suite = Suite(
        slug=slug,
        title=r.text("title"),
        description=r.text("description", ""),
        citation=r.text("citation", ""),
        modalities=mods,
        tasks=tasks,
        ablations=tuple(ablations),
        fairness=fairness,
        natural=r.flag("natural", True),
        spec=json.loads(json.dumps(data)),
    )
    names = suite.scenarios
    if len(set(names)) != len(names):
        twice = next(s for i, s in enumerate(names) if s in names[:i])
        raise r.fail("ablations", f"the scenario {twice!r} is declared twice (by a modality and an ablation, or twice)")  # fmt: skip
    return suite


def load_suite(raw: bytes | str, *, name: str = "suite.json") -> Suite:
    """Parse a specification document's bytes."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SuiteError(ERR_NOT_JSON.format(name=name, detail=exc)) from None
    return parse_suite(data, name=name)


BUILTIN_SUITES: tuple[str, ...] = ("medmod", "yu2025", "medfuse")


@cache
def builtin_suite(slug: str) -> Suite:
    """A suite the project ships (``benchmark_data/suites/{slug}.json``)."""
    if slug not in BUILTIN_SUITES:
        raise KeyError(f"unknown suite {slug!r}; the suites shipped are: {', '.join(BUILTIN_SUITES)}")  # fmt: skip
    raw = resources.files("benchmark_data").joinpath("suites", f"{slug}.json").read_bytes()
    return load_suite(raw, name=f"{slug}.json")


__all__ = [
    "BUILTIN_SUITES",
    "KIND_METRICS",
    "METRICS",
    "Ablation",
    "Buckets",
    "FairnessAttribute",
    "MetricSpec",
    "Modality",
    "PredictionTime",
    "Suite",
    "SuiteError",
    "Task",
    "builtin_suite",
    "load_suite",
    "parse_suite",
    "slugify",
]
