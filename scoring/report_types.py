"""The score report's types: what :func:`scoring.report.build_report` writes and what every
reader of a stored report (:func:`scoring.report_reader.read_report`) gets back.

A report is plain JSON, so its types are ``TypedDict``s: the stored value is the typed
value, with no conversion on the way in or out of a database column. A key marked
``NotRequired`` is absent when the entry or the suite has no such section (a decision-only
entry has no curves, a suite without ablations no ablation table); every other key is
always there, in reports of the current version and in older ones once read.

The version is the report's ``schema`` key (:data:`REPORT_SCHEMA`): one integer, raised
whenever a section is added or changes shape. Version 1 is the first report; version 2 adds
fairness intersections, per-group error rates and calibration, the has-image attribute and
``missing_images``.
"""

# No ``from __future__ import annotations`` here: TypedDict must see ``NotRequired`` when
# the class is made, or every key counts as required.
from typing import Any, NotRequired, TypedDict

# The version written by this scorer (the report's ``schema`` key). 2: fairness gained
# intersections, per-group error rates and calibration, the has-image attribute and
# missing_images; reports of version 1 lack them and are read as version 2 without them.
REPORT_SCHEMA = 2


class Estimate(TypedDict):
    """A figure and its 95% CI (None where undefined: one class in every replicate)."""

    value: float | None
    ci: list[float | None]


class Difference(TypedDict):
    """A paired difference on the same units and replicates, with its p-value."""

    value: float | None
    ci: list[float | None]
    p: float | None


# Per-label results of a multi-label task: a metric with a CI, or a bare figure.
PerLabel = dict[str, Estimate | float | None]


class ScenarioSection(TypedDict):
    """One scenario's units and every metric on them."""

    n_units: int
    n_patients: int
    metrics: dict[str, Estimate]
    degenerate_replicates: dict[str, int]
    # The primary metric's value on each bootstrap replicate (never published).
    replicates: list[float | None]
    prevalence: NotRequired[float | None]  # binary tasks
    n_predicted_positive: NotRequired[int]  # binary tasks, reports since the disclosure budget
    per_label: NotRequired[dict[str, PerLabel]]  # multi-label tasks


class BenchmarkRef(TypedDict):
    name: str
    version: str
    hash: str


class PredictionsInfo(TypedDict):
    """The scored file: its hash, size, rows, form and the scenarios it carried."""

    sha256: str
    size: int
    rows: int
    form: str
    scenarios: list[str]
    warnings: NotRequired[list[str]]


class ReliabilityBin(TypedDict):
    lower: float | None
    upper: float | None
    count: int
    mean_predicted: NotRequired[float | None]
    observed_rate: NotRequired[float | None]
    observed_ci: NotRequired[list[float | None]]


class Reliability(TypedDict):
    """A reliability diagram: bins with enough units, and the small ones by count only."""

    n_bins: int
    n_units: int
    min_bin_units: int
    bins: list[ReliabilityBin]
    small_bins: list[ReliabilityBin]


class RocBand(TypedDict):
    """The ROC curve on a false-positive-rate grid, its bootstrap median and 95% band."""

    fpr: list[float | None]
    tpr: list[float | None]
    tpr_median: NotRequired[list[float | None]]  # reports since the disclosure budget
    tpr_low: list[float | None]
    tpr_high: list[float | None]
    interpolation: str
    band: str
    n_replicates: int
    degenerate_replicates: int


class PrBand(TypedDict):
    """The precision-recall curve on a recall grid, its bootstrap median and 95% band."""

    recall: list[float | None]
    precision: list[float | None]
    precision_median: NotRequired[list[float | None]]
    precision_low: list[float | None]
    precision_high: list[float | None]
    interpolation: str
    band: str
    n_replicates: int
    degenerate_replicates: int


class Curves(TypedDict):
    """Aggregate curves of probability entries (none for decision or length-of-stay)."""

    roc: NotRequired[RocBand]
    pr: NotRequired[PrBand]
    reliability: NotRequired[Reliability]  # binary tasks


class LabelCounts(TypedDict):
    positives: int
    negatives: int


class FairnessGroup(TypedDict):
    """One shown group: the primary metric with its CI, and (binary tasks, version 2) its
    error rates and calibration at the threshold."""

    value: float | None
    ci: list[float | None]
    n_units: int
    n_patients: int
    replicates: NotRequired[list[float | None]]  # never published
    tpr: NotRequired[Estimate]
    fpr: NotRequired[Estimate]
    selection_rate: NotRequired[Estimate]
    ece: NotRequired[Estimate]
    reliability: NotRequired[Reliability]
    label_counts: NotRequired[LabelCounts]  # never published


