"""The leaderboard of a task: published entries, their current scores, ranks and tiers.

An entry is on the board with its latest successful run under the **current scorer
version** on the task's benchmark, with the configured number of replicates, so that every
row was scored on the same bootstrap replicates and can be compared pairwise
(``scoring.rank_entries``). Published entries without such a run are counted as awaiting
re-scoring; their older runs stay on their entry pages.

Ranking is a pure function of the rows (grand-challenge's habit): :func:`rank_rows`.

The ranked board is cached (``board_cache``: Django's cache, shared by the web processes
when it is Redis). Its key is a hash of everything the ranked rows depend on, read with one
small query (:func:`board_state`): each published entry's id, current run, display fields
and publication time, with the scorer version, the benchmark hash, the replicate count and
the fingerprint of the rendering code. A newly published, unpublished or hidden entry, a
rescore or an edited entry changes the key, so the next request builds the new board
(:func:`build_ranked`); the per-replicate values are only read then. Filters and sorting
are applied to the cached rows (:func:`row_matches`, :func:`sort_rows`).

Reads only: the cache is ``board_cache``'s, the renderings ``renderings``'.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import OuterRef, Subquery

import scoring.plots as plots_module
from benchmark_data.suite import Task as TaskSpec
from benchmark_data.tasks import METRICS
from leaderboard.board.models import (
    VERIFIED,
    Evaluation,
    Submission,
    Task,
    modalities_label,
    verification_label,
)
from leaderboard.board.selectors.submissions import current_scorer_version
from scoring.disclosure import MIN_DECIMALS, disclose_figures, disclose_summary

S = Submission.Status
E = Evaluation.Status

MODALITY_FILTERS = {
    "": "All entries",
    "ehr+cxr": "EHR + CXR",
    "ehr": "EHR only",
    "cxr": "CXR only",
}
DECISION_FORM = "decision"


@dataclass
class BoardRow:
    submission_id: int  # inside the platform only (ranking); ``entry_id`` is the public id
    entry_id: str
    method_name: str
    team: str
    is_reference: bool
    track: str
    track_title: str
    # The suite's modality slugs the entry uses, as its submission holds them.
    modalities: list[str]
    paper_url: str
    code_url: str
    evaluation_id: int
    evaluated_at: Any
    scorer_version: str
    form: str
    value: float | None
    ci: list[float | None]
    metrics: dict[str, dict[str, Any]]
    robustness: dict[str, Any]
    fairness: dict[str, Any]
    replicates: list[float | None] = field(repr=False, default_factory=list)
    streamed: bool = False  # the platform streamed it through the gateway (reference)
    team_slug: str = ""  # the address of the entry's team's page, when it has a team
    # The primary figure as published (scoring.disclosure); value/ci above stay at full
    # precision for the ranking, the paired tests and the tiers.
    shown_value: float | None = None
    shown_ci: list[float | None] = field(default_factory=lambda: [None, None])
    position: int | None = None
    rank: int | None = None
    tier: int | None = None
    rank_interval: tuple[int, int] | None = None
    vs_leader: dict[str, Any] | None = None
    vs_baseline: dict[str, Any] | None = None

    @property
    def verification(self) -> str:
        """``verified``: the platform ran the model in every scenario (container track);
        ``self-reported scenarios``: the scenario rows came with a prediction file."""
        return verification_label(self.track, self.streamed)

    @property
    def is_verified(self) -> bool:
        return self.verification == VERIFIED

    @property
    def causal(self) -> bool:
        """True when the platform ran the entry causally through the gateway, which streamed
        its inputs unit by unit up to each prediction time: a container entry, or a
        reference baseline the platform streamed. A prediction file's
        author held the inputs; nothing vouches for what the predictions were made from."""
        return self.verification == VERIFIED

    @property
    def modalities_label(self) -> str:
        return modalities_label(self.modalities)

    def metric_value(self, name: str) -> float | None:
        entry = self.metrics.get(name) or {}
        return entry.get("value")

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "tier": self.tier,
            "position": self.position,
            "rank_interval": list(self.rank_interval) if self.rank_interval else None,
            "entry_id": self.entry_id,
            "method_name": self.method_name,
            "team": self.team,
            "team_slug": self.team_slug or None,
            "is_reference": self.is_reference,
            "track": self.track,
            "verification": self.verification,
            "causal": self.causal,
            "modalities": self.modalities,
            "paper_url": self.paper_url,
            "code_url": self.code_url,
            "form": self.form,
            "primary": {"value": self.shown_value, "ci": self.shown_ci},
            "metrics": self.metrics,
            "robustness": self.robustness,
            "fairness": self.fairness,
            "vs_leader": disclose_figures(self.vs_leader, max_decimals=MIN_DECIMALS),
            "vs_baseline": disclose_figures(self.vs_baseline, max_decimals=MIN_DECIMALS),
            "evaluation_id": self.evaluation_id,
            "evaluated_at": self.evaluated_at.isoformat() if self.evaluated_at else None,
            "scorer_version": self.scorer_version,
        }


@dataclass
class Board:
    task: Task
    scorer_version: str
    primary_metric: str
    metrics: list[str]
    rows: list[BoardRow]
    decision_rows: list[BoardRow]
    awaiting_rescore: int
    sort: str
    order: str
    track: str
    modality: str
    key: str = ""
    fresh: bool = True  # False: the previous board, served while this one is being built

    @property
    def all_rows(self) -> list[BoardRow]:
        return self.rows + self.decision_rows


def _num(x: Any) -> float:
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _replicates(values: Any) -> np.ndarray:
    """The per-replicate values as floats in one call (None is NaN); element by element
    only when the list holds something else."""
    try:
        return np.asarray(values if values is not None else [], dtype=float)
    except (TypeError, ValueError):
        return np.asarray([_num(v) for v in values], dtype=float)


def _rank(rows: list[BoardRow], **direction: Any) -> list[BoardRow]:
    """Rank rows in place with the scoring engine's paired-bootstrap ranking; best first.
    ``direction`` is ``task=`` or ``greater_is_better=``, as for ``rank_entries``."""
    if not rows:
        return rows
    from scoring.ranking import RankInput, rank_entries

    ranked = rank_entries(
        [
            RankInput(
                entry_id=r.submission_id,
                value=_num(r.value),
                replicates=_replicates(r.replicates),
                is_baseline=r.is_reference,
            )
            for r in rows
        ],
        **direction,
    )
    # Keyed as ``RankedEntry.entry_id`` is typed: the ranking hands back the ids it was given.
    by_id: dict[Hashable, BoardRow] = {r.submission_id: r for r in rows}
    out = []
    for item in ranked:
        row = by_id[item.entry_id]
        row.position, row.rank, row.tier = item.position, item.rank, item.tier
        low, high = item.rank_interval
        row.rank_interval = (low, high)
        row.vs_leader = _public_comparison(item.vs_leader, by_id)
        row.vs_baseline = _public_comparison(item.vs_baseline, by_id)
        out.append(row)
    return out


def _public_comparison(
    comparison: dict[str, Any] | None, by_id: Mapping[Hashable, BoardRow]
) -> dict[str, Any] | None:
    """A paired comparison naming the other entry by its public id."""
    if not comparison or comparison.get("entry_id") not in by_id:
        return comparison
    return {**comparison, "entry_id": by_id[comparison["entry_id"]].entry_id}


def rank_rows(rows: list[BoardRow], *, task: TaskSpec) -> list[BoardRow]:
    """Rank probability entries by the task's primary metric (its suite's declaration)."""
    return _rank(rows, task=task)


def _decision_rank(rows: list[BoardRow], *, metric: str) -> list[BoardRow]:
    """Decision-only entries are ranked apart, by their own primary metric."""
    greater = METRICS[metric].greater_is_better if metric in METRICS else True
    return _rank(rows, greater_is_better=greater)


# The fields of a published entry that its board row shows or depends on, read by the
# board's one key query (no per-replicate values, no summaries).
STATE_FIELDS = (
    "pk",
    "public_id",
    "current_evaluation_id",
    "method_name",
    "team_name",
    "team__name",
    "team__slug",
    "owner__username",
    "is_reference",
    "streamed",
    "track__slug",
    "track__title",
    "modalities",
    "paper_url",
    "code_url",
    "visibility",
    "published_at",
)


@dataclass
class BoardState:
    """What the ranked board of a task depends on, and its cache key."""

    task: Task
    scorer_version: str
    entries: list[dict[str, Any]]
    key: str


def board_state(*, task: Task) -> BoardState:
    """The published entries of ``task`` with their current runs (one query) and the
    board's key: a hash of them with the scorer version, benchmark hash, replicate count
    and the rendering code's fingerprint (:func:`rendering_fingerprint`)."""
    version = current_scorer_version()
    current = Evaluation.objects.filter(
        submission=OuterRef("pk"),
        status=E.SUCCEEDED,
        scorer_version=version,
        benchmark_hash=task.benchmark.manifest_hash,
        replicates=settings.SCORING_REPLICATES,
    ).order_by("-created_at", "-id")
    entries = list(
        Submission.objects.filter(task=task, status=S.PUBLISHED)
        .filter(train_missing_rate__isnull=True)  # sweep variants: on their own curve, unranked
        .annotate(current_evaluation_id=Subquery(current.values("id")[:1]))
        .order_by("pk")
        .values(*STATE_FIELDS)
    )
    digest = hashlib.sha256()
    digest.update(
        repr(
            (
                task.pk,
                task.slug,
                task.primary_metric,
                task.benchmark.manifest_hash,
                version,
                settings.SCORING_REPLICATES,
                rendering_fingerprint(),
            )
        ).encode()
    )
    for e in entries:
        digest.update(repr(tuple(e[f] for f in STATE_FIELDS)).encode())
    key = f"board:v3:{task.pk}:{digest.hexdigest()[:32]}"
    return BoardState(task=task, scorer_version=version, entries=entries, key=key)


