"""The leaderboard of a task: published entries, their current scores, ranks and tiers.

An entry is on the board with its latest successful run under the **current scorer
version** on the task's benchmark, with the configured number of replicates, so that every
row was scored on the same bootstrap replicates and can be compared pairwise
(``scoring.rank_entries``). Published entries without such a run are counted as awaiting
re-scoring; their older runs stay on their entry pages.

Ranking is a pure function of the rows (grand-challenge's habit): :func:`rank_rows`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, Subquery

from benchmark_data.tasks import METRICS
from leaderboard.board.models import VERIFIED, Evaluation, Submission, Task, verification_label
from leaderboard.board.selectors.submissions import current_scorer_version

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
    submission_id: int
    method_name: str
    team: str
    is_reference: bool
    track: str
    track_title: str
    uses_ehr: bool
    uses_cxr: bool
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
        return verification_label(self.track)

    @property
    def is_verified(self) -> bool:
        return self.verification == VERIFIED

    @property
    def modalities(self) -> list[str]:
        return [m for m, used in (("ehr", self.uses_ehr), ("cxr", self.uses_cxr)) if used]

    @property
    def modalities_label(self) -> str:
        return " + ".join(m.upper() for m in self.modalities)

    def metric_value(self, name: str) -> float | None:
        entry = self.metrics.get(name) or {}
        return entry.get("value")

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "tier": self.tier,
            "position": self.position,
            "rank_interval": list(self.rank_interval) if self.rank_interval else None,
            "entry_id": self.submission_id,
            "method_name": self.method_name,
            "team": self.team,
            "is_reference": self.is_reference,
            "track": self.track,
            "verification": self.verification,
            "modalities": self.modalities,
            "paper_url": self.paper_url,
            "code_url": self.code_url,
            "form": self.form,
            "primary": {"value": self.value, "ci": self.ci},
            "metrics": self.metrics,
            "robustness": self.robustness,
            "fairness": self.fairness,
            "vs_leader": self.vs_leader,
            "vs_baseline": self.vs_baseline,
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


def rank_rows(rows: list[BoardRow], *, task_slug: str) -> list[BoardRow]:
    """Rank rows in place with the scoring engine's paired-bootstrap ranking; best first."""
    if not rows:
        return rows
    from scoring.ranking import RankInput, rank_entries

    ranked = rank_entries(
        [
            RankInput(
                entry_id=r.submission_id,
                value=_num(r.value),
                replicates=[_num(v) for v in r.replicates],
                is_baseline=r.is_reference,
            )
            for r in rows
        ],
        task=task_slug,
    )
    by_id = {r.submission_id: r for r in rows}
    out = []
    for item in ranked:
        row = by_id[item.entry_id]
        row.position = item.position
        row.rank = item.rank
        row.tier = item.tier
        row.rank_interval = tuple(item.rank_interval)
        row.vs_leader = item.vs_leader
        row.vs_baseline = item.vs_baseline
        out.append(row)
    return out


def _decision_rank(rows: list[BoardRow], *, metric: str) -> list[BoardRow]:
    """Decision-only entries are ranked apart, by their own primary metric."""
    from scoring.ranking import RankInput, rank_entries

    if not rows:
        return rows
    ranked = rank_entries(
        [
            RankInput(
                entry_id=r.submission_id,
                value=_num(r.value),
                replicates=[_num(v) for v in r.replicates],
                is_baseline=r.is_reference,
            )
            for r in rows
        ],
        greater_is_better=METRICS[metric].greater_is_better if metric in METRICS else True,
    )
    by_id = {r.submission_id: r for r in rows}
    for item in ranked:
        row = by_id[item.entry_id]
        row.position, row.rank, row.tier = item.position, item.rank, item.tier
        row.rank_interval = tuple(item.rank_interval)
        row.vs_leader, row.vs_baseline = item.vs_leader, item.vs_baseline
    return [by_id[item.entry_id] for item in ranked]


