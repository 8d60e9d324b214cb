"""Comparing two to five entries of one task side by side.

Each entry is read with its current run (the run its board row shows: the latest successful
one under the current scorer version, on the task's benchmark, with the configured number
of replicates), so every entry compared was scored on the same bootstrap replicates. From
the stored reports come, per entry, every metric with its 95% CI, the primary metric per
scenario and per subgroup, and the curves; and, per entry other than the reference, the
paired difference of the primary metric to the reference with its CI and p-value, per
scenario (:func:`scoring.compare.compare_to_reference`, which is the ranking's
``paired_difference``). Per subgroup the entries' own figures stand side by side with no
paired difference: a group holds few units, and a difference whose rounding step moves with
the group's positives could tell the label of a unit where two entries differ. Nothing is rescored. Beside the bootstrap p-value, per
scenario, the p-values of a paired permutation test and, for an AUROC with one unit per
patient, of DeLong's test, computed from the stored prediction files and the truth and
cached (``selectors.significance``).

What leaves here is bounded like the rest of the site (``scoring.disclosure``): each entry's
figures as its participant report shows them, and each difference rounded by its CI and no
finer than twice the most one unit's label can move the metric (a difference of two
figures, as the robustness drops are); a difference one unit could move by more than 0.1 is
suppressed. A difference that rounds to zero shows no CI and no p-value: two entries that
differ in a few units' predictions differ by less than one rounding step, and their CI and
p-values would otherwise tell those units' labels (each p-value rounded as the board's, to
three decimals, only beside a difference of at least one step). No per-replicate value is
ever part of the result.

Who may compare what: published entries, and the viewer's own entries (staff: any), as on
the entry pages; anything else answers the 404 of an entry that does not exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.http import Http404

from benchmark_data.tasks import METRICS, NATURAL_SCENARIO
from leaderboard.board.errors import ServiceError
from leaderboard.board.models import PUBLIC_ID_PATTERN, Evaluation, Submission, Task
from leaderboard.board.selectors.significance import N_PERMUTATIONS, comparison_tests
from leaderboard.board.selectors.submissions import (
    NO_SUCH_ENTRY,
    can_view_submission,
    current_scorer_version,
)
from scoring.compare import CompareInput, compare_to_reference
from scoring.disclosure import participant_report, round_figure, scenario_counts, unit_effect
from scoring.plots import overlay_figure
from scoring.report_reader import ReportFormatError, read_report
from scoring.report_types import ScoreReport

MIN_ENTRIES = 2
MAX_ENTRIES = 5
LEVEL = 0.95  # CIs of the differences; "significant" is p < 1 - LEVEL
P_DECIMALS = 3  # p-values as the board shows them (with 1,000 replicates, steps of 0.002)
DECISION_FORM = "decision"

ERR_COUNT = (
    "compare needs {lo} to {hi} entries of one task; {n} {were} given. Tick {what} on the "
    "board, or list the entries' ids in ?entries= separated by commas."
)
ERR_DUPLICATE = "entry {entry} is listed twice in ?entries=; list each entry once."
ERR_REFERENCE = (
    "the reference {reference} is not one of the entries compared ({entries}); give one of "
    "them in ?reference=, or leave it out to compare with the first."
)
ERR_OTHER_TASK = (
    "entry {entry} is an entry of {other}, not of {task}: only entries of one task, on one "
    "benchmark version, are scored on the same bootstrap replicates. Compare it on its own "
    "task's board."
)
ERR_NOT_SCORED = (
    "entry {entry} has no result under the current scorer ({version}) on {benchmark} with "
    "{replicates} replicates yet (it is being scored, or awaits re-scoring), so it shares no "
    "replicates with the others. Compare it once its current result is in."
)
ERR_UNREADABLE = (
    "entry {entry}: its current score report cannot be read ({reason}); compare the other "
    "entries without it, or ask the organizers to re-score it."
)
ERR_MIXED_FORMS = (
    "entries {decision} answer yes/no (decision-only) and are ranked apart from probability "
    "entries, on another metric: compare decision-only entries with each other only."
)
NOTE_OTHER_METRICS = (
    "Paired differences are computed for the primary metric, whose per-replicate values the "
    "scorer keeps per scenario and per group; the other metrics are shown with each entry's "
    "own 95% CI."
)
NOTE_GROUPS_WITHHELD = (
    "Per group, each entry's own figure and 95% CI are shown side by side, without a paired "
    "difference: a group holds few units, and the difference of two entries that differ in "
    "a few of its units could tell those units' labels."
)
SUPPRESSED_DIFFERENCE = "suppressed: one unit's label could move it by more than 0.1"
WITHHELD_DIFFERENCE = (
    "under one rounding step: no CI or p-value is shown for it (they could tell the labels "
    "of the few units where the entries differ)"
)
TESTS = {
    "bootstrap": "paired bootstrap on the shared replicates: p, diff_ci, significant",
    "permutation": (
        f"paired permutation test, {N_PERMUTATIONS} random swaps of a patient's predictions "
        "between the two entries (exact when there are fewer patterns): p_permutation"
    ),
    "delong": "DeLong's test of two AUROCs, one unit per patient only: p_delong",
}


class ComparisonRefused(ServiceError):
    code = "invalid_comparison"


def compare_query_parse(*, entries: list[str], reference: str | None) -> tuple[list[str], str]:
    """The entry ids of a comparison (``?entries=`` values, each a comma-separated list,
    order kept) and its reference (the first unless named); ``ComparisonRefused`` (400)
    saying what to change for fewer than 2 or more than 5 entries, a duplicate or a
    reference that is not compared."""
    ids = [part.strip() for raw in entries for part in raw.split(",") if part.strip()]
    n = len(ids)
    if not MIN_ENTRIES <= n <= MAX_ENTRIES:
        what = "at least two rows" if n < MIN_ENTRIES else f"at most {MAX_ENTRIES} rows"
        raise ComparisonRefused(
            ERR_COUNT.format(
                lo=MIN_ENTRIES, hi=MAX_ENTRIES, n=n, were="was" if n == 1 else "were", what=what
            ),
            field="entries",
        )
    seen: set[str] = set()
    for entry in ids:
        if entry in seen:
            raise ComparisonRefused(ERR_DUPLICATE.format(entry=entry[:40]), field="entries")
        seen.add(entry)
    ref = (reference or "").strip() or ids[0]
    if ref not in seen:
        raise ComparisonRefused(
            ERR_REFERENCE.format(reference=ref[:40], entries=", ".join(ids)), field="reference"
        )
    return ids, ref


@dataclass
class ComparedEntry:
    """One entry as the comparison shows it: bounded figures only."""

    entry_id: str
    method_name: str
    team: str
    is_reference: bool  # a reference baseline of the platform
    published: bool
    modalities: str
    evaluation_id: int
    metrics: dict[str, Any]
    suppressed_metrics: list[str]
    scenarios: dict[str, Any]
    groups: dict[str, dict[str, Any]]
    curves: dict[str, Any] = field(repr=False, default_factory=dict)
    # Against the comparison's reference (None for the reference itself).
    difference: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.method_name} ({self.team})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "method_name": self.method_name,
            "team": self.team,
            "is_reference": self.is_reference,
            "published": self.published,
            "modalities": self.modalities,
            "evaluation_id": self.evaluation_id,
            "metrics": self.metrics,
            "suppressed_metrics": self.suppressed_metrics,
            "scenarios": self.scenarios,
            "groups": self.groups,
            "difference": self.difference,
        }


@dataclass
class Comparison:
    task: Task
    scorer_version: str
    primary_metric: str
    greater_is_better: bool
    main_scenario: str
    reference: str
    entries: list[ComparedEntry]
    metrics: list[str]
    scenarios: list[str]
    groups: list[tuple[str, list[str]]]
    notes: list[str]
    figures: dict[str, Any]

    @property
    def reference_entry(self) -> ComparedEntry:
        return next(e for e in self.entries if e.entry_id == self.reference)

    def as_dict(self) -> dict[str, Any]:
        bench = self.task.benchmark
        return {
            "task": self.task.slug,
            "suite": self.task.suite_slug,
            "benchmark": {
                "name": bench.name,
                "version": bench.version,
                "hash": bench.manifest_hash,
            },
            "scorer_version": self.scorer_version,
            "replicates": settings.SCORING_REPLICATES,
            "primary_metric": self.primary_metric,
            "greater_is_better": self.greater_is_better,
            "main_scenario": self.main_scenario,
            "reference": self.reference,
            "level": LEVEL,
            "significance": round(1 - LEVEL, 10),
            "tests": TESTS,
            "entries": [e.as_dict() for e in self.entries],
            "notes": self.notes,
        }


def _entries_for_viewer(*, ids: list[str], viewer: Any) -> list[Submission]:
    """The submissions named, in order; the 404 of a missing entry for any the viewer may
    not see (or whose id cannot be one)."""
    pattern = re.compile(f"^{PUBLIC_ID_PATTERN}$")
    found = {
        s.public_id: s
        for s in Submission.objects.select_related(
            "owner", "team", "task__benchmark", "track"
        ).filter(public_id__in=[i for i in ids if pattern.match(i)])
    }
    out = []
    for public_id in ids:
        sub = found.get(public_id)
        if sub is None or not can_view_submission(submission=sub, viewer=viewer):
            raise Http404(f"{NO_SUCH_ENTRY}: {public_id[:40]}")
        out.append(sub)
    return out


def _task_name(task: Task) -> str:
    bench = task.benchmark
    return f"{task.title} ({bench.name} {bench.version})"


def _current_runs(*, task: Task, subs: list[Submission]) -> dict[int, Evaluation]:
    """Each entry's current run (as on the board), with its report: two queries."""
    version = current_scorer_version()
    current = Evaluation.objects.filter(
        submission=OuterRef("pk"),
        status=Evaluation.Status.SUCCEEDED,
        scorer_version=version,
        benchmark_hash=task.benchmark.manifest_hash,
        replicates=settings.SCORING_REPLICATES,
    ).order_by("-created_at", "-id")
    run_ids = dict(
        Submission.objects.filter(pk__in=[s.pk for s in subs])
        .annotate(run=Subquery(current.values("id")[:1]))
        .values_list("pk", "run")
    )
    missing = [s for s in subs if run_ids.get(s.pk) is None]
    if missing:
        raise ComparisonRefused(
            ERR_NOT_SCORED.format(
                entry=missing[0].public_id,
                version=version,
                benchmark=f"{task.benchmark.name} {task.benchmark.version}",
                replicates=settings.SCORING_REPLICATES,
            ),
            field="entries",
            code="not_scored",
        )
    runs = Evaluation.objects.filter(pk__in=list(run_ids.values())).only(
        "id", "submission_id", "report", "form"
    )
    return {ev.submission_id: ev for ev in runs}