# The code that turns a board into what the cache keeps (its page fragment, its JSON and its
# figures): a deploy that changes any of it changes every board's key, so no board keeps
# serving a rendering of the code before.
_BOARD_DIR = Path(__file__).resolve().parents[1]
RENDERING_SOURCES = (
    *sorted((_BOARD_DIR / "templates" / "board").glob("task_board*.html")),
    _BOARD_DIR / "templatetags" / "board_tags.py",
    _BOARD_DIR / "renderings.py",
    Path(plots_module.__file__),
)


@functools.cache
def rendering_fingerprint() -> str:
    """A hash of :data:`RENDERING_SOURCES`, read once per process."""
    digest = hashlib.sha256()
    for path in RENDERING_SOURCES:
        data = path.read_bytes()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def _row(entry: dict[str, Any], ev: Evaluation) -> BoardRow:
    summary = ev.summary or {}
    # What leaves the platform: figures bounded by the disclosure budget.
    shown = disclose_summary(
        {**summary, "value": ev.primary_value, "ci": [ev.primary_ci_low, ev.primary_ci_high]}
    )
    return BoardRow(
        submission_id=entry["pk"],
        entry_id=entry["public_id"],
        method_name=entry["method_name"],
        team=entry["team__name"] or entry["team_name"] or entry["owner__username"],
        team_slug=entry["team__slug"] or "",
        is_reference=entry["is_reference"],
        streamed=entry["streamed"],
        track=entry["track__slug"],
        track_title=entry["track__title"],
        modalities=list(entry["modalities"]),
        paper_url=entry["paper_url"],
        code_url=entry["code_url"],
        evaluation_id=ev.pk,
        evaluated_at=ev.finished_at,
        scorer_version=ev.scorer_version,
        form=ev.form,
        value=ev.primary_value,
        ci=[ev.primary_ci_low, ev.primary_ci_high],
        metrics=shown.get("metrics") or {},
        robustness=shown.get("robustness") or {},
        fairness=shown.get("fairness") or {},
        replicates=ev.replicate_values or [],
        shown_value=shown.get("value"),
        shown_ci=shown.get("ci") or [None, None],
    )