class FairnessEntry(TypedDict):
    """An attribute (or an intersection of two) and its groups; the gap and worst group
    with at least two shown groups; fairlearn's ratios on binary tasks."""

    groups: dict[str, FairnessGroup]
    suppressed_groups: int
    worst_group: NotRequired[str]
    gap: NotRequired[Estimate]
    demographic_parity_ratio: NotRequired[Estimate]
    equalized_odds_ratio: NotRequired[Estimate]
    scenario: NotRequired[str]  # when not the report's main scenario (has-image groups)
    attributes: NotRequired[list[str]]  # intersections: the two attributes crossed


class MissingImageGroup(TypedDict):
    attribute: str
    group: str
    n_units: int
    gap: Estimate
    missing_share: float | None


class MissingImages(TypedDict):
    """The correlation of the groups' gaps with their share of units without an image."""

    scenario: str
    method: str
    overall: Estimate
    n_groups: int
    groups: list[MissingImageGroup]
    correlation: Estimate | None
    note: NotRequired[str]
    degenerate_replicates: NotRequired[int]


class Fairness(TypedDict):
    metric: str
    threshold: float | None
    min_group_size: dict[str, int | None]
    scenario: str
    attributes: dict[str, FairnessEntry]
    intersections: dict[str, FairnessEntry]
    missing_images: NotRequired[MissingImages]  # some units lack the optional modality


class CurvePoint(TypedDict):
    scenario: str
    fraction_withheld: float
    value: float | None
    ci: list[float | None]


class RobustnessCurve(TypedDict):
    """The primary metric as one modality is withheld from more and more paired units."""

    metric: str
    scenarios_scored: list[str]
    scenarios_missing: list[str]
    drops: dict[str, Difference]
    curve: list[CurvePoint]
    audc: Estimate | None
    modality: str | None  # None: a suite that withholds none, or a version-1 report
    modality_title: str | None
    note: NotRequired[str]
    audc_note: NotRequired[str]


class AblationRow(TypedDict):
    scenario: str
    title: str
    modalities: list[str]
    value: float | None
    ci: list[float | None]
    difference: Difference | None


class Robustness(RobustnessCurve):
    """The first withheld modality's curve; every curve when there are several; the
    ablation table of a suite that declares one."""

    modalities: NotRequired[dict[str, RobustnessCurve]]
    ablations: NotRequired[list[AblationRow]]


class SummaryRobustness(TypedDict):
    audc: Estimate | None
    drop_cxr_missing_100: Difference | None
    scenarios_scored: list[str]
    drops: dict[str, Difference]  # each withheld modality's drop at its last level
    ablations: dict[str, Estimate]


class GapSummary(TypedDict):
    worst_group: str | None
    gap: Estimate | None


class SummaryFairness(TypedDict):
    max_gap: float | None
    attributes: dict[str, GapSummary]


class SummaryCounts(TypedDict):
    """What bounds the row's published precision (:func:`scoring.disclosure.unit_effect`)."""

    n: int | None
    positives: int | None
    predicted_positive: int | None


class Summary(TypedDict):
    """The few numbers a leaderboard row shows."""

    primary_metric: str
    value: float | None
    ci: list[float | None]
    scenario: str
    metrics: dict[str, Estimate]
    natural: Estimate | None
    robustness: SummaryRobustness
    fairness: SummaryFairness
    counts: SummaryCounts


class ScoreReport(TypedDict):
    """A whole score report, as stored."""

    schema: int
    task: str
    scorer_version: str
    seed: int
    replicates: int
    resampling: str
    ci: str
    benchmark: BenchmarkRef
    predictions: PredictionsInfo
    threshold: float | None
    primary_metric: str
    greater_is_better: bool
    main_scenario: str
    scenarios: dict[str, ScenarioSection]
    fairness: Fairness
    robustness: Robustness
    curves: Curves
    summary: Summary
    # Plotly figures by name (plotly's own JSON; rebuilt from the figures, never parsed).
    plots: dict[str, Any]
    decision_policy: NotRequired[str]  # decision-only entries
    # Set by the reader on a report stored in an older version and read as this one.
    upgraded_from: NotRequired[int]


__all__ = [
    "REPORT_SCHEMA",
    "AblationRow",
    "BenchmarkRef",
    "CurvePoint",
    "Curves",
    "Difference",
    "Estimate",
    "Fairness",
    "FairnessEntry",
    "FairnessGroup",
    "GapSummary",
    "MissingImageGroup",
    "MissingImages",
    "PerLabel",
    "PrBand",
    "PredictionsInfo",
    "Reliability",
    "ReliabilityBin",
    "RocBand",
    "Robustness",
    "RobustnessCurve",
    "ScenarioSection",
    "ScoreReport",
    "Summary",
    "SummaryCounts",
    "SummaryFairness",
    "SummaryRobustness",
]