def _p(value: Any) -> float | None:
    return None if value is None else round(float(value), P_DECIMALS)


def _bounded(
    diff: dict[str, Any], effect: float | None, tests: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A paired difference as it may be published: rounded by its CI and no finer than
    twice ``effect`` (the most one unit moves either figure); suppressed beyond that. Its
    CI and p-values only when it rounds to a non-zero value. ``tests``: the scenario's
    permutation and DeLong results (``p_permutation``, ``p_delong`` then present)."""
    value, ci = round_figure(
        diff["diff"], diff["diff_ci"], effect=None if effect is None else 2.0 * effect
    )
    if value is None and diff["diff"] is not None:
        return {"suppressed": SUPPRESSED_DIFFERENCE}
    extra: dict[str, float | None] = (
        {} if tests is None else {"p_permutation": None, "p_delong": None}
    )
    if value == 0:
        # Whether it is 0.0 says nothing a unit's label decides (one unit moves it by at
        # most half a step); its CI and p-values would.
        return {
            "diff": 0.0,
            "diff_ci": [None, None],
            "p": None,
            **extra,
            "significant": None,
            "replicates_used": None,
            "withheld": WITHHELD_DIFFERENCE,
        }
    if tests is not None:
        extra["p_permutation"] = _p((tests.get("permutation") or {}).get("p"))
        extra["p_delong"] = _p((tests.get("delong") or {}).get("p"))
    return {
        "diff": value,
        "diff_ci": ci,
        "p": _p(diff["p"]),
        **extra,
        "significant": bool(diff["significant"]),
        "replicates_used": diff["replicates_used"],
    }


def _series(report: ScoreReport, primary: str) -> tuple[dict, dict]:
    """Point values and replicates of the primary metric per scenario: keys ("scenario",
    name). Not per group: those differences are withheld (NOTE_GROUPS_WITHHELD)."""
    values: dict[tuple, Any] = {}
    reps: dict[tuple, Any] = {}
    for name, sec in report["scenarios"].items():
        if sec["replicates"]:
            figure = sec["metrics"].get(primary)
            values[("scenario", name)] = figure["value"] if figure else None
            reps[("scenario", name)] = sec["replicates"]
    return values, reps


def _report(sub: Submission, run: Evaluation) -> ScoreReport:
    """The entry's current report, read through the one reader (any stored version)."""
    try:
        return read_report(run.report)
    except ReportFormatError as exc:
        raise ComparisonRefused(
            ERR_UNREADABLE.format(entry=sub.public_id, reason=exc.message),
            field="entries",
            code="report_unreadable",
        ) from None


def _ordered(names: list[str], order: tuple[str, ...]) -> list[str]:
    return [s for s in dict.fromkeys(order) if s in names] + sorted(set(names) - set(order))


def entries_compare(*, task: Task, entry_ids: list[str], reference: str, viewer: Any) -> Comparison:
    """The comparison of ``entry_ids`` (2 to 5, checked by :func:`compare_query_parse`)
    with ``reference`` among them, on ``task``.

    Raises ``Http404`` for an entry the viewer may not see, ``ComparisonRefused`` (400) for
    an entry of another task or benchmark version, one without a current result, or a mix
    of decision-only and probability entries.
    """
    subs = _entries_for_viewer(ids=entry_ids, viewer=viewer)
    for sub in subs:
        if sub.task_id != task.pk:
            raise ComparisonRefused(
                ERR_OTHER_TASK.format(
                    entry=sub.public_id, other=_task_name(sub.task), task=_task_name(task)
                ),
                field="entries",
            )
    runs = _current_runs(task=task, subs=subs)
    decision = [s.public_id for s in subs if runs[s.pk].form == DECISION_FORM]
    if decision and len(decision) < len(subs):
        raise ComparisonRefused(
            ERR_MIXED_FORMS.format(decision=", ".join(decision)), field="entries"
        )
    reports = {s.public_id: _report(s, runs[s.pk]) for s in subs}
    ref_report = reports[reference]
    primary = ref_report["primary_metric"]
    main = ref_report["main_scenario"]
    suite = task.benchmark.suite_declaration

    inputs = []
    for sub in subs:
        values, reps = _series(reports[sub.public_id], primary)
        inputs.append(CompareInput(sub.public_id, values=values, replicates=reps))
    differences = compare_to_reference(inputs, reference=reference, level=LEVEL)
    tests, test_notes = comparison_tests(
        task=task, subs=subs, reference=reference, metric=primary, main=main
    )

    # Bounds of the differences: from the reference's counts (the units are every entry's).
    ref_scenarios = ref_report["scenarios"]

    entries: list[ComparedEntry] = []
    metric_names: list[str] = [primary]
    scenario_names: list[str] = []
    group_names: dict[str, list[str]] = {}
    views = {pid: participant_report(report) for pid, report in reports.items()}
    for sub in subs:
        view = views[sub.public_id]
        # The reference's main scenario: on one benchmark, every entry's.
        main_sec = view["scenarios"].get(main) or {"metrics": {}}
        for m in main_sec["metrics"]:
            if m not in metric_names:
                metric_names.append(m)
        scenarios = {}
        for s, sec in view["scenarios"].items():
            fig = sec["metrics"].get(primary)
            if fig is not None:
                scenarios[s] = {**fig, "n_units": sec["n_units"]}
                if s not in scenario_names:
                    scenario_names.append(s)
        groups: dict[str, dict[str, Any]] = {}
        for attr, entry in view["fairness"]["attributes"].items():
            shown = {
                g: {"value": ge["value"], "ci": ge["ci"], "n_units": ge["n_units"]}
                for g, ge in entry["groups"].items()
            }
            groups[attr] = shown
            names = group_names.setdefault(attr, [])
            names += [g for g in shown if g not in names]
        difference = None
        if sub.public_id != reference:
            found = differences[sub.public_id]
            entry_tests = tests.get(sub.public_id, {})
            by_scenario = {
                s: _bounded(
                    found[("scenario", s)],
                    unit_effect(primary, scenario_counts(ref_scenarios[s])),
                    entry_tests.get(s, {}),
                )
                for s in scenarios
                if ("scenario", s) in found and s in ref_scenarios
            }
            # Per-group paired differences are withheld (NOTE_GROUPS_WITHHELD): each
            # entry's own group figures, as its entry page shows them, stand side by side.
            by_group: dict[str, dict[str, Any]] = {}
            difference = {
                "primary": by_scenario.get(main),
                "scenarios": by_scenario,
                "groups": by_group,
            }
        entries.append(
            ComparedEntry(
                entry_id=sub.public_id,
                method_name=sub.method_name,
                team=sub.team_label,
                is_reference=sub.is_reference,
                published=sub.status == Submission.Status.PUBLISHED,
                modalities=sub.modalities_label,
                evaluation_id=runs[sub.pk].pk,
                metrics=main_sec["metrics"],
                suppressed_metrics=list(
                    (main_sec.get("suppressed_metrics") or {}).get("metrics") or []
                ),
                scenarios=scenarios,
                groups=groups,
                curves=view["curves"],
                difference=difference,
            )
        )
    notes = [NOTE_OTHER_METRICS, *test_notes]
    if group_names:
        notes.append(NOTE_GROUPS_WITHHELD)
    spec = METRICS.get(primary)
    return Comparison(
        task=task,
        scorer_version=current_scorer_version(),
        primary_metric=primary,
        greater_is_better=spec.greater_is_better if spec else True,
        main_scenario=main,
        reference=reference,
        entries=entries,
        metrics=metric_names,
        scenarios=_ordered(scenario_names, (*suite.scenarios, NATURAL_SCENARIO)),
        groups=[(attr, names) for attr, names in group_names.items()],
        notes=notes,
        figures=_figures(entries),
    )


CURVE_KINDS = ("roc", "pr", "reliability")


def _figures(entries: list[ComparedEntry]) -> dict[str, Any]:
    """The entries' curves overlaid, one figure per kind some entry has (from the bounded,
    coarse curves of their participant reports)."""
    out = {}
    for kind in CURVE_KINDS:
        curves = [(e.label, e.curves[kind]) for e in entries if e.curves.get(kind)]
        if curves:
            out[f"compare-{kind}"] = overlay_figure(curves, kind=kind)
    return out