def build_ranked(state: BoardState) -> dict[str, Any]:
    """The full ranked board (all published entries, no filter, rank order); reads the
    current runs with their per-replicate values (one query)."""
    ids = [e["current_evaluation_id"] for e in state.entries if e["current_evaluation_id"]]
    evaluations = (
        {
            ev.pk: ev
            for ev in Evaluation.objects.filter(pk__in=ids).only(
                "id",
                "submission_id",
                "summary",
                "primary_value",
                "primary_ci_low",
                "primary_ci_high",
                "replicate_values",
                "scorer_version",
                "form",
                "finished_at",
            )
        }
        if ids
        else {}
    )
    rows: list[BoardRow] = []
    decision: list[BoardRow] = []
    awaiting = 0
    for entry in state.entries:
        ev = evaluations.get(entry["current_evaluation_id"])
        if ev is None:
            awaiting += 1
            continue
        (decision if ev.form == DECISION_FORM else rows).append(_row(entry, ev))
    rows = rank_rows(rows, task=state.task.spec)
    decision = _decision_rank(decision, metric="accuracy")
    for r in rows + decision:
        r.replicates = []  # ranked: not needed any more, and the bulk of the cached value
    return {"rows": rows, "decision_rows": decision, "awaiting": awaiting}


def row_matches(row: BoardRow, *, track: str, modality: str) -> bool:
    if track and row.track != track:
        return False
    if modality and modality in MODALITY_FILTERS:
        # MedMod's filters: exactly these of its two inputs.
        used = {m for m in row.modalities if m in ("ehr", "cxr")}
        return used == set(modality.split("+"))
    return True