def _row(sub: Submission, ev: Evaluation) -> BoardRow:
    summary = ev.summary or {}
    return BoardRow(
        submission_id=sub.pk,
        method_name=sub.method_name,
        team=sub.team_name or sub.owner.get_username(),
        is_reference=sub.is_reference,
        track=sub.track.slug,
        track_title=sub.track.title,
        uses_ehr=sub.uses_ehr,
        uses_cxr=sub.uses_cxr,
        paper_url=sub.paper_url,
        code_url=sub.code_url,
        evaluation_id=ev.pk,
        evaluated_at=ev.finished_at,
        scorer_version=ev.scorer_version,
        form=ev.form,
        value=ev.primary_value,
        ci=[ev.primary_ci_low, ev.primary_ci_high],
        metrics=summary.get("metrics") or {},
        robustness=summary.get("robustness") or {},
        fairness=summary.get("fairness") or {},
        replicates=ev.replicate_values or [],
    )


def _matches(row: BoardRow, *, track: str, modality: str) -> bool:
    if track and row.track != track:
        return False
    if modality == "ehr+cxr":
        return row.uses_ehr and row.uses_cxr
    if modality == "ehr":
        return row.uses_ehr and not row.uses_cxr
    if modality == "cxr":
        return row.uses_cxr and not row.uses_ehr
    return True


def _sort(rows: list[BoardRow], *, sort: str, order: str) -> list[BoardRow]:
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


def leaderboard_rows(
    *, task: Task, track: str = "", modality: str = "", sort: str = "rank", order: str = ""
) -> Board:
    """The board of a task: ranked rows (all published entries are ranked together; the
    filters only choose which rows are shown), decision-only entries apart.

    Three queries, whatever the number of entries.
    """
    version = current_scorer_version()
    current = Evaluation.objects.filter(
        submission=OuterRef("pk"),
        status=E.SUCCEEDED,
        scorer_version=version,
        benchmark_hash=task.benchmark.manifest_hash,
        replicates=settings.SCORING_REPLICATES,
    ).order_by("-created_at", "-id")
    subs = list(
        Submission.objects.filter(task=task, status=S.PUBLISHED)
        .select_related("owner", "track")
        .annotate(current_evaluation_id=Subquery(current.values("id")[:1]))
        .order_by("pk")
    )
    ids = [s.current_evaluation_id for s in subs if s.current_evaluation_id]
    evaluations = {
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
    rows: list[BoardRow] = []
    decision: list[BoardRow] = []
    awaiting = 0
    for sub in subs:
        ev = evaluations.get(sub.current_evaluation_id)
        if ev is None:
            awaiting += 1
            continue
        (decision if ev.form == DECISION_FORM else rows).append(_row(sub, ev))
    rows = rank_rows(rows, task_slug=task.slug)
    decision = _decision_rank(decision, metric="accuracy")
    rows = _sort(
        [r for r in rows if _matches(r, track=track, modality=modality)], sort=sort, order=order
    )
    decision = [r for r in decision if _matches(r, track=track, modality=modality)]
    return Board(
        task=task,
        scorer_version=version,
        primary_metric=task.primary_metric,
        metrics=list(task.spec.metrics),
        rows=rows,
        decision_rows=decision,
        awaiting_rescore=awaiting,
        sort=sort or "rank",
        order=order,
        track=track,
        modality=modality,
    )


def board_forest_figure(board: Board) -> dict[str, Any] | None:
    """Forest plot of the primary metric across the shown entries (aggregates only)."""
    rows = [
        {
            "label": f"{r.method_name} ({r.team})",
            "value": r.value,
            "ci": r.ci,
            "is_baseline": r.is_reference,
        }
        for r in board.rows
        if r.value is not None
    ]
    if not rows:
        return None
    from scoring.plots import forest

    return forest(rows, metric=board.primary_metric)


CSV_METRIC_FIELDS = ("value", "ci_low", "ci_high")


def board_csv_rows(board: Board) -> tuple[list[str], list[list[Any]]]:
    """The board as a flat table (header, rows) for CSV export."""
    header = [
        "rank", "tier", "rank_interval_low", "rank_interval_high", "entry_id", "method_name",
        "team", "is_reference", "track", "verification", "modalities", "form",
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
            r.submission_id, r.method_name, r.team, int(r.is_reference), r.track,
            r.verification, "+".join(r.modalities), r.form, r.value, r.ci[0], r.ci[1],
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
            (r.vs_leader or {}).get("p"),
            (r.vs_baseline or {}).get("p"),
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