def sort_rows(rows: list[BoardRow], *, sort: str, order: str) -> list[BoardRow]:
    if sort in ("", "rank"):
        return list(reversed(rows)) if order == "desc" else rows
    greater = METRICS[sort].greater_is_better if sort in METRICS else True
    descending = {"desc": True, "asc": False}.get(order, greater)

    def key(r: BoardRow) -> tuple[int, float]:
        v = _num(r.value if sort == "primary" else r.metric_value(sort))
        if math.isnan(v):
            return (1, 0.0)
        return (0, -v if descending else v)

    return sorted(rows, key=key)


def board_forest_figure(board: Board) -> dict[str, Any] | None:
    """Forest plot of the primary metric across the shown entries (aggregates only)."""
    rows = [
        {
            "label": f"{r.method_name} ({r.team})",
            "value": r.shown_value,
            "ci": r.shown_ci,
            "is_baseline": r.is_reference,
        }
        for r in board.rows
        if r.shown_value is not None
    ]
    if not rows:
        return None
    from scoring.plots import forest

    return forest(rows, metric=board.primary_metric)


CSV_METRIC_FIELDS = ("value", "ci_low", "ci_high")


def _rounded_p(comparison: dict[str, Any] | None) -> Any:
    return disclose_figures((comparison or {}).get("p"), max_decimals=MIN_DECIMALS + 1)


def board_csv_rows(board: Board) -> tuple[list[str], list[list[Any]]]:
    """The board as a flat table (header, rows) for CSV export."""
    header = [
        "rank", "tier", "rank_interval_low", "rank_interval_high", "entry_id", "method_name",
        "team", "is_reference", "track", "verification", "causal", "modalities", "form",
        f"{board.primary_metric}", f"{board.primary_metric}_ci_low",
        f"{board.primary_metric}_ci_high",
    ]  # fmt: skip
    others = [m for m in board.metrics if m != board.primary_metric]
    for m in others:
        header += [m, f"{m}_ci_low", f"{m}_ci_high"]
    header += [
        "robustness_audc", "drop_cxr_missing_100", "fairness_max_gap",
        "p_vs_leader", "p_vs_baseline", "scorer_version", "evaluated_at",
    ]  # fmt: skip
    out = []
    for r in board.all_rows:
        line: list[Any] = [
            r.rank, r.tier,
            r.rank_interval[0] if r.rank_interval else "",
            r.rank_interval[1] if r.rank_interval else "",
            r.entry_id, r.method_name, r.team, int(r.is_reference), r.track,
            r.verification, int(r.causal), "+".join(r.modalities), r.form, r.shown_value,
            r.shown_ci[0],
            r.shown_ci[1],
        ]  # fmt: skip
        for m in others:
            entry = r.metrics.get(m) or {}
            ci = entry.get("ci") or [None, None]
            line += [entry.get("value"), ci[0], ci[1]]
        drop = r.robustness.get("drop_cxr_missing_100")
        line += [
            _scalar(r.robustness.get("audc")),
            _scalar(drop),
            _scalar(r.fairness.get("max_gap")),
            _rounded_p(r.vs_leader),
            _rounded_p(r.vs_baseline),
            r.scorer_version,
            r.evaluated_at.isoformat() if r.evaluated_at else "",
        ]
        out.append(["" if v is None else v for v in line])
    return header, out


def _scalar(x: Any) -> Any:
    """A robustness or fairness summary value: a number, or a {value, ci} dict."""
    if isinstance(x, dict):
        return x.get("value", x.get("diff"))
    return x
